//! A test cluster of cores in one thread: messages are delivered by a loop,
//! writes are durable the moment they are handed out (unless a node's disk is
//! "stalled"), and time jumps to the next deadline instead of sleeping.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use crate::config::Config;
use crate::core::{Node, Persist, RecoveredState, Role};
use crate::message::Message;
use crate::types::{Entry, HardState, Instant, LogIndex, NodeId};

/// What a test node has made durable.
#[derive(Clone, Debug, Default)]
pub struct Disk {
    pub hard_state: HardState,
    pub entries: Vec<Entry>,
}

impl Disk {
    pub fn write(&mut self, p: &Persist) {
        if let Some(first) = p.entries.first() {
            self.entries.truncate(first.index.0 as usize - 1);
            self.entries.extend(p.entries.iter().cloned());
        }
        if let Some(hs) = p.hard_state {
            self.hard_state = hs;
        }
    }
}

pub struct Cluster {
    pub now: Instant,
    pub nodes: BTreeMap<NodeId, Node>,
    pub disks: BTreeMap<NodeId, Disk>,
    /// Writes handed out but not yet reported durable, per stalled node.
    pub pending_writes: BTreeMap<NodeId, Vec<Persist>>,
    /// Nodes whose writes are not reported durable until unstalled.
    pub stalled: BTreeSet<NodeId>,
    /// Messages in flight, in sending order.
    pub network: VecDeque<Message>,
    /// Directed links that drop everything: (from, to).
    pub cut: BTreeSet<(NodeId, NodeId)>,
    /// Entries applied, per node.
    pub applied: BTreeMap<NodeId, Vec<Entry>>,
}

pub fn ids(n: u64) -> Vec<NodeId> {
    (1..=n).map(NodeId).collect()
}

pub fn config(id: NodeId) -> Config {
    let mut c = Config::new(id);
    c.seed = id.0 * 7919;
    c
}

impl Cluster {
    /// A cluster of `n` fresh nodes with default test configs.
    pub fn new(n: u64) -> Cluster {
        Cluster::with_config(n, |_| {})
    }

    pub fn with_config(n: u64, tweak: impl Fn(&mut Config)) -> Cluster {
        let voters = ids(n);
        let mut nodes = BTreeMap::new();
        for &id in &voters {
            let mut c = config(id);
            tweak(&mut c);
            nodes.insert(id, Node::new(c, &voters, RecoveredState::default(), Instant::ZERO).unwrap());
        }
        Cluster {
            now: Instant::ZERO,
            disks: voters.iter().map(|&id| (id, Disk::default())).collect(),
            nodes,
            pending_writes: BTreeMap::new(),
            stalled: BTreeSet::new(),
            network: VecDeque::new(),
            cut: BTreeSet::new(),
            applied: voters.iter().map(|&id| (id, Vec::new())).collect(),
        }
    }

    pub fn node(&self, id: u64) -> &Node {
        &self.nodes[&NodeId(id)]
    }

    pub fn node_mut(&mut self, id: u64) -> &mut Node {
        self.nodes.get_mut(&NodeId(id)).unwrap()
    }

    /// Drains one node's outputs: writes, messages, entries to apply.
    pub fn drain(&mut self, id: NodeId) {
        let now = self.now;
        loop {
            let node = self.nodes.get_mut(&id).unwrap();
            let mut progressed = false;
            while let Some(p) = node.poll_persist() {
                progressed = true;
                self.disks.get_mut(&id).unwrap().write(&p);
                self.pending_writes.entry(id).or_default().push(p);
            }
            if !self.stalled.contains(&id) {
                if let Some(last) = self.pending_writes.get_mut(&id).and_then(|w| w.drain(..).last()) {
                    node.handle_persisted(now, last.id);
                    progressed = true;
                }
            }
            while let Some(m) = node.poll_send() {
                progressed = true;
                if !self.cut.contains(&(m.from, m.to)) {
                    self.network.push_back(m);
                }
            }
            while let Some(e) = node.poll_apply() {
                progressed = true;
                node.handle_applied(e.index);
                self.applied.get_mut(&id).unwrap().push(e);
            }
            while node.poll_event().is_some() {}
            node.check_invariants();
            if !progressed {
                break;
            }
        }
    }

    pub fn drain_all(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.drain(id);
        }
    }

    /// Delivers one message, if any. Returns whether one was delivered.
    pub fn deliver_one(&mut self) -> bool {
        let Some(m) = self.network.pop_front() else { return false };
        let to = m.to;
        if let Some(node) = self.nodes.get_mut(&to) {
            node.handle_message(self.now, m);
            self.drain(to);
        }
        true
    }

    /// Delivers messages until the network is quiet, at most `limit` of them.
    pub fn deliver_all(&mut self) {
        self.drain_all();
        let mut budget = 100_000;
        while self.deliver_one() {
            budget -= 1;
            assert!(budget > 0, "livelock: the network never went quiet");
        }
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

    pub fn commit_of(&self, id: u64) -> LogIndex {
        self.node(id).commit_index()
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

    pub fn heal(&mut self) {
        self.cut.clear();
    }
}
