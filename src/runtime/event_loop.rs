//! The event-loop thread: owns the core and every socket, and is the only
//! thread that touches the core.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use log::{debug, error, info};
use mio::{Events, Poll, Waker};

use super::apply::{self, FromApply, ToApply};
use super::bootstrap::{check_peers, ever_member, peer_addresses, Bootstrap};
use super::clock::Clock;
use super::error::{propose_error, read_error};
use super::log_writer::{self, FromWriter, ToWriter};
use super::pending::Pending;
use super::resend::Resender;
use super::snapshot_send::{read_chunk, Transfer, RESEND_AFTER};
use super::snapshots::Snapshots;
use super::transport::{Transport, TransportConfig, WAKER};
use super::{
    first_request_id, Completion, Counters, Handle, Peer, Request, RequestError, RuntimeConfig, Shared,
    StartError, StateMachine, StopReason, Unanswered,
};
use crate::codec::PeerState;
use crate::core::{
    MembershipChangeError, Node, ProposeError, ReadError, RecoveredState, Role, SnapshotAction,
};
use crate::membership::{Membership, SnapshotMeta};
use crate::message::{Message, MessageBody, SnapshotAck, SnapshotChunk};
use crate::storage::{new_incarnation, open_identity, open_node, RealFs};
use crate::types::{Entry, Instant, LogIndex, NodeId, Term};

/// Requests taken from the queue per turn of the loop, so that a flood of
/// callers cannot hold off timers and peers.
const REQUESTS_PER_TURN: usize = 4096;
/// Capacity of the callers' queue; a full queue blocks callers, which is the
/// backpressure a closed-loop client feels.
const REQUEST_QUEUE_CAPACITY: usize = 8192;
/// Readiness events taken per `poll`.
const EVENTS_CAPACITY: usize = 1024;

