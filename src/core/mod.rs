//! The Raft state machine: pure, deterministic, single-threaded.
//!
//! [`Node`] is one member of a cluster. It never touches a clock, a socket, a
//! file or a thread: time arrives as `now`, randomness comes from a generator
//! seeded by [`Config::seed`], and everything it wants done leaves through its
//! `poll_*` methods.

mod api;
mod checks;
mod coverage;
mod disk;
mod election;
mod identity;
mod log;
mod membership;
mod progress;
mod propose;
mod quorum;
mod read;
mod replication;
mod snapshot;
#[cfg(test)]
mod tests;
mod transfer;

use std::collections::VecDeque;

use ::log::{debug, info, warn};

use crate::config::{Config, ConfigError};
use crate::membership::{Membership, SnapshotMeta};
use crate::message::{Message, MessageBody};
use crate::rng::Rng;
use crate::types::{Bytes, Entry, EntryKind, HardState, Incarnation, Instant, LogIndex, NodeId, Term};

pub use self::api::{
    Admission, BootstrapError, DiskTrouble, Event, MembershipChangeError, PeerStatus, Persist, PersistId,
    ProgressState, ProposeError, Proposed, ReadError, ReadReady, RecoveredState, RecoveryError, Role,
    StartError, Status, TransferError,
};
use self::checks::{check_append, check_recovered};
pub use self::coverage::Coverage;
use self::log::{Durability, RaftLog};
use self::membership::Configurations;
use self::progress::Progress;
use self::quorum::JointVoters;
use self::read::Reads;
pub use self::snapshot::SnapshotAction;
use self::transfer::Transfer;

/// One Raft node: the consensus state machine without any IO.
///
/// # Driving a node
///
/// The methods come in four kinds (as in quinn-proto's `Connection`):
///
/// - **getters**: [`id`](Node::id), [`role`](Node::role), [`term`](Node::term),
///   [`leader`](Node::leader), [`commit_index`](Node::commit_index),
///   [`status`](Node::status), ...
/// - **inputs**: [`handle_message`](Node::handle_message),
///   [`handle_timeout`](Node::handle_timeout),
///   [`handle_persisted`](Node::handle_persisted),
///   [`handle_applied`](Node::handle_applied),
///   [`handle_unreachable`](Node::handle_unreachable), and for snapshots
///   [`handle_snapshot_taken`](Node::handle_snapshot_taken),
///   [`handle_snapshot_sent`](Node::handle_snapshot_sent),
///   [`handle_snapshot_failed`](Node::handle_snapshot_failed) and
///   [`handle_snapshot_received`](Node::handle_snapshot_received) (a
///   leader's snapshot arrived whole and is stored: the runtime that
///   assembled it says so, on the leader's behalf; no message from a peer
///   can);
/// - **commands**: [`propose`](Node::propose), [`read_index`](Node::read_index),
///   [`transfer_leadership`](Node::transfer_leadership),
///   [`campaign`](Node::campaign); each returns a `Result` with a typed error;
/// - **outputs**, drained after every input or command, in this order:
///   1. [`poll_persist`](Node::poll_persist) until `None`: start these writes
///      first, so the disk works while messages travel. Write them in order;
///      report each with [`handle_persisted`](Node::handle_persisted) once it
///      (and every earlier one) is durable.
///   2. [`poll_send`](Node::poll_send) until `None`: messages to deliver.
///      Anything that promises durability (a vote, an acknowledgement) is
///      held back inside the node until the writes it depends on are
///      reported durable, so sending in parallel with persisting is safe.
///   3. [`poll_snapshot`](Node::poll_snapshot) until `None`: snapshots to
///      take, send or restore ([`SnapshotAction`]); a restore must reach the
///      application before the entries that follow it.
///   4. [`poll_apply`](Node::poll_apply) until `None`: committed entries, in
///      index order, for the state machine; report progress with
///      [`handle_applied`](Node::handle_applied).
///   5. [`poll_read_ready`](Node::poll_read_ready) until `None`: reads that
///      may now be served (or failed).
///   6. [`poll_event`](Node::poll_event) until `None`: role, leader and term
///      changes, transfers.
///   7. [`poll_timeout`](Node::poll_timeout): the next deadline. Call
///      [`handle_timeout`](Node::handle_timeout) when it passes (early or late
///      calls are harmless).
///
/// Every queue behind these methods is bounded by what one input can produce
/// and by the limits in [`Config`], provided they are drained after each input.
/// The one exception is the messages held for a write: each waits for one
/// write, so they number what peers send during one write's latency (a
/// leader's inflight window of appends, a heartbeat per round). A disk that
/// stalls holds them until it answers or the node stops.
pub struct Node {
    config: Config,
    rng: Rng,
    /// The incarnation of this node's storage, stamped on every message.
    incarnation: Incarnation,

