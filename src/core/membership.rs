//! Membership changes: which configuration is in force, joint consensus
//! (Raft thesis §4.3), learners.
//!
//! A configuration is in force from the moment its entry is in the log,
//! committed or not: a node always counts the last configuration its log
//! holds. So the node keeps every membership entry of its log (above the
//! compacted prefix) with its index and term, plus the configuration at the
//! start of the log (from the snapshot, or the one the cluster was
//! bootstrapped with). Truncating the log drops the entries it removes and
//! falls back to the one before.

use ::log::{info, warn};

use super::api::MembershipChangeError;
use super::progress::Progress;
use super::quorum::JointVoters;
use super::{Node, Role};
use crate::membership::{Membership, MembershipChange};
use crate::types::{Bytes, Entry, EntryKind, Incarnation, Instant, LogIndex, NodeId, Term};

/// The configurations a node's log holds.
#[derive(Debug, Default)]
pub(crate) struct Configurations {
    /// The configuration at the start of the log, and the index it dates
    /// from (0 for the bootstrap configuration).
    pub(crate) base: (LogIndex, Membership),
    /// Membership entries in the log after `base`, by index.
    pub(crate) entries: Vec<(LogIndex, Term, Membership)>,
}

impl Configurations {
    /// The configuration in force: the last one in the log.
    pub(crate) fn current(&self) -> &Membership {
        self.entries.last().map_or(&self.base.1, |(_, _, m)| m)
    }

    /// The index of the entry that holds the configuration in force.
    pub(crate) fn current_index(&self) -> LogIndex {
        self.entries.last().map_or(self.base.0, |&(i, _, _)| i)
    }

    /// The configuration in force at `index` (at or after the base).
    pub(crate) fn at(&self, index: LogIndex) -> &Membership {
        let k = self.entries.partition_point(|&(i, _, _)| i <= index);
        if k == 0 {
            &self.base.1
        } else {
            &self.entries[k - 1].2
        }
    }

    /// Folds the entries at or below `index` into the base: the log no
    /// longer holds them.
    pub(crate) fn compact_to(&mut self, index: LogIndex) {
        let k = self.entries.partition_point(|&(i, _, _)| i <= index);
        if k > 0 {
            let (i, _, m) = self.entries.drain(..k).next_back().expect("k > 0");
            self.base = (i, m);
        }
    }
}

impl Node {
    /// The configuration in force on this node: the last one its log holds.
    pub fn membership(&self) -> &Membership {
        self.configs.current()
    }

    /// The configuration in force at `index`, for an index from the start
    /// of the log on: what a snapshot covering `index` must record.
    pub fn membership_at(&self, index: LogIndex) -> &Membership {
        self.configs.at(index)
    }

    /// Whether the configuration in force is committed (a new change may be
    /// proposed once it is, and it is not joint).
    pub fn membership_committed(&self) -> bool {
        self.configs.current_index() <= self.log.commit()
    }

    /// Proposes a membership change (see [`MembershipChange`]). A change of
    /// voters appends the joint configuration; this leader appends the final
    /// one by itself once the joint one commits. Learners are added and
    /// removed in one step. Returns the index of the entry appended.
    ///
    /// Only one change at a time: refused while the last one is uncommitted
    /// or joint (but for re-admitting an incoming voter, see below), and
    /// until this leader has committed an entry of its own term (so that no
    /// uncommitted change of an earlier leader is pending unseen: the
    /// single-server-change bug of the thesis' errata).
    pub fn change_membership(
        &mut self,
        now: Instant,
        change: MembershipChange,
    ) -> Result<LogIndex, MembershipChangeError> {
        if self.role != Role::Leader {
            return Err(MembershipChangeError::NotLeader { leader_hint: self.leader });
        }
        if let Some(t) = self.transfer {
            return Err(MembershipChangeError::TransferInProgress { to: t.to });
        }
        if let Some(trouble) = self.disk_trouble() {
            return Err(MembershipChangeError::Disk(trouble));
        }
        if self.log.term(self.log.commit()) != Some(self.term) {
            return Err(MembershipChangeError::NotReady);
        }
        // Re-admitting an incoming voter is the one change a joint
        // configuration takes: C_old stays a half of every configuration in
        // play, so it decides as before, and a voter of C_new that lost its
        // disk mid-change would otherwise leave the cluster in a
        // configuration it can never commit.
        let joint = self.membership().is_joint();
        let rebinds_incoming = matches!(change, MembershipChange::Readmit { id } if joint && self.membership().voters.contains(&id));
        if !rebinds_incoming && (!self.membership_committed() || joint) {
            return Err(MembershipChangeError::InProgress);
        }
        let mut next = if rebinds_incoming {
            self.membership().clone()
        } else {
            self.membership().apply(&change).map_err(MembershipChangeError::Invalid)?
        };
        // A node becomes a voter as the incarnation this leader hears it
        // speak from: the disk that caught up is the one admitted.
        let admit = match change {
            MembershipChange::Promote { id } | MembershipChange::Readmit { id } => Some(id),
            MembershipChange::Replace { promote, .. } => Some(promote),
            MembershipChange::AddLearner { .. } | MembershipChange::Remove { .. } => None,
        };
        if let Some(id) = admit {
            let heard =
                self.peers.iter().find(|p| p.id == id).map_or(Incarnation::UNKNOWN, |p| p.incarnation);
            if heard == Incarnation::UNKNOWN {
                return Err(MembershipChangeError::NotHeard(id));
            }
            if matches!(change, MembershipChange::Readmit { .. })
                && self.membership().incarnation(id) == heard
            {
                return Err(MembershipChangeError::AlreadyAdmitted(id));
            }
            next.bind(id, heard);
        }
        self.check_available(now, &next)?;
        info!("{} {}: membership change {:?}: {}", self.id(), self.term, change, next);
        Ok(self.append_membership(now, next))
    }

