//! The core's view of the replicated log: every entry since the last
//! snapshot (less the part compacted away), which of them are durable,
//! committed and applied, and which are still to be handed to storage.
//!
//! ```text
//!   offset | ........ applied .. apply_cursor .. commit ........ last_index
//!   offset | ... persisted | unstable_from ..................... last_index
//! ```
//!
//! Entries up to `offset` are gone: a snapshot covers them, and `offset_term`
//! remembers the term of the last one so that appends right after it can
//! still be checked.
//!
//! `persisted` is the durable prefix that equals this log: a write that is
//! durable but was since overwritten by a truncation does not count above the
//! truncation point.

use std::collections::VecDeque;

use crate::core::PersistId;
use crate::types::{Entry, LogIndex, Term};

/// The log as the core sees it.
#[derive(Debug)]
pub(crate) struct RaftLog {
    /// `entries[k]` has index `offset + 1 + k`; indexes are consecutive and
    /// terms never decrease.
    entries: VecDeque<Entry>,
    /// The index just before the first entry held (0: the empty prefix).
    offset: LogIndex,
    /// The term of the entry at `offset` (0 at index 0).
    offset_term: Term,
    /// The highest index known committed. Never decreases; `<= last_index`.
    commit: LogIndex,
    /// The highest index the application reported applied.
    applied: LogIndex,
    /// The highest index handed out by `next_to_apply`;
    /// `applied <= apply_cursor <= min(commit, persisted)`.
    apply_cursor: LogIndex,
    /// Entries up to here are durable and equal to ours; `< unstable_from`.
    persisted: LogIndex,
    /// Entries from here on have not been handed to storage yet.
    unstable_from: LogIndex,
    /// Writes handed to storage and not yet durable, oldest first, each with
    /// the last index it makes durable (capped by later truncations).
    writes_in_flight: VecDeque<(PersistId, LogIndex)>,
    /// Conflicting suffixes truncated so far (see [`super::Coverage`]).
    truncations: u64,
}

/// Why entries offered by a leader could not be appended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AppendError {
    /// No entry with the leader's `prev_log_term` at `prev_log_index`.
    Mismatch,
    /// The entries conflict with a committed entry: only a faulty or
    /// malicious sender can cause this.
    ConflictsWithCommitted(LogIndex),
}

impl RaftLog {
    /// A log holding `entries` (consecutive after `base`, the last entry a
    /// snapshot covers, and its term), all durable.
    pub(crate) fn recovered(
        base: (LogIndex, Term),
        entries: Vec<Entry>,
        commit: LogIndex,
        applied: LogIndex,
    ) -> RaftLog {
        let last = base.0.plus(entries.len() as u64);
        // `applied` may lie below the snapshot: the application restores it
        // first, and nothing below it is handed out.
        assert!(commit <= last && applied <= commit && base.0 <= commit);
        RaftLog {
            entries: entries.into(),
            offset: base.0,
            offset_term: base.1,
            commit,
            applied,
            apply_cursor: applied.max(base.0),
            persisted: last,
            unstable_from: last.next(),
            writes_in_flight: VecDeque::new(),
            truncations: 0,
        }
    }

    /// Conflicting suffixes truncated since the log was recovered.
    pub(crate) fn truncations(&self) -> u64 {
        self.truncations
    }

    pub(crate) fn last_index(&self) -> LogIndex {
        self.offset.plus(self.entries.len() as u64)
    }

    pub(crate) fn last_term(&self) -> Term {
        self.entries.back().map_or(self.offset_term, |e| e.term)
    }

    /// The first index held: entries below it were compacted away.
    pub(crate) fn first_index(&self) -> LogIndex {
        self.offset.next()
    }

    pub(crate) fn commit(&self) -> LogIndex {
        self.commit
    }

    pub(crate) fn applied(&self) -> LogIndex {
        self.applied
    }

