//! When entries are committed: the leader's rule (Raft §5.3–§5.4.2, Figure 8)
//! and the follower's (Figure 2, AppendEntries receiver rule 5).

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::time::Duration;

use super::harness::{entries_in, entry, is_append, msg, recovered, terms_of, Cluster};
use crate::config::InjectedBugs;
use crate::core::Role;
use crate::message::{AppendEntries, AppendEntriesResponse, Heartbeat, Message, MessageBody};
use crate::rng::Rng;
use crate::types::{EntryKind, LogIndex, NodeId, Term};

/// Raft Figure 8 (c): S1 leads term 4 and has replicated its term-2 entry at
/// index 2 to S2 and S3, a majority, but not yet its own blank entry at
/// index 3. S5 holds a term-3 entry at index 2 and could still win an
/// election. The messages that would put index 3 on S2 and S3 are returned,
/// undelivered.
fn figure_8_c(bugs: InjectedBugs) -> (Cluster, Vec<Message>) {
    let states = vec![
        recovered(3, &[1, 2]),
        recovered(3, &[1]),
        recovered(3, &[1]),
        recovered(3, &[1]),
        recovered(3, &[1, 3]),
    ];
    let mut c = Cluster::from_states(states, |cfg| {
        // One entry per AppendEntries, so that index 2 can travel without 3.
        cfg.message_bytes_max = 20;
        cfg.entry_bytes_max = 7;
        cfg.bugs = bugs;
    });
    c.isolate(5);
    c.cut_both(1, 4);
    let now = c.now;
    c.node_mut(1).campaign(now);
    // The first AppendEntries to each follower probes at index 2 and is
    // rejected; every later one carrying index 3 is held back.
    let probed = RefCell::new(BTreeSet::new());
    let held = c.deliver_except(|m| {
        entries_in(m).iter().any(|e| e.index == LogIndex(3)) && !probed.borrow_mut().insert(m.to)
    });
    assert_eq!((c.node(1).role(), c.node(1).term()), (Role::Leader, Term(4)));
    assert_eq!(terms_of(c.node(1)), vec![1, 2, 4]);
    for id in [2, 3] {
        assert_eq!(terms_of(c.node(id)), vec![1, 2], "S{id}");
    }
    let status = c.node(1).status();
    let matches: Vec<(u64, u64)> = status.peers.iter().map(|p| (p.id.0, p.match_index.0)).collect();
    assert_eq!(matches, vec![(2, 2), (3, 2), (4, 0), (5, 0)]);
    assert!(!held.is_empty());
    assert!(held.iter().all(|m| m.to == NodeId(2) || m.to == NodeId(3)), "{held:?}");
    (c, held)
}

#[test]
fn figure_8_leader_does_not_commit_an_earlier_term_entry_by_counting_replicas() {
    let (c, _) = figure_8_c(InjectedBugs::default());
    assert_eq!(c.commit_of(1), LogIndex(0), "index 2 is on a majority but of term 2");
    assert!(c.applied[&NodeId(1)].is_empty());
    // The rare branch is counted, for the simulator's coverage report.
    assert!(c.node(1).coverage().commit_held_for_earlier_term > 0);
}

#[test]
fn figure_8_scenario_catches_a_leader_that_counts_replicas() {
    // The same scenario with the rule broken: S1 commits and applies index 2
    // of term 2, and then S5 wins and replaces it on S2 and S3.
    let (mut c, _) = figure_8_c(InjectedBugs { commit_old_terms_by_counting: true, ..Default::default() });
    assert_eq!(c.commit_of(1), LogIndex(2));
    assert_eq!(c.applied[&NodeId(1)][1], entry(2, 2));
    let leader = s5_takes_over(&mut c);
    assert_eq!(leader, NodeId(5));
    assert_eq!(c.applied[&NodeId(2)][1].term, Term(3), "S2 applied a different entry at index 2");
}

