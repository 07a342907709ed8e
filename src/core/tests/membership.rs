//! Membership changes (thesis §4.3, with learners): a configuration is in
//! force as soon as its entry is in a log; voter changes go through a joint
//! configuration whose decisions need a majority of both halves; only one
//! change at a time; nodes that do not vote never campaign.

use std::collections::BTreeSet;
use std::time::Duration;

use super::harness::{
    entries_in, established, is_accepted_up_to, is_append_response, is_vote_request, msg, Cluster,
};
use crate::config::InjectedBugs;
use crate::core::{Event, MembershipChangeError, PeerStatus, RecoveredState, Role};
use crate::membership::{Membership, MembershipChange, MembershipError};
use crate::message::{Message, MessageBody, RequestVoteResponse};
use crate::types::{Bytes, Entry, EntryKind, HardState, LogIndex, NodeId, Term};

fn set(list: &[u64]) -> BTreeSet<NodeId> {
    list.iter().map(|&i| NodeId(i)).collect()
}

fn others(leader: u64, n: u64) -> Vec<u64> {
    (1..=n).filter(|&id| id != leader).collect()
}

fn add_learner(id: u64) -> MembershipChange {
    MembershipChange::AddLearner { id: NodeId(id), address: format!("n{id}") }
}

fn peer(c: &Cluster, leader: u64, id: u64) -> PeerStatus {
    c.node(leader).status().peers.into_iter().find(|p| p.id == NodeId(id)).expect("a peer of the leader")
}

/// The configuration the membership entry at `index` of `id`'s log holds.
fn membership_entry_at(c: &Cluster, id: u64, index: LogIndex) -> Membership {
    let e = c.node(id).entry(index).expect("an entry of the log");
    assert_eq!(e.kind, EntryKind::Membership, "entry {index:?} of {id}");
    Membership::decode(&e.data).expect("a membership entry decodes")
}

/// Answers `m` to a leader: an acknowledgement of its appends.
fn ack_to(leader: u64) -> impl Fn(&Message) -> bool {
    move |m| m.to == NodeId(leader) && is_append_response(m)
}

/// Three voters whose leader has led for a while, and node 4, started with
/// an empty membership, added by the leader as a learner (at index 2) and
/// caught up. Returns the cluster and the leader.
fn with_learner(tweak: impl Fn(&mut crate::Config)) -> (Cluster, u64) {
    let (mut c, leader) = established(3, tweak);
    c.add_node(4);
    assert_eq!(c.change_membership(leader, add_learner(4)), Ok(LogIndex(2)));
    c.deliver_all();
    for id in 1..=4 {
        let m = c.node(id).membership();
        assert_eq!((&m.voters, &m.learners), (&set(&[1, 2, 3]), &set(&[4])), "node {id}");
        assert_eq!(c.commit_of(id), LogIndex(2), "node {id}");
    }
    assert_eq!(c.applied_indexes(4), vec![1, 2]);
    (c, leader)
}

#[test]
fn a_learner_receives_the_log_but_its_acknowledgements_do_not_commit() {
    let (mut c, leader) = with_learner(|_| {});
    let [a, b] = others(leader, 3)[..] else { unreachable!() };
    // Only the learner hears the leader. The leader and the learner are two
    // nodes, as many as a majority of the three voters: counting the
    // learner's acknowledgement would commit.
    c.cut_both(leader, a);
    c.cut_both(leader, b);
    let index = c.propose(leader, b"x").unwrap();
    c.deliver_all();
    assert_eq!(c.node(4).last_index(), index);
    assert_eq!(peer(&c, leader, 4).match_index, index, "the learner acknowledged it");
    assert_eq!(c.commit_of(leader), LogIndex(2));
    assert!(c.applied_indexes(leader).iter().all(|&i| i < index.0));

    c.heal();
    c.run_for(Duration::from_millis(100));
    for id in 1..=4 {
        assert_eq!(c.commit_of(id), index, "node {id}");
    }
}

