//! Durability gating: nothing that promises durable state (an
//! acknowledgement, a vote, a message in a new term) leaves a node before the
//! write behind it is reported durable, and a restart from storage resumes
//! where the application left off.

use std::time::Duration;

use super::harness::{is_append_response, is_vote_grant, msg, Cluster};
use crate::core::Role;
use crate::message::{AppendEntriesResponse, Heartbeat, HeartbeatResponse, MessageBody, RequestVoteResponse};
use crate::types::{LogIndex, NodeId, Term};

/// A 3-node cluster with an elected leader whose blank entry is committed
/// everywhere. Returns it with the leader and the two followers.
fn established() -> (Cluster, u64, [u64; 2]) {
    let mut c = Cluster::new(3);
    let leader = c.elect(Duration::from_secs(2)).0;
    c.deliver_all();
    let followers: Vec<u64> = (1..=3).filter(|&id| id != leader).collect();
    (c, leader, [followers[0], followers[1]])
}

fn match_of(c: &Cluster, leader: u64, follower: u64) -> LogIndex {
    let status = c.node(leader).status();
    status.peers.iter().find(|p| p.id == NodeId(follower)).expect("a peer of the leader").match_index
}

#[test]
fn follower_acknowledges_entries_only_once_durable() {
    let (mut c, leader, [f, _]) = established();
    c.stall(f);
    let mark = c.sent.len();
    let index = c.propose(leader, b"x").unwrap();
    c.deliver_all();
    assert_eq!(c.node(f).last_index(), index, "the follower has the entry");
    assert_eq!(c.node(f).persisted_index(), LogIndex(1), "but not durably");
    let acks = c.sent_since(mark, |m| m.from == NodeId(f) && is_append_response(m));
    assert!(acks.is_empty(), "acknowledged before durable: {acks:?}");
    assert_eq!(match_of(&c, leader, f), LogIndex(1));
    assert!(c.applied_indexes(f).iter().all(|&i| i < index.0), "applied before durable");

    c.unstall(f);
    c.deliver_all();
    let acks = c.sent_since(mark, |m| m.from == NodeId(f) && is_append_response(m));
    let accepted = MessageBody::AppendEntriesResponse(AppendEntriesResponse::Accepted { match_index: index });
    assert!(!acks.is_empty() && acks.iter().all(|m| m.body == accepted), "{acks:?}");
    assert_eq!(match_of(&c, leader, f), index);
    assert_eq!(c.applied_indexes(f).last(), Some(&index.0));
}

#[test]
fn vote_is_granted_only_once_durable() {
    let mut c = Cluster::with_config(3, |cfg| cfg.pre_vote = false);
    c.cut_both(1, 3);
    c.stall(2);
    let now = c.now;
    c.node_mut(1).campaign(now);
    c.deliver_all();
    assert_eq!(c.node(2).vote(), Some(NodeId(1)), "node 2 decided to vote");
    assert_eq!(c.disks[&NodeId(2)].hard_state.vote, None, "but its vote is not durable");
    assert!(c.sent_since(0, |m| m.from == NodeId(2)).is_empty(), "node 2 spoke before its vote was durable");
    assert_eq!(c.node(1).role(), Role::Candidate);

    c.unstall(2);
    c.deliver_all();
    assert_eq!(c.sent_since(0, |m| m.from == NodeId(2) && is_vote_grant(m)).len(), 1);
    assert_eq!(c.node(1).role(), Role::Leader);
}

#[test]
fn nothing_is_sent_in_a_new_term_before_it_is_durable() {
    let (mut c, leader, [f, _]) = established();
    c.stall(f);
    let mark = c.sent.len();
    // A heartbeat from a (hypothetical) leader of term 5.
    c.inject(msg(
        leader,
        f,
        5,
        MessageBody::Heartbeat(Heartbeat { commit: LogIndex(0), commit_term: Term(0), round: 0 }),
    ));
    assert_eq!(c.node(f).term(), Term(5));
    assert!(c.sent_since(mark, |m| m.from == NodeId(f)).is_empty());
    c.unstall(f);
    let sent = c.sent_since(mark, |m| m.from == NodeId(f));
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].term, &sent[0].body),
        (
            Term(5),
            &MessageBody::HeartbeatResponse(HeartbeatResponse {
                round: 0,
                last_index: LogIndex(1),
                disk: None
            })
        )
    );
    assert_eq!(c.disks[&NodeId(f)].hard_state.term, Term(5));
}

