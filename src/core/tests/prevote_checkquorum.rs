//! PreVote (thesis §9.6) and CheckQuorum with the leader lease on votes
//! (thesis §4.2.3, §6.2): a node that was cut off cannot depose a healthy
//! leader, and a leader that lost its quorum steps down.

use std::time::Duration;

use super::harness::{is_vote_grant, msg, Cluster};
use crate::core::{ProposeError, Role};
use crate::membership::MembershipChange;
use crate::message::{Heartbeat, Message, MessageBody, RequestVote};
use crate::types::{LogIndex, NodeId, Term};

/// A cluster of `n` with an elected leader, settled for a while.
fn established(n: u64, tweak: impl Fn(&mut crate::Config)) -> (Cluster, u64) {
    let mut c = Cluster::with_config(n, tweak);
    let leader = c.elect(Duration::from_secs(2)).0;
    c.run_for(Duration::from_millis(100));
    assert_eq!(c.assert_single_leader(), NodeId(leader));
    (c, leader)
}

fn count_requests(c: &Cluster, mark: usize, from: u64, pre_vote: bool) -> usize {
    c.sent_since(mark, |m| {
        m.from == NodeId(from) && matches!(m.body, MessageBody::RequestVote(r) if r.pre_vote == pre_vote)
    })
    .len()
}

#[test]
fn pre_vote_keeps_a_rejoining_node_from_disrupting_the_leader() {
    let (mut c, leader) = established(3, |_| {});
    let term = c.node(leader).term();
    let f = (1..=3).find(|&id| id != leader).unwrap();
    let mark = c.sent.len();
    c.isolate(f);
    c.run_for(Duration::from_secs(3));
    assert!(count_requests(&c, mark, f, true) >= 5, "the cut-off node kept trying");
    assert_eq!(count_requests(&c, mark, f, false), 0, "but never won a pre-vote");
    assert_eq!(c.node(f).term(), term, "so its term did not grow");
    c.heal();
    c.run_for(Duration::from_secs(1));
    assert_eq!(c.assert_single_leader(), NodeId(leader));
    assert_eq!(c.node(leader).term(), term);
}

/// Without pre-vote: node `f` is cut off while the leader commits an entry,
/// and campaigns alone until its term is well past the leader's. Returns
/// `(cluster, leader, f)`.
fn stuck_candidate() -> (Cluster, u64, u64) {
    let (mut c, leader) = established(3, |cfg| cfg.pre_vote = false);
    let f = (1..=3).find(|&id| id != leader).unwrap();
    c.isolate(f);
    c.propose(leader, b"while f was away").unwrap();
    c.run_for(Duration::from_secs(2));
    assert_eq!(c.commit_of(leader), LogIndex(2));
    assert!(c.node(f).term() >= Term(4), "f campaigned alone up to {:?}", c.node(f).term());
    assert_eq!(c.node(leader).role(), Role::Leader);
    (c, leader, f)
}

#[test]
fn rejoining_node_at_a_higher_term_is_ignored_for_votes_while_the_leader_is_alive() {
    let (mut c, leader, f) = stuck_candidate();
    let other = (1..=3).find(|&id| id != leader && id != f).unwrap();
    let term = c.node(leader).term();
    let other_vote = c.node(other).vote();
    c.heal();
    let now = c.now;
    c.node_mut(f).campaign(now);
    c.drain_all();
    let mark = c.sent.len();
    let requests: Vec<_> = c.take_network().into_iter().filter(|m| m.from == NodeId(f)).collect();
    assert_eq!(requests.len(), 2);
    for m in requests {
        c.inject(m);
    }
    for id in [leader, other] {
        assert_eq!(c.node(id).term(), term, "node {id} adopted the rejoining node's term");
    }
    assert_eq!(c.node(leader).role(), Role::Leader);
    assert_eq!(c.node(other).vote(), other_vote);
    assert_eq!(c.node(other).leader(), Some(NodeId(leader)));
    assert!(c.sent_since(mark, is_vote_grant).is_empty());
    assert!(
        c.sent_since(mark, |m| m.to == NodeId(f)).is_empty(),
        "a vote request in a lease is not answered"
    );
}

