//! Terms, votes and roles: Raft §5.1–§5.2, with PreVote (thesis §9.6),
//! CheckQuorum and the leader lease on votes (thesis §4.2.3, §6.2).

use std::time::Duration;

use ::log::{debug, info};

use super::api::Event;
use super::progress::Progress;
use super::quorum::VoteResult;
use super::{Node, Role};
use crate::message::{HeartbeatResponse, Message, MessageBody, RequestVote, RequestVoteResponse};
use crate::types::{Entry, EntryKind, Incarnation, Instant, NodeId, Term};

impl Node {
    /// Applies the rules every message goes through before its own handler
    /// (Figure 2, "all servers"): adopt a newer term, answer a stale sender so
    /// that it catches up, refuse to be disrupted while a leader is alive.
    /// Returns whether the message should be handled further.
    pub(super) fn admit_term(&mut self, now: Instant, msg: &Message) -> bool {
        if matches!(msg.body, MessageBody::AppendEntries(_) | MessageBody::Heartbeat(_)) {
            return self.admit_leader_term(now, msg.from, msg.term, msg.body.name());
        }
        if msg.term > self.term {
            match &msg.body {
                MessageBody::RequestVote(req) => {
                    if !req.leadership_transfer && self.in_leader_lease(now) {
                        debug!(
                            "{} {}: ignored {} from {} for {}: a leader is alive",
                            self.id(),
                            self.term,
                            msg.body.name(),
                            msg.from,
                            msg.term
                        );
                        return false;
                    }
                    // A pre-vote names the term the sender would campaign in;
                    // it changes nothing here.
                    if !req.pre_vote {
                        self.become_follower(now, msg.term, None);
                    }
                }
                // A granted pre-vote carries the prospective term.
                MessageBody::RequestVoteResponse(resp) if resp.pre_vote && resp.granted => {}
                _ => self.become_follower(now, msg.term, None),
            }
            return true;
        }
        if msg.term < self.term {
            if let MessageBody::RequestVote(req) = &msg.body {
                let body = RequestVoteResponse { pre_vote: req.pre_vote, granted: false };
                self.send(msg.from, MessageBody::RequestVoteResponse(body));
            }
            debug!(
                "{} {}: stale {} from {} at {}",
                self.id(),
                self.term,
                msg.body.name(),
                msg.from,
                msg.term
            );
            return false;
        }
        true
    }

    /// The term rules for what only a leader sends (AppendEntries, a
    /// heartbeat, a snapshot): a newer term makes this node follow the
    /// sender; a stale one is answered with our term, so that the deposed
    /// leader steps down, and goes no further. `what` names the input for
    /// the log. Returns whether it should be handled further.
    pub(super) fn admit_leader_term(&mut self, now: Instant, from: NodeId, term: Term, what: &str) -> bool {
        if term > self.term {
            self.become_follower(now, term, Some(from));
            return true;
        }
        if term < self.term {
            // A deposed leader, or one cut off for a while: our term in the
            // answer makes it step down. With CheckQuorum this is also what
            // frees a node stuck at a higher term (it answers the leader's
            // heartbeats with its term, forcing a new election).
            let body =
                HeartbeatResponse { round: 0, last_index: self.log.last_index(), disk: self.disk_trouble() };
            self.send(from, MessageBody::HeartbeatResponse(body));
            debug!("{} {}: stale {} from {} at {}", self.id(), self.term, what, from, term);
            return false;
        }
        true
    }

    /// Whether this node believes a leader is alive: then it refuses votes,
    /// so a node that was cut off cannot depose a healthy leader when it comes
    /// back. Only with CheckQuorum: without it, a deposed leader that can still
    /// reach this node could hold the lease up forever.
    ///
    /// The lease outlives a change of term: a follower that answered a
    /// leader's heartbeat keeps refusing for `election_timeout_min` even if
    /// some other message (a stale reply, a rejected pre-vote) taught it a
    /// newer term meanwhile, since that leader's lease counts on it.
    pub(super) fn in_leader_lease(&self, now: Instant) -> bool {
        self.config.check_quorum
            && (self.role == Role::Leader || self.vote_lease_until.is_some_and(|until| now < until))
    }

    /// Heard from a live leader at `now`: refuse votes for a while.
    pub(super) fn extend_vote_lease(&mut self, now: Instant) {
        let until = now + self.config.election_timeout_min;
        self.vote_lease_until = Some(self.vote_lease_until.map_or(until, |t| t.max(until)));
    }

