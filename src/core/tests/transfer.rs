//! Leadership transfer (thesis §3.10): the leader stops taking proposals,
//! brings its successor up to date, and sends it `TimeoutNow`; the transfer
//! is abandoned after an election timeout.

use std::time::Duration;

use super::harness::{established, is_append, is_timeout_now, is_vote_grant, is_vote_request, Cluster};
use crate::core::{Event, ProposeError, Role, TransferError};
use crate::membership::MembershipChange;
use crate::message::{AppendEntries, AppendEntriesResponse, Message, MessageBody};
use crate::types::{LogIndex, NodeId, Term};

fn other_than(leader: u64, n: u64) -> Vec<u64> {
    (1..=n).filter(|&id| id != leader).collect()
}

fn transfer(c: &mut Cluster, leader: u64, to: u64) -> Result<(), TransferError> {
    let now = c.now;
    let result = c.node_mut(leader).transfer_leadership(now, NodeId(to));
    c.drain(NodeId(leader));
    result
}

/// The events that tell how a transfer went, as seen by the old leader.
fn transfer_events(c: &Cluster, id: u64) -> Vec<Event> {
    c.events_of(id)
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::TransferStarted { .. }
                    | Event::TransferAbandoned { .. }
                    | Event::LeaderChanged { leader: Some(_), .. }
            )
        })
        .cloned()
        .collect()
}

fn accepted_up_to(m: &Message, index: LogIndex) -> bool {
    matches!(m.body, MessageBody::AppendEntriesResponse(AppendEntriesResponse::Accepted { match_index })
        if match_index >= index)
}

#[test]
fn transfer_to_an_up_to_date_follower_makes_it_leader() {
    let (mut c, leader) = established(3, |_| {});
    let term = c.node(leader).term();
    let target = other_than(leader, 3)[1];
    c.clear_events();
    let mark = c.sent.len();
    transfer(&mut c, leader, target).unwrap();
    let timeout_now = c.sent_since(mark, is_timeout_now);
    assert_eq!(timeout_now.len(), 1, "the target is up to date: TimeoutNow goes at once");
    assert_eq!((timeout_now[0].from, timeout_now[0].to), (NodeId(leader), NodeId(target)));
    c.deliver_all();

    assert_eq!(c.assert_single_leader(), NodeId(target));
    assert_eq!(c.node(target).term(), term.next());
    assert_eq!(c.node(leader).role(), Role::Follower);
    assert_eq!(
        transfer_events(&c, leader),
        vec![
            Event::TransferStarted { to: NodeId(target) },
            Event::LeaderChanged { leader: Some(NodeId(target)), term: term.next() },
        ]
    );
    let pre_votes = c.sent_since(mark, |m| matches!(m.body, MessageBody::RequestVote(r) if r.pre_vote));
    assert!(pre_votes.is_empty(), "the target campaigns without a pre-vote round");
    let requests =
        c.sent_since(mark, |m| matches!(m.body, MessageBody::RequestVote(r) if r.leadership_transfer));
    assert_eq!(requests.len(), 2);

    // The transfer is over: no abandonment later, and the new leader commits.
    c.run_for(Duration::from_secs(1));
    assert_eq!(transfer_events(&c, leader).len(), 2);
    assert_eq!(c.assert_single_leader(), NodeId(target));
    assert_eq!(c.propose(leader, b"x"), Err(ProposeError::NotLeader { leader_hint: Some(NodeId(target)) }));
    let index = c.propose(target, b"x").unwrap();
    c.deliver_all();
    assert_eq!(index, LogIndex(3), "after the old blank and the new leader's blank");
    for id in 1..=3 {
        assert_eq!(c.commit_of(id), index);
    }
}

