//! Tunables of a Raft node, with defaults for a local network and a check
//! that names what to fix.

use std::fmt;
use std::time::Duration;

use crate::message::ENTRIES_BYTES_LIMIT;
use crate::types::{NodeId, ENTRY_OVERHEAD_BYTES};

/// How a node behaves. Build one with [`Config::new`] and adjust fields; the
/// core checks it with [`Config::validate`] when a node is created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This node's id. Never `0`.
    pub id: NodeId,
    /// The shortest election timeout. A follower that heard from a leader more
    /// recently than this refuses to vote for anyone else (thesis §4.2.3).
    pub election_timeout_min: Duration,
    /// The election timeout is drawn uniformly from
    /// `[election_timeout_min, election_timeout_max)` every time it is armed.
    pub election_timeout_max: Duration,
    /// How often a leader sends heartbeats to idle followers.
    pub heartbeat_interval: Duration,
    /// Run a pre-vote round before campaigning (thesis §9.6), so that a node
    /// cut off from the cluster does not inflate its term while away. To keep
    /// it from deposing a healthy leader when it comes back, followers must
    /// also refuse votes while they hear from a leader, which needs
    /// `check_quorum` (see there).
    pub pre_vote: bool,
    /// A leader steps down when it has not heard from a quorum within
    /// `election_timeout_min` (thesis §6.2). It also turns on the leader
    /// lease on votes: a follower that heard from a leader within
    /// `election_timeout_min` refuses (pre-)votes. Without CheckQuorum that
    /// lease is unsafe for liveness (a deposed leader that can still reach a
    /// follower would hold it forever), so it is off.
    pub check_quorum: bool,
    /// How many AppendEntries messages may be unacknowledged per follower.
    pub inflight_messages_max: usize,
    /// How many entry bytes may be unacknowledged per follower before the
    /// leader stops sending; the message that crosses the limit still goes,
    /// so the bound is `inflight_bytes_max + message_bytes_max`.
    pub inflight_bytes_max: u64,
    /// The most entry bytes (as counted by [`crate::Entry::size_bytes`]) one
    /// AppendEntries message carries. A single entry always fits, since
    /// `entry_bytes_max` must be smaller.
    pub message_bytes_max: u64,
    /// The largest command a client may propose, in bytes.
    pub entry_bytes_max: u64,
    /// The most bytes of proposals a leader holds uncommitted; beyond it,
    /// proposals are refused with `Backpressure`.
    pub uncommitted_bytes_max: u64,
    /// Reads waiting at once (ReadIndex rounds, forwarded reads, reads
    /// waiting to be applied) beyond which `read_index` answers
    /// `Backpressure`.
    pub pending_reads_max: usize,
    /// Serve reads on the leader without a confirmation round while its
    /// lease holds (thesis §6.4.1). Needs `check_quorum`.
    ///
    /// **The clock assumption**: a leader's lease starts when it sent the
    /// heartbeat round that a quorum last answered and lasts
    /// `election_timeout_min - lease_clock_drift`. Followers that answered
    /// refuse to vote for `election_timeout_min` after they received it, so
    /// no other leader can be elected inside the lease *provided no node's
    /// clock runs more than `lease_clock_drift` fast or slow relative to the
    /// leader's over one election timeout*. (A restarted node also waits
    /// `election_timeout_min` before voting, so a crash does not cut a lease
    /// short.) If your clocks can jump, leave this off: ReadIndex needs no
    /// clock assumption at all.
    pub lease_reads: bool,
    /// The clock drift a lease allows for; see `lease_reads`.
    pub lease_clock_drift: Duration,
    /// On a follower, `propose` forwards the command to the known leader
    /// instead of refusing it.
    pub forward_proposals: bool,
    /// Ask for a snapshot once this many entries were applied since the
    /// last one (0: never by count).
    pub snapshot_entries: u64,
    /// Ask for a snapshot once this many bytes of entries were applied
    /// since the last one (0: never by size).
    pub snapshot_bytes: u64,
    /// Entries kept in the log below a new snapshot, so that a follower a
    /// little behind catches up from the log rather than by snapshot.
    pub compaction_margin: u64,
    /// Seeds the node's pseudo-random generator (election timeouts). Give
    /// every node a different seed.
    pub seed: u64,
    /// How long this node's writes may make no progress (none reported
    /// durable while some are outstanding) before its disk counts as
    /// stalled: a leader then refuses proposals and hands leadership to a
    /// follower that can write (see [`crate::core::DiskTrouble`]). Of the
    /// order of an election timeout; longer than the slowest fsync a
    /// healthy disk takes under load.
    pub persist_stall_timeout: Duration,
    /// Deliberate bugs, so that tests can prove the simulator's checker finds
    /// them. Only compiled into the crate's own unit tests.
    #[cfg(test)]
    pub bugs: crate::config::InjectedBugs,
}

