//! Snapshots and log compaction (Raft thesis ch. 5), sans IO.
//!
//! The application writes snapshots and moves their bytes; the core decides
//! when and to whom:
//!
//! - once `snapshot_entries` entries or `snapshot_bytes` bytes were applied
//!   since the last snapshot it asks for one ([`SnapshotAction::Take`]); the
//!   runtime writes it and reports it with
//!   [`handle_snapshot_taken`](Node::handle_snapshot_taken), and the core
//!   drops its log up to `compaction_margin` entries below it;
//! - a follower that needs entries the log no longer holds gets the
//!   snapshot instead ([`SnapshotAction::Send`]); its progress stays in the
//!   Snapshot state, sending nothing else, until the runtime reports the
//!   transfer [sent](Node::handle_snapshot_sent) or
//!   [failed](Node::handle_snapshot_failed);
//! - a follower whose runtime received a snapshot whole and stored it hears
//!   so through [`handle_snapshot_received`](Node::handle_snapshot_received):
//!   the log restarts after the snapshot (keeping the entries after it if
//!   the log holds the snapshot's last entry), and the application restores
//!   its state ([`SnapshotAction::Install`]). This is an input of its own,
//!   not a message: only the receiver's runtime knows that the snapshot's
//!   bytes are on its disk, and a peer that could say so would make the
//!   node drop its log and acknowledge entries it does not hold.

use ::log::{debug, info, warn};

use super::{Node, Role, TERM_LIMIT};
use crate::membership::SnapshotMeta;
use crate::message::{AppendEntriesResponse, MessageBody};
use crate::types::{Instant, LogIndex, NodeId, Term};

/// Snapshot work for the runtime, from [`Node::poll_snapshot`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotAction {
    /// Enough was applied since the last snapshot: write a snapshot of the
    /// application's state (at `applied` or later) and report it with
    /// [`Node::handle_snapshot_taken`].
    Take {
        /// The applied index when the node asked.
        applied: LogIndex,
    },
    /// Send the snapshot `meta` (this node's latest) to the follower `to`,
    /// and report the outcome with [`Node::handle_snapshot_sent`] or
    /// [`Node::handle_snapshot_failed`].
    Send {
        /// The follower.
        to: NodeId,
        /// The snapshot to send.
        meta: SnapshotMeta,
    },
    /// Replace the application's state with the snapshot `meta`, which the
    /// runtime received and stored, then report
    /// [`Node::handle_applied`]`(meta.index)`. Entries after it follow
    /// through [`Node::poll_apply`]; apply them after the restore.
    Install {
        /// The snapshot to restore.
        meta: SnapshotMeta,
    },
}

impl Node {
    /// The latest snapshot this node holds, taken or received.
    pub fn snapshot(&self) -> Option<&SnapshotMeta> {
        self.snapshot.as_ref()
    }

    /// The first index the log still holds; entries below it were compacted
    /// into the snapshot. Storage may drop them too.
    pub fn first_index(&self) -> LogIndex {
        self.log.first_index()
    }

    /// The next snapshot action. Drain after [`poll_send`](Node::poll_send)
    /// and before [`poll_apply`](Node::poll_apply): an `Install` must reach
    /// the application before the entries that follow it.
    pub fn poll_snapshot(&mut self) -> Option<SnapshotAction> {
        self.snapshot_actions.pop_front()
    }

    /// Reports that the application wrote a durable snapshot `meta` of its
    /// state (`meta.index` applied, `meta.membership` the configuration at
    /// that index). The log is compacted up to `compaction_margin` entries
    /// below it, so that followers slightly behind still catch up from the
    /// log. Ignored if not newer than the snapshot the node holds.
    pub fn handle_snapshot_taken(&mut self, meta: SnapshotMeta) {
        self.snapshot_requested = false;
        if meta.index == LogIndex(0) || self.snapshot.as_ref().is_some_and(|s| s.index >= meta.index) {
            return;
        }
        if meta.index > self.log.applied() || meta.index < self.log.first_index().prev() {
            warn!(
                "{} {}: snapshot at {} outside the applied log ({}..={}); ignored",
                self.id(),
                self.term,
                meta.index,
                self.log.first_index().prev(),
                self.log.applied()
            );
            return;
        }
        if self.log.term(meta.index) != Some(meta.term) {
            warn!(
                "{} {}: snapshot at {} names the wrong term {}; ignored",
                self.id(),
                self.term,
                meta.index,
                meta.term
            );
            return;
        }
        debug!("{} {}: snapshot taken at {}", self.id(), self.term, meta.index);
        self.applied_bytes_since_snapshot = 0;
        let compact = LogIndex(meta.index.0.saturating_sub(self.config.compaction_margin));
        self.snapshot = Some(meta);
        self.compact_to(compact);
    }

    /// Reports that the application could not write the snapshot asked
    /// for, for want of space: nothing changes, and the node asks again
    /// once more entries are applied (a snapshot is what lets the log free
    /// space, so it is worth trying again as soon as there may be room).
    pub fn handle_snapshot_not_taken(&mut self) {
        self.snapshot_requested = false;
    }

    fn compact_to(&mut self, index: LogIndex) {
        if index <= self.log.first_index().prev() {
            return;
        }
        self.log.compact_to(index);
        self.configs.compact_to(index);
    }

    /// Reports that the snapshot sent to `peer` arrived whole. The leader
    /// probes the follower just after it.
    pub fn handle_snapshot_sent(&mut self, peer: NodeId) {
        if self.role != Role::Leader {
            return;
        }
        if let Some(p) = self.peer_mut(peer) {
            if p.snapshot_sent() {
                self.replication_pending = true;
            }
        }
    }

