//! Linearizable reads (thesis §6.4): ReadIndex on the leader with one
//! heartbeat round shared by every read waiting, reads served by followers,
//! and leader leases.

use std::time::Duration;

use super::harness::{
    established, is_append, is_heartbeat, is_heartbeat_response, is_timeout_now, msg, recovered, Cluster,
};
use crate::config::Config;
use crate::core::{ReadError, ReadReady, Role, StartError};
use crate::message::{Heartbeat, Message, MessageBody, ReadIndex, ReadIndexResponse};
use crate::types::{Instant, LogIndex, NodeId, Term};

fn heartbeats_since(c: &Cluster, mark: usize) -> usize {
    c.sent_since(mark, is_heartbeat).len()
}

fn other_than(leader: u64, n: u64) -> Vec<u64> {
    (1..=n).filter(|&id| id != leader).collect()
}

#[test]
fn read_index_on_leader_is_served_after_a_quorum_round() {
    let (mut c, leader) = established(3, |_| {});
    let index = c.propose(leader, b"x").unwrap();
    c.deliver_all();
    assert_eq!((index, c.commit_of(leader)), (LogIndex(2), LogIndex(2)));

    let mark = c.sent.len();
    c.read(leader, 7).unwrap();
    assert_eq!(heartbeats_since(&c, mark), 2, "the read starts a round: one heartbeat per follower");
    assert_eq!(c.read_result(leader, 7), None, "not served before anyone answered");
    let held = c.deliver_except(is_heartbeat_response);
    assert_eq!(held.len(), 2);
    assert_eq!(c.read_result(leader, 7), None, "followers heard the round but the leader did not hear back");
    // One answer plus the leader itself is a quorum of three.
    let mut held = held.into_iter();
    c.inject(held.next().unwrap());
    assert_eq!(c.reads_of(leader), &[ReadReady { ctx: 7, result: Ok(LogIndex(2)) }]);
    c.inject(held.next().unwrap());
    c.deliver_all();
    assert_eq!(c.reads_of(leader).len(), 1, "answered once");
    for f in other_than(leader, 3) {
        assert!(c.reads_of(f).is_empty());
    }
}

#[test]
fn reads_arriving_together_share_one_confirmation_round() {
    let (mut c, leader) = established(3, |_| {});
    let mark = c.sent.len();
    let now = c.now;
    // A hundred reads arrive before the node is drained: none of its
    // heartbeats has left yet, so one round proves leadership for all.
    for ctx in 0..100 {
        c.node_mut(leader).read_index(now, ctx).unwrap();
    }
    c.drain_all();
    assert_eq!(heartbeats_since(&c, mark), 2, "a hundred reads, one round");
    assert!(c.reads_of(leader).is_empty());
    let held = c.deliver_except(is_heartbeat_response);
    assert_eq!(held.len(), 2);
    c.inject(held.into_iter().next().unwrap());
    assert_eq!(c.reads_of(leader).len(), 100, "all served after one answer");
    let expected: Vec<ReadReady> = (0..100).map(|ctx| ReadReady { ctx, result: Ok(LogIndex(1)) }).collect();
    assert_eq!(c.reads_of(leader), &expected[..], "in arrival order");
    c.deliver_all();
    assert_eq!(heartbeats_since(&c, mark), 2, "and no second round");
    assert_eq!(c.reads_of(leader).len(), 100);
}

#[test]
fn reads_arriving_while_a_round_is_out_share_the_next_one() {
    let (mut c, leader) = established(3, |_| {});
    // At most one round is awaited at a time: reads arriving after the
    // round's heartbeats left wait for the next round, which they share.
    let mark = c.sent.len();
    c.read(leader, 1000).unwrap();
    assert_eq!(heartbeats_since(&c, mark), 2);
    for ctx in 1001..1050 {
        c.read(leader, ctx).unwrap();
    }
    assert_eq!(heartbeats_since(&c, mark), 2, "no second round while the first is out");
    let held = c.deliver_except(is_heartbeat_response);
    let mut held = held.into_iter();
    c.inject(held.next().unwrap());
    assert_eq!(c.read_result(leader, 1000), Some(Ok(LogIndex(1))));
    assert_eq!(c.read_result(leader, 1001), None, "1001 arrived after the round started");
    assert_eq!(c.read_result(leader, 1049), None);
    assert_eq!(heartbeats_since(&c, mark), 4, "confirming the first round starts the next one at once");
    c.deliver_all();
    for ctx in 1001..1050 {
        assert_eq!(c.read_result(leader, ctx), Some(Ok(LogIndex(1))));
    }
    assert_eq!(heartbeats_since(&c, mark), 4, "two rounds for fifty reads");
}

