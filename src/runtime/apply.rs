//! The apply thread: runs the state machine, answers the callers waiting
//! for their commands, and answers queries.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use log::error;

use super::{open_envelope, Completion, RequestError, Shared, StateMachine};
use crate::types::{Entry, EntryKind, LogIndex};

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
    /// Fail every waiter with this reason and exit.
    Stop(String),
}

/// What the apply thread reports back.
pub(crate) enum FromApply {
    /// Every entry up to here is applied.
    Applied(LogIndex),
    /// The state machine refused an entry; the node must stop.
    Failed(String),
}

/// A caller waiting for its command; its deadline is in the expiry queue.
struct Waiter {
    done: Completion,
}

pub(crate) fn run<S: StateMachine>(
    mut state_machine: S,
    inbox: Receiver<ToApply>,
    outbox: Sender<FromApply>,
    shared: Arc<Shared>,
) {
    let id = shared.id;
    let timeout = shared.request_timeout;
    let mut waiters: HashMap<u64, Waiter> = HashMap::new();
    // Request ids in registration order, to expire the oldest first; an id
    // already answered is skipped when it comes up.
    let mut expiry: VecDeque<(Instant, u64)> = VecDeque::new();
    let stop_reason = loop {
        let next_expiry = expiry.front().map(|&(deadline, _)| deadline);
        let message = match next_expiry {
            Some(deadline) => inbox.recv_timeout(deadline.saturating_duration_since(Instant::now())),
            None => inbox.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match message {
            Ok(ToApply::Entries(entries)) => {
                let Some(last) = entries.last().map(|e| e.index) else { continue };
                let applied = entries.iter().try_for_each(|entry| {
                    apply_one(&mut state_machine, entry, id, &mut waiters)
                        .map_err(|reason| format!("entry {} cannot be applied: {reason}", entry.index))
                });
                if let Err(reason) = applied {
                    error!("{id}: stopping the node: {reason}");
                    let _ = outbox.send(FromApply::Failed(reason.clone()));
                    shared.wake();
                    break reason;
                }
                shared.counters.applied.fetch_add(entries.len() as u64, Ordering::Relaxed);
                if outbox.send(FromApply::Applied(last)).is_err() {
                    break "the event loop stopped".to_string();
                }
                shared.wake();
            }
            Ok(ToApply::Wait(batch)) => {
                let deadline = Instant::now() + timeout;
                for (request_id, done) in batch {
                    waiters.insert(request_id, Waiter { done });
                    expiry.push_back((deadline, request_id));
                }
            }
            Ok(ToApply::Query { query, done }) => done.complete(Ok(state_machine.query(&query))),
            Ok(ToApply::Stop(reason)) => break reason,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break "the event loop stopped".to_string(),
        }
        expire(&mut waiters, &mut expiry, Instant::now());
    };
    for (_, waiter) in waiters.drain() {
        waiter.done.complete(Err(RequestError::Stopped(stop_reason.clone())));
    }
    // Whatever the event loop sent before it learned of the stop.
    for message in inbox.try_iter() {
        let stopped = || Err(RequestError::Stopped(stop_reason.clone()));
        match message {
            ToApply::Wait(batch) => batch.into_iter().for_each(|(_, done)| done.complete(stopped())),
            ToApply::Query { done, .. } => done.complete(stopped()),
            ToApply::Entries(_) | ToApply::Stop(_) => {}
        }
    }
}

fn apply_one<S: StateMachine>(
    state_machine: &mut S,
    entry: &Entry,
    id: crate::types::NodeId,
    waiters: &mut HashMap<u64, Waiter>,
) -> Result<(), String> {
    if entry.kind == EntryKind::Blank {
        return Ok(());
    }
    let (proposer, request_id, command) = open_envelope(&entry.data)
        .ok_or_else(|| format!("{} bytes, shorter than its envelope", entry.data.len()))?;
    let answer = state_machine.apply(entry.index, command)?;
    if proposer == id {
        if let Some(waiter) = waiters.remove(&request_id) {
            waiter.done.complete(Ok(answer));
        }
    }
    Ok(())
}

/// Answers `Timeout` to every waiter whose deadline passed.
fn expire(waiters: &mut HashMap<u64, Waiter>, expiry: &mut VecDeque<(Instant, u64)>, now: Instant) {
    while let Some(&(deadline, request_id)) = expiry.front() {
        if deadline > now {
            break;
        }
        expiry.pop_front();
        if let Some(waiter) = waiters.remove(&request_id) {
            waiter.done.complete(Err(RequestError::Timeout));
        }
    }
    // Ids answered early leave stale deadlines behind; drop them in bulk
    // once they dominate, so the queue stays proportional to the waiters.
    if expiry.len() > 1024 && expiry.len() > 4 * waiters.len() {
        expiry.retain(|(_, request_id)| waiters.contains_key(request_id));
    }
}
