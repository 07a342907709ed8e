//! Who counts: storage incarnations, bootstrapping, repairing a log that
//! lost committed entries, and halting when the cluster contradicts what
//! this node knows is committed.
//!
//! **Incarnations.** Raft's safety rests on every counted vote and
//! acknowledgement coming from a node that still holds what it promised.
//! A node that lost its disk breaks that silently: back under its old id
//! with an empty log, it would vote for a candidate that lacks committed
//! entries and acknowledge entries on the strength of nothing. So each data
//! directory carries an [`Incarnation`], every message carries its sender's,
//! and a configuration records the one it admitted for each voter. A voter
//! is counted (votes, acknowledgements, read confirmations, CheckQuorum, and
//! through them leases) only when it speaks from that incarnation; a node
//! whose own incarnation is not the admitted one neither campaigns nor
//! votes. It still receives the log, so it can catch up and be re-admitted
//! by a membership change ([`MembershipChange::Readmit`]).
//!
//! **Lost acknowledged entries.** A disk that lies about a sync, or a log
//! restored from an older copy, can leave a node with the same incarnation
//! but a shorter (or older) log than it acknowledged. That node must not
//! let a quorum rely on entries it no longer holds: not the leader's count
//! of acknowledgements, and above all not an election, where its vote
//! would stand for a log it no longer has. Three defences:
//! - Followers answer heartbeats with their last index. A leader that
//!   recorded a higher match index before the heartbeat's round began knows
//!   the follower lost entries: it warns once, forgets that match index (no
//!   commit decision relies on it any more) and repairs the log from where
//!   it now ends. (A rejection at or below the match index cannot be
//!   trusted for this: an old one, overtaken on the way, looks the same; it
//!   no longer triggers a probe at once either, which looped.)
//! - Heartbeats name the term of the entry at the commit index they carry,
//!   an index the follower acknowledged: a follower whose log does not hold
//!   that entry knows it lost acknowledged entries.
//! - Storage keeps, apart from the log, a floor: a position the log held
//!   durably and the latest term (see `storage::reconcile_floor`). A log
//!   that no longer holds the position lost synced entries, reported as
//!   `RecoveredState::repair_to`; a lost term makes the node start after
//!   it, so that it never votes twice in a term.
//!
//! A node that knows it lost entries neither votes nor campaigns until a
//! leader's log check shows its log matching the leader's up to what it
//! lost, or until it knows committed an entry of the leader's own term
//! (then it holds everything ever committed). Its acknowledgements still
//! count: they speak only of entries it holds again.
//!
//! What none of this can see: a node that lost entries acknowledged after
//! its floor was last raised (in the runtime, at most a tenth of a second
//! before the loss), whose leader is gone before its next heartbeat. Its
//! vote then counts as that of a node that never had them. No Raft can
//! tell from inside: the acknowledgement left, the disk forgot it, and only
//! the leader that counted it knew. The simulator raises the floor at every
//! sync, and proves that with it nothing acknowledged is lost.
//!
//! [`MembershipChange::Readmit`]: crate::membership::MembershipChange::Readmit

use ::log::{info, warn};

use super::api::{Admission, BootstrapError, Event};
use super::progress::Progress;
use super::{Node, Role};
use crate::membership::Membership;
use crate::types::{Bytes, Entry, EntryKind, Incarnation, Instant, LogIndex, NodeId, Term};

impl Node {
    /// This node's storage incarnation.
    pub fn incarnation(&self) -> Incarnation {
        self.incarnation
    }

    /// How the configuration in force regards this node.
    pub fn admission(&self) -> Admission {
        self.admission
    }

    /// Why this node halted, if it did (see [`Event::Halted`]).
    pub fn halted(&self) -> Option<&str> {
        self.halted.as_deref()
    }

    /// Starts a brand-new cluster on this brand-new node: writes
    /// `membership` (which must list this node as a voter with its own
    /// incarnation, and every other voter with theirs) as the first entry
    /// of its log, in term 1. Bootstrap one node of a new cluster, or every
    /// initial node with the same configuration; the others start with an
    /// empty configuration and learn it from the first leader. Refused on a
    /// node that has any state: a node that lost its disk must be
    /// re-admitted, never bootstrapped into a second cluster.
    pub fn bootstrap(&mut self, now: Instant, membership: Membership) -> Result<LogIndex, BootstrapError> {
        let empty = self.log.last_index() == LogIndex(0) && self.snapshot.is_none() && self.term == Term(0);
        if !empty || self.halted.is_some() {
            return Err(BootstrapError::NotEmpty);
        }
        let me = self.id();
        if !membership.voters.contains(&me) || membership.incarnation(me) != self.incarnation {
            return Err(BootstrapError::NotAVoter);
        }
        self.term = Term(1);
        self.term_or_vote_changed();
        self.events.push_back(Event::TermChanged { term: self.term });
        let index = LogIndex(1);
        let data = Bytes::from(membership.to_bytes());
        self.log.append(Entry { term: self.term, index, kind: EntryKind::Membership, data });
        self.configs.entries.push((index, self.term, membership));
        self.membership_changed(now);
        self.replication_pending = false;
        self.reset_election_deadline(now);
        info!("{} {}: bootstrapped a new cluster: {}", me, self.term, self.membership());
        Ok(index)
    }

