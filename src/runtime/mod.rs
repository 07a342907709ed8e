//! The threaded runtime: a [`Node`](crate::Node) with sockets, a disk and a
//! state machine, behind a blocking [`Handle`].
//!
//! ```text
//! callers ──(bounded channel + Waker)──▶ event loop ──(Persist)──▶ log writer
//!    ▲                                   mio: listener,            group commit:
//!    │                                   peer connections,         write a batch,
//!    │                                   timers; owns the core     one fdatasync
//!    └──── apply thread ◀─(committed entries, waiters, queries)─┘
//!          (your StateMachine)
//! ```
//!
//! - The **event loop** owns the core and every socket. It blocks in
//!   `mio::Poll` until the core's next deadline, a socket event, or a wakeup
//!   from another thread; it never waits on the disk, so a slow fsync delays
//!   no heartbeat and no election.
//! - The **log writer** drains every write queued, writes them to the
//!   [`Wal`](crate::storage::Wal), calls `fdatasync` once, and reports the
//!   last write durable. A failed write or sync stops the node.
//! - The **apply thread** runs the [`StateMachine`]: it applies committed
//!   entries in order, answers the callers waiting for them, and answers
//!   queries once their read index is applied.
//!
//! Peers are reached over TCP: each node dials every peer and sends on the
//! connection it dialed, after a [`Handshake`](crate::codec::Handshake)
//! naming the cluster and itself; it receives on the connections peers
//! dialed. A peer is known by its handshake, never by its address.
//!
//! Every command carries an envelope: the proposing node and a request id.
//! When the entry is applied, on whatever node proposed it, the apply
//! thread finds the waiting caller by that id and hands it the state
//! machine's answer.

mod apply;
mod bootstrap;
mod clock;
mod event_loop;
mod log_writer;
mod pending;
mod snapshots;
mod transport;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use bytes::{BufMut, Bytes};
use crossbeam_channel::{Receiver, Sender};

use crate::codec::CLUSTER_ID_BYTES_MAX;
use crate::config::Config;
use crate::core::{MembershipChangeError, Status, TransferError};
use crate::membership::{Membership, MembershipChange};
use crate::storage::{SnapshotOptions, StorageError, WalOptions};
use crate::types::{LogIndex, NodeId};

/// The bytes of the envelope in front of every command: the proposing node
/// and its request id, both `u64` little-endian.
pub const ENVELOPE_BYTES: usize = 16;

/// The application's replicated state.
///
/// Every node applies the same commands in the same order, so `apply` must be
/// deterministic: the same state and command give the same new state and
/// answer on every node. `snapshot` and `restore` let the log be compacted
/// and let a node far behind catch up from a copy of the state instead of the
/// whole log; both stream, so the state may exceed memory.
pub trait StateMachine: Send + 'static {
    /// Applies the committed command at `index` and returns the answer for
    /// the caller that proposed it. An `Err` means this node cannot go on
    /// (a command it cannot decode: its log is damaged or a peer runs an
    /// incompatible version): the node stops rather than diverge.
    fn apply(&mut self, index: LogIndex, command: &[u8]) -> Result<Vec<u8>, String>;

    /// Answers a read-only query on the current state. Called only when the
    /// state reflects every write a linearizable read must see.
    fn query(&self, query: &[u8]) -> Vec<u8>;

    /// Writes the whole state to `out`, to be read back by `restore` on
    /// this node or another. The runtime buffers, checksums and fsyncs it.
    /// An error stops the node (its disk is failing).
    fn snapshot(&self, out: &mut dyn std::io::Write) -> std::io::Result<()>;

    /// Replaces the whole state with the one `input` holds, as `snapshot`
    /// wrote it. The runtime verified the bytes' checksum; an `Err` (an
    /// incompatible version) stops the node.
    fn restore(&mut self, input: &mut dyn std::io::Read) -> Result<(), String>;
}

/// One member of the cluster and the address its raft port listens on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Its node id.
    pub id: NodeId,
    /// Where it listens for peer connections.
    pub addr: SocketAddr,
}