#[test]
fn a_candidate_neither_asks_a_learner_for_its_vote_nor_counts_it() {
    let (mut c, leader) = with_learner(|cfg| cfg.pre_vote = false);
    let [a, b] = others(leader, 3)[..] else { unreachable!() };
    c.isolate(a);
    let mark = c.sent.len();
    let now = c.now;
    c.node_mut(a).campaign(now);
    c.drain_all();
    let term = c.node(a).term();
    assert_eq!(c.node(a).role(), Role::Candidate);
    let asked: BTreeSet<NodeId> = c.sent_since(mark, is_vote_request).iter().map(|m| m.to).collect();
    assert_eq!(asked, set(&[leader, b]));

    // A grant from the learner, had it been asked, would make two of four.
    let grant = |from| {
        msg(
            from,
            a,
            term.0,
            MessageBody::RequestVoteResponse(RequestVoteResponse { pre_vote: false, granted: true }),
        )
    };
    c.inject(grant(4));
    assert_eq!(c.node(a).role(), Role::Candidate);
    c.inject(grant(b));
    assert_eq!(c.node(a).role(), Role::Leader);
}

#[test]
fn promoting_a_learner_goes_through_a_joint_configuration_the_leader_then_leaves_by_itself() {
    let (mut c, leader) = with_learner(|_| {});
    let joint = c.change_membership(leader, MembershipChange::Promote { id: NodeId(4) }).unwrap();
    assert_eq!(joint, LogIndex(3));
    // In force on the leader at once, uncommitted.
    let m = c.node(leader).membership().clone();
    assert_eq!((&m.voters, &m.outgoing), (&set(&[1, 2, 3, 4]), &set(&[1, 2, 3])));
    assert!(m.learners.is_empty() && !c.node(leader).membership_committed());

    // Every node holds the joint entry, in force, but the leader hears no
    // acknowledgement: it must not move on to C_new yet.
    let held = c.deliver_except(ack_to(leader));
    assert!(!held.is_empty());
    for id in 1..=4 {
        assert_eq!(c.node(id).membership(), &m, "node {id}");
    }
    assert_eq!(c.node(leader).last_index(), joint, "no C_new before C_old,new commits");

    c.network.extend(held);
    c.deliver_all();
    let final_index = joint.next();
    assert_eq!(c.node(leader).last_index(), final_index);
    let c_new = membership_entry_at(&c, leader, final_index);
    assert_eq!(c_new, m.leave_joint());
    assert!(!c_new.is_joint() && c_new.voters == set(&[1, 2, 3, 4]));
    assert_eq!(c.node(leader).entry(final_index).unwrap().term, c.node(leader).term());
    for id in 1..=4 {
        assert_eq!(c.node(id).membership(), &c_new, "node {id}");
        assert_eq!(c.commit_of(id), final_index, "node {id}");
        assert!(c.node(id).membership_committed(), "node {id}");
    }
    // Node 4 now counts: with one of the old voters cut off, the other two
    // old voters and node 4 still commit (three of four).
    c.isolate(others(leader, 3)[0]);
    let index = c.propose(leader, b"x").unwrap();
    c.deliver_all();
    assert_eq!(c.commit_of(leader), index);
}

/// The leader of three voters {L, a, b} with learner 4 replaces b by 4, and
/// the joint entry reaches only the peers in `reach` (given a, b and 4).
/// Returns the cluster, the leader and the joint entry's index.
fn replace_reaching(
    bugs: InjectedBugs,
    reach: impl Fn(u64, u64, u64) -> Vec<u64>,
) -> (Cluster, u64, LogIndex) {
    let (mut c, leader) = with_learner(|cfg| cfg.bugs = bugs);
    let [a, b] = others(leader, 3)[..] else { unreachable!() };
    let reached = reach(a, b, 4);
    for id in [a, b, 4] {
        if !reached.contains(&id) {
            c.cut_both(leader, id);
        }
    }
    let change = MembershipChange::Replace { promote: NodeId(4), remove: NodeId(b) };
    let joint = c.change_membership(leader, change).unwrap();
    let m = c.node(leader).membership();
    assert_eq!((&m.voters, &m.outgoing), (&set(&[leader, a, 4]), &set(&[leader, a, b])));
    c.deliver_all();
    for id in reached {
        assert!(peer(&c, leader, id).match_index >= joint, "{id} acknowledged the joint entry");
    }
    (c, leader, joint)
}