    /// Bytes (as [`Entry::size_bytes`] counts them) of the entries not yet
    /// durable.
    pub(crate) fn unpersisted_bytes(&self) -> u64 {
        let from = (self.persisted.0.max(self.offset.0) - self.offset.0) as usize;
        self.entries.iter().skip(from).map(Entry::size_bytes).sum()
    }

    pub(crate) fn persisted(&self) -> LogIndex {
        self.persisted
    }

    /// The term of the entry at `index`; `Term(0)` for index 0, `None` past
    /// the end or below the compacted prefix.
    pub(crate) fn term(&self, index: LogIndex) -> Option<Term> {
        if index == self.offset {
            return Some(self.offset_term);
        }
        self.entry(index).map(|e| e.term)
    }

    pub(crate) fn entry(&self, index: LogIndex) -> Option<&Entry> {
        let k = index.0.checked_sub(self.offset.0 + 1)?;
        self.entries.get(usize::try_from(k).ok()?)
    }

    /// Whether a candidate whose log ends at (`last_index`, `last_term`) is at
    /// least as up to date as this log (Raft §5.4.1).
    pub(crate) fn is_up_to_date(&self, last_index: LogIndex, last_term: Term) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }

    /// The largest index at or below `index` whose term is at most `term`,
    /// with that term. Used on both sides of fast backtracking: no index above
    /// the answer can match a log whose entry at `index` has term `term`.
    pub(crate) fn find_conflict_by_term(&self, index: LogIndex, term: Term) -> (LogIndex, Term) {
        let limit = index.min(self.last_index());
        if limit <= self.offset {
            return (self.offset, self.offset_term);
        }
        // Terms never decrease along the log, so the entries with a term at
        // most `term` are a prefix: binary search instead of walking back.
        let within = (limit.0 - self.offset.0) as usize;
        let at_most = self.entries.partition_point(|e| e.term <= term).min(within);
        let i = self.offset.plus(at_most as u64);
        (i, self.term(i).unwrap_or(self.offset_term))
    }

    /// Drops the entries up to `index`, which a snapshot covers and the
    /// application has applied.
    pub(crate) fn compact_to(&mut self, index: LogIndex) {
        if index <= self.offset {
            return;
        }
        assert!(index <= self.applied && index <= self.persisted, "compacting beyond applied or durable");
        let term = self.term(index).expect("a compacted index is in the log");
        self.entries.drain(..(index.0 - self.offset.0) as usize);
        self.offset = index;
        self.offset_term = term;
    }

    /// Makes the log start after a snapshot of everything up to (`index`,
    /// `term`), received from a leader and durable already. If the log holds
    /// that entry, the entries after it stay (log matching says they are
    /// the leader's too up to wherever they diverge, which later appends
    /// sort out); otherwise they all go. Returns whether the suffix stayed.
    pub(crate) fn install_snapshot(&mut self, index: LogIndex, term: Term) -> bool {
        assert!(index > self.commit, "a snapshot at or below the commit index is not installed");
        let keep = self.term(index) == Some(term);
        if keep {
            self.entries.drain(..(index.0 - self.offset.0) as usize);
        } else {
            self.entries.clear();
            self.persisted = index;
            self.unstable_from = index.next();
            for (_, last) in self.writes_in_flight.iter_mut() {
                *last = (*last).min(index);
            }
        }
        self.offset = index;
        self.offset_term = term;
        self.commit = index;
        self.apply_cursor = self.apply_cursor.max(index);
        // The snapshot stands in for every entry it covers, durably.
        self.persisted = self.persisted.max(index);
        self.unstable_from = self.unstable_from.max(index.next());
        keep
    }

    /// Appends entries created by this node as leader.
    pub(crate) fn append(&mut self, entry: Entry) {
        assert_eq!(entry.index, self.last_index().next());
        assert!(entry.term >= self.last_term());
        self.entries.push_back(entry);
    }

    /// Appends entries a leader sent after (`prev_index`, `prev_term`),
    /// truncating a conflicting suffix (Raft §5.3). Returns the index of the
    /// last entry the message vouches for.
    pub(crate) fn try_append(
        &mut self,
        prev_index: LogIndex,
        prev_term: Term,
        entries: &[Entry],
    ) -> Result<LogIndex, AppendError> {
        if prev_index < self.offset {
            // A snapshot covers the start: committed entries, the same in
            // every leader's log. Check the one at the offset, then go on
            // from there.
            let skip = (self.offset.0 - prev_index.0) as usize;
            let Some(at_offset) = entries.get(skip - 1) else {
                return Ok(prev_index.plus(entries.len() as u64));
            };
            if at_offset.term != self.offset_term {
                return Err(AppendError::ConflictsWithCommitted(self.offset));
            }
            return self.try_append(self.offset, self.offset_term, &entries[skip..]);
        }
        if self.term(prev_index) != Some(prev_term) {
            return Err(AppendError::Mismatch);
        }
        let last_new = prev_index.plus(entries.len() as u64);
        let first_new =
            entries.iter().position(|e| self.term(e.index) != Some(e.term)).unwrap_or(entries.len());
        let Some(new) = entries.get(first_new..).filter(|s| !s.is_empty()) else {
            return Ok(last_new);
        };
        let at = new[0].index;
        if at <= self.commit {
            return Err(AppendError::ConflictsWithCommitted(at));
        }
        if at <= self.last_index() {
            self.truncate_from(at);
            self.truncations += 1;
        }
        self.entries.extend(new.iter().cloned());
        Ok(last_new)
    }

    /// Drops every entry at or after `index`.
    fn truncate_from(&mut self, index: LogIndex) {
        assert!(index > self.commit && index > self.offset);
        let keep = (index.0 - self.offset.0 - 1) as usize;
        self.entries.truncate(keep);
        let below = index.prev();
        self.persisted = self.persisted.min(below);
        self.unstable_from = self.unstable_from.min(index);
        for (_, last) in self.writes_in_flight.iter_mut() {
            *last = (*last).min(below);
        }
    }

    /// Clones up to `bytes_max` bytes of entries starting at `from` (always at
    /// least one entry if there is one) into `out`.
    pub(crate) fn entries_from(&self, from: LogIndex, bytes_max: u64, out: &mut Vec<Entry>) -> u64 {
        let mut bytes = 0;
        let mut index = from;
        while let Some(e) = self.entry(index) {
            let size = e.size_bytes();
            if !out.is_empty() && bytes + size > bytes_max {
                break;
            }
            bytes += size;
            out.push(e.clone());
            index = index.next();
        }
        bytes
    }

    /// Raises the commit index to `index` if that is higher. Returns whether
    /// it changed.
    pub(crate) fn commit_to(&mut self, index: LogIndex) -> bool {
        if index <= self.commit {
            return false;
        }
        assert!(index <= self.last_index(), "commit {index} beyond last {}", self.last_index());
        self.commit = index;
        true
    }

    /// Whether there are entries not yet handed to storage.
    pub(crate) fn has_unstable(&self) -> bool {
        self.unstable_from <= self.last_index()
    }

    /// Hands the unstable entries to storage as write `id`.
    pub(crate) fn take_unstable(&mut self, id: PersistId, out: &mut Vec<Entry>) {
        let mut index = self.unstable_from;
        while let Some(e) = self.entry(index) {
            out.push(e.clone());
            index = index.next();
        }
        self.unstable_from = index;
        self.writes_in_flight.push_back((id, index.prev()));
    }

    /// Records that writes up to `id` are durable.
    pub(crate) fn persisted_to(&mut self, id: PersistId) {
        while let Some(&(write, last)) = self.writes_in_flight.front() {
            if write > id {
                break;
            }
            self.writes_in_flight.pop_front();
            self.persisted = self.persisted.max(last);
        }
    }

    /// Whether `index` is part of the durable prefix, or else whether it will
    /// be once the writes already handed out are durable.
    pub(crate) fn durability_of(&self, index: LogIndex) -> Durability {
        if index <= self.persisted {
            Durability::Durable
        } else if index < self.unstable_from {
            Durability::InFlight
        } else {
            Durability::Unstable
        }
    }

    /// The next committed, durable entry for the application, if any.
    pub(crate) fn next_to_apply(&mut self) -> Option<Entry> {
        if self.apply_cursor >= self.commit.min(self.persisted) {
            return None;
        }
        let next = self.apply_cursor.next();
        let entry = self.entry(next)?.clone();
        self.apply_cursor = next;
        Some(entry)
    }

    /// Records that the application applied everything up to `index`.
    pub(crate) fn applied_to(&mut self, index: LogIndex) {
        assert!(
            index <= self.apply_cursor,
            "handle_applied({index}) but only up to {} was handed out by poll_apply",
            self.apply_cursor
        );
        self.applied = self.applied.max(index);
    }

    /// Checks the invariants written next to the fields. O(entries).
    pub(crate) fn check_invariants(&self) {
        assert!(self.applied <= self.apply_cursor);
        assert!(self.offset <= self.apply_cursor && self.offset <= self.persisted);
        assert!(self.apply_cursor <= self.commit.min(self.persisted));
        assert!(self.commit <= self.last_index());
        assert!(self.persisted < self.unstable_from);
        assert!(self.unstable_from <= self.last_index().next());
        let mut prev_term = Term(0);
        for (k, e) in self.entries.iter().enumerate() {
            assert_eq!(e.index, self.offset.plus(k as u64 + 1));
            assert!(e.term >= prev_term, "term decreases at {}", e.index);
            prev_term = e.term;
        }
        let mut prev_id = PersistId(0);
        for &(id, last) in &self.writes_in_flight {
            assert!(id > prev_id && last < self.unstable_from);
            prev_id = id;
        }
    }
}

