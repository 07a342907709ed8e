//! Linearizable reads (thesis §6.4): ReadIndex on the leader, reads served
//! by followers, and optional leases.
//!
//! **ReadIndex.** The leader notes its commit index, then proves it still
//! leads: every heartbeat starts a numbered *round*, and a read that arrived
//! before round `r` started is confirmed once a quorum has answered round `r`
//! or later. The read is served once the state machine has applied the noted
//! index. A new leader serves nothing before an entry of its own term
//! commits, since only then does its commit index cover everything committed
//! before it. At most one round is awaited at a time; reads arriving
//! meanwhile share the next one, so a thousand concurrent reads cost one
//! heartbeat round trip.
//!
//! **Follower reads.** A follower asks the leader for a read index (the
//! leader confirms it as above) and serves the read once it has applied that
//! far itself. Requests carry a number the follower's core issues, not the
//! caller's `ctx`: a caller may reuse a `ctx` once its read failed, and an
//! answer to the failed request, arriving late, must not serve the new read
//! with an index from before it began.
//!
//! **Leases.** With `lease_reads`, a leader whose last quorum-confirmed round
//! started less than `election_timeout_min - lease_clock_drift` ago serves
//! reads without a round; see [`crate::Config::lease_reads`] for the clock
//! assumption. A leader that sent `TimeoutNow` gives up its lease for the
//! rest of its term, since its successor campaigns without waiting.

use std::collections::VecDeque;

use ::log::debug;

use super::api::{ReadError, ReadReady};
use super::{Node, Role};
use crate::message::{MessageBody, ReadIndex, ReadIndexResponse};
use crate::types::{Incarnation, Instant, LogIndex, NodeId};

/// The reads a node is working on, and its confirmation rounds as leader.
#[derive(Debug, Default)]
pub(super) struct Reads {
    /// The latest round this leader started; heartbeats carry it.
    pub(super) round: u64,
    /// The latest round a quorum answered.
    pub(super) confirmed_round: u64,
    /// When each round not yet confirmed started, oldest first (for leases).
    round_starts: VecDeque<(u64, Instant)>,
    /// When the latest confirmed round started.
    lease_start: Option<Instant>,
    /// Reads wait for a round not started yet: start it when messages are
    /// next drained, so that reads arriving until then share it. Holds the
    /// time of the first such read, a conservative start for the lease.
    round_requested_at: Option<Instant>,
    /// Leader: reads waiting for a round, in arrival order (rounds never
    /// decrease along the queue).
    unconfirmed: VecDeque<PendingRead>,
    /// Leader: reads that arrived before an entry of this term committed.
    awaiting_commit: VecDeque<(u64, Option<NodeId>)>,
    /// Follower: reads sent to the leader, oldest first.
    forwarded: VecDeque<Forwarded>,
    /// Follower: the `request_id` of the latest read sent to the leader.
    /// Ids increase for the node's lifetime (across terms and leaders), so
    /// an answer matches only the request it was made for.
    pub(super) last_request_id: u64,
    /// Confirmed local reads waiting for the state machine to apply `index`.
    confirmed: Vec<(u64, LogIndex)>,
    /// Reads to hand out through `poll_read_ready`.
    ready: VecDeque<ReadReady>,
}

#[derive(Debug)]
struct PendingRead {
    /// The caller's `ctx` for a read of this node's own client; the
    /// follower's `request_id` for a follower's read.
    ctx: u64,
    /// `None` for a read of this node's own client.
    requester: Option<NodeId>,
    index: LogIndex,
    round: u64,
}

#[derive(Debug)]
struct Forwarded {
    /// The caller's identifier, handed back in its `ReadReady`.
    ctx: u64,
    /// The identifier the request carries to the leader and back.
    request_id: u64,
    leader: NodeId,
    expires: Instant,
}

/// Rounds whose start time is remembered; older ones only lose their lease.
const ROUND_STARTS_MAX: usize = 1024;

impl Reads {
    /// Reads this node holds in any stage.
    pub(super) fn len(&self) -> usize {
        self.unconfirmed.len()
            + self.awaiting_commit.len()
            + self.forwarded.len()
            + self.confirmed.len()
            + self.ready.len()
    }

    pub(super) fn next_expiry(&self) -> Option<Instant> {
        self.forwarded.front().map(|f| f.expires)
    }

    pub(super) fn pop_ready(&mut self) -> Option<ReadReady> {
        self.ready.pop_front()
    }

    /// A new identifier for a request to the leader.
    fn next_request_id(&mut self) -> u64 {
        self.last_request_id += 1;
        self.last_request_id
    }
}

