//! What the node checks: inputs it cannot trust (messages, the state
//! recovered from storage) and, for the simulator and tests, its own
//! invariants.

use super::{Node, RecoveryError, Role, StartError, TERM_LIMIT};
use crate::membership::Membership;
use crate::types::{Entry, EntryKind, HardState, LogIndex, NodeId, Term};

impl Node {
    /// Checks every invariant of the node. O(log length): the simulator calls
    /// it after every step; production code never needs to.
    pub fn check_invariants(&self) {
        self.log.check_invariants();
        // The configuration in force is the last one the log holds, and
        // exactly the log's membership entries are tracked.
        assert!(self.configs.base.0 <= self.log.first_index().prev());
        let mut tracked = self.configs.entries.iter();
        let mut index = self.log.first_index();
        while let Some(e) = self.log.entry(index) {
            if e.kind == EntryKind::Membership {
                let (i, t, m) = tracked.next().expect("a membership entry of the log is not tracked");
                assert_eq!((*i, *t), (e.index, e.term), "tracked membership entries differ from the log's");
                assert_eq!(Some(m), Membership::decode(&e.data).ok().as_ref());
            }
            index = index.next();
        }
        assert!(tracked.next().is_none(), "a tracked membership entry is not in the log");
        let m = self.configs.current();
        let voters: Vec<NodeId> = m
            .voters
            .iter()
            .chain(&m.outgoing)
            .copied()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(self.voters.ids(), voters.as_slice(), "counting voters other than the configuration's");
        let peers: Vec<NodeId> = self.peers.iter().map(|p| p.id).collect();
        let members: Vec<NodeId> = m.members().filter(|&id| id != self.id()).collect();
        assert_eq!(peers, members, "progress kept for other nodes than the members");
        assert!(self.durable_id < self.next_persist_id);
        assert!(self.term_vote_id <= self.next_persist_id);
        assert!(self.log.last_term() <= self.term, "log term beyond current term");
        match self.role {
            Role::Leader => {
                assert_eq!(self.leader, Some(self.id()));
                assert_eq!(self.vote, Some(self.id()));
                assert!(self.term_vote_id <= self.durable_id, "leader before its vote was durable");
                assert!(self.heartbeat_deadline.is_some() && self.election_deadline.is_none());
                for p in &self.peers {
                    p.check_invariants();
                    assert!(p.match_index <= self.log.last_index());
                }
            }
            Role::Candidate => {
                assert_eq!(self.vote, Some(self.id()));
                assert!(self.leader.is_none());
            }
            Role::PreCandidate | Role::Follower => {}
        }
        if self.halted.is_some() {
            assert!(self.role == Role::Follower && self.election_deadline.is_none());
        } else if self.role != Role::Leader {
            assert!(self.election_deadline.is_some() && self.heartbeat_deadline.is_none());
        }
        if self.role == Role::Candidate {
            assert!(self.counts_itself(), "campaigning while not an admitted voter");
        }
        for (needed, msg) in &self.held {
            assert!(*needed > self.durable_id, "a message waits for a write already durable");
            assert!(msg.term >= self.term, "a message of an older term is still held");
        }
    }
}

/// Checks what the codec cannot: that an AppendEntries could have come from
/// a leader of `term`.
pub(super) fn check_append(req: &crate::message::AppendEntries, term: Term) -> Result<(), &'static str> {
    if req.prev_log_term > term {
        return Err("prev_log_term beyond the leader's term");
    }
    let mut expected = req.prev_log_index;
    let mut prev_term = req.prev_log_term;
    for e in &req.entries {
        expected = LogIndex(expected.0.checked_add(1).ok_or("index overflow")?);
        if e.index != expected {
            return Err("entries not consecutive after prev_log_index");
        }
        if e.term < prev_term || e.term > term {
            return Err("entry terms out of order");
        }
        if e.kind == EntryKind::Membership && Membership::decode(&e.data).is_err() {
            return Err("a membership entry that does not decode");
        }
        prev_term = e.term;
    }
    Ok(())
}

pub(super) fn check_recovered(
    hs: &HardState,
    base: (LogIndex, Term),
    entries: &[Entry],
    applied: LogIndex,
) -> Result<(), StartError> {
    if hs.term > TERM_LIMIT {
        return Err(RecoveryError::TermTooLarge { term: hs.term }.into());
    }
    let mut prev_term = base.1;
    for (k, e) in entries.iter().enumerate() {
        let expected = base.0.plus(k as u64 + 1);
        if e.index != expected {
            return Err(RecoveryError::IndexGap { found: e.index, expected }.into());
        }
        if e.term < prev_term {
            return Err(RecoveryError::TermDecreases { index: e.index }.into());
        }
        prev_term = e.term;
    }
    if prev_term > hs.term {
        return Err(RecoveryError::LogAheadOfTerm { log_term: prev_term, stored_term: hs.term }.into());
    }
    let last = base.0.plus(entries.len() as u64);
    if applied > last {
        return Err(RecoveryError::AppliedBeyondLog { applied, last }.into());
    }
    Ok(())
}
