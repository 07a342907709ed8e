//! Messages that no correct peer sends in the current state (misaddressed,
//! from strangers, unsolicited, or internally inconsistent) are dropped:
//! no panic, no answer, no change of term, vote, role, log, commit or timer.

use std::time::Duration;

use super::harness::{entry, is_append_response, msg, terms_of, Cluster};
use crate::core::{ProgressState, Status};
use crate::message::{
    AppendEntries, AppendEntriesResponse, Heartbeat, HeartbeatResponse, Message, MessageBody,
    RequestVoteResponse,
};
use crate::types::{Entry, Instant, LogIndex, NodeId, Term};

/// Everything a dropped message must leave alone.
#[derive(Debug, PartialEq)]
struct Snapshot {
    status: Status,
    vote: Option<NodeId>,
    terms: Vec<u64>,
    timeout: Option<Instant>,
}

fn snapshot(c: &Cluster, id: u64) -> Snapshot {
    let node = c.node(id);
    let mut status = node.status();
    // Any message from a peer shows it is alive, whatever it says.
    for p in &mut status.peers {
        p.last_heard = None;
    }
    Snapshot { status, vote: node.vote(), terms: terms_of(node), timeout: node.poll_timeout() }
}

/// Hands `m` to node `at` (whatever `m.to` says) and checks that it was
/// dropped.
fn assert_dropped(c: &mut Cluster, at: u64, m: Message) {
    let before = snapshot(c, at);
    let mark = c.sent.len();
    let now = c.now;
    let shown = format!("{m:?}");
    c.node_mut(at).handle_message(now, m);
    c.drain(NodeId(at));
    assert_eq!(snapshot(c, at), before, "node {at} changed on {shown}");
    let answers = c.sent_since(mark, |m| m.from == NodeId(at));
    assert!(answers.is_empty(), "node {at} answered {shown} with {answers:?}");
}

/// A 3-node cluster whose leader committed entries 1..=3 of term 1 on every
/// node, a little later than the election. Returns it with the leader and
/// the followers.
fn established() -> (Cluster, u64, u64, u64) {
    let mut c = Cluster::new(3);
    let leader = c.elect(Duration::from_secs(2)).0;
    c.deliver_all();
    c.propose(leader, b"a").unwrap();
    c.propose(leader, b"b").unwrap();
    c.run_for(Duration::from_millis(20));
    let f: Vec<u64> = (1..=3).filter(|&id| id != leader).collect();
    for id in 1..=3 {
        assert_eq!((c.node(id).term(), c.commit_of(id)), (Term(1), LogIndex(3)), "node {id}");
    }
    (c, leader, f[0], f[1])
}

fn append(prev: (u64, u64), entries: Vec<Entry>) -> MessageBody {
    MessageBody::AppendEntries(AppendEntries {
        prev_log_index: LogIndex(prev.0),
        prev_log_term: Term(prev.1),
        entries,
        leader_commit: LogIndex(3),
    })
}

fn heartbeat() -> MessageBody {
    MessageBody::Heartbeat(Heartbeat { commit: LogIndex(3), commit_term: Term(1), round: 0 })
}

#[test]
fn message_for_another_node_is_dropped() {
    let (mut c, leader, f, other) = established();
    assert_dropped(&mut c, f, msg(leader, other, 5, heartbeat()));
    assert_dropped(&mut c, f, msg(leader, 9, 5, heartbeat()));
    assert_dropped(&mut c, f, msg(leader, 0, 5, append((3, 1), vec![entry(4, 5)])));
}

#[test]
fn message_from_node_zero_or_from_itself_is_dropped_and_a_strangers_vote_does_not_count() {
    // Messages from nodes outside the configuration are handled (a lagging
    // follower learns of new members from the log, after they first write
    // to it), but what they say is never counted.
    let (mut c, leader, f, _) = established();
    assert_dropped(&mut c, f, msg(0, f, 5, append((3, 1), vec![entry(4, 5)])));
    assert_dropped(&mut c, f, msg(f, f, 5, heartbeat()));
    let grant = RequestVoteResponse { pre_vote: false, granted: true };
    assert_dropped(&mut c, leader, msg(9, leader, 1, MessageBody::RequestVoteResponse(grant)));
    let accepted = AppendEntriesResponse::Accepted { match_index: LogIndex(3) };
    assert_dropped(&mut c, leader, msg(leader, leader, 1, MessageBody::AppendEntriesResponse(accepted)));
}

#[test]
fn append_entries_response_to_a_follower_is_dropped() {
    let (mut c, leader, f, other) = established();
    let accepted = AppendEntriesResponse::Accepted { match_index: LogIndex(3) };
    assert_dropped(&mut c, f, msg(other, f, 1, MessageBody::AppendEntriesResponse(accepted)));
    let rejected = AppendEntriesResponse::Rejected {
        rejected_index: LogIndex(3),
        hint_index: LogIndex(1),
        hint_term: Term(1),
    };
    assert_dropped(&mut c, f, msg(leader, f, 1, MessageBody::AppendEntriesResponse(rejected)));
    assert_dropped(
        &mut c,
        f,
        msg(
            other,
            f,
            1,
            MessageBody::HeartbeatResponse(HeartbeatResponse {
                round: 0,
                last_index: LogIndex(0),
                disk: None,
            }),
        ),
    );
}