#[test]
fn a_joint_configuration_commits_only_with_a_majority_of_each_half() {
    // C_old = {L, a, b}, C_new = {L, a, 4}.
    // The leader and b are a majority of C_old only.
    let (c, leader, joint) = replace_reaching(InjectedBugs::default(), |_, b, _| vec![b]);
    assert!(c.commit_of(leader) < joint);
    assert_eq!(c.node(leader).last_index(), joint);
    // The leader and 4 are a majority of C_new only.
    let (c, leader, joint) = replace_reaching(InjectedBugs::default(), |_, _, four| vec![four]);
    assert!(c.commit_of(leader) < joint);
    // The leader and a are a majority of both.
    let (c, leader, joint) = replace_reaching(InjectedBugs::default(), |a, _, _| vec![a]);
    assert!(c.commit_of(leader) >= joint);
    assert_eq!(c.node(leader).last_index(), joint.next(), "C_new appended");
}

#[test]
fn the_joint_scenario_catches_a_leader_that_counts_only_c_new() {
    let bugs = InjectedBugs { joint_counts_only_incoming: true, ..InjectedBugs::default() };
    let (c, leader, joint) = replace_reaching(bugs, |_, _, four| vec![four]);
    assert!(c.commit_of(leader) >= joint, "committed by the leader and 4 alone");
    // Both other voters of C_old lack it: they could elect a leader without it.
    for id in others(leader, 3) {
        assert!(c.node(id).last_index() < joint, "node {id}");
    }
}

#[test]
fn a_candidate_in_a_joint_configuration_needs_a_majority_of_each_half() {
    let (mut c, leader) = with_learner(|cfg| cfg.pre_vote = false);
    let [a, b] = others(leader, 3)[..] else { unreachable!() };
    let change = MembershipChange::Replace { promote: NodeId(4), remove: NodeId(b) };
    c.change_membership(leader, change).unwrap();
    let held = c.deliver_except(ack_to(leader));
    assert!(!held.is_empty());
    assert!(c.node(a).membership().is_joint());

    c.isolate(a);
    let now = c.now;
    c.node_mut(a).campaign(now);
    c.drain_all();
    let term = c.node(a).term();
    assert_eq!(c.node(a).role(), Role::Candidate);
    let grant = |from| {
        msg(
            from,
            a,
            term.0,
            MessageBody::RequestVoteResponse(RequestVoteResponse { pre_vote: false, granted: true }),
        )
    };
    // a and 4 are a majority of C_new = {L, a, 4} but not of C_old = {L, a, b}.
    c.inject(grant(4));
    assert_eq!(c.node(a).role(), Role::Candidate);
    c.inject(grant(b));
    assert_eq!(c.node(a).role(), Role::Leader);
}

#[test]
fn only_one_membership_change_is_under_way_at_a_time() {
    let (mut c, leader) = with_learner(|_| {});
    let learner = c.change_membership(leader, add_learner(5)).unwrap();
    let held = c.deliver_except(ack_to(leader));
    assert!(!c.node(leader).membership_committed());
    assert_eq!(c.change_membership(leader, add_learner(6)), Err(MembershipChangeError::InProgress));
    assert_eq!(c.node(leader).last_index(), learner);
    c.network.extend(held);
    c.deliver_all();
    assert!(c.node(leader).membership_committed());

    // A voter change is under way until C_new commits, not only C_old,new.
    let joint = c.change_membership(leader, MembershipChange::Promote { id: NodeId(4) }).unwrap();
    let held = c.deliver_except(ack_to(leader));
    assert_eq!(c.change_membership(leader, add_learner(6)), Err(MembershipChangeError::InProgress));
    c.network.extend(held);
    let held = c.deliver_except(|m| ack_to(leader)(m) && is_accepted_up_to(m, joint.next()));
    assert_eq!(c.commit_of(leader), joint);
    assert_eq!(c.node(leader).last_index(), joint.next());
    assert!(!c.node(leader).membership().is_joint());
    assert_eq!(c.change_membership(leader, add_learner(6)), Err(MembershipChangeError::InProgress));
    assert_eq!(c.node(leader).last_index(), joint.next());
    c.network.extend(held);
    c.deliver_all();
    assert_eq!(c.change_membership(leader, add_learner(6)), Ok(joint.next().next()));
}

