//! A test cluster of cores in one thread: messages are delivered by a loop,
//! writes are durable the moment they are handed out (unless a node's disk is
//! "stalled"), and time jumps to the next deadline instead of sleeping.
//!
//! Tests control delivery by cutting links ([`Cluster::cut`]), by holding
//! back messages that match a predicate ([`Cluster::deliver_except`]), or by
//! injecting hand-made messages ([`Cluster::inject`]). Every message a node
//! emits is recorded in [`Cluster::sent`], so tests can count them.
//!
//! Every read a node answers lands in [`Cluster::reads`] and every event in
//! [`Cluster::events`]. A node's application can be paused
//! ([`Cluster::pause_apply`]) so that it falls behind its commit index.
//!
//! Snapshots play the runtime's part (see [`SnapshotAction`]):
//!
//! - `Take`: the application snapshots its state at the node's applied index
//!   at once, stores it on the node's [`Disk`] and reports it taken; unless
//!   the node's snapshots are manual ([`Cluster::manual_snapshots`]), in which
//!   case the request is only recorded and the test calls
//!   [`Cluster::take_snapshot`] when it likes.
//! - `Send`: the transfer travels as the runtime moves it, as
//!   `SnapshotChunk`s, here a single one holding the whole file (see
//!   [`snapshot_transfer`]), from the leader, in the leader's term at the
//!   time of `Send`, through the network like any message: a cut link drops
//!   it (and the leader hears
//!   [`handle_snapshot_failed`](Node::handle_snapshot_failed) at once), a
//!   test may hold it back, and when it is delivered the follower's runtime
//!   takes it, not its core: its disk stores the snapshot first, then its
//!   core hears [`handle_snapshot_received`](Node::handle_snapshot_received),
//!   then the leader hears [`handle_snapshot_sent`](Node::handle_snapshot_sent).
//! - `Install`: the application's applied index jumps to the snapshot's (see
//!   [`Cluster::installs`]), and the node hears `handle_applied`. A paused
//!   application holds installs back like entries.
//!
//! Nodes started by [`Cluster::add_node`] begin with an empty membership and
//! wait for a leader to add them.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use crate::config::Config;
use crate::core::{
    Event, MembershipChangeError, Node, Persist, ProposeError, ReadError, ReadReady, RecoveredState, Role,
    SnapshotAction,
};
use crate::membership::{Membership, MembershipChange, SnapshotMeta};
use crate::message::Message;
use crate::types::{Bytes, Entry, Incarnation, Instant, LogIndex, NodeId, Term};

pub use super::disk::Disk;
pub use super::fixtures::*;

pub struct Cluster {
    pub now: Instant,
    pub nodes: BTreeMap<NodeId, Node>,
    pub disks: BTreeMap<NodeId, Disk>,
    /// Writes handed out but not yet reported durable, per node.
    pub pending_writes: BTreeMap<NodeId, Vec<Persist>>,
    /// Nodes whose writes are not reported durable until unstalled.
    pub stalled: BTreeSet<NodeId>,
    /// Messages in flight, in sending order.
    pub network: VecDeque<Message>,
    /// Directed links that drop everything: (from, to).
    pub cut: BTreeSet<(NodeId, NodeId)>,
    /// Entries applied, per node.
    pub applied: BTreeMap<NodeId, Vec<Entry>>,
    /// Every message any node emitted, in order, including those a cut link
    /// then dropped.
    pub sent: Vec<Message>,
    /// Reads answered by `poll_read_ready`, per node, in order.
    pub reads: BTreeMap<NodeId, Vec<ReadReady>>,
    /// Events reported by `poll_event`, per node, in order.
    pub events: BTreeMap<NodeId, Vec<Event>>,
    /// Nodes whose committed entries are not handed to the application until
    /// resumed (or applied one by one with [`Cluster::apply_next`]).
    pub apply_paused: BTreeSet<NodeId>,
    /// The configuration each node was started with.
    pub bootstrap: BTreeMap<NodeId, Membership>,
    /// The index each node's application has applied, by entries or by
    /// restoring a snapshot.
    pub app_applied: BTreeMap<NodeId, LogIndex>,
    /// Snapshots each node's application restored since the node started,
    /// in order.
    pub installs: BTreeMap<NodeId, Vec<SnapshotMeta>>,
    /// `Install` actions a paused application has not carried out yet.
    pending_installs: BTreeMap<NodeId, VecDeque<SnapshotMeta>>,
    /// The `applied` index of every `Take` each node asked for, in order.
    pub snapshot_requests: BTreeMap<NodeId, Vec<LogIndex>>,
    /// Every snapshot each node took, in order.
    pub snapshots_taken: BTreeMap<NodeId, Vec<SnapshotMeta>>,
    /// Nodes whose `Take` requests are recorded but not carried out.
    pub manual_snapshots: BTreeSet<NodeId>,
}