#[test]
fn vote_response_nobody_asked_for_is_dropped() {
    let (mut c, leader, f, other) = established();
    let grant = RequestVoteResponse { pre_vote: false, granted: true };
    let pre_grant = RequestVoteResponse { pre_vote: true, granted: true };
    // To the leader: a vote in its own term, a pre-vote for the next one.
    assert_dropped(&mut c, leader, msg(f, leader, 1, MessageBody::RequestVoteResponse(grant)));
    assert_dropped(&mut c, leader, msg(f, leader, 2, MessageBody::RequestVoteResponse(pre_grant)));
    // To a follower.
    assert_dropped(&mut c, f, msg(other, f, 1, MessageBody::RequestVoteResponse(grant)));
    assert_dropped(&mut c, f, msg(other, f, 2, MessageBody::RequestVoteResponse(pre_grant)));
}

#[test]
fn append_entries_or_heartbeat_to_the_leader_of_the_same_term_is_dropped() {
    let (mut c, leader, f, _) = established();
    assert_dropped(&mut c, leader, msg(f, leader, 1, append((3, 1), vec![entry(4, 1)])));
    assert_dropped(&mut c, leader, msg(f, leader, 1, heartbeat()));
}

#[test]
fn append_entries_with_inconsistent_entries_is_dropped() {
    let (mut c, leader, f, _) = established();
    let cases = [
        ("gap after prev", append((3, 1), vec![entry(5, 1)])),
        ("not starting after prev", append((3, 1), vec![entry(3, 1), entry(4, 1)])),
        ("indexes not consecutive", append((3, 1), vec![entry(4, 1), entry(6, 1)])),
        ("entry term above the message term", append((3, 1), vec![entry(4, 2)])),
        ("entry term below prev_log_term", append((3, 1), vec![entry(4, 0)])),
        ("terms decreasing", append((0, 0), vec![entry(1, 1), entry(2, 0)])),
        ("prev_log_term above the message term", append((3, 2), vec![])),
        ("index overflow", append((u64::MAX, 1), vec![entry(0, 1)])),
    ];
    for (what, body) in cases {
        let shown = format!("{what}: {body:?}");
        let before = snapshot(&c, f);
        assert_dropped(&mut c, f, msg(leader, f, 1, body));
        assert_eq!(snapshot(&c, f), before, "{shown}");
    }
}

/// `established`, then two more entries the follower `slow` received but
/// whose acknowledgements are returned, undelivered: the leader sees it in
/// Replicate with match 3 and next 6.
fn lagging() -> (Cluster, u64, u64) {
    let (mut c, leader, _, slow) = established();
    c.propose(leader, b"c").unwrap();
    let mut held = c.deliver_except(|m| is_append_response(m) && m.from == NodeId(slow));
    c.propose(leader, b"d").unwrap();
    held.extend(c.deliver_except(|m| is_append_response(m) && m.from == NodeId(slow)));
    assert!(!held.is_empty());
    let p = c.node(leader).status().peers.into_iter().find(|p| p.id == NodeId(slow)).unwrap();
    assert_eq!((p.state, p.match_index, p.next_index), (ProgressState::Replicate, LogIndex(3), LogIndex(6)));
    (c, leader, slow)
}

fn rejected(rejected_index: u64, hint_index: u64, hint_term: u64) -> MessageBody {
    MessageBody::AppendEntriesResponse(AppendEntriesResponse::Rejected {
        rejected_index: LogIndex(rejected_index),
        hint_index: LogIndex(hint_index),
        hint_term: Term(hint_term),
    })
}

#[test]
fn impossible_append_entries_responses_are_dropped_by_the_leader() {
    let (mut c, leader, slow) = lagging();
    let beyond = AppendEntriesResponse::Accepted { match_index: LogIndex(6) };
    assert_dropped(&mut c, leader, msg(slow, leader, 1, MessageBody::AppendEntriesResponse(beyond)));
    let far = AppendEntriesResponse::Accepted { match_index: LogIndex(u64::MAX) };
    assert_dropped(&mut c, leader, msg(slow, leader, 1, MessageBody::AppendEntriesResponse(far)));
    assert_dropped(&mut c, leader, msg(slow, leader, 1, rejected(5, 6, 1)));
    assert_dropped(&mut c, leader, msg(slow, leader, 1, rejected(6, 3, 1)));
    assert_dropped(&mut c, leader, msg(slow, leader, 1, rejected(u64::MAX, 3, 1)));
    assert_dropped(&mut c, leader, msg(slow, leader, 1, rejected(5, 3, 2)));
    // The same leader does act on a possible rejection: the cases above were
    // dropped for what they said, not ignored for some other reason.
    c.inject(msg(slow, leader, 1, rejected(5, 3, 1)));
    let p = c.node(leader).status().peers.into_iter().find(|p| p.id == NodeId(slow)).unwrap();
    assert_eq!((p.state, p.next_index), (ProgressState::Probe, LogIndex(4)));
}