/// S1 crashes; S5 wins an election with the votes of S2, S3 and S4 once they
/// stop hearing from S1. Returns the leader.
fn s5_takes_over(c: &mut Cluster) -> NodeId {
    c.heal();
    c.isolate(1);
    c.take_network();
    for _ in 0..3 {
        // Past the lease S1 gave its followers.
        c.now = c.now + Duration::from_millis(200);
        let now = c.now;
        c.node_mut(5).campaign(now);
        c.deliver_all();
        if c.node(5).role() == Role::Leader {
            break;
        }
    }
    assert_eq!(c.node(5).role(), Role::Leader);
    NodeId(5)
}

#[test]
fn figure_8_uncommitted_earlier_term_entry_may_be_overwritten_by_a_later_leader() {
    let (mut c, _) = figure_8_c(InjectedBugs::default());
    s5_takes_over(&mut c);
    // Figure 8 (d): S5 replaces index 2 everywhere it can reach. Safe only
    // because S1 never committed it.
    for id in 2..=5 {
        assert_eq!(terms_of(c.node(id)), vec![1, 3, 5], "S{id}");
        assert_eq!(c.commit_of(id), LogIndex(3), "S{id}");
        let applied_2 = &c.applied[&NodeId(id)][1];
        assert_eq!(applied_2, &entry(2, 3), "S{id}");
    }
    assert!(c.applied[&NodeId(1)].is_empty(), "S1 applied nothing it would now contradict");
}

#[test]
fn figure_8_earlier_term_entry_commits_beneath_an_entry_of_the_current_term() {
    let (mut c, held) = figure_8_c(InjectedBugs::default());
    // Figure 8 (e): index 3 (term 4) reaches S2 and S3.
    c.network.extend(held);
    let mut steps = 0;
    while c.deliver_one() {
        let commit = c.commit_of(1);
        assert!(commit == LogIndex(0) || commit >= LogIndex(3), "commit {commit:?} without index 3");
        steps += 1;
        assert!(steps < 100);
    }
    assert_eq!(c.commit_of(1), LogIndex(3));
    let applied: Vec<(u64, u64)> = c.applied[&NodeId(1)].iter().map(|e| (e.index.0, e.term.0)).collect();
    assert_eq!(applied, vec![(1, 1), (2, 2), (3, 4)]);
    // From now on S5 can never win: its log is behind a majority's.
    s5_cannot_win(&mut c);
}

fn s5_cannot_win(c: &mut Cluster) {
    c.heal();
    c.isolate(1);
    for _ in 0..3 {
        c.now = c.now + Duration::from_millis(200);
        let now = c.now;
        c.node_mut(5).campaign(now);
        c.deliver_all();
        assert_ne!(c.node(5).role(), Role::Leader);
    }
    for id in 2..=3 {
        assert_eq!(c.node(id).entry(LogIndex(2)), Some(&entry(2, 2)), "S{id}");
    }
}

#[test]
fn leader_commits_own_term_entry_once_stored_on_a_majority() {
    let mut c = Cluster::new(5);
    let leader = c.elect(Duration::from_secs(2));
    c.deliver_all();
    let l = leader.0;
    let followers: Vec<u64> = (1..=5).filter(|&id| id != l).collect();
    let index = c.propose(l, b"x").unwrap();
    assert_eq!(index, LogIndex(2));
    // Only the first follower gets it: 2 of 5 hold it.
    let slow: Vec<NodeId> = followers[1..].iter().map(|&id| NodeId(id)).collect();
    let held = c.deliver_except(|m| is_append(m) && slow.contains(&m.to));
    assert_eq!(held.len(), 3);
    assert_eq!(c.commit_of(l), LogIndex(1));
    // A third copy makes a majority.
    let (first, rest): (Vec<Message>, Vec<Message>) =
        held.into_iter().partition(|m| m.to == NodeId(followers[1]));
    c.network.extend(first);
    let later = c.deliver_except(|m| is_append(m) && rest.iter().any(|r| r.to == m.to));
    assert_eq!(c.commit_of(l), LogIndex(2));
    c.network.extend(rest);
    c.network.extend(later);
    c.deliver_all();
    assert_eq!(c.commit_of(l), LogIndex(2));
    for &id in &followers {
        assert_eq!(c.commit_of(id), LogIndex(2), "follower {id}");
    }
    // A stale acknowledgement does not move the commit index back.
    let stale = AppendEntriesResponse::Accepted { match_index: LogIndex(1) };
    c.inject(msg(followers[0], l, 1, MessageBody::AppendEntriesResponse(stale)));
    assert_eq!(c.commit_of(l), LogIndex(2));
}

