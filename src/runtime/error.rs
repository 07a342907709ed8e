//! The runtime's errors: why a node could not start, why it stopped, and
//! what the caller of a request may conclude from the error it got.
//!
//! Every [`RequestError`] says whether the command may have been appended
//! to the log. Only [`RequestError::OutcomeUnknown`] leaves that open; every
//! other error guarantees nothing was, so a retry cannot apply a command
//! twice.

use std::error::Error;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::ConfigError;
use crate::core::{DiskTrouble, ProposeError, ReadError};
use crate::membership::Membership;
use crate::session::{SessionId, SessionRefusal};
use crate::storage::StorageError;
use crate::types::{LogIndex, NodeId};

/// Why a node could not start.
#[derive(Debug)]
pub enum StartError {
    /// A setting of the [`RuntimeConfig`](super::RuntimeConfig) or the peer
    /// list is wrong: `field` names it (`peers` for the peer list), and
    /// `reason` says what to fix.
    Config(ConfigError),
    /// The data directory could not be opened or recovered.
    Storage(StorageError),
    /// The recovered log does not make a valid node.
    Core(crate::core::StartError),
    /// The node was started with
    /// [`peers_are_voters`](super::RuntimeConfig::peers_are_voters), and
    /// its data directory belongs to a cluster whose voters are others than
    /// the peers given: a directory made for another cluster shape. Nothing
    /// was changed.
    PeersDiffer {
        /// The data directory.
        data_dir: PathBuf,
        /// The configuration its log (or snapshot) holds.
        stored: Box<Membership>,
        /// The ids of the peers given at start, this node included.
        given: Vec<NodeId>,
    },
    /// The raft address could not be listened on.
    Listen {
        /// The address.
        addr: SocketAddr,
        /// What the OS said.
        error: std::io::Error,
    },
    /// A thread could not be started.
    Thread(std::io::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Config(e) => write!(f, "invalid configuration: {}: {}", e.field, e.reason),
            StartError::Storage(e) => write!(f, "cannot open the data directory: {e}"),
            StartError::Core(e) => write!(f, "cannot start the node: {e}"),
            StartError::PeersDiffer { data_dir, stored, given } => {
                let ids = |ids: &mut dyn Iterator<Item = NodeId>| {
                    ids.map(|id| id.0.to_string()).collect::<Vec<_>>().join(", ")
                };
                write!(
                    f,
                    "{} holds a cluster whose configuration is {stored} (members {}), but this node was \
                     started with the voters {}. Use another data directory for a new cluster (for \
                     `oar cluster`: another --dir, or --nodes {} as when the directory was made)",
                    data_dir.display(),
                    ids(&mut stored.members()),
                    ids(&mut given.iter().copied()),
                    stored.members().count(),
                )
            }
            StartError::Listen { addr, error } => write!(f, "cannot listen on {addr}: {error}"),
            StartError::Thread(e) => write!(f, "cannot start a thread: {e}"),
        }
    }
}

impl Error for StartError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            StartError::Config(e) => Some(e),
            StartError::Storage(e) => Some(e),
            StartError::Core(e) => Some(e),
            StartError::Listen { error, .. } | StartError::Thread(error) => Some(error),
            StartError::PeersDiffer { .. } => None,
        }
    }
}