#[test]
fn transfer_to_a_lagging_follower_catches_it_up_first() {
    let (mut c, leader) = established(3, |_| {});
    let term = c.node(leader).term();
    let target = other_than(leader, 3)[0];
    // The target misses twenty entries.
    c.cut_both(leader, target);
    for k in 0..20 {
        c.propose(leader, format!("cmd {k}").as_bytes()).unwrap();
    }
    c.deliver_all();
    let last = c.node(leader).last_index();
    assert_eq!(last, LogIndex(21));
    assert_eq!(c.commit_of(leader), last);
    assert_eq!(c.node(target).last_index(), LogIndex(1));
    c.heal();

    let mark = c.sent.len();
    transfer(&mut c, leader, target).unwrap();
    c.deliver_all();
    assert!(c.sent_since(mark, is_timeout_now).is_empty(), "not before the target caught up");
    assert_eq!(c.node(leader).role(), Role::Leader);
    assert_eq!(c.propose(leader, b"y"), Err(ProposeError::TransferInProgress { to: NodeId(target) }));

    c.run_for(Duration::from_millis(250));
    assert_eq!(c.assert_single_leader(), NodeId(target));
    assert_eq!(c.node(target).term(), term.next());
    let sent = &c.sent[mark..];
    let timeout_now: Vec<usize> = (0..sent.len()).filter(|&k| is_timeout_now(&sent[k])).collect();
    assert_eq!(timeout_now.len(), 1, "{:?}", timeout_now);
    let caught_up = sent
        .iter()
        .position(|m| m.from == NodeId(target) && accepted_up_to(m, last))
        .expect("the target acknowledged the leader's last entry");
    assert!(caught_up < timeout_now[0], "TimeoutNow only after the target's match index reached {last:?}");
    // Every entry reached the target before TimeoutNow was sent.
    let carried_last =
        sent[..timeout_now[0]].iter().any(|m| m.to == NodeId(target) && is_append(m) && has_entry(m, last));
    assert!(carried_last);
    assert_eq!(c.node(target).entry(last).map(|e| e.term), Some(term));
}

fn has_entry(m: &Message, index: LogIndex) -> bool {
    matches!(&m.body, MessageBody::AppendEntries(a) if a.entries.iter().any(|e| e.index == index))
}

#[test]
fn transfer_that_times_out_is_abandoned_and_proposals_resume() {
    let (mut c, leader) = established(3, |_| {});
    let term = c.node(leader).term();
    let target = other_than(leader, 3)[0];
    c.clear_events();
    c.isolate(target);
    let max = c.node(leader).config().election_timeout_max;
    transfer(&mut c, leader, target).unwrap();
    assert_eq!(c.propose(leader, b"x"), Err(ProposeError::TransferInProgress { to: NodeId(target) }));

    c.run_for(max - Duration::from_millis(1));
    assert_eq!(transfer_events(&c, leader), vec![Event::TransferStarted { to: NodeId(target) }]);
    assert_eq!(c.propose(leader, b"x"), Err(ProposeError::TransferInProgress { to: NodeId(target) }));
    c.run_for(Duration::from_millis(1));
    assert_eq!(
        transfer_events(&c, leader),
        vec![Event::TransferStarted { to: NodeId(target) }, Event::TransferAbandoned { to: NodeId(target) }]
    );
    assert_eq!(c.node(leader).role(), Role::Leader);
    assert_eq!(c.node(leader).term(), term);

    let index = c.propose(leader, b"after").unwrap();
    assert_eq!(index, LogIndex(2));
    c.deliver_all();
    assert_eq!(c.commit_of(leader), index);
    // A new transfer may start.
    c.heal();
    c.run_for(Duration::from_millis(100));
    transfer(&mut c, leader, target).unwrap();
    c.run_for(Duration::from_millis(100));
    assert_eq!(c.assert_single_leader(), NodeId(target));
}

#[test]
fn proposals_are_rejected_during_transfer() {
    let (mut c, leader) = established(3, |cfg| cfg.forward_proposals = true);
    let target = other_than(leader, 3)[0];
    let other = other_than(leader, 3)[1];
    c.cut_both(leader, target);
    transfer(&mut c, leader, target).unwrap();
    for _ in 0..3 {
        assert_eq!(c.propose(leader, b"x"), Err(ProposeError::TransferInProgress { to: NodeId(target) }));
    }
    assert_eq!(c.node(leader).last_index(), LogIndex(1));
    // Commands forwarded by a follower meanwhile are dropped, not appended.
    let now = c.now;
    c.node_mut(other).propose(now, "fwd".into()).unwrap();
    c.deliver_all();
    assert_eq!(c.sent.iter().filter(|m| matches!(m.body, MessageBody::Propose(_))).count(), 1);
    assert_eq!(c.node(leader).last_index(), LogIndex(1));
    assert!(c.node(leader).entry(LogIndex(2)).is_none());
}