#[test]
fn a_new_leader_changes_the_membership_only_once_it_committed_an_entry_of_its_term() {
    let mut c = Cluster::new(3);
    let now = c.now;
    c.node_mut(1).campaign(now);
    let held = c.deliver_except(is_append_response);
    assert_eq!(c.node(1).role(), Role::Leader);
    assert_eq!(c.commit_of(1), LogIndex(0));
    assert_eq!(c.change_membership(1, add_learner(4)), Err(MembershipChangeError::NotReady));
    assert_eq!(c.node(1).last_index(), LogIndex(1), "only the blank entry");
    c.network.extend(held);
    c.deliver_all();
    assert_eq!(c.change_membership(1, add_learner(4)), Ok(LogIndex(2)));
}

#[test]
fn membership_changes_are_refused_by_followers_and_when_they_make_no_sense() {
    let mut c = Cluster::new(3);
    assert_eq!(
        c.change_membership(1, add_learner(4)),
        Err(MembershipChangeError::NotLeader { leader_hint: None })
    );
    let leader = c.elect(Duration::from_secs(2)).0;
    c.deliver_all();
    let [a, b] = others(leader, 3)[..] else { unreachable!() };
    assert_eq!(
        c.change_membership(a, add_learner(4)),
        Err(MembershipChangeError::NotLeader { leader_hint: Some(NodeId(leader)) })
    );
    let refused = [
        (MembershipChange::Promote { id: NodeId(a) }, MembershipError::NotLearner(NodeId(a))),
        (MembershipChange::Promote { id: NodeId(9) }, MembershipError::NotMember(NodeId(9))),
        (MembershipChange::Remove { id: NodeId(9) }, MembershipError::NotMember(NodeId(9))),
        (add_learner(b), MembershipError::AlreadyMember(NodeId(b))),
        (add_learner(0), MembershipError::ReservedId),
        (
            MembershipChange::AddLearner { id: NodeId(4), address: String::new() },
            MembershipError::BadAddress(String::new()),
        ),
        (
            MembershipChange::Replace { promote: NodeId(a), remove: NodeId(b) },
            MembershipError::NotLearner(NodeId(a)),
        ),
    ];
    for (change, error) in refused {
        assert_eq!(c.change_membership(leader, change), Err(MembershipChangeError::Invalid(error)));
    }
    assert_eq!(c.node(leader).last_index(), LogIndex(1), "nothing appended");
    assert_eq!(c.node(leader).membership(), &super::harness::voters_of(3));

    // Nor while leadership is being handed over.
    c.cut_both(leader, a);
    let now = c.now;
    assert_eq!(c.node_mut(leader).transfer_leadership(now, NodeId(a)), Ok(()));
    assert_eq!(
        c.change_membership(leader, add_learner(4)),
        Err(MembershipChangeError::TransferInProgress { to: NodeId(a) })
    );
    assert_eq!(c.node(leader).last_index(), LogIndex(1));
}

