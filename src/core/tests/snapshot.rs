//! Snapshots and log compaction (thesis ch. 5): when a node asks for a
//! snapshot and how it compacts, how a leader sends one to a follower that
//! fell behind the compacted log (the Snapshot state of its progress), and
//! how a follower installs one.

use super::harness::{
    established, is_append, is_heartbeat_response, is_snapshot_transfer, log_of, msg, snapshot_transfer,
    transferred_snapshot, Cluster,
};
use crate::core::{Node, PeerStatus, ProgressState, RecoveredState, SnapshotAction};
use crate::membership::{Membership, MembershipChange, SnapshotMeta};
use crate::message::{AppendEntriesResponse, Message, MessageBody};
use crate::types::{Bytes, Entry, EntryKind, HardState, Instant, LogIndex, NodeId, Term};

/// A snapshot asked for every five entries applied, the log compacted to two
/// entries below it.
fn snapshots(cfg: &mut crate::Config) {
    cfg.snapshot_entries = 5;
    cfg.snapshot_bytes = 0;
    cfg.compaction_margin = 2;
}

fn others(leader: u64, n: u64) -> Vec<u64> {
    (1..=n).filter(|&id| id != leader).collect()
}

fn peer(c: &Cluster, leader: u64, id: u64) -> PeerStatus {
    c.node(leader).status().peers.into_iter().find(|p| p.id == NodeId(id)).expect("a peer of the leader")
}

fn propose_n(c: &mut Cluster, leader: u64, n: usize) -> LogIndex {
    let mut last = LogIndex(0);
    for k in 0..n {
        last = c.propose(leader, format!("cmd {k}").as_bytes()).unwrap();
    }
    last
}

fn voters() -> Membership {
    super::harness::voters_of(3)
}

/// Snapshot `meta` sent by `from` in `term`, arriving whole at `to`.
fn install(from: u64, to: u64, term: u64, meta: SnapshotMeta) -> Message {
    snapshot_transfer(from, to, term, &meta)
}

fn accepted(index: LogIndex) -> MessageBody {
    MessageBody::AppendEntriesResponse(AppendEntriesResponse::Accepted { match_index: index })
}

#[test]
fn a_snapshot_is_asked_for_once_enough_entries_were_applied_and_not_again_until_taken() {
    let (mut c, leader) = established(3, snapshots);
    let id = NodeId(leader);
    c.manual_snapshots.insert(id);
    // The blank entry and three more: four applied, one short.
    propose_n(&mut c, leader, 3);
    c.deliver_all();
    assert_eq!(c.node(leader).applied_index(), LogIndex(4));
    assert!(c.snapshot_requests[&id].is_empty());
    propose_n(&mut c, leader, 1);
    c.deliver_all();
    assert_eq!(c.snapshot_requests[&id], vec![LogIndex(5)]);
    // Not again while the request is unanswered, however much is applied.
    propose_n(&mut c, leader, 10);
    c.deliver_all();
    assert_eq!(c.node(leader).applied_index(), LogIndex(15));
    assert_eq!(c.snapshot_requests[&id], vec![LogIndex(5)]);

    let taken = c.take_snapshot(leader);
    assert_eq!(taken.index, LogIndex(15));
    propose_n(&mut c, leader, 4);
    c.deliver_all();
    assert_eq!(c.snapshot_requests[&id], vec![LogIndex(5)], "four since the snapshot");
    propose_n(&mut c, leader, 1);
    c.deliver_all();
    assert_eq!(c.snapshot_requests[&id], vec![LogIndex(5), LogIndex(20)]);
    // The followers answer their requests at once, so they were asked again
    // and again.
    let follower = NodeId(others(leader, 3)[0]);
    assert_eq!(c.snapshots_taken[&follower].last().map(|s| s.index), Some(LogIndex(20)));
}

#[test]
fn taking_a_snapshot_compacts_the_log_up_to_the_margin_below_it() {
    let (mut c, leader) = established(3, snapshots);
    c.manual_snapshots.insert(NodeId(leader));
    propose_n(&mut c, leader, 9);
    c.deliver_all();
    let term = c.node(leader).term();
    assert_eq!(c.node(leader).first_index(), LogIndex(1));
    let meta = c.take_snapshot(leader);
    assert_eq!((meta.index, meta.term, &meta.membership), (LogIndex(10), term, &voters()));
    let node = c.node(leader);
    assert_eq!(node.snapshot(), Some(&meta));
    assert_eq!(node.first_index(), LogIndex(9), "two entries kept below the snapshot");
    assert_eq!(node.entry(LogIndex(8)), None);
    assert_eq!(node.term_at(LogIndex(8)), Some(term), "the last compacted entry's term is kept");
    assert_eq!(node.term_at(LogIndex(7)), None);
    assert!(node.entry(LogIndex(9)).is_some());
    let status = node.status();
    assert_eq!((status.first_index, status.snapshot_index), (LogIndex(9), LogIndex(10)));
}

