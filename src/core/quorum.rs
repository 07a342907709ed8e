//! Quorum arithmetic over a set of voters, free of any Raft state so that it
//! can be checked on its own.

use crate::types::{LogIndex, NodeId};

/// The voters of a cluster configuration, sorted and without duplicates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Voters {
    ids: Vec<NodeId>,
}

/// The outcome of an election so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VoteResult {
    Won,
    Lost,
    Pending,
}

impl Voters {
    pub(crate) fn new(ids: &[NodeId]) -> Voters {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        Voters { ids }
    }

    pub(crate) fn ids(&self) -> &[NodeId] {
        &self.ids
    }

    /// The smallest number of voters that is a majority.
    pub(crate) fn quorum(&self) -> usize {
        self.ids.len() / 2 + 1
    }

    /// The highest value that a majority of voters have reached, given each
    /// voter's value (an index, a confirmation round).
    pub(crate) fn quorum_value<T: Ord + Copy>(
        &self,
        scratch: &mut Vec<T>,
        value_of: impl Fn(NodeId) -> T,
    ) -> T {
        scratch.clear();
        scratch.extend(self.ids.iter().map(|&id| value_of(id)));
        scratch.sort_unstable_by(|a, b| b.cmp(a));
        scratch[self.quorum() - 1]
    }

    /// The election outcome given each voter's answer so far (`None`: no
    /// answer yet).
    pub(crate) fn vote_result(&self, vote_of: impl Fn(NodeId) -> Option<bool>) -> VoteResult {
        let (mut granted, mut rejected) = (0, 0);
        for &id in &self.ids {
            match vote_of(id) {
                Some(true) => granted += 1,
                Some(false) => rejected += 1,
                None => {}
            }
        }
        if granted >= self.quorum() {
            VoteResult::Won
        } else if rejected > self.ids.len() - self.quorum() {
            VoteResult::Lost
        } else {
            VoteResult::Pending
        }
    }

    /// Whether the voters for which `is_active` holds form a majority.
    pub(crate) fn has_quorum(&self, is_active: impl Fn(NodeId) -> bool) -> bool {
        self.ids.iter().filter(|&&id| is_active(id)).count() >= self.quorum()
    }
}

/// The voters a node counts: one configuration, or while a membership
/// change is under way the joint C_old,new, in which every decision needs a
/// majority of both halves (Raft thesis §4.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct JointVoters {
    /// C_new, or the only configuration.
    incoming: Voters,
    /// C_old while joint; empty otherwise (and then never consulted).
    outgoing: Voters,
    /// Every voter of either half, sorted, each once.
    all: Vec<NodeId>,
    /// The injected bug `joint_counts_only_incoming`: `outgoing` is never
    /// consulted.
    #[cfg(test)]
    pub(crate) outgoing_ignored: bool,
}

impl JointVoters {
    pub(crate) fn new(incoming: &[NodeId], outgoing: &[NodeId]) -> JointVoters {
        let incoming = Voters::new(incoming);
        let outgoing = Voters::new(outgoing);
        let mut all: Vec<NodeId> = incoming.ids().iter().chain(outgoing.ids()).copied().collect();
        all.sort_unstable();
        all.dedup();
        JointVoters {
            incoming,
            outgoing,
            all,
            #[cfg(test)]
            outgoing_ignored: false,
        }
    }

    /// Every voter of either half.
    pub(crate) fn ids(&self) -> &[NodeId] {
        &self.all
    }

    pub(crate) fn contains(&self, id: NodeId) -> bool {
        self.all.binary_search(&id).is_ok()
    }

    /// Whether `id` is the only voter: a cluster of one decides alone.
    pub(crate) fn is_only(&self, id: NodeId) -> bool {
        self.all == [id]
    }

    fn halves(&self) -> impl Iterator<Item = &Voters> {
        let joint = !self.outgoing.ids().is_empty();
        #[cfg(test)]
        let joint = joint && !self.outgoing_ignored;
        std::iter::once(&self.incoming).chain(joint.then_some(&self.outgoing))
    }

    /// The highest index both halves' majorities have reached. With no
    /// voters at all (a node waiting to be added) nothing is ever reached.
    pub(crate) fn committed_index(
        &self,
        scratch: &mut Vec<LogIndex>,
        index_of: impl Fn(NodeId) -> LogIndex,
    ) -> LogIndex {
        self.quorum_value(scratch, index_of)
    }

