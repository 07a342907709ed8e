//! The data the core hands out and takes in: roles, events, writes, errors
//! and status snapshots.

use std::fmt;

use crate::config::ConfigError;
use crate::membership::{Membership, MembershipError, SnapshotMeta};
use crate::types::{Entry, HardState, Incarnation, Instant, LogIndex, NodeId, Term};

pub use super::progress::ProgressState;

/// A node's role in its current term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Follows a leader, or waits for one.
    Follower,
    /// Asks whether it could win an election, without changing its term.
    PreCandidate,
    /// Campaigns for votes in its current term.
    Candidate,
    /// Leads the current term.
    Leader,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// How the configuration in force regards this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Admission {
    /// A voter (of either half of a joint configuration) that the
    /// configuration admits as this node's incarnation.
    Voter,
    /// A learner: receives the log, never counts.
    Learner,
    /// Not a member: waiting to be added (or bootstrapped), or removed.
    NotMember,
    /// The configuration lists this node's id as a voter admitted with
    /// another incarnation: this node lost or replaced its storage since.
    /// It still receives the log, but counts in no quorum (votes,
    /// acknowledgements, read confirmations, leases) until a membership
    /// change re-admits it ([`MembershipChange::Readmit`](crate::MembershipChange::Readmit)).
    Refused {
        /// The incarnation the configuration admitted.
        admitted: Incarnation,
        /// This node's.
        ours: Incarnation,
    },
}

impl fmt::Display for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Admission::Voter => f.write_str("voter"),
            Admission::Learner => f.write_str("learner"),
            Admission::NotMember => f.write_str("not a member"),
            Admission::Refused { admitted, ours } => write!(
                f,
                "refused: the cluster admitted this node's id with storage incarnation {admitted}, \
                 but this data directory is incarnation {ours} (the node lost or replaced its disk); \
                 it counts in no quorum until re-admitted"
            ),
        }
    }
}

pub use crate::types::DiskTrouble;

/// Something a runtime may want to log or count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The node's role changed.
    RoleChanged {
        /// The new role.
        role: Role,
        /// The term it holds it in.
        term: Term,
    },
    /// The node learned of a new leader, or lost track of it.
    LeaderChanged {
        /// The leader, if known.
        leader: Option<NodeId>,
        /// The term of that knowledge.
        term: Term,
    },
    /// The node moved to a newer term.
    TermChanged {
        /// The new term.
        term: Term,
    },
    /// This leader started handing leadership to `to`; it refuses proposals
    /// until the transfer ends.
    TransferStarted {
        /// The chosen successor.
        to: NodeId,
    },
    /// The transfer did not complete within an election timeout; this node
    /// leads on and accepts proposals again. (A transfer that succeeds shows
    /// as a [`Event::LeaderChanged`].)
    TransferAbandoned {
        /// The successor that did not take over.
        to: NodeId,
    },
    /// How the configuration regards this node changed (see [`Admission`]);
    /// a runtime should say so where operators look, above all when it
    /// becomes [`Admission::Refused`].
    AdmissionChanged {
        /// The new standing.
        admission: Admission,
    },
    /// The node's disk stopped, or started again, taking writes (see
    /// [`DiskTrouble`]); `None` once it does.
    DiskTroubleChanged {
        /// What keeps it from writing, if anything.
        trouble: Option<DiskTrouble>,
    },
    /// This node stopped taking part for good: what it was sent contradicts
    /// what it knows is committed (a leader whose log lacks committed
    /// entries: the cluster lost acknowledged writes, or this node's
    /// storage is not what it claims). It ignores every input from now on;
    /// the runtime should stop it and tell the operator `reason`.
    Halted {
        /// What was found, for the operator.
        reason: String,
    },
}

/// The number of a write handed out by [`Node::poll_persist`](crate::Node::poll_persist). Writes are
/// numbered consecutively from 1 in the order they are handed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PersistId(pub u64);