    /// Refuses a configuration whose voters (C_new) could not commit: fewer
    /// than a majority of them are admitted as the incarnation they speak
    /// from and were heard within an election timeout. Such a change would
    /// wedge the cluster in a joint configuration it cannot leave (removing
    /// a healthy voter while another has lost its disk, say).
    fn check_available(&self, now: Instant, next: &Membership) -> Result<(), MembershipChangeError> {
        let window = self.config.election_timeout_min;
        let live = next
            .voters
            .iter()
            .filter(|&&id| {
                let admitted = next.incarnation(id);
                if id == self.id() {
                    return self.admits(admitted, self.incarnation);
                }
                self.peers.iter().any(|p| {
                    p.id == id
                        && self.admits(admitted, p.incarnation)
                        && p.last_heard.is_some_and(|t| now.saturating_duration_since(t) < window)
                })
            })
            .count();
        let needed = next.voters.len() / 2 + 1;
        if live < needed {
            return Err(MembershipChangeError::WouldLoseQuorum { live, needed });
        }
        Ok(())
    }

    /// Appends a configuration as leader and puts it in force.
    fn append_membership(&mut self, now: Instant, membership: Membership) -> LogIndex {
        let index = self.log.last_index().next();
        let data = Bytes::from(membership.to_bytes());
        let entry = Entry { term: self.term, index, kind: EntryKind::Membership, data };
        self.append_as_leader(entry);
        self.configs.entries.push((index, self.term, membership));
        self.membership_changed(now);
        index
    }

    /// Records the membership entries among `entries`, just appended to the
    /// log, after dropping those a truncation removed.
    pub(super) fn track_appended(&mut self, now: Instant, entries: &[Entry]) {
        let before = self.configs.current_index();
        let log = &self.log;
        self.configs.entries.retain(|&(i, t, _)| log.term(i) == Some(t));
        let mut changed = self.configs.current_index() != before;
        let from = self.configs.current_index();
        for e in entries.iter().filter(|e| e.kind == EntryKind::Membership && e.index > from) {
            match Membership::decode(&e.data) {
                Ok(m) => {
                    self.configs.entries.push((e.index, e.term, m));
                    changed = true;
                }
                // `check_append` refuses such messages; a log cannot hold one.
                Err(err) => {
                    warn!("{} {}: membership entry {} undecodable: {}", self.id(), self.term, e.index, err)
                }
            }
        }
        if changed {
            self.membership_changed(now);
        }
    }

    /// Rebuilds what depends on the configuration, which changed at `now`:
    /// the voters counted and the followers replicated to (voters and
    /// learners, kept where they continue).
    pub(super) fn membership_changed(&mut self, now: Instant) {
        let m = self.configs.current();
        let incoming: Vec<_> = m.voters.iter().map(|&id| (id, m.incarnation(id))).collect();
        let outgoing: Vec<_> = m.outgoing.iter().map(|&id| (id, m.outgoing_incarnation(id))).collect();
        let me = self.id();
        let members: Vec<NodeId> = m.members().filter(|&id| id != me).collect();
        let voters_before = std::mem::replace(&mut self.voters, JointVoters::new(&incoming, &outgoing));
        #[cfg(test)]
        {
            self.voters.outgoing_ignored = self.config.bugs.joint_counts_only_incoming;
        }
        let mut old = std::mem::take(&mut self.peers).into_iter().peekable();
        let next = self.log.last_index().next();
        let limits = (self.config.inflight_messages_max, self.config.inflight_bytes_max);
        for id in members {
            while old.peek().is_some_and(|p| p.id < id) {
                old.next();
            }
            match old.peek() {
                Some(p) if p.id == id => self.peers.push(old.next().expect("peeked")),
                _ => self.peers.push(Progress::new(id, next, limits)),
            }
            // CheckQuorum gives a voter that joins mid-term what every voter
            // gets when a leader takes office: an election timeout to answer
            // before it counts as absent. Counted absent at once (never
            // heard, or a learner that was silent while it did not count), a
            // new voter that some quorum needs deposes a healthy leader.
            if self.role == Role::Leader && self.voters.contains(id) && !voters_before.contains(id) {
                let p = self.peers.last_mut().expect("pushed just above");
                p.last_heard = Some(p.last_heard.map_or(now, |t| t.max(now)));
            }
        }
        self.replication_pending = true;
        self.update_admission();
    }

    /// After the commit index moved, as leader: leave a joint configuration
    /// once it commits, and step down once a configuration without this
    /// node as voter commits.
    pub(super) fn after_commit_for_membership(&mut self, now: Instant) {
        if self.role != Role::Leader || !self.membership_committed() {
            return;
        }
        if self.membership().is_joint() {
            let next = self.membership().leave_joint();
            info!("{} {}: joint configuration committed; moving to {}", self.id(), self.term, next);
            self.append_membership(now, next);
        } else if !self.membership().voters.contains(&self.id()) {
            info!("{} {}: no longer a voter; stepping down", self.id(), self.term);
            self.become_follower(now, self.term, None);
        }
    }

    /// Whether this node may stand for election: only a voter of the
    /// configuration in force, admitted as this node's incarnation, with no
    /// committed entries missing (a learner, a removed node, one waiting to
    /// be added, one that lost its disk or part of its log never
    /// campaigns).
    pub(super) fn may_campaign(&self) -> bool {
        self.counts_itself() && !self.repairing() && self.halted.is_none()
    }
}
