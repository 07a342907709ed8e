//! A simulated disk: writes are volatile until synced, and a crash keeps
//! only what was synced plus an arbitrary prefix of what was not, the last
//! write possibly torn.

use crate::core::{Persist, PersistId};
use crate::rng::Rng;
use crate::types::{Entry, HardState, LogIndex, Term};

/// One node's disk.
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

    /// Makes every pending write durable; returns the last one's id.
    pub(crate) fn sync(&mut self) -> Option<PersistId> {
        let last = self.pending.last().map(|p| p.id);
        for p in std::mem::take(&mut self.pending) {
            self.apply(&p.entries, p.hard_state);
        }
        last
    }

    /// Loses what a power cut may lose: a random prefix of the pending writes
    /// survives, and the write after it may survive torn (some of its entries,
    /// never its hard state, which is stored after them).
    pub(crate) fn crash(&mut self, rng: &mut Rng) -> CrashLoss {
        let pending = std::mem::take(&mut self.pending);
        let keep = rng.below(pending.len() as u64 + 1) as usize;
        for p in &pending[..keep] {
            self.apply(&p.entries, p.hard_state);
        }
        let mut torn = false;
        if let Some(p) = pending.get(keep) {
            if !p.entries.is_empty() && rng.chance(1, 2) {
                let k = rng.below(p.entries.len() as u64 + 1) as usize;
                self.apply(&p.entries[..k], None);
                torn = true;
            }
        }
        CrashLoss { writes_lost: pending.len() - keep, torn }
    }

    fn apply(&mut self, entries: &[Entry], hard_state: Option<HardState>) {
        if let Some(first) = entries.first() {
            self.entries.truncate(first.index.0 as usize - 1);
            self.entries.extend(entries.iter().cloned());
        }
        if let Some(hs) = hard_state {
            self.hard_state = hs;
        }
    }

    /// The durable term at `index`, if the durable log holds it.
    pub(crate) fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index == LogIndex(0) {
            return Some(Term(0));
        }
        self.entries.get(index.0 as usize - 1).map(|e| e.term)
    }
}

/// What a crash destroyed, for the trace.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CrashLoss {
    pub(crate) writes_lost: usize,
    pub(crate) torn: bool,
}
