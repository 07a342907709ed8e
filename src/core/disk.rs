//! A node whose own disk cannot keep up: full, or stalled.
//!
//! A leader keeps leading while its followers commit without it, so a
//! leader whose disk is full or hangs (no error, no progress: a dying disk,
//! a stuck network volume) would go on accepting proposals it can neither
//! persist nor apply, its memory growing and its clients timing out (the
//! class of etcd#13527 and hashicorp/raft#666). So:
//!
//! - The runtime reports a full disk (a write refused for want of space:
//!   nothing written, tried again later) with
//!   [`handle_disk_full`](Node::handle_disk_full); the node counts its disk
//!   as stalled by itself when writes stay outstanding for
//!   [`Config::persist_stall_timeout`](crate::Config::persist_stall_timeout)
//!   with none reported durable.
//! - Meanwhile a leader refuses proposals and membership changes (retryable
//!   errors that name the trouble) and hands leadership to the best caught-up
//!   voter, retrying every election timeout; followers forward proposals as
//!   usual. Reads, heartbeats and elections go on.
//! - Independently, a leader's entries not yet durable on its own disk are
//!   bounded by `uncommitted_bytes_max`, so memory stays bounded however
//!   long a disk hangs before the stall is noticed.

use ::log::{info, warn};

use super::api::{DiskTrouble, Event};
use super::{Node, PersistId, Role};
use crate::types::Instant;

/// What the node watches of its writes to tell a stall.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct PersistWatch {
    /// The durable write when the watch (re)started.
    pub(super) durable: PersistId,
    /// When it (re)started: the first timeout that saw writes outstanding
    /// after the last progress.
    pub(super) since: Option<Instant>,
}

impl Node {
    /// Reports whether this node's storage is out of space: `true` when a
    /// write was refused for want of space (nothing was written; the runtime
    /// tries it again later), `false` once one goes through again.
    pub fn handle_disk_full(&mut self, now: Instant, full: bool) {
        if self.disk_full != full {
            self.disk_full = full;
            self.disk_trouble_changed(now);
        }
    }

    /// What keeps this node's disk from taking writes, if anything.
    pub fn disk_trouble(&self) -> Option<DiskTrouble> {
        if self.disk_full {
            Some(DiskTrouble::Full)
        } else if self.disk_stalled {
            Some(DiskTrouble::Stalled)
        } else {
            None
        }
    }

    /// Whether writes were handed out and are not all durable yet.
    fn writes_outstanding(&self) -> bool {
        self.durable_id.0 + 1 < self.next_persist_id.0
    }

    /// From `handle_timeout`: starts, or judges, the watch on writes.
    pub(super) fn watch_persistence(&mut self, now: Instant) {
        if !self.writes_outstanding() {
            self.persist_watch = PersistWatch { durable: self.durable_id, since: None };
            return;
        }
        if self.persist_watch.durable != self.durable_id || self.persist_watch.since.is_none() {
            self.persist_watch = PersistWatch { durable: self.durable_id, since: Some(now) };
            return;
        }
        let since = self.persist_watch.since.expect("set above");
        if !self.disk_stalled && now.saturating_duration_since(since) >= self.config.persist_stall_timeout {
            warn!(
                "{} {}: no write made durable for {:?} with writes outstanding: the disk is stalled",
                self.id(),
                self.term,
                now.saturating_duration_since(since)
            );
            self.disk_stalled = true;
            self.disk_trouble_changed(now);
        }
        if self.disk_trouble().is_some() {
            self.hand_over_leadership(now);
        }
    }

    /// From `handle_persisted`: progress ends a stall.
    pub(super) fn persistence_progressed(&mut self, now: Instant) {
        self.persist_watch = PersistWatch { durable: self.durable_id, since: None };
        if self.disk_stalled {
            info!("{} {}: writes are durable again: the disk stall is over", self.id(), self.term);
            self.disk_stalled = false;
            self.disk_trouble_changed(now);
        }
    }

    /// When the watch on writes next needs a look: the stall deadline.
    pub(super) fn persist_deadline(&self) -> Option<Instant> {
        if self.disk_stalled || !self.writes_outstanding() {
            return None;
        }
        self.persist_watch.since.map(|since| since + self.config.persist_stall_timeout)
    }

    fn disk_trouble_changed(&mut self, now: Instant) {
        let trouble = self.disk_trouble();
        match trouble {
            Some(t) => warn!("{} {}: {t}", self.id(), self.term),
            None => info!("{} {}: the disk takes writes again", self.id(), self.term),
        }
        self.events.push_back(Event::DiskTroubleChanged { trouble });
        self.hand_over_leadership(now);
    }

    /// A leader whose disk cannot write hands leadership to the voter that
    /// counts and holds the most of its log, if no transfer is under way.
    fn hand_over_leadership(&mut self, now: Instant) {
        if self.role != Role::Leader || self.transfer.is_some() || self.disk_trouble().is_none() {
            return;
        }
        let voters = &self.voters;
        let window = self.config.election_timeout_min;
        let best = self
            .peers
            .iter()
            .filter(|p| voters.counts(p.id, p.incarnation))
            .filter(|p| p.last_heard.is_some_and(|t| now.saturating_duration_since(t) < window))
            .max_by_key(|p| p.match_index)
            .map(|p| p.id);
        if let Some(to) = best {
            info!("{} {}: handing leadership to {} while the disk cannot write", self.id(), self.term, to);
            // Refused only for reasons checked above.
            let _ = self.transfer_leadership(now, to);
        }
    }
}