/// A write the node needs made durable.
///
/// Apply it to storage in this order: if `snapshot` is set, make the stored
/// log continue that snapshot (which the runtime already stored durably): if
/// the stored entry at `snapshot.index` has `snapshot.term`, the entries up to
/// it may be dropped; otherwise drop every stored entry and start the log
/// after the snapshot. Then, if `entries` is not empty, delete every stored
/// entry at or after `entries[0].index`, then append `entries`; then, if
/// `hard_state` is set, store it. Once this write and every earlier one
/// are durable (fsync), call [`Node::handle_persisted`](crate::Node::handle_persisted) with its `id`. Storage
/// must never make a later write durable without the earlier ones: if the
/// hard state lives apart from the log, sync the log first.
///
/// One exception saves an fsync per commit: a write with no entries whose
/// hard state differs from the last one written only in `commit` may be
/// reported at once, unsynced (it becomes durable with the next sync). The
/// node never promises a peer anything on the strength of its stored
/// commit index: a crash that loses it only makes the node learn it again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Persist {
    /// The write's number, for [`Node::handle_persisted`](crate::Node::handle_persisted).
    pub id: PersistId,
    /// A snapshot just installed, which the stored log must now continue.
    pub snapshot: Option<SnapshotMeta>,
    /// Entries to append, consecutive, replacing any stored suffix from the
    /// first one's index.
    pub entries: Vec<Entry>,
    /// The new hard state, if it changed.
    pub hard_state: Option<HardState>,
}

/// What a node recovers from durable storage when it starts.
#[derive(Clone, Debug, Default)]
pub struct RecoveredState {
    /// The last durable hard state; all zero for a new node.
    pub hard_state: HardState,
    /// The latest durable snapshot, if any.
    pub snapshot: Option<SnapshotMeta>,
    /// The durable log, consecutive from the index after the snapshot's
    /// (from 1 without one).
    pub entries: Vec<Entry>,
    /// The index up to which the application's state already reflects the
    /// log. Entries at or below it are not handed to [`Node::poll_apply`](crate::Node::poll_apply)
    /// again. If it is below the snapshot's index, the node first asks for
    /// the snapshot to be restored ([`SnapshotAction::Install`](crate::core::SnapshotAction::Install)).
    pub applied: LogIndex,
    /// The incarnation of the storage this state came from (see
    /// [`Incarnation`]): what the node speaks from and what a configuration
    /// must admit for it to count. [`Incarnation::UNKNOWN`] for a node
    /// without a durable identity (tests, single-process clusters).
    pub incarnation: Incarnation,
    /// Recovery found the log shorter than it once was durably: committed
    /// entries up to this index, which this node held and acknowledged, are
    /// gone (a disk that lied about a sync, a log restored from an older
    /// copy). The node then neither votes nor campaigns until a leader has
    /// given it back its log that far, so that its vote can never help
    /// elect a leader that lacks them. `LogIndex(0)`: nothing known lost.
    pub repair_to: LogIndex,
}

/// Why a node could not be created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartError {
    /// The configuration is invalid.
    Config(ConfigError),
    /// The recovered state contradicts itself: the storage it came from is
    /// damaged or belongs to another node.
    State(RecoveryError),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Config(e) => e.fmt(f),
            StartError::State(e) => write!(f, "recovered state is inconsistent: {e}"),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::Config(e) => Some(e),
            StartError::State(e) => Some(e),
        }
    }
}

impl From<RecoveryError> for StartError {
    fn from(e: RecoveryError) -> StartError {
        StartError::State(e)
    }
}

/// How a [`RecoveredState`] contradicts itself. Storage that passed its own
/// checks (CRCs, a contiguous log) never produces one: it means the state
/// was assembled from pieces that do not belong together (another node's
/// log, a log and a hard state from different times) or a bug.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecoveryError {
    /// The stored term is larger than any real cluster reaches: the hard
    /// state is damaged.
    TermTooLarge {
        /// The stored term.
        term: Term,
    },
    /// The entries do not follow one another (or the snapshot).
    IndexGap {
        /// The index found.
        found: LogIndex,
        /// The index that should be there.
        expected: LogIndex,
    },
    /// An entry's term is lower than the one before it.
    TermDecreases {
        /// The entry.
        index: LogIndex,
    },
    /// The log holds a term newer than the stored current term.
    LogAheadOfTerm {
        /// The last entry's term.
        log_term: Term,
        /// The stored current term.
        stored_term: Term,
    },
    /// The application says it applied entries the log does not hold.
    AppliedBeyondLog {
        /// What the application applied.
        applied: LogIndex,
        /// The log's last index.
        last: LogIndex,
    },
    /// A membership entry does not decode.
    BadMembership {
        /// The entry.
        index: LogIndex,
        /// What is wrong with it.
        error: crate::membership::MembershipDecodeError,
    },
}