pub(crate) fn start<S: StateMachine>(
    config: RuntimeConfig,
    data_dir: PathBuf,
    peers: &[Peer],
    listener: Option<std::net::TcpListener>,
    state_machine: S,
) -> Result<Handle, StartError> {
    let id = config.raft.id;
    let (wal, store, recovered) =
        open_node(&data_dir, config.wal, config.snapshots).map_err(StartError::Storage)?;
    if let Some(torn) = &recovered.torn_tail {
        info!(
            "{id}: {} had a torn tail (a crash mid-write): cut at offset {}, {} bytes discarded ({})",
            torn.path.display(),
            torn.offset,
            torn.discarded_bytes,
            torn.reason
        );
    }
    let has_state =
        recovered.hard_state.term > Term(0) || !recovered.entries.is_empty() || recovered.snapshot.is_some();
    let identity =
        open_identity(&RealFs, &data_dir, id, &config.cluster_id, has_state).map_err(StartError::Storage)?;
    let clock = Clock::new();
    let now = clock.now();
    // The state machine starts empty: the core asks for the snapshot, if
    // any, to be restored first, then hands out the entries after it. The
    // configuration comes from the log: its first entry, written when the
    // cluster was bootstrapped (see `Bootstrap`), or later ones.
    let was_member = ever_member(id, recovered.snapshot.as_ref(), &recovered.entries);
    let state = RecoveredState {
        hard_state: recovered.hard_state,
        snapshot: recovered.snapshot,
        entries: recovered.entries,
        applied: LogIndex(0),
        incarnation: identity.incarnation,
        repair_to: recovered.repair_to,
    };
    let mut raft = config.raft.clone();
    // A fresh draw at every start: the core numbers what it must tell apart
    // from a previous life's (forwarded reads) from its seed.
    raft.seed ^= new_incarnation().0;
    let node = Node::with_membership(raft, Membership::default(), state, now).map_err(StartError::Core)?;
    if config.peers_are_voters {
        if let Err(given) = check_peers(id, node.membership(), peers) {
            let stored = Box::new(node.membership().clone());
            return Err(StartError::PeersDiffer { data_dir: data_dir.clone(), stored, given });
        }
    }
    let bootstrap = (config.bootstrap && node.last_index() == LogIndex(0) && node.term() == Term(0))
        .then(|| Bootstrap::new(id, peers));
    let bootstrap_membership = Membership::default();
    let snapshots = Arc::new(Snapshots::new(store));

    let poll = Poll::new().map_err(StartError::Thread)?;
    let waker = Waker::new(poll.registry(), WAKER).map_err(StartError::Thread)?;
    let listen: SocketAddr = peers.iter().find(|p| p.id == id).expect("validated: this node is a peer").addr;
    let address_book: Vec<(NodeId, SocketAddr)> =
        peers.iter().filter(|p| p.id != id).map(|p| (p.id, p.addr)).collect();
    let others = peer_addresses(node.membership(), &address_book, id);
    let transport_config = TransportConfig {
        id,
        cluster_id: config.cluster_id.clone(),
        queue_bytes_max: config.peer_queue_bytes_max,
        delay_min: config.reconnect_delay_min,
        delay_max: config.reconnect_delay_max,
        connect_timeout: config.connect_timeout,
        advertise: listen.to_string(),
        incarnation: node.incarnation(),
        client_addr: config.client_addr.clone(),
        state: match &bootstrap {
            Some(b) => PeerState::Bootstrapping { voters_hash: b.voters_hash },
            None if node.last_index() == LogIndex(0) && node.term() == Term(0) => PeerState::New,
            None => PeerState::Member,
        },
    };
    let transport = Transport::new(poll.registry(), transport_config, listen, listener, &others, now)
        .map_err(|error| StartError::Listen { addr: listen, error })?;

    let (requests_tx, requests) = crossbeam_channel::bounded(REQUEST_QUEUE_CAPACITY);
    let requests_rx = requests.clone();
    // The writer's queue is bounded by the core: a leader's unpersisted
    // entries by `uncommitted_bytes_max`, a follower's by the leader's
    // inflight window. The apply queue is bounded by `apply_backlog_max`
    // entries plus one waiter per accepted proposal.
    let (to_writer, writer_inbox) = crossbeam_channel::unbounded();
    let (writer_outbox, from_writer) = crossbeam_channel::unbounded();
    let (to_apply, apply_inbox) = crossbeam_channel::unbounded();
    let (apply_outbox, from_apply) = crossbeam_channel::unbounded();
    let shared = Arc::new(Shared {
        id,
        requests: requests_tx,
        requests_rx,
        waker,
        wake_pending: AtomicBool::new(false),
        next_request_id: AtomicU64::new(first_request_id()),
        request_timeout: config.request_timeout,
        session_ttl: config.session_ttl,
        session_retry_for: config.session_retry_for,
        entry_bytes_max: config.raft.entry_bytes_max,
        stopped: OnceLock::new(),
        counters: Counters::default(),
        threads: Mutex::new(Vec::new()),
        client_addrs: Mutex::new(
            Some((id, config.client_addr.clone())).into_iter().filter(|(_, a)| !a.is_empty()).collect(),
        ),
        disk_hang: (Mutex::new(false), std::sync::Condvar::new()),
    });

    let node_membership = node.membership().clone();
    let event_loop = EventLoop {
        node,
        transport,
        poll,
        clock,
        shared: Arc::clone(&shared),
        requests,
        to_writer,
        from_writer,
        to_apply,
        from_apply,
        reads: Pending::new(),
        request_timeout: config.request_timeout,
        next_read_ctx: 1,
        sent_to_apply: LogIndex(0),
        applied: LogIndex(0),
        apply_backlog_max: config.apply_backlog_max as u64,
        apply_batch: Vec::new(),
        resender: Resender::new(id, config.request_timeout, config.session_ttl),
        waits: Vec::new(),
        membership_waits: Vec::new(),
        membership_seen: node_membership,
        address_book,
        transfers: HashMap::new(),
        snapshots: Arc::clone(&snapshots),
        chunk_bytes_max: config.snapshot_chunk_bytes_max,
        chunks_in_flight: config.snapshot_chunks_in_flight,
        stall_timeout: config.snapshot_stall_timeout,
        inbox: Vec::new(),
        bootstrap,
        was_member,
        removal_logged: false,
        stop: None,
    };
    let spawn = |name: String, f: Box<dyn FnOnce() + Send>| thread::Builder::new().name(name).spawn(f);
    let mut threads = Vec::new();
    let s = Arc::clone(&shared);
    let snaps = Arc::clone(&snapshots);
    threads.push(
        spawn(
            format!("oar-log-{id}"),
            Box::new(move || log_writer::run(wal, snaps, writer_inbox, writer_outbox, s)),
        )
        .map_err(StartError::Thread)?,
    );
    let s = Arc::clone(&shared);
    let snaps = Arc::clone(&snapshots);
    threads.push(
        spawn(
            format!("oar-apply-{id}"),
            Box::new(move || {
                apply::run(state_machine, snaps, bootstrap_membership, apply_inbox, apply_outbox, s)
            }),
        )
        .map_err(StartError::Thread)?,
    );
    threads.push(
        spawn(format!("oar-loop-{id}"), Box::new(move || event_loop.run())).map_err(StartError::Thread)?,
    );
    *shared.threads.lock().unwrap_or_else(|e| e.into_inner()) = threads;
    info!("{id}: listening for peers on {listen}, data in {}", data_dir.display());
    Ok(Handle { shared })
}

