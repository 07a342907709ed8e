//! Requests waiting for an answer, by id, each until a deadline.

use std::collections::{HashMap, VecDeque};

/// Stale deadlines kept before a sweep: below this, sweeping is not worth it.
const STALE_DEADLINES_MIN: usize = 1024;

/// Values waiting under a `u64` id until answered or until their deadline
/// (of any clock type `T`) passes. Every value waits equally long, so
/// deadlines arrive in order and expiring is a look at the front of a queue.
pub(crate) struct Pending<V, T> {
    waiting: HashMap<u64, V>,
    /// Deadlines in arrival order. An id answered early leaves its deadline
    /// behind; those are skipped when they come up, and swept in bulk once
    /// they outnumber the waiting ids four to one, so the queue stays
    /// proportional to what waits.
    deadlines: VecDeque<(T, u64)>,
}

impl<V, T: Copy + Ord> Pending<V, T> {
    pub(crate) fn new() -> Pending<V, T> {
        Pending { waiting: HashMap::new(), deadlines: VecDeque::new() }
    }

    /// Adds `value` under `id` until `deadline`, which must not be earlier
    /// than any deadline added before.
    pub(crate) fn insert(&mut self, id: u64, value: V, deadline: T) {
        debug_assert!(self.deadlines.back().is_none_or(|&(last, _)| last <= deadline));
        self.waiting.insert(id, value);
        self.deadlines.push_back((deadline, id));
        if self.deadlines.len() > STALE_DEADLINES_MIN && self.deadlines.len() > 4 * self.waiting.len() {
            let waiting = &self.waiting;
            self.deadlines.retain(|(_, id)| waiting.contains_key(id));
        }
    }

    /// Takes the value waiting under `id`, if it still waits.
    pub(crate) fn remove(&mut self, id: u64) -> Option<V> {
        self.waiting.remove(&id)
    }

    /// The earliest deadline, if anything waits (or did until answered).
    pub(crate) fn next_deadline(&self) -> Option<T> {
        self.deadlines.front().map(|&(deadline, _)| deadline)
    }

    /// Hands every value whose deadline is at or before `now` to `expired`.
    pub(crate) fn expire(&mut self, now: T, mut expired: impl FnMut(V)) {
        while let Some(&(deadline, id)) = self.deadlines.front() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_front();
            if let Some(value) = self.waiting.remove(&id) {
                expired(value);
            }
        }
    }

    /// How many deadlines are queued, stale ones included.
    #[cfg(test)]
    pub(crate) fn deadlines_len(&self) -> usize {
        self.deadlines.len()
    }

    /// Takes every waiting value.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = V> + '_ {
        self.deadlines.clear();
        self.waiting.drain().map(|(_, value)| value)
    }
}