    // Durable state (see `HardState`).
    term: Term,
    vote: Option<NodeId>,
    log: RaftLog,

    // Volatile state.
    role: Role,
    leader: Option<NodeId>,
    /// The configurations the log holds; the last is in force.
    configs: Configurations,
    /// The voters of the configuration in force (both halves while joint).
    voters: JointVoters,
    /// One entry per member (voter or learner) other than this node, sorted
    /// by id; meaningful while leader.
    peers: Vec<Progress>,
    /// The latest snapshot this node holds.
    snapshot: Option<SnapshotMeta>,
    /// A `Take` was handed out and not yet answered.
    snapshot_requested: bool,
    /// Bytes of entries applied since the latest snapshot.
    applied_bytes_since_snapshot: u64,
    /// A snapshot installed, for the next write to make the stored log
    /// continue.
    snapshot_to_persist: Option<SnapshotMeta>,
    snapshot_actions: VecDeque<SnapshotAction>,
    /// Answers to this node's (pre-)vote requests in the current election,
    /// by voter, with the incarnation each answered from; this node's own
    /// vote is counted separately, once durable.
    votes: Vec<(NodeId, Incarnation, bool)>,
    /// Nonzero while this node's log lacks committed entries it once held
    /// (see `RecoveredState::repair_to`): no votes, no campaigns until a
    /// leader has filled it back to here.
    repair_to: LogIndex,
    /// The write after which the repair is over: entries up to
    /// `repair_to`, shown by a leader's log check to match its log, are
    /// durable once it is.
    repair_write: Option<PersistId>,
    /// How the configuration regards this node, as last reported.
    admission: Admission,
    /// Why this node stopped taking part, once it has (see `Event::Halted`).
    halted: Option<String>,
    /// The runtime reported the disk full (see `core::disk`).
    disk_full: bool,
    /// Writes stayed outstanding too long.
    disk_stalled: bool,
    /// The confirmation round when the disk trouble began: only a later
    /// heartbeat answer tells whether a follower's disk is in trouble too.
    trouble_round: u64,
    persist_watch: disk::PersistWatch,
    /// Bytes of this leader's entries not yet durable on its own disk.
    unpersisted_bytes: u64,
    /// Bytes of this leader's entries not yet committed.
    uncommitted_bytes: u64,
    /// Reads in every stage, and this leader's confirmation rounds.
    reads: Reads,
    /// A leadership transfer under way.
    transfer: Option<Transfer>,
    /// The target of a transfer that ended with this node stepping down,
    /// until the next leader shows whether it worked.
    transfer_outcome: Option<NodeId>,
    /// This leader sent `TimeoutNow` in its term: its lease is void.
    lease_given_up: bool,
    /// Commands proposed on this follower, to forward to the leader at the
    /// next drain; at most `uncommitted_bytes_max` bytes.
    forward_queue: Vec<Bytes>,
    forward_bytes: u64,

    // Timers; `None` when disarmed.
    election_deadline: Option<Instant>,
    heartbeat_deadline: Option<Instant>,
    check_quorum_deadline: Option<Instant>,
    /// With CheckQuorum, (pre-)votes are refused until then:
    /// `election_timeout_min` after a live leader was last heard from, and,
    /// with lease reads, after a restart (the node may have answered a
    /// heartbeat that a leader's lease counts on).
    vote_lease_until: Option<Instant>,