#[test]
fn snapshot_reports_that_are_stale_beyond_applied_or_of_the_wrong_term_are_ignored() {
    let (mut c, leader) = established(3, snapshots);
    c.manual_snapshots.insert(NodeId(leader));
    propose_n(&mut c, leader, 9);
    c.deliver_all();
    let taken = c.take_snapshot(leader);
    c.pause_apply(leader);
    propose_n(&mut c, leader, 3);
    c.deliver_all();
    assert_eq!((c.node(leader).applied_index(), c.commit_of(leader)), (LogIndex(10), LogIndex(13)));
    let term = c.node(leader).term();
    let meta = |index: u64, term: Term| SnapshotMeta { index: LogIndex(index), term, membership: voters() };
    let unchanged = |c: &Cluster| {
        let node = c.node(leader);
        node.check_invariants();
        assert_eq!(node.snapshot(), Some(&taken));
        assert_eq!(node.first_index(), LogIndex(9));
    };
    for stale in [meta(7, term), meta(10, term)] {
        c.node_mut(leader).handle_snapshot_taken(stale);
        unchanged(&c);
    }
    // Committed but not applied: the application cannot have it.
    c.node_mut(leader).handle_snapshot_taken(meta(12, term));
    unchanged(&c);
    c.resume_apply(leader);
    assert_eq!(c.node(leader).applied_index(), LogIndex(13));
    c.node_mut(leader).handle_snapshot_taken(meta(13, term.next()));
    unchanged(&c);
    c.node_mut(leader).handle_snapshot_taken(meta(13, Term(0)));
    unchanged(&c);
    // The same report with the right term is taken.
    c.node_mut(leader).handle_snapshot_taken(meta(13, term));
    assert_eq!(c.node(leader).snapshot(), Some(&meta(13, term)));
    assert_eq!(c.node(leader).first_index(), LogIndex(12));
}

/// A cluster of three with snapshots whose leader compacted its log past
/// what follower `f` holds, and has asked to send `f` the snapshot: the
/// transfer is held back, returned. Returns the cluster, the
/// leader, `f` and the held message.
fn follower_needs_snapshot() -> (Cluster, u64, u64, Message) {
    let (mut c, leader) = established(3, snapshots);
    let f = others(leader, 3)[0];
    // So that its latest snapshot is the one it gets.
    c.manual_snapshots.insert(NodeId(f));
    c.cut_both(leader, f);
    propose_n(&mut c, leader, 12);
    c.deliver_all();
    let snapshot = c.node(leader).snapshot().cloned().expect("the leader took a snapshot");
    assert!(snapshot.index >= LogIndex(10), "{snapshot:?}");
    // No further compaction: it would make the transfer stale before the
    // test is done with it.
    c.manual_snapshots.insert(NodeId(leader));
    assert_eq!(c.node(leader).first_index(), LogIndex(snapshot.index.0 - 1));
    assert_eq!(c.node(f).last_index(), LogIndex(1));
    c.heal();
    let mark = c.sent.len();
    c.tick_until_heartbeat(leader);
    let mut held = c.deliver_except(is_snapshot_transfer);
    assert_eq!(held.len(), 1, "one transfer: {held:?}");
    let m = held.pop().unwrap();
    assert_eq!((m.from, m.to), (NodeId(leader), NodeId(f)));
    assert_eq!(transferred_snapshot(&m), Some(snapshot));
    assert_eq!(c.sent_since(mark, is_snapshot_transfer).len(), 1);
    (c, leader, f, m)
}

