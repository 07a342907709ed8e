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

    pub(crate) fn contains(&self, id: NodeId) -> bool {
        self.ids.binary_search(&id).is_ok()
    }

    /// The smallest number of voters that is a majority.
    pub(crate) fn quorum(&self) -> usize {
        self.ids.len() / 2 + 1
    }

    /// The highest index that a majority of voters have reached, given each
    /// voter's index. `scratch` is reused to avoid allocating.
    pub(crate) fn committed_index(
        &self,
        scratch: &mut Vec<LogIndex>,
        index_of: impl Fn(NodeId) -> LogIndex,
    ) -> LogIndex {
        self.quorum_value(scratch, index_of)
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let got = voters(5).committed_index(&mut scratch, |id| LogIndex(matches[id.0 as usize - 1]));
        assert_eq!(got, LogIndex(5));
        let got = voters(3).committed_index(&mut scratch, |id| LogIndex(matches[id.0 as usize - 1]));
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
