//! The event-loop thread: owns the core and every socket, and is the only
//! thread that touches the core.

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
use super::clock::Clock;
use super::log_writer::{self, FromWriter, ToWriter};
use super::pending::Pending;
use super::transport::{Transport, TransportConfig, WAKER};
use super::{
    first_request_id, Completion, Counters, Handle, Peer, Request, RequestError, RuntimeConfig, Shared,
    StartError, StateMachine,
};
use crate::core::{Node, ProposeError, ReadError, RecoveredState};
use crate::storage::Wal;
use crate::types::{Entry, Instant, LogIndex, NodeId};

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
    let (wal, recovered) = Wal::open(&data_dir, config.wal).map_err(StartError::Storage)?;
    if recovered.first_index != LogIndex(1) {
        return Err(StartError::Config(format!(
            "the log in {} starts at index {}, but this version cannot restore the snapshot it needs",
            data_dir.display(),
            recovered.first_index
        )));
    }
    if let Some(torn) = &recovered.torn_tail {
        info!(
            "{id}: {} had a torn tail (a crash mid-write): cut at offset {}, {} bytes discarded ({})",
            torn.path.display(),
            torn.offset,
            torn.discarded_bytes,
            torn.reason
        );
    }
    let clock = Clock::new();
    let now = clock.now();
    let voters: Vec<NodeId> = peers.iter().map(|p| p.id).collect();
    let state = RecoveredState {
        hard_state: recovered.hard_state,
        snapshot: None,
        entries: recovered.entries,
        applied: LogIndex(0),
    };
    let node = Node::new(config.raft.clone(), &voters, state, now).map_err(StartError::Core)?;

    let poll = Poll::new().map_err(StartError::Thread)?;
    let waker = Waker::new(poll.registry(), WAKER).map_err(StartError::Thread)?;
    let listen: SocketAddr = peers.iter().find(|p| p.id == id).expect("validated: this node is a peer").addr;
    let others: Vec<(NodeId, SocketAddr)> =
        peers.iter().filter(|p| p.id != id).map(|p| (p.id, p.addr)).collect();
    let transport_config = TransportConfig {
        id,
        cluster_id: config.cluster_id.clone(),
        queue_bytes_max: config.peer_queue_bytes_max,
        delay_min: config.reconnect_delay_min,
        delay_max: config.reconnect_delay_max,
        connect_timeout: config.connect_timeout,
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
        entry_bytes_max: config.raft.entry_bytes_max,
        stopped: OnceLock::new(),
        counters: Counters::default(),
        threads: Mutex::new(Vec::new()),
    });

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
        waits: Vec::new(),
        stop: None,
    };
    let spawn = |name: String, f: Box<dyn FnOnce() + Send>| thread::Builder::new().name(name).spawn(f);
    let mut threads = Vec::new();
    let s = Arc::clone(&shared);
    threads.push(
        spawn(
            format!("oar-log-{id}"),
            Box::new(move || log_writer::run(wal, writer_inbox, writer_outbox, s)),
        )
        .map_err(StartError::Thread)?,
    );
    let s = Arc::clone(&shared);
    threads.push(
        spawn(
            format!("oar-apply-{id}"),
            Box::new(move || apply::run(state_machine, apply_inbox, apply_outbox, s)),
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

struct EventLoop {
    node: Node,
    transport: Transport,
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
    /// Callers of proposals accepted in this turn, for the apply thread:
    /// one message per turn rather than one wakeup per proposal.
    waits: Vec<(u64, Completion)>,
    /// Why the loop ends, once it must.
    stop: Option<String>,
}

impl EventLoop {
    fn run(mut self) {
        let _guard = StopOnPanic(Arc::clone(&self.shared));
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        self.drain_node(self.clock.now());
        while self.stop.is_none() {
            let deadline =
                [self.node.poll_timeout(), self.transport.next_deadline(), self.reads.next_deadline()]
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
                    self.stop = Some(format!("the event loop's poll failed: {e}"));
                }
                continue;
            }
            let now = self.clock.now();
            let registry = self.poll.registry();
            for event in events.iter() {
                if event.token() != WAKER {
                    let node = &mut self.node;
                    self.transport.on_event(registry, event, now, &mut |msg| node.handle_message(now, msg));
                }
            }
            self.drain_channels(now);
            if deadline.is_some_and(|d| d <= now) {
                self.node.handle_timeout(now);
                self.transport.on_timer(self.poll.registry(), now);
                self.expire_reads(now);
            }
            self.drain_node(now);
        }
        self.finish();
    }

    /// Takes what the other threads and the callers sent.
    fn drain_channels(&mut self, now: Instant) {
        self.shared.wake_pending.swap(false, Ordering::AcqRel);
        while let Ok(report) = self.from_writer.try_recv() {
            match report {
                FromWriter::Durable(id) => self.node.handle_persisted(now, id),
                FromWriter::Failed(e) => self.stop = Some(format!("the log failed: {e}")),
            }
        }
        while let Ok(report) = self.from_apply.try_recv() {
            match report {
                FromApply::Applied(index) => {
                    self.applied = index;
                    self.node.handle_applied(index);
                }
                FromApply::Failed(reason) => self.stop = Some(reason),
            }
        }
        for _ in 0..REQUESTS_PER_TURN {
            let Ok(request) = self.requests.try_recv() else { break };
            self.on_request(now, request);
        }
    }

    fn on_request(&mut self, now: Instant, request: Request) {
        match request {
            Request::Propose { command, request_id, done } => match self.node.propose(now, command) {
                Ok(_) => self.waits.push((request_id, done)),
                Err(e) => done.complete(Err(propose_error(e))),
            },
            Request::Read { query, done } => {
                let ctx = self.next_read_ctx;
                self.next_read_ctx += 1;
                match self.node.read_index(now, ctx) {
                    Ok(()) => {
                        self.reads.insert(ctx, (query, done), now + self.request_timeout);
                    }
                    Err(e) => done.complete(Err(read_error(e))),
                }
            }
            Request::Status(reply) => drop(reply.send(self.node.status())),
            Request::Transfer(to, reply) => drop(reply.send(self.node.transfer_leadership(now, to))),
            Request::Shutdown => self.stop = Some("shut down".to_string()),
        }
    }

    /// Hands every output of the core to where it goes.
    fn drain_node(&mut self, now: Instant) {
        // Before any entry: a proposal's waiter must be registered before
        // the entry can be applied.
        if !self.waits.is_empty() {
            let waits = std::mem::take(&mut self.waits);
            self.send_apply(ToApply::Wait(waits));
        }
        while let Some(persist) = self.node.poll_persist() {
            if self.to_writer.send(ToWriter::Write(persist)).is_err() {
                self.stop.get_or_insert_with(|| "the log writer stopped".to_string());
            }
        }
        while let Some(msg) = self.node.poll_send() {
            if !self.transport.send(&msg) {
                self.node.handle_unreachable(msg.to);
            }
        }
        while self.sent_to_apply.0 - self.applied.0 < self.apply_backlog_max {
            let Some(entry) = self.node.poll_apply() else { break };
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
        }
        self.transport.flush(self.poll.registry(), now);
        for peer in self.transport.take_unreachable().collect::<Vec<_>>() {
            self.node.handle_unreachable(peer);
        }
    }

    fn send_apply(&mut self, message: ToApply) {
        if self.to_apply.send(message).is_err() {
            self.stop.get_or_insert_with(|| "the apply thread stopped".to_string());
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
        let reason = self.stop.take().unwrap_or_else(|| "shut down".to_string());
        if reason == "shut down" {
            info!("{}: shutting down", self.node.id());
        } else {
            error!("{}: stopping: {reason}", self.node.id());
        }
        let _ = self.shared.stopped.set(reason.clone());
        let _ = self.to_writer.send(ToWriter::Stop);
        let _ = self.to_apply.send(ToApply::Stop(reason.clone()));
        for (_, done) in self.waits.drain(..) {
            done.complete(Err(RequestError::Stopped(reason.clone())));
        }
        for (_, done) in self.reads.drain() {
            done.complete(Err(RequestError::Stopped(reason.clone())));
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
            let reason = "the event loop panicked; see the log".to_string();
            let _ = self.0.stopped.set(reason.clone());
            // Free callers blocked on a full queue; they fail what they
            // queue after this themselves.
            self.0.fail_queued(&reason);
        }
    }
}

fn propose_error(e: ProposeError) -> RequestError {
    match e {
        ProposeError::NotLeader { .. } | ProposeError::TransferInProgress { .. } => RequestError::NoLeader,
        ProposeError::Backpressure => RequestError::Busy,
        ProposeError::EntryTooLarge { bytes, max } => RequestError::TooLarge { bytes, max },
    }
}

fn read_error(e: ReadError) -> RequestError {
    match e {
        ReadError::NotLeader { .. } | ReadError::LeadershipLost | ReadError::Timeout => {
            RequestError::NoLeader
        }
        ReadError::Backpressure => RequestError::Busy,
    }
}