fn append(term: u64, prev: (u64, u64), entries: &[(u64, u64)], commit: u64) -> Message {
    let req = AppendEntries {
        prev_log_index: LogIndex(prev.0),
        prev_log_term: Term(prev.1),
        entries: entries.iter().map(|&(i, t)| entry(i, t)).collect(),
        leader_commit: LogIndex(commit),
    };
    msg(2, 1, term, MessageBody::AppendEntries(req))
}

#[test]
fn follower_commits_up_to_the_last_new_entry_and_no_further() {
    // Node 1 holds an uncommitted entry of term 2 at index 3 that the leader
    // of term 3 does not have.
    let mut c =
        Cluster::from_states(vec![recovered(2, &[1, 1, 2]), recovered(3, &[]), recovered(3, &[])], |_| {});
    // The leader vouches for entries up to 2 only: commit min(3, 2).
    c.inject(append(3, (2, 1), &[], 3));
    assert_eq!(c.commit_of(1), LogIndex(2));
    assert_eq!(c.node(1).coverage().follower_commit_capped, 1, "capped before a stale suffix");
    // A stale, shorter message does not lower it.
    c.inject(append(3, (0, 0), &[(1, 1)], 3));
    assert_eq!(c.commit_of(1), LogIndex(2));
    // New entries are committed up to the leader's commit index.
    c.inject(append(3, (2, 1), &[(3, 3), (4, 3), (5, 3)], 4));
    assert_eq!(terms_of(c.node(1)), vec![1, 1, 3, 3, 3]);
    assert_eq!(c.node(1).coverage().suffix_truncated, 1, "the stale entry at 3 went");
    assert_eq!(c.commit_of(1), LogIndex(4));
    assert_eq!(c.applied_indexes(1), vec![1, 2, 3, 4]);
    assert_eq!(c.disks[&NodeId(1)].hard_state.commit, LogIndex(4), "the commit index is stored");
}

#[test]
fn a_heartbeat_commits_only_an_entry_the_follower_holds_with_the_term_named() {
    // Node 1 holds entries 1 and 2 of term 1, and an uncommitted 3 of term 2.
    let mut c =
        Cluster::from_states(vec![recovered(2, &[1, 1, 2]), recovered(2, &[]), recovered(2, &[])], |_| {});
    let hb = |commit: u64, term: u64| {
        MessageBody::Heartbeat(Heartbeat { commit: LogIndex(commit), commit_term: Term(term), round: 0 })
    };
    // The leader's entry 3 is of term 1: node 1's is not that one, and its
    // log is not known to match the leader's there.
    c.inject(msg(2, 1, 2, hb(3, 1)));
    assert_eq!(c.commit_of(1), LogIndex(0), "no commit on the strength of another entry");
    c.inject(msg(2, 1, 2, hb(2, 1)));
    assert_eq!(c.commit_of(1), LogIndex(2));
    c.inject(msg(2, 1, 2, hb(1, 1)));
    assert_eq!(c.commit_of(1), LogIndex(2), "a lower heartbeat commit does not lower it");
    assert_eq!(c.node(1).status().repair_to, LogIndex(3), "it acknowledged an entry 3 it no longer holds");
}