pub(super) struct EventLoop {
    pub(super) node: Node,
    pub(super) transport: Transport,
    poll: Poll,
    clock: Clock,
    shared: Arc<Shared>,
    requests: Receiver<Request>,
    to_writer: Sender<ToWriter>,
    from_writer: Receiver<FromWriter>,
    to_apply: Sender<ToApply>,
    from_apply: Receiver<FromApply>,
    /// Reads waiting for their read index, by the context given to the
    /// core, each until the request timeout.
    reads: Pending<(Bytes, Completion), Instant>,
    request_timeout: std::time::Duration,
    next_read_ctx: u64,
    /// The last entry handed to the apply thread.
    sent_to_apply: LogIndex,
    /// The last entry the apply thread reported applied.
    applied: LogIndex,
    apply_backlog_max: u64,
    apply_batch: Vec<Entry>,
    /// Proposals this node made, until seen committed: sent again if they
    /// may have been lost with a leader.
    resender: Resender,
    /// Callers of proposals accepted in this turn, for the apply thread:
    /// one message per turn rather than one wakeup per proposal.
    waits: Vec<(u64, Completion)>,
    /// Membership changes this leader made, waiting to complete: the entry
    /// index, the deadline, and the caller.
    membership_waits: Vec<(LogIndex, Instant, MembershipReply)>,
    /// The configuration the transport's peers were last set from.
    membership_seen: Membership,
    /// Where the nodes given at start listen, for those the configuration
    /// has no address for.
    address_book: Vec<(NodeId, SocketAddr)>,
    /// Snapshots being sent, by follower.
    transfers: HashMap<NodeId, Transfer>,
    snapshots: Arc<Snapshots>,
    chunk_bytes_max: usize,
    chunks_in_flight: usize,
    stall_timeout: std::time::Duration,
    /// Messages read from peers in this turn; kept to reuse its memory.
    inbox: Vec<Message>,
    /// While this brand-new node waits to bootstrap a new cluster.
    pub(super) bootstrap: Option<Bootstrap>,
    /// Whether some configuration this node held listed it: one that does
    /// not list it any more means it was removed.
    was_member: bool,
    /// Whether this node said, once, that it was removed.
    removal_logged: bool,
    /// Why the loop ends, once it must.
    stop: Option<StopReason>,
}

type MembershipReply =
    crossbeam_channel::Sender<Result<Result<Membership, MembershipChangeError>, RequestError>>;