    // Durability tracking.
    /// The id the next write will carry; writes are numbered from 1.
    next_persist_id: PersistId,
    /// Every write up to this one is durable.
    durable_id: PersistId,
    /// The write that holds the current term and vote: nothing leaves this
    /// node until it is durable, so no message ever speaks for a term or vote
    /// that a crash could forget.
    term_vote_id: PersistId,
    /// The hard state changed since the last write.
    hard_state_dirty: bool,

    // Outputs.
    outbox: VecDeque<Message>,
    /// Messages waiting for a write, in creation order.
    held: VecDeque<(PersistId, Message)>,
    events: VecDeque<Event>,
    /// Entries were appended or the commit index moved: followers need to
    /// hear. Flushed lazily so that proposals between two drains share one
    /// AppendEntries per follower.
    replication_pending: bool,

    scratch_indexes: Vec<LogIndex>,
    scratch_rounds: Vec<u64>,
    coverage: Coverage,
}

impl Node {
    /// Creates a node of a cluster whose voters are `voters` (this node among
    /// them), from the state recovered from its storage (`Default` for a new
    /// node), at time `now`. See [`Node::with_membership`] for clusters that
    /// change their membership.
    pub fn new(
        config: Config,
        voters: &[NodeId],
        state: RecoveredState,
        now: Instant,
    ) -> Result<Node, StartError> {
        if !voters.contains(&config.id) {
            let mut ids = voters.to_vec();
            ids.sort_unstable();
            return Err(ConfigError {
                field: "id",
                reason: format!("{} is not among the voters {:?}", config.id, ids),
            }
            .into());
        }
        Node::with_membership(config, Membership::with_voters(voters.iter().copied()), state, now)
    }