#[test]
fn read_on_a_new_leader_waits_for_its_first_commit() {
    // Every node holds two entries of term 1 that may or may not have been
    // committed: the new leader's commit index (0) says nothing about them.
    let mut c = Cluster::from_states(vec![recovered(1, &[1, 1]); 3], |_| {});
    let now = c.now;
    c.node_mut(1).campaign(now);
    c.drain_all();
    let appends = c.deliver_except(is_append);
    assert_eq!(c.node(1).role(), Role::Leader);
    assert_eq!(c.node(1).term(), Term(2));
    let blank = c.node(1).last_index();
    assert_eq!(blank, LogIndex(3));
    // The followers receive the blank entry but cannot make it durable.
    c.stall(2);
    c.stall(3);
    c.network.extend(appends);
    c.deliver_all();
    assert_eq!(c.node(2).last_index(), blank);

    c.read(1, 42).unwrap();
    c.run_for(Duration::from_millis(120));
    assert_eq!(c.node(1).role(), Role::Leader);
    assert!(c.sent_since(0, |m| m.from == NodeId(1) && is_heartbeat(m)).len() >= 4, "rounds went on");
    assert_eq!(c.commit_of(1), LogIndex(0));
    assert_eq!(c.read_result(1, 42), None, "no read before an entry of the new term commits");

    c.unstall(2);
    c.deliver_all();
    assert_eq!(c.commit_of(1), blank);
    assert_eq!(c.read_result(1, 42), Some(Ok(blank)));
}

#[test]
fn read_fails_when_leadership_is_lost() {
    // Through CheckQuorum.
    let (mut c, leader) = established(3, |_| {});
    c.isolate(leader);
    c.read(leader, 9).unwrap();
    c.run_for(Duration::from_millis(250));
    assert_eq!(c.node(leader).role(), Role::Follower, "stepped down without a quorum");
    assert_eq!(c.reads_of(leader), &[ReadReady { ctx: 9, result: Err(ReadError::LeadershipLost) }]);
    c.heal();
    c.run_for(Duration::from_secs(1));
    c.assert_single_leader();
    assert_eq!(c.reads_of(leader).len(), 1, "and never an Ok afterwards");

    // Through a higher term.
    let (mut c, leader) = established(3, |_| {});
    let term = c.node(leader).term();
    let f = other_than(leader, 3)[0];
    c.cut_both(leader, f);
    c.read(leader, 10).unwrap();
    let hb = Heartbeat { commit: LogIndex(0), commit_term: Term(0), round: 1 };
    c.inject(msg(f, leader, term.0 + 1, MessageBody::Heartbeat(hb)));
    assert_eq!(c.node(leader).role(), Role::Follower);
    assert_eq!(c.reads_of(leader), &[ReadReady { ctx: 10, result: Err(ReadError::LeadershipLost) }]);
    c.deliver_all();
    assert_eq!(c.reads_of(leader).len(), 1, "the other follower's answer to the round changes nothing");
}

#[test]
fn read_waits_until_the_leader_applied_the_read_index() {
    let (mut c, leader) = established(3, |_| {});
    c.pause_apply(leader);
    assert_eq!(c.propose(leader, b"a"), Ok(LogIndex(2)));
    assert_eq!(c.propose(leader, b"b"), Ok(LogIndex(3)));
    c.deliver_all();
    assert_eq!(c.commit_of(leader), LogIndex(3));
    assert_eq!(c.node(leader).applied_index(), LogIndex(1));

    c.read(leader, 5).unwrap();
    c.deliver_all();
    assert_eq!(c.read_result(leader, 5), None, "confirmed, but the state machine is behind");
    assert_eq!(c.apply_next(leader), Some(LogIndex(2)));
    assert_eq!(c.read_result(leader, 5), None, "applied 2 of 3");
    c.resume_apply(leader);
    assert_eq!(c.node(leader).applied_index(), LogIndex(3));
    assert_eq!(c.reads_of(leader), &[ReadReady { ctx: 5, result: Ok(LogIndex(3)) }]);
}

