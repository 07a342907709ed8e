//! What a leader knows about one follower's log, and the rules for how that
//! knowledge changes (after etcd raft's `tracker/progress.go` design).
//!
//! - **Probe**: the leader does not know where the follower's log matches its
//!   own. It sends one AppendEntries at a time and waits for the answer (or
//!   the next heartbeat response) before sending another; rejections walk
//!   `next_index` back using the follower's hint.
//! - **Replicate**: the follower is known to match up to `match_index`. The
//!   leader streams entries, advancing `next_index` optimistically as it
//!   sends, bounded by an inflight window in messages and bytes.
//!
//! - **Snapshot**: the follower needs entries compacted away; the runtime is
//!   sending it the snapshot, and nothing else is sent until the transfer
//!   ends.
//!
//! Probe → Replicate on the first acknowledgement that advances `match_index`;
//! Replicate → Probe on a rejection or when the transport reports the
//! follower unreachable; Probe → Snapshot when the entry to send is gone;
//! Snapshot → Probe when the transfer ends (just after the snapshot if it
//! arrived, after the next heartbeat answer if it failed), or → Replicate
//! once the follower acknowledges the snapshot's index.

use std::collections::VecDeque;

use crate::types::{Incarnation, Instant, LogIndex, NodeId};

/// How a leader is replicating to a follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressState {
    /// Finding where the follower's log matches: one message at a time.
    Probe,
    /// Streaming entries, pipelined, within the inflight window.
    Replicate,
    /// Receiving a snapshot; nothing else is sent meanwhile.
    Snapshot,
}

/// A leader's view of one follower.
#[derive(Debug)]
pub(crate) struct Progress {
    pub(crate) id: NodeId,
    /// The follower's log is known to match ours up to here, durably.
    pub(crate) match_index: LogIndex,
    /// The next entry to send; `match_index < next_index`.
    pub(crate) next_index: LogIndex,
    pub(crate) state: ProgressState,
    /// In Probe: a probe is outstanding, send nothing until it is answered.
    pub(crate) probe_sent: bool,
    /// The AppendEntries sent in Replicate and not yet acknowledged.
    pub(crate) inflight: Inflights,
    /// The commit index last sent to this follower, so that a commit advance
    /// can be told to followers that have nothing new to receive.
    pub(crate) commit_sent: LogIndex,
    /// When any message in the current term last arrived from this follower.
    pub(crate) last_heard: Option<Instant>,
    /// Send an AppendEntries at the next chance even if it carries nothing.
    pub(crate) resend: bool,
    /// The latest heartbeat round this follower answered in this term.
    pub(crate) acked_round: u64,
    /// In Snapshot: the index of the snapshot being sent.
    pub(crate) pending_snapshot: LogIndex,
    /// The incarnation the follower speaks from, once heard. Everything
    /// above describes that incarnation's log: a message from another one
    /// (the follower lost its disk) starts this record over.
    pub(crate) incarnation: Incarnation,
    /// The leader's confirmation round when `match_index` last advanced:
    /// the follower's answer to any later heartbeat reflects a log that
    /// holds `match_index`, unless it lost entries.
    pub(crate) match_round: u64,
    /// What the follower last said keeps its disk from taking writes.
    pub(crate) disk: Option<crate::core::DiskTrouble>,
}

impl Progress {
    pub(crate) fn new(id: NodeId, next_index: LogIndex, limits: (usize, u64)) -> Progress {
        Progress {
            id,
            match_index: LogIndex(0),
            next_index,
            state: ProgressState::Probe,
            probe_sent: false,
            inflight: Inflights::new(limits.0, limits.1),
            commit_sent: LogIndex(0),
            last_heard: None,
            resend: false,
            acked_round: 0,
            pending_snapshot: LogIndex(0),
            incarnation: Incarnation::UNKNOWN,
            match_round: 0,
            disk: None,
        }
    }