    /// Creates a node whose cluster started with the configuration
    /// `bootstrap` (the same on every node; this node need not be in it: a
    /// node started with an empty one waits to be added by a leader), from
    /// the state recovered from its storage, at time `now`. Configurations
    /// in the recovered snapshot and log take precedence.
    pub fn with_membership(
        config: Config,
        bootstrap: Membership,
        state: RecoveredState,
        now: Instant,
    ) -> Result<Node, StartError> {
        config.validate()?;
        if bootstrap.contains(NodeId(0)) {
            return Err(ConfigError { field: "voters", reason: "node id 0 is reserved".into() }.into());
        }
        let RecoveredState { hard_state, snapshot, entries, applied, incarnation, repair_to } = state;
        let base = snapshot.as_ref().map_or((LogIndex(0), Term(0)), |s| (s.index, s.term));
        check_recovered(&hard_state, base, &entries, applied)?;
        let last = base.0.plus(entries.len() as u64);
        // The stored commit index may run ahead of a log whose tail was lost;
        // it is knowledge, not a promise, so keep what the log still holds.
        let commit = hard_state.commit.max(applied).max(base.0).min(last);
        let mut configs = Configurations {
            base: (base.0, snapshot.as_ref().map_or(bootstrap, |s| s.membership.clone())),
            entries: Vec::new(),
        };
        for e in entries.iter().filter(|e| e.kind == EntryKind::Membership) {
            let m = Membership::decode(&e.data)
                .map_err(|error| RecoveryError::BadMembership { index: e.index, error })?;
            configs.entries.push((e.index, e.term, m));
        }
        let mut snapshot_actions = VecDeque::new();
        if let Some(s) = snapshot.as_ref().filter(|s| applied < s.index) {
            // The application has not restored the snapshot yet.
            snapshot_actions.push_back(SnapshotAction::Install { meta: s.clone() });
        }
        let mut node = Node {
            rng: Rng::new(config.seed),
            incarnation,
            repair_to: if repair_to > last { repair_to } else { LogIndex(0) },
            admission: Admission::NotMember,
            repair_write: None,
            halted: None,
            disk_full: false,
            disk_stalled: false,
            trouble_round: 0,
            persist_watch: disk::PersistWatch::default(),
            unpersisted_bytes: 0,
            term: hard_state.term,
            vote: hard_state.vote,
            log: RaftLog::recovered(base, entries, commit, applied),
            role: Role::Follower,
            leader: None,
            configs,
            voters: JointVoters::new(&[], &[]),
            peers: Vec::new(),
            snapshot,
            snapshot_requested: false,
            applied_bytes_since_snapshot: 0,
            snapshot_to_persist: None,
            snapshot_actions,
            votes: Vec::new(),
            uncommitted_bytes: 0,
            reads: Reads::default(),
            transfer: None,
            transfer_outcome: None,
            lease_given_up: false,
            forward_queue: Vec::new(),
            forward_bytes: 0,
            vote_lease_until: config.lease_reads.then(|| now + config.election_timeout_min),
            election_deadline: None,
            heartbeat_deadline: None,
            check_quorum_deadline: None,
            next_persist_id: PersistId(1),
            durable_id: PersistId(0),
            term_vote_id: PersistId(0),
            hard_state_dirty: false,
            outbox: VecDeque::new(),
            held: VecDeque::new(),
            events: VecDeque::new(),
            replication_pending: false,
            scratch_indexes: Vec::new(),
            scratch_rounds: Vec::new(),
            coverage: Coverage::default(),
            config,
        };
        // Forwarded reads are numbered from a point drawn anew at every
        // start, so that a leader's late answer to a read of this node's
        // previous life cannot match a read of this one.
        // (From a generator of its own: the main one's draws decide timing.)
        node.reads.last_request_id = Rng::new(node.config.seed ^ 0x5eed_f04e).next_u64() >> 1;
        node.membership_changed(now);
        node.replication_pending = false;
        node.reset_election_deadline(now);
        info!(
            "{} {}: started as follower, last index {}, commit {}, {}, incarnation {}",
            node.id(),
            node.term,
            last,
            commit,
            node.membership(),
            node.incarnation
        );
        if node.repair_to > LogIndex(0) {
            warn!(
                "{} {}: the log ends at {} but held committed entries up to {} before: they were lost \
                 (a disk that lied about a sync, or a log restored from an older copy); \
                 not voting until a leader has restored them",
                node.id(),
                node.term,
                last,
                node.repair_to
            );
        }
        Ok(node)
    }

