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
    /// What survives any crash.
    pub(crate) hard_state: HardState,
    pub(crate) entries: Vec<Entry>,
    /// Written but not synced, oldest first.
    pending: Vec<Persist>,
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
                && p.hard_state
                    .is_some_and(|hs| hs.term == self.hard_state.term && hs.vote == self.hard_state.vote)
        })
    }

    /// Makes every pending write durable; returns the last one's id.
    pub(crate) fn sync(&mut self) -> Option<PersistId> {
        let last = self.pending.last().map(|p| p.id);
        for p in std::mem::take(&mut self.pending) {
            apply(&mut self.entries, &mut self.hard_state, &p.entries, p.hard_state);
        }
        last
    }

    /// A crash: returns the writes that were not synced, which the storage
    /// may have kept a prefix of.
    pub(crate) fn crash(&mut self) -> Vec<Persist> {
        std::mem::take(&mut self.pending)
    }

    /// Whether a recovered log is the synced state followed by a prefix of
    /// the `lost` writes (entries before the hard state within a write, and
    /// possibly cut inside a write's entries). Anything else lost a synced
    /// write or invented one.
    pub(crate) fn explains(&self, lost: &[Persist], hard_state: HardState, entries: &[Entry]) -> bool {
        let mut state = self.entries.clone();
        let mut hs = self.hard_state;
        let matches = |state: &[Entry], hs: HardState| hs == hard_state && state == entries;
        if matches(&state, hs) {
            return true;
        }
        for p in lost {
            if let Some(first) = p.entries.first() {
                state.truncate(first.index.0 as usize - 1);
                for e in &p.entries {
                    if matches(&state, hs) {
                        return true;
                    }
                    state.push(e.clone());
                }
                if matches(&state, hs) {
                    return true;
                }
            }
            if let Some(next) = p.hard_state {
                hs = next;
                if matches(&state, hs) {
                    return true;
                }
            }
        }
        false
    }

    /// After a restart, what the storage recovered is the durable state.
    pub(crate) fn reset(&mut self, hard_state: HardState, entries: Vec<Entry>) {
        self.hard_state = hard_state;
        self.entries = entries;
        self.pending.clear();
    }

    /// The durable term at `index`, if the durable log holds it.
    pub(crate) fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index == LogIndex(0) {
            return Some(Term(0));
        }
        self.entries.get(index.0 as usize - 1).map(|e| e.term)
    }
}

fn apply(log: &mut Vec<Entry>, hs: &mut HardState, entries: &[Entry], hard_state: Option<HardState>) {
    if let Some(first) = entries.first() {
        log.truncate(first.index.0 as usize - 1);
        log.extend(entries.iter().cloned());
    }
    if let Some(next) = hard_state {
        *hs = next;
    }
}
