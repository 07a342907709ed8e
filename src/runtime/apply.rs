//! The apply thread: runs the state machine, answers the callers waiting
//! for their commands, and answers queries; writes snapshots of the state
//! machine and restores it from them.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use log::{error, info};

use super::pending::Pending;
use super::snapshots::Snapshots;
use super::{open_envelope, Completion, RequestError, Shared, StateMachine, StopReason, Unanswered};
use crate::membership::{Membership, SnapshotMeta};
use crate::session::{ApplyError, Reply, SessionId, SessionRefusal, SessionTable};
use crate::types::{Entry, EntryKind, LogIndex, Term};

/// What the event loop sends the apply thread. One channel carries all of
/// it, so order holds: a waiter is registered before its entry can arrive,
/// and a query arrives after every entry its read index covers.
pub(crate) enum ToApply {
    Entries(Vec<Entry>),
    /// Proposals this node made (or forwarded) and callers wait for, by
    /// request id; sent once per turn of the event loop.
    Wait(Vec<(u64, Completion)>),
    /// A confirmed read: every entry up to its read index was sent before.
    Query {
        query: Bytes,
        done: Completion,
    },
    /// Write a snapshot of the state machine as it is now.
    TakeSnapshot,
    /// Replace the state machine with the stored snapshot `meta`.
    Install(SnapshotMeta),
    /// Fail every waiter with this reason and exit.
    Stop(StopReason),
}

/// What the apply thread reports back.
pub(crate) enum FromApply {
    /// Every entry up to here is applied.
    Applied(LogIndex),
    /// A snapshot was written, durably.
    SnapshotTaken(SnapshotMeta),
    /// The snapshot asked for could not be written: the disk is full.
    SnapshotNotTaken,
    /// A command this node proposed named a session that expired: if it
    /// is the node's own, it needs another.
    SessionExpired(SessionId),
    /// The state machine refused an entry, or a snapshot could not be
    /// written or restored; the node must stop.
    Failed(StopReason),
}

/// What the apply thread knows of the entries it applied: enough to name
/// a snapshot of the state machine.
struct Applied {
    index: LogIndex,
    term: Term,
    membership: Membership,
}

pub(crate) fn run<S: StateMachine>(
    mut state_machine: S,
    snapshots: Arc<Snapshots>,
    bootstrap: Membership,
    inbox: Receiver<ToApply>,
    outbox: Sender<FromApply>,
    shared: Arc<Shared>,
) {
    let id = shared.id;
    // The state machine starts empty: nothing applied. A snapshot, if the
    // node has one, arrives first as an `Install`.
    let mut applied = Applied { index: LogIndex(0), term: Term(0), membership: bootstrap };
    // Replicated state next to the state machine's: in every snapshot, and
    // restored with it.
    let mut sessions = SessionTable::new();
    let fail = |reason: StopReason| {
        error!("{id}: stopping the node: {reason}");
        // Before any waiter learns of the stop: whoever sees the error must
        // find the reason in `Handle::stopped`.
        let reason = shared.record_stop(reason);
        let _ = outbox.send(FromApply::Failed(reason.clone()));
        shared.wake();
        reason
    };
    let timeout = shared.request_timeout;
    // Callers waiting for their commands, by request id.
    let mut waiters: Pending<Completion, Instant> = Pending::new();
    // Declared after `waiters`, so dropped before them in a panic: the
    // reason is recorded when they answer.
    let _guard = StopOnPanic { shared: &shared, thread: "apply" };
    let event_loop_gone = || shared.stop_reason();
    let stop_reason = loop {
        let message = match waiters.next_deadline() {
            Some(deadline) => inbox.recv_timeout(deadline.saturating_duration_since(Instant::now())),
            None => inbox.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match message {
            Ok(ToApply::Entries(entries)) => {
                let Some(last) = entries.last().map(|e| e.index) else { continue };
                let mut expired = None;
                let result = entries.iter().try_for_each(|entry| {
                    let mut a =
                        Applying { id, waiters: &mut waiters, applied: &mut applied, expired: &mut expired };
                    apply_one(&mut state_machine, &mut sessions, entry, &mut a)
                });
                if let Err(reason) = result {
                    break fail(reason);
                }
                if let Some(session) = expired {
                    if outbox.send(FromApply::SessionExpired(session)).is_err() {
                        break event_loop_gone();
                    }
                }
                shared.counters.applied.fetch_add(entries.len() as u64, Ordering::Relaxed);
                if outbox.send(FromApply::Applied(last)).is_err() {
                    break event_loop_gone();
                }
                shared.wake();
            }
            Ok(ToApply::Wait(batch)) => {
                let deadline = Instant::now() + timeout;
                for (request_id, done) in batch {
                    waiters.insert(request_id, done, deadline);
                }
            }
            Ok(ToApply::Query { query, done }) => done.complete(Ok(state_machine.query(&query))),
            Ok(ToApply::TakeSnapshot) if applied.index == LogIndex(0) => {}
            Ok(ToApply::TakeSnapshot) => {
                let meta = SnapshotMeta {
                    index: applied.index,
                    term: applied.term,
                    membership: applied.membership.clone(),
                };
                match snapshots.take(&meta, &state_machine, &sessions) {
                    Ok(None) => {
                        if outbox.send(FromApply::SnapshotNotTaken).is_err() {
                            break event_loop_gone();
                        }
                        shared.wake();
                    }
                    Ok(Some(stored)) => {
                        if stored.index == meta.index {
                            info!("{id}: snapshot taken at {}", meta.index);
                        }
                        if outbox.send(FromApply::SnapshotTaken(stored)).is_err() {
                            break event_loop_gone();
                        }
                        shared.wake();
                    }
                    Err(reason) => break fail(reason),
                }
            }
            // Already past it: a newer snapshot, restored early, holds it.
            Ok(ToApply::Install(meta)) if meta.index <= applied.index => {
                if outbox.send(FromApply::Applied(meta.index)).is_err() {
                    break event_loop_gone();
                }
                shared.wake();
            }
            Ok(ToApply::Install(meta)) => {
                let restored = match snapshots.restore(&meta, &mut state_machine, &mut sessions) {
                    Ok(restored) => restored,
                    Err(reason) => break fail(reason),
                };
                info!("{id}: state machine restored from snapshot {}", restored.index);
                applied =
                    Applied { index: restored.index, term: restored.term, membership: restored.membership };
                // The core learns of what it asked for; the entries up to
                // the snapshot restored are passed over as they come.
                if outbox.send(FromApply::Applied(meta.index)).is_err() {
                    break event_loop_gone();
                }
                shared.wake();
            }
            Ok(ToApply::Stop(reason)) => break reason,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break event_loop_gone(),
        }
        // A command whose entry did not come back in time may still be
        // applied later: its outcome is unknown.
        let unknown = || Err(RequestError::OutcomeUnknown { why: Unanswered::Timeout });
        waiters.expire(Instant::now(), |done| done.complete(unknown()));
    };
    // The waiters' commands were all handed to Raft: `stopped` answers
    // "outcome unknown". Queries wrote nothing: they answer `Stopped`.
    for done in waiters.drain() {
        done.stopped(stop_reason.clone());
    }
    // Whatever the event loop sent before it learned of the stop.
    for message in inbox.try_iter() {
        match message {
            ToApply::Wait(batch) => batch.into_iter().for_each(|(_, done)| done.stopped(stop_reason.clone())),
            ToApply::Query { done, .. } => done.stopped(stop_reason.clone()),
            ToApply::Entries(_) | ToApply::Stop(_) | ToApply::TakeSnapshot | ToApply::Install(_) => {}
        }
    }
}

/// Records that a runtime thread panicked, if it does (a bug, or a state
/// machine that panics): whoever the unwinding leaves unanswered learns
/// why, and the event loop stops when it finds the thread gone.
pub(crate) struct StopOnPanic<'a> {
    pub(crate) shared: &'a Shared,
    pub(crate) thread: &'static str,
}

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let reason = self.shared.record_stop(StopReason::Panicked { thread: self.thread });
            error!("{}: stopping the node: {reason}", self.shared.id);
            self.shared.wake();
        }
    }
}

