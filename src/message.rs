//! The messages Raft nodes exchange, as plain data. The wire layout lives in
//! [`crate::codec`]; the rules for handling each message live in the core.

use crate::types::{Entry, Incarnation, LogIndex, NodeId, Term};

/// A message from one node to another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The sender.
    pub from: NodeId,
    /// The receiver.
    pub to: NodeId,
    /// The sender's current term; for a pre-vote request, the term the sender
    /// would campaign in.
    pub term: Term,
    /// The incarnation of the sender's storage: what it says counts only if
    /// the configuration admitted that incarnation (see
    /// [`Incarnation`]).
    pub from_incarnation: Incarnation,
    /// What the message says.
    pub body: MessageBody,
}

/// The kinds of message, named as in the Raft paper.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageBody {
    /// A candidate (or pre-candidate) asks for a vote (Raft §5.2, thesis §9.6).
    RequestVote(RequestVote),
    /// The answer to [`MessageBody::RequestVote`].
    RequestVoteResponse(RequestVoteResponse),
    /// A leader replicates entries, or probes where a follower's log matches
    /// (Raft §5.3).
    AppendEntries(AppendEntries),
    /// The answer to [`MessageBody::AppendEntries`].
    AppendEntriesResponse(AppendEntriesResponse),
    /// A leader asserts its leadership and tells a follower how far it may
    /// commit. Carries no entries and needs no log check.
    Heartbeat(Heartbeat),
    /// The answer to [`MessageBody::Heartbeat`].
    HeartbeatResponse(HeartbeatResponse),
    /// A leader hands leadership over: the receiver campaigns at once,
    /// skipping pre-vote and the leader lease (thesis §3.10).
    TimeoutNow,
    /// A follower asks the leader for a read index on behalf of its client
    /// (thesis §6.4).
    ReadIndex(ReadIndex),
    /// The leader's answer to [`MessageBody::ReadIndex`].
    ReadIndexResponse(ReadIndexResponse),
    /// A follower forwards its clients' proposals to the leader.
    Propose(Propose),
    /// A piece of a snapshot file on its way to a follower. Moved by the
    /// runtime, never by the core (which drops it). Once the last piece is
    /// stored, the follower's runtime tells its core with
    /// [`Node::handle_snapshot_received`](crate::Node::handle_snapshot_received):
    /// that a snapshot arrived whole is the receiver's own knowledge, never
    /// a peer's word, so it is not a message.
    SnapshotChunk(SnapshotChunk),
    /// How much of a snapshot a follower holds. Moved by the runtime, never
    /// by the core (which drops it).
    SnapshotAck(SnapshotAck),
}

impl MessageBody {
    /// A short name for logs and traces.
    pub fn name(&self) -> &'static str {
        match self {
            MessageBody::RequestVote(r) if r.pre_vote => "PreVote",
            MessageBody::RequestVote(_) => "RequestVote",
            MessageBody::RequestVoteResponse(r) if r.pre_vote => "PreVoteResponse",
            MessageBody::RequestVoteResponse(_) => "RequestVoteResponse",
            MessageBody::AppendEntries(_) => "AppendEntries",
            MessageBody::AppendEntriesResponse(_) => "AppendEntriesResponse",
            MessageBody::Heartbeat(_) => "Heartbeat",
            MessageBody::HeartbeatResponse(_) => "HeartbeatResponse",
            MessageBody::TimeoutNow => "TimeoutNow",
            MessageBody::ReadIndex(_) => "ReadIndex",
            MessageBody::ReadIndexResponse(_) => "ReadIndexResponse",
            MessageBody::Propose(_) => "Propose",
            MessageBody::SnapshotChunk(_) => "SnapshotChunk",
            MessageBody::SnapshotAck(_) => "SnapshotAck",
        }
    }
}

/// A request for a vote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestVote {
    /// A pre-vote asks "would you vote for me?" without disturbing anyone's
    /// term: the sender campaigns for real only if a quorum says yes.
    pub pre_vote: bool,
    /// The index of the candidate's last log entry.
    pub last_log_index: LogIndex,
    /// The term of the candidate's last log entry.
    pub last_log_term: Term,
    /// The candidate campaigns because the leader handed over leadership
    /// ([`MessageBody::TimeoutNow`]): voters disregard their leader lease.
    pub leadership_transfer: bool,
}