#[test]
fn a_follower_behind_the_compacted_log_gets_the_snapshot_and_nothing_else_until_it_arrives() {
    let (mut c, leader, f, install) = follower_needs_snapshot();
    let meta = transferred_snapshot(&install).expect("a snapshot transfer");
    assert_eq!(peer(&c, leader, f).state, ProgressState::Snapshot);
    // The transfer takes a while: entries are proposed, heartbeats go round.
    let mark = c.sent.len();
    for _ in 0..5 {
        propose_n(&mut c, leader, 1);
        c.tick_until_heartbeat(leader);
        assert!(c.deliver_except(is_snapshot_transfer).is_empty());
    }
    let to_f = c.sent_since(mark, |m| m.to == NodeId(f) && m.from == NodeId(leader));
    assert!(to_f.iter().all(|m| matches!(m.body, MessageBody::Heartbeat(_))), "{to_f:?}");
    assert_eq!(to_f.len(), 5, "the follower still hears heartbeats");
    assert_eq!(peer(&c, leader, f).state, ProgressState::Snapshot);
    assert_eq!(c.node(f).last_index(), LogIndex(1));

    c.network.push_back(install);
    c.deliver_all();
    let last = c.node(leader).last_index();
    assert_eq!(last, LogIndex(18));
    let p = peer(&c, leader, f);
    assert_eq!((p.state, p.match_index), (ProgressState::Replicate, last));
    let node = c.node(f);
    let after = meta.index.next();
    assert_eq!(node.snapshot(), Some(&meta));
    assert_eq!((node.first_index(), node.last_index(), node.commit_index()), (after, last, last));
    assert_eq!(c.installs[&NodeId(f)], vec![meta.clone()]);
    let expected: Vec<u64> = std::iter::once(1).chain(after.0..=last.0).collect();
    assert_eq!(c.applied_indexes(f), expected, "the blank, then what follows the snapshot");
    let disk = &c.disks[&NodeId(f)];
    assert_eq!((disk.base, disk.snapshot.as_ref()), ((meta.index, meta.term), Some(&meta)));
    assert_eq!(disk.entries.first().map(|e| e.index), Some(after));
}

#[test]
fn after_a_failed_snapshot_the_leader_waits_for_a_heartbeat_response_before_trying_again() {
    let (mut c, leader, f, _lost) = follower_needs_snapshot();
    c.node_mut(leader).handle_snapshot_failed(NodeId(f));
    c.drain(NodeId(leader));
    assert_eq!(peer(&c, leader, f).state, ProgressState::Probe);
    // Replication to the others goes on; nothing goes to f.
    let mark = c.sent.len();
    propose_n(&mut c, leader, 1);
    assert!(c.deliver_except(is_snapshot_transfer).is_empty());
    let to_f = |m: &Message| m.to == NodeId(f) && (is_snapshot_transfer(m) || is_append(m));
    assert!(c.sent_since(mark, to_f).is_empty(), "{:?}", c.sent_since(mark, to_f));

    c.tick_until_heartbeat(leader);
    let held = c.deliver_except(is_snapshot_transfer);
    assert_eq!(held.len(), 1);
    let sent = &c.sent[mark..];
    let answer = sent.iter().position(|m| m.from == NodeId(f) && is_heartbeat_response(m)).unwrap();
    let retry = sent.iter().position(|m| m.to == NodeId(f) && is_snapshot_transfer(m)).unwrap();
    assert!(answer < retry, "the retry follows the heartbeat response");
    assert_eq!(peer(&c, leader, f).state, ProgressState::Snapshot);
}

#[test]
fn once_a_snapshot_arrived_the_leader_probes_just_after_it() {
    let (mut c, leader, f, install) = follower_needs_snapshot();
    let meta = transferred_snapshot(&install).expect("a snapshot transfer");
    // The follower got it (its answer stays in the network for now), then
    // the leader hears that the transfer is over.
    c.inject(install);
    let mark = c.sent.len();
    c.node_mut(leader).handle_snapshot_sent(NodeId(f));
    c.drain(NodeId(leader));
    let p = peer(&c, leader, f);
    assert_eq!((p.state, p.next_index), (ProgressState::Probe, meta.index.next()));
    let probes = c.sent_since(mark, |m| m.to == NodeId(f) && is_append(m));
    assert_eq!(probes.len(), 1);
    let MessageBody::AppendEntries(a) = &probes[0].body else { unreachable!() };
    assert_eq!((a.prev_log_index, a.prev_log_term), (meta.index, meta.term));
    c.deliver_all();
    let p = peer(&c, leader, f);
    assert_eq!((p.state, p.match_index), (ProgressState::Replicate, c.node(leader).last_index()));
}