    pub(super) fn on_request_vote(&mut self, now: Instant, from: NodeId, term: Term, req: RequestVote) {
        let up_to_date = self.log.is_up_to_date(req.last_log_index, req.last_log_term);
        if !up_to_date {
            self.coverage.vote_refused_for_stale_log += 1;
        }
        #[cfg(test)]
        let up_to_date = up_to_date || self.config.bugs.vote_ignores_log;
        // A node whose log may lack entries its admission vouched for (it
        // lost its disk, or committed entries it held) must not help elect
        // anyone: its log is no longer the one its vote would stand for.
        let up_to_date = up_to_date && (self.may_vote() || self.ignores_incarnations());
        if req.pre_vote {
            let granted = term > self.term && up_to_date;
            let answer_term = if granted { term } else { self.term };
            debug!("{} {}: pre-vote for {} at {}: {}", self.id(), self.term, from, term, granted);
            let body = MessageBody::RequestVoteResponse(RequestVoteResponse { pre_vote: true, granted });
            let msg = self.message(from, answer_term, body);
            self.send_message(msg);
            return;
        }
        debug_assert_eq!(term, self.term);
        let can_vote = self.vote == Some(from) || (self.vote.is_none() && self.leader.is_none());
        // The lease binds votes in the current term too: this node may have
        // learned the term from a message other than this request.
        let leased = !req.leadership_transfer && self.vote != Some(from) && self.in_leader_lease(now);
        let granted = can_vote && up_to_date && !leased;
        debug!("{} {}: vote for {}: {}", self.id(), self.term, from, granted);
        if granted {
            if self.vote.is_none() {
                self.vote = Some(from);
                self.term_or_vote_changed();
            }
            self.reset_election_deadline(now);
        }
        let body = RequestVoteResponse { pre_vote: false, granted };
        self.send(from, MessageBody::RequestVoteResponse(body));
    }

    pub(super) fn on_vote_response(
        &mut self,
        now: Instant,
        from: NodeId,
        incarnation: Incarnation,
        term: Term,
        resp: RequestVoteResponse,
    ) {
        let expected_term = match (self.role, resp.pre_vote) {
            (Role::PreCandidate, true) if resp.granted => self.term.next(),
            (Role::PreCandidate, true) | (Role::Candidate, false) => self.term,
            _ => {
                debug!(
                    "{} {}: unsolicited {} from {}",
                    self.id(),
                    self.term,
                    if resp.pre_vote { "PreVoteResponse" } else { "RequestVoteResponse" },
                    from
                );
                return;
            }
        };
        if term != expected_term {
            debug!("{} {}: vote response from {} for {} ignored", self.id(), self.term, from, term);
            return;
        }
        if !self.votes.iter().any(|&(id, _, _)| id == from) {
            self.votes.push((from, incarnation, resp.granted));
        }
        self.tally_votes(now);
    }

    /// Counts the election so far and acts on the outcome. A candidate counts
    /// its own vote only once that vote is durable.
    pub(super) fn tally_votes(&mut self, now: Instant) {
        let own = match self.role {
            Role::PreCandidate => Some(true),
            Role::Candidate => (self.term_vote_id <= self.durable_id).then_some(true),
            Role::Follower | Role::Leader => return,
        };
        let (me, mine) = (self.id(), self.incarnation);
        let votes = &self.votes;
        // An answer from an incarnation the half does not admit is no answer.
        let result = self.voters.vote_result(|id, admitted| {
            if id == me {
                own.filter(|_| self.admits(admitted, mine))
            } else {
                votes
                    .iter()
                    .find(|&&(v, inc, _)| v == id && self.admits(admitted, inc))
                    .map(|&(_, _, granted)| granted)
            }
        });
        match (result, self.role) {
            (VoteResult::Won, Role::PreCandidate) => self.become_candidate(now),
            // Peers alone may form a majority, but a leader must never act in
            // a term its own disk could forget: wait for the vote's write.
            (VoteResult::Won, Role::Candidate) if self.term_vote_id > self.durable_id => {}
            (VoteResult::Won, _) => self.become_leader(now),
            (VoteResult::Lost, _) => {
                info!("{} {}: lost the {} election", self.id(), self.term, self.role);
                self.become_follower(now, self.term, None);
            }
            (VoteResult::Pending, _) => {}
        }
    }

    pub(super) fn on_election_timeout(&mut self, now: Instant) {
        if !self.may_campaign() {
            // A learner, a removed node, or one waiting to be added.
            self.reset_election_deadline(now);
            return;
        }
        debug!("{} {}: election timeout", self.id(), self.term);
        self.start_election(now);
    }

    pub(super) fn start_election(&mut self, now: Instant) {
        if self.config.pre_vote {
            self.become_pre_candidate(now);
        } else {
            self.become_candidate(now);
        }
    }

    fn become_pre_candidate(&mut self, now: Instant) {
        self.settle_transfer_outcome(None);
        self.set_role(Role::PreCandidate);
        self.set_leader(None);
        self.votes.clear();
        self.reset_election_deadline(now);
        self.request_votes(true, false);
        self.tally_votes(now);
    }

    fn become_candidate(&mut self, now: Instant) {
        self.campaign_in_next_term(now, false);
    }

    /// Campaigns at once because the leader handed over leadership: voters
    /// will disregard their leader lease.
    pub(super) fn become_candidate_for_transfer(&mut self, now: Instant) {
        self.campaign_in_next_term(now, true);
    }