/// Why a node stopped. Every caller still waiting then gets an error
/// carrying it, and [`Handle::stopped`](super::Handle::stopped) returns it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum StopReason {
    /// [`Handle::shutdown`](super::Handle::shutdown) was called.
    Shutdown,
    /// The log or the snapshot store failed (a failed write or fsync; a
    /// full disk does not stop a node, see [`RequestError::Disk`]). Nothing
    /// is retried: restart the node once the disk is fixed; recovery keeps
    /// every whole record.
    Storage(Arc<StorageError>),
    /// The state machine refused the committed entry at `index`
    /// ([`StateMachine::apply`](super::StateMachine::apply) returned an
    /// error). Every node holds that entry: find out why before
    /// restarting.
    Apply {
        /// The entry.
        index: LogIndex,
        /// What the state machine said.
        error: Arc<dyn Error + Send + Sync>,
    },
    /// A committed entry this runtime cannot read: a command shorter than
    /// its envelope, or a configuration that does not decode (a damaged log
    /// or a peer of an incompatible version).
    MalformedEntry {
        /// The entry.
        index: LogIndex,
        /// What is wrong with it.
        reason: String,
    },
    /// Writing a snapshot of the state machine at `index` failed (the state
    /// machine's `snapshot`, or the disk under it).
    TakeSnapshot {
        /// The index the snapshot was to cover.
        index: LogIndex,
        /// What failed.
        error: Arc<dyn Error + Send + Sync>,
    },
    /// Restoring the state machine from snapshot `index` failed (the state
    /// machine refused it, or it could not be read).
    Restore {
        /// The snapshot's index.
        index: LogIndex,
        /// What failed.
        error: Arc<dyn Error + Send + Sync>,
    },
    /// A runtime thread panicked: a bug; the panic message is in the log.
    Panicked {
        /// Which thread: `event loop`, `log writer` or `apply`.
        thread: &'static str,
    },
    /// The event loop's `poll` failed.
    Poll(Arc<std::io::Error>),
    /// The core halted: it was shown entries that contradict its committed
    /// log (see [`Event::Halted`](crate::Event::Halted)). Compare the logs
    /// before restarting anything.
    Halted {
        /// What the core found.
        reason: String,
    },
    /// The runtime dropped a request without answering it and without a
    /// recorded reason (its threads ended); the log says more.
    Abandoned,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::Shutdown => f.write_str("shut down"),
            StopReason::Storage(e) => write!(f, "the log failed: {e}"),
            StopReason::Apply { index, error } => write!(f, "entry {index} cannot be applied: {error}"),
            StopReason::MalformedEntry { index, reason } => {
                write!(f, "entry {index} cannot be applied: {reason}")
            }
            StopReason::TakeSnapshot { index, error } => {
                write!(f, "cannot take a snapshot at {index}: {error}")
            }
            StopReason::Restore { index, error } => write!(f, "cannot restore snapshot {index}: {error}"),
            StopReason::Panicked { thread } => write!(f, "the {thread} thread panicked; see the log"),
            StopReason::Poll(e) => write!(f, "the event loop's poll failed: {e}"),
            StopReason::Halted { reason } => write!(f, "halted: {reason}"),
            StopReason::Abandoned => f.write_str("the node's threads ended without answering; see the log"),
        }
    }
}

impl Error for StopReason {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            StopReason::Storage(e) => Some(e.as_ref()),
            StopReason::Apply { error, .. }
            | StopReason::TakeSnapshot { error, .. }
            | StopReason::Restore { error, .. } => Some(error.as_ref()),
            StopReason::Poll(e) => Some(e.as_ref()),
            _ => None,
        }
    }
}

/// Two reasons are equal when they are of the same kind and say the same
/// (the errors they carry need not be comparable themselves).
impl PartialEq for StopReason {
    fn eq(&self, other: &StopReason) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other) && self.to_string() == other.to_string()
    }
}

impl Eq for StopReason {}

/// Why a command that was handed to Raft got no answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unanswered {
    /// None came within the request timeout.
    Timeout,
    /// The node stopped first.
    Stopped(StopReason),
}

impl fmt::Display for Unanswered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unanswered::Timeout => f.write_str("no answer within the request timeout"),
            Unanswered::Stopped(reason) => write!(f, "the node stopped: {reason}"),
        }
    }
}

