//! The node's snapshot files, shared by the threads that use them: the
//! apply thread takes and restores snapshots, the log writer receives them
//! from a leader, and the event loop sends them to followers.
//!
//! One lock guards the store. The event loop never takes it: it reads the
//! files it sends through handles of its own, so a snapshot being written
//! cannot hold up heartbeats. The log writer may wait for it while the apply
//! thread writes a snapshot (a follower both taking and receiving one).

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use log::{debug, info, warn};

use super::log_writer::FromWriter;
use super::{StateMachine, StopReason};
use crate::membership::SnapshotMeta;
use crate::message::{SnapshotAck, SnapshotChunk};
use crate::session::{SessionTable, TABLE_BYTES_MAX};
use crate::storage::{parse_snapshot_file_name, snapshot_file_name, SnapshotStore, StorageError};
use crate::types::{LogIndex, NodeId, Term};

/// The snapshot store, shared.
pub(crate) struct Snapshots {
    store: Mutex<SnapshotStore>,
    dir: PathBuf,
}

impl Snapshots {
    pub(crate) fn new(store: SnapshotStore) -> Snapshots {
        let dir = store.dir().to_path_buf();
        Snapshots { store: Mutex::new(store), dir }
    }

    fn lock(&self) -> MutexGuard<'_, SnapshotStore> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes a snapshot `meta` of `state_machine` and `sessions`, durably
    /// (the session table first, length-prefixed, then the state machine's
    /// own bytes), unless the
    /// store already holds one as new (received from a leader); returns the
    /// snapshot stored, or `None` if the disk had no room for it (the
    /// unfinished file is removed, and the node goes on without it).
    pub(crate) fn take<S: StateMachine>(
        &self,
        meta: &SnapshotMeta,
        state_machine: &S,
        sessions: &SessionTable,
    ) -> Result<Option<SnapshotMeta>, StopReason> {
        let mut store = self.lock();
        if let Some(current) = store.current().filter(|c| c.index >= meta.index) {
            return Ok(Some(current.clone()));
        }
        let failed = |e: StorageError| match e {
            StorageError::OutOfSpace { .. } => {
                warn!("cannot take a snapshot at {}: {e}; trying again later", meta.index);
                Ok(None)
            }
            e => Err(StopReason::Storage(Arc::new(e))),
        };
        let mut writer = match store.begin(meta) {
            Ok(writer) => writer,
            Err(e) => return failed(e),
        };
        let produced = {
            let mut buffered = BufWriter::with_capacity(1 << 20, &mut writer);
            let mut table = Vec::new();
            sessions.encode(&mut table);
            buffered
                .write_all(&(table.len() as u64).to_le_bytes())
                .and_then(|()| buffered.write_all(&table))
                .and_then(|()| state_machine.snapshot(&mut buffered))
                .and_then(|()| buffered.flush())
        };
        // A failed write to the file is reported by `finish`, so that a
        // full disk is told apart from the state machine's own failure.
        if let Err(e) = produced {
            if !writer.failed() {
                return Err(StopReason::TakeSnapshot { index: meta.index, error: Arc::new(e) });
            }
        }
        writer.finish().map(Some).or_else(failed)
    }

    /// Restores `state_machine` from the stored snapshot `meta`, or from
    /// the newer one that replaced it since the core asked (received from
    /// a leader while the apply thread was busy); returns the snapshot
    /// restored. Any snapshot at `meta.index` or later holds committed
    /// entries only, so the state machine may run ahead of what the core
    /// asked: the apply thread then passes over the entries it holds.
    pub(crate) fn restore<S: StateMachine>(
        &self,
        meta: &SnapshotMeta,
        state_machine: &mut S,
        sessions: &mut SessionTable,
    ) -> Result<SnapshotMeta, StopReason> {
        let store = self.lock();
        let failed = |error: Arc<dyn std::error::Error + Send + Sync>| StopReason::Restore {
            index: meta.index,
            error,
        };
        let Some(current) = store.current().filter(|c| *c == meta || c.index > meta.index).cloned() else {
            let stored =
                format!("snapshot {} is not stored (the store holds {:?})", meta.index, store.current());
            return Err(failed(Arc::new(std::io::Error::other(stored))));
        };
        let reader = store.reader().map_err(|e| failed(Arc::new(e)))?;
        let mut buffered = BufReader::with_capacity(1 << 20, reader);
        let table = read_session_table(&mut buffered).map_err(|e| failed(Arc::new(e)))?;
        state_machine.restore(&mut buffered).map_err(|e| failed(Arc::new(e)))?;
        *sessions = table;
        Ok(current)
    }