/// A follower (node 1, term 2, nothing committed) with the log of
/// `entries`, and the snapshot meta of index 3 in term 1 that a leader
/// (node 2, term 2) installs on it.
fn follower_with(entries: Vec<Entry>) -> (Cluster, SnapshotMeta) {
    let state = |entries: Vec<Entry>| RecoveredState {
        hard_state: HardState { term: Term(2), vote: None, commit: LogIndex(0) },
        snapshot: None,
        entries,
        applied: LogIndex(0),
        ..RecoveredState::default()
    };
    let c = Cluster::from_states(vec![state(entries), state(log_of(&[1, 1, 1])), state(Vec::new())], |_| {});
    (c, SnapshotMeta { index: LogIndex(3), term: Term(1), membership: voters() })
}

fn membership_entry(index: u64, term: u64, m: &Membership) -> Entry {
    Entry {
        term: Term(term),
        index: LogIndex(index),
        kind: EntryKind::Membership,
        data: Bytes::from(m.to_bytes()),
    }
}

fn with_learner_4() -> Membership {
    voters().apply(&MembershipChange::AddLearner { id: NodeId(4), address: "n4".into() }).unwrap()
}

#[test]
fn installing_a_snapshot_keeps_the_entries_after_it_when_the_log_matches_there() {
    let mut entries = log_of(&[1, 1, 1]);
    entries.push(membership_entry(4, 2, &with_learner_4()));
    entries.push(super::harness::entry(5, 2));
    let (mut c, meta) = follower_with(entries.clone());
    let mark = c.sent.len();
    c.inject(install(2, 1, 2, meta.clone()));
    let node = c.node(1);
    assert_eq!(
        (node.first_index(), node.last_index(), node.commit_index()),
        (LogIndex(4), LogIndex(5), meta.index)
    );
    assert_eq!(node.entry(LogIndex(4)), Some(&entries[3]));
    assert_eq!(node.membership(), &with_learner_4(), "the kept change is still in force");
    assert_eq!(node.membership_at(meta.index), &voters());
    assert_eq!(node.snapshot(), Some(&meta));
    assert_eq!(node.leader(), Some(NodeId(2)));
    assert_eq!(c.installs[&NodeId(1)], vec![meta.clone()]);
    assert_eq!(c.app_applied[&NodeId(1)], meta.index);
    let disk = &c.disks[&NodeId(1)];
    assert_eq!((disk.base, disk.entries.as_slice()), ((meta.index, meta.term), &entries[3..]));
    let answers = c.sent_since(mark, |m| m.from == NodeId(1));
    assert_eq!(answers.len(), 1);
    assert_eq!((answers[0].to, &answers[0].body), (NodeId(2), &accepted(meta.index)));
}

/// A snapshot arrives through the runtime, never as a message; its checks
/// are those InstallSnapshot had. The sender and term come from the wire:
/// impossible ones are dropped, a stale term is answered so that the old
/// leader steps down, a newer one is adopted. A chunk handed to the core as
/// a message does nothing: only the runtime assembles snapshots.
#[test]
fn a_received_snapshot_is_checked_like_a_leader_message() {
    let (mut c, meta) = follower_with(log_of(&[1, 1, 2, 2]));
    let unchanged = |c: &Cluster, mark: usize, shown: &str| {
        let node = c.node(1);
        assert_eq!((node.term(), node.leader(), node.snapshot()), (Term(2), None, None), "{shown}");
        assert_eq!((node.first_index(), node.last_index()), (LogIndex(1), LogIndex(4)), "{shown}");
        assert!(c.sent_since(mark, |m| m.from == NodeId(1)).is_empty(), "{shown}");
        assert!(c.installs[&NodeId(1)].is_empty(), "{shown}");
    };
    let now = c.now;
    let index_0 = SnapshotMeta { index: LogIndex(0), term: Term(0), membership: voters() };
    let of_term_3 = SnapshotMeta { term: Term(3), ..meta.clone() };
    let impossible = [
        (NodeId(1), Term(2), meta.clone(), "from itself"),
        (NodeId(0), Term(2), meta.clone(), "from node 0"),
        (NodeId(2), Term(u64::MAX), meta.clone(), "beyond the term limit"),
        (NodeId(2), Term(2), of_term_3, "of a term after the sender's"),
        (NodeId(2), Term(2), index_0, "at index 0"),
    ];
    for (from, term, meta, shown) in impossible {
        let mark = c.sent.len();
        c.node_mut(1).handle_snapshot_received(now, from, term, meta);
        c.drain(NodeId(1));
        unchanged(&c, mark, shown);
    }
    // The chunk itself, handed to the core, is dropped.
    let mark = c.sent.len();
    let chunk = install(2, 1, 2, meta.clone());
    c.node_mut(1).handle_message(now, chunk);
    c.drain(NodeId(1));
    unchanged(&c, mark, "a chunk as a message");

    // From a leader of term 1, deposed: answered with term 2, not installed.
    let mark = c.sent.len();
    c.node_mut(1).handle_snapshot_received(now, NodeId(2), Term(1), meta.clone());
    c.drain(NodeId(1));
    let answers = c.sent_since(mark, |m| m.from == NodeId(1));
    assert_eq!(answers.len(), 1);
    assert_eq!((answers[0].to, answers[0].term), (NodeId(2), Term(2)));
    assert!(is_heartbeat_response(answers[0]));
    assert_eq!(c.node(1).snapshot(), None);

    // From the leader of a newer term: followed and installed.
    let mark = c.sent.len();
    c.inject(install(3, 1, 3, meta.clone()));
    let node = c.node(1);
    assert_eq!((node.term(), node.leader(), node.snapshot()), (Term(3), Some(NodeId(3)), Some(&meta)));
    assert_eq!(c.installs[&NodeId(1)], vec![meta.clone()]);
    let answers = c.sent_since(mark, |m| m.from == NodeId(1));
    assert_eq!(answers.len(), 1);
    assert_eq!(
        (answers[0].to, answers[0].term, &answers[0].body),
        (NodeId(3), Term(3), &accepted(meta.index))
    );
}

