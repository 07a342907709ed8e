//! The replicated map as a runtime [`StateMachine`].

use std::fmt;
use std::io::{self, Read, Write};

use crate::kv::{decode_read, decode_write, EntryDecodeError, Reply, SnapshotError, Store};
use crate::runtime::StateMachine;
use crate::types::LogIndex;

/// The key-value map every node of an `oar serve` cluster replicates.
/// Answers are RESP replies, ready to send to the client.
#[derive(Debug, Default)]
pub struct KvMachine {
    store: Store,
}

impl KvMachine {
    /// An empty map.
    pub fn new() -> KvMachine {
        KvMachine::default()
    }

    /// The map.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// Why the map stops its node: a committed write it cannot decode, or a
/// snapshot it cannot read.
#[derive(Debug)]
pub enum KvMachineError {
    /// A committed write that does not decode (a damaged log, or a peer of
    /// an incompatible version).
    Write(EntryDecodeError),
    /// A snapshot that does not read back.
    Snapshot(SnapshotError),
}

impl fmt::Display for KvMachineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvMachineError::Write(e) => write!(f, "not a key-value write: {e}"),
            KvMachineError::Snapshot(e) => write!(f, "not a key-value snapshot: {e}"),
        }
    }
}

impl std::error::Error for KvMachineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            KvMachineError::Write(e) => Some(e),
            KvMachineError::Snapshot(e) => Some(e),
        }
    }
}

impl StateMachine for KvMachine {
    type Error = KvMachineError;

    fn apply(&mut self, _index: LogIndex, command: &[u8]) -> Result<Vec<u8>, KvMachineError> {
        let op = decode_write(command).map_err(KvMachineError::Write)?;
        Ok(self.store.apply(op).to_vec())
    }

    fn query(&self, query: &[u8]) -> Vec<u8> {
        match decode_read(query) {
            Ok(op) => self.store.query(&op).to_vec(),
            // Queries come from this process; a bad one is a bug, answered
            // as an error rather than a crash.
            Err(e) => Reply::error(format!("ERR {e}")).to_vec(),
        }
    }

    /// Writes the whole map (see [`Store::write_snapshot`]).
    fn snapshot(&self, out: &mut dyn Write) -> io::Result<()> {
        self.store.write_snapshot(out)
    }

    /// Replaces the map with the snapshot `input` holds, all of it. On an
    /// error the map is unchanged and the error says what was wrong with
    /// the snapshot.
    fn restore(&mut self, input: &mut dyn Read) -> Result<(), KvMachineError> {
        self.store = Store::read_snapshot(input).map_err(KvMachineError::Snapshot)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::{encode_write, SetCondition, WriteOp};

    #[test]
    fn the_machine_restores_a_snapshot_and_keeps_its_map_on_a_bad_one() {
        let mut source = KvMachine::new();
        let set =
            WriteOp::Set { key: "k".into(), value: "v".into(), condition: SetCondition::Always, get: false };
        source.apply(LogIndex(1), &encode_write(&set)).expect("applies");
        let mut bytes = Vec::new();
        source.snapshot(&mut bytes).expect("writes");

        let mut machine = KvMachine::new();
        machine.restore(&mut &bytes[..]).expect("restores");
        assert_eq!(machine.store(), source.store());
        let mut again = Vec::new();
        machine.snapshot(&mut again).expect("writes");
        assert_eq!(again, bytes);

        let error = machine.restore(&mut &bytes[..bytes.len() - 1]).expect_err("a cut snapshot").to_string();
        assert!(error.contains("ends inside `crc`"), "{error}");
        assert_eq!(machine.store(), source.store());
    }
}