#[test]
fn a_leader_that_removes_itself_leads_until_c_new_commits_then_steps_down_for_good() {
    let (mut c, leader) = established(3, |_| {});
    let [a, b] = others(leader, 3)[..] else { unreachable!() };
    let term = c.node(leader).term();
    let joint = c.change_membership(leader, MembershipChange::Remove { id: NodeId(leader) }).unwrap();
    // C_old,new commits; C_new is appended but its acknowledgements held.
    let held = c.deliver_except(|m| ack_to(leader)(m) && is_accepted_up_to(m, joint.next()));
    assert_eq!(c.commit_of(leader), joint);
    assert_eq!(c.node(leader).membership().voters, set(&[a, b]));
    assert!(!c.node(leader).membership().contains(NodeId(leader)));
    assert_eq!(c.node(leader).role(), Role::Leader, "it still leads C_new to commitment");
    // It replicates C_new and even takes proposals meanwhile.
    let index = c.propose(leader, b"x").unwrap();
    c.network.extend(held);
    c.clear_events();
    c.deliver_all();
    assert!(c.commit_of(leader) >= joint.next());
    assert_eq!(c.node(leader).role(), Role::Follower, "stepped down once C_new committed");
    assert_eq!(c.node(leader).term(), term, "without a new term");
    assert!(c.events_of(leader).contains(&Event::RoleChanged { role: Role::Follower, term }));

    // The others elect a leader among themselves; the removed node never
    // campaigns, however many election timeouts pass.
    let mark = c.sent.len();
    c.clear_events();
    c.run_for(Duration::from_secs(5));
    let new_leader = c.leader().expect("a and b elected a leader");
    assert!(new_leader == NodeId(a) || new_leader == NodeId(b));
    assert!(c.node(new_leader.0).term() > term);
    assert!(c.sent_since(mark, |m| m.from == NodeId(leader)).is_empty(), "the removed node spoke");
    assert!(c.events_of(leader).iter().all(|e| !matches!(e, Event::RoleChanged { .. })));
    assert_eq!(c.node(leader).term(), term);
    let peers: Vec<NodeId> = c.node(new_leader.0).status().peers.iter().map(|p| p.id).collect();
    assert_eq!(peers.len(), 1, "the new leader replicates to the other voter only: {peers:?}");
    assert!(c.commit_of(a) >= index && c.commit_of(b) >= index);
}

#[test]
fn learners_and_nodes_waiting_to_be_added_never_start_an_election() {
    let (mut c, _) = with_learner(|_| {});
    c.add_node(5);
    assert_eq!(c.node(5).membership(), &Membership::default());
    let terms = [c.node(4).term(), c.node(5).term()];
    c.isolate(4);
    c.isolate(5);
    let mark = c.sent.len();
    c.clear_events();
    c.run_for(Duration::from_secs(5));
    for (k, id) in [4, 5].into_iter().enumerate() {
        assert!(c.sent_since(mark, |m| m.from == NodeId(id)).is_empty(), "node {id} spoke");
        assert_eq!(c.node(id).role(), Role::Follower);
        assert_eq!(c.node(id).term(), terms[k]);
        let campaigns = c.events_of(id).iter().filter(|e| matches!(e, Event::RoleChanged { .. })).count();
        assert_eq!(campaigns, 0, "node {id}");
        // Asking it to campaign does nothing either.
        let now = c.now;
        c.node_mut(id).campaign(now);
        c.drain(NodeId(id));
        assert_eq!(c.node(id).role(), Role::Follower);
    }
    assert!(c.sent_since(mark, |m| m.from == NodeId(4) || m.from == NodeId(5)).is_empty());
}

#[test]
fn a_node_waiting_with_an_empty_membership_becomes_a_learner_once_the_entry_adding_it_reaches_its_log() {
    let (mut c, leader) = established(3, |_| {});
    c.add_node(4);
    let index = c.change_membership(leader, add_learner(4)).unwrap();
    // The entry commits on the voters; what would carry it to node 4 is held.
    let carries = move |m: &Message| m.to == NodeId(4) && entries_in(m).iter().any(|e| e.index == index);
    let held = c.deliver_except(carries);
    assert_eq!(held.len(), 1);
    assert_eq!(c.commit_of(leader), index);
    assert_eq!(c.node(4).membership(), &Membership::default(), "not before the entry reaches it");
    assert_eq!(c.node(4).last_index(), LogIndex(0));
    // It accepted the leader all the same: it rejected the probe in its term.
    assert_eq!(c.node(4).leader(), Some(NodeId(leader)));
    assert_eq!(c.node(4).term(), c.node(leader).term());

    c.stall(4);
    c.network.extend(held);
    c.deliver_all();
    // In force once in the log, before it is durable or known committed.
    let m = c.node(4).membership();
    assert_eq!((&m.voters, &m.learners), (&set(&[1, 2, 3]), &set(&[4])));
    assert_eq!(c.node(4).persisted_index(), LogIndex(0));
    c.unstall(4);
    c.run_for(Duration::from_millis(100));
    assert_eq!(c.commit_of(4), index);
    assert_eq!(c.applied_indexes(4), vec![1, 2]);
    assert_eq!(peer(&c, leader, 4).match_index, index);
}

