//! Leader election: Raft §5.2 and the RequestVote rules of Figure 2, with the
//! election restriction of §5.4.1.

use std::time::Duration;

use super::harness::{config, ids, msg, recovered, Cluster};
use crate::core::{Node, RecoveredState, Role};
use crate::message::{Heartbeat, Message, MessageBody, RequestVote, RequestVoteResponse};
use crate::types::{Instant, LogIndex, NodeId, Term};

fn vote_request(from: u64, to: u64, term: u64, last_index: u64, last_term: u64) -> Message {
    let req = RequestVote {
        pre_vote: false,
        last_log_index: LogIndex(last_index),
        last_log_term: Term(last_term),
        leadership_transfer: false,
    };
    msg(from, to, term, MessageBody::RequestVote(req))
}

/// The (pre-)vote answers node `to` received from `from` since `mark`.
fn answers(c: &Cluster, mark: usize, from: u64, to: u64) -> Vec<RequestVoteResponse> {
    c.sent[mark..]
        .iter()
        .filter(|m| m.from == NodeId(from) && m.to == NodeId(to))
        .filter_map(|m| match m.body {
            MessageBody::RequestVoteResponse(r) => Some(r),
            _ => None,
        })
        .collect()
}

fn elects_in_first_term(n: u64) {
    for s in 0..20u64 {
        let mut c = Cluster::with_config(n, |cfg| cfg.seed = cfg.id.0 * 7919 + s * 104_729);
        let leader = c.elect(Duration::from_secs(2));
        c.deliver_all();
        assert_eq!(c.node(leader.0).term(), Term(1), "seed {s}: more than one election round");
        assert_eq!(c.assert_single_leader(), leader, "seed {s}");
        // The new leader's blank entry is committed everywhere.
        for id in 1..=n {
            assert_eq!(c.commit_of(id), LogIndex(1), "seed {s}: node {id}");
        }
    }
}

#[test]
fn three_node_cluster_elects_a_leader_in_one_round() {
    elects_in_first_term(3);
}

#[test]
fn five_node_cluster_elects_a_leader_in_one_round() {
    elects_in_first_term(5);
}

#[test]
fn election_timeout_is_drawn_from_min_to_max() {
    let base = config(NodeId(1));
    let (min, max) = (base.election_timeout_min, base.election_timeout_max);
    let start = Instant::from_nanos(1_000_000_000);
    let (mut lowest, mut highest) = (max, min);
    for seed in 0..2000 {
        let mut cfg = base.clone();
        cfg.seed = seed;
        let mut node = Node::new(cfg, &ids(3), RecoveredState::default(), start).unwrap();
        let first = node.poll_timeout().expect("a follower has an election deadline");
        let timeout = first.saturating_duration_since(start);
        assert!(timeout >= min && timeout < max, "seed {seed}: timeout {timeout:?}");
        lowest = lowest.min(timeout);
        highest = highest.max(timeout);
        // Re-armed on every election (here: a pre-vote round) from that moment.
        node.handle_timeout(first);
        assert_eq!(node.role(), Role::PreCandidate);
        let again = node.poll_timeout().unwrap().saturating_duration_since(first);
        assert!(again >= min && again < max, "seed {seed}: re-armed timeout {again:?}");
    }
    // Uniform over the range: 2000 draws come close to both ends.
    let slack = (max - min) / 20;
    assert!(lowest < min + slack, "lowest timeout {lowest:?}");
    assert!(highest > max - slack, "highest timeout {highest:?}");
}

#[test]
fn one_vote_per_term_and_duplicate_request_is_granted_again() {
    let mut c = Cluster::new(3);
    let mark = c.sent.len();
    c.inject(vote_request(2, 1, 1, 0, 0));
    assert_eq!(c.node(1).term(), Term(1));
    assert_eq!(c.node(1).vote(), Some(NodeId(2)));
    assert_eq!(c.disks[&NodeId(1)].hard_state.vote, Some(NodeId(2)), "the vote is durable");
    // Another candidate of the same term is refused.
    c.inject(vote_request(3, 1, 1, 0, 0));
    assert_eq!(c.node(1).vote(), Some(NodeId(2)));
    // The same candidate asking again (a retransmission) is granted again.
    c.inject(vote_request(2, 1, 1, 0, 0));
    let grant = RequestVoteResponse { pre_vote: false, granted: true };
    let refusal = RequestVoteResponse { pre_vote: false, granted: false };
    assert_eq!(answers(&c, mark, 1, 2), vec![grant, grant]);
    assert_eq!(answers(&c, mark, 1, 3), vec![refusal]);
    assert_eq!(c.node(1).vote(), Some(NodeId(2)));
    // A new term frees the vote.
    c.inject(vote_request(3, 1, 2, 0, 0));
    assert_eq!(c.node(1).vote(), Some(NodeId(3)));
    assert_eq!(answers(&c, mark, 1, 3), vec![refusal, grant]);
}

#[test]
fn vote_is_refused_to_a_candidate_whose_log_is_less_up_to_date() {
    // The voter's log ends at index 3 in term 2.
    let voter =
        || Cluster::from_states(vec![recovered(2, &[1, 1, 2]), recovered(2, &[]), recovered(2, &[])], |_| {});
    // (last index, last term, granted): terms compare first, then indexes.
    let cases = [(5, 1, false), (2, 2, false), (3, 2, true), (9, 2, true), (1, 3, true)];
    for (last_index, last_term, granted) in cases {
        let mut c = voter();
        let mark = c.sent.len();
        c.inject(vote_request(2, 1, 3, last_index, last_term));
        let expected = RequestVoteResponse { pre_vote: false, granted };
        assert_eq!(answers(&c, mark, 1, 2), vec![expected], "candidate log ends at {last_index}@{last_term}");
        // The candidate's term is adopted either way.
        assert_eq!(c.node(1).term(), Term(3));
        assert_eq!(c.node(1).vote(), granted.then_some(NodeId(2)));
    }
}

