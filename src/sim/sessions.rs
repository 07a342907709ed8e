//! Exactly-once sessions in the simulated world: a few clients open
//! sessions and propose numbered commands, proposing the outstanding one
//! again (same session, same seq) whenever they act before its answer came
//! back, as a client does after an unknown outcome. One client keeps
//! several commands in flight (a window, as the runtime does with its
//! node's session) and sends any of them again, in any order. Each node's application
//! sends session entries through its own [`SessionTable`], kept in its
//! snapshots (encoded and decoded), next to a model of what it applied.
//!
//! The checker asserts that no node applies a `(session, seq)` twice, that
//! every node gives the same reply to the same entry (expiry by log time is
//! the same everywhere), and, at the end, that every command some node
//! applied is applied on every node that got that far.

use std::collections::{BTreeMap, BTreeSet};

use super::{Checker, World};
use crate::rng::Rng;
use crate::session::{Envelope, Reply, SessionId, SessionRefusal, SessionTable};
use crate::types::{Bytes, Entry, EntryKind, LogIndex, NodeId};

/// The prefix of a session entry's data in the simulator, followed by the
/// client's number and the session envelope (as the runtime puts its
/// request envelope in front). Other proposals start with a small counter.
const MARK: &[u8; 8] = b"oar-sess";
/// Clients with sessions; the first keeps a window of commands in flight.
const CLIENTS: u64 = 3;
/// Commands the window client keeps in flight at most.
const WINDOW: usize = 4;

/// A client of the workload.
#[derive(Clone, Debug, Default)]
pub(super) struct SimClient {
    session: Option<SessionId>,
    /// The last seq taken; 0 before the first.
    seq: u64,
    /// Whether `seq` got its answer.
    answered: bool,
    /// For the window client: the commands sent and not yet answered.
    in_flight: BTreeSet<u64>,
}

/// What a client learns when a node applies one of its entries.
#[derive(Clone, Debug)]
pub(super) enum Observed {
    Opened { client: u64, session: SessionId },
    Answered { client: u64, session: SessionId, seq: u64 },
    Expired { client: u64, session: SessionId },
    Stale { client: u64, session: SessionId, seq: u64 },
}

/// One node's application state for sessions.
#[derive(Clone, Debug, Default)]
pub(super) struct AppSessions {
    table: SessionTable,
    /// Every `(session, seq)` this application state applied: the model a
    /// double apply is caught against.
    applied: BTreeSet<(SessionId, u64)>,
}

/// What a snapshot keeps of [`AppSessions`]: the table as the runtime
/// writes it, and the model.
#[derive(Clone, Debug)]
pub(super) struct SessionsSnapshot {
    table: Vec<u8>,
    applied: BTreeSet<(SessionId, u64)>,
}

/// What the checker remembers of sessions across nodes.
#[derive(Debug, Default)]
pub(crate) struct SessionCheck {
    /// The reply the first node to apply each session entry gave.
    replies: BTreeMap<LogIndex, Reply>,
    /// Where each `(session, seq)` was first applied.
    first_applied: BTreeMap<(SessionId, u64), LogIndex>,
    pub(crate) commands_applied: u64,
    pub(crate) retries_answered: u64,
    pub(crate) refused: u64,
}

impl AppSessions {
    pub(super) fn snapshot(&self) -> SessionsSnapshot {
        let mut table = Vec::new();
        self.table.encode(&mut table);
        SessionsSnapshot { table, applied: self.applied.clone() }
    }

    /// The state a snapshot holds; `None` if its table does not decode (a
    /// violation: the table writes what it cannot read).
    pub(super) fn restore(snapshot: &SessionsSnapshot) -> Option<AppSessions> {
        let table = SessionTable::decode(&snapshot.table).ok()?;
        Some(AppSessions { table, applied: snapshot.applied.clone() })
    }

    /// Applies `entry` if it is a session entry of the workload; returns
    /// what its client learns.
    pub(super) fn apply(&mut self, id: NodeId, entry: &Entry, checker: &mut Checker) -> Option<Observed> {
        if entry.kind != EntryKind::Command {
            return None;
        }
        let rest = entry.data.strip_prefix(&MARK[..])?;
        let (client, data) = rest.split_first_chunk::<8>()?;
        let client = u64::from_le_bytes(*client);
        let index = entry.index;
        let key = match Envelope::decode(data) {
            Ok(Envelope::Command { session, seq, .. }) => Some((session, seq)),
            Ok(_) => None,
            Err(e) => {
                checker.fail("sessions", format!("{id}: session entry {index} does not decode: {e}"));
                return None;
            }
        };
        let mut new = false;
        // Every node answers with the index of the first apply, so that a
        // retry answered from a table that diverged would show.
        let reply = self.table.apply_entry(index, data, |_| {
            new = true;
            Ok::<_, std::convert::Infallible>(index.0.to_le_bytes().to_vec())
        });
        let reply = match reply {
            Ok(reply) => reply,
            Err(e) => {
                checker.fail("sessions", format!("{id}: session entry {index} not applied: {e:?}"));
                return None;
            }
        };
        self.table.check_invariants();
        if let (true, Some((session, seq))) = (new, key) {
            if !self.applied.insert((session, seq)) {
                checker.fail("sessions", format!("{id} applied {session} seq {seq} twice, again at {index}"));
            }
            checker.sessions.first_applied.entry((session, seq)).or_insert(index);
            checker.sessions.commands_applied += 1;
        } else if matches!(reply, Reply::Answer(_)) {
            checker.sessions.retries_answered += 1;
        }
        match checker.sessions.replies.get(&index) {
            None => {
                checker.sessions.replies.insert(index, reply.clone());
            }
            Some(first) if *first == reply => {}
            Some(first) => {
                let detail = format!("{id} replied {reply:?} to entry {index}, another node {first:?}");
                checker.fail("sessions", detail);
            }
        }
        match (reply, key) {
            (Reply::Opened(session), _) => Some(Observed::Opened { client, session }),
            (Reply::Answer(_), Some((session, seq))) => Some(Observed::Answered { client, session, seq }),
            (Reply::Refused { session, refusal: SessionRefusal::Expired }, _) => {
                checker.sessions.refused += 1;
                Some(Observed::Expired { client, session })
            }
            (Reply::Refused { session, refusal: SessionRefusal::Stale { .. } }, Some((_, seq))) => {
                checker.sessions.refused += 1;
                Some(Observed::Stale { client, session, seq })
            }
            (Reply::Refused { .. }, _) => {
                checker.sessions.refused += 1;
                None
            }
            (Reply::Answer(_), None) => None,
        }
    }
}