/// How a node runs: the core's [`Config`] plus the runtime's own settings.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// The consensus settings; `raft.id` is this node.
    pub raft: Config,
    /// Names the cluster; peers with another name are refused. 1 to 255
    /// bytes of UTF-8.
    pub cluster_id: String,
    /// How long [`Handle::propose`] and [`Handle::read`] wait for an answer.
    pub request_timeout: Duration,
    /// Bytes queued for one peer's connection beyond which messages to it
    /// are dropped and the core told it is unreachable.
    pub peer_queue_bytes_max: usize,
    /// The first delay before redialing a peer; it doubles per failure.
    pub reconnect_delay_min: Duration,
    /// The longest delay between dials.
    pub reconnect_delay_max: Duration,
    /// How long a dial may take before it is abandoned and retried.
    pub connect_timeout: Duration,
    /// Committed entries handed to the apply thread and not yet applied,
    /// beyond which the event loop stops handing out more.
    pub apply_backlog_max: usize,
    /// How the log lays out its files.
    pub wal: WalOptions,
    /// How snapshots are stored and received.
    pub snapshots: SnapshotOptions,
    /// Start as a node that is not yet a member: it waits for a leader to
    /// add it (`add_learner`); `peers` only tell it where nodes listen.
    /// That is also what a node with an empty data directory does without
    /// [`bootstrap`](RuntimeConfig::bootstrap); `join` only says so
    /// explicitly, and refuses `bootstrap`.
    pub join: bool,
    /// Bootstrap a new cluster whose voters are `peers`, if this node's data
    /// directory is empty; ignored once it holds anything. Give it to every
    /// initial node, with the same `peers`: the one with the lowest id
    /// writes the first configuration once all have connected and said
    /// they are new (see the `bootstrap` module). Leaving it set on later
    /// starts is harmless: a node that lost its disk and comes back with it
    /// finds its peers in a cluster already and waits to be re-admitted
    /// instead of forming a second cluster.
    pub bootstrap: bool,
    /// The largest piece a snapshot is sent in.
    pub snapshot_chunk_bytes_max: usize,
    /// Chunks sent to one follower and not yet acknowledged.
    pub snapshot_chunks_in_flight: usize,
    /// A snapshot transfer that makes no progress for this long is
    /// abandoned (and later retried).
    pub snapshot_stall_timeout: Duration,
}

impl RuntimeConfig {
    /// Defaults for node `id` on a local network.
    pub fn new(id: NodeId) -> RuntimeConfig {
        RuntimeConfig {
            raft: Config::new(id),
            cluster_id: "oar".to_string(),
            request_timeout: Duration::from_secs(5),
            peer_queue_bytes_max: 64 << 20,
            reconnect_delay_min: Duration::from_millis(20),
            reconnect_delay_max: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(2),
            apply_backlog_max: 1 << 16,
            wal: WalOptions::default(),
            snapshots: SnapshotOptions::default(),
            join: false,
            bootstrap: false,
            snapshot_chunk_bytes_max: 256 << 10,
            snapshot_chunks_in_flight: 8,
            snapshot_stall_timeout: Duration::from_secs(10),
        }
    }

    fn validate(&self, peers: &[Peer]) -> Result<(), StartError> {
        let fail = |reason: String| Err(StartError::Config(reason));
        self.raft.validate().map_err(|e| StartError::Config(e.to_string()))?;
        if !(1..=CLUSTER_ID_BYTES_MAX).contains(&self.cluster_id.len()) {
            return fail(format!(
                "cluster_id {:?} has {} bytes; give it 1 to {CLUSTER_ID_BYTES_MAX}",
                self.cluster_id,
                self.cluster_id.len()
            ));
        }
        if self.request_timeout.is_zero() {
            return fail("request_timeout is zero; give callers time to be answered".into());
        }
        if (self.peer_queue_bytes_max as u64) < self.raft.message_bytes_max * 2 {
            return fail(format!(
                "peer_queue_bytes_max {} must hold at least two messages of message_bytes_max {}",
                self.peer_queue_bytes_max, self.raft.message_bytes_max
            ));
        }
        if self.reconnect_delay_min.is_zero() || self.reconnect_delay_min > self.reconnect_delay_max {
            return fail(
                "reconnect delays must satisfy 0 < reconnect_delay_min <= reconnect_delay_max".into(),
            );
        }
        if self.connect_timeout.is_zero() {
            return fail("connect_timeout is zero; a dial needs time to complete".into());
        }
        if self.apply_backlog_max == 0 {
            return fail("apply_backlog_max is zero; the state machine would never be fed".into());
        }
        if self.snapshot_chunk_bytes_max == 0
            || (self.snapshot_chunk_bytes_max * self.snapshot_chunks_in_flight.max(1)) as u64
                > self.peer_queue_bytes_max as u64 / 2
        {
            return fail(format!(
                "snapshot_chunk_bytes_max {} times snapshot_chunks_in_flight {} must be positive and fit in half of peer_queue_bytes_max {}",
                self.snapshot_chunk_bytes_max, self.snapshot_chunks_in_flight, self.peer_queue_bytes_max
            ));
        }
        if self.snapshot_chunks_in_flight == 0 {
            return fail("snapshot_chunks_in_flight is zero; a snapshot could never be sent".into());
        }
        if self.snapshot_stall_timeout.is_zero() {
            return fail("snapshot_stall_timeout is zero; a transfer needs time".into());
        }
        if self.join && self.bootstrap {
            return fail(
                "join and bootstrap are both set; a node either waits to be added or bootstraps a new cluster".into(),
            );
        }
        let mut ids: Vec<NodeId> = peers.iter().map(|p| p.id).collect();
        ids.sort_unstable();
        if let Some(pair) = ids.windows(2).find(|w| w[0] == w[1]) {
            return fail(format!("node {} is listed twice among the peers", pair[0]));
        }
        if ids.contains(&NodeId(0)) {
            return fail("node id 0 is reserved; number nodes from 1".into());
        }
        if !ids.contains(&self.raft.id) {
            return fail(format!(
                "this node ({}) is not among the peers; list it with the address it listens on",
                self.raft.id
            ));
        }
        Ok(())
    }
}

