//! What a run reports: its totals and its first violation.

use super::Violation;
use crate::types::Instant;

/// What happened in one run.
#[derive(Clone, Debug, Default)]
pub struct SimReport {
    /// The run's seed.
    pub seed: u64,
    /// Inputs handed to nodes (messages, timeouts, syncs, restarts).
    pub steps: u64,
    /// Messages sent.
    pub messages: u64,
    /// Proposals a leader accepted.
    pub proposals_accepted: u64,
    /// Entries known committed at the end.
    pub committed: u64,
    /// Node crashes.
    pub crashes: u64,
    /// Reads answered and checked for linearizability.
    pub reads_checked: u64,
    /// Leadership transfers started.
    pub transfers: u64,
    /// Membership changes a leader accepted.
    pub membership_changes: u64,
    /// Snapshots taken.
    pub snapshots_taken: u64,
    /// Snapshots installed from a leader.
    pub snapshots_installed: u64,
    /// Disks wiped: a node restarted empty under its old id.
    pub disk_wipes: u64,
    /// Logs that lost synced entries: a node restarted from an older copy
    /// of its log (a disk that lied about a sync, a restored backup).
    pub lost_tails: u64,
    /// Voters re-admitted after losing their disk.
    pub readmissions: u64,
    /// Disks full for a while.
    pub disk_full_faults: u64,
    /// Disks that hang for seconds.
    pub disk_hangs: u64,
    /// Session commands applied (first applies, counted once per node).
    pub session_commands: u64,
    /// Session commands proposed again and answered from the session
    /// table instead of applied (per node).
    pub session_retries_answered: u64,
    /// Session commands refused (expired or stale session; per node).
    pub session_refusals: u64,
    /// The rare branches of Raft's rules the nodes took, summed over every
    /// node's every life.
    pub coverage: crate::core::Coverage,
    /// The first safety property broken, if any.
    pub violation: Option<Violation>,
    /// Why the cluster failed to make progress after healing, if it did.
    pub liveness_failure: Option<String>,
    /// Virtual time at the end.
    pub end: Instant,
    /// Logs with a rotten record that recovery refused (the disk was then
    /// replaced).
    pub rot_refused: u64,
    /// From the end of the fault phase to the first leader after it.
    pub heal_to_leader: Option<std::time::Duration>,
    /// From the end of the fault phase to a fresh entry applied on every
    /// member: the liveness check passed.
    pub heal_to_commit: Option<std::time::Duration>,
    /// The nodes' longest election timeout, the unit recovery is measured
    /// in.
    pub election_timeout: std::time::Duration,
}