/// Snapshots `node`'s application at its applied index, as a runtime does
/// on `Take`: stores it on `disk` and reports it taken.
fn take_snapshot_of(node: &mut Node, disk: &mut Disk) -> SnapshotMeta {
    let index = node.applied_index();
    let term = node.term_at(index).expect("the applied entry is in the log or is its base");
    let meta = SnapshotMeta { index, term, membership: node.membership_at(index).clone() };
    disk.snapshot = Some(meta.clone());
    node.handle_snapshot_taken(meta.clone());
    meta
}

/// A cluster of `n` whose leader was elected and has led for a while: every
/// node follows it and has applied its blank entry. Returns the leader.
pub fn established(n: u64, tweak: impl Fn(&mut Config)) -> (Cluster, u64) {
    let mut c = Cluster::with_config(n, tweak);
    let leader = c.elect(Duration::from_secs(2)).0;
    c.run_for(Duration::from_millis(100));
    assert_eq!(c.assert_single_leader(), NodeId(leader));
    for id in 1..=n {
        assert_eq!(c.node(id).applied_index(), LogIndex(1), "node {id} applied the blank entry");
    }
    (c, leader)
}

impl Cluster {
    /// A cluster of `n` fresh nodes with default test configs.
    pub fn new(n: u64) -> Cluster {
        Cluster::with_config(n, |_| {})
    }

    pub fn with_config(n: u64, tweak: impl Fn(&mut Config)) -> Cluster {
        Cluster::from_states((1..=n).map(|_| RecoveredState::default()).collect(), tweak)
    }

    /// A cluster whose node `k + 1` starts from `states[k]`, as if restarted
    /// from its storage at time zero.
    pub fn from_states(states: Vec<RecoveredState>, tweak: impl Fn(&mut Config)) -> Cluster {
        let bootstrap = voters_of(states.len() as u64);
        Cluster::from_states_with(states, bootstrap, tweak)
    }

    /// `n` brand-new nodes that know no configuration: none of them can do
    /// anything until one is bootstrapped ([`Node::bootstrap`]).
    pub fn unbootstrapped(n: u64, tweak: impl Fn(&mut Config)) -> Cluster {
        let states = (1..=n).map(|_| RecoveredState::default()).collect();
        Cluster::from_states_with(states, Membership::default(), tweak)
    }

    fn from_states_with(
        states: Vec<RecoveredState>,
        bootstrap: Membership,
        tweak: impl Fn(&mut Config),
    ) -> Cluster {
        let voters = ids(states.len() as u64);
        let mut nodes = BTreeMap::new();
        let mut disks = BTreeMap::new();
        let mut app_applied = BTreeMap::new();
        for (&id, mut state) in voters.iter().zip(states) {
            if state.incarnation == Incarnation::UNKNOWN {
                state.incarnation = incarnation_of(id);
            }
            let mut c = config(id);
            tweak(&mut c);
            let base = state.snapshot.as_ref().map_or((LogIndex(0), Term(0)), |s| (s.index, s.term));
            let disk = Disk {
                hard_state: state.hard_state,
                snapshot: state.snapshot.clone(),
                base,
                entries: state.entries.clone(),
            };
            disks.insert(id, disk);
            app_applied.insert(id, state.applied);
            let node = Node::with_membership(c, bootstrap.clone(), state, Instant::ZERO);
            nodes.insert(id, node.expect("valid test node"));
        }
        Cluster {
            now: Instant::ZERO,
            applied: voters.iter().map(|&id| (id, Vec::new())).collect(),
            disks,
            nodes,
            pending_writes: BTreeMap::new(),
            stalled: BTreeSet::new(),
            network: VecDeque::new(),
            cut: BTreeSet::new(),
            sent: Vec::new(),
            reads: voters.iter().map(|&id| (id, Vec::new())).collect(),
            events: voters.iter().map(|&id| (id, Vec::new())).collect(),
            apply_paused: BTreeSet::new(),
            bootstrap: voters.iter().map(|&id| (id, bootstrap.clone())).collect(),
            app_applied,
            installs: voters.iter().map(|&id| (id, Vec::new())).collect(),
            pending_installs: BTreeMap::new(),
            snapshot_requests: voters.iter().map(|&id| (id, Vec::new())).collect(),
            snapshots_taken: voters.iter().map(|&id| (id, Vec::new())).collect(),
            manual_snapshots: BTreeSet::new(),
        }
    }