#[test]
fn check_quorum_frees_a_stuck_candidate() {
    let (mut c, _, f) = stuck_candidate();
    let stuck_term = c.node(f).term();
    c.heal();
    c.run_for(Duration::from_secs(3));
    let new_leader = c.assert_single_leader();
    assert!(c.node(new_leader.0).term() >= stuck_term);
    assert_ne!(new_leader, NodeId(f), "f's log lacks a committed entry: it cannot win");
    // The committed entry survived, and the cluster commits again.
    let index = c.propose(new_leader.0, b"after").unwrap();
    c.run_for(Duration::from_millis(200));
    for id in 1..=3 {
        assert_eq!(c.node(id).entry(LogIndex(2)).map(|e| &e.data[..]), Some(&b"while f was away"[..]));
        assert_eq!(c.commit_of(id), index, "node {id}");
    }
}

#[test]
fn isolated_leader_steps_down_within_election_timeout_min() {
    let (mut c, leader) = established(3, |_| {});
    let config = c.node(leader).config().clone();
    let term = c.node(leader).term();
    let cut_at = c.now;
    c.isolate(leader);
    let bound = cut_at + Duration::from_secs(2);
    while c.node(leader).role() == Role::Leader {
        assert!(c.now < bound, "the isolated leader never stepped down");
        c.tick();
        c.deliver_all();
    }
    let after = c.now.saturating_duration_since(cut_at);
    // It last heard from its followers at most one heartbeat before the cut,
    // and checks every heartbeat interval.
    let hb = config.heartbeat_interval;
    assert!(after + hb >= config.election_timeout_min, "stepped down after only {after:?}");
    assert!(after <= config.election_timeout_min + hb, "stepped down only after {after:?}");
    assert_eq!(c.node(leader).role(), Role::Follower);
    assert_eq!(c.node(leader).term(), term, "stepping down does not start a term");
    assert_eq!(c.propose(leader, b"x"), Err(ProposeError::NotLeader { leader_hint: None }));
}

#[test]
fn without_check_quorum_an_isolated_leader_keeps_leading() {
    let (mut c, leader) = established(3, |cfg| cfg.check_quorum = false);
    c.isolate(leader);
    c.run_for(Duration::from_secs(2));
    assert_eq!(c.node(leader).role(), Role::Leader);
    // Meanwhile the others elected a leader of their own in a later term.
    let others: Vec<u64> = (1..=3).filter(|&id| id != leader).collect();
    let new_leader = others.iter().find(|&&id| c.node(id).role() == Role::Leader);
    assert!(new_leader.is_some(), "the majority elected a new leader");
}

#[test]
fn follower_that_heard_from_the_leader_recently_ignores_vote_requests() {
    let mut c = Cluster::new(3);
    c.now = c.now + Duration::from_secs(1);
    let heard_at = c.now;
    c.inject(msg(
        2,
        1,
        1,
        MessageBody::Heartbeat(Heartbeat { commit: LogIndex(0), commit_term: Term(0), round: 0 }),
    ));
    assert_eq!(c.node(1).leader(), Some(NodeId(2)));
    let min = c.node(1).config().election_timeout_min;
    let pre_vote = RequestVote {
        pre_vote: true,
        last_log_index: LogIndex(0),
        last_log_term: Term(0),
        leadership_transfer: false,
    };
    let vote = RequestVote { pre_vote: false, ..pre_vote };

    // Within the lease: neither a pre-vote nor a vote, and no term change.
    c.now = heard_at + min - Duration::from_millis(1);
    let mark = c.sent.len();
    c.inject(msg(3, 1, 2, MessageBody::RequestVote(pre_vote)));
    c.inject(msg(3, 1, 2, MessageBody::RequestVote(vote)));
    assert!(c.sent_since(mark, is_vote_grant).is_empty());
    assert_eq!((c.node(1).term(), c.node(1).vote()), (Term(1), None));
    assert_eq!(c.node(1).leader(), Some(NodeId(2)));

    // Once the lease has run out, both are granted.
    c.now = heard_at + min;
    let mark = c.sent.len();
    c.inject(msg(3, 1, 2, MessageBody::RequestVote(pre_vote)));
    assert_eq!(c.sent_since(mark, is_vote_grant).len(), 1);
    assert_eq!(c.node(1).term(), Term(1), "a pre-vote changes nothing");
    c.inject(msg(3, 1, 2, MessageBody::RequestVote(vote)));
    assert_eq!(c.sent_since(mark, is_vote_grant).len(), 2);
    assert_eq!((c.node(1).term(), c.node(1).vote()), (Term(2), Some(NodeId(3))));
}