/// Why a node could not start.
#[derive(Debug)]
pub enum StartError {
    /// The configuration or the peer list is wrong; the text says what to fix.
    Config(String),
    /// The data directory could not be opened or recovered.
    Storage(StorageError),
    /// The recovered log does not make a valid node.
    Core(crate::core::StartError),
    /// The raft address could not be listened on.
    Listen {
        /// The address.
        addr: SocketAddr,
        /// What the OS said.
        error: std::io::Error,
    },
    /// A thread could not be started.
    Thread(std::io::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Config(reason) => write!(f, "invalid configuration: {reason}"),
            StartError::Storage(e) => write!(f, "cannot open the data directory: {e}"),
            StartError::Core(e) => write!(f, "cannot start the node: {e}"),
            StartError::Listen { addr, error } => write!(f, "cannot listen on {addr}: {error}"),
            StartError::Thread(e) => write!(f, "cannot start a thread: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// Why a request got no answer from the state machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestError {
    /// No leader is known (an election is under way, or leadership just
    /// moved). Nothing was proposed; retry shortly.
    NoLeader,
    /// The leader has too much in flight (uncommitted bytes, pending reads).
    /// Nothing was proposed; retry shortly.
    Busy,
    /// No answer within the request timeout. For a proposal the outcome is
    /// unknown: the command may yet be applied, or may have been lost with a
    /// deposed leader. Read to find out before retrying a non-idempotent
    /// command.
    Timeout,
    /// The command exceeds the entry limit and was refused.
    TooLarge {
        /// The command's size with its envelope.
        bytes: u64,
        /// `entry_bytes_max`.
        max: u64,
    },
    /// The node has stopped (shut down, or a fatal storage or state machine
    /// error, named here); the request's outcome is unknown.
    Stopped(String),
    /// The leader's disk cannot take writes (full, or stalled); nothing was
    /// proposed. Leadership is moving to a node whose disk can: retry
    /// shortly.
    Disk(crate::core::DiskTrouble),
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::NoLeader => write!(f, "no leader; retry shortly"),
            RequestError::Busy => write!(f, "the leader is overloaded; retry shortly"),
            RequestError::Timeout => write!(f, "no answer in time; the outcome is unknown"),
            RequestError::TooLarge { bytes, max } => {
                write!(f, "the command is {bytes} bytes with its envelope; the limit is {max}")
            }
            RequestError::Stopped(reason) => write!(f, "the node stopped: {reason}"),
            RequestError::Disk(trouble) => write!(f, "{trouble}; nothing was written, retry shortly"),
        }
    }
}

impl std::error::Error for RequestError {}

/// Whoever waits for a request's answer. Its function is called exactly
/// once, on some runtime thread, so it must be quick (send on a channel,
/// wake a poller). A completion dropped unanswered (the node stopped while
/// the request was queued) answers [`RequestError::Stopped`].
pub struct Completion(Option<Box<dyn FnOnce(Answer) + Send>>);

