//! Quorum arithmetic over a set of voters, free of any Raft state so that it
//! can be checked on its own.
//!
//! A voter is an id *and* the incarnation the configuration admitted for
//! it: every question asked of a voter (its vote, its match index, whether
//! it answered) is asked with both, so that a node speaking from another
//! incarnation (one that lost its disk) is never counted for the voter it
//! once was. The same id may sit in both halves of a joint configuration
//! with different incarnations: that is how a voter is re-admitted.

use crate::types::{Incarnation, LogIndex, NodeId};

/// The voters of a cluster configuration, sorted and without duplicates,
/// each with the incarnation admitted for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Voters {
    ids: Vec<NodeId>,
    incarnations: Vec<Incarnation>,
}

/// The outcome of an election so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VoteResult {
    Won,
    Lost,
    Pending,
}

impl Voters {
    pub(crate) fn new(voters: &[(NodeId, Incarnation)]) -> Voters {
        let mut voters = voters.to_vec();
        voters.sort_unstable();
        voters.dedup_by_key(|v| v.0);
        let (ids, incarnations) = voters.into_iter().unzip();
        Voters { ids, incarnations }
    }

    fn each(&self) -> impl Iterator<Item = (NodeId, Incarnation)> + '_ {
        self.ids.iter().copied().zip(self.incarnations.iter().copied())
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
        value_of: impl Fn(NodeId, Incarnation) -> T,
    ) -> T {
        scratch.clear();
        scratch.extend(self.each().map(|(id, inc)| value_of(id, inc)));
        scratch.sort_unstable_by(|a, b| b.cmp(a));
        scratch[self.quorum() - 1]
    }

    /// The election outcome given each voter's answer so far (`None`: no
    /// answer yet).
    pub(crate) fn vote_result(&self, vote_of: impl Fn(NodeId, Incarnation) -> Option<bool>) -> VoteResult {
        let (mut granted, mut rejected) = (0, 0);
        for (id, inc) in self.each() {
            match vote_of(id, inc) {
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
    pub(crate) fn has_quorum(&self, is_active: impl Fn(NodeId, Incarnation) -> bool) -> bool {
        self.each().filter(|&(id, inc)| is_active(id, inc)).count() >= self.quorum()
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
    pub(crate) fn new(incoming: &[(NodeId, Incarnation)], outgoing: &[(NodeId, Incarnation)]) -> JointVoters {
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

    /// Whether the outgoing half's majority has reached less than the
    /// incoming half's: in a joint configuration, C_old holds back what
    /// C_new alone would allow.
    pub(crate) fn outgoing_holds_back(
        &self,
        scratch: &mut Vec<LogIndex>,
        index_of: impl Fn(NodeId, Incarnation) -> LogIndex,
    ) -> bool {
        let mut halves = self.halves();
        let (Some(incoming), Some(outgoing)) = (halves.next(), halves.next()) else { return false };
        outgoing.quorum_value(scratch, &index_of) < incoming.quorum_value(scratch, &index_of)
    }

    /// The highest index both halves' majorities have reached. With no
    /// voters at all (a node waiting to be added) nothing is ever reached.
    pub(crate) fn committed_index(
        &self,
        scratch: &mut Vec<LogIndex>,
        index_of: impl Fn(NodeId, Incarnation) -> LogIndex,
    ) -> LogIndex {
        self.quorum_value(scratch, index_of)
    }

    /// The highest value both halves' majorities have reached.
    pub(crate) fn quorum_value<T: Ord + Copy + Default>(
        &self,
        scratch: &mut Vec<T>,
        value_of: impl Fn(NodeId, Incarnation) -> T,
    ) -> T {
        if self.incoming.ids().is_empty() {
            return T::default();
        }
        self.halves().map(|half| half.quorum_value(scratch, &value_of)).min().unwrap_or_default()
    }

    /// Won once both halves are won; lost once either is lost.
    pub(crate) fn vote_result(&self, vote_of: impl Fn(NodeId, Incarnation) -> Option<bool>) -> VoteResult {
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
    pub(crate) fn has_quorum(&self, is_active: impl Fn(NodeId, Incarnation) -> bool) -> bool {
        !self.incoming.ids().is_empty() && self.halves().all(|half| half.has_quorum(&is_active))
    }

    /// Whether `id` speaking from `incarnation` is a voter of some half.
    pub(crate) fn counts(&self, id: NodeId, incarnation: Incarnation) -> bool {
        self.halves().any(|half| half.each().any(|(v, inc)| v == id && inc.admits(incarnation)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joint(incoming: &[u64], outgoing: &[u64]) -> JointVoters {
        let ids = |l: &[u64]| l.iter().map(|&i| (NodeId(i), Incarnation::UNKNOWN)).collect::<Vec<_>>();
        JointVoters::new(&ids(incoming), &ids(outgoing))
    }

    #[test]
    fn a_joint_configuration_needs_both_majorities() {
        let mut scratch = Vec::new();
        // C_old = {1,2,3}, C_new = {3,4,5}: 1,2 reaching 9 is a majority of
        // C_old only.
        let j = joint(&[3, 4, 5], &[1, 2, 3]);
        let matches = [0, 9, 9, 1, 1, 1];
        assert_eq!(j.committed_index(&mut scratch, |id, _| LogIndex(matches[id.0 as usize])), LogIndex(1));
        let matches = [0, 9, 9, 5, 7, 1];
        assert_eq!(j.committed_index(&mut scratch, |id, _| LogIndex(matches[id.0 as usize])), LogIndex(5));
        assert_eq!(j.vote_result(|id, _| (id.0 <= 2).then_some(true)), VoteResult::Pending);
        assert_eq!(j.vote_result(|id, _| (id.0 <= 4).then_some(true)), VoteResult::Won);
        assert_eq!(j.vote_result(|id, _| (id.0 >= 4).then_some(false)), VoteResult::Lost);
        assert!(!j.has_quorum(|id, _| id.0 <= 2));
        assert!(j.has_quorum(|id, _| id.0 != 5 && id.0 != 1));
        assert_eq!(j.ids(), &[1, 2, 3, 4, 5].map(NodeId));
    }

    #[test]
    fn a_readmitted_voter_counts_only_in_the_half_that_admits_its_incarnation() {
        let (old, new) = (Incarnation(7), Incarnation(8));
        let at =
            |inc: Incarnation| [(NodeId(1), Incarnation(1)), (NodeId(2), inc), (NodeId(3), Incarnation(3))];
        let j = JointVoters::new(&at(new), &at(old));
        let mut scratch = Vec::new();
        // Nodes 1 and 3 are silent; node 2 speaks from its new incarnation:
        // C_new has 1 of 3, C_old none.
        let speaks = |inc: Incarnation| {
            move |id: NodeId, admitted: Incarnation| id == NodeId(2) && admitted.admits(inc)
        };
        assert!(!j.has_quorum(speaks(new)));
        assert_eq!(
            j.committed_index(&mut scratch, |id, adm| LogIndex(if speaks(new)(id, adm) { 9 } else { 0 })),
            LogIndex(0)
        );
        // With node 1: a majority of C_new, but not of C_old, where node 2 is
        // its old incarnation.
        let with_one = |id: NodeId, adm: Incarnation| id == NodeId(1) || speaks(new)(id, adm);
        assert!(!j.has_quorum(with_one));
        assert!(j.has_quorum(|id, adm| id != NodeId(2) || speaks(new)(id, adm)));
        assert!(j.counts(NodeId(2), new) && j.counts(NodeId(2), old) && !j.counts(NodeId(2), Incarnation(9)));
    }

    #[test]
    fn no_voters_decide_nothing() {
        let j = joint(&[], &[]);
        assert_eq!(j.committed_index(&mut Vec::new(), |_, _| LogIndex(7)), LogIndex(0));
        assert_eq!(j.vote_result(|_, _| Some(true)), VoteResult::Lost);
        assert!(!j.has_quorum(|_, _| true));
    }

    fn voters(n: u64) -> Voters {
        Voters::new(&(1..=n).map(|i| (NodeId(i), Incarnation::UNKNOWN)).collect::<Vec<_>>())
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
        let got = voters(5).quorum_value(&mut scratch, |id, _| LogIndex(matches[id.0 as usize - 1]));
        assert_eq!(got, LogIndex(5));
        let got = voters(3).quorum_value(&mut scratch, |id, _| LogIndex(matches[id.0 as usize - 1]));
        assert_eq!(got, LogIndex(5));
    }

    #[test]
    fn vote_result_decides_as_soon_as_it_can() {
        let v = voters(5);
        assert_eq!(v.vote_result(|id, _| (id.0 <= 2).then_some(true)), VoteResult::Pending);
        assert_eq!(v.vote_result(|id, _| (id.0 <= 3).then_some(true)), VoteResult::Won);
        assert_eq!(v.vote_result(|id, _| (id.0 <= 3).then_some(false)), VoteResult::Lost);
        assert_eq!(v.vote_result(|id, _| (id.0 <= 2).then_some(false)), VoteResult::Pending);
    }
}