/// Where an index stands on its way to disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Durability {
    /// Durable already.
    Durable,
    /// In a write handed to storage, not yet reported durable.
    InFlight,
    /// Not yet handed to storage: it will be in the next write.
    Unstable,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Bytes, EntryKind};

    fn entry(index: u64, term: u64) -> Entry {
        Entry { term: Term(term), index: LogIndex(index), kind: EntryKind::Command, data: Bytes::new() }
    }

    /// A log after a snapshot at (10, t2), holding 11 and 12 of term 2.
    fn after_snapshot() -> RaftLog {
        RaftLog::recovered(
            (LogIndex(10), Term(2)),
            vec![entry(11, 2), entry(12, 2)],
            LogIndex(12),
            LogIndex(12),
        )
    }

    #[test]
    fn an_append_from_below_the_snapshot_is_checked_at_the_snapshot_and_goes_on_from_there() {
        let mut log = after_snapshot();
        // A leader probing at 8 (its follower's snapshot is newer than it
        // knows): the entries up to 10 are committed, so only the one at the
        // snapshot's index is checked.
        let entries: Vec<Entry> =
            [(9, 1), (10, 2), (11, 2), (12, 2), (13, 2)].map(|(i, t)| entry(i, t)).into();
        assert_eq!(log.try_append(LogIndex(8), Term(1), &entries), Ok(LogIndex(13)));
        assert_eq!((log.first_index(), log.last_index()), (LogIndex(11), LogIndex(13)));
        // Entries that end below the snapshot say nothing new.
        assert_eq!(log.try_append(LogIndex(5), Term(1), &entries[..2]), Ok(LogIndex(7)));
        assert_eq!(log.last_index(), LogIndex(13));
        log.check_invariants();
    }

    #[test]
    fn an_append_that_contradicts_the_snapshot_is_refused() {
        let mut log = after_snapshot();
        let entries = [entry(10, 3), entry(11, 3)];
        assert_eq!(
            log.try_append(LogIndex(9), Term(1), &entries),
            Err(AppendError::ConflictsWithCommitted(LogIndex(10)))
        );
        assert_eq!(log.last_index(), LogIndex(12));
    }
}
