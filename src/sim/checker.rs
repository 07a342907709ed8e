//! Raft's safety properties, asserted after every step of a simulation.
//!
//! | property | how it is checked |
//! |---|---|
//! | election safety | at most one node is ever leader of a term |
//! | log matching | every entry ever written is registered by (index, term) with its content and the term before it; a second entry with the same (index, term) must agree on both, which by induction makes the logs identical up to it |
//! | leader completeness | a new leader's log holds every entry known committed; an entry newly known committed is in the log of every leader of a later term |
//! | state machine safety | the entries applied at an index, by any node, are the committed entry there; a snapshot taken or installed at an index holds the state after exactly the committed entries up to it |
//! | membership | a node counts exactly the configurations its log holds (the core's own invariants, checked every step); a leader commits only what a majority of each half of the configuration it counted holds durably, including a joint configuration whose commit moved the leader on to C_new in the same step |
//! | monotonicity | commit and applied indexes never decrease within a node's life; applied advances one index at a time |
//! | leader commit rule | a leader's commit index only ever moves onto an entry of its own term (Raft §5.4.2, Figure 8): entries of earlier terms are committed by one of its own above them, never by counting their replicas |
//! | durability | a vote grant leaves only once the vote is durable; an acknowledgement only once the entries are; a leader commits only what a majority holds durably; no node knows an index committed that a majority of the voters in force there does not hold durably |
//! | linearizable reads | a read's index is at least the highest commit index any node had when the read was invoked; the node serving it has applied that far, and its state equals the committed log up to what it applied |

use std::collections::{BTreeMap, HashMap};

use crate::core::{Node, ReadReady, Role};
use crate::membership::SnapshotMeta;
use crate::message::{AppendEntriesResponse, Message, MessageBody};
use crate::sim::disk::SimDisk;
use crate::types::{Entry, LogIndex, NodeId, Term};

/// A broken safety property.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Which property.
    pub property: &'static str,
    /// What happened.
    pub detail: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Committed {
    term: Term,
    digest: u64,
    committed_in: Term,
}

#[derive(Clone, Copy, Debug, Default)]
struct Watch {
    incarnation: u64,
    commit: LogIndex,
    role_leader_term: Option<Term>,
}

/// The checker's memory of everything that happened in a run.
#[derive(Default)]
pub(crate) struct Checker {
    leaders: BTreeMap<Term, NodeId>,
    registry: HashMap<(LogIndex, Term), (u64, Term)>,
    /// Every entry known committed, by index - 1: its term and content, and
    /// the term in which it was first known committed (always by a leader,
    /// since followers learn commitment from leaders).
    committed: Vec<Committed>,
    watches: BTreeMap<NodeId, Watch>,
    /// The first index newly known committed in this step, if any.
    newly_committed: Option<usize>,
    /// The highest commit index any node has had so far.
    max_commit: LogIndex,
    /// Reads invoked and not yet answered: (node, ctx) → the commit index
    /// some node knew when the read was invoked.
    reads: BTreeMap<(NodeId, u64), LogIndex>,
    /// `chain[i]` is the state-machine digest after applying the committed
    /// entries `1..=i`.
    chain: Vec<u64>,
    pub(crate) reads_checked: u64,
    pub(crate) violation: Option<Violation>,
    /// Sessions: replies per entry and where each command first applied.
    pub(crate) sessions: super::sessions::SessionCheck,
}