    /// Starts node `id` with an empty disk and an empty membership, like the
    /// other nodes' configuration otherwise, and drains it: it waits for a
    /// leader to add it.
    pub fn add_node(&mut self, id: u64) {
        let id = NodeId(id);
        assert!(!self.nodes.contains_key(&id), "node {id} exists already");
        let mut c = self.nodes.values().next().expect("a cluster has nodes").config().clone();
        c.id = id;
        c.seed = config(id).seed;
        let bootstrap = Membership::default();
        let state = RecoveredState { incarnation: incarnation_of(id), ..RecoveredState::default() };
        let node = Node::with_membership(c, bootstrap.clone(), state, self.now).expect("valid test node");
        self.nodes.insert(id, node);
        self.disks.insert(id, Disk::default());
        self.bootstrap.insert(id, bootstrap);
        self.app_applied.insert(id, LogIndex(0));
        self.applied.insert(id, Vec::new());
        self.reads.insert(id, Vec::new());
        self.events.insert(id, Vec::new());
        self.installs.insert(id, Vec::new());
        self.snapshot_requests.insert(id, Vec::new());
        self.snapshots_taken.insert(id, Vec::new());
        self.drain(id);
    }

    pub fn node(&self, id: u64) -> &Node {
        &self.nodes[&NodeId(id)]
    }

    pub fn node_mut(&mut self, id: u64) -> &mut Node {
        self.nodes.get_mut(&NodeId(id)).unwrap()
    }

    /// Drains one node's outputs: writes, messages, entries to apply, reads
    /// and events.
    pub fn drain(&mut self, id: NodeId) {
        let now = self.now;
        loop {
            let node = self.nodes.get_mut(&id).unwrap();
            let mut progressed = false;
            while let Some(p) = node.poll_persist() {
                progressed = true;
                self.pending_writes.entry(id).or_default().push(p);
            }
            if !self.stalled.contains(&id) {
                let disk = self.disks.get_mut(&id).unwrap();
                let mut last = None;
                for p in self.pending_writes.get_mut(&id).map(|w| w.drain(..)).into_iter().flatten() {
                    disk.write(&p);
                    last = Some(p.id);
                }
                if let Some(last) = last {
                    node.handle_persisted(now, last);
                    progressed = true;
                }
            }
            while let Some(m) = node.poll_send() {
                progressed = true;
                self.sent.push(m.clone());
                if !self.cut.contains(&(m.from, m.to)) {
                    self.network.push_back(m);
                }
            }
            while let Some(action) = node.poll_snapshot() {
                progressed = true;
                match action {
                    SnapshotAction::Take { applied } => {
                        self.snapshot_requests.get_mut(&id).unwrap().push(applied);
                        if !self.manual_snapshots.contains(&id) {
                            let meta = take_snapshot_of(node, self.disks.get_mut(&id).unwrap());
                            self.snapshots_taken.get_mut(&id).unwrap().push(meta);
                        }
                    }
                    SnapshotAction::Send { to, meta } => {
                        let m = snapshot_transfer(id.0, to.0, node.term().0, &meta);
                        self.sent.push(m.clone());
                        if self.cut.contains(&(id, to)) {
                            node.handle_snapshot_failed(to);
                        } else {
                            self.network.push_back(m);
                        }
                    }
                    SnapshotAction::Install { meta } => {
                        self.pending_installs.entry(id).or_default().push_back(meta);
                    }
                }
            }
            if !self.apply_paused.contains(&id) {
                while let Some(meta) = self.pending_installs.get_mut(&id).and_then(|q| q.pop_front()) {
                    progressed = true;
                    Self::install(node, &mut self.app_applied, &mut self.installs, meta);
                }
                while let Some(e) = node.poll_apply() {
                    progressed = true;
                    Self::apply(node, &mut self.app_applied, &mut self.applied, e);
                }
            }
            while let Some(r) = node.poll_read_ready() {
                self.reads.get_mut(&id).unwrap().push(r);
            }
            while let Some(e) = node.poll_event() {
                self.events.get_mut(&id).unwrap().push(e);
            }
            node.check_invariants();
            if !progressed {
                break;
            }
        }
    }

