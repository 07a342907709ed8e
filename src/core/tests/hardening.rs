//! Inputs a code review found could hurt: terms near `u64::MAX`, malformed
//! messages at a higher term, a vote lease that a newer term used to erase,
//! campaigning inside a lease, and transfers that end by stepping down.

use std::time::Duration;

use super::harness::{established, msg};
use crate::core::{Event, Role, TERM_LIMIT};
use crate::message::{
    AppendEntries, Heartbeat, HeartbeatResponse, MessageBody, RequestVote, RequestVoteResponse,
};
use crate::types::{LogIndex, NodeId, Term};

fn follower_of(leader: u64, n: u64) -> u64 {
    (1..=n).find(|&id| id != leader).expect("a follower")
}

#[test]
fn a_term_beyond_the_limit_is_dropped_and_changes_nothing() {
    let (mut c, leader) = established(3, |_| {});
    let f = follower_of(leader, 3);
    let term = c.node(f).term();
    for huge in [u64::MAX, TERM_LIMIT.0 + 1] {
        let hb = MessageBody::Heartbeat(Heartbeat { commit: LogIndex(0), commit_term: Term(0), round: 0 });
        let mark = c.sent.len();
        c.inject(msg(leader, f, huge, hb));
        assert_eq!(c.node(f).term(), term, "term {huge} was adopted");
        assert!(c.sent_since(mark, |_| true).is_empty(), "term {huge} was answered");
    }
    // The cluster still elects and commits afterwards.
    c.run_for(Duration::from_secs(2));
    assert_eq!(c.assert_single_leader(), NodeId(leader));
}

#[test]
fn a_malformed_append_entries_at_a_higher_term_does_not_move_the_term() {
    let (mut c, leader) = established(3, |_| {});
    let f = follower_of(leader, 3);
    let term = c.node(f).term();
    let bad = AppendEntries {
        prev_log_index: LogIndex(0),
        prev_log_term: Term(0),
        // Index 5 where 1 belongs.
        entries: vec![crate::types::Entry {
            term: Term(term.0 + 5),
            index: LogIndex(5),
            kind: crate::types::EntryKind::Blank,
            data: Default::default(),
        }],
        leader_commit: LogIndex(0),
    };
    c.inject(msg(leader, f, term.0 + 5, MessageBody::AppendEntries(bad)));
    assert_eq!(c.node(f).term(), term);
    assert_eq!(c.node(f).leader(), Some(NodeId(leader)));
}

/// A follower that answered the leader's heartbeat refuses votes for
/// `election_timeout_min`, even after a stray reply taught it a newer term.
#[test]
fn the_vote_lease_survives_learning_a_newer_term_from_another_message() {
    let (mut c, leader) = established(3, |_| {});
    let f = follower_of(leader, 3);
    let candidate = (1..=3).find(|&id| id != leader && id != f).expect("a third node");
    let next = c.node(f).term().0 + 1;
    // A stale reply at a newer term: the follower adopts the term, and no
    // longer knows a leader.
    let stale = RequestVoteResponse { pre_vote: false, granted: false };
    c.inject(msg(candidate, f, next, MessageBody::RequestVoteResponse(stale)));
    assert_eq!(c.node(f).term(), Term(next));
    assert_eq!(c.node(f).leader(), None);
    // A vote request in that term, inside the lease: refused.
    let mark = c.sent.len();
    let req = RequestVote {
        pre_vote: false,
        last_log_index: c.node(f).last_index(),
        last_log_term: c.node(f).entry(c.node(f).last_index()).map_or(Term(0), |e| e.term),
        leadership_transfer: false,
    };
    c.inject(msg(candidate, f, next, MessageBody::RequestVote(req)));
    let answers = c.sent_since(mark, |m| matches!(m.body, MessageBody::RequestVoteResponse(_)));
    assert!(
        answers.iter().all(|m| matches!(m.body, MessageBody::RequestVoteResponse(r) if !r.granted)),
        "vote granted inside the lease: {answers:?}"
    );
    assert_eq!(c.node(f).vote(), None);
}