/// The answer to a vote request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestVoteResponse {
    /// Whether this answers a pre-vote.
    pub pre_vote: bool,
    /// Whether the vote is granted.
    pub granted: bool,
}

/// Entries to append after a given position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendEntries {
    /// The index of the entry just before `entries`.
    pub prev_log_index: LogIndex,
    /// The term of the entry at `prev_log_index`.
    pub prev_log_term: Term,
    /// Consecutive entries starting at `prev_log_index + 1`; empty for a probe.
    pub entries: Vec<Entry>,
    /// The leader's commit index.
    pub leader_commit: LogIndex,
}

/// The answer to [`AppendEntries`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendEntriesResponse {
    /// The follower's log matches the leader's up to and including
    /// `match_index`, and those entries are durable on the follower.
    Accepted {
        /// The last index known to match the leader's log.
        match_index: LogIndex,
    },
    /// The follower's log does not contain an entry at `rejected_index` with
    /// the term the leader named.
    Rejected {
        /// The `prev_log_index` of the rejected request.
        rejected_index: LogIndex,
        /// The largest index at or below `rejected_index` whose term in the
        /// follower's log is at most the requested `prev_log_term`: no index
        /// between it and `rejected_index` can match, so the leader can skip
        /// them all (fast backtracking).
        hint_index: LogIndex,
        /// The term of the follower's entry at `hint_index`.
        hint_term: Term,
    },
}

/// A leader's heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    /// `min(leader commit, follower's match index)`: an index the follower
    /// acknowledged, up to which it may commit if its log still holds the
    /// entry there with `commit_term` (then, by Log Matching, its log
    /// matches the leader's that far). A follower whose log does not hold
    /// it lost entries it acknowledged.
    pub commit: LogIndex,
    /// The term of the leader's entry at `commit`.
    pub commit_term: Term,
    /// The leader's confirmation round: each heartbeat starts a new one, and
    /// a read waiting for round `r` is safe to serve once a quorum has
    /// answered a heartbeat of round `r` or later.
    pub round: u64,
}

/// The answer to a [`Heartbeat`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeartbeatResponse {
    /// The round of the heartbeat answered.
    pub round: u64,
    /// The index of the follower's last log entry when it answered. A
    /// leader that recorded a higher match index before this round began
    /// learns that the follower lost entries it had acknowledged.
    pub last_index: LogIndex,
    /// What keeps the follower's disk from taking writes, if anything: a
    /// leader whose own disk cannot write hands leadership only to a
    /// follower whose disk can.
    pub disk: Option<crate::types::DiskTrouble>,
}

/// A follower's request for a read index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadIndex {
    /// The follower's number for this request, echoed back: issued by its
    /// core, a new one per request (never the caller's `ctx`, which a caller
    /// may reuse), so that an answer arriving after its request expired
    /// cannot serve a later read.
    pub request_id: u64,
}

/// The leader's answer to a [`ReadIndex`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadIndexResponse {
    /// The `request_id` of the [`ReadIndex`] answered.
    pub request_id: u64,
    /// The index the follower must apply before serving the read; `None` if
    /// the receiver could not serve it (not the leader, or overloaded).
    pub index: Option<LogIndex>,
}

/// Proposals a follower forwards to the leader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Propose {
    /// The commands, in the order they were proposed.
    pub commands: Vec<crate::types::Bytes>,
}

/// The most entry bytes (as counted by [`Entry::size_bytes`]) any message may
/// carry on the wire. Decoders reject more before allocating; a
/// [`crate::Config`] cannot ask for more.
pub const ENTRIES_BYTES_LIMIT: u64 = 64 << 20;

/// See [`MessageBody::SnapshotChunk`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotChunk {
    /// The last index the snapshot covers.
    pub index: LogIndex,
    /// The term of that index.
    pub snapshot_term: Term,
    /// Where `data` lies in the snapshot file.
    pub offset: u64,
    /// The size of the whole file.
    pub total_bytes: u64,
    /// The bytes.
    pub data: crate::types::Bytes,
}

/// See [`MessageBody::SnapshotAck`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotAck {
    /// The last index the snapshot covers.
    pub index: LogIndex,
    /// The term of that index.
    pub snapshot_term: Term,
    /// The follower holds the file's first `received` bytes: the offset the
    /// leader should send next.
    pub received: u64,
    /// The follower gave up on this transfer (the file failed its checksum,
    /// its disk failed): the leader should start over later.
    pub failed: bool,
}
