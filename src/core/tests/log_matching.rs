//! The Log Matching property and conflict handling on a follower (Raft §5.3,
//! Figure 2 "AppendEntries RPC" receiver rules 2–4), and the paper's Figure 7.

use std::time::Duration;

use super::harness::{entry, is_rejection, msg, recovered, terms_of, Cluster};
use crate::core::Role;
use crate::message::{AppendEntries, AppendEntriesResponse, Message, MessageBody};
use crate::types::{LogIndex, NodeId, Term};

fn append(from: u64, to: u64, term: u64, prev: (u64, u64), entries: &[(u64, u64)], commit: u64) -> Message {
    let req = AppendEntries {
        prev_log_index: LogIndex(prev.0),
        prev_log_term: Term(prev.1),
        entries: entries.iter().map(|&(i, t)| entry(i, t)).collect(),
        leader_commit: LogIndex(commit),
    };
    msg(from, to, term, MessageBody::AppendEntries(req))
}

/// The AppendEntries answers node `from` sent since `mark`.
fn responses(c: &Cluster, mark: usize, from: u64) -> Vec<AppendEntriesResponse> {
    c.sent[mark..]
        .iter()
        .filter(|m| m.from == NodeId(from))
        .filter_map(|m| match m.body {
            MessageBody::AppendEntriesResponse(r) => Some(r),
            _ => None,
        })
        .collect()
}

/// Node 1 starts with `terms` in term `term`, committed up to `commit`.
fn follower(term: u64, terms: &[u64], commit: u64) -> Cluster {
    let mut state = recovered(term, terms);
    state.hard_state.commit = LogIndex(commit);
    Cluster::from_states(vec![state, recovered(0, &[]), recovered(0, &[])], |_| {})
}

#[test]
fn follower_truncates_conflicting_suffix_and_takes_leaders_entries() {
    let mut c = follower(2, &[1, 1, 2, 2], 1);
    let mark = c.sent.len();
    c.inject(append(2, 1, 3, (2, 1), &[(3, 3), (4, 3), (5, 3)], 0));
    assert_eq!(terms_of(c.node(1)), vec![1, 1, 3, 3, 3]);
    assert_eq!(c.node(1).term(), Term(3));
    assert_eq!(c.node(1).leader(), Some(NodeId(2)));
    assert_eq!(responses(&c, mark, 1), vec![AppendEntriesResponse::Accepted { match_index: LogIndex(5) }]);
    // Storage was told to replace the suffix from index 3.
    let disk = &c.disks[&NodeId(1)];
    let disk_terms: Vec<u64> = disk.entries.iter().map(|e| e.term.0).collect();
    assert_eq!(disk_terms, vec![1, 1, 3, 3, 3]);
    assert_eq!(disk.entries[2], entry(3, 3));
}

#[test]
fn follower_keeps_entries_beyond_a_matching_append() {
    // The leader's entries match ours; what follows them is not touched
    // (Figure 2: truncate only on a conflict).
    let mut c = follower(2, &[1, 1, 2, 2], 0);
    let mark = c.sent.len();
    c.inject(append(2, 1, 2, (1, 1), &[(2, 1), (3, 2)], 0));
    assert_eq!(terms_of(c.node(1)), vec![1, 1, 2, 2]);
    assert_eq!(responses(&c, mark, 1), vec![AppendEntriesResponse::Accepted { match_index: LogIndex(3) }]);
}

#[test]
fn append_entries_with_mismatched_prev_is_rejected_with_a_hint() {
    // Missing entry: the hint is our last index.
    let mut c = follower(2, &[1, 1, 2, 2], 0);
    let mark = c.sent.len();
    c.inject(append(2, 1, 3, (6, 3), &[(7, 3)], 5));
    let hint = AppendEntriesResponse::Rejected {
        rejected_index: LogIndex(6),
        hint_index: LogIndex(4),
        hint_term: Term(2),
    };
    assert_eq!(responses(&c, mark, 1), vec![hint]);
    assert_eq!(terms_of(c.node(1)), vec![1, 1, 2, 2], "a rejected append changes no entry");
    assert_eq!(c.commit_of(1), LogIndex(0), "nor the commit index");

    // Conflicting terms: the hint skips every entry of a term above the
    // leader's prev_log_term, since none of them can match.
    let mut c = follower(4, &[1, 1, 4, 4, 4], 0);
    let mark = c.sent.len();
    c.inject(append(2, 1, 5, (5, 2), &[], 0));
    let hint = AppendEntriesResponse::Rejected {
        rejected_index: LogIndex(5),
        hint_index: LogIndex(2),
        hint_term: Term(1),
    };
    assert_eq!(responses(&c, mark, 1), vec![hint]);
    assert_eq!(terms_of(c.node(1)), vec![1, 1, 4, 4, 4]);
}

