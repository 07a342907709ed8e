//! How often a node took the rare branches of Raft's rules: the situations
//! in which a subtle bug would show. A test campaign that never reaches one
//! of them cannot catch a bug in it, however many seeds it runs; `oar sim
//! --coverage` prints the sums over a campaign, and CI fails a campaign that
//! leaves one at zero.

use super::Node;

/// Counts of rare branches taken, since the node started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Coverage {
    /// A leader held its commit index back: a quorum held entries of
    /// earlier terms only (Raft §5.4.2, Figure 8).
    pub commit_held_for_earlier_term: u64,
    /// A follower capped the leader's commit index at the last entry an
    /// AppendEntries vouched for, while its log went further with entries of
    /// earlier terms (a stale suffix the leader may not share).
    pub follower_commit_capped: u64,
    /// A follower truncated a conflicting suffix of its log (§5.3).
    pub suffix_truncated: u64,
    /// A snapshot was installed over a log whose entry at the snapshot's
    /// index had another term: the whole log went.
    pub snapshot_over_mismatched_log: u64,
    /// A snapshot was installed over a log holding its last entry: the
    /// entries after it stayed.
    pub snapshot_kept_suffix: u64,
    /// In a joint configuration, the outgoing half held back a commit the
    /// incoming half alone would have allowed.
    pub joint_commit_held_by_outgoing: u64,
    /// A vote was refused because the candidate's log was behind (§5.4.1).
    pub vote_refused_for_stale_log: u64,
    /// A read waited for the leader's first commit in its term.
    pub read_waited_for_term_commit: u64,
}

impl Coverage {
    /// Every counter with its name, for printing.
    pub fn counters(&self) -> [(&'static str, u64); 8] {
        [
            ("commit_held_for_earlier_term", self.commit_held_for_earlier_term),
            ("follower_commit_capped", self.follower_commit_capped),
            ("suffix_truncated", self.suffix_truncated),
            ("snapshot_over_mismatched_log", self.snapshot_over_mismatched_log),
            ("snapshot_kept_suffix", self.snapshot_kept_suffix),
            ("joint_commit_held_by_outgoing", self.joint_commit_held_by_outgoing),
            ("vote_refused_for_stale_log", self.vote_refused_for_stale_log),
            ("read_waited_for_term_commit", self.read_waited_for_term_commit),
        ]
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &Coverage) {
        self.commit_held_for_earlier_term += other.commit_held_for_earlier_term;
        self.follower_commit_capped += other.follower_commit_capped;
        self.suffix_truncated += other.suffix_truncated;
        self.snapshot_over_mismatched_log += other.snapshot_over_mismatched_log;
        self.snapshot_kept_suffix += other.snapshot_kept_suffix;
        self.joint_commit_held_by_outgoing += other.joint_commit_held_by_outgoing;
        self.vote_refused_for_stale_log += other.vote_refused_for_stale_log;
        self.read_waited_for_term_commit += other.read_waited_for_term_commit;
    }
}

impl Node {
    /// How often this node took the rare branches of Raft's rules since it
    /// started (see [`Coverage`]).
    pub fn coverage(&self) -> Coverage {
        Coverage { suffix_truncated: self.log.truncations(), ..self.coverage }
    }
}