/// A 3-node cluster without pre-vote in which node 1 is a candidate in term 1.
fn candidate_in_term_1() -> Cluster {
    let mut c = Cluster::with_config(3, |cfg| cfg.pre_vote = false);
    let now = c.now;
    c.node_mut(1).campaign(now);
    c.drain_all();
    c.take_network();
    assert_eq!(c.node(1).role(), Role::Candidate);
    assert_eq!(c.node(1).term(), Term(1));
    c
}

#[test]
fn candidate_steps_down_on_heartbeat_from_leader_of_its_term() {
    let mut c = candidate_in_term_1();
    c.inject(msg(
        2,
        1,
        1,
        MessageBody::Heartbeat(Heartbeat { commit: LogIndex(0), commit_term: Term(0), round: 0 }),
    ));
    assert_eq!(c.node(1).role(), Role::Follower);
    assert_eq!(c.node(1).term(), Term(1));
    assert_eq!(c.node(1).leader(), Some(NodeId(2)));
}

#[test]
fn candidate_steps_down_on_append_entries_from_leader_of_its_term() {
    let mut c = candidate_in_term_1();
    let append = crate::message::AppendEntries {
        prev_log_index: LogIndex(0),
        prev_log_term: Term(0),
        entries: vec![super::harness::entry(1, 1)],
        leader_commit: LogIndex(0),
    };
    c.inject(msg(3, 1, 1, MessageBody::AppendEntries(append)));
    assert_eq!(c.node(1).role(), Role::Follower);
    assert_eq!(c.node(1).term(), Term(1));
    assert_eq!(c.node(1).leader(), Some(NodeId(3)));
    assert_eq!(c.node(1).last_index(), LogIndex(1), "the leader's entry was taken");
}

#[test]
fn candidate_falls_back_to_follower_on_a_higher_term() {
    // A refusal carrying a higher term.
    let mut c = candidate_in_term_1();
    let refusal = RequestVoteResponse { pre_vote: false, granted: false };
    c.inject(msg(2, 1, 4, MessageBody::RequestVoteResponse(refusal)));
    assert_eq!((c.node(1).role(), c.node(1).term(), c.node(1).vote()), (Role::Follower, Term(4), None));
    assert_eq!(c.node(1).leader(), None);

    // A request from a candidate of a higher term, which it then votes for.
    let mut c = candidate_in_term_1();
    c.inject(vote_request(3, 1, 2, 0, 0));
    assert_eq!(c.node(1).role(), Role::Follower);
    assert_eq!(c.node(1).term(), Term(2));
    assert_eq!(c.node(1).vote(), Some(NodeId(3)));

    // A heartbeat from the leader of a higher term.
    let mut c = candidate_in_term_1();
    c.inject(msg(
        2,
        1,
        3,
        MessageBody::Heartbeat(Heartbeat { commit: LogIndex(0), commit_term: Term(0), round: 0 }),
    ));
    assert_eq!((c.node(1).role(), c.node(1).term()), (Role::Follower, Term(3)));
    assert_eq!(c.node(1).leader(), Some(NodeId(2)));
}

#[test]
fn candidate_wins_with_a_majority_of_votes() {
    let mut c = candidate_in_term_1();
    let grant = RequestVoteResponse { pre_vote: false, granted: true };
    c.inject(msg(2, 1, 1, MessageBody::RequestVoteResponse(grant)));
    assert_eq!(c.node(1).role(), Role::Leader);
    assert_eq!(c.node(1).term(), Term(1));
}

#[test]
fn split_vote_resolves_in_a_later_term() {
    let mut c = Cluster::with_config(4, |cfg| cfg.pre_vote = false);
    let now = c.now;
    c.node_mut(1).campaign(now);
    c.node_mut(2).campaign(now);
    c.drain_all();
    // Node 3 hears from candidate 1 first, node 4 from candidate 2: two votes
    // each, of the three needed.
    let requests = c.take_network();
    assert_eq!(requests.len(), 6);
    let order = [(1, 2), (1, 3), (2, 1), (2, 4), (2, 3), (1, 4)];
    for (from, to) in order {
        let m = requests.iter().find(|m| m.from == NodeId(from) && m.to == NodeId(to)).unwrap();
        c.network.push_back(m.clone());
    }
    c.deliver_all();
    assert_eq!(c.leader(), None, "nobody won the split vote");
    assert_eq!(c.node(3).vote(), Some(NodeId(1)));
    assert_eq!(c.node(4).vote(), Some(NodeId(2)));
    for id in 1..=4 {
        assert_eq!(c.node(id).term(), Term(1));
    }
    let leader = c.elect(Duration::from_secs(2));
    c.deliver_all();
    assert_eq!(c.node(leader.0).term(), Term(2), "the next term's election settles it");
    assert_eq!(c.assert_single_leader(), leader);
}

#[test]
fn single_node_elects_itself_and_commits_alone() {
    let mut c = Cluster::new(1);
    let leader = c.elect(Duration::from_secs(1));
    assert_eq!(leader, NodeId(1));
    assert_eq!(c.node(1).term(), Term(1));
    let index = c.propose(1, b"solo").unwrap();
    assert_eq!(index, LogIndex(2));
    assert_eq!(c.commit_of(1), LogIndex(2));
    assert_eq!(c.applied_indexes(1), vec![1, 2]);
    assert!(c.sent.is_empty(), "a single node talks to nobody");
}