#[test]
fn transfer_errors() {
    let mut c = Cluster::new(3);
    assert_eq!(transfer(&mut c, 1, 2), Err(TransferError::NotLeader { leader_hint: None }));
    let leader = c.elect(Duration::from_secs(2)).0;
    c.deliver_all();
    let [a, b] = other_than(leader, 3)[..] else { unreachable!() };
    c.clear_events();
    assert_eq!(transfer(&mut c, leader, leader), Err(TransferError::ToSelf));
    assert_eq!(transfer(&mut c, leader, 9), Err(TransferError::NotAVoter(NodeId(9))));
    assert_eq!(transfer(&mut c, leader, 0), Err(TransferError::NotAVoter(NodeId(0))));
    assert_eq!(transfer(&mut c, a, b), Err(TransferError::NotLeader { leader_hint: Some(NodeId(leader)) }));
    assert!(transfer_events(&c, leader).is_empty(), "refused transfers start nothing");

    c.cut_both(leader, a);
    assert_eq!(transfer(&mut c, leader, a), Ok(()));
    assert_eq!(transfer(&mut c, leader, b), Err(TransferError::InProgress { to: NodeId(a) }));
    assert_eq!(transfer(&mut c, leader, a), Err(TransferError::InProgress { to: NodeId(a) }));
    assert_eq!(transfer(&mut c, leader, leader), Err(TransferError::ToSelf));
    assert_eq!(transfer_events(&c, leader), vec![Event::TransferStarted { to: NodeId(a) }]);
}

#[test]
fn timeout_now_target_ignores_the_leader_lease_of_other_voters() {
    // Without pre-vote, so that the campaign and the transfer both send
    // RequestVote in the next term and differ only in the transfer flag.
    let tweak = |cfg: &mut crate::Config| cfg.pre_vote = false;

    // A plain campaign right after a heartbeat: the other follower is in its
    // leader lease and ignores it.
    let (mut c, leader) = established(3, tweak);
    let [target, other] = other_than(leader, 3)[..] else { unreachable!() };
    let term = c.node(leader).term();
    c.tick_until_heartbeat(leader);
    c.deliver_all();
    c.cut_both(leader, target);
    let mark = c.sent.len();
    let now = c.now;
    c.node_mut(target).campaign(now);
    c.deliver_all();
    assert_eq!(c.node(target).role(), Role::Candidate);
    assert_eq!(c.node(target).term(), term.next());
    assert!(c.sent_since(mark, is_vote_grant).is_empty());
    assert_eq!(c.node(other).term(), term, "the vote request was ignored");
    assert_eq!(c.node(other).leader(), Some(NodeId(leader)));

    // The same cluster at the same moment, but the leader hands over: the
    // other follower votes although it just heard from the leader.
    let (mut c, leader) = established(3, tweak);
    assert_eq!(other_than(leader, 3), vec![target, other]);
    c.tick_until_heartbeat(leader);
    c.deliver_all();
    let heard_at = c.now;
    transfer(&mut c, leader, target).unwrap();
    // TimeoutNow is in the network; then the old leader is cut off, so its
    // own vote cannot help.
    c.cut_both(leader, target);
    let mark = c.sent.len();
    c.deliver_all();
    assert_eq!(c.now, heard_at);
    let grants = c.sent_since(mark, is_vote_grant);
    assert_eq!(grants.len(), 1);
    assert_eq!((grants[0].from, grants[0].to), (NodeId(other), NodeId(target)));
    assert_eq!(c.node(target).role(), Role::Leader);
    assert_eq!(c.node(target).term(), Term(term.0 + 1));
    assert_eq!(c.node(other).leader(), Some(NodeId(target)));
}