    // ---------------------------------------------------------------- getters

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.config.id
    }

    /// This node's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// This node's current term.
    pub fn term(&self) -> Term {
        self.term
    }

    /// The vote this node cast in its current term.
    pub fn vote(&self) -> Option<NodeId> {
        self.vote
    }

    /// The leader of the current term, if this node knows it.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// The highest index this node knows committed.
    pub fn commit_index(&self) -> LogIndex {
        self.log.commit()
    }

    /// The highest index the application reported applied.
    pub fn applied_index(&self) -> LogIndex {
        self.log.applied()
    }

    /// The index of the last entry in this node's log.
    pub fn last_index(&self) -> LogIndex {
        self.log.last_index()
    }

    /// The end of the durable prefix of this node's log.
    pub fn persisted_index(&self) -> LogIndex {
        self.log.persisted()
    }

    /// The entry at `index`, if this node's log holds it.
    pub fn entry(&self, index: LogIndex) -> Option<&Entry> {
        self.log.entry(index)
    }

    /// The term of the entry at `index`, if this node's log holds it or it
    /// is the last entry compacted away.
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        self.log.term(index)
    }

    /// The configuration this node runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A snapshot of this node's state and, if leader, of its followers.
    pub fn status(&self) -> Status {
        let peers = if self.role == Role::Leader {
            self.peers
                .iter()
                .map(|p| PeerStatus {
                    id: p.id,
                    match_index: p.match_index,
                    next_index: p.next_index,
                    state: p.state,
                    inflight_messages: p.inflight.count(),
                    inflight_bytes: p.inflight.bytes(),
                    last_heard: p.last_heard,
                    incarnation: p.incarnation,
                    counted: self.voters.counts(p.id, p.incarnation) || self.ignores_incarnations(),
                })
                .collect()
        } else {
            Vec::new()
        };
        Status {
            id: self.id(),
            role: self.role,
            term: self.term,
            leader: self.leader,
            commit: self.log.commit(),
            applied: self.log.applied(),
            last_index: self.log.last_index(),
            persisted: self.log.persisted(),
            first_index: self.log.first_index(),
            snapshot_index: self.snapshot.as_ref().map_or(LogIndex(0), |s| s.index),
            membership: self.membership().clone(),
            incarnation: self.incarnation,
            admission: self.admission,
            repair_to: self.repair_to,
            halted: self.halted.clone(),
            disk: self.disk_trouble(),
            peers,
        }
    }

    // ----------------------------------------------------------------- inputs

    /// Handles a message from the network. Anything malformed, stale or
    /// impossible is dropped (with a `debug!` line), never trusted.
    pub fn handle_message(&mut self, now: Instant, msg: Message) {
        // Membership is not checked here: a node learns of new members from
        // the log, possibly after they first write to it. What a non-member
        // says never counts (votes and acknowledgements are counted per
        // member).
        if msg.to != self.id() || msg.from == self.id() || msg.from == NodeId(0) {
            debug!(
                "{} {}: dropped {} from {} to {}: not for us",
                self.id(),
                self.term,
                msg.body.name(),
                msg.from,
                msg.to
            );
            return;
        }
        if self.halted.is_some() {
            return;
        }
        if msg.term > TERM_LIMIT {
            debug!(
                "{} {}: dropped {} from {} at {}: term beyond any real cluster's",
                self.id(),
                self.term,
                msg.body.name(),
                msg.from,
                msg.term
            );
            return;
        }
        match &msg.body {
            MessageBody::AppendEntries(req) => {
                // Judge the body before the term: a malformed message must
                // not change the term or the leader.
                if let Err(reason) = check_append(req, msg.term) {
                    debug!(
                        "{} {}: dropped AppendEntries from {}: {}",
                        self.id(),
                        self.term,
                        msg.from,
                        reason
                    );
                    return;
                }
            }
            MessageBody::SnapshotChunk(_) | MessageBody::SnapshotAck(_) => {
                debug!("{} {}: dropped {}: the runtime moves those", self.id(), self.term, msg.body.name());
                return;
            }
            _ => {}
        }
        if !self.admit_term(now, &msg) {
            return;
        }
        // CheckQuorum counts a follower as present only when it answers this
        // leader; other messages (a pre-vote, a stale reply) prove nothing.
        if matches!(msg.body, MessageBody::AppendEntriesResponse(_) | MessageBody::HeartbeatResponse(_)) {
            self.heard_from_follower(now, msg.from, msg.from_incarnation);
        }
        let from = msg.from;
        let term = msg.term;
        match msg.body {
            MessageBody::RequestVote(req) => self.on_request_vote(now, from, term, req),
            MessageBody::RequestVoteResponse(resp) => {
                self.on_vote_response(now, from, msg.from_incarnation, term, resp)
            }
            MessageBody::AppendEntries(req) => self.on_append_entries(now, from, req),
            MessageBody::AppendEntriesResponse(resp) => self.on_append_response(now, from, resp),
            MessageBody::Heartbeat(hb) => self.on_heartbeat(now, from, hb),
            MessageBody::HeartbeatResponse(resp) => self.on_heartbeat_response(now, from, resp),
            MessageBody::TimeoutNow => self.on_timeout_now(now, from),
            MessageBody::ReadIndex(req) => self.on_read_index(now, from, req),
            MessageBody::ReadIndexResponse(resp) => self.on_read_index_response(from, resp),
            MessageBody::Propose(p) => self.on_propose(now, from, p),
            MessageBody::SnapshotChunk(_) | MessageBody::SnapshotAck(_) => {}
        }
    }

    /// Handles the passing of time: elections, heartbeats, quorum checks.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.halted.is_some() {
            return;
        }
        if self.election_deadline.is_some_and(|d| d <= now) {
            self.on_election_timeout(now);
        }
        if self.heartbeat_deadline.is_some_and(|d| d <= now) {
            self.start_round(now);
        }
        if self.check_quorum_deadline.is_some_and(|d| d <= now) {
            self.check_quorum(now);
        }
        self.check_transfer_deadline(now);
        self.expire_forwarded_reads(now);
        self.watch_persistence(now);
    }

    /// Reports that the write `id` handed out by [`poll_persist`](Node::poll_persist),
    /// and every write before it, is durable. Reporting an id twice, or a
    /// lower one later, is harmless.
    pub fn handle_persisted(&mut self, now: Instant, id: PersistId) {
        assert!(
            id < self.next_persist_id,
            "handle_persisted({id:?}) for a write never handed out (last was {:?})",
            PersistId(self.next_persist_id.0 - 1)
        );
        if id <= self.durable_id {
            return;
        }
        let persisted_before = self.log.persisted();
        self.durable_id = id;
        self.log.persisted_to(id);
        if self.role == Role::Leader {
            let mut index = persisted_before.next();
            while index <= self.log.persisted() {
                let bytes = self.log.entry(index).map_or(0, Entry::size_bytes);
                self.unpersisted_bytes = self.unpersisted_bytes.saturating_sub(bytes);
                index = index.next();
            }
        }
        self.persistence_progressed(now);
        self.check_repaired();
        // Usually the ready messages are at the front, where removal is O(1).
        let mut k = 0;
        while k < self.held.len() {
            if self.held[k].0 <= id {
                let (_, msg) = self.held.remove(k).expect("k is in range");
                self.outbox.push_back(msg);
            } else {
                k += 1;
            }
        }
        match self.role {
            Role::Candidate | Role::PreCandidate => self.tally_votes(now),
            Role::Leader => self.maybe_commit(now),
            Role::Follower => {}
        }
    }

    /// Reports that the application applied every entry up to `index` (all of
    /// them handed out by [`poll_apply`](Node::poll_apply)).
    pub fn handle_applied(&mut self, index: LogIndex) {
        let before = self.log.applied();
        self.log.applied_to(index);
        self.on_applied_for_reads();
        self.maybe_request_snapshot(before);
    }

    /// Reports that messages to `peer` are not getting through (a broken
    /// connection, a full send queue). A leader stops streaming to it and
    /// probes instead, so it does not pile up messages that will be lost.
    pub fn handle_unreachable(&mut self, peer: NodeId) {
        if self.role != Role::Leader {
            return;
        }
        if let Some(p) = self.peer_mut(peer) {
            if p.state == ProgressState::Replicate {
                debug!("{peer} unreachable: back to probing");
                p.become_probe();
            }
        }
    }

    /// Starts an election now instead of waiting for the election timeout
    /// (with a pre-vote round first if configured). Does nothing on a leader,
    /// nor, with [`Config::lease_reads`], while this node still refuses
    /// votes for a leader whose lease may count on it: voting for itself
    /// would break that lease. (Use
    /// [`transfer_leadership`](Node::transfer_leadership) to move a healthy
    /// leader.)
    pub fn campaign(&mut self, now: Instant) {
        if self.role == Role::Leader
            || !self.may_campaign()
            || (self.config.lease_reads && self.in_leader_lease(now))
        {
            return;
        }
        self.start_election(now);
    }

    // ---------------------------------------------------------------- outputs

    /// The next write to make durable. See [`Persist`] for how to apply it.
    pub fn poll_persist(&mut self) -> Option<Persist> {
        if !self.hard_state_dirty && !self.log.has_unstable() && self.snapshot_to_persist.is_none() {
            return None;
        }
        let id = self.next_persist_id;
        self.next_persist_id = PersistId(id.0 + 1);
        let mut entries = Vec::new();
        if self.log.has_unstable() {
            self.log.take_unstable(id, &mut entries);
        }
        let hard_state = std::mem::take(&mut self.hard_state_dirty).then(|| self.hard_state());
        let snapshot = self.snapshot_to_persist.take();
        Some(Persist { id, snapshot, entries, hard_state })
    }

    /// The next message to send.
    pub fn poll_send(&mut self) -> Option<Message> {
        if !self.forward_queue.is_empty() {
            self.flush_forwarded();
        }
        self.start_requested_round();
        if self.replication_pending {
            self.replication_pending = false;
            self.flush_replication();
        }
        self.outbox.pop_front()
    }

    /// The next committed entry to apply, in index order. Blank entries
    /// (a new leader's first) are handed out too, so that the application can
    /// report their index as applied.
    pub fn poll_apply(&mut self) -> Option<Entry> {
        self.log.next_to_apply()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Node::handle_timeout) should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.election_deadline,
            self.heartbeat_deadline,
            self.check_quorum_deadline,
            self.transfer.map(|t| t.deadline),
            self.reads.next_expiry(),
            self.persist_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // ------------------------------------------------------------- internals

    fn hard_state(&self) -> HardState {
        HardState { term: self.term, vote: self.vote, commit: self.log.commit() }
    }

    fn peer_mut(&mut self, id: NodeId) -> Option<&mut Progress> {
        let k = self.peers.binary_search_by_key(&id, |p| p.id).ok()?;
        self.peers.get_mut(k)
    }

    /// Records a change of term or vote: it goes into the next write, and
    /// every message from now on waits for that write.
    fn term_or_vote_changed(&mut self) {
        self.hard_state_dirty = true;
        self.term_vote_id = self.next_persist_id;
    }

    fn commit_changed(&mut self) {
        self.hard_state_dirty = true;
    }

    /// A message from this node to `to` in `term`.
    fn message(&self, to: NodeId, term: Term, body: MessageBody) -> Message {
        Message { from: self.id(), to, term, from_incarnation: self.incarnation, body }
    }

    /// Queues a message that needs nothing more durable than the current term
    /// and vote.
    fn send(&mut self, to: NodeId, body: MessageBody) {
        self.send_after(PersistId(0), to, body);
    }

    /// Queues a message that may leave only once write `needed` (and the
    /// write holding the current term and vote) is durable.
    fn send_after(&mut self, needed: PersistId, to: NodeId, body: MessageBody) {
        let msg = self.message(to, self.term, body);
        self.queue(needed, msg);
    }

    /// Queues a fully formed message that needs nothing more durable than the
    /// current term and vote.
    fn send_message(&mut self, msg: Message) {
        self.queue(PersistId(0), msg);
    }

    fn queue(&mut self, needed: PersistId, msg: Message) {
        let needed = needed.max(self.term_vote_id);
        if needed <= self.durable_id {
            self.outbox.push_back(msg);
        } else {
            self.held.push_back((needed, msg));
        }
    }

    /// The write after which entries up to `index` are durable.
    fn write_covering(&self, index: LogIndex) -> PersistId {
        match self.log.durability_of(index) {
            Durability::Durable => PersistId(0),
            Durability::InFlight => PersistId(self.next_persist_id.0 - 1),
            Durability::Unstable => self.next_persist_id,
        }
    }

    fn set_role(&mut self, role: Role) {
        if self.role != role {
            info!("{} {}: {} -> {}", self.id(), self.term, self.role, role);
            self.role = role;
            self.events.push_back(Event::RoleChanged { role, term: self.term });
        }
    }

    fn set_leader(&mut self, leader: Option<NodeId>) {
        if self.leader != leader {
            if let Some(l) = leader {
                info!("{} {}: leader is {}", self.id(), self.term, l);
            }
            self.fail_unconfirmed_reads(leader);
            if leader.is_some() {
                self.settle_transfer_outcome(leader);
            }
            self.leader = leader;
            self.events.push_back(Event::LeaderChanged { leader, term: self.term });
        }
    }
}

/// The highest term a message may carry. No cluster elects 2^63 times; a
/// term near `u64::MAX` can only come from a faulty or malicious peer, and
/// adopting it would leave no room to campaign.
pub const TERM_LIMIT: Term = Term(u64::MAX / 2);