    /// The application restores snapshot `meta`.
    fn install(
        node: &mut Node,
        app_applied: &mut BTreeMap<NodeId, LogIndex>,
        installs: &mut BTreeMap<NodeId, Vec<SnapshotMeta>>,
        meta: SnapshotMeta,
    ) {
        let id = node.id();
        let applied = app_applied.get_mut(&id).unwrap();
        assert!(meta.index > *applied, "{id} restores snapshot {:?} having applied {applied:?}", meta.index);
        *applied = meta.index;
        node.handle_applied(meta.index);
        installs.get_mut(&id).unwrap().push(meta);
    }

    /// The application applies entry `e`, which must come right after what
    /// it applied (or restored) so far.
    fn apply(
        node: &mut Node,
        app_applied: &mut BTreeMap<NodeId, LogIndex>,
        applied: &mut BTreeMap<NodeId, Vec<Entry>>,
        e: Entry,
    ) {
        let id = node.id();
        let app = app_applied.get_mut(&id).unwrap();
        assert_eq!(e.index, app.next(), "{id} handed out entry {:?} after {app:?}", e.index);
        *app = e.index;
        node.handle_applied(e.index);
        applied.get_mut(&id).unwrap().push(e);
    }

    pub fn drain_all(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.drain(id);
        }
    }

    /// Hands `m` to its addressee now and drains that node's outputs into the
    /// network (without delivering them).
    ///
    /// An injected snapshot transfer is received by the addressee's runtime,
    /// as on delivery; no leader hears how it went.
    pub fn inject(&mut self, m: Message) {
        let to = m.to;
        assert!(self.nodes.contains_key(&to), "injected message for a node of the cluster");
        self.receive(m);
    }

    /// Node `m.to` (which exists) receives `m`, and is drained. A snapshot
    /// transfer goes to its runtime: the disk stores the snapshot, then the
    /// core hears it was received, from the sender in the message's term.
    fn receive(&mut self, m: Message) {
        let to = m.to;
        let node = self.nodes.get_mut(&to).expect("a node of the cluster");
        match transferred_snapshot(&m) {
            Some(meta) => {
                self.disks.get_mut(&to).expect("a disk per node").store_snapshot(&meta);
                node.handle_snapshot_received(self.now, m.from, m.term, meta);
            }
            None => node.handle_message(self.now, m),
        }
        self.drain(to);
    }

    /// Takes every message in flight out of the network.
    pub fn take_network(&mut self) -> Vec<Message> {
        self.network.drain(..).collect()
    }

    /// Delivers one message, if any. Returns whether one was delivered.
    pub fn deliver_one(&mut self) -> bool {
        let Some(m) = self.network.pop_front() else { return false };
        let (from, to) = (m.from, m.to);
        let snapshot = is_snapshot_transfer(&m);
        let arrived = self.nodes.contains_key(&to);
        if arrived {
            self.receive(m);
        }
        // The leader's runtime learns how the transfer went.
        if let (true, Some(leader)) = (snapshot, self.nodes.get_mut(&from)) {
            if arrived {
                leader.handle_snapshot_sent(to);
            } else {
                leader.handle_snapshot_failed(to);
            }
            self.drain(from);
        }
        true
    }

    /// Delivers messages until the network is quiet.
    pub fn deliver_all(&mut self) {
        let held = self.deliver_except(|_| false);
        debug_assert!(held.is_empty());
    }

    /// Delivers messages until the network is quiet, except those for which
    /// `hold` is true: they are returned, in sending order, undelivered.
    pub fn deliver_except(&mut self, hold: impl Fn(&Message) -> bool) -> Vec<Message> {
        self.drain_all();
        let mut held = Vec::new();
        let mut budget = 100_000;
        while let Some(m) = self.network.front() {
            if hold(m) {
                held.push(self.network.pop_front().expect("front exists"));
            } else {
                self.deliver_one();
            }
            budget -= 1;
            assert!(budget > 0, "livelock: the network never went quiet");
        }
        held
    }

    /// Advances time to the earliest deadline and fires it.
    pub fn tick(&mut self) {
        let next =
            self.nodes.values().filter_map(|n| n.poll_timeout()).min().expect("some node has a deadline");
        self.now = self.now.max(next);
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            let node = self.nodes.get_mut(&id).unwrap();
            if node.poll_timeout().is_some_and(|d| d <= self.now) {
                node.handle_timeout(self.now);
                self.drain(id);
            }
        }
    }

    /// Advances virtual time by `d`, firing every deadline on the way and
    /// delivering messages after each.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        self.deliver_all();
        let mut budget = 1_000_000;
        loop {
            let next = self.nodes.values().filter_map(|n| n.poll_timeout()).min();
            match next {
                Some(t) if t <= end => {
                    self.tick();
                    self.deliver_all();
                }
                _ => break,
            }
            budget -= 1;
            assert!(budget > 0, "livelock: deadlines never stop");
        }
        self.now = end;
    }

    /// Runs until some node is leader, for at most `bound` of virtual time.
    pub fn elect(&mut self, bound: Duration) -> NodeId {
        let end = self.now + bound;
        while self.now < end {
            if let Some(l) = self.leader() {
                return l;
            }
            self.tick();
            self.deliver_all();
        }
        self.leader().expect("no leader elected within the bound")
    }

    /// The unique leader of the highest term, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.nodes.values().filter(|n| n.role() == Role::Leader).max_by_key(|n| n.term()).map(|n| n.id())
    }

    /// Asserts that exactly one node leads, that every node is in its term
    /// and follows it, and returns it.
    pub fn assert_single_leader(&self) -> NodeId {
        let leaders: Vec<NodeId> =
            self.nodes.values().filter(|n| n.role() == Role::Leader).map(|n| n.id()).collect();
        assert_eq!(leaders.len(), 1, "leaders: {leaders:?}");
        let leader = leaders[0];
        let term = self.nodes[&leader].term();
        for n in self.nodes.values() {
            assert_eq!(n.term(), term, "{} is in {:?}, the leader {leader} in {term:?}", n.id(), n.term());
            assert_eq!(n.leader(), Some(leader), "{} follows {:?}, not {leader}", n.id(), n.leader());
        }
        leader
    }

    pub fn commit_of(&self, id: u64) -> LogIndex {
        self.node(id).commit_index()
    }

    /// Proposes `data` at node `id` and drains it.
    pub fn propose(&mut self, id: u64, data: &[u8]) -> Result<LogIndex, ProposeError> {
        let now = self.now;
        let result = self.node_mut(id).propose(now, Bytes::copy_from_slice(data));
        self.drain(NodeId(id));
        result.map(|p| p.index().expect("harness nodes do not forward proposals unless a test turns it on"))
    }

    /// The indexes node `id` applied, in order.
    pub fn applied_indexes(&self, id: u64) -> Vec<u64> {
        self.applied[&NodeId(id)].iter().map(|e| e.index.0).collect()
    }

    /// The messages sent since `mark` (a former `sent.len()`) matching `pred`.
    pub fn sent_since(&self, mark: usize, pred: impl Fn(&Message) -> bool) -> Vec<&Message> {
        self.sent[mark..].iter().filter(|m| pred(m)).collect()
    }

    /// Asks node `id` for a read and drains it.
    pub fn read(&mut self, id: u64, ctx: u64) -> Result<(), ReadError> {
        let now = self.now;
        let result = self.node_mut(id).read_index(now, ctx);
        self.drain(NodeId(id));
        result
    }

    /// The reads node `id` answered so far, in order.
    pub fn reads_of(&self, id: u64) -> &[ReadReady] {
        &self.reads[&NodeId(id)]
    }

    /// The answer node `id` gave to read `ctx`, if any; panics if it
    /// answered it twice.
    pub fn read_result(&self, id: u64, ctx: u64) -> Option<Result<LogIndex, ReadError>> {
        let answers: Vec<_> = self.reads_of(id).iter().filter(|r| r.ctx == ctx).collect();
        assert!(answers.len() <= 1, "node {id} answered read {ctx} more than once: {answers:?}");
        answers.first().map(|r| r.result)
    }

    /// The events node `id` reported so far, in order.
    pub fn events_of(&self, id: u64) -> &[Event] {
        &self.events[&NodeId(id)]
    }

    /// Forgets the events reported so far, so that a test sees only its own.
    pub fn clear_events(&mut self) {
        self.events.values_mut().for_each(Vec::clear);
    }

    /// Stops handing node `id`'s committed entries to its application.
    pub fn pause_apply(&mut self, id: u64) {
        self.apply_paused.insert(NodeId(id));
    }

    /// Applies everything node `id` has committed and keeps applying.
    pub fn resume_apply(&mut self, id: u64) {
        self.apply_paused.remove(&NodeId(id));
        self.drain(NodeId(id));
    }

    /// Applies the next committed entry of node `id` (whose application is
    /// paused), or restores the snapshot it was asked to first, and drains
    /// it. Returns the index applied, if any.
    pub fn apply_next(&mut self, id: u64) -> Option<LogIndex> {
        let nid = NodeId(id);
        let node = self.nodes.get_mut(&nid).unwrap();
        let index = if let Some(meta) = self.pending_installs.get_mut(&nid).and_then(|q| q.pop_front()) {
            let index = meta.index;
            Self::install(node, &mut self.app_applied, &mut self.installs, meta);
            index
        } else {
            let e = node.poll_apply()?;
            let index = e.index;
            Self::apply(node, &mut self.app_applied, &mut self.applied, e);
            index
        };
        self.drain(nid);
        Some(index)
    }

    /// Advances time deadline by deadline, delivering nothing, until node
    /// `id` sends heartbeats (starts a confirmation round). The heartbeats
    /// stay in the network.
    pub fn tick_until_heartbeat(&mut self, id: u64) {
        for _ in 0..1000 {
            let mark = self.sent.len();
            self.tick();
            if !self.sent_since(mark, |m| m.from == NodeId(id) && is_heartbeat(m)).is_empty() {
                return;
            }
        }
        panic!("node {id} never sent a heartbeat");
    }

    /// Reports node `id`'s pending writes durable and drains it, leaving its
    /// disk stalled for the writes that follow.
    pub fn sync(&mut self, id: u64) {
        let nid = NodeId(id);
        let now = self.now;
        let disk = self.disks.get_mut(&nid).unwrap();
        let mut last = None;
        for p in self.pending_writes.get_mut(&nid).map(|w| w.drain(..)).into_iter().flatten() {
            disk.write(&p);
            last = Some(p.id);
        }
        if let Some(last) = last {
            self.nodes.get_mut(&nid).unwrap().handle_persisted(now, last);
        }
        self.drain(nid);
    }

    /// Stops reporting node `id`'s writes durable.
    pub fn stall(&mut self, id: u64) {
        self.stalled.insert(NodeId(id));
    }

    /// Reports node `id`'s pending writes durable and drains it.
    pub fn unstall(&mut self, id: u64) {
        self.stalled.remove(&NodeId(id));
        self.drain(NodeId(id));
    }

    /// Crashes node `id` (its writes not yet durable are lost) and starts it
    /// again from its disk, with the application at `applied`, and with a
    /// disk that works.
    ///
    /// Like the runtime's start, the stored log is first made to continue the
    /// newest stored snapshot.
    pub fn restart(&mut self, id: u64, applied: LogIndex) {
        self.restart_with(id, applied, LogIndex(0));
    }

    /// [`Cluster::restart`] with the application at 0, as storage restarts
    /// a node whose log ends below its commit floor, `repair_to`.
    pub fn restart_repairing(&mut self, id: u64, repair_to: LogIndex) {
        self.restart_with(id, LogIndex(0), repair_to);
    }

    fn restart_with(&mut self, id: u64, applied: LogIndex, repair_to: LogIndex) {
        let id = NodeId(id);
        self.stalled.remove(&id);
        let config = self.nodes[&id].config().clone();
        self.pending_writes.remove(&id);
        self.pending_installs.remove(&id);
        let disk = self.disks.get_mut(&id).unwrap();
        if let Some(s) = disk.snapshot.clone().filter(|s| s.index > disk.base.0) {
            disk.continue_snapshot(s.index, s.term);
        }
        assert_eq!(disk.snapshot.as_ref().map_or(LogIndex(0), |s| s.index), disk.base.0);
        let state = RecoveredState {
            hard_state: disk.hard_state,
            snapshot: disk.snapshot.clone(),
            entries: disk.entries.clone(),
            applied,
            incarnation: self.nodes[&id].incarnation(),
            repair_to,
        };
        let node = Node::with_membership(config, self.bootstrap[&id].clone(), state, self.now)
            .expect("restart from a valid disk");
        self.nodes.insert(id, node);
        self.applied.insert(id, Vec::new());
        self.installs.insert(id, Vec::new());
        self.app_applied.insert(id, applied);
        self.drain(id);
    }

    /// Replaces node `id`'s disk by an empty one and starts it again, as an
    /// operator would who lost the disk and kept the command line: the
    /// same id, a new incarnation (`incarnation`), nothing stored, and no
    /// configuration to bootstrap with (it waits to be fed by a leader).
    pub fn wipe(&mut self, id: u64, incarnation: Incarnation) {
        let id = NodeId(id);
        let config = self.nodes[&id].config().clone();
        self.stalled.remove(&id);
        self.pending_writes.remove(&id);
        self.pending_installs.remove(&id);
        self.disks.insert(id, Disk::default());
        self.bootstrap.insert(id, Membership::default());
        let state = RecoveredState { incarnation, ..RecoveredState::default() };
        let node =
            Node::with_membership(config, Membership::default(), state, self.now).expect("a fresh node");
        self.nodes.insert(id, node);
        self.applied.insert(id, Vec::new());
        self.installs.insert(id, Vec::new());
        self.app_applied.insert(id, LogIndex(0));
        self.drain(id);
    }

    /// Asks node `id` for a membership change and drains it.
    pub fn change_membership(
        &mut self,
        id: u64,
        change: MembershipChange,
    ) -> Result<LogIndex, MembershipChangeError> {
        let now = self.now;
        let result = self.node_mut(id).change_membership(now, change);
        self.drain(NodeId(id));
        result
    }

    /// Has node `id`'s application snapshot its state now (at its applied
    /// index), as for a `Take`, and drains it. Returns what it took.
    pub fn take_snapshot(&mut self, id: u64) -> SnapshotMeta {
        let nid = NodeId(id);
        let node = self.nodes.get_mut(&nid).unwrap();
        let meta = take_snapshot_of(node, self.disks.get_mut(&nid).unwrap());
        self.snapshots_taken.get_mut(&nid).unwrap().push(meta.clone());
        self.drain(nid);
        meta
    }

    /// Cuts both directions between `a` and every other node.
    pub fn isolate(&mut self, a: u64) {
        for &b in self.nodes.keys() {
            if b != NodeId(a) {
                self.cut.insert((NodeId(a), b));
                self.cut.insert((b, NodeId(a)));
            }
        }
    }

    /// Cuts both directions between `a` and `b`.
    pub fn cut_both(&mut self, a: u64, b: u64) {
        self.cut.insert((NodeId(a), NodeId(b)));
        self.cut.insert((NodeId(b), NodeId(a)));
    }

    pub fn heal(&mut self) {
        self.cut.clear();
    }
}
