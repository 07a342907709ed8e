//! The test harness's model of a node's disk.

use crate::core::Persist;
use crate::membership::SnapshotMeta;
use crate::types::{Entry, HardState, LogIndex, Term};

/// What a test node has made durable: only writes reported durable land here,
/// so a restart from a `Disk` loses exactly what a crash would.
#[derive(Clone, Debug, Default)]
pub struct Disk {
    pub hard_state: HardState,
    /// The latest snapshot stored, taken or received. The runtime stores a
    /// snapshot durably before its core hears of it, so this runs ahead of
    /// `base` until a write continues it.
    pub snapshot: Option<SnapshotMeta>,
    /// The entry the stored log continues: the last one the snapshot it
    /// continues covers, and its term; `(0, 0)` for a log from index 1.
    pub base: (LogIndex, Term),
    /// The stored log after `base`.
    pub entries: Vec<Entry>,
}

impl Disk {
    pub fn write(&mut self, p: &Persist) {
        if let Some(s) = &p.snapshot {
            assert!(
                self.snapshot.as_ref().is_some_and(|stored| stored.index >= s.index),
                "the log continues snapshot {:?}, which was never stored",
                s.index
            );
            self.continue_snapshot(s.index, s.term);
        }
        if let Some(first) = p.entries.first() {
            assert!(first.index > self.base.0, "a write of entries the snapshot covers");
            self.entries.truncate((first.index.0 - self.base.0 .0 - 1) as usize);
            self.entries.extend(p.entries.iter().cloned());
        }
        if let Some(hs) = p.hard_state {
            self.hard_state = hs;
        }
    }

    /// The term of the stored entry at `index` (or of `base`).
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index == self.base.0 {
            return Some(self.base.1);
        }
        let k = index.0.checked_sub(self.base.0 .0 + 1)?;
        self.entries.get(k as usize).map(|e| e.term)
    }

    /// Makes the stored log continue the snapshot of everything up to
    /// (`index`, `term`), as [`Persist`] asks: keep the entries after it if
    /// the log holds that entry, else start over after it.
    pub fn continue_snapshot(&mut self, index: LogIndex, term: Term) {
        if self.term_at(index) == Some(term) {
            self.entries.drain(..(index.0 - self.base.0 .0) as usize);
        } else {
            self.entries.clear();
        }
        self.base = (index, term);
    }

    /// Stores a snapshot received from a leader, unless a newer one is
    /// stored already.
    pub(super) fn store_snapshot(&mut self, meta: &SnapshotMeta) {
        if self.snapshot.as_ref().is_none_or(|s| s.index < meta.index) {
            self.snapshot = Some(meta.clone());
        }
    }
}