impl fmt::Display for RecoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecoveryError::TermTooLarge { term } => {
                write!(f, "stored term {term} is beyond any real cluster's")
            }
            RecoveryError::IndexGap { found, expected } => {
                write!(f, "entry {found} found where {expected} was expected")
            }
            RecoveryError::TermDecreases { index } => write!(f, "term decreases at {index}"),
            RecoveryError::LogAheadOfTerm { log_term, stored_term } => {
                write!(f, "log holds term {log_term} beyond the stored term {stored_term}")
            }
            RecoveryError::AppliedBeyondLog { applied, last } => {
                write!(
                    f,
                    "the application applied up to {applied} but the log ends at {last}: entries were lost"
                )
            }
            RecoveryError::BadMembership { index, error } => write!(f, "membership entry {index}: {error}"),
        }
    }
}

impl std::error::Error for RecoveryError {}

impl From<ConfigError> for StartError {
    fn from(e: ConfigError) -> StartError {
        StartError::Config(e)
    }
}

/// Why a proposal was refused. Nothing was appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProposeError {
    /// Only the leader accepts proposals; retry at the hinted node, if any.
    NotLeader {
        /// The leader this node knows of.
        leader_hint: Option<NodeId>,
    },
    /// The leader holds `uncommitted_bytes_max` of uncommitted proposals;
    /// retry once some commit.
    Backpressure,
    /// The leader is handing leadership over; retry at the new leader.
    TransferInProgress {
        /// The successor.
        to: NodeId,
    },
    /// The command exceeds `entry_bytes_max`.
    EntryTooLarge {
        /// The command's size.
        bytes: u64,
        /// The limit.
        max: u64,
    },
    /// This leader's disk cannot take writes; it is handing leadership to a
    /// node whose disk can. Retry shortly (at the new leader).
    Disk(DiskTrouble),
}

impl fmt::Display for ProposeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProposeError::NotLeader { leader_hint: Some(id) } => write!(f, "not the leader; try {id}"),
            ProposeError::NotLeader { leader_hint: None } => write!(f, "not the leader; no leader known"),
            ProposeError::Backpressure => write!(f, "too many uncommitted proposals; retry later"),
            ProposeError::TransferInProgress { to } => write!(f, "leadership is moving to {to}; retry there"),
            ProposeError::EntryTooLarge { bytes, max } => {
                write!(f, "command of {bytes} bytes exceeds entry_bytes_max {max}")
            }
            ProposeError::Disk(trouble) => write!(f, "{trouble}; retry shortly"),
        }
    }
}

impl std::error::Error for ProposeError {}

/// A snapshot of a node's state, for operators and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// The node's id.
    pub id: NodeId,
    /// Its role.
    pub role: Role,
    /// Its current term.
    pub term: Term,
    /// The leader it knows of.
    pub leader: Option<NodeId>,
    /// Its commit index.
    pub commit: LogIndex,
    /// The index the application reported applied.
    pub applied: LogIndex,
    /// Its last log index.
    pub last_index: LogIndex,
    /// The end of its durable log prefix.
    pub persisted: LogIndex,
    /// The first index its log holds (entries below were compacted).
    pub first_index: LogIndex,
    /// The index its latest snapshot covers (0 without one).
    pub snapshot_index: LogIndex,
    /// The configuration in force.
    pub membership: Membership,
    /// This node's storage incarnation.
    pub incarnation: Incarnation,
    /// How the configuration in force regards this node.
    pub admission: Admission,
    /// Nonzero while this node repairs a log that lost committed entries
    /// (see [`RecoveredState::repair_to`]): it does not vote until its log
    /// reaches this index again.
    pub repair_to: LogIndex,
    /// Why this node halted, if it did (see [`Event::Halted`]).
    pub halted: Option<String>,
    /// What keeps its disk from taking writes, if anything.
    pub disk: Option<DiskTrouble>,
    /// Replication progress per follower; empty unless leader.
    pub peers: Vec<PeerStatus>,
}