#[test]
fn timeout_now_from_a_node_that_is_not_the_leader_is_ignored() {
    let (mut c, leader) = established(3, |_| {});
    let [a, b] = other_than(leader, 3)[..] else { unreachable!() };
    let term = c.node(a).term();
    let mark = c.sent.len();
    c.inject(Message {
        from: NodeId(b),
        to: NodeId(a),
        term,
        from_incarnation: super::harness::incarnation_of(NodeId(b)),
        body: MessageBody::TimeoutNow,
    });
    assert_eq!((c.node(a).role(), c.node(a).term()), (Role::Follower, term));
    assert!(c.sent_since(mark, |m| m.from == NodeId(a)).is_empty());
    // From the leader it starts an election at once.
    c.inject(Message {
        from: NodeId(leader),
        to: NodeId(a),
        term,
        from_incarnation: super::harness::incarnation_of(NodeId(leader)),
        body: MessageBody::TimeoutNow,
    });
    assert_eq!((c.node(a).role(), c.node(a).term()), (Role::Candidate, term.next()));
}

/// `TimeoutNow` to `to` from the leader `from` of `term`.
fn timeout_now(from: u64, to: u64, term: Term) -> Message {
    super::harness::msg(from, to, term.0, MessageBody::TimeoutNow)
}

/// Hands node `id` a `TimeoutNow` from `leader` and runs the cluster for a
/// while: `id` must ignore it, as it ignores its election timeout and
/// `campaign()`, since it may not stand for election. The leader leads on
/// in its term.
fn assert_timeout_now_ignored(c: &mut Cluster, leader: u64, id: u64) {
    let term = c.node(leader).term();
    assert_eq!((c.node(id).term(), c.node(id).leader()), (term, Some(NodeId(leader))));
    let mark = c.sent.len();
    c.clear_events();
    c.inject(timeout_now(leader, id, term));
    assert_eq!((c.node(id).role(), c.node(id).term()), (Role::Follower, term), "node {id} campaigned");
    c.run_for(Duration::from_secs(2));
    let requests = c.sent_since(mark, |m| m.from == NodeId(id) && is_vote_request(m));
    assert!(requests.is_empty(), "node {id} asked for votes: {requests:?}");
    assert!(c.events_of(id).iter().all(|e| !matches!(e, Event::RoleChanged { .. })), "node {id}");
    assert_eq!(c.node(leader).role(), Role::Leader);
    assert_eq!(c.node(leader).term(), term, "the leader was deposed");
}

#[test]
fn timeout_now_to_a_learner_or_a_removed_node_is_ignored() {
    // Voters {1, 2} and learner 3.
    let (mut c, leader) = established(2, |_| {});
    c.add_node(3);
    let learner = MembershipChange::AddLearner { id: NodeId(3), address: "n3".into() };
    c.change_membership(leader, learner).unwrap();
    c.deliver_all();
    assert!(c.node(3).membership().learners.contains(&NodeId(3)));
    assert_timeout_now_ignored(&mut c, leader, 3);
    let index = c.propose(leader, b"x").unwrap();
    c.deliver_all();
    assert_eq!((c.commit_of(3), c.node(3).role()), (index, Role::Follower));

    // Voters {1, 2, 3}; one follower is removed and, unlike what usually
    // happens (the leader stops replicating to it once C_new is in its log),
    // learns of C_new: it knows it may no longer campaign.
    let (mut c, leader) = established(3, |_| {});
    let [removed, _] = other_than(leader, 3)[..] else { unreachable!() };
    let joint = c.change_membership(leader, MembershipChange::Remove { id: NodeId(removed) }).unwrap();
    c.deliver_all();
    let c_new = c.node(leader).entry(joint.next()).expect("C_new follows the joint entry").clone();
    let term = c.node(leader).term();
    let append = AppendEntries {
        prev_log_index: joint,
        prev_log_term: term,
        entries: vec![c_new],
        leader_commit: joint.next(),
    };
    c.inject(super::harness::msg(leader, removed, term.0, MessageBody::AppendEntries(append)));
    assert!(!c.node(removed).membership().contains(NodeId(removed)));
    assert_timeout_now_ignored(&mut c, leader, removed);
}