    /// Reports that the snapshot sent to `peer` did not get through. The
    /// leader waits for the follower to answer a heartbeat, then tries
    /// again.
    pub fn handle_snapshot_failed(&mut self, peer: NodeId) {
        if self.role != Role::Leader {
            return;
        }
        if let Some(p) = self.peer_mut(peer) {
            p.snapshot_failed();
        }
    }

    /// Asks for a snapshot once enough was applied since the last one.
    pub(super) fn maybe_request_snapshot(&mut self, previously_applied: LogIndex) {
        let applied = self.log.applied();
        // Bytes are counted only when they can trigger a snapshot: this
        // runs for every entry applied.
        let mut index =
            if self.config.snapshot_bytes > 0 { previously_applied.next() } else { applied.next() };
        while index <= applied {
            match self.log.entry(index) {
                Some(e) => self.applied_bytes_since_snapshot += e.size_bytes(),
                None => break,
            }
            index = index.next();
        }
        if self.snapshot_requested {
            return;
        }
        let since = applied.0.saturating_sub(self.snapshot.as_ref().map_or(0, |s| s.index.0));
        let entries_due = self.config.snapshot_entries > 0 && since >= self.config.snapshot_entries;
        let bytes_due = self.config.snapshot_bytes > 0
            && since > 0
            && self.applied_bytes_since_snapshot >= self.config.snapshot_bytes;
        if entries_due || bytes_due {
            self.snapshot_requested = true;
            self.snapshot_actions.push_back(SnapshotAction::Take { applied });
        }
    }

    /// Starts sending the latest snapshot to follower `k`, whose next entry
    /// the log no longer holds.
    pub(super) fn send_snapshot(&mut self, k: usize) {
        let Some(meta) = self.snapshot.clone() else {
            unreachable!("the log is compacted only below a snapshot");
        };
        let p = &mut self.peers[k];
        info!(
            "{}: {} needs entry {}, compacted away: sending snapshot {}",
            self.config.id, p.id, p.next_index, meta.index
        );
        p.become_snapshot(meta.index);
        let to = p.id;
        self.snapshot_actions.push_back(SnapshotAction::Send { to, meta });
    }

    /// Reports that this node's runtime received the snapshot `meta` whole
    /// from `from`, which sent its pieces as leader of `term`, and stored it
    /// durably. The node installs it as Raft's InstallSnapshot (thesis
    /// §5.3): the log restarts after the snapshot, keeping the entries after
    /// it if the log holds the snapshot's last entry with its term; the
    /// application is asked to restore it ([`SnapshotAction::Install`]); and
    /// the leader hears an acknowledgement once the log continues the
    /// snapshot durably.
    ///
    /// The term rules are those of the leader's messages: a newer `term`
    /// makes this node follow `from`; a stale one is answered with this
    /// node's term (the old leader steps down) and the snapshot is ignored.
    /// A snapshot no newer than the commit index changes nothing (it is
    /// acknowledged with the commit index). `from` and `term` come from the
    /// network, so impossible values (from this node, `meta.term` above
    /// `term`, `meta.index` 0) are dropped with a `debug!` line, not
    /// asserted.
    pub fn handle_snapshot_received(&mut self, now: Instant, from: NodeId, term: Term, meta: SnapshotMeta) {
        if from == self.id() || from == NodeId(0) || term > TERM_LIMIT {
            debug!(
                "{} {}: dropped snapshot {} from {} at {}: not a leader's",
                self.id(),
                self.term,
                meta.index,
                from,
                term
            );
            return;
        }
        if meta.term > term || meta.index == LogIndex(0) {
            debug!(
                "{} {}: dropped an impossible snapshot from {} at {}: index {} of term {}",
                self.id(),
                self.term,
                from,
                term,
                meta.index,
                meta.term
            );
            return;
        }
        if !self.admit_leader_term(now, from, term, "snapshot") {
            return;
        }
        if self.role == Role::Leader {
            debug!("{} {}: snapshot from {} in our own term: dropped", self.id(), self.term, from);
            return;
        }
        self.heard_from_leader(now, from);
        let commit = self.log.commit();
        if meta.index <= commit {
            // Nothing new: our log holds all of it, committed.
            let needed = self.write_covering(commit);
            let body = AppendEntriesResponse::Accepted { match_index: commit };
            self.send_after(needed, from, MessageBody::AppendEntriesResponse(body));
            return;
        }
        info!("{} {}: installing snapshot {} from {}", self.id(), self.term, meta.index, from);
        let had_suffix = self.log.last_index() > meta.index;
        let kept = self.log.install_snapshot(meta.index, meta.term);
        match (had_suffix, kept) {
            (true, true) => self.coverage.snapshot_kept_suffix += 1,
            (true, false) => self.coverage.snapshot_over_mismatched_log += 1,
            (false, _) => {}
        }
        let log = &self.log;
        self.configs.entries.retain(|&(i, t, _)| i > meta.index && log.term(i) == Some(t));
        self.configs.base = (meta.index, meta.membership.clone());
        debug!("{} {}: log after the snapshot kept: {}", self.id(), self.term, kept);
        self.membership_changed(now);
        self.commit_changed();
        self.snapshot = Some(meta.clone());
        // The snapshot is durable, and holds committed state only.
        self.matched_leader_to(meta.index);
        self.applied_bytes_since_snapshot = 0;
        self.snapshot_to_persist = Some(meta.clone());
        self.snapshot_actions.push_back(SnapshotAction::Install { meta: meta.clone() });
        // The acknowledgement waits for the write that makes the log
        // continue the snapshot.
        let needed = self.next_persist_id;
        let body = AppendEntriesResponse::Accepted { match_index: meta.index };
        self.send_after(needed, from, MessageBody::AppendEntriesResponse(body));
    }
}