    /// Whether incarnations are being ignored (the injected bug that turns
    /// this whole defence off).
    pub(super) fn ignores_incarnations(&self) -> bool {
        #[cfg(test)]
        return self.config.bugs.ignore_incarnations;
        #[cfg(not(test))]
        false
    }

    /// Whether a voter admitted as `admitted` is counted when it speaks from
    /// `speaker`.
    pub(super) fn admits(&self, admitted: Incarnation, speaker: Incarnation) -> bool {
        self.ignores_incarnations() || admitted.admits(speaker)
    }

    /// Whether this node counts for itself in its configuration: a voter of
    /// some half, speaking from the incarnation admitted there.
    pub(super) fn counts_itself(&self) -> bool {
        let me = self.id();
        if self.ignores_incarnations() {
            return self.voters.contains(me);
        }
        self.voters.counts(me, self.incarnation)
    }

    /// Whether this node may grant votes: not while it is refused (it lost
    /// the storage its admission vouched for), nor while it repairs lost
    /// committed entries.
    pub(super) fn may_vote(&self) -> bool {
        !matches!(self.admission, Admission::Refused { .. }) && !self.repairing() && self.halted.is_none()
    }

    /// Whether this node's log still lacks committed entries it lost.
    pub(super) fn repairing(&self) -> bool {
        self.repair_to > LogIndex(0)
    }

    /// A leader's log check showed this node's log to match the leader's up
    /// to `index` (and the commit index was moved accordingly): once that is
    /// durable, the repair is over if it reaches what was lost, or if this
    /// node now knows committed an entry of the current leader's term (then
    /// it holds every entry ever committed, and what else it lost was never
    /// committed).
    pub(super) fn matched_leader_to(&mut self, index: LogIndex) {
        let commit = self.log.commit();
        let holds_every_commit = commit <= index && self.log.term(commit) == Some(self.term);
        if self.repairing() && (index >= self.repair_to || holds_every_commit) {
            self.repair_write = Some(self.write_covering(index));
            self.check_repaired();
        }
    }

    /// After writes became durable: ends a repair whose entries are.
    pub(super) fn check_repaired(&mut self) {
        if self.repair_write.is_some_and(|w| w <= self.durable_id) {
            info!(
                "{} {}: log repaired (it lost entries up to {}); voting again",
                self.id(),
                self.term,
                self.repair_to
            );
            self.repair_to = LogIndex(0);
            self.repair_write = None;
        }
    }

    /// Recomputes how the configuration regards this node, and reports a
    /// change.
    pub(super) fn update_admission(&mut self) {
        let me = self.id();
        let m = self.configs.current();
        let admission = if self.counts_itself() {
            Admission::Voter
        } else if m.is_voter(me) {
            let admitted =
                if m.voters.contains(&me) { m.incarnation(me) } else { m.outgoing_incarnation(me) };
            Admission::Refused { admitted, ours: self.incarnation }
        } else if m.is_learner(me) {
            Admission::Learner
        } else {
            Admission::NotMember
        };
        if admission != self.admission {
            if let Admission::Refused { .. } = admission {
                warn!("{} {}: {}", me, self.term, admission);
            } else {
                info!("{} {}: now {}", me, self.term, admission);
            }
            self.admission = admission;
            self.events.push_back(Event::AdmissionChanged { admission });
        }
    }

    /// A follower answered this leader: note when, and which incarnation of
    /// it answered. A different incarnation than before is another disk:
    /// what the leader knew of the old one's log (its match index above all)
    /// says nothing of the new one's, so its progress starts over.
    pub(super) fn heard_from_follower(&mut self, now: Instant, from: NodeId, incarnation: Incarnation) {
        let next = self.log.last_index().next();
        let limits = (self.config.inflight_messages_max, self.config.inflight_bytes_max);
        let (me, term) = (self.id(), self.term);
        let is_voter = self.voters.contains(from);
        let counted = self.voters.counts(from, incarnation);
        let ignore = self.ignores_incarnations();
        let Some(p) = self.peer_mut(from) else { return };
        if p.incarnation != incarnation && !ignore {
            if is_voter && !counted {
                warn!(
                    "{me} {term}: {from} answers from storage incarnation {incarnation}, not the one the \
                     configuration admitted: it lost or replaced its disk, and counts in no quorum until \
                     re-admitted (oar member replace {})",
                    from.0
                );
            } else if p.incarnation != Incarnation::UNKNOWN {
                info!("{me} {term}: {from} now answers from storage incarnation {incarnation}");
            }
            if p.incarnation != Incarnation::UNKNOWN {
                *p = Progress::new(from, next, limits);
            }
            p.incarnation = incarnation;
        }
        p.last_heard = Some(now);
    }

    /// Stops taking part for good: see [`Event::Halted`].
    pub(super) fn halt(&mut self, now: Instant, reason: String) {
        if self.halted.is_some() {
            return;
        }
        log::error!("{} {}: halted: {}", self.id(), self.term, reason);
        if self.role != Role::Follower || self.leader.is_some() {
            self.become_follower(now, self.term, None);
        }
        self.election_deadline = None;
        self.halted = Some(reason.clone());
        self.events.push_back(Event::Halted { reason });
    }
}