#[test]
fn follower_read_is_served_after_the_follower_applied_the_leader_index() {
    let (mut c, leader) = established(3, |_| {});
    let f = other_than(leader, 3)[0];
    // Entry 2 commits on the leader and the other follower while f's copy is
    // held back.
    let index = c.propose(leader, b"x").unwrap();
    let held = c.deliver_except(|m| is_append(m) && m.to == NodeId(f));
    assert_eq!(c.commit_of(leader), index);
    assert_eq!(c.node(f).last_index(), LogIndex(1));

    let mark = c.sent.len();
    c.read(f, 3).unwrap();
    let held_more = c.deliver_except(|m| is_append(m) && m.to == NodeId(f));
    let asks = c.sent_since(mark, |m| matches!(m.body, MessageBody::ReadIndex(_)));
    let MessageBody::ReadIndex(ReadIndex { request_id }) = asks[0].body else { unreachable!() };
    let answers = c.sent_since(mark, |m| matches!(m.body, MessageBody::ReadIndexResponse(_)));
    assert_eq!(answers.len(), 1);
    assert_eq!(
        answers[0].body,
        MessageBody::ReadIndexResponse(ReadIndexResponse { request_id, index: Some(index) })
    );
    assert_eq!(answers[0].to, NodeId(f));
    assert_eq!(c.node(f).applied_index(), LogIndex(1));
    assert_eq!(c.read_result(f, 3), None, "f has not applied the leader's commit index");
    assert!(c.reads_of(leader).is_empty(), "the leader answers f, not its own client");

    c.network.extend(held);
    c.network.extend(held_more);
    c.deliver_all();
    assert_eq!(c.node(f).applied_index(), index);
    assert_eq!(c.reads_of(f), &[ReadReady { ctx: 3, result: Ok(index) }]);
}

#[test]
fn follower_read_without_a_leader_is_refused_with_not_leader() {
    let mut c = Cluster::new(3);
    for id in 1..=3 {
        assert_eq!(c.read(id, 1), Err(ReadError::NotLeader { leader_hint: None }));
    }
    assert!(c.sent.is_empty(), "nothing was asked of anyone");

    let leader = c.elect(Duration::from_secs(2)).0;
    c.deliver_all();
    let f = other_than(leader, 3)[0];
    assert_eq!(c.read(f, 2), Ok(()), "with a leader known, the follower asks it");
    c.deliver_all();
    assert_eq!(c.read_result(f, 2), Some(Ok(LogIndex(1))));

    // A pre-candidate has no leader.
    c.isolate(f);
    let now = c.now;
    c.node_mut(f).campaign(now);
    c.drain_all();
    assert_eq!(c.node(f).role(), Role::PreCandidate);
    assert_eq!(c.read(f, 3), Err(ReadError::NotLeader { leader_hint: None }));
    assert_eq!(c.read_result(f, 3), None, "a refused read is never answered later");
}

#[test]
fn forwarded_read_times_out_when_the_leader_never_answers() {
    let (mut c, leader) = established(3, |_| {});
    let f = other_than(leader, 3)[0];
    // f still hears the leader, but nothing f sends reaches it.
    c.cut.insert((NodeId(f), NodeId(leader)));
    let timeout = c.node(f).config().election_timeout_max * 2;
    let asked_at = c.now;
    let mark = c.sent.len();
    c.read(f, 77).unwrap();
    let asks = c.sent_since(mark, |m| matches!(m.body, MessageBody::ReadIndex(_)));
    assert_eq!(asks.len(), 1);
    assert_eq!((asks[0].from, asks[0].to), (NodeId(f), NodeId(leader)));
    c.run_for(timeout - Duration::from_millis(1));
    assert_eq!(c.node(f).leader(), Some(NodeId(leader)), "f kept its leader all along");
    assert_eq!(c.read_result(f, 77), None);
    c.run_for(Duration::from_millis(1));
    assert_eq!(c.now, asked_at + timeout);
    assert_eq!(c.reads_of(f), &[ReadReady { ctx: 77, result: Err(ReadError::Timeout) }]);
    c.run_for(Duration::from_secs(1));
    assert_eq!(c.reads_of(f).len(), 1);
}