/// Deliberate protocol bugs a test can switch on.
#[cfg(test)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InjectedBugs {
    /// Commit entries of earlier terms by counting replicas (Raft Figure 8).
    pub commit_old_terms_by_counting: bool,
    /// Acknowledge appended entries before they are durable.
    pub ack_before_persist: bool,
    /// Grant votes without the "at least as up to date" log check (§5.4.1).
    pub vote_ignores_log: bool,
    /// Serve reads at once, with neither a confirmation round nor a lease:
    /// a deposed leader then answers stale reads.
    pub reads_without_confirmation: bool,
    /// In a joint configuration, count only the incoming half (C_new) for
    /// commitment, elections and CheckQuorum, as if C_old had already gone.
    pub joint_counts_only_incoming: bool,
    /// Count a voter in every quorum whatever incarnation it speaks from, as
    /// if identities did not exist: a node that lost its disk votes and
    /// acknowledges again at once, under its old id.
    pub ignore_incarnations: bool,
    /// Every election timeout is the minimum instead of a random draw:
    /// followers that lose their leader at the same moment split the vote
    /// again and again.
    pub fixed_election_timeout: bool,
}

impl Config {
    /// A configuration for node `id` with defaults suited to a local network:
    /// elections after 150–300 ms of silence, heartbeats every 50 ms, pre-vote
    /// and check-quorum on.
    pub fn new(id: NodeId) -> Config {
        Config {
            id,
            election_timeout_min: Duration::from_millis(150),
            election_timeout_max: Duration::from_millis(300),
            heartbeat_interval: Duration::from_millis(50),
            pre_vote: true,
            check_quorum: true,
            inflight_messages_max: 256,
            inflight_bytes_max: 16 << 20,
            message_bytes_max: 1 << 20,
            entry_bytes_max: (1 << 20) - 1024,
            uncommitted_bytes_max: 64 << 20,
            pending_reads_max: 4096,
            lease_reads: false,
            lease_clock_drift: Duration::from_millis(20),
            forward_proposals: true,
            snapshot_entries: 100_000,
            snapshot_bytes: 64 << 20,
            compaction_margin: 10_000,
            seed: id.0,
            persist_stall_timeout: Duration::from_secs(1),
            #[cfg(test)]
            bugs: InjectedBugs::default(),
        }
    }

    /// Checks that the settings make sense together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |field, reason: String| Err(ConfigError { field, reason });
        if self.id == NodeId(0) {
            return fail("id", "node id 0 is reserved; number nodes from 1".into());
        }
        if self.heartbeat_interval.is_zero() {
            return fail("heartbeat_interval", "must be positive".into());
        }
        if self.persist_stall_timeout <= self.heartbeat_interval {
            return fail(
                "persist_stall_timeout",
                format!(
                    "{:?} must exceed heartbeat_interval {:?}: a stall is told from a slow fsync by time",
                    self.persist_stall_timeout, self.heartbeat_interval
                ),
            );
        }
        if self.election_timeout_min <= self.heartbeat_interval {
            return fail(
                "election_timeout_min",
                format!(
                    "{:?} must exceed heartbeat_interval {:?} (ten times it is typical)",
                    self.election_timeout_min, self.heartbeat_interval
                ),
            );
        }
        if self.election_timeout_max <= self.election_timeout_min {
            return fail(
                "election_timeout_max",
                format!(
                    "{:?} must exceed election_timeout_min {:?} so that timeouts are randomized",
                    self.election_timeout_max, self.election_timeout_min
                ),
            );
        }
        if self.inflight_messages_max == 0 {
            return fail("inflight_messages_max", "must be at least 1".into());
        }
        if self.message_bytes_max > ENTRIES_BYTES_LIMIT {
            return fail(
                "message_bytes_max",
                format!("{} exceeds the wire limit of {ENTRIES_BYTES_LIMIT}", self.message_bytes_max),
            );
        }
        if self.entry_bytes_max + ENTRY_OVERHEAD_BYTES > self.message_bytes_max {
            return fail(
                "entry_bytes_max",
                format!(
                    "{} plus {ENTRY_OVERHEAD_BYTES} bytes of framing must fit in message_bytes_max {}",
                    self.entry_bytes_max, self.message_bytes_max
                ),
            );
        }
        if self.inflight_bytes_max < self.message_bytes_max {
            return fail(
                "inflight_bytes_max",
                format!(
                    "{} must be at least message_bytes_max {} so that one full message can be in flight",
                    self.inflight_bytes_max, self.message_bytes_max
                ),
            );
        }
        if self.uncommitted_bytes_max < self.entry_bytes_max {
            return fail(
                "uncommitted_bytes_max",
                format!(
                    "{} must be at least entry_bytes_max {} or the largest proposal could never be accepted",
                    self.uncommitted_bytes_max, self.entry_bytes_max
                ),
            );
        }
        if self.pending_reads_max == 0 {
            return fail("pending_reads_max", "must be at least 1".into());
        }
        if self.lease_reads && !self.check_quorum {
            return fail(
                "lease_reads",
                "needs check_quorum: without it a deposed leader never learns it lost its lease".into(),
            );
        }
        if self.lease_reads && self.lease_clock_drift >= self.election_timeout_min {
            return fail(
                "lease_clock_drift",
                format!(
                    "{:?} must be below election_timeout_min {:?}, or the lease is empty",
                    self.lease_clock_drift, self.election_timeout_min
                ),
            );
        }
        Ok(())
    }
}

/// A setting that does not make sense, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The name of the offending `Config` field.
    pub field: &'static str,
    /// What is wrong and what to change.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid config: {}: {}", self.field, self.reason)
    }
}

impl std::error::Error for ConfigError {}