/// What a request gets back: the state machine's answer, or why there is
/// none.
pub type Answer = Result<Vec<u8>, RequestError>;

impl Completion {
    /// Wraps the function that takes the answer.
    pub fn new(f: impl FnOnce(Result<Vec<u8>, RequestError>) + Send + 'static) -> Completion {
        Completion(Some(Box::new(f)))
    }

    /// Hands over the answer.
    pub fn complete(mut self, result: Result<Vec<u8>, RequestError>) {
        if let Some(f) = self.0.take() {
            f(result);
        }
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f(Err(RequestError::Stopped("the node stopped before answering".to_string())));
        }
    }
}

impl fmt::Debug for Completion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Completion")
    }
}

/// Work handed to the event loop.
pub(crate) enum Request {
    Propose {
        command: Bytes,
        request_id: u64,
        done: Completion,
    },
    Read {
        query: Bytes,
        done: Completion,
    },
    Status(Sender<Status>),
    Transfer(NodeId, Sender<Result<(), TransferError>>),
    ChangeMembership(
        MembershipChange,
        Sender<Result<Result<Membership, MembershipChangeError>, RequestError>>,
    ),
    Shutdown,
}

/// Running totals, for [`Handle::metrics`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    fsyncs: AtomicU64,
    writes: AtomicU64,
    applied: AtomicU64,
}

/// Running totals since the node started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Metrics {
    /// `fdatasync` calls on the log: one per group commit.
    pub fsyncs: u64,
    /// Writes (the core's `Persist`) made durable; divided by `fsyncs`, the
    /// mean group-commit batch.
    pub writes: u64,
    /// Entries applied to the state machine.
    pub applied: u64,
}

impl Request {
    /// Answers `Stopped` to whoever waits for this request.
    fn fail(self, reason: &str) {
        if let Request::Propose { done, .. } | Request::Read { done, .. } = self {
            done.complete(Err(RequestError::Stopped(reason.to_string())));
        }
    }
}

/// What every handle and every thread shares.
pub(crate) struct Shared {
    id: NodeId,
    requests: Sender<Request>,
    /// The event loop's end of `requests`, kept so that a request queued
    /// after the loop stopped can still be found and failed.
    requests_rx: Receiver<Request>,
    waker: mio::Waker,
    /// Set by a handle that queued work and woke the loop; cleared by the
    /// loop before it drains the queue. Spares a wakeup syscall per request
    /// while the loop is busy.
    wake_pending: AtomicBool,
    next_request_id: AtomicU64,
    request_timeout: Duration,
    entry_bytes_max: u64,
    /// Why the node stopped, once it has.
    stopped: OnceLock<String>,
    counters: Counters,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Shared {
    /// Wakes the event loop unless a wakeup is already pending.
    pub(crate) fn wake(&self) {
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            if let Err(e) = self.waker.wake() {
                log::error!("{}: cannot wake the event loop: {e}", self.id);
            }
        }
    }

    /// Fails every request still queued for the event loop.
    pub(crate) fn fail_queued(&self, reason: &str) {
        for request in self.requests_rx.try_iter() {
            request.fail(reason);
        }
    }

    pub(crate) fn stop_reason(&self) -> String {
        self.stopped.get().cloned().unwrap_or_else(|| "shut down".to_string())
    }
}

/// A running node. Cheap to clone; every method may be called from any
/// thread. Dropping the handles does not stop the node: call
/// [`shutdown`](Handle::shutdown).
#[derive(Clone)]
pub struct Handle {
    shared: Arc<Shared>,
}

/// Starts a node: opens (or creates) `data_dir`, recovers the log, listens
/// on this node's address from `peers`, and starts the threads.
///
/// `peers` lists every voter, this node included, with the address it
/// listens on for peer connections. A new cluster starts with every node
/// given the same list. `state_machine` starts empty: the whole log is
/// applied to it again at every start.
pub struct Runtime;

impl Runtime {
    /// See [`Runtime`].
    pub fn start<S: StateMachine>(
        config: RuntimeConfig,
        data_dir: impl AsRef<Path>,
        peers: &[Peer],
        state_machine: S,
    ) -> Result<Handle, StartError> {
        config.validate(peers)?;
        event_loop::start(config, PathBuf::from(data_dir.as_ref()), peers, None, state_machine)
    }

