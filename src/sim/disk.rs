//! The simulator's model of what each node has made durable: the writes it
//! synced, and those written since. Nodes really persist through the storage
//! layer ([`crate::storage::Wal`] on a [`crate::storage::SimFs`]); this model
//! is the oracle the checker holds them to. It decides which durability
//! promises a node may make, and after a crash it says which recovered
//! states are honest: the synced writes followed by some prefix of the
//! unsynced ones, the last possibly torn.

use crate::core::{Persist, PersistId};
use crate::types::{Entry, HardState, LogIndex, Term};

/// One node's durable state, as the node's writes define it.
#[derive(Clone, Debug, Default)]
pub(crate) struct SimDisk {
    /// What survives any crash: the hard state, and the log after `base`
    /// (the last entry an installed snapshot covers, and its term).
    pub(crate) hard_state: HardState,
    pub(crate) base: (LogIndex, Term),
    pub(crate) entries: Vec<Entry>,
    /// Written but not synced, oldest first.
    pending: Vec<Persist>,
    /// What the disk held before a fault took it away (a wipe, a log set
    /// back to an older copy), until it holds that much again: its node
    /// acknowledged those entries before the fault, and a leader may still
    /// count those acknowledgements, in flight or already received. The
    /// fault broke the promise, not the leader; see `holds_or_held`.
    ghost: Option<(LogIndex, Term, Vec<Entry>)>,
}

/// A log as the model holds it: the entries after `base`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Model {
    base: (LogIndex, Term),
    entries: Vec<Entry>,
    hs: HardState,
}

impl Model {
    fn term_at(&self, index: LogIndex) -> Option<Term> {
        term_in(self.base, &self.entries, index)
    }

    /// Makes the log continue the snapshot (`index`, `term`), as storage
    /// does for a `Persist` that carries one and at every start.
    fn continue_snapshot(&mut self, index: LogIndex, term: Term) {
        if self.term_at(index) == Some(term) {
            let drop = (index.0 - self.base.0 .0) as usize;
            self.entries.drain(..drop);
        } else {
            self.entries.clear();
        }
        self.base = (index, term);
    }

    fn truncate_from(&mut self, index: LogIndex) {
        let keep = index.0.saturating_sub(self.base.0 .0 + 1) as usize;
        self.entries.truncate(keep);
    }
}