impl EventLoop {
    fn run(mut self) {
        let _guard = StopOnPanic(Arc::clone(&self.shared));
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        self.drain_node(self.clock.now());
        while self.stop.is_none() {
            let deadline = [
                self.node.poll_timeout(),
                self.transport.next_deadline(),
                self.reads.next_deadline(),
                self.membership_waits.iter().map(|w| w.1).min(),
                self.transfers.values().map(|t| t.next_deadline(self.stall_timeout)).min(),
                self.resender.next_deadline(),
            ]
            .into_iter()
            .flatten()
            .min();
            let timeout = if self.requests.is_empty() {
                deadline.map(|d| self.clock.until(d))
            } else {
                Some(Default::default())
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    self.stop = Some(StopReason::Poll(Arc::new(e)));
                }
                continue;
            }
            let now = self.clock.now();
            let registry = self.poll.registry();
            let mut inbox = std::mem::take(&mut self.inbox);
            for event in events.iter() {
                if event.token() != WAKER {
                    self.transport.on_event(registry, event, now, &mut |msg| inbox.push(msg));
                }
            }
            for msg in inbox.drain(..) {
                self.on_message(now, msg);
            }
            self.inbox = inbox;
            self.note_client_addrs();
            self.drain_channels(now);
            if deadline.is_some_and(|d| d <= now) {
                self.node.handle_timeout(now);
                self.transport.on_timer(self.poll.registry(), now);
                self.expire_reads(now);
                self.pump_transfers(now);
            }
            self.drain_node(now);
        }
        self.finish();
    }

    /// Hands a message from a peer to the core, or, for the pieces of a
    /// snapshot the runtime moves itself, to the log writer or the sender.
    fn on_message(&mut self, now: Instant, msg: Message) {
        match msg.body {
            MessageBody::SnapshotChunk(chunk) => {
                let job = ToWriter::Chunk { from: msg.from, term: msg.term, chunk };
                if self.to_writer.send(job).is_err() {
                    self.thread_gone();
                }
            }
            MessageBody::SnapshotAck(ack) => self.on_snapshot_ack(now, msg.from, ack),
            _ => self.node.handle_message(now, msg),
        }
    }

    /// Takes what the other threads and the callers sent.
    fn drain_channels(&mut self, now: Instant) {
        self.shared.wake_pending.swap(false, Ordering::AcqRel);
        while let Ok(report) = self.from_writer.try_recv() {
            match report {
                FromWriter::Durable(id) => self.node.handle_persisted(now, id),
                FromWriter::DiskFull(full) => self.node.handle_disk_full(now, full),
                FromWriter::Failed(reason) => {
                    self.stop.get_or_insert(reason);
                }
                FromWriter::ChunkAck { to, term, ack } => {
                    let msg = Message {
                        from: self.node.id(),
                        to,
                        term,
                        from_incarnation: self.node.incarnation(),
                        body: MessageBody::SnapshotAck(ack),
                    };
                    if !self.transport.send(&msg) {
                        debug!("{}: could not acknowledge a snapshot chunk to {to}", self.node.id());
                    }
                }
                FromWriter::SnapshotReceived { from, term, meta } => {
                    // In the term the leader sent the chunks in: the core
                    // ignores the snapshot if that term is over.
                    self.node.handle_snapshot_received(now, from, term, meta);
                }
            }
        }
        while let Ok(report) = self.from_apply.try_recv() {
            match report {
                FromApply::Applied(index) => {
                    self.applied = index;
                    self.sent_to_apply = self.sent_to_apply.max(index);
                    self.node.handle_applied(index);
                }
                FromApply::SnapshotTaken(meta) => {
                    self.node.handle_snapshot_taken(meta);
                    let first = self.node.first_index();
                    if self.to_writer.send(ToWriter::Compact(first)).is_err() {
                        self.thread_gone();
                    }
                }
                FromApply::SnapshotNotTaken => self.node.handle_snapshot_not_taken(),
                FromApply::SessionExpired(session) => self.resender.session_lost(session),
                FromApply::Failed(reason) => {
                    self.stop.get_or_insert(reason);
                }
            }
        }
        for _ in 0..REQUESTS_PER_TURN {
            let Ok(request) = self.requests.try_recv() else { break };
            self.on_request(now, request);
        }
    }

    fn on_request(&mut self, now: Instant, request: Request) {
        match request {
            Request::Propose { command, request_id, mut done } => match self.resender.propose(
                &mut self.node,
                now,
                request_id,
                command,
                self.shared.entry_bytes_max,
            ) {
                // Appended, or forwarded to the leader: from here on the
                // command may be applied whatever this node learns of it.
                Ok(_) => {
                    done.handed_off();
                    self.waits.push((request_id, done));
                }
                Err(ProposeError::NotLeader { .. }) if self.removed() => {
                    done.complete(Err(RequestError::Removed))
                }
                Err(e) => done.complete(Err(propose_error(e))),
            },
            Request::Read { query, done } => {
                let ctx = self.next_read_ctx;
                self.next_read_ctx += 1;
                match self.node.read_index(now, ctx) {
                    Ok(()) => {
                        self.reads.insert(ctx, (query, done), now + self.request_timeout);
                    }
                    Err(ReadError::NotLeader { .. }) if self.removed() => {
                        done.complete(Err(RequestError::Removed))
                    }
                    Err(e) => done.complete(Err(read_error(e))),
                }
            }
            Request::Status(reply) => drop(reply.send(self.node.status())),
            Request::Transfer(to, reply) => drop(reply.send(self.node.transfer_leadership(now, to))),
            Request::ChangeMembership(change, reply) => match self.node.change_membership(now, change) {
                Ok(index) => self.membership_waits.push((index, now + self.request_timeout * 2, reply)),
                Err(MembershipChangeError::NotLeader { .. }) if self.removed() => {
                    drop(reply.send(Err(RequestError::Removed)))
                }
                Err(e) => drop(reply.send(Ok(Err(e)))),
            },
            Request::Shutdown => {
                self.stop.get_or_insert(StopReason::Shutdown);
            }
        }
    }

    /// Hands every output of the core to where it goes.
    fn drain_node(&mut self, now: Instant) {
        let shared = &self.shared;
        self.resender.poll(&mut self.node, now, || shared.next_request_id.fetch_add(1, Ordering::Relaxed));
        shared.counters.resent.store(self.resender.resent, Ordering::Relaxed);
        // Before any entry: a proposal's waiter must be registered before
        // the entry can be applied.
        if !self.waits.is_empty() {
            let waits = std::mem::take(&mut self.waits);
            self.send_apply(ToApply::Wait(waits));
        }
        while let Some(persist) = self.node.poll_persist() {
            if self.to_writer.send(ToWriter::Write(persist)).is_err() {
                self.thread_gone();
            }
        }
        while let Some(msg) = self.node.poll_send() {
            if !self.transport.send(&msg) {
                self.node.handle_unreachable(msg.to);
            }
        }
        while let Some(action) = self.node.poll_snapshot() {
            match action {
                SnapshotAction::Take { .. } => self.send_apply(ToApply::TakeSnapshot),
                SnapshotAction::Install { meta } => {
                    self.sent_to_apply = self.sent_to_apply.max(meta.index);
                    self.send_apply(ToApply::Install(meta));
                }
                SnapshotAction::Send { to, meta } => self.start_transfer(now, to, meta),
            }
        }
        self.pump_transfers(now);
        while self.sent_to_apply.0 - self.applied.0 < self.apply_backlog_max {
            let Some(entry) = self.node.poll_apply() else { break };
            self.resender.committed(&entry);
            self.sent_to_apply = entry.index;
            self.apply_batch.push(entry);
        }
        if !self.apply_batch.is_empty() {
            let batch = std::mem::take(&mut self.apply_batch);
            self.send_apply(ToApply::Entries(batch));
        }
        while let Some(ready) = self.node.poll_read_ready() {
            let Some((query, done)) = self.reads.remove(ready.ctx) else { continue };
            match ready.result {
                Ok(_) => self.send_apply(ToApply::Query { query, done }),
                Err(e) => done.complete(Err(read_error(e))),
            }
        }
        while let Some(event) = self.node.poll_event() {
            debug!("{}: {event:?}", self.node.id());
            if let crate::core::Event::Halted { reason } = event {
                self.stop.get_or_insert(StopReason::Halted { reason });
            }
        }
        self.maybe_bootstrap(now);
        self.follow_membership(now);
        self.transport.flush(self.poll.registry(), now);
        for peer in self.transport.take_unreachable().collect::<Vec<_>>() {
            self.node.handle_unreachable(peer);
            // Queued chunks were lost with the connection: once it is back,
            // send from what the follower acknowledged.
            if let Some(t) = self.transfers.get_mut(&peer) {
                t.rewind(now);
            }
        }
    }

    /// Whether this node was removed from the cluster, as far as it can
    /// tell: the configuration in force does not list it though an earlier
    /// one did (a leader that removed itself), or it is only in the
    /// outgoing half of a joint configuration that committed and it knows
    /// no leader (the leader moved on to the configuration without it at
    /// once, and stopped replicating to it, so it never learns more).
    fn removed(&mut self) -> bool {
        let me = self.node.id();
        let m = self.node.membership();
        let removed = if !m.contains(me) {
            self.was_member
        } else {
            self.was_member = true;
            !m.voters.contains(&me)
                && m.outgoing.contains(&me)
                && self.node.membership_committed()
                && self.node.leader().is_none()
        };
        if removed && !self.removal_logged {
            self.removal_logged = true;
            log::warn!(
                "{me}: removed from the cluster (configuration {m}); it refuses requests: stop it, or add it again"
            );
        }
        removed
    }

    /// Keeps the transport's peers in line with the configuration, and
    /// answers the membership changes that completed (committed, and no
    /// longer joint) or ran out of time.
    fn follow_membership(&mut self, now: Instant) {
        if *self.node.membership() != self.membership_seen {
            self.membership_seen = self.node.membership().clone();
            info!("{}: membership now {}", self.node.id(), self.membership_seen);
            if self.membership_seen.contains(self.node.id()) {
                self.was_member = true;
                self.removal_logged = false;
            } else {
                self.removed();
            }
            let peers = peer_addresses(&self.membership_seen, &self.address_book, self.node.id());
            self.transport.set_peers(self.poll.registry(), &peers, now);
        }
        if self.membership_waits.is_empty() {
            return;
        }
        let done = self.node.membership_committed() && !self.node.membership().is_joint();
        let commit = self.node.commit_index();
        let membership = self.node.membership();
        self.membership_waits.retain(|(index, deadline, reply)| {
            if done && commit >= *index {
                let _ = reply.send(Ok(Ok(membership.clone())));
                false
            } else if *deadline <= now {
                let _ = reply.send(Err(RequestError::OutcomeUnknown { why: Unanswered::Timeout }));
                false
            } else {
                true
            }
        });
    }

    /// Starts streaming the snapshot `meta` to `to`.
    fn start_transfer(&mut self, now: Instant, to: NodeId, meta: SnapshotMeta) {
        match self.snapshots.open_for_send(&meta) {
            Ok((file, total_bytes, (index, term))) => {
                info!("{}: sending snapshot {index} ({total_bytes} bytes) to {to}", self.node.id());
                let transfer = Transfer {
                    meta: SnapshotMeta { index, term, ..meta },
                    term: self.node.term(),
                    file,
                    total_bytes,
                    next_offset: 0,
                    acked: 0,
                    last_progress: now,
                    last_resend: now,
                };
                self.transfers.insert(to, transfer);
            }
            Err(e) => {
                log::warn!("{}: cannot open snapshot {} to send to {to}: {e}", self.node.id(), meta.index);
                self.node.handle_snapshot_failed(to);
            }
        }
    }

    /// Sends what the chunk window allows of each transfer, and gives up
    /// the ones that stalled or outlived this leader's term.
    fn pump_transfers(&mut self, now: Instant) {
        if self.transfers.is_empty() {
            return;
        }
        let term = self.node.term();
        let leading = self.node.role() == Role::Leader;
        let window = (self.chunk_bytes_max * self.chunks_in_flight) as u64;
        let mut failed = Vec::new();
        for (&to, t) in self.transfers.iter_mut() {
            if !leading || t.term != term {
                failed.push(to);
                continue;
            }
            let idle = now.saturating_duration_since(t.last_progress);
            if idle > self.stall_timeout {
                log::warn!(
                    "{}: snapshot transfer to {to} stalled at {} bytes; abandoned",
                    self.shared.id,
                    t.acked
                );
                failed.push(to);
                continue;
            }
            let quiet = now.saturating_duration_since(t.last_progress.max(t.last_resend));
            if quiet > RESEND_AFTER && t.next_offset > t.acked {
                // Chunks or their acknowledgements were lost: go back.
                debug!("{}: resending snapshot {} to {to} from {}", self.shared.id, t.meta.index, t.acked);
                t.rewind(now);
            }
            while t.next_offset < t.total_bytes && t.next_offset.saturating_sub(t.acked) < window {
                let len = (t.total_bytes - t.next_offset).min(self.chunk_bytes_max as u64) as usize;
                let data = match read_chunk(&t.file, t.next_offset, len) {
                    Ok(data) => data,
                    Err(e) => {
                        log::warn!("{}: reading snapshot {} failed: {e}", self.shared.id, t.meta.index);
                        failed.push(to);
                        break;
                    }
                };
                let chunk = SnapshotChunk {
                    index: t.meta.index,
                    snapshot_term: t.meta.term,
                    offset: t.next_offset,
                    total_bytes: t.total_bytes,
                    data,
                };
                let msg = Message {
                    from: self.shared.id,
                    to,
                    term,
                    from_incarnation: self.node.incarnation(),
                    body: MessageBody::SnapshotChunk(chunk),
                };
                if !self.transport.send(&msg) {
                    // Not connected, or the queue is full: wait for acks
                    // (or the stall timeout) rather than spin.
                    break;
                }
                t.next_offset += len as u64;
            }
        }
        for to in failed {
            self.transfers.remove(&to);
            self.node.handle_snapshot_failed(to);
        }
    }

    fn on_snapshot_ack(&mut self, now: Instant, from: NodeId, ack: SnapshotAck) {
        let Some(t) = self.transfers.get_mut(&from) else { return };
        if (ack.index, ack.snapshot_term) != (t.meta.index, t.meta.term) {
            return;
        }
        if ack.failed {
            self.transfers.remove(&from);
            self.node.handle_snapshot_failed(from);
            return;
        }
        let received = ack.received.min(t.total_bytes);
        if received > t.acked {
            t.acked = received;
            // Acknowledgements of chunks sent before a rewind can pass it.
            t.next_offset = t.next_offset.max(received);
            t.last_progress = now;
        } else if received < t.acked {
            // The follower holds less than it did (it restarted, or began
            // another receive): start again from what it holds.
            t.acked = received;
            t.rewind(now);
            t.last_progress = now;
        }
        // An acknowledgement that holds still answers a chunk the follower
        // refused (one before it was lost) or a duplicate; chunks in flight
        // may yet fill the gap, so `pump_transfers` resends from `acked`
        // only once nothing moved for a while.
        if t.acked == t.total_bytes {
            info!("{}: snapshot {} delivered to {from}", self.shared.id, t.meta.index);
            self.transfers.remove(&from);
            self.node.handle_snapshot_sent(from);
        }
    }

    fn send_apply(&mut self, message: ToApply) {
        if self.to_apply.send(message).is_err() {
            self.thread_gone();
        }
    }

    /// Publishes the client addresses peers gave in their handshakes.
    fn note_client_addrs(&mut self) {
        let mut learned = self.transport.take_client_addrs().peekable();
        if learned.peek().is_some() {
            let mut addrs = self.shared.client_addrs.lock().unwrap_or_else(|e| e.into_inner());
            for (peer, addr) in learned {
                addrs.insert(peer, addr);
            }
        }
    }

    /// Another runtime thread ended (its channel closed): it recorded why
    /// (a failure, or a panic) before it did.
    fn thread_gone(&mut self) {
        if self.stop.is_none() {
            self.stop = Some(self.shared.stop_reason());
        }
    }

    /// Fails the reads the core has not confirmed within the request
    /// timeout (a leader cut off without CheckQuorum may never learn it is
    /// deposed). If the core confirms one later, the answer is dropped.
    fn expire_reads(&mut self, now: Instant) {
        self.reads.expire(now, |(_, done)| done.complete(Err(RequestError::Timeout)));
    }

    /// Stops the other threads and fails every caller still waiting.
    fn finish(mut self) {
        let reason = self.shared.record_stop(self.stop.take().unwrap_or(StopReason::Shutdown));
        if reason == StopReason::Shutdown {
            info!("{}: shutting down", self.node.id());
        } else {
            error!("{}: stopping: {reason}", self.node.id());
        }
        let _ = self.to_writer.send(ToWriter::Stop);
        let _ = self.to_apply.send(ToApply::Stop(reason.clone()));
        // Proposals accepted in this turn: handed to Raft, so their outcome
        // is unknown; reads wrote nothing.
        for (_, done) in self.waits.drain(..) {
            done.stopped(reason.clone());
        }
        for (_, done) in self.reads.drain() {
            done.stopped(reason.clone());
        }
        for (_, _, reply) in self.membership_waits.drain(..) {
            let _ =
                reply.send(Err(RequestError::OutcomeUnknown { why: Unanswered::Stopped(reason.clone()) }));
        }
        self.shared.fail_queued(&reason);
    }
}

/// Marks the node stopped if the event loop panics (a broken invariant), so
/// that callers and `oar serve` learn it; the other threads stop when the
/// loop's channels close.
struct StopOnPanic(Arc<Shared>);

impl Drop for StopOnPanic {
    fn drop(&mut self) {
        if thread::panicking() {
            let reason = self.0.record_stop(StopReason::Panicked { thread: "event loop" });
            // Free callers blocked on a full queue; they fail what they
            // queue after this themselves.
            self.0.fail_queued(&reason);
        }
    }
}