/// A leader's view of one follower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    /// The follower.
    pub id: NodeId,
    /// Its log matches the leader's, durably, up to here.
    pub match_index: LogIndex,
    /// The next index to send it.
    pub next_index: LogIndex,
    /// Probe or Replicate.
    pub state: ProgressState,
    /// AppendEntries sent and not acknowledged.
    pub inflight_messages: usize,
    /// Entry bytes sent and not acknowledged.
    pub inflight_bytes: u64,
    /// When it was last heard from in this term.
    pub last_heard: Option<Instant>,
    /// The incarnation it speaks from, once heard.
    pub incarnation: Incarnation,
    /// Whether the configuration counts it: a voter speaking from the
    /// incarnation admitted for it. A voter that lost its disk shows
    /// `false` here until re-admitted.
    pub counted: bool,
}

/// Where an accepted proposal went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proposed {
    /// Appended to this leader's log at `index`. It is committed once
    /// [`Node::poll_apply`](crate::Node::poll_apply)(crate::Node::poll_apply) hands it out; if this
    /// leader loses its term first, another entry may take the index.
    Appended {
        /// The entry's index.
        index: LogIndex,
    },
    /// Forwarded to the leader `to` (a follower with
    /// [`Config::forward_proposals`](crate::Config::forward_proposals)). The
    /// leader may drop it (deposed, overloaded): only the entries applied
    /// tell the outcome, so carry your own request id in the command.
    Forwarded {
        /// The leader it was sent to.
        to: NodeId,
    },
}

impl Proposed {
    /// The index the command was appended at, if it was appended here.
    pub fn index(self) -> Option<LogIndex> {
        match self {
            Proposed::Appended { index } => Some(index),
            Proposed::Forwarded { .. } => None,
        }
    }
}

/// A read that may now be served, or that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadReady {
    /// The caller's identifier, as given to [`Node::read_index`](crate::Node::read_index).
    pub ctx: u64,
    /// On success, the read index: this node's state machine has applied at
    /// least that far, so a query on it now is linearizable.
    pub result: Result<LogIndex, ReadError>,
}

/// Why a read could not be served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadError {
    /// No leader is known (or, for [`ReadError::NotLeader`] from a leader
    /// without forwarding, this node does not lead); retry later or at the
    /// hinted node.
    NotLeader {
        /// The leader this node knows of.
        leader_hint: Option<NodeId>,
    },
    /// `pending_reads_max` reads are already waiting; retry later.
    Backpressure,
    /// The leader lost its leadership (or the follower its leader) before the
    /// read was confirmed: retry.
    LeadershipLost,
    /// The leader did not answer a forwarded read in time: retry.
    Timeout,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::NotLeader { leader_hint: Some(id) } => write!(f, "not the leader; try {id}"),
            ReadError::NotLeader { leader_hint: None } => write!(f, "no leader known; retry later"),
            ReadError::Backpressure => write!(f, "too many reads waiting; retry later"),
            ReadError::LeadershipLost => write!(f, "leadership changed before the read was confirmed; retry"),
            ReadError::Timeout => write!(f, "the leader did not confirm the read in time; retry"),
        }
    }
}

impl std::error::Error for ReadError {}

/// Why a leadership transfer could not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferError {
    /// Only the leader can hand over leadership.
    NotLeader {
        /// The leader this node knows of.
        leader_hint: Option<NodeId>,
    },
    /// The target is not a voter of this cluster.
    NotAVoter(NodeId),
    /// The target is this node, which already leads.
    ToSelf,
    /// A transfer is already under way.
    InProgress {
        /// Its target.
        to: NodeId,
    },
}