impl Node {
    /// Asks for a linearizable read. The answer comes later from
    /// [`poll_read_ready`](Node::poll_read_ready) with the same `ctx`: a read
    /// index this node has applied, after which a query on the local state
    /// machine is linearizable; or an error if leadership changed first (a
    /// deposed leader never answers a read). `ctx` is the caller's own: it is
    /// handed back, never sent to another node, and may be reused once its
    /// read was answered.
    pub fn read_index(&mut self, now: Instant, ctx: u64) -> Result<(), ReadError> {
        if self.reads.len() >= self.config.pending_reads_max {
            return Err(ReadError::Backpressure);
        }
        match (self.role, self.leader) {
            (Role::Leader, _) => {
                self.leader_read(now, ctx, None);
                Ok(())
            }
            (Role::Follower, Some(leader)) => {
                let expires = now + self.config.election_timeout_max * 2;
                let request_id = self.reads.next_request_id();
                self.reads.forwarded.push_back(Forwarded { ctx, request_id, leader, expires });
                self.send(leader, MessageBody::ReadIndex(ReadIndex { request_id }));
                Ok(())
            }
            _ => Err(ReadError::NotLeader { leader_hint: self.leader }),
        }
    }

    /// The next read that may be served, or that failed.
    pub fn poll_read_ready(&mut self) -> Option<ReadReady> {
        self.reads.pop_ready()
    }

    fn committed_in_term(&self) -> bool {
        self.log.term(self.log.commit()) == Some(self.term)
    }

    fn lease_valid(&self, now: Instant) -> bool {
        self.config.lease_reads
            && !self.lease_given_up
            && self.reads.lease_start.is_some_and(|start| {
                now < start + self.config.election_timeout_min - self.config.lease_clock_drift
            })
    }

    /// A read arriving at the leader, from its own client or a follower's.
    fn leader_read(&mut self, now: Instant, ctx: u64, requester: Option<NodeId>) {
        if !self.committed_in_term() {
            self.coverage.read_waited_for_term_commit += 1;
            self.reads.awaiting_commit.push_back((ctx, requester));
            return;
        }
        let index = self.log.commit();
        #[cfg(test)]
        if self.config.bugs.reads_without_confirmation {
            self.read_confirmed(ctx, requester, index);
            return;
        }
        if self.lease_valid(now) {
            self.read_confirmed(ctx, requester, index);
            return;
        }
        let round = self.reads.round + 1;
        self.reads.unconfirmed.push_back(PendingRead { ctx, requester, index, round });
        if self.reads.round == self.reads.confirmed_round {
            self.request_round(now);
        }
    }

    /// Asks for a round to start at the next drain of messages (at once in a
    /// cluster of one, which confirms its own rounds).
    fn request_round(&mut self, now: Instant) {
        if self.voters.is_only(self.id()) {
            self.start_round(now);
        } else {
            self.reads.round_requested_at.get_or_insert(now);
        }
    }

    /// Starts the round reads asked for, if any; called when messages are
    /// drained.
    pub(super) fn start_requested_round(&mut self) {
        if let Some(at) = self.reads.round_requested_at.take() {
            if self.role == Role::Leader {
                self.start_round(at);
            }
        }
    }

    /// Starts a confirmation round: a heartbeat to every follower.
    pub(super) fn start_round(&mut self, now: Instant) {
        debug_assert_eq!(self.role, Role::Leader);
        self.reads.round_requested_at = None;
        self.reads.round += 1;
        if self.reads.round_starts.len() == ROUND_STARTS_MAX {
            self.reads.round_starts.pop_front();
        }
        self.reads.round_starts.push_back((self.reads.round, now));
        self.heartbeat_deadline = Some(now + self.config.heartbeat_interval);
        self.broadcast_heartbeats(self.reads.round);
        // A cluster of one confirms its own rounds.
        self.check_read_quorum(now);
    }

    /// Confirms the rounds a quorum has answered and releases their reads.
    pub(super) fn check_read_quorum(&mut self, now: Instant) {
        let (me, mine) = (self.id(), self.incarnation);
        let own_round = self.reads.round;
        let peers = &self.peers;
        let ignore = self.ignores_incarnations();
        let admits = |admitted: Incarnation, speaker: Incarnation| ignore || admitted.admits(speaker);
        let quorum_round = self.voters.quorum_value(&mut self.scratch_rounds, |id, admitted| {
            if id == me {
                return if admits(admitted, mine) { own_round } else { 0 };
            }
            peers.iter().find(|p| p.id == id && admits(admitted, p.incarnation)).map_or(0, |p| p.acked_round)
        });
        if quorum_round <= self.reads.confirmed_round {
            return;
        }
        self.reads.confirmed_round = quorum_round;
        while let Some(&(round, start)) = self.reads.round_starts.front() {
            if round > quorum_round {
                break;
            }
            if round == quorum_round {
                self.reads.lease_start = Some(start);
            }
            self.reads.round_starts.pop_front();
        }
        while self.reads.unconfirmed.front().is_some_and(|r| r.round <= quorum_round) {
            let r = self.reads.unconfirmed.pop_front().expect("front exists");
            self.read_confirmed(r.ctx, r.requester, r.index);
        }
        if !self.reads.unconfirmed.is_empty() && self.reads.round == self.reads.confirmed_round {
            self.request_round(now);
        }
    }