    /// Opens the file of snapshot `meta` for sending, with its size and the
    /// index and term it covers. If a newer snapshot replaced it (received
    /// from a leader, one the core did not install because its term was
    /// over), that one is sent: any snapshot of committed entries at or past
    /// the one asked for serves the follower.
    pub(crate) fn open_for_send(
        &self,
        meta: &SnapshotMeta,
    ) -> std::io::Result<(File, u64, (LogIndex, Term))> {
        let (index, term) = match File::open(self.dir.join(snapshot_file_name(meta.index, meta.term))) {
            Ok(file) => {
                let len = file.metadata()?.len();
                return Ok((file, len, (meta.index, meta.term)));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::read_dir(&self.dir)?
                .filter_map(|entry| parse_snapshot_file_name(&entry.ok()?.file_name().to_string_lossy()))
                .filter(|&(index, _)| index > meta.index)
                .max()
                .ok_or(e)?,
            Err(e) => return Err(e),
        };
        let file = File::open(self.dir.join(snapshot_file_name(index, term)))?;
        let len = file.metadata()?.len();
        Ok((file, len, (index, term)))
    }
}

/// Reads the session table at the head of a snapshot: its length, checked
/// against [`TABLE_BYTES_MAX`] before anything is read, then the table.
fn read_session_table(input: &mut impl Read) -> std::io::Result<SessionTable> {
    let invalid = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let mut len = [0; 8];
    input.read_exact(&mut len)?;
    let len = u64::from_le_bytes(len);
    if len > TABLE_BYTES_MAX {
        return Err(invalid(format!(
            "a session table of {len} bytes; at most {TABLE_BYTES_MAX} are written"
        )));
    }
    // Grows with the bytes actually there, not with the length claimed.
    let mut bytes = Vec::new();
    input.take(len).read_to_end(&mut bytes)?;
    if bytes.len() as u64 != len {
        return Err(invalid(format!("the session table is cut at {} of {len} bytes", bytes.len())));
    }
    SessionTable::decode(&bytes).map_err(|e| invalid(e.to_string()))
}

/// The log writer's side of receiving a snapshot: stores `chunk` from the
/// leader `from` of `term`, and returns what to tell the event loop: an
/// acknowledgement for the leader (how much the store holds) and, once the
/// last byte arrived and the file checked out, the snapshot received. A
/// full disk refuses the snapshot; any other disk failure is fatal, as for
/// the log.
pub(crate) fn receive_chunk(
    snapshots: &Snapshots,
    id: NodeId,
    from: NodeId,
    term: Term,
    chunk: SnapshotChunk,
) -> Vec<FromWriter> {
    let (index, snapshot_term) = (chunk.index, chunk.snapshot_term);
    let ack = |received, failed| FromWriter::ChunkAck {
        to: from,
        term,
        ack: SnapshotAck { index, snapshot_term, received, failed },
    };
    let mut store = snapshots.lock();
    let received = match store.receive_chunk(index, snapshot_term, chunk.offset, &chunk.data) {
        Ok(received) => received,
        Err(StorageError::ChunkOffset { expected, .. }) => {
            debug!("{id}: snapshot chunk at {} from {from}; resume at {expected}", chunk.offset);
            return vec![ack(expected, false)];
        }
        // A full disk refuses the snapshot for now: the leader sends it
        // again later, when there may be room.
        Err(
            e @ (StorageError::SnapshotTooLarge { .. }
            | StorageError::SnapshotRefused { .. }
            | StorageError::OutOfSpace { .. }),
        ) => {
            warn!("{id}: receiving snapshot {index} from {from} failed: {e}");
            return vec![ack(0, true)];
        }
        Err(e) => return vec![FromWriter::Failed(StopReason::Storage(Arc::new(e)))],
    };
    if received < chunk.total_bytes {
        return vec![ack(received, false)];
    }
    match store.finish_receive(index, snapshot_term) {
        Ok(meta) => {
            info!("{id}: received snapshot {index} from {from} ({received} bytes)");
            // A snapshot as new, taken meanwhile, may have won: the core
            // is told of whichever is stored.
            let stored = store.current().cloned().unwrap_or(meta);
            vec![ack(received, false), FromWriter::SnapshotReceived { from, term, meta: stored }]
        }
        Err(e @ StorageError::SnapshotRefused { .. }) => {
            warn!("{id}: snapshot {index} from {from} refused: {e}");
            vec![ack(0, true)]
        }
        Err(e) => vec![FromWriter::Failed(StopReason::Storage(Arc::new(e)))],
    }
}