#[test]
fn installing_a_snapshot_discards_a_log_that_does_not_match_it() {
    let mut entries = log_of(&[1, 1, 2]);
    entries.push(membership_entry(4, 2, &with_learner_4()));
    let (mut c, meta) = follower_with(entries);
    assert_eq!(c.node(1).membership(), &with_learner_4());
    c.inject(install(2, 1, 2, meta.clone()));
    let node = c.node(1);
    assert_eq!(
        (node.first_index(), node.last_index(), node.commit_index()),
        (LogIndex(4), meta.index, meta.index)
    );
    assert_eq!(node.entry(LogIndex(4)), None);
    assert_eq!(node.term_at(meta.index), Some(meta.term));
    assert_eq!(node.membership(), &voters(), "the discarded change is no longer in force");
    let disk = &c.disks[&NodeId(1)];
    assert_eq!(disk.base, (meta.index, meta.term));
    assert!(disk.entries.is_empty());
    // The leader's entries continue the snapshot.
    let append = crate::message::AppendEntries {
        prev_log_index: meta.index,
        prev_log_term: meta.term,
        entries: vec![super::harness::entry(4, 2)],
        leader_commit: LogIndex(4),
    };
    c.inject(msg(2, 1, 2, MessageBody::AppendEntries(append)));
    assert_eq!((c.node(1).last_index(), c.commit_of(1)), (LogIndex(4), LogIndex(4)));
    assert_eq!(c.applied_indexes(1), vec![4]);
}

#[test]
fn the_acknowledgement_of_an_installed_snapshot_waits_for_the_write_that_continues_it() {
    let (mut c, meta) = follower_with(log_of(&[1, 1, 2, 2]));
    c.stall(1);
    let mark = c.sent.len();
    c.inject(install(2, 1, 2, meta.clone()));
    assert!(c.sent_since(mark, |m| m.from == NodeId(1)).is_empty(), "acknowledged before durable");
    let writes = &c.pending_writes[&NodeId(1)];
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].snapshot.as_ref(), Some(&meta));
    let disk = &c.disks[&NodeId(1)];
    assert_eq!(disk.snapshot.as_ref(), Some(&meta), "the runtime stored the snapshot itself");
    assert_eq!((disk.base.0, disk.entries.len()), (LogIndex(0), 4), "but the log does not continue it");

    c.unstall(1);
    let answers = c.sent_since(mark, |m| m.from == NodeId(1));
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].body, accepted(meta.index));
    assert_eq!(c.disks[&NodeId(1)].base, (meta.index, meta.term));
}