    fn campaign_in_next_term(&mut self, now: Instant, leadership_transfer: bool) {
        self.settle_transfer_outcome(None);
        self.adopt_term(self.term.next());
        self.vote = Some(self.id());
        self.set_role(Role::Candidate);
        self.set_leader(None);
        self.votes.clear();
        self.reset_election_deadline(now);
        self.request_votes(false, leadership_transfer);
        self.tally_votes(now);
    }

    fn request_votes(&mut self, pre_vote: bool, leadership_transfer: bool) {
        let term = if pre_vote { self.term.next() } else { self.term };
        let req = RequestVote {
            pre_vote,
            last_log_index: self.log.last_index(),
            last_log_term: self.log.last_term(),
            leadership_transfer,
        };
        for k in 0..self.voters.ids().len() {
            let to = self.voters.ids()[k];
            if to != self.id() {
                let msg = self.message(to, term, MessageBody::RequestVote(req));
                self.send_message(msg);
            }
        }
    }

    /// Moves to a newer term. Messages still waiting for a write are
    /// dropped: they speak for a term this node has left, and the network
    /// may lose any message anyway. So every message leaves in the term it
    /// was made in.
    fn adopt_term(&mut self, term: Term) {
        debug_assert!(term > self.term);
        self.term = term;
        self.vote = None;
        self.term_or_vote_changed();
        self.events.push_back(Event::TermChanged { term });
        self.held.retain(|(_, m)| m.term >= term);
        // The old term's leader leads no more, even if it wins again; this
        // also fails reads that were waiting on it.
        self.set_leader(None);
    }

    /// Steps down to follower in `term` (adopting it if newer) under
    /// `leader`, if known.
    pub(super) fn become_follower(&mut self, now: Instant, term: Term, leader: Option<NodeId>) {
        if term > self.term {
            self.adopt_term(term);
        }
        // A transfer ends with stepping down; whether it worked shows once
        // the next leader is known.
        if let Some(t) = self.transfer.take() {
            self.transfer_outcome = Some(t.to);
        }
        self.set_role(Role::Follower);
        self.set_leader(leader);
        if leader.is_some() {
            self.extend_vote_lease(now);
        }
        self.votes.clear();
        self.heartbeat_deadline = None;
        self.check_quorum_deadline = None;
        self.replication_pending = false;
        self.uncommitted_bytes = 0;

        self.reset_election_deadline(now);
    }

    fn become_leader(&mut self, now: Instant) {
        self.set_role(Role::Leader);
        self.set_leader(Some(self.id()));
        self.votes.clear();
        self.election_deadline = None;
        self.heartbeat_deadline = Some(now + self.config.heartbeat_interval);
        self.check_quorum_deadline = self.config.check_quorum.then(|| now + self.config.election_timeout_min);
        let next = self.log.last_index().next();
        let limits = (self.config.inflight_messages_max, self.config.inflight_bytes_max);
        for p in self.peers.iter_mut() {
            *p = Progress::new(p.id, next, limits);
            // Everyone gets one election timeout to answer before CheckQuorum
            // counts them absent.
            p.last_heard = Some(now);
        }
        self.uncommitted_bytes = 0;
        self.unpersisted_bytes = self.log.unpersisted_bytes();
        self.transfer = None;
        self.lease_given_up = false;
        self.reset_reads_for_new_term();
        // Raft §5.4.2: entries of earlier terms commit only underneath one of
        // this term, so start the term with one.
        let blank = Entry { term: self.term, index: next, kind: EntryKind::Blank, data: Default::default() };
        self.append_as_leader(blank);
    }

    /// CheckQuorum: a leader that has not heard from a quorum within
    /// `election_timeout_min` steps down, since the others may already have
    /// elected someone else.
    pub(super) fn check_quorum(&mut self, now: Instant) {
        let window = self.config.election_timeout_min;
        let (me, mine) = (self.id(), self.incarnation);
        let peers = &self.peers;
        let active = self.voters.has_quorum(|id, admitted| {
            if id == me {
                return self.admits(admitted, mine);
            }
            peers
                .iter()
                .find(|p| p.id == id && self.admits(admitted, p.incarnation))
                .and_then(|p| p.last_heard)
                .is_some_and(|t| now.saturating_duration_since(t) < window)
        });
        if active {
            self.check_quorum_deadline = Some(now + self.config.heartbeat_interval);
        } else {
            info!("{} {}: no quorum heard within {:?}; stepping down", self.id(), self.term, window);
            self.become_follower(now, self.term, None);
        }
    }
}

impl Node {
    pub(super) fn random_election_timeout(&mut self) -> Duration {
        #[cfg(test)]
        if self.config.bugs.fixed_election_timeout {
            return self.config.election_timeout_min;
        }
        let min = self.config.election_timeout_min.as_nanos() as u64;
        let max = self.config.election_timeout_max.as_nanos() as u64;
        Duration::from_nanos(self.rng.range(min, max))
    }

    pub(super) fn reset_election_deadline(&mut self, now: Instant) {
        let timeout = self.random_election_timeout();
        self.election_deadline = Some(now + timeout);
    }
}
