//! Unit tests of the runtime's pure pieces; the threads, sockets and files
//! are tested end to end under `tests/`.

use super::log_writer::commit_only;
use super::open_envelope;
use super::pending::Pending;
use crate::core::{Persist, PersistId};
use crate::types::{Bytes, Entry, EntryKind, HardState, LogIndex, NodeId, Term};

#[test]
fn only_a_bare_commit_advance_skips_its_fsync() {
    let written = HardState { term: Term(3), vote: Some(NodeId(2)), commit: LogIndex(5) };
    let write =
        |entries: Vec<Entry>, hard_state| Persist { id: PersistId(1), snapshot: None, entries, hard_state };
    let commit = |term, vote| Some(HardState { term: Term(term), vote, commit: LogIndex(9) });
    assert!(commit_only(&write(vec![], commit(3, Some(NodeId(2)))), written));
    // A new term or vote is a promise to peers: it must be synced.
    assert!(!commit_only(&write(vec![], commit(4, Some(NodeId(2)))), written));
    assert!(!commit_only(&write(vec![], commit(3, None)), written));
    // So are entries, with or without a hard state.
    let entry = Entry { term: Term(3), index: LogIndex(6), kind: EntryKind::Blank, data: Bytes::new() };
    assert!(!commit_only(&write(vec![entry.clone()], commit(3, Some(NodeId(2)))), written));
    assert!(!commit_only(&write(vec![entry], None), written));
}

#[test]
fn an_envelope_names_the_proposer_and_the_request() {
    let mut data = 7u64.to_le_bytes().to_vec();
    data.extend_from_slice(&42u64.to_le_bytes());
    data.extend_from_slice(b"cmd");
    assert_eq!(open_envelope(&data), Some((NodeId(7), 42, &b"cmd"[..])));
    assert_eq!(open_envelope(&data[..16]), Some((NodeId(7), 42, &b""[..])));
    assert_eq!(open_envelope(&data[..15]), None);
}

#[test]
fn pending_values_expire_in_order_and_answered_ones_are_skipped() {
    let mut pending: Pending<&str, u64> = Pending::new();
    pending.insert(1, "a", 10);
    pending.insert(2, "b", 20);
    pending.insert(3, "c", 30);
    assert_eq!(pending.remove(1), Some("a"));
    assert_eq!(pending.next_deadline(), Some(10), "an answered id's deadline stays until it comes up");
    let mut expired = Vec::new();
    pending.expire(20, |v| expired.push(v));
    assert_eq!(expired, ["b"]);
    assert_eq!(pending.next_deadline(), Some(30));
    assert_eq!(pending.remove(2), None);
    assert_eq!(pending.drain().collect::<Vec<_>>(), ["c"]);
    assert_eq!(pending.next_deadline(), None);
}

#[test]
fn answered_deadlines_are_swept_before_they_pile_up() {
    let mut pending: Pending<u64, u64> = Pending::new();
    for id in 0..100_000 {
        pending.insert(id, id, id);
        assert_eq!(pending.remove(id), Some(id));
    }
    assert!(pending.deadlines_len() <= 2 * 1024, "{} stale deadlines kept", pending.deadlines_len());
}