/// What applying an entry reads and updates besides the state.
struct Applying<'a> {
    id: crate::types::NodeId,
    waiters: &'a mut Pending<Completion, Instant>,
    applied: &'a mut Applied,
    /// A session that a command of this node's found expired.
    expired: &'a mut Option<SessionId>,
}

fn apply_one<S: StateMachine>(
    state_machine: &mut S,
    sessions: &mut SessionTable,
    entry: &Entry,
    a: &mut Applying<'_>,
) -> Result<(), StopReason> {
    let applied = &mut *a.applied;
    if entry.index <= applied.index {
        // In the snapshot restored (see `Snapshots::restore`).
        return Ok(());
    }
    applied.index = entry.index;
    applied.term = entry.term;
    let malformed = |reason: String| StopReason::MalformedEntry { index: entry.index, reason };
    match entry.kind {
        EntryKind::Blank => return Ok(()),
        EntryKind::Membership => {
            applied.membership = Membership::decode(&entry.data).map_err(|e| malformed(e.to_string()))?;
            return Ok(());
        }
        EntryKind::Command => {}
    }
    let (proposer, request_id, data) = open_envelope(&entry.data)
        .ok_or_else(|| malformed(format!("{} bytes, shorter than its envelope", entry.data.len())))?;
    // Plain commands go straight to the state machine; session commands
    // only when new (a retry gets the answer kept).
    let reply = sessions
        .apply_entry(entry.index, data, |command| state_machine.apply(entry.index, command))
        .map_err(|e| match e {
            ApplyError::Envelope(e) => malformed(e.to_string()),
            ApplyError::StateMachine(e) => StopReason::Apply { index: entry.index, error: Arc::new(e) },
        })?;
    if proposer == a.id {
        if let Reply::Refused { session, refusal: SessionRefusal::Expired } = reply {
            *a.expired = Some(session);
        }
        if let Some(done) = a.waiters.remove(request_id) {
            done.complete(match reply {
                Reply::Answer(answer) => Ok(answer),
                Reply::Opened(session) => Ok(session.0.to_le_bytes().to_vec()),
                Reply::Refused { session, refusal } => Err(RequestError::Session { session, refusal }),
            });
        }
    }
    Ok(())
}