/// A follower's read expires while the leader's answer is on its way; the
/// caller asks again with the same `ctx` once more is committed and applied
/// everywhere. The late answer belongs to the expired request: serving the
/// new read with it would return state older than what was applied
/// everywhere before the read began.
#[test]
fn a_late_answer_to_an_expired_follower_read_does_not_serve_a_new_read_with_the_same_ctx() {
    let (mut c, leader) = established(3, |_| {});
    let f = other_than(leader, 3)[0];
    let two = c.propose(leader, b"x").unwrap();
    c.deliver_all();
    let is_answer_to_f =
        move |m: &Message| m.to == NodeId(f) && matches!(m.body, MessageBody::ReadIndexResponse(_));

    c.read(f, 9).unwrap();
    let late = c.deliver_except(is_answer_to_f);
    assert_eq!(late.len(), 1);
    assert!(matches!(late[0].body, MessageBody::ReadIndexResponse(r) if r.index == Some(two)));
    c.run_for(c.node(f).config().election_timeout_max * 2);
    assert_eq!(c.reads_of(f), &[ReadReady { ctx: 9, result: Err(ReadError::Timeout) }]);
    assert_eq!(c.node(f).leader(), Some(NodeId(leader)), "f kept its leader all along");

    let three = c.propose(leader, b"y").unwrap();
    c.deliver_all();
    for id in 1..=3 {
        assert_eq!(c.node(id).applied_index(), three, "node {id}");
    }
    c.read(f, 9).unwrap();
    let fresh = c.deliver_except(is_answer_to_f);
    assert_eq!(fresh.len(), 1);
    c.inject(late.into_iter().next().unwrap());
    assert_eq!(c.reads_of(f).len(), 1, "the late answer served the new read: {:?}", c.reads_of(f));
    c.inject(fresh.into_iter().next().unwrap());
    assert_eq!(c.reads_of(f)[1..], [ReadReady { ctx: 9, result: Ok(three) }]);
}

#[test]
fn forwarded_read_fails_when_the_follower_learns_of_a_new_leader() {
    let mut c = Cluster::new(3);
    let hb = |round| MessageBody::Heartbeat(Heartbeat { commit: LogIndex(0), commit_term: Term(0), round });
    c.inject(msg(2, 1, 1, hb(1)));
    assert_eq!(c.node(1).leader(), Some(NodeId(2)));
    c.read(1, 5).unwrap();
    let asked = c.take_network();
    let request_id = asked
        .iter()
        .find_map(|m| match m.body {
            MessageBody::ReadIndex(r) if m.to == NodeId(2) => Some(r.request_id),
            _ => None,
        })
        .expect("node 1 asked node 2");
    // Node 3 leads term 2: node 2 will never answer for it.
    c.inject(msg(3, 1, 2, hb(1)));
    assert_eq!(c.node(1).leader(), Some(NodeId(3)));
    assert_eq!(c.reads_of(1), &[ReadReady { ctx: 5, result: Err(ReadError::LeadershipLost) }]);
    // A late answer from the old leader is stale and changes nothing.
    let late = ReadIndexResponse { request_id, index: Some(LogIndex(0)) };
    c.inject(msg(2, 1, 1, MessageBody::ReadIndexResponse(late)));
    assert_eq!(c.reads_of(1).len(), 1);
}

#[test]
fn forwarded_read_fails_when_its_leader_moves_to_a_new_term() {
    let mut c = Cluster::new(3);
    let hb = |round| MessageBody::Heartbeat(Heartbeat { commit: LogIndex(0), commit_term: Term(0), round });
    c.inject(msg(2, 1, 1, hb(1)));
    c.read(1, 5).unwrap();
    c.take_network();
    // Node 2 was re-elected in term 2: its term-1 leadership, which the read
    // was asked of, is gone, and it drops the term-1 ReadIndex as stale.
    c.inject(msg(2, 1, 2, hb(1)));
    assert_eq!((c.node(1).term(), c.node(1).leader()), (Term(2), Some(NodeId(2))));
    assert_eq!(
        c.reads_of(1),
        &[ReadReady { ctx: 5, result: Err(ReadError::LeadershipLost) }],
        "the read should fail now, not after 2 × election_timeout_max"
    );
}