#[test]
fn a_snapshot_at_or_below_the_commit_index_is_answered_with_the_commit_index_and_changes_nothing() {
    let (mut c, leader) = established(3, |_| {});
    let f = others(leader, 3)[0];
    let commit = propose_n(&mut c, leader, 4);
    c.deliver_all();
    assert_eq!(c.commit_of(f), commit);
    let term = c.node(leader).term();
    let log_before: Vec<Entry> =
        (1..=commit.0).map(|i| c.node(f).entry(LogIndex(i)).unwrap().clone()).collect();
    for index in [LogIndex(3), commit] {
        let meta = SnapshotMeta { index, term, membership: voters() };
        let mark = c.sent.len();
        let writes = c.disks[&NodeId(f)].clone();
        c.inject(install(leader, f, term.0, meta));
        let answers = c.sent_since(mark, |m| m.from == NodeId(f));
        assert_eq!(answers.len(), 1);
        assert_eq!(answers[0].body, accepted(commit), "answered with the commit index");
        let node = c.node(f);
        assert_eq!(
            (node.first_index(), node.last_index(), node.commit_index()),
            (LogIndex(1), commit, commit)
        );
        assert_eq!(node.snapshot(), None);
        let log_after: Vec<Entry> =
            (1..=commit.0).map(|i| node.entry(LogIndex(i)).unwrap().clone()).collect();
        assert_eq!(log_after, log_before);
        assert!(c.installs[&NodeId(f)].is_empty());
        assert_eq!(
            (c.disks[&NodeId(f)].base, c.disks[&NodeId(f)].entries.len()),
            (writes.base, writes.entries.len())
        );
    }
}

#[test]
fn a_node_restarted_from_a_snapshot_it_has_not_restored_asks_for_it_before_any_entry() {
    let (mut c, leader) = established(3, snapshots);
    let f = others(leader, 3)[0];
    propose_n(&mut c, leader, 12);
    c.deliver_all();
    let snapshot = c.node(f).snapshot().cloned().expect("the follower took a snapshot");
    let after = snapshot.index.next();
    c.manual_snapshots.insert(NodeId(f));
    let last = propose_n(&mut c, leader, 3);
    c.deliver_all();
    assert_eq!(c.commit_of(f), last);
    assert!(c.disks[&NodeId(f)].entries.len() as u64 == last.0, "storage kept the compacted entries");

    // The application's state was lost with the crash.
    c.restart(f, LogIndex(0));
    assert_eq!(c.installs[&NodeId(f)], vec![snapshot.clone()]);
    assert_eq!(c.applied_indexes(f), (after.0..=last.0).collect::<Vec<_>>());
    assert_eq!(c.node(f).first_index(), after);

    // The same, one output at a time.
    let disk = &c.disks[&NodeId(f)];
    let state = RecoveredState {
        hard_state: disk.hard_state,
        snapshot: disk.snapshot.clone(),
        entries: disk.entries.clone(),
        applied: LogIndex(5),
        ..RecoveredState::default()
    };
    let config = c.node(f).config().clone();
    let ids = [1, 2, 3].map(NodeId);
    let mut node = Node::new(config.clone(), &ids, state.clone(), Instant::ZERO).unwrap();
    assert_eq!(node.poll_snapshot(), Some(SnapshotAction::Install { meta: snapshot.clone() }));
    assert_eq!(node.poll_snapshot(), None);
    node.handle_applied(snapshot.index);
    assert_eq!(node.poll_apply().map(|e| e.index), Some(after));
    // An application that restored the snapshot already is not asked again.
    let restored = RecoveredState { applied: after, ..state };
    let mut node = Node::new(config, &ids, restored, Instant::ZERO).unwrap();
    assert_eq!(node.poll_snapshot(), None);
    assert_eq!(node.poll_apply().map(|e| e.index), Some(after.next()));
}

#[test]
fn a_node_added_after_compaction_learns_the_configuration_from_the_snapshot_then_its_own_addition() {
    let (mut c, leader) = established(3, snapshots);
    propose_n(&mut c, leader, 12);
    c.deliver_all();
    let snapshot = c.node(leader).snapshot().cloned().expect("the leader took a snapshot");
    assert!(c.node(leader).first_index() > LogIndex(1));
    c.add_node(4);
    let index = c
        .change_membership(leader, MembershipChange::AddLearner { id: NodeId(4), address: "n4".into() })
        .unwrap();
    c.deliver_all();
    assert_eq!(c.installs[&NodeId(4)], vec![snapshot.clone()]);
    assert_eq!(snapshot.membership, voters(), "taken before node 4 was added");
    let node = c.node(4);
    assert_eq!(node.membership(), &with_learner_4());
    assert_eq!(
        (node.first_index(), node.last_index(), node.commit_index()),
        (snapshot.index.next(), index, index)
    );
    assert_eq!(peer(&c, leader, 4).match_index, index);
}