    /// A read whose index is settled: answer the follower that asked, or wait
    /// for our own state machine to apply the index.
    fn read_confirmed(&mut self, ctx: u64, requester: Option<NodeId>, index: LogIndex) {
        match requester {
            Some(follower) => {
                let body = ReadIndexResponse { request_id: ctx, index: Some(index) };
                self.send(follower, MessageBody::ReadIndexResponse(body));
            }
            None if index <= self.log.applied() => {
                self.reads.ready.push_back(ReadReady { ctx, result: Ok(index) })
            }
            None => self.reads.confirmed.push((ctx, index)),
        }
    }

    /// The leader's commit index moved: reads waiting for the first commit
    /// of this term can start.
    pub(super) fn on_commit_for_reads(&mut self, now: Instant) {
        if self.reads.awaiting_commit.is_empty() || !self.committed_in_term() {
            return;
        }
        for (ctx, requester) in std::mem::take(&mut self.reads.awaiting_commit) {
            self.leader_read(now, ctx, requester);
        }
    }

    /// The application applied more: confirmed reads up to it may be served.
    pub(super) fn on_applied_for_reads(&mut self) {
        let applied = self.log.applied();
        let ready = &mut self.reads.ready;
        self.reads.confirmed.retain(|&(ctx, index)| {
            if index <= applied {
                ready.push_back(ReadReady { ctx, result: Ok(index) });
                false
            } else {
                true
            }
        });
    }

    pub(super) fn on_read_index(&mut self, now: Instant, from: NodeId, req: ReadIndex) {
        let refuse = self.role != Role::Leader || self.reads.len() >= self.config.pending_reads_max;
        if refuse {
            debug!("{} {}: refused a read for {}", self.id(), self.term, from);
            let body = ReadIndexResponse { request_id: req.request_id, index: None };
            self.send(from, MessageBody::ReadIndexResponse(body));
            return;
        }
        self.leader_read(now, req.request_id, Some(from));
    }

    pub(super) fn on_read_index_response(&mut self, from: NodeId, resp: ReadIndexResponse) {
        let matches = |f: &Forwarded| f.request_id == resp.request_id && f.leader == from;
        let Some(k) = self.reads.forwarded.iter().position(matches) else {
            // Most often the answer to a request that expired or failed.
            debug!(
                "{} {}: ReadIndexResponse {} from {} answers no pending read",
                self.id(),
                self.term,
                resp.request_id,
                from
            );
            return;
        };
        let f = self.reads.forwarded.remove(k).expect("k is in range");
        match resp.index {
            Some(index) => self.read_confirmed(f.ctx, None, index),
            None => {
                let result = Err(ReadError::LeadershipLost);
                self.reads.ready.push_back(ReadReady { ctx: f.ctx, result });
            }
        }
    }

    /// Forwarded reads the leader never answered fail.
    pub(super) fn expire_forwarded_reads(&mut self, now: Instant) {
        while self.reads.forwarded.front().is_some_and(|f| f.expires <= now) {
            let f = self.reads.forwarded.pop_front().expect("front exists");
            self.reads.ready.push_back(ReadReady { ctx: f.ctx, result: Err(ReadError::Timeout) });
        }
    }

    /// Leadership changed hands: reads not yet confirmed by the old
    /// leadership fail (confirmed ones stay valid: their index was proven).
    pub(super) fn fail_unconfirmed_reads(&mut self, new_leader: Option<NodeId>) {
        let fail = Err(ReadError::LeadershipLost);
        let ready = &mut self.reads.ready;
        for r in self.reads.unconfirmed.drain(..) {
            if r.requester.is_none() {
                ready.push_back(ReadReady { ctx: r.ctx, result: fail });
            }
        }
        for (ctx, requester) in self.reads.awaiting_commit.drain(..) {
            if requester.is_none() {
                ready.push_back(ReadReady { ctx, result: fail });
            }
        }
        self.reads.forwarded.retain(|f| {
            let keep = Some(f.leader) == new_leader;
            if !keep {
                ready.push_back(ReadReady { ctx: f.ctx, result: fail });
            }
            keep
        });
    }

    /// A new leader starts its rounds from scratch.
    pub(super) fn reset_reads_for_new_term(&mut self) {
        self.reads.round = 0;
        self.reads.confirmed_round = 0;
        self.reads.round_starts.clear();
        self.reads.lease_start = None;
        self.reads.round_requested_at = None;
        for p in self.peers.iter_mut() {
            p.acked_round = 0;
        }
    }
}