#[test]
fn pending_reads_beyond_the_limit_get_backpressure() {
    let (mut c, leader) = established(3, |cfg| cfg.pending_reads_max = 3);
    for ctx in 1..=3 {
        assert_eq!(c.read(leader, ctx), Ok(()));
    }
    assert_eq!(c.read(leader, 4), Err(ReadError::Backpressure));

    // A follower's read is refused by the full leader: the follower learns
    // it failed (as LeadershipLost: the answer carries no reason).
    let f = other_than(leader, 3)[0];
    c.read(f, 50).unwrap();
    let held = c.deliver_except(is_heartbeat_response);
    let refusal = |m: &Message| {
        m.to == NodeId(f) && matches!(m.body, MessageBody::ReadIndexResponse(r) if r.index.is_none())
    };
    assert_eq!(c.sent_since(0, refusal).len(), 1, "the leader refused f's read");
    assert!(matches!(c.read_result(f, 50), Some(Err(_))), "f's read failed: {:?}", c.reads_of(f));
    for m in held {
        c.inject(m);
    }
    c.deliver_all();
    let served: Vec<_> = c.reads_of(leader).iter().map(|r| (r.ctx, r.result)).collect();
    assert_eq!(served, vec![(1, Ok(LogIndex(1))), (2, Ok(LogIndex(1))), (3, Ok(LogIndex(1)))]);
    assert_eq!(c.read_result(leader, 4), None, "the refused read is never answered");
    // Once served, there is room again.
    assert_eq!(c.read(leader, 5), Ok(()));

    // A follower counts the reads it forwarded.
    c.cut.insert((NodeId(f), NodeId(leader)));
    for ctx in 60..63 {
        assert_eq!(c.read(f, ctx), Ok(()));
    }
    assert_eq!(c.read(f, 63), Err(ReadError::Backpressure));
}

#[test]
fn single_node_serves_reads_at_once_after_its_first_commit() {
    let mut c = Cluster::new(1);
    assert_eq!(c.read(1, 1), Err(ReadError::NotLeader { leader_hint: None }));
    c.stall(1);
    let now = c.now;
    c.node_mut(1).campaign(now);
    c.drain_all();
    assert_eq!(c.node(1).role(), Role::Candidate, "waits for its vote to be durable");
    c.sync(1);
    assert_eq!(c.node(1).role(), Role::Leader);
    assert_eq!(c.commit_of(1), LogIndex(0), "the blank entry is not durable yet");
    assert_eq!(c.read(1, 2), Ok(()));
    assert_eq!(c.read_result(1, 2), None, "nothing of its term is committed");
    c.unstall(1);
    assert_eq!(c.commit_of(1), LogIndex(1));
    assert_eq!(c.read_result(1, 2), Some(Ok(LogIndex(1))));

    // From now on a read needs no message and no input: it is ready at once.
    let mark = c.sent.len();
    let now = c.now;
    c.node_mut(1).read_index(now, 3).unwrap();
    assert_eq!(c.node_mut(1).poll_read_ready(), Some(ReadReady { ctx: 3, result: Ok(LogIndex(1)) }));
    let index = c.propose(1, b"x").unwrap();
    assert_eq!(c.commit_of(1), index);
    c.read(1, 4).unwrap();
    assert_eq!(c.read_result(1, 4), Some(Ok(index)));
    assert_eq!(c.sent.len(), mark);
}

fn lease_config(cfg: &mut Config) {
    cfg.lease_reads = true;
}

/// Starts a heartbeat round on `leader` now and gets it confirmed: the
/// leader's lease then runs from `c.now`.
fn fresh_lease(c: &mut Cluster, leader: u64) -> Instant {
    c.tick_until_heartbeat(leader);
    c.deliver_all();
    c.now
}

