//! The replicated map as a runtime [`StateMachine`].

use std::io::{self, Read, Write};

use crate::kv::{decode_read, decode_write, Reply, Store};
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

    /// Writes the whole map to `out` as a snapshot (see
    /// [`Store::write_snapshot`]); flush and sync `out` before relying on
    /// the snapshot.
    pub fn snapshot(&self, out: &mut dyn Write) -> io::Result<()> {
        self.store.write_snapshot(out)
    }

    /// Replaces the map with the snapshot `input` holds, all of it. On an
    /// error the map is unchanged and the error says what was wrong with
    /// the snapshot.
    pub fn restore(&mut self, input: &mut dyn Read) -> Result<(), String> {
        self.store = Store::read_snapshot(input).map_err(|e| e.to_string())?;
        Ok(())
    }
}

impl StateMachine for KvMachine {
    fn apply(&mut self, _index: LogIndex, command: &[u8]) -> Result<Vec<u8>, String> {
        let op = decode_write(command).map_err(|e| e.to_string())?;
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
}
