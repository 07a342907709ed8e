//! The log-writer thread: group commit.
//!
//! It blocks for the first write, then takes every write already queued
//! behind it, writes them all to the log, calls `fdatasync` once and reports
//! the last one durable (a batch that only moves the commit index forward
//! is not synced: see [`commit_only`]). While it syncs, the event loop queues the next
//! batch, so the batch grows with the load and fsyncs stay one per batch.
//!
//! It also does the rest of the node's disk work that must stay off the
//! event loop: compacting the log below a snapshot, and writing the chunks
//! of a snapshot arriving from a leader (whose last step fsyncs).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use log::{debug, error};

use super::snapshots::{receive_chunk, Snapshots};
use super::apply::StopOnPanic;
use super::{Shared, StopReason};
use crate::core::{Persist, PersistId};
use crate::membership::SnapshotMeta;
use crate::message::{SnapshotAck, SnapshotChunk};
use crate::storage::{StorageError, Wal};
use crate::types::{HardState, LogIndex, NodeId, Term};

/// Makes the log continue the installed snapshot `s`: keep what follows it
/// if the log holds its last entry, else start the log over after it (the
/// snapshot itself is durable already).
pub(crate) fn continue_snapshot(wal: &mut Wal, s: &SnapshotMeta) -> Result<(), StorageError> {
    if wal.term(s.index) == Some(s.term) {
        wal.compact_prefix(s.index).map(drop)
    } else {
        wal.reset(s.index, s.term)
    }
}

/// Whether `persist` only moves the commit index forward: no entries, and
/// the term and vote of `written`, the last hard state written. Such a
/// batch is reported durable without an fsync of its own (it rides on the
/// next one): a commit index is knowledge the node learns again from its
/// leader, never a promise made to a peer, so losing it in a crash loses
/// nothing (see `Persist`). Every write that carries entries, a term or a
/// vote is synced before it is reported, and writes are handled in order,
/// so `written`'s term and vote are durable here.
pub(crate) fn commit_only(persist: &Persist, written: HardState) -> bool {
    persist.entries.is_empty()
        && persist.snapshot.is_none()
        && persist.hard_state.is_some_and(|hs| hs.term == written.term && hs.vote == written.vote)
}

/// What the event loop sends the log writer.
pub(crate) enum ToWriter {
    Write(Persist),
    /// Drop the log's whole segments below this index: a snapshot covers
    /// them.
    Compact(LogIndex),
    /// A piece of a snapshot sent by `from` in `term`.
    Chunk {
        from: NodeId,
        term: Term,
        chunk: SnapshotChunk,
    },
    /// Finish what is queued and exit.
    Stop,
}

/// What the log writer reports back.
pub(crate) enum FromWriter {
    /// Every write up to this one is durable.
    Durable(PersistId),
    /// The log or the snapshot store failed; the node must stop. The
    /// reason is recorded in `Shared` before this is sent.
    Failed(StopReason),
    /// How much of a snapshot this node holds, for the leader `to`.
    ChunkAck { to: NodeId, term: Term, ack: SnapshotAck },
    /// A snapshot from `from` arrived whole and is stored durably, for the
    /// event loop to tell the core (`Node::handle_snapshot_received`).
    SnapshotReceived { from: NodeId, term: Term, meta: SnapshotMeta },
}

/// How often the log writer raises the floor kept beside the log (one small
/// fsync, after a batch is reported): a loss of synced entries more recent
/// than that is not seen by the node's own recovery (its leader notices it
/// instead). See `Wal::raise_floor`.
const FLOOR_RAISE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

pub(crate) fn run(
    mut wal: Wal,
    snapshots: Arc<Snapshots>,
    inbox: Receiver<ToWriter>,
    outbox: Sender<FromWriter>,
    shared: Arc<Shared>,
) {
    let id = shared.id;
    let _guard = StopOnPanic { shared: &shared, thread: "log writer" };
    let mut stopping = false;
    let mut floor_raised = std::time::Instant::now();
    while !stopping {
        let Ok(first) = inbox.recv() else { break };
        let mut last = None;
        let mut writes = 0usize;
        let mut result = Ok(());
        let mut needs_sync = false;
        for message in std::iter::once(first).chain(inbox.try_iter()) {
            match message {
                ToWriter::Stop => {
                    stopping = true;
                    break;
                }
                ToWriter::Write(persist) => {
                    if result.is_ok() {
                        needs_sync |= !commit_only(&persist, wal.hard_state());
                        if let Some(s) = &persist.snapshot {
                            result = continue_snapshot(&mut wal, s);
                        }
                        if result.is_ok() {
                            result = wal.write(&persist.entries, persist.hard_state);
                        }
                        last = Some(persist.id);
                        writes += 1;
                    }
                }
                ToWriter::Compact(below) => {
                    if result.is_ok() {
                        result = wal.compact_prefix(below).map(drop);
                    }
                }
                ToWriter::Chunk { from, term, chunk } => {
                    for report in receive_chunk(&snapshots, id, from, term, chunk) {
                        if let FromWriter::Failed(reason) = &report {
                            error!("{id}: the snapshot store failed, stopping the node: {reason}");
                            shared.record_stop(reason.clone());
                        }
                        if outbox.send(report).is_err() {
                            return;
                        }
                        shared.wake();
                    }
                }
            }
        }
        let synced = result.is_ok() && needs_sync;
        if synced {
            result = wal.sync();
            shared.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
        }
        shared.counters.writes.fetch_add(writes as u64, Ordering::Relaxed);
        let report = match (result, last) {
            (Err(e), _) => {
                error!("{id}: the log failed, stopping the node: {e}");
                stopping = true;
                FromWriter::Failed(shared.record_stop(StopReason::Storage(Arc::new(e))))
            }
            (Ok(()), Some(last)) => {
                debug!("{id}: {writes} writes durable up to {last:?}");
                FromWriter::Durable(last)
            }
            (Ok(()), None) => continue,
        };
        if outbox.send(report).is_err() {
            break;
        }
        shared.wake();
        // Off the acknowledgements' path: the batch is reported already.
        if synced && !stopping && floor_raised.elapsed() >= FLOOR_RAISE_INTERVAL {
            floor_raised = std::time::Instant::now();
            if let Err(e) = wal.raise_floor() {
                error!("{id}: the log failed, stopping the node: {e}");
                let _ = outbox.send(FromWriter::Failed(shared.record_stop(StopReason::Storage(Arc::new(e)))));
                shared.wake();
                break;
            }
        }
    }
}