    /// Whether the leader must hold off sending entries.
    pub(crate) fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflight.is_full(),
            ProgressState::Snapshot => true,
        }
    }

    /// Starts sending the snapshot at `index`.
    pub(crate) fn become_snapshot(&mut self, index: LogIndex) {
        self.state = ProgressState::Snapshot;
        self.pending_snapshot = index;
        self.probe_sent = false;
        self.inflight.clear();
    }

    /// The snapshot arrived: probe just after it. Returns whether the state
    /// changed.
    pub(crate) fn snapshot_sent(&mut self) -> bool {
        if self.state != ProgressState::Snapshot {
            return false;
        }
        let pending = self.pending_snapshot;
        self.become_probe();
        self.next_index = self.next_index.max(pending.next());
        true
    }

    /// The snapshot did not arrive: probe again once the follower answers a
    /// heartbeat (which may start another transfer), not at once, so that
    /// an unreachable follower is not sent snapshots in a loop.
    pub(crate) fn snapshot_failed(&mut self) {
        if self.state == ProgressState::Snapshot {
            self.become_probe();
            self.probe_sent = true;
        }
    }

    pub(crate) fn become_probe(&mut self) {
        self.state = ProgressState::Probe;
        self.probe_sent = false;
        self.next_index = self.match_index.next();
        self.inflight.clear();
    }

    fn become_replicate(&mut self) {
        self.state = ProgressState::Replicate;
        self.probe_sent = false;
        self.next_index = self.match_index.next();
        self.inflight.clear();
    }

    /// Records that an AppendEntries ending at `last` (with `bytes` of
    /// entries) was sent.
    pub(crate) fn on_entries_sent(&mut self, last: LogIndex, bytes: u64) {
        match self.state {
            ProgressState::Probe => self.probe_sent = true,
            ProgressState::Replicate => {
                if last >= self.next_index {
                    self.next_index = last.next();
                    self.inflight.add(last, bytes);
                }
            }
            ProgressState::Snapshot => {}
        }
    }

    /// Records an acknowledgement that the follower matches up to `index`,
    /// received in the leader's confirmation round `round`. Returns whether
    /// `match_index` advanced.
    pub(crate) fn on_accepted(&mut self, index: LogIndex, round: u64) -> bool {
        let advanced = index > self.match_index;
        if advanced {
            self.match_index = index;
            self.match_round = round;
            self.next_index = self.next_index.max(index.next());
            self.inflight.free_to(index);
        }
        // The answer to the outstanding probe: the logs match where we
        // probed, so streaming can start even if nothing new was matched.
        if self.state == ProgressState::Probe && (advanced || index.next() >= self.next_index) {
            self.become_replicate();
        }
        // The follower installed the snapshot (or caught up past it anyway).
        if self.state == ProgressState::Snapshot && index >= self.pending_snapshot {
            self.become_replicate();
        }
        advanced
    }

    /// Records a rejection of the AppendEntries whose `prev_log_index` was
    /// `rejected`; `probe_next` is the next index the leader computed from the
    /// follower's hint. Returns false if the rejection was stale.
    ///
    /// A rejection at or below `match_index` answers an append sent before
    /// the follower acknowledged that far, overtaken on the way: probing
    /// there again would get the same answer, in a loop with no time
    /// passing. (A follower that did lose acknowledged entries shows it in
    /// its next heartbeat answer: see [`Progress::lost_entries`].)
    pub(crate) fn on_rejected(&mut self, rejected: LogIndex, probe_next: LogIndex) -> bool {
        match self.state {
            ProgressState::Replicate => {
                if rejected <= self.match_index {
                    return false;
                }
                self.become_probe();
                true
            }
            ProgressState::Probe => {
                // Only the answer to the outstanding probe counts.
                if rejected != self.next_index.prev() || rejected <= self.match_index {
                    return false;
                }
                self.next_index = probe_next.min(rejected).max(self.match_index.next());
                self.probe_sent = false;
                true
            }
            // Answers to appends sent before the transfer began.
            ProgressState::Snapshot => false,
        }
    }

    /// The follower's log ends at `last`, below the `match_index` it
    /// acknowledged (its disk lost entries): forget `match_index`, so that
    /// no commit decision relies on entries it no longer holds, and probe
    /// from where its log ends.
    pub(crate) fn lost_entries(&mut self, last: LogIndex) {
        self.match_index = LogIndex(0);
        self.become_probe();
        self.next_index = last.next();
    }

    /// A heartbeat response proves the follower is alive while it lags
    /// behind (`lagging`): whatever was sent last may have been lost. A lost
    /// probe is resent; in Replicate an empty append at `next_index - 1` is
    /// sent even if the window is full (it takes no slot): the follower
    /// rejects it if it missed entries, sending the leader back to probing,
    /// and otherwise acknowledges once its disk catches up.
    pub(crate) fn on_heartbeat_response(&mut self, lagging: bool) {
        self.probe_sent = false;
        self.resend |= lagging;
    }

    pub(crate) fn check_invariants(&self) {
        assert!(self.match_index < self.next_index, "{:?}", self);
        if self.state != ProgressState::Replicate {
            assert!(self.inflight.is_empty());
        }
    }
}

/// The AppendEntries sent to one follower and not yet acknowledged, bounded
/// both in count and in bytes.
#[derive(Debug)]
pub(crate) struct Inflights {
    /// (last index carried, bytes carried), in sending order.
    queue: VecDeque<(LogIndex, u64)>,
    bytes: u64,
    messages_max: usize,
    bytes_max: u64,
}

impl Inflights {
    fn new(messages_max: usize, bytes_max: u64) -> Inflights {
        Inflights { queue: VecDeque::with_capacity(messages_max.min(64)), bytes: 0, messages_max, bytes_max }
    }

    pub(crate) fn is_full(&self) -> bool {
        self.queue.len() >= self.messages_max || self.bytes >= self.bytes_max
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub(crate) fn count(&self) -> usize {
        self.queue.len()
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    fn add(&mut self, last: LogIndex, bytes: u64) {
        assert!(!self.is_full(), "sent beyond the inflight window");
        debug_assert!(self.queue.back().is_none_or(|&(l, _)| l < last));
        self.queue.push_back((last, bytes));
        self.bytes += bytes;
    }

    /// Frees every message whose entries are all acknowledged.
    fn free_to(&mut self, index: LogIndex) {
        while let Some(&(last, bytes)) = self.queue.front() {
            if last > index {
                break;
            }
            self.queue.pop_front();
            self.bytes -= bytes;
        }
    }

    fn clear(&mut self) {
        self.queue.clear();
        self.bytes = 0;
    }
}
