//! What the core's tests build and look for: configurations, logs and
//! recovered states to start nodes from, hand-made messages, and predicates
//! on the messages nodes send. The harness re-exports all of it.

use crate::config::Config;
use crate::core::{Node, RecoveredState};
use crate::membership::{Membership, SnapshotMeta};
use crate::message::{AppendEntriesResponse, Message, MessageBody, SnapshotChunk};
use crate::types::{Bytes, Entry, EntryKind, HardState, Incarnation, LogIndex, NodeId, Term};

pub fn ids(n: u64) -> Vec<NodeId> {
    (1..=n).map(NodeId).collect()
}

pub fn config(id: NodeId) -> Config {
    let mut c = Config::new(id);
    c.seed = id.0 * 7919;
    // Tests of proposals on followers expect NotLeader; forwarding has its
    // own tests.
    c.forward_proposals = false;
    c
}

/// The incarnation of node `id`'s first disk in a test cluster.
pub fn incarnation_of(id: NodeId) -> Incarnation {
    Incarnation(1000 + id.0)
}

/// The configuration a test cluster of `n` starts with: voters 1 to `n`,
/// each admitted with its first disk's incarnation.
pub fn voters_of(n: u64) -> Membership {
    Membership::with_identified_voters(ids(n).into_iter().map(|id| (id, incarnation_of(id))))
}

/// A message from `from` (speaking from its first disk) to `to` in `term`.
pub fn msg(from: u64, to: u64, term: u64, body: MessageBody) -> Message {
    Message {
        from: NodeId(from),
        to: NodeId(to),
        term: Term(term),
        from_incarnation: incarnation_of(NodeId(from)),
        body,
    }
}

/// The entry a test log holds at `index` in `term`: its payload names both,
/// so that two logs agree on an entry exactly when they agree on its term.
pub fn entry(index: u64, term: u64) -> Entry {
    Entry {
        term: Term(term),
        index: LogIndex(index),
        kind: EntryKind::Command,
        data: Bytes::from(format!("{index}@{term}")),
    }
}

/// A log holding one entry per element of `terms`, from index 1.
pub fn log_of(terms: &[u64]) -> Vec<Entry> {
    terms.iter().enumerate().map(|(k, &t)| entry(k as u64 + 1, t)).collect()
}

/// The state of a node that stored term `term`, no vote, no commit, and a
/// log with the given entry terms.
pub fn recovered(term: u64, terms: &[u64]) -> RecoveredState {
    RecoveredState {
        hard_state: HardState { term: Term(term), vote: None, commit: LogIndex(0) },
        snapshot: None,
        entries: log_of(terms),
        applied: LogIndex(0),
        ..RecoveredState::default()
    }
}

/// The term of every entry of `node`'s log, from index 1.
pub fn terms_of(node: &Node) -> Vec<u64> {
    (1..=node.last_index().0).map(|i| node.entry(LogIndex(i)).expect("entry within the log").term.0).collect()
}

pub fn is_append(m: &Message) -> bool {
    matches!(m.body, MessageBody::AppendEntries(_))
}

pub fn is_append_response(m: &Message) -> bool {
    matches!(m.body, MessageBody::AppendEntriesResponse(_))
}

pub fn is_rejection(m: &Message) -> bool {
    matches!(m.body, MessageBody::AppendEntriesResponse(AppendEntriesResponse::Rejected { .. }))
}

/// The entries an AppendEntries carries; empty for any other message.
pub fn entries_in(m: &Message) -> &[Entry] {
    match &m.body {
        MessageBody::AppendEntries(a) => &a.entries,
        _ => &[],
    }
}

/// Whether `m` answers a (pre-)vote request with a grant.
pub fn is_vote_grant(m: &Message) -> bool {
    matches!(m.body, MessageBody::RequestVoteResponse(r) if r.granted)
}

pub fn is_heartbeat(m: &Message) -> bool {
    matches!(m.body, MessageBody::Heartbeat(_))
}

pub fn is_heartbeat_response(m: &Message) -> bool {
    matches!(m.body, MessageBody::HeartbeatResponse(_))
}

pub fn is_timeout_now(m: &Message) -> bool {
    matches!(m.body, MessageBody::TimeoutNow)
}

/// The transfer of snapshot `meta` from `from` to `to` in `term`, as the
/// harness's runtimes move it: one `SnapshotChunk` holding the whole file.
/// The harness's application has no state of its own, so its snapshot file
/// is the configuration the snapshot records.
pub fn snapshot_transfer(from: u64, to: u64, term: u64, meta: &SnapshotMeta) -> Message {
    let data = Bytes::from(meta.membership.to_bytes());
    let total_bytes = data.len() as u64;
    let chunk = SnapshotChunk { index: meta.index, snapshot_term: meta.term, offset: 0, total_bytes, data };
    msg(from, to, term, MessageBody::SnapshotChunk(chunk))
}

/// The snapshot `m` carries whole, if it is a transfer made by
/// [`snapshot_transfer`].
pub fn transferred_snapshot(m: &Message) -> Option<SnapshotMeta> {
    let MessageBody::SnapshotChunk(chunk) = &m.body else { return None };
    assert_eq!((chunk.offset, chunk.total_bytes), (0, chunk.data.len() as u64), "a whole file");
    let membership = Membership::decode(&chunk.data).expect("the harness's snapshot file is a configuration");
    Some(SnapshotMeta { index: chunk.index, term: chunk.snapshot_term, membership })
}

pub fn is_snapshot_transfer(m: &Message) -> bool {
    matches!(m.body, MessageBody::SnapshotChunk(_))
}

/// Whether `m` is a vote request (not a pre-vote).
pub fn is_vote_request(m: &Message) -> bool {
    matches!(m.body, MessageBody::RequestVote(r) if !r.pre_vote)
}

/// Whether `m` acknowledges a log matching up to `index` or further.
pub fn is_accepted_up_to(m: &Message, index: LogIndex) -> bool {
    matches!(m.body, MessageBody::AppendEntriesResponse(AppendEntriesResponse::Accepted { match_index })
        if match_index >= index)
}