/// A stable digest of an entry's content (FNV-1a), so that checks never
/// depend on a randomly keyed hasher.
pub(crate) fn digest(e: &Entry) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in std::iter::once(&(e.kind as u8)).chain(e.data.iter()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Checker {
    /// Records a broken property (the first one wins).
    pub(crate) fn fail(&mut self, property: &'static str, detail: String) {
        if self.violation.is_none() {
            self.violation = Some(Violation { property, detail });
        }
    }

    /// A node restarted: its volatile indexes start over.
    pub(crate) fn on_restart(&mut self, id: NodeId, incarnation: u64) {
        self.watches.insert(id, Watch { incarnation, ..Watch::default() });
    }

    /// A node handed entries to its disk; they are now in its log.
    pub(crate) fn on_write(&mut self, node: &Node, entries: &[Entry]) {
        for e in entries {
            let prev_term = node.term_at(e.index.prev()).unwrap_or(Term(0));
            let here = (digest(e), prev_term);
            match self.registry.get(&(e.index, e.term)) {
                Some(&seen) if seen != here => {
                    self.fail(
                        "log matching",
                        format!(
                            "{} wrote entry {} {} unlike another log's (content or previous term differ)",
                            node.id(),
                            e.index,
                            e.term
                        ),
                    );
                }
                Some(_) => {}
                None => {
                    self.registry.insert((e.index, e.term), here);
                }
            }
        }
    }

    /// A message is leaving `node`: whatever it promises must be durable.
    /// Entries up to `snapshot`, the index of the node's durable snapshot,
    /// count as durable.
    pub(crate) fn on_send(&mut self, node: &Node, disk: &SimDisk, snapshot: LogIndex, msg: &Message) {
        match &msg.body {
            MessageBody::RequestVoteResponse(r) if r.granted && !r.pre_vote => {
                let hs = disk.hard_state;
                if !(hs.term > msg.term || (hs.term == msg.term && hs.vote == Some(msg.to))) {
                    self.fail(
                        "durability",
                        format!(
                            "{} granted its vote to {} in {} before it was durable (disk: {:?})",
                            msg.from, msg.to, msg.term, hs
                        ),
                    );
                }
            }
            MessageBody::AppendEntriesResponse(AppendEntriesResponse::Accepted { match_index }) => {
                // Entries a durable snapshot covers count as held.
                let durable = *match_index <= snapshot
                    || (disk.holds(*match_index, node.term_at(*match_index))
                        && (*match_index < disk.base.0 || disk.term_at(*match_index).is_some()));
                let same_term = node.term() == msg.term;
                if !same_term || !durable {
                    self.fail(
                        "durability",
                        format!(
                            "{} acknowledged up to {} in {} but its disk holds {} entries",
                            msg.from,
                            match_index,
                            msg.term,
                            disk.entries.len()
                        ),
                    );
                }
            }
            _ => {}
        }
    }

    /// A node's application applies `entry`, its applied index being `applied`.
    pub(crate) fn on_apply(&mut self, id: NodeId, applied: LogIndex, entry: &Entry) {
        if entry.index != applied.next() {
            self.fail(
                "state machine safety",
                format!("{id} applied {} right after {applied}: skipped or re-applied", entry.index),
            );
            return;
        }
        let k = entry.index.0 as usize - 1;
        let here = (entry.term, digest(entry));
        match self.committed.get(k) {
            Some(c) if (c.term, c.digest) != here => self.fail(
                "state machine safety",
                format!(
                    "{id} applied {} {} but the committed entry there is of {}",
                    entry.index, entry.term, c.term
                ),
            ),
            Some(_) => {}
            None => self.fail(
                "state machine safety",
                format!("{id} applied {} which no node knew committed", entry.index),
            ),
        }
    }

    /// A node took a snapshot of its application, whose digest is `digest`.
    pub(crate) fn on_snapshot(&mut self, id: NodeId, meta: &SnapshotMeta, digest: u64) {
        self.check_snapshot(id, "took", meta, digest);
    }

    /// A node's application restored a snapshot whose digest is `digest`.
    pub(crate) fn on_install(&mut self, id: NodeId, meta: &SnapshotMeta, digest: u64) {
        self.check_snapshot(id, "installed", meta, digest);
    }

    fn check_snapshot(&mut self, id: NodeId, what: &str, meta: &SnapshotMeta, digest: u64) {
        let index = meta.index;
        let term = self.committed.get(index.0 as usize - 1).map(|c| c.term);
        if term != Some(meta.term) {
            self.fail(
                "state machine safety",
                format!(
                    "{id} {what} a snapshot at {index} {} but the committed entry there is of {term:?}",
                    meta.term
                ),
            );
        } else if self.digest_after(index) != Some(digest) {
            self.fail(
                "state machine safety",
                format!("{id} {what} a snapshot at {index} whose state is not the committed log up to it"),
            );
        }
    }

    /// Checks a node after it took a step.
    pub(crate) fn after_step(&mut self, node: &Node, disks: &BTreeMap<NodeId, SimDisk>) {
        let id = node.id();
        let watch = *self.watches.entry(id).or_default();
        // Election safety.
        let leader_term = (node.role() == Role::Leader).then(|| node.term());
        if let Some(term) = leader_term {
            match self.leaders.get(&term) {
                Some(&other) if other != id => {
                    self.fail("election safety", format!("{other} and {id} are both leaders of {term}"));
                }
                Some(_) => {}
                None => {
                    self.leaders.insert(term, id);
                }
            }
            if watch.role_leader_term != Some(term) {
                self.check_leader_complete(node);
            }
        }
        // Commit monotonicity, and the committed log.
        let commit = node.commit_index();
        self.max_commit = self.max_commit.max(commit);
        if commit < watch.commit {
            self.fail("monotonicity", format!("{id} commit went from {} back to {commit}", watch.commit));
        }
        if commit > watch.commit {
            if let Some(term) = leader_term {
                let at = node.term_at(commit);
                if at != Some(term) {
                    let detail = format!(
                        "{id}, leader of {term}, moved its commit from {} to {commit}, an entry of {at:?}",
                        watch.commit
                    );
                    self.fail("leader commit rule", detail);
                }
                self.check_durable_on_majority(node, watch.commit, commit, disks);
            }
            self.check_durable_on_voters(node, commit, disks);
            self.record_committed(node, watch.commit, commit);
        }
        self.watches
            .insert(id, Watch { incarnation: watch.incarnation, commit, role_leader_term: leader_term });
    }

    fn record_committed(&mut self, node: &Node, from: LogIndex, to: LogIndex) {
        let mut index = from.next();
        let grew_from = self.committed.len();
        while index <= to {
            let Some(e) = node.entry(index) else {
                // Below the log: a snapshot installed from a leader covers
                // it, and that leader knew it committed.
                if index < node.first_index() && (index.0 as usize) <= self.committed.len() {
                    index = index.next();
                    continue;
                }
                self.fail("leader completeness", format!("{} commit {to} beyond its log", node.id()));
                return;
            };
            let here = (e.term, digest(e));
            let k = index.0 as usize - 1;
            match self.committed.get(k) {
                Some(c) if (c.term, c.digest) != here => {
                    self.fail(
                        "state machine safety",
                        format!("{} committed {index} {} where {} was committed", node.id(), e.term, c.term),
                    );
                    return;
                }
                Some(_) => {}
                None => {
                    debug_assert_eq!(k, self.committed.len());
                    self.committed.push(Committed {
                        term: e.term,
                        digest: here.1,
                        committed_in: node.term(),
                    });
                }
            }
            index = index.next();
        }
        if self.committed.len() > grew_from {
            self.newly_committed = Some(grew_from);
        }
    }

    /// Leader completeness for a node that just became leader: it holds
    /// every entry committed in an earlier term. (The leader of a stale term
    /// may lack what a later term committed.)
    fn check_leader_complete(&mut self, node: &Node) {
        for (k, c) in self.committed.iter().enumerate() {
            let index = LogIndex(k as u64 + 1);
            if c.committed_in < node.term() && !holds(node, index, c) {
                let detail = format!("{} leads {} without committed entry {index}", node.id(), node.term());
                self.fail("leader completeness", detail);
                return;
            }
        }
    }

    /// Newly committed entries must be in every current leader of a later term.
    pub(crate) fn check_leaders_hold_new_commits<'a>(&mut self, leaders: impl Iterator<Item = &'a Node>) {
        let Some(from) = self.newly_committed.take() else { return };
        for node in leaders {
            for k in from..self.committed.len() {
                let c = self.committed[k];
                let index = LogIndex(k as u64 + 1);
                if c.committed_in < node.term() && !holds(node, index, &c) {
                    let detail = format!(
                        "{} leads {} without entry {index} committed in {}",
                        node.id(),
                        node.term(),
                        c.committed_in
                    );
                    self.fail("leader completeness", detail);
                    return;
                }
            }
        }
    }

    /// A leader's commit (from `previous` to `commit`) must be durable on a
    /// majority of each half of the configuration it counted when it
    /// decided: the last one its log held then. That is the one its log
    /// holds now, unless the commit itself moved it on: committing C_old,new
    /// makes a leader append C_new in the same step, and then only the
    /// configuration in force at `commit` still shows that C_old had to
    /// agree. That one is what a leader counted whenever its entry lies
    /// between `previous` and `commit` (it was committed by this very
    /// decision, so no later one had been appended yet), so it is checked
    /// too in that case. (Not otherwise: once C_new is appended, the
    /// entries between C_old,new and C_new commit by C_new alone.)
    fn check_durable_on_majority(
        &mut self,
        node: &Node,
        previous: LogIndex,
        commit: LogIndex,
        disks: &BTreeMap<NodeId, SimDisk>,
    ) {
        let term = node.term_at(commit);
        let latest = node.membership();
        let decided = node.membership_at(commit);
        let mut configs = vec![latest];
        // A different configuration at `previous` means an entry between
        // the two holds the one in force at `commit`.
        if decided != latest && decided != node.membership_at(previous) {
            configs.push(decided);
        }
        for m in configs {
            for half in [&m.voters, &m.outgoing] {
                if half.is_empty() {
                    continue;
                }
                let holders = half
                    .iter()
                    .filter(|id| disks.get(id).is_some_and(|d| d.holds_or_held(commit, term)))
                    .count();
                if holders < half.len() / 2 + 1 {
                    let id = node.id();
                    let detail = format!(
                        "{id} committed {commit} while only {holders} of the voters {half:?} of {m} hold it durably"
                    );
                    self.fail("durability", detail);
                    return;
                }
            }
        }
    }

    /// Any node's commit, a leader's or one a follower learned, must be
    /// durable on a majority of the voters (C_new's, if joint) of the
    /// configuration in force at the committed index: whichever
    /// configuration the deciding leader counted, those voters were one of
    /// its halves (the same voters, the outgoing half of the joint
    /// configuration that followed, or the incoming half of the joint
    /// configuration that preceded C_new).
    fn check_durable_on_voters(&mut self, node: &Node, commit: LogIndex, disks: &BTreeMap<NodeId, SimDisk>) {
        let term = node.term_at(commit);
        let voters = &node.membership_at(commit).voters;
        if voters.is_empty() {
            return;
        }
        let holders =
            voters.iter().filter(|id| disks.get(id).is_some_and(|d| d.holds_or_held(commit, term))).count();
        if holders < voters.len() / 2 + 1 {
            let detail = format!(
                "{} knows {commit} committed while only {holders} of the voters {voters:?} hold it durably",
                node.id()
            );
            self.fail("durability", detail);
        }
    }

    /// A client invokes a read at `id`: whatever it returns must reflect at
    /// least every entry any node knew committed by now.
    pub(crate) fn on_read_invoked(&mut self, id: NodeId, ctx: u64) {
        self.reads.insert((id, ctx), self.max_commit);
    }

    /// A read was refused on the spot: nothing to check later.
    pub(crate) fn on_read_refused(&mut self, id: NodeId, ctx: u64) {
        self.reads.remove(&(id, ctx));
    }

    /// A read at `id` was answered while its state machine had applied
    /// `applied` entries with digest `app_digest`.
    pub(crate) fn on_read_ready(
        &mut self,
        id: NodeId,
        ready: &ReadReady,
        applied: LogIndex,
        app_digest: u64,
    ) {
        let Some(min_index) = self.reads.remove(&(id, ready.ctx)) else {
            self.fail("linearizability", format!("{id} answered read {} nobody asked for", ready.ctx));
            return;
        };
        let Ok(index) = ready.result else { return };
        self.reads_checked += 1;
        if index < min_index {
            self.fail(
                "linearizability",
                format!(
                    "{id} served read {} at {index}, below {min_index} committed before it was invoked",
                    ready.ctx
                ),
            );
            return;
        }
        if applied < index {
            self.fail(
                "linearizability",
                format!("{id} served read {} at {index} having applied only {applied}", ready.ctx),
            );
            return;
        }
        if self.digest_after(applied) != Some(app_digest) {
            self.fail(
                "linearizability",
                format!(
                    "{id} served read {} from a state that is not the committed log up to {applied}",
                    ready.ctx
                ),
            );
        }
    }

    /// The state-machine digest after the committed entries up to `index`.
    fn digest_after(&mut self, index: LogIndex) -> Option<u64> {
        let n = index.0 as usize;
        if n > self.committed.len() {
            return None;
        }
        while self.chain.len() <= n {
            let k = self.chain.len();
            let next = match k {
                0 => APP_DIGEST_START,
                _ => chain_step(self.chain[k - 1], self.committed[k - 1].digest),
            };
            self.chain.push(next);
        }
        Some(self.chain[n])
    }

    /// How many entries are known committed.
    pub(crate) fn committed_len(&self) -> u64 {
        self.committed.len() as u64
    }
}

/// The digest of an empty state machine.
pub(crate) const APP_DIGEST_START: u64 = 0x5eed;

/// The simulated state machine: a running digest of the entries applied.
pub(crate) fn chain_step(state: u64, entry_digest: u64) -> u64 {
    (state ^ entry_digest).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29)
}

/// Whether `node` holds the committed entry `c` at `index`: in its log, or
/// under its snapshot (checked against the committed log when taken or
/// installed).
fn holds(node: &Node, index: LogIndex, c: &Committed) -> bool {
    index < node.first_index() || node.entry(index).is_some_and(|e| e.term == c.term && digest(e) == c.digest)
}
