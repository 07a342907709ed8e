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

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use log::{debug, error, info, warn};

use super::apply::StopOnPanic;
use super::snapshots::{receive_chunk, Snapshots};
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
    /// The disk is full (a write waits for space; nothing of it was
    /// written), or takes writes again.
    DiskFull(bool),
}

/// How often the log writer raises the floor kept beside the log (one small
/// fsync, after a batch is reported): a loss of synced entries more recent
/// than that is not seen by the node's own recovery (its leader notices it
/// instead). See `Wal::raise_floor`.
const FLOOR_RAISE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

pub(crate) fn run(
    wal: Wal,
    snapshots: Arc<Snapshots>,
    inbox: Receiver<ToWriter>,
    outbox: Sender<FromWriter>,
    shared: Arc<Shared>,
) {
    let id = shared.id;
    let _guard = StopOnPanic { shared: &shared, thread: "log writer" };
    let mut writer =
        Writer { wal, queued: VecDeque::new(), full: false, floor_raised: std::time::Instant::now() };
    let mut stopping = false;
    while !stopping {
        // While writes wait for space, try them again every so often even if
        // nothing new arrives: space may be freed at any time.
        let first = if writer.queued.is_empty() {
            match inbox.recv() {
                Ok(m) => Some(m),
                Err(_) => break,
            }
        } else {
            match inbox.recv_timeout(RETRY_FULL_DISK_EVERY) {
                Ok(m) => Some(m),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            }
        };
        let mut result = Ok(());
        for message in first.into_iter().chain(inbox.try_iter()) {
            match message {
                ToWriter::Stop => {
                    stopping = true;
                    break;
                }
                ToWriter::Write(persist) => writer.queued.push_back(persist),
                // Compaction goes first: it may free the space writes wait
                // for.
                ToWriter::Compact(below) => {
                    if result.is_ok() {
                        result = writer.wal.compact_prefix(below).map(drop);
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
        let (result, reports) = match result {
            Ok(()) => writer.write_queued(&shared),
            Err(e) => (Err(e), Vec::new()),
        };
        let mut reports = reports;
        match result {
            Err(e) => {
                error!("{id}: the log failed, stopping the node: {e}");
                stopping = true;
                reports.push(FromWriter::Failed(shared.record_stop(StopReason::Storage(Arc::new(e)))));
            }
            Ok(synced) => {
                // Off the acknowledgements' path: reported first.
                if synced && !stopping && writer.floor_raised.elapsed() >= FLOOR_RAISE_INTERVAL {
                    writer.floor_raised = std::time::Instant::now();
                    if let Err(e) = writer.wal.raise_floor() {
                        error!("{id}: the log failed, stopping the node: {e}");
                        stopping = true;
                        reports
                            .push(FromWriter::Failed(shared.record_stop(StopReason::Storage(Arc::new(e)))));
                    }
                }
            }
        }
        for report in reports {
            if outbox.send(report).is_err() {
                return;
            }
            shared.wake();
        }
    }
}

/// How often writes that wait for space are tried again.
const RETRY_FULL_DISK_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// The log writer's state.
struct Writer {
    wal: Wal,
    /// Writes in order, not yet written: the disk was full for the first.
    queued: VecDeque<Persist>,
    /// The last attempt found the disk full (reported to the event loop).
    full: bool,
    floor_raised: std::time::Instant,
}

impl Writer {
    /// Writes what is queued, in order, and syncs once: returns whether a
    /// sync happened, and what to report. A write refused for want of space
    /// (nothing written) stays queued with every later one, and the event
    /// loop hears the disk is full; once writes go through again, that it is
    /// not.
    fn write_queued(&mut self, shared: &Shared) -> (Result<bool, StorageError>, Vec<FromWriter>) {
        let id = shared.id;
        let mut reports = Vec::new();
        let mut last = None;
        let mut writes = 0usize;
        let mut needs_sync = false;
        let mut result = Ok(());
        while let Some(persist) = self.queued.front() {
            let written = self.wal.hard_state();
            let mut attempt = Ok(());
            if let Some(s) = &persist.snapshot {
                attempt = continue_snapshot(&mut self.wal, s);
            }
            if attempt.is_ok() {
                attempt = self.wal.write(&persist.entries, persist.hard_state);
            }
            match attempt {
                Ok(()) => {
                    needs_sync |= !commit_only(persist, written);
                    last = Some(persist.id);
                    writes += 1;
                    self.queued.pop_front();
                }
                Err(e @ StorageError::OutOfSpace { .. }) => {
                    if !self.full {
                        warn!("{id}: {e}; refusing new writes until space is freed");
                        self.full = true;
                        reports.push(FromWriter::DiskFull(true));
                    }
                    break;
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if self.full && self.queued.is_empty() && result.is_ok() {
            info!("{id}: space was freed: the log takes writes again");
            self.full = false;
            reports.insert(0, FromWriter::DiskFull(false));
        }
        let synced = result.is_ok() && needs_sync;
        if synced {
            shared.wait_while_disk_hangs();
            result = self.wal.sync();
            shared.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
        }
        shared.counters.writes.fetch_add(writes as u64, Ordering::Relaxed);
        if let (Ok(()), Some(last)) = (&result, last) {
            debug!("{id}: {writes} writes durable up to {last:?}");
            reports.push(FromWriter::Durable(last));
        }
        (result.map(|()| synced), reports)
    }
}