#[test]
fn lease_read_is_served_without_a_round_while_the_lease_holds() {
    let (mut c, leader) = established(3, lease_config);
    let start = fresh_lease(&mut c, leader);
    let lease = c.node(leader).config().election_timeout_min - c.node(leader).config().lease_clock_drift;
    let mark = c.sent.len();
    c.read(leader, 1).unwrap();
    assert_eq!(c.reads_of(leader), &[ReadReady { ctx: 1, result: Ok(LogIndex(1)) }], "served at once");
    // Late in the lease, with entries committed since.
    let index = c.propose(leader, b"x").unwrap();
    c.deliver_all();
    let mark_after_commit = c.sent.len();
    c.now = start + lease - Duration::from_nanos(1);
    c.read(leader, 2).unwrap();
    assert_eq!(c.read_result(leader, 2), Some(Ok(index)));
    assert_eq!(c.sent.len(), mark_after_commit, "no message at all for a lease read");
    assert_eq!(heartbeats_since(&c, mark), 0, "no round was started");

    // Without lease_reads, the same read needs a round.
    let (mut c, leader) = established(3, |_| {});
    fresh_lease(&mut c, leader);
    let mark = c.sent.len();
    c.read(leader, 1).unwrap();
    assert_eq!(c.read_result(leader, 1), None);
    assert_eq!(heartbeats_since(&c, mark), 2);
}

#[test]
fn lease_expires_and_reads_fall_back_to_a_round() {
    let (mut c, leader) = established(3, lease_config);
    let start = fresh_lease(&mut c, leader);
    let lease = c.node(leader).config().election_timeout_min - c.node(leader).config().lease_clock_drift;
    // Two more rounds go out but their answers are held: they do not extend
    // the lease.
    let mut held = Vec::new();
    while c.now < start + Duration::from_millis(100) {
        c.tick();
        held.extend(c.deliver_except(is_heartbeat_response));
    }
    assert_eq!(held.len(), 4, "two rounds to two followers");
    c.now = start + lease - Duration::from_nanos(1);
    c.read(leader, 1).unwrap();
    assert_eq!(c.read_result(leader, 1), Some(Ok(LogIndex(1))), "the lease still holds");

    c.now = start + lease;
    c.read(leader, 2).unwrap();
    assert_eq!(c.read_result(leader, 2), None, "the lease has run out");
    assert_eq!(c.node(leader).role(), Role::Leader);
    let mark = c.sent.len();
    for m in held {
        c.inject(m);
    }
    c.deliver_all();
    assert!(heartbeats_since(&c, mark) >= 2, "the read needed a round of its own");
    assert_eq!(c.read_result(leader, 2), Some(Ok(LogIndex(1))));
}

#[test]
fn lease_reads_require_check_quorum() {
    let mut cfg = Config::new(NodeId(1));
    cfg.lease_reads = true;
    assert_eq!(cfg.validate(), Ok(()));
    cfg.check_quorum = false;
    let err = cfg.validate().unwrap_err();
    assert_eq!(err.field, "lease_reads");
    let started = crate::core::Node::new(cfg.clone(), &[NodeId(1)], Default::default(), Instant::ZERO);
    assert!(matches!(started, Err(StartError::Config(e)) if e.field == "lease_reads"));
    // Without leases, CheckQuorum is optional.
    cfg.lease_reads = false;
    assert_eq!(cfg.validate(), Ok(()));
    // The drift must leave a lease.
    cfg.lease_reads = true;
    cfg.check_quorum = true;
    cfg.lease_clock_drift = cfg.election_timeout_min;
    assert_eq!(cfg.validate().unwrap_err().field, "lease_clock_drift");
}

#[test]
fn leader_gives_up_its_lease_once_it_sent_timeout_now() {
    let (mut c, leader) = established(3, lease_config);
    fresh_lease(&mut c, leader);
    let target = other_than(leader, 3)[0];
    let now = c.now;
    c.node_mut(leader).transfer_leadership(now, NodeId(target)).unwrap();
    c.drain_all();
    // The successor never gets the message, but the leader cannot know.
    let timeout_now = c.deliver_except(is_timeout_now);
    assert_eq!(timeout_now.len(), 1);
    let mark = c.sent.len();
    c.read(leader, 1).unwrap();
    assert_eq!(c.read_result(leader, 1), None, "no lease read once TimeoutNow is out");
    assert_eq!(heartbeats_since(&c, mark), 2);
    c.deliver_all();
    assert_eq!(c.read_result(leader, 1), Some(Ok(LogIndex(1))), "ReadIndex still works");
}
