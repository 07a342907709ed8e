//! Plain data shared by every layer: identifiers, log positions, entries and
//! points in time. Nothing here does IO.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

pub use bytes::Bytes;

/// The identity of a node in a cluster. `0` is never a valid node id; it
/// stands for "nobody" on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NodeId(pub u64);

/// Which life of a node's storage a node speaks from: a number drawn at
/// random when its data directory is created and kept with its log for as
/// long as that directory lives. A node that lost its disk (or was given an
/// empty or replaced one) comes back under its old [`NodeId`] but with
/// another incarnation, and the cluster tells the two apart: a configuration
/// records the incarnation it admitted for each voter, and only that one is
/// counted in any quorum (see [`Membership`](crate::membership::Membership)).
///
/// `Incarnation::UNKNOWN` (0) is "not known": a learner whose incarnation the
/// leader has not heard yet, or a configuration built without identities
/// ([`Membership::with_voters`](crate::membership::Membership::with_voters),
/// for tests and single-process clusters), whose members are counted
/// whatever incarnation they speak from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Incarnation(pub u64);

impl Incarnation {
    /// Not known; see [`Incarnation`].
    pub const UNKNOWN: Incarnation = Incarnation(0);

    /// Whether a node speaking from `speaker` is the one a configuration
    /// admitted as `self`: the same incarnation, or any if `self` is
    /// unknown.
    pub fn admits(self, speaker: Incarnation) -> bool {
        self == Incarnation::UNKNOWN || self == speaker
    }
}

impl fmt::Display for Incarnation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A Raft term: a logical clock that increases with every election.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Term(pub u64);

/// A position in the replicated log. Index `0` is the empty prefix: the first
/// entry ever written has index `1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LogIndex(pub u64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// Parses a node id as people write it: `1`, or `n1` as logs print it.
impl std::str::FromStr for NodeId {
    type Err = NodeIdError;

    fn from_str(s: &str) -> Result<NodeId, NodeIdError> {
        let digits = s.strip_prefix('n').unwrap_or(s);
        match digits.parse::<u64>() {
            Ok(0) => Err(NodeIdError::Reserved),
            Ok(id) if digits.bytes().all(|b| b.is_ascii_digit()) => Ok(NodeId(id)),
            _ => Err(NodeIdError::NotANumber(s.chars().take(64).collect())),
        }
    }
}

/// Why a text is not a node id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeIdError {
    /// `0`, which stands for "nobody".
    Reserved,
    /// Not a number from 1 to 2^64 - 1 (the text, cut at 64 characters).
    NotANumber(String),
}

impl fmt::Display for NodeIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeIdError::Reserved => f.write_str("node id 0 is reserved; number nodes from 1"),
            NodeIdError::NotANumber(s) => {
                write!(f, "node id {s:?} is not a number; number nodes from 1 (to {})", u64::MAX)
            }
        }
    }
}

impl std::error::Error for NodeIdError {}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
    }
}

impl fmt::Display for LogIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "i{}", self.0)
    }
}

impl Term {
    /// The term after this one.
    pub fn next(self) -> Term {
        Term(self.0 + 1)
    }
}

impl LogIndex {
    /// The index after this one.
    pub fn next(self) -> LogIndex {
        LogIndex(self.0 + 1)
    }

    /// The index before this one; `LogIndex(0)` stays `0`.
    pub fn prev(self) -> LogIndex {
        LogIndex(self.0.saturating_sub(1))
    }

    /// This index moved forward by `count` entries.
    pub fn plus(self, count: u64) -> LogIndex {
        LogIndex(self.0 + count)
    }
}

/// A point in time on the embedder's monotonic clock, in nanoseconds since an
/// origin the embedder chooses (the runtime uses its start, the simulator uses
/// zero). The core never reads a clock: every input carries `now`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

impl Instant {
    /// The origin.
    pub const ZERO: Instant = Instant(0);

    /// The instant `nanos` nanoseconds after the origin.
    pub const fn from_nanos(nanos: u64) -> Instant {
        Instant(nanos)
    }

    /// Nanoseconds since the origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// How long after `earlier` this instant is; zero if it is not after it.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        let nanos = u64::try_from(rhs.as_nanos()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(nanos))
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, rhs: Duration) -> Instant {
        let nanos = u64::try_from(rhs.as_nanos()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_sub(nanos))
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}s", self.0 / 1_000_000_000, (self.0 % 1_000_000_000) / 1_000)
    }
}

/// What an entry carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum EntryKind {
    /// The empty entry a new leader appends at the start of its term so that
    /// it can commit (Raft §5.4.2). Its data is empty; the application applies
    /// nothing but must still report its index as applied.
    Blank = 0,
    /// A command for the application's state machine, opaque to Raft.
    Command = 1,
    /// A membership change: the data is an encoded
    /// [`Membership`](crate::membership::Membership), in force from the moment
    /// the entry is in a log, committed or not. The application has nothing
    /// to apply but must still report its index as applied.
    Membership = 2,
}

/// One entry of the replicated log.
///
/// The payload is a shared, reference-counted slice: cloning an entry (to
/// send it to several peers, to hand it to the log writer) copies no bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    /// The term of the leader that created the entry.
    pub term: Term,
    /// The entry's position in the log.
    pub index: LogIndex,
    /// What the entry carries.
    pub kind: EntryKind,
    /// The command bytes; empty for [`EntryKind::Blank`].
    pub data: Bytes,
}

impl Entry {
    /// The bytes this entry counts for against byte limits (inflight windows,
    /// message size, uncommitted bytes): its payload plus a fixed overhead, so
    /// that a flood of empty entries is bounded too.
    pub fn size_bytes(&self) -> u64 {
        self.data.len() as u64 + ENTRY_OVERHEAD_BYTES
    }
}

/// The fixed per-entry overhead counted by [`Entry::size_bytes`]: the encoded
/// size of an entry's term, kind and length fields.
pub const ENTRY_OVERHEAD_BYTES: u64 = 8 + 1 + 4;

/// The state a node must make durable besides its log: the current term, the
/// vote cast in it, and the highest index known committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct HardState {
    /// The latest term this node has seen.
    pub term: Term,
    /// The candidate this node voted for in `term`, if any.
    pub vote: Option<NodeId>,
    /// The highest log index this node knows to be committed.
    pub commit: LogIndex,
}

/// What keeps a node's disk from taking writes (see `core::disk`; here so that messages can carry it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DiskTrouble {
    /// A write was refused for want of space: nothing was written, and the
    /// runtime tries again until space is freed.
    Full,
    /// Writes are outstanding and none was reported durable for
    /// `persist_stall_timeout`: the disk hangs.
    Stalled,
}

impl fmt::Display for DiskTrouble {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiskTrouble::Full => f.write_str(
                "the disk is full: writes are refused until space is freed (they resume by themselves)",
            ),
            DiskTrouble::Stalled => f.write_str("the disk is stalled: no write has completed for too long"),
        }
    }
}
