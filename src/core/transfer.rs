//! Leadership transfer (thesis §3.10): the leader stops taking proposals,
//! brings the successor's log up to date, and tells it to campaign at once
//! with `TimeoutNow`. Abandoned after an election timeout.

use ::log::{debug, info};

use super::api::{Event, TransferError};
use super::{Node, Role};
use crate::message::MessageBody;
use crate::types::{Instant, NodeId};

/// A transfer under way.
#[derive(Clone, Copy, Debug)]
pub(super) struct Transfer {
    pub(super) to: NodeId,
    pub(super) deadline: Instant,
}

impl Node {
    /// Hands leadership to the voter `to`. Proposals are refused until the
    /// transfer ends: when `to` wins an election (this node then follows it),
    /// or after an election timeout, when the transfer is abandoned and this
    /// node leads on. Both are reported by [`poll_event`](Node::poll_event).
    pub fn transfer_leadership(&mut self, now: Instant, to: NodeId) -> Result<(), TransferError> {
        if self.role != Role::Leader {
            return Err(TransferError::NotLeader { leader_hint: self.leader });
        }
        if to == self.id() {
            return Err(TransferError::ToSelf);
        }
        if !self.voters.contains(to) {
            return Err(TransferError::NotAVoter(to));
        }
        if let Some(t) = self.transfer {
            return Err(TransferError::InProgress { to: t.to });
        }
        info!("{} {}: transferring leadership to {}", self.id(), self.term, to);
        self.transfer = Some(Transfer { to, deadline: now + self.config.election_timeout_max });
        self.events.push_back(Event::TransferStarted { to });
        self.replication_pending = true;
        self.maybe_send_timeout_now();
        Ok(())
    }

    /// Sends `TimeoutNow` once the successor's log matches ours entirely.
    pub(super) fn maybe_send_timeout_now(&mut self) {
        let Some(t) = self.transfer else { return };
        let last = self.log.last_index();
        // Only to a voter that counts: one speaking from another disk than
        // the one admitted could not win, and should not.
        let voters = &self.voters;
        let caught_up = self
            .peers
            .iter()
            .any(|p| p.id == t.to && p.match_index == last && voters.counts(p.id, p.incarnation));
        if caught_up {
            // From here the successor may win before our lease runs out.
            self.lease_given_up = true;
            self.send(t.to, MessageBody::TimeoutNow);
        }
    }

    /// A transfer this node started ended with it stepping down: once the
    /// next leader is known (or this node campaigns itself, `None`), report
    /// it abandoned unless the chosen successor leads.
    pub(super) fn settle_transfer_outcome(&mut self, new_leader: Option<NodeId>) {
        if let Some(to) = self.transfer_outcome.take() {
            if new_leader != Some(to) {
                self.events.push_back(Event::TransferAbandoned { to });
            }
        }
    }

    pub(super) fn check_transfer_deadline(&mut self, now: Instant) {
        if let Some(t) = self.transfer.filter(|t| t.deadline <= now) {
            info!("{} {}: transfer to {} abandoned", self.id(), self.term, t.to);
            self.transfer = None;
            self.events.push_back(Event::TransferAbandoned { to: t.to });
        }
    }

    /// The leader told us to take over: campaign now, without pre-vote and
    /// past the voters' leader lease.
    pub(super) fn on_timeout_now(&mut self, now: Instant, from: NodeId) {
        if self.role != Role::Follower || self.leader != Some(from) {
            debug!("{} {}: TimeoutNow from {} ignored", self.id(), self.term, from);
            return;
        }
        // The same rule as for the election timeout and `campaign()`: a
        // learner or a removed node never stands for election. A leader
        // sends TimeoutNow only to a voter, but its configuration may differ
        // from ours (it removed us, or the message is stale), and a
        // non-voter's campaign in a new term would depose the leader for
        // nothing.
        if !self.may_campaign() {
            debug!(
                "{} {}: TimeoutNow from {} ignored: not a voter of {}",
                self.id(),
                self.term,
                from,
                self.membership()
            );
            return;
        }
        info!("{} {}: leadership handed over by {}", self.id(), self.term, from);
        self.become_candidate_for_transfer(now);
    }
}