impl SimDisk {
    pub(crate) fn write(&mut self, p: Persist) {
        self.pending.push(p);
    }

    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Whether every unsynced write only moves the commit index forward (no
    /// entries; the synced term and vote): such writes may be reported
    /// durable before they are synced (see `Persist`).
    pub(crate) fn pending_only_commits(&self) -> bool {
        self.pending.iter().all(|p| {
            p.entries.is_empty()
                && p.snapshot.is_none()
                && p.hard_state
                    .is_some_and(|hs| hs.term == self.hard_state.term && hs.vote == self.hard_state.vote)
        })
    }

    fn model(&self) -> Model {
        Model { base: self.base, entries: self.entries.clone(), hs: self.hard_state }
    }

    /// The model, taken out of the disk (to be put back with `set`).
    fn take_model(&mut self) -> Model {
        Model { base: self.base, entries: std::mem::take(&mut self.entries), hs: self.hard_state }
    }

    fn set(&mut self, m: Model) {
        self.base = m.base;
        self.entries = m.entries;
        self.hard_state = m.hs;
    }

    /// Makes every pending write durable; returns the last one's id.
    pub(crate) fn sync(&mut self) -> Option<PersistId> {
        let last = self.pending.last().map(|p| p.id);
        let mut m = self.take_model();
        for p in std::mem::take(&mut self.pending) {
            if let Some(s) = &p.snapshot {
                m.continue_snapshot(s.index, s.term);
            }
            if let Some(first) = p.entries.first() {
                m.truncate_from(first.index);
                m.entries.extend(p.entries.iter().cloned());
            }
            if let Some(next) = p.hard_state {
                m.hs = next;
            }
        }
        self.set(m);
        // The disk made good what a fault took once it holds it all again.
        if let Some((b, t, e)) = &self.ghost {
            let ghost_last = b.plus(e.len() as u64);
            if self.holds(ghost_last, term_in((*b, *t), e, ghost_last)) {
                self.ghost = None;
            }
        }
        last
    }

    /// A crash: returns the writes that were not synced, which the storage
    /// may have kept a prefix of.
    pub(crate) fn crash(&mut self) -> Vec<Persist> {
        std::mem::take(&mut self.pending)
    }

    /// Whether a recovered log is the synced state followed by a prefix of
    /// the `lost` writes (a write's snapshot, then its entries, possibly cut
    /// inside, then its hard state), seen through the durable `snapshot`
    /// the node restarts from: only entries after it count. Anything else
    /// lost a synced write or invented one.
    pub(crate) fn explains(
        &self,
        lost: &[Persist],
        snapshot: Option<(LogIndex, Term)>,
        hard_state: HardState,
        entries: &[Entry],
    ) -> bool {
        let matches = |m: &Model| {
            let mut m = m.clone();
            if let Some((index, term)) = snapshot {
                m.continue_snapshot(index, term);
            }
            m.hs == hard_state && m.entries == entries
        };
        let mut m = self.model();
        if matches(&m) {
            return true;
        }
        for p in lost {
            if let Some(s) = &p.snapshot {
                m.continue_snapshot(s.index, s.term);
                if matches(&m) {
                    return true;
                }
            }
            if let Some(first) = p.entries.first() {
                m.truncate_from(first.index);
                for e in &p.entries {
                    if matches(&m) {
                        return true;
                    }
                    m.entries.push(e.clone());
                }
                if matches(&m) {
                    return true;
                }
            }
            if let Some(next) = p.hard_state {
                m.hs = next;
                if matches(&m) {
                    return true;
                }
            }
        }
        false
    }

    /// The disk is replaced by an empty one.
    pub(crate) fn lose_everything(&mut self) {
        self.keep_ghost();
        self.hard_state = HardState::default();
        self.base = (LogIndex(0), Term(0));
        self.entries.clear();
        self.pending.clear();
    }

    /// The log is set back to an older copy, whose model is `older`.
    pub(crate) fn set_back_to(&mut self, older: SimDisk) {
        self.keep_ghost();
        self.hard_state = older.hard_state;
        self.base = older.base;
        self.entries = older.entries;
        self.pending.clear();
    }

    /// Remembers what the disk holds now as its ghost, unless the ghost
    /// already reaches further.
    fn keep_ghost(&mut self) {
        let last = self.base.0.plus(self.entries.len() as u64);
        let ghost_last = self.ghost.as_ref().map_or(LogIndex(0), |(b, _, e)| b.plus(e.len() as u64));
        if last > ghost_last {
            self.ghost = Some((self.base.0, self.base.1, self.entries.clone()));
        }
    }

    /// Whether a disk fault took something the disk has not made good yet.
    pub(crate) fn has_ghost(&self) -> bool {
        self.ghost.is_some()
    }

    /// Whether the durable state holds `index` with `term`, or held it
    /// before a disk fault that the disk has not yet made good: what a
    /// leader's count of acknowledgements may rely on.
    pub(crate) fn holds_or_held(&self, index: LogIndex, term: Option<Term>) -> bool {
        self.holds(index, term)
            || self.ghost.as_ref().is_some_and(|(b, t, e)| index < *b || term_in((*b, *t), e, index) == term)
    }

    /// After a restart, what the storage recovered is the durable state.
    pub(crate) fn reset(&mut self, hard_state: HardState, base: (LogIndex, Term), entries: Vec<Entry>) {
        self.hard_state = hard_state;
        self.base = base;
        self.entries = entries;
        self.pending.clear();
    }

    /// The durable term at `index`, if the durable log holds it; an index a
    /// durable snapshot covers counts as held.
    pub(crate) fn term_at(&self, index: LogIndex) -> Option<Term> {
        term_in(self.base, &self.entries, index)
    }

    /// Whether the durable state holds `index` with `term`, in the log or
    /// under the snapshot it continues.
    pub(crate) fn holds(&self, index: LogIndex, term: Option<Term>) -> bool {
        index < self.base.0 || self.term_at(index) == term
    }
}

/// The term at `index` of a log continuing `base` with `entries`.
fn term_in(base: (LogIndex, Term), entries: &[Entry], index: LogIndex) -> Option<Term> {
    if index == base.0 {
        return Some(base.1);
    }
    let k = index.0.checked_sub(base.0 .0 + 1)?;
    entries.get(usize::try_from(k).ok()?).map(|e| e.term)
}