#[test]
fn heartbeat_commit_is_the_minimum_of_leader_commit_and_follower_match() {
    let mut c = Cluster::new(3);
    let leader = c.elect(Duration::from_secs(2)).0;
    c.deliver_all();
    let (fast, slow) = match leader {
        1 => (2, 3),
        2 => (1, 3),
        _ => (1, 2),
    };
    c.propose(leader, b"x").unwrap();
    let held = c.deliver_except(|m| is_append(m) && m.to == NodeId(slow));
    assert!(!held.is_empty());
    assert_eq!(c.commit_of(leader), LogIndex(2));
    // Let heartbeats go out, but keep AppendEntries from the slow follower.
    let mark = c.sent.len();
    let deadline = c.now + c.node(leader).config().heartbeat_interval;
    while c.now < deadline {
        c.tick();
        c.deliver_except(|m| is_append(m) && m.to == NodeId(slow));
    }
    let heartbeat_commits = |to: u64| -> Vec<LogIndex> {
        c.sent[mark..]
            .iter()
            .filter(|m| m.to == NodeId(to))
            .filter_map(|m| match m.body {
                MessageBody::Heartbeat(hb) => Some(hb.commit),
                _ => None,
            })
            .collect()
    };
    let (to_fast, to_slow) = (heartbeat_commits(fast), heartbeat_commits(slow));
    assert!(!to_fast.is_empty() && to_fast.iter().all(|&i| i == LogIndex(2)), "{to_fast:?}");
    assert!(!to_slow.is_empty() && to_slow.iter().all(|&i| i == LogIndex(1)), "{to_slow:?}");
    assert_eq!(c.commit_of(slow), LogIndex(1));
    assert_eq!(c.commit_of(fast), LogIndex(2));
}

#[test]
fn commit_index_never_decreases_under_reordering_and_duplication() {
    for seed in 0..10u64 {
        let mut rng = Rng::new(seed);
        let mut c = Cluster::new(3);
        c.elect(Duration::from_secs(2));
        let mut commits = [LogIndex(0); 3];
        for step in 0..400 {
            match rng.below(10) {
                0..=1 => {
                    if let Some(l) = c.leader() {
                        let _ = c.propose(l.0, b"cmd");
                    }
                }
                2 => {
                    // Duplicate a message in flight.
                    if !c.network.is_empty() {
                        let k = rng.below(c.network.len() as u64) as usize;
                        let m = c.network[k].clone();
                        c.network.push_back(m);
                    }
                }
                3 if rng.chance(1, 4) => c.tick(),
                _ => {
                    // Deliver a message chosen at random: reordering.
                    if !c.network.is_empty() {
                        let k = rng.below(c.network.len() as u64) as usize;
                        let m = c.network.remove(k).expect("index within the network");
                        c.network.push_front(m);
                        c.deliver_one();
                    }
                }
            }
            for id in 1..=3u64 {
                let now = c.commit_of(id);
                let before = commits[id as usize - 1];
                assert!(now >= before, "seed {seed} step {step}: node {id} commit {before:?} -> {now:?}");
                commits[id as usize - 1] = now;
            }
        }
        // Quiet the network and let the cluster settle: every node applied the
        // same entries in the same order.
        c.run_for(Duration::from_secs(2));
        let leader = c.assert_single_leader();
        c.propose(leader.0, b"last").unwrap();
        c.run_for(Duration::from_millis(200));
        let reference = c.applied[&leader].clone();
        let commands = reference.iter().filter(|e| e.kind == EntryKind::Command).count();
        // About one step in five proposes; most proposals must survive.
        assert!(commands >= 40, "seed {seed}: only {commands} commands applied");
        for id in 1..=3 {
            assert_eq!(c.applied[&NodeId(id)], reference, "seed {seed}: node {id}");
        }
    }
}