fn membership_entry(index: u64, term: u64, m: &Membership) -> Entry {
    Entry {
        term: Term(term),
        index: LogIndex(index),
        kind: EntryKind::Membership,
        data: Bytes::from(m.to_bytes()),
    }
}

#[test]
fn a_follower_falls_back_to_the_previous_configuration_when_its_uncommitted_change_is_truncated() {
    // Node 1 led term 2: it committed its blank entry at index 2 with node 2
    // and appended a change adding learner 4 at index 3, which reached no
    // one before it stopped.
    let bootstrap = super::harness::voters_of(3);
    let with_learner = bootstrap.apply(&add_learner(4)).unwrap();
    let blank = Entry { term: Term(2), index: LogIndex(2), kind: EntryKind::Blank, data: Bytes::new() };
    let state = |entries: Vec<Entry>| RecoveredState {
        hard_state: HardState { term: Term(2), vote: None, commit: LogIndex(2) },
        snapshot: None,
        entries,
        applied: LogIndex(0),
        ..RecoveredState::default()
    };
    let first = super::harness::entry(1, 1);
    let states = vec![
        state(vec![first.clone(), blank.clone(), membership_entry(3, 2, &with_learner)]),
        state(vec![first.clone(), blank.clone()]),
        state(vec![first, blank]),
    ];
    let mut c = Cluster::from_states(states, |_| {});
    assert_eq!(c.node(1).membership(), &with_learner);
    assert!(!c.node(1).membership_committed());

    // Node 2 wins term 3 with node 3's vote and overwrites index 3.
    let now = c.now;
    c.node_mut(2).campaign(now);
    c.deliver_all();
    assert_eq!((c.node(2).role(), c.node(2).term()), (Role::Leader, Term(3)));
    assert_eq!(c.node(1).entry(LogIndex(3)).map(|e| (e.term, e.kind)), Some((Term(3), EntryKind::Blank)));
    assert_eq!(c.node(1).membership(), &bootstrap);
    assert!(c.node(1).membership_committed());
    assert!(c.node(1).status().membership.learners.is_empty());
    for id in 1..=3 {
        assert_eq!(c.commit_of(id), LogIndex(3), "node {id}");
    }
}

/// A removed follower may never hear of C_new (the leader stops replicating
/// to it as soon as C_new is in its own log), so it keeps the joint
/// configuration, still counts itself a voter, and campaigns. Pre-vote or
/// CheckQuorum's lease on votes keeps it from disrupting the cluster (thesis
/// §4.2.3); with neither, its higher terms would depose the leader again and
/// again.
#[test]
fn a_removed_follower_that_never_hears_of_c_new_cannot_disrupt_the_cluster() {
    for (pre_vote, check_quorum) in [(true, true), (true, false), (false, true)] {
        let (mut c, leader) = established(3, |cfg| {
            cfg.pre_vote = pre_vote;
            cfg.check_quorum = check_quorum;
        });
        let [a, b] = others(leader, 3)[..] else { unreachable!() };
        let term = c.node(leader).term();
        let joint = c.change_membership(leader, MembershipChange::Remove { id: NodeId(b) }).unwrap();
        c.deliver_all();
        assert_eq!(c.commit_of(leader), joint.next());
        assert!(c.node(b).membership().is_joint() && c.node(b).last_index() == joint, "b missed C_new");

        let mark = c.sent.len();
        c.run_for(Duration::from_secs(5));
        let tries =
            c.sent_since(mark, |m| m.from == NodeId(b) && matches!(m.body, MessageBody::RequestVote(_)));
        assert!(!tries.is_empty(), "({pre_vote}, {check_quorum}) b believes it votes, and campaigns");
        assert_eq!(c.node(leader).role(), Role::Leader, "({pre_vote}, {check_quorum})");
        assert_eq!(c.node(leader).term(), term, "({pre_vote}, {check_quorum}) the leader was disrupted");
        assert_eq!(c.node(a).leader(), Some(NodeId(leader)));
        let index = c.propose(leader, b"x").unwrap();
        c.deliver_all();
        assert_eq!(c.commit_of(a), index);
    }
}