#[test]
fn leader_ignores_vote_requests_of_a_higher_term_while_it_has_a_quorum() {
    let (mut c, leader) = established(3, |_| {});
    let f = (1..=3).find(|&id| id != leader).unwrap();
    let term = c.node(leader).term();
    let mark = c.sent.len();
    let vote = RequestVote {
        pre_vote: false,
        last_log_index: LogIndex(100),
        last_log_term: Term(9),
        leadership_transfer: false,
    };
    c.inject(msg(f, leader, 9, MessageBody::RequestVote(vote)));
    c.inject(msg(f, leader, 9, MessageBody::RequestVote(RequestVote { pre_vote: true, ..vote })));
    assert_eq!(c.node(leader).role(), Role::Leader);
    assert_eq!(c.node(leader).term(), term);
    assert!(c.sent_since(mark, |m| m.from == NodeId(leader)).is_empty());
}

/// Voters {1, 2} and learner 3, heard once (so that the leader knows the
/// incarnation to admit) and whose answers then stop reaching the leader
/// for `silent_before`; then the leader replaces the other voter by 3. The
/// joint configuration needs 3 (C_new = {leader, 3} must have a majority).
/// Returns the cluster, the leader, its term and when 3 became a voter.
fn promotes_a_silent_learner(silent_before: Duration) -> (Cluster, u64, Term, crate::types::Instant) {
    let (mut c, leader) = established(2, |_| {});
    let other = 3 - leader;
    c.add_node(3);
    let learner = MembershipChange::AddLearner { id: NodeId(3), address: "n3".into() };
    let index = c.change_membership(leader, learner).unwrap();
    c.deliver_all();
    c.cut.insert((NodeId(3), NodeId(leader)));
    assert_eq!(c.commit_of(leader), index, "the voters commit the learner's addition");
    c.run_for(silent_before);
    assert_eq!(c.node(leader).role(), Role::Leader, "a silent learner does not count");
    let term = c.node(leader).term();
    let promoted_at = c.now;
    let replace = MembershipChange::Replace { promote: NodeId(3), remove: NodeId(other) };
    c.change_membership(leader, replace).unwrap();
    assert!(c.node(leader).membership().voters.contains(&NodeId(3)));
    (c, leader, term, promoted_at)
}

/// CheckQuorum gives a voter added mid-term what every voter gets when a
/// leader takes office: an election timeout to answer before it counts as
/// absent. Counting it absent at once made a leader step down right after a
/// promotion; in a joint configuration that needs the new voter it never led
/// again.
#[test]
fn check_quorum_gives_a_new_voter_an_election_timeout_to_answer() {
    // Silent for up to most of a window: the leader still counts it live
    // (it refuses to promote a learner it has not heard from lately).
    for silent_before in [Duration::ZERO, Duration::from_millis(110)] {
        // From now on the new voter's answers arrive, but late: they reach
        // the leader half a window after the promotion.
        let (mut c, leader, term, promoted_at) = promotes_a_silent_learner(silent_before);
        let window = c.node(leader).config().election_timeout_min;
        c.heal();
        let late = move |m: &Message| m.from == NodeId(3) && m.to == NodeId(leader);
        let mut held = c.deliver_except(late);
        while c.now < promoted_at + window / 2 {
            c.tick();
            held.extend(c.deliver_except(late));
            let after = c.now.saturating_duration_since(promoted_at);
            assert_eq!(
                c.node(leader).role(),
                Role::Leader,
                "({silent_before:?}) stepped down after {after:?}"
            );
        }
        assert!(!held.is_empty());
        c.network.extend(held);
        c.run_for(Duration::from_secs(2));
        assert_eq!(
            (c.node(leader).role(), c.node(leader).term()),
            (Role::Leader, term),
            "({silent_before:?})"
        );
        let m = c.node(leader).membership();
        assert!(!m.is_joint() && m.voters.contains(&NodeId(3)), "({silent_before:?}) {m}");
        assert!(c.node(leader).membership_committed());

        // The new voter stays silent: the leader steps down once a window
        // has passed without hearing it, and not before.
        let (mut c, leader, term, promoted_at) = promotes_a_silent_learner(silent_before);
        let config = c.node(leader).config().clone();
        while c.node(leader).role() == Role::Leader {
            assert!(c.now < promoted_at + Duration::from_secs(2), "the leader never stepped down");
            c.tick();
            c.deliver_all();
        }
        let after = c.now.saturating_duration_since(promoted_at);
        assert!(
            after >= config.election_timeout_min,
            "({silent_before:?}) stepped down after only {after:?}"
        );
        assert!(
            after <= config.election_timeout_min + config.heartbeat_interval,
            "stepped down after {after:?}"
        );
        assert_eq!(c.node(leader).term(), term);
    }
}