    /// [`start`](Runtime::start) on a listener already bound to this node's
    /// address in `peers`: for socket activation, or for tests that bind
    /// port 0 and must not lose the port to another process before the
    /// node listens.
    pub fn start_on<S: StateMachine>(
        config: RuntimeConfig,
        data_dir: impl AsRef<Path>,
        peers: &[Peer],
        listener: std::net::TcpListener,
        state_machine: S,
    ) -> Result<Handle, StartError> {
        config.validate(peers)?;
        let id = config.raft.id;
        let bound = listener.local_addr().map_err(StartError::Thread)?;
        let listed = peers.iter().find(|p| p.id == id).map(|p| p.addr);
        if listed != Some(bound) {
            return Err(StartError::Config(format!(
                "the listener is bound to {bound}, but the peers list {id} at {listed:?}; give them the same address"
            )));
        }
        event_loop::start(config, PathBuf::from(data_dir.as_ref()), peers, Some(listener), state_machine)
    }
}

impl Handle {
    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.shared.id
    }

    /// The largest command [`propose`](Handle::propose) accepts: the entry
    /// limit less the envelope.
    pub fn command_bytes_max(&self) -> u64 {
        self.shared.entry_bytes_max.saturating_sub(ENVELOPE_BYTES as u64)
    }

    /// Proposes `command` and blocks until it is applied, returning the
    /// state machine's answer. On a follower the command is forwarded to the
    /// leader; the answer still comes back here.
    pub fn propose(&self, command: &[u8]) -> Result<Vec<u8>, RequestError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.propose_with(command, Completion::new(move |result| drop(tx.send(result))));
        self.wait(&rx)
    }

    /// Proposes `command` and returns at once; `done` is called with the
    /// answer (or the error) later, on a runtime thread. For servers that
    /// keep many requests in flight without a thread each.
    pub fn propose_with(&self, command: &[u8], done: Completion) {
        let bytes = (ENVELOPE_BYTES + command.len()) as u64;
        if bytes > self.shared.entry_bytes_max {
            return done.complete(Err(RequestError::TooLarge { bytes, max: self.shared.entry_bytes_max }));
        }
        let request_id = self.shared.next_request_id.fetch_add(1, Ordering::Relaxed);
        let mut enveloped = Vec::with_capacity(ENVELOPE_BYTES + command.len());
        enveloped.put_u64_le(self.shared.id.0);
        enveloped.put_u64_le(request_id);
        enveloped.put_slice(command);
        self.submit(Request::Propose { command: Bytes::from(enveloped), request_id, done });
    }

    /// Runs `query` on the state machine once it reflects every write
    /// acknowledged before this call (a linearizable read, by ReadIndex),
    /// and returns the answer.
    pub fn read(&self, query: &[u8]) -> Result<Vec<u8>, RequestError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.read_with(query, Completion::new(move |result| drop(tx.send(result))));
        self.wait(&rx)
    }

    /// [`read`](Handle::read) without blocking: `done` gets the answer.
    pub fn read_with(&self, query: &[u8], done: Completion) {
        self.submit(Request::Read { query: Bytes::copy_from_slice(query), done });
    }

    /// The node's role, term, leader and progress.
    pub fn status(&self) -> Result<Status, RequestError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.submit(Request::Status(tx));
        rx.recv_timeout(self.shared.request_timeout).map_err(|e| self.recv_error(e))
    }

    /// Asks this node, if it leads, to hand leadership to `to`. Returns once
    /// the transfer started; watch [`status`](Handle::status) for the
    /// outcome.
    pub fn transfer_leadership(&self, to: NodeId) -> Result<Result<(), TransferError>, RequestError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.submit(Request::Transfer(to, tx));
        rx.recv_timeout(self.shared.request_timeout).map_err(|e| self.recv_error(e))
    }

    /// Adds node `id`, listening for peers at `addr`, as a learner: it
    /// receives the log (or a snapshot) but does not vote. Start it with
    /// [`RuntimeConfig::join`]. Returns the new membership once the change
    /// is committed. Ask the leader: other nodes answer `NotLeader`.
    pub fn add_learner(
        &self,
        id: NodeId,
        addr: SocketAddr,
    ) -> Result<Result<Membership, MembershipChangeError>, RequestError> {
        self.change_membership(MembershipChange::AddLearner { id, address: addr.to_string() })
    }

    /// Makes the learner `id` a voter, through a joint configuration; returns
    /// once the final configuration is committed. Promote a learner once it
    /// has caught up (see [`status`](Handle::status)), or the cluster waits
    /// for it to commit.
    pub fn promote(&self, id: NodeId) -> Result<Result<Membership, MembershipChangeError>, RequestError> {
        self.change_membership(MembershipChange::Promote { id })
    }

    /// Removes the member `id` (a voter through a joint configuration);
    /// returns once the final configuration is committed. A leader that
    /// removes itself steps down then.
    pub fn remove(&self, id: NodeId) -> Result<Result<Membership, MembershipChangeError>, RequestError> {
        self.change_membership(MembershipChange::Remove { id })
    }

    /// Makes any [`MembershipChange`] and waits, as the methods above do.
    pub fn change_membership(
        &self,
        change: MembershipChange,
    ) -> Result<Result<Membership, MembershipChangeError>, RequestError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.submit(Request::ChangeMembership(change, tx));
        // Joint changes take two commits; the loop answers Timeout itself.
        rx.recv_timeout(self.shared.request_timeout * 2).map_err(|e| self.recv_error(e))?
    }

    /// The configuration in force on this node: the last one its log holds.
    pub fn membership(&self) -> Result<Membership, RequestError> {
        self.status().map(|s| s.membership)
    }

    /// Stops the node: fails every waiting request, stops every thread and
    /// returns once they have ended. Calling it again, or from several
    /// handles, is harmless. Never call it from a [`Completion`]: it would
    /// wait for the thread it runs on.
    pub fn shutdown(&self) {
        // Ignore a failure: the node already stopped on its own.
        let _ = self.shared.requests.send(Request::Shutdown);
        self.shared.wake();
        let threads = std::mem::take(&mut *self.shared.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for thread in threads {
            if thread.join().is_err() {
                log::error!("{}: a runtime thread panicked", self.shared.id);
            }
        }
    }

    /// Running totals since the node started.
    pub fn metrics(&self) -> Metrics {
        let c = &self.shared.counters;
        Metrics {
            fsyncs: c.fsyncs.load(Ordering::Relaxed),
            writes: c.writes.load(Ordering::Relaxed),
            applied: c.applied.load(Ordering::Relaxed),
        }
    }

    /// Why the node stopped, once it has (after [`shutdown`](Handle::shutdown)
    /// or a fatal error).
    pub fn stopped(&self) -> Option<String> {
        self.shared.stopped.get().cloned()
    }

    /// Hands `request` to the event loop, or fails it if the node stopped.
    /// A failed status or transfer request is dropped: its caller sees the
    /// reply channel close and answers `Stopped`.
    fn submit(&self, request: Request) {
        if let Some(reason) = self.shared.stopped.get() {
            return request.fail(reason);
        }
        // The send cannot fail, since `Shared` holds a receiver; a request
        // it handed back would be dropped, which fails it as well.
        let _ = self.shared.requests.send(request);
        self.shared.wake();
        // The node may have stopped while this was queued, after the loop
        // failed what it found queued.
        if let Some(reason) = self.shared.stopped.get() {
            self.shared.fail_queued(reason);
        }
    }

    fn wait(&self, rx: &Receiver<Result<Vec<u8>, RequestError>>) -> Result<Vec<u8>, RequestError> {
        // The apply thread answers timed-out waiters itself; the margin
        // only covers a runtime that stopped without answering.
        match rx.recv_timeout(self.shared.request_timeout + Duration::from_secs(1)) {
            Ok(result) => result,
            Err(e) => Err(self.recv_error(e)),
        }
    }

    fn recv_error(&self, error: crossbeam_channel::RecvTimeoutError) -> RequestError {
        match error {
            crossbeam_channel::RecvTimeoutError::Timeout => RequestError::Timeout,
            crossbeam_channel::RecvTimeoutError::Disconnected => {
                RequestError::Stopped(self.shared.stop_reason())
            }
        }
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle").field("id", &self.shared.id).finish_non_exhaustive()
    }
}

/// The first request id of this run: the wall clock in nanoseconds, so that
/// ids never repeat across restarts and an entry proposed before a restart
/// never answers a caller of the next run.
fn first_request_id() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
}

/// Reads the envelope of a command entry.
pub(crate) fn open_envelope(data: &[u8]) -> Option<(NodeId, u64, &[u8])> {
    let (proposer, rest) = data.split_first_chunk::<8>()?;
    let (request_id, command) = rest.split_first_chunk::<8>()?;
    Some((NodeId(u64::from_le_bytes(*proposer)), u64::from_le_bytes(*request_id), command))
}