#[test]
fn stale_append_entries_does_not_truncate_matching_entries() {
    let mut c = follower(1, &[], 0);
    c.inject(append(2, 1, 1, (0, 0), &[(1, 1), (2, 1), (3, 1)], 2));
    assert_eq!(c.commit_of(1), LogIndex(2));
    let mark = c.sent.len();
    // A delayed copy of an earlier, shorter AppendEntries, and an exact
    // duplicate of the last one.
    c.inject(append(2, 1, 1, (0, 0), &[(1, 1), (2, 1)], 1));
    c.inject(append(2, 1, 1, (0, 0), &[(1, 1), (2, 1), (3, 1)], 2));
    assert_eq!(terms_of(c.node(1)), vec![1, 1, 1]);
    assert_eq!(c.node(1).entry(LogIndex(3)), Some(&entry(3, 1)));
    assert_eq!(c.commit_of(1), LogIndex(2), "the stale commit did not lower ours");
    assert_eq!(
        responses(&c, mark, 1),
        vec![
            AppendEntriesResponse::Accepted { match_index: LogIndex(2) },
            AppendEntriesResponse::Accepted { match_index: LogIndex(3) },
        ]
    );
    assert_eq!(c.disks[&NodeId(1)].entries.len(), 3, "storage was not asked to truncate");
}

#[test]
fn append_entries_never_overwrites_a_committed_entry() {
    // Only a faulty leader could send this; the follower keeps its
    // committed entries and does not answer.
    let mut c = follower(2, &[1, 1, 2], 2);
    let mark = c.sent.len();
    c.inject(append(2, 1, 3, (1, 1), &[(2, 3)], 2));
    assert_eq!(terms_of(c.node(1)), vec![1, 1, 2]);
    assert_eq!(c.commit_of(1), LogIndex(2));
    assert_eq!(responses(&c, mark, 1), vec![]);
}

/// Raft Figure 7: the leader of term 8 and six followers whose logs differ
/// from its own in every way the paper lists (missing entries, extra
/// uncommitted entries, both).
#[test]
fn figure_7_followers_converge_to_the_leader_log_with_fast_backtracking() {
    let leader_log = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
    let followers: [(&str, u64, &[u64]); 6] = [
        ("a", 6, &[1, 1, 1, 4, 4, 5, 5, 6, 6]),
        ("b", 4, &[1, 1, 1, 4]),
        ("c", 6, &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6]),
        ("d", 7, &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7]),
        ("e", 4, &[1, 1, 1, 4, 4, 4, 4]),
        ("f", 3, &[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3]),
    ];
    let mut states = vec![recovered(7, &leader_log)];
    states.extend(followers.iter().map(|&(_, term, log)| recovered(term, log)));
    let mut c = Cluster::from_states(states, |_| {});
    let now = c.now;
    // Node 1 wins term 8 with the votes of (a), (b), (e) and (f); (c) and (d)
    // hold longer logs and refuse.
    c.node_mut(1).campaign(now);
    c.deliver_all();
    assert_eq!(c.node(1).role(), Role::Leader);
    assert_eq!(c.node(1).term(), Term(8));

    let mut expected = leader_log.to_vec();
    expected.push(8); // the new leader's blank entry
    assert_eq!(terms_of(c.node(1)), expected);
    for (k, &(name, _, _)) in followers.iter().enumerate() {
        let id = k as u64 + 2;
        assert_eq!(terms_of(c.node(id)), expected, "follower ({name})");
        for i in 1..=expected.len() as u64 {
            assert_eq!(c.node(id).entry(LogIndex(i)), c.node(1).entry(LogIndex(i)), "({name}) entry {i}");
        }
        assert_eq!(c.disks[&NodeId(id)].entries.len(), expected.len(), "({name}) on disk");
        assert_eq!(c.commit_of(id), LogIndex(11), "({name}) commit");
        // Fast backtracking: each hint skips a whole term, so one rejection
        // per follower suffices here; one entry at a time would take up to
        // seven for (f).
        let rejections = c.sent.iter().filter(|m| m.from == NodeId(id) && is_rejection(m)).count();
        assert!(rejections <= 1, "({name}) rejected {rejections} AppendEntries");
    }
    assert_eq!(c.commit_of(1), LogIndex(11));
    // And the cluster goes on normally.
    c.run_for(Duration::from_millis(500));
    assert_eq!(c.assert_single_leader(), NodeId(1));
}