#[test]
fn campaign_does_nothing_inside_a_lease_when_lease_reads_are_on() {
    let (mut c, leader) = established(3, |cfg| cfg.lease_reads = true);
    let f = follower_of(leader, 3);
    // Fresh contact with the leader.
    let hb = MessageBody::Heartbeat(Heartbeat { commit: LogIndex(0), commit_term: Term(0), round: 0 });
    let term = c.node(f).term();
    c.inject(msg(leader, f, term.0, hb));
    let now = c.now;
    c.node_mut(f).campaign(now);
    assert_eq!(c.node(f).role(), Role::Follower);
    assert_eq!(c.node(f).term(), term);
}

#[test]
fn a_transfer_cut_short_by_stepping_down_is_reported_abandoned() {
    let (mut c, leader) = established(3, |_| {});
    let target = follower_of(leader, 3);
    let other = (1..=3).find(|&id| id != leader && id != target).expect("a third node");
    // Keep the target behind so TimeoutNow is not sent yet.
    c.isolate(target);
    let now = c.now;
    c.node_mut(leader).transfer_leadership(now, NodeId(target)).unwrap();
    c.clear_events();
    // A reply from the third node at a higher term deposes the leader.
    let term = c.node(leader).term().0 + 1;
    c.inject(msg(
        other,
        leader,
        term,
        MessageBody::HeartbeatResponse(HeartbeatResponse { round: 0, last_index: LogIndex(0), disk: None }),
    ));
    assert_eq!(c.node(leader).role(), Role::Follower);
    // The outcome shows when the next leader is known: not the target.
    let hb = MessageBody::Heartbeat(Heartbeat { commit: LogIndex(0), commit_term: Term(0), round: 0 });
    c.inject(msg(other, leader, term, hb));
    assert!(
        c.events_of(leader).contains(&Event::TransferAbandoned { to: NodeId(target) }),
        "{:?}",
        c.events_of(leader)
    );
}

/// CheckQuorum counts a follower as present only when it answers the
/// leader: a message that proves nothing about the leader's reach (here an
/// unsolicited vote response of the leader's term) must not keep a leader
/// that hears no replies from stepping down.
#[test]
fn check_quorum_counts_only_replies_to_the_leader() {
    let (mut c, leader) = established(3, |_| {});
    let term = c.node(leader).term();
    c.isolate(leader);
    let min = c.node(leader).config().election_timeout_min;
    let end = c.now + min * 3;
    while c.now < end && c.node(leader).role() == Role::Leader {
        for from in (1..=3).filter(|&id| id != leader) {
            let noise = RequestVoteResponse { pre_vote: true, granted: false };
            c.inject(msg(from, leader, term.0, MessageBody::RequestVoteResponse(noise)));
        }
        c.tick();
    }
    assert_eq!(c.node(leader).role(), Role::Follower, "a leader that hears no replies kept leading");
}

/// A recovered state that contradicts itself is refused with a typed
/// error naming what is wrong, not a string.
#[test]
fn a_contradictory_recovered_state_is_refused_with_a_typed_error() {
    use super::harness::{config, log_of, recovered};
    use crate::core::{RecoveryError, StartError};
    use crate::membership::Membership;
    use crate::types::Instant;

    let start = |state| {
        let voters = Membership::with_voters([NodeId(1)]);
        crate::core::Node::with_membership(config(NodeId(1)), voters, state, Instant::ZERO).map(drop)
    };
    let refused = |state| match start(state) {
        Err(StartError::State(e)) => e,
        other => panic!("started: {other:?}"),
    };
    assert_eq!(
        refused(recovered(1, &[1, 2])),
        RecoveryError::LogAheadOfTerm { log_term: Term(2), stored_term: Term(1) }
    );
    assert_eq!(refused(recovered(3, &[2, 1])), RecoveryError::TermDecreases { index: LogIndex(2) });
    let mut gap = recovered(3, &[1, 1]);
    gap.entries = log_of(&[1, 1, 1]).split_off(1);
    assert_eq!(refused(gap), RecoveryError::IndexGap { found: LogIndex(2), expected: LogIndex(1) });
    let mut ahead = recovered(3, &[1]);
    ahead.applied = LogIndex(2);
    assert_eq!(refused(ahead), RecoveryError::AppliedBeyondLog { applied: LogIndex(2), last: LogIndex(1) });
    assert!(start(recovered(3, &[1, 2])).is_ok());
}