/// Why a request got no answer from the state machine, and what that says
/// of the command: every variant but [`OutcomeUnknown`](RequestError::OutcomeUnknown)
/// guarantees that nothing was appended to the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestError {
    /// No leader is known (an election is under way, or leadership just
    /// moved). Nothing was appended; retry shortly.
    NoLeader,
    /// The leader has too much in flight (uncommitted bytes, pending reads).
    /// Nothing was appended; retry shortly.
    Busy,
    /// The command exceeds the entry limit. Nothing was appended; a retry
    /// fails the same way.
    TooLarge {
        /// The command's size with its envelope.
        bytes: u64,
        /// `entry_bytes_max`.
        max: u64,
    },
    /// This node was removed from the cluster (or is leaving it and knows no
    /// leader): it takes no more requests. Nothing was appended; send the
    /// request to a member.
    Removed,
    /// This node's disk cannot take writes (full, or stalled), so it refused
    /// the command: nothing was appended. When it leads, leadership is
    /// moving to a node whose disk can; retry shortly.
    Disk(DiskTrouble),
    /// A request that writes nothing (a read, a status query) got no answer
    /// in time. Nothing was appended; retry.
    Timeout,
    /// The node stopped, and nothing this request asked for was appended:
    /// it was refused before it was handed to Raft, or it was a read. The
    /// node answers nothing more until restarted; use another node.
    Stopped(StopReason),
    /// A command of a [`Session`](super::Session) was refused when its
    /// entry was applied: it reached the log but changed nothing in the
    /// state machine (see [`SessionRefusal`] for each case). Retrying it in
    /// the same session fails the same way; after
    /// [`SessionRefusal::Expired`], open a new session.
    Session {
        /// The session.
        session: SessionId,
        /// Why the command was not applied.
        refusal: SessionRefusal,
    },
    /// The command was handed to Raft, and then no answer came: it may have
    /// been appended, committed and applied (on a follower, the leader may
    /// have it), or lost with a deposed leader. Read to find out before
    /// retrying a command that is not idempotent.
    OutcomeUnknown {
        /// Why no answer came.
        why: Unanswered,
    },
}

impl RequestError {
    /// Whether the command may have been appended (and so may be applied):
    /// `true` only for [`OutcomeUnknown`](RequestError::OutcomeUnknown).
    /// After any other error, retrying cannot apply the command twice
    /// ([`Session`](RequestError::Session): the entry was appended, but it
    /// applied nothing).
    pub fn may_have_been_appended(&self) -> bool {
        matches!(self, RequestError::OutcomeUnknown { .. })
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::NoLeader => write!(f, "no leader; retry shortly"),
            RequestError::Busy => write!(f, "the leader is overloaded; retry shortly"),
            RequestError::TooLarge { bytes, max } => {
                write!(f, "the command is {bytes} bytes with its envelope; the limit is {max}")
            }
            RequestError::Removed => {
                write!(f, "this node was removed from the cluster; send requests to a member")
            }
            RequestError::Disk(trouble) => write!(f, "{trouble}; nothing was written, retry shortly"),
            RequestError::Timeout => write!(f, "no answer in time; nothing was changed, retry"),
            RequestError::Stopped(reason) => write!(f, "the node stopped (nothing was appended): {reason}"),
            RequestError::Session { session, refusal } => {
                write!(f, "{session} refused the command: {refusal}")
            }
            RequestError::OutcomeUnknown { why } => write!(f, "the outcome is unknown: {why}"),
        }
    }
}

impl Error for RequestError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            RequestError::Stopped(reason)
            | RequestError::OutcomeUnknown { why: Unanswered::Stopped(reason) } => Some(reason),
            _ => None,
        }
    }
}

/// What a caller hears of a proposal the core refused.
pub(super) fn propose_error(e: ProposeError) -> RequestError {
    match e {
        ProposeError::NotLeader { .. } | ProposeError::TransferInProgress { .. } => RequestError::NoLeader,
        ProposeError::Backpressure => RequestError::Busy,
        ProposeError::EntryTooLarge { bytes, max } => RequestError::TooLarge { bytes, max },
        ProposeError::Disk(trouble) => RequestError::Disk(trouble),
    }
}

/// What a caller hears of a read the core refused.
pub(super) fn read_error(e: ReadError) -> RequestError {
    match e {
        ReadError::NotLeader { .. } | ReadError::LeadershipLost | ReadError::Timeout => {
            RequestError::NoLeader
        }
        ReadError::Backpressure => RequestError::Busy,
    }
}
