//! Three real cores exchanging honest messages, plus a hostile or buggy
//! peer: the fuzzer's bytes are a script of steps, and among them are
//! messages no honest node would send, made by replaying an earlier honest
//! message with its term, indexes, commit index or entries' terms bent, or
//! decoded straight from the bytes (any well-formed message, any sender).
//! After every step every core must still satisfy its own invariants
//! (`check_invariants`), and none may panic.
//!
//! Each step takes one byte: its low three bits pick the action (deliver
//! the next honest message, fire the earliest deadline, propose, report
//! writes durable, replay a bent message, decode a message, ask a read),
//! the rest and the bytes after parametrise it. Writes become durable only
//! when a step says so, so acknowledgements wait as on a slow disk.
#![no_main]

use std::collections::VecDeque;

use libfuzzer_sys::fuzz_target;
use oar::codec::decode_message;
use oar::message::{AppendEntries, AppendEntriesResponse, MessageBody};
use oar::{Bytes, Config, Entry, Instant, LogIndex, Message, Node, NodeId, RecoveredState, Term};

const NODES: u64 = 3;
/// Earlier honest messages kept for replays.
const HISTORY: usize = 64;
/// Steps per input, so that an input's run time stays bounded.
const STEPS_MAX: usize = 2_000;

struct Cluster {
    nodes: Vec<Node>,
    /// Honest messages in flight, oldest first.
    network: VecDeque<Message>,
    history: VecDeque<Message>,
    /// Writes handed out per node and not yet reported durable.
    writes: Vec<Vec<oar::PersistId>>,
    now: Instant,
}

impl Cluster {
    fn new() -> Cluster {
        let voters: Vec<NodeId> = (1..=NODES).map(NodeId).collect();
        let nodes = voters
            .iter()
            .map(|&id| {
                let mut config = Config::new(id);
                config.message_bytes_max = 256;
                config.entry_bytes_max = 200;
                config.snapshot_entries = 0;
                Node::new(config, &voters, RecoveredState::default(), Instant::ZERO).expect("a valid node")
            })
            .collect();
        Cluster {
            nodes,
            network: VecDeque::new(),
            history: VecDeque::new(),
            writes: vec![Vec::new(); NODES as usize],
            now: Instant::ZERO,
        }
    }

    /// Takes every output of every node: writes wait to be reported,
    /// messages go on the network, entries are applied at once.
    fn drain(&mut self) {
        for (k, node) in self.nodes.iter_mut().enumerate() {
            while let Some(p) = node.poll_persist() {
                self.writes[k].push(p.id);
            }
            while let Some(m) = node.poll_send() {
                if self.history.len() == HISTORY {
                    self.history.pop_front();
                }
                self.history.push_back(m.clone());
                self.network.push_back(m);
            }
            while let Some(e) = node.poll_apply() {
                node.handle_applied(e.index);
            }
            while node.poll_read_ready().is_some() {}
            while node.poll_event().is_some() {}
            while node.poll_snapshot().is_some() {}
        }
    }

    fn deliver(&mut self, msg: Message) {
        let Some(node) = msg.to.0.checked_sub(1).and_then(|k| self.nodes.get_mut(k as usize)) else { return };
        node.handle_message(self.now, msg);
    }

    fn check(&self) {
        for node in &self.nodes {
            node.check_invariants();
        }
    }
}

/// Moves `value` by a small signed amount taken from `b`.
fn bend(value: u64, b: u8) -> u64 {
    let delta = u64::from(b % 8);
    if b & 0x80 == 0 {
        value.saturating_add(delta)
    } else {
        value.saturating_sub(delta)
    }
}

/// An honest message, bent as the bytes say.
fn bent(mut msg: Message, bytes: &mut impl Iterator<Item = u8>) -> Message {
    let mut next = || bytes.next().unwrap_or(0);
    msg.term = Term(bend(msg.term.0, next()));
    msg.to = NodeId(u64::from(next() % NODES as u8) + 1);
    match &mut msg.body {
        MessageBody::AppendEntries(AppendEntries { prev_log_index, prev_log_term, entries, leader_commit }) => {
            *prev_log_index = LogIndex(bend(prev_log_index.0, next()));
            *prev_log_term = Term(bend(prev_log_term.0, next()));
            *leader_commit = LogIndex(bend(leader_commit.0, next()).max(leader_commit.0 * u64::from(next() & 1)));
            let shift = next();
            let first = prev_log_index.next();
            // Entries stay consecutive after the (bent) previous index, as
            // the decoder requires of any message; their terms may lie.
            let fixed: Vec<Entry> = entries
                .iter()
                .enumerate()
                .map(|(k, e)| Entry {
                    index: first.plus(k as u64),
                    term: Term(bend(e.term.0, shift).max(prev_log_term.0)),
                    kind: e.kind,
                    data: e.data.clone(),
                })
                .collect();
            *entries = fixed;
        }
        MessageBody::AppendEntriesResponse(AppendEntriesResponse::Accepted { match_index }) => {
            *match_index = LogIndex(bend(match_index.0, next()));
        }
        MessageBody::Heartbeat(hb) => {
            hb.commit = LogIndex(bend(hb.commit.0, next()));
            hb.commit_term = Term(bend(hb.commit_term.0, next()));
        }
        _ => {}
    }
    msg
}

fuzz_target!(|data: &[u8]| {
    let mut c = Cluster::new();
    let mut bytes = data.iter().copied();
    let mut steps = 0;
    let mut payload = 0u64;
    c.nodes[0].campaign(c.now);
    c.drain();
    while let Some(op) = bytes.next() {
        steps += 1;
        if steps > STEPS_MAX {
            break;
        }
        match op & 7 {
            0 | 1 => {
                if let Some(msg) = c.network.pop_front() {
                    c.deliver(msg);
                }
            }
            2 => {
                let next = c.nodes.iter().filter_map(|n| n.poll_timeout()).min();
                if let Some(next) = next {
                    c.now = c.now.max(next);
                    for node in &mut c.nodes {
                        if node.poll_timeout().is_some_and(|d| d <= c.now) {
                            node.handle_timeout(c.now);
                        }
                    }
                }
            }
            3 => {
                payload += 1;
                let k = usize::from(op >> 3) % NODES as usize;
                let _ = c.nodes[k].propose(c.now, Bytes::copy_from_slice(&payload.to_le_bytes()));
            }
            4 => {
                let k = usize::from(op >> 3) % NODES as usize;
                for id in std::mem::take(&mut c.writes[k]) {
                    c.nodes[k].handle_persisted(c.now, id);
                }
            }
            5 => {
                let Some(pick) = bytes.next() else { break };
                if let Some(msg) = c.history.get(usize::from(pick) % c.history.len().max(1)).cloned() {
                    let msg = bent(msg, &mut bytes);
                    c.deliver(msg);
                }
            }
            6 => {
                let len = usize::from(bytes.next().unwrap_or(0));
                let body: Vec<u8> = bytes.by_ref().take(len).collect();
                if let Ok(mut msg) = decode_message(&Bytes::from(body)) {
                    msg.to = NodeId(u64::from(op >> 3) % NODES + 1);
                    c.deliver(msg);
                }
            }
            _ => {
                let k = usize::from(op >> 3) % NODES as usize;
                let _ = c.nodes[k].read_index(c.now, u64::from(op));
            }
        }
        c.drain();
        c.check();
    }
});