    /// The highest value both halves' majorities have reached.
    pub(crate) fn quorum_value<T: Ord + Copy + Default>(
        &self,
        scratch: &mut Vec<T>,
        value_of: impl Fn(NodeId) -> T,
    ) -> T {
        if self.incoming.ids().is_empty() {
            return T::default();
        }
        self.halves().map(|half| half.quorum_value(scratch, &value_of)).min().unwrap_or_default()
    }

    /// Won once both halves are won; lost once either is lost.
    pub(crate) fn vote_result(&self, vote_of: impl Fn(NodeId) -> Option<bool>) -> VoteResult {
        if self.incoming.ids().is_empty() {
            return VoteResult::Lost;
        }
        let mut result = VoteResult::Won;
        for half in self.halves() {
            match half.vote_result(&vote_of) {
                VoteResult::Lost => return VoteResult::Lost,
                VoteResult::Pending => result = VoteResult::Pending,
                VoteResult::Won => {}
            }
        }
        result
    }

    /// Whether the voters for which `is_active` holds form a majority of
    /// both halves.
    pub(crate) fn has_quorum(&self, is_active: impl Fn(NodeId) -> bool) -> bool {
        !self.incoming.ids().is_empty() && self.halves().all(|half| half.has_quorum(&is_active))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joint(incoming: &[u64], outgoing: &[u64]) -> JointVoters {
        let ids = |l: &[u64]| l.iter().map(|&i| NodeId(i)).collect::<Vec<_>>();
        JointVoters::new(&ids(incoming), &ids(outgoing))
    }

    #[test]
    fn a_joint_configuration_needs_both_majorities() {
        let mut scratch = Vec::new();
        // C_old = {1,2,3}, C_new = {3,4,5}: 1,2 reaching 9 is a majority of
        // C_old only.
        let j = joint(&[3, 4, 5], &[1, 2, 3]);
        let matches = [0, 9, 9, 1, 1, 1];
        assert_eq!(j.committed_index(&mut scratch, |id| LogIndex(matches[id.0 as usize])), LogIndex(1));
        let matches = [0, 9, 9, 5, 7, 1];
        assert_eq!(j.committed_index(&mut scratch, |id| LogIndex(matches[id.0 as usize])), LogIndex(5));
        assert_eq!(j.vote_result(|id| (id.0 <= 2).then_some(true)), VoteResult::Pending);
        assert_eq!(j.vote_result(|id| (id.0 <= 4).then_some(true)), VoteResult::Won);
        assert_eq!(j.vote_result(|id| (id.0 >= 4).then_some(false)), VoteResult::Lost);
        assert!(!j.has_quorum(|id| id.0 <= 2));
        assert!(j.has_quorum(|id| id.0 != 5 && id.0 != 1));
        assert_eq!(j.ids(), &[1, 2, 3, 4, 5].map(NodeId));
    }

    #[test]
    fn no_voters_decide_nothing() {
        let j = joint(&[], &[]);
        assert_eq!(j.committed_index(&mut Vec::new(), |_| LogIndex(7)), LogIndex(0));
        assert_eq!(j.vote_result(|_| Some(true)), VoteResult::Lost);
        assert!(!j.has_quorum(|_| true));
    }

    fn voters(n: u64) -> Voters {
        Voters::new(&(1..=n).map(NodeId).collect::<Vec<_>>())
    }

    #[test]
    fn quorum_is_a_strict_majority() {
        assert_eq!(voters(1).quorum(), 1);
        assert_eq!(voters(2).quorum(), 2);
        assert_eq!(voters(3).quorum(), 2);
        assert_eq!(voters(4).quorum(), 3);
        assert_eq!(voters(5).quorum(), 3);
    }

    #[test]
    fn committed_index_is_the_majority_minimum() {
        let mut scratch = Vec::new();
        let matches = [5, 3, 9, 1, 7];
        let got = voters(5).quorum_value(&mut scratch, |id| LogIndex(matches[id.0 as usize - 1]));
        assert_eq!(got, LogIndex(5));
        let got = voters(3).quorum_value(&mut scratch, |id| LogIndex(matches[id.0 as usize - 1]));
        assert_eq!(got, LogIndex(5));
    }

    #[test]
    fn vote_result_decides_as_soon_as_it_can() {
        let v = voters(5);
        assert_eq!(v.vote_result(|id| (id.0 <= 2).then_some(true)), VoteResult::Pending);
        assert_eq!(v.vote_result(|id| (id.0 <= 3).then_some(true)), VoteResult::Won);
        assert_eq!(v.vote_result(|id| (id.0 <= 3).then_some(false)), VoteResult::Lost);
        assert_eq!(v.vote_result(|id| (id.0 <= 2).then_some(false)), VoteResult::Pending);
    }
}