/// The clients' own random stream, so that sessions change the rest of a
/// seed's run as little as they can.
pub(super) fn client_rng(seed: u64) -> Rng {
    Rng::new(seed ^ 0x5e55_1075_c0ff_ee00)
}

pub(super) fn new_clients() -> Vec<SimClient> {
    vec![SimClient::default(); CLIENTS as usize]
}

impl World {
    /// One client acts, now and then: opens a session, proposes its next
    /// command, or proposes its outstanding one again.
    pub(super) fn session_step(&mut self) {
        self.observe_sessions();
        if !self.client_rng.chance(1, 3) {
            return;
        }
        let k = self.client_rng.below(CLIENTS);
        let now_ms = self.now.as_nanos() / 1_000_000;
        let ttl_ms = self.client_rng.range(200, 5_000);
        let client = &mut self.clients[k as usize];
        let mut data = MARK.to_vec();
        data.extend_from_slice(&k.to_le_bytes());
        match client.session {
            None => Envelope::Open { proposer_time_ms: now_ms, ttl_ms }.encode(&mut data),
            Some(session) if k == 0 => {
                // A new command while the window has room (now and then),
                // else a copy of one in flight.
                let fresh = client.in_flight.len() < WINDOW && self.client_rng.chance(1, 2);
                let seq = if fresh || client.in_flight.is_empty() {
                    client.seq += 1;
                    client.in_flight.insert(client.seq);
                    client.seq
                } else {
                    let pick = self.client_rng.below(client.in_flight.len() as u64) as usize;
                    *client.in_flight.iter().nth(pick).expect("a command in flight")
                };
                let floor = client.in_flight.first().copied().unwrap_or(seq).min(seq);
                let command =
                    Envelope::Command { session, seq, floor, proposer_time_ms: now_ms, command: b"+1" };
                command.encode(&mut data);
            }
            Some(session) => {
                if client.answered {
                    client.seq += 1;
                    client.answered = false;
                }
                let command = Envelope::Command {
                    session,
                    seq: client.seq,
                    floor: client.seq,
                    proposer_time_ms: now_ms,
                    command: b"+1",
                };
                command.encode(&mut data);
            }
        }
        let id = self.ids[self.client_rng.below(self.ids.len() as u64) as usize];
        self.propose_at(id, Bytes::from(data), true);
    }

    /// Hands the clients what the nodes' applications answered.
    fn observe_sessions(&mut self) {
        let observed: Vec<Observed> =
            self.nodes.values_mut().flat_map(|n| n.session_replies.drain(..)).collect();
        for seen in observed {
            match seen {
                Observed::Opened { client, session } => {
                    let c = &mut self.clients[client as usize];
                    if c.session.is_none() {
                        *c = SimClient {
                            session: Some(session),
                            seq: 0,
                            answered: true,
                            ..SimClient::default()
                        };
                    }
                }
                Observed::Answered { client, session, seq } => {
                    let c = &mut self.clients[client as usize];
                    if c.session == Some(session) && c.seq == seq {
                        c.answered = true;
                    }
                    if c.session == Some(session) {
                        c.in_flight.remove(&seq);
                    }
                }
                Observed::Stale { client, session, seq } => {
                    let c = &self.clients[client as usize];
                    if c.session == Some(session) && c.in_flight.contains(&seq) {
                        let detail =
                            format!("client {client}: {session} seq {seq} refused while it waits for it");
                        self.checker.fail("sessions", detail);
                    }
                }
                Observed::Expired { client, session } => {
                    let c = &mut self.clients[client as usize];
                    if c.session == Some(session) {
                        *c = SimClient::default();
                    }
                }
            }
        }
    }

    /// At the end of a run: every command some node applied is applied on
    /// every node whose application got that far.
    pub(super) fn check_sessions_applied(&mut self) {
        let World { nodes, checker, .. } = self;
        for (&id, sim) in nodes.iter() {
            let missing =
                checker.sessions.first_applied.iter().find(|(key, &index)| {
                    index <= sim.app_applied && !sim.app_sessions.applied.contains(key)
                });
            if let Some(((session, seq), index)) = missing {
                let detail = format!(
                    "{id} applied up to {} but not {session} seq {seq}, applied elsewhere at {index}",
                    sim.app_applied
                );
                checker.fail("sessions", detail);
                return;
            }
        }
    }
}