#[test]
fn candidate_with_stalled_disk_does_not_become_leader_even_with_all_votes() {
    let mut c = Cluster::with_config(3, |cfg| cfg.pre_vote = false);
    c.stall(1);
    let now = c.now;
    c.node_mut(1).campaign(now);
    c.drain_all();
    assert_eq!(c.node(1).role(), Role::Candidate);
    assert!(c.sent.is_empty(), "vote requests left before the candidate's own vote was durable");
    // Grants arrive anyway (a peer that guessed, or a replay): the candidate's
    // term and vote are still not durable, so it must not lead yet.
    for from in [2, 3] {
        let grant = RequestVoteResponse { pre_vote: false, granted: true };
        c.node_mut(1).handle_message(now, msg(from, 1, 1, MessageBody::RequestVoteResponse(grant)));
        assert_ne!(c.node(1).role(), Role::Leader, "leader before its term and vote were durable");
    }
    c.node(1).check_invariants();
    c.unstall(1);
    c.deliver_all();
    assert_eq!(c.node(1).role(), Role::Leader);
    assert_eq!(c.node(1).term(), Term(1));
}

#[test]
fn leader_with_stalled_disk_commits_on_its_followers_alone() {
    let (mut c, leader, [f1, f2]) = established();
    c.stall(leader);
    let index = c.propose(leader, b"x").unwrap();
    c.deliver_all();
    assert_eq!(c.node(leader).persisted_index(), LogIndex(1));
    // Two followers are a majority of three without the leader's own copy.
    assert_eq!(c.commit_of(leader), index);
    assert_eq!(c.commit_of(f1), index);
    assert_eq!(c.commit_of(f2), index);
    // The leader applies only what it holds durably.
    assert_eq!(c.applied_indexes(leader), vec![1]);
    c.unstall(leader);
    assert_eq!(c.applied_indexes(leader), vec![1, 2]);
}

#[test]
fn leader_with_stalled_disk_does_not_count_itself() {
    let (mut c, leader, [f1, f2]) = established();
    c.stall(leader);
    c.stall(f1);
    let index = c.propose(leader, b"x").unwrap();
    c.deliver_all();
    // Only f2 holds the entry durably: one of three.
    assert_eq!(match_of(&c, leader, f2), index);
    assert_eq!(c.commit_of(leader), LogIndex(1));
    c.unstall(f1);
    c.deliver_all();
    assert_eq!(c.commit_of(leader), index);
    assert_eq!(c.commit_of(f2), index);
    assert_eq!(c.node(leader).persisted_index(), LogIndex(1));
    c.unstall(leader);
    assert_eq!(c.node(leader).persisted_index(), index);
}

#[test]
fn restart_does_not_apply_entries_at_or_below_applied_again() {
    let (mut c, leader, [f, _]) = established();
    for _ in 0..5 {
        c.propose(leader, b"x").unwrap();
    }
    c.deliver_all();
    assert_eq!(c.applied_indexes(f), vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(c.disks[&NodeId(f)].hard_state.commit, LogIndex(6));
    c.restart(f, LogIndex(3));
    assert_eq!(c.node(f).last_index(), LogIndex(6));
    assert_eq!(c.applied_indexes(f), vec![4, 5, 6], "applied right after restart");
    assert_eq!(c.node(f).applied_index(), LogIndex(6));
    c.propose(leader, b"y").unwrap();
    c.deliver_all();
    assert_eq!(c.applied_indexes(f), vec![4, 5, 6, 7]);
}

#[test]
fn restart_with_stored_commit_behind_applied_resumes_after_applied() {
    let (mut c, leader, [f, _]) = established();
    for _ in 0..5 {
        c.propose(leader, b"x").unwrap();
    }
    c.deliver_all();
    // The commit index is stored lazily; the application may be ahead of it.
    c.disks.get_mut(&NodeId(f)).unwrap().hard_state.commit = LogIndex(2);
    c.restart(f, LogIndex(4));
    assert_eq!(c.commit_of(f), LogIndex(4));
    assert!(c.applied_indexes(f).is_empty());
    c.run_for(Duration::from_millis(200));
    assert_eq!(c.applied_indexes(f), vec![5, 6], "learned the rest from the leader");
}

#[test]
fn restart_loses_only_writes_not_yet_durable() {
    let (mut c, leader, [f, _]) = established();
    c.propose(leader, b"x").unwrap();
    c.deliver_all();
    c.stall(f);
    let lost = c.propose(leader, b"y").unwrap();
    c.deliver_all();
    assert_eq!(c.node(f).last_index(), lost);
    c.restart(f, LogIndex(0));
    assert_eq!(c.node(f).last_index(), lost.prev(), "the entry that was never durable is gone");
    assert_eq!(c.node(f).term(), c.node(leader).term());
    assert_eq!(c.applied_indexes(f), vec![1, 2]);
    // The leader notices the gap and sends the entry again.
    c.propose(leader, b"z").unwrap();
    c.run_for(Duration::from_millis(200));
    assert_eq!(c.node(f).last_index(), LogIndex(4));
    assert_eq!(c.applied_indexes(f), vec![1, 2, 3, 4]);
}