impl fmt::Display for TransferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransferError::NotLeader { leader_hint: Some(id) } => write!(f, "not the leader; ask {id}"),
            TransferError::NotLeader { leader_hint: None } => write!(f, "not the leader; no leader known"),
            TransferError::NotAVoter(id) => write!(f, "{id} is not a voter"),
            TransferError::ToSelf => write!(f, "this node already leads"),
            TransferError::InProgress { to } => write!(f, "a transfer to {to} is already under way"),
        }
    }
}

impl std::error::Error for TransferError {}

/// Why a membership change was refused. Nothing was appended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MembershipChangeError {
    /// Only the leader changes the membership; retry at the hinted node.
    NotLeader {
        /// The leader this node knows of.
        leader_hint: Option<NodeId>,
    },
    /// The leader is handing leadership over; retry at the new leader.
    TransferInProgress {
        /// The successor.
        to: NodeId,
    },
    /// This leader has not yet committed an entry of its own term; retry
    /// shortly.
    NotReady,
    /// The previous change is not complete (uncommitted, or still joint);
    /// retry once it is.
    InProgress,
    /// The change does not apply to the current membership.
    Invalid(MembershipError),
    /// The node to promote or re-admit has not been heard from yet (its
    /// incarnation is unknown): start it, let it catch up, then retry.
    NotHeard(NodeId),
    /// The voter to re-admit already speaks from the incarnation admitted
    /// for it: nothing to do.
    AlreadyAdmitted(NodeId),
    /// This leader's disk cannot take writes; retry shortly (at the new
    /// leader).
    Disk(DiskTrouble),
    /// Too few of the new configuration's voters are reachable and admitted
    /// for it ever to commit: the cluster would be stuck in the middle of
    /// the change. Bring voters back (or re-admit those that lost their
    /// disk) first.
    WouldLoseQuorum {
        /// Voters of the new configuration heard from lately, speaking from
        /// their admitted incarnation (this node included).
        live: usize,
        /// A majority of the new configuration.
        needed: usize,
    },
}

impl fmt::Display for MembershipChangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MembershipChangeError::NotLeader { leader_hint: Some(id) } => {
                write!(f, "not the leader; try {id}")
            }
            MembershipChangeError::NotLeader { leader_hint: None } => {
                write!(f, "not the leader; no leader known")
            }
            MembershipChangeError::TransferInProgress { to } => {
                write!(f, "leadership is moving to {to}; retry there")
            }
            MembershipChangeError::NotReady => {
                write!(f, "the new leader has not committed an entry of its term yet; retry shortly")
            }
            MembershipChangeError::InProgress => {
                write!(f, "a membership change is still in progress; retry once it completes")
            }
            MembershipChangeError::Invalid(e) => e.fmt(f),
            MembershipChangeError::NotHeard(id) => write!(
                f,
                "{id} has not been heard from yet; start it (with --join if its data directory is new), let it catch up, then retry"
            ),
            MembershipChangeError::Disk(trouble) => write!(f, "{trouble}; retry shortly"),
            MembershipChangeError::WouldLoseQuorum { live, needed } => write!(
                f,
                "the new configuration would have {live} live, admitted voters, fewer than the {needed} it needs \
                 to commit; bring voters back (or re-admit those that lost their disk) first"
            ),
            MembershipChangeError::AlreadyAdmitted(id) => {
                write!(f, "{id} already speaks from the incarnation the cluster admitted; nothing to re-admit")
            }
        }
    }
}

impl std::error::Error for MembershipChangeError {}

/// Why [`Node::bootstrap`](crate::Node::bootstrap) refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BootstrapError {
    /// The node already has state: a log, a snapshot or a term. Bootstrapping
    /// is for brand-new nodes only; this one belongs to a cluster already.
    NotEmpty,
    /// The configuration does not list this node as a voter admitted with
    /// its own incarnation.
    NotAVoter,
}

impl fmt::Display for BootstrapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootstrapError::NotEmpty => {
                write!(f, "this node already has a log or a term: it belongs to a cluster and cannot bootstrap another")
            }
            BootstrapError::NotAVoter => {
                write!(
                    f,
                    "the bootstrap configuration must list this node as a voter with its own incarnation"
                )
            }
        }
    }
}

impl std::error::Error for BootstrapError {}
