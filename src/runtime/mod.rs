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
//! Every command carries an envelope: the proposing node and a request id,
//! then a [session envelope](crate::session::Envelope) tag. When the entry
//! is applied, on whatever node proposed it, the apply thread finds the
//! waiting caller by that id and hands it the state machine's answer. A
//! command of a [`Session`] goes through the replicated
//! [`SessionTable`](crate::session::SessionTable) first, so that a retry is
//! applied once.

mod apply;
mod bootstrap;
mod clock;
mod config;
mod error;
mod event_loop;
mod log_writer;
mod pending;
mod resend;
mod session;
mod snapshot_send;
mod snapshots;
mod transport;

#[cfg(test)]
mod tests;

pub use self::config::RuntimeConfig;
pub use self::error::{RequestError, StartError, StopReason, Unanswered};
use self::session::wall_clock_ms;
pub use self::session::Session;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use bytes::{BufMut, Bytes};
use crossbeam_channel::{Receiver, Sender};

use crate::config::ConfigError;
use crate::core::{MembershipChangeError, Status, TransferError};
use crate::membership::{Membership, MembershipChange};
use crate::session::Envelope;
use crate::types::{LogIndex, NodeId};

/// The bytes of the envelope in front of every plain command: the proposing
/// node and its request id, both `u64` little-endian, and the one-byte
/// [session envelope](crate::session::Envelope) tag.
pub const ENVELOPE_BYTES: usize = REQUEST_ENVELOPE_BYTES + 1;

/// The proposing node and the request id.
pub(crate) const REQUEST_ENVELOPE_BYTES: usize = 16;

/// The application's replicated state.
///
/// Every node applies the same commands in the same order, so `apply` must be
/// deterministic: the same state and command give the same new state and
/// answer on every node. `snapshot` and `restore` let the log be compacted
/// and let a node far behind catch up from a copy of the state instead of the
/// whole log; both stream, so the state may exceed memory.
pub trait StateMachine: Send + 'static {
    /// Why the state machine refuses a command or a snapshot. It stops the
    /// node, and reaches callers and [`Handle::stopped`] inside
    /// [`StopReason::Apply`] or [`StopReason::Restore`].
    type Error: std::error::Error + Send + Sync + 'static;

    /// Applies the committed command at `index` and returns the answer for
    /// the caller that proposed it. An `Err` means this node cannot go on
    /// (a command it cannot decode: its log is damaged or a peer runs an
    /// incompatible version): the node stops rather than diverge.
    fn apply(&mut self, index: LogIndex, command: &[u8]) -> Result<Vec<u8>, Self::Error>;

    /// Answers a read-only query on the current state. Called only when the
    /// state reflects every write a linearizable read must see.
    fn query(&self, query: &[u8]) -> Vec<u8>;

    /// Writes the whole state to `out`, to be read back by `restore` on
    /// this node or another. The runtime buffers, checksums and fsyncs it.
    /// An error stops the node (its disk is failing).
    fn snapshot(&self, out: &mut dyn std::io::Write) -> std::io::Result<()>;

    /// Replaces the whole state with the one `input` holds, as `snapshot`
    /// wrote it. The runtime verified the bytes' checksum; an `Err` (an
    /// incompatible version, or `input` failing to read) stops the node.
    fn restore(&mut self, input: &mut dyn std::io::Read) -> Result<(), Self::Error>;
}

/// One member of the cluster and the address its raft port listens on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Its node id.
    pub id: NodeId,
    /// Where it listens for peer connections.
    pub addr: SocketAddr,
}

/// Whoever waits for a request's answer. Its function is called exactly
/// once, on some runtime thread, so it must be quick (send on a channel,
/// wake a poller). A completion dropped unanswered (the node stopped while
/// the request was queued, or a thread died) answers as the node's stop
/// would: [`RequestError::Stopped`] while the command had not been handed
/// to Raft, [`RequestError::OutcomeUnknown`] once it had.
pub struct Completion {
    f: Option<Box<dyn FnOnce(Answer) + Send>>,
    /// Set once the core accepted the command: from then on it may be
    /// appended, so no answer means "outcome unknown", never "not done".
    handed_off: bool,
    /// The node it was handed to, to find out why it stopped if this is
    /// dropped unanswered. Weak: a queued request must not keep the node's
    /// shared state alive.
    node: Weak<Shared>,
}

/// What a request gets back: the state machine's answer, or why there is
/// none.
pub type Answer = Result<Vec<u8>, RequestError>;

impl Completion {
    /// Wraps the function that takes the answer.
    pub fn new(f: impl FnOnce(Result<Vec<u8>, RequestError>) + Send + 'static) -> Completion {
        Completion { f: Some(Box::new(f)), handed_off: false, node: Weak::new() }
    }

    /// Hands over the answer.
    pub fn complete(mut self, result: Result<Vec<u8>, RequestError>) {
        if let Some(f) = self.f.take() {
            f(result);
        }
    }

    /// Answers that the node stopped: `Stopped` before the hand-off,
    /// `OutcomeUnknown` after.
    pub(crate) fn stopped(self, reason: StopReason) {
        let error = if self.handed_off {
            RequestError::OutcomeUnknown { why: Unanswered::Stopped(reason) }
        } else {
            RequestError::Stopped(reason)
        };
        self.complete(Err(error));
    }

    /// Notes that the core accepted the command (appended, or forwarded to
    /// the leader).
    pub(crate) fn handed_off(&mut self) {
        self.handed_off = true;
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        if let Some(f) = self.f.take() {
            let reason = self
                .node
                .upgrade()
                .and_then(|node| node.stopped.get().cloned())
                .unwrap_or(StopReason::Abandoned);
            f(Err(if self.handed_off {
                RequestError::OutcomeUnknown { why: Unanswered::Stopped(reason) }
            } else {
                RequestError::Stopped(reason)
            }));
        }
    }
}

impl fmt::Debug for Completion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Completion").field("handed_off", &self.handed_off).finish_non_exhaustive()
    }
}

/// Work handed to the event loop.
pub(crate) enum Request {
    Propose {
        command: resend::Proposal,
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
    resent: AtomicU64,
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
    /// Proposals this node sent again because they may have been lost
    /// with a leader (or on the way to one); each is applied once however
    /// many copies commit.
    pub resent: u64,
}

impl Request {
    /// Answers `Stopped` to whoever waits for this request, which never
    /// reached the core. A status or transfer request is dropped: its
    /// caller sees the reply channel close.
    fn fail(self, reason: &StopReason) {
        match self {
            Request::Propose { done, .. } | Request::Read { done, .. } => done.stopped(reason.clone()),
            Request::ChangeMembership(_, reply) => {
                drop(reply.send(Err(RequestError::Stopped(reason.clone()))))
            }
            Request::Status(_) | Request::Transfer(..) | Request::Shutdown => {}
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
    session_ttl: Duration,
    session_retry_for: Duration,
    entry_bytes_max: u64,
    /// Why the node stopped, once it has. The first reason recorded wins:
    /// the thread that failed records it before anyone learns of the stop.
    stopped: OnceLock<StopReason>,
    counters: Counters,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Where each node serves its clients, this one included: its own
    /// `client_addr`, and what each peer's handshake said, kept after it
    /// disconnects (the last word heard).
    client_addrs: Mutex<BTreeMap<NodeId, String>>,
    /// While set, the log writer's fsync hangs (tests of a stalled disk).
    disk_hang: (Mutex<bool>, std::sync::Condvar),
}

impl Shared {
    /// Blocks the log writer while a test hangs the disk.
    pub(crate) fn wait_while_disk_hangs(&self) {
        let (hung, changed) = &self.disk_hang;
        let guard = hung.lock().unwrap_or_else(|e| e.into_inner());
        drop(changed.wait_while(guard, |hung| *hung).unwrap_or_else(|e| e.into_inner()));
    }

    fn hang_disk(&self, hang: bool) {
        let (hung, changed) = &self.disk_hang;
        *hung.lock().unwrap_or_else(|e| e.into_inner()) = hang;
        changed.notify_all();
    }

    /// Wakes the event loop unless a wakeup is already pending.
    pub(crate) fn wake(&self) {
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            if let Err(e) = self.waker.wake() {
                log::error!("{}: cannot wake the event loop: {e}", self.id);
            }
        }
    }

    /// Fails every request still queued for the event loop.
    pub(crate) fn fail_queued(&self, reason: &StopReason) {
        for request in self.requests_rx.try_iter() {
            request.fail(reason);
        }
    }

    /// Records why the node stops, unless a reason was recorded already;
    /// returns the one that stands.
    pub(crate) fn record_stop(&self, reason: StopReason) -> StopReason {
        self.stopped.get_or_init(|| reason).clone()
    }

    pub(crate) fn stop_reason(&self) -> StopReason {
        self.stopped.get().cloned().unwrap_or(StopReason::Abandoned)
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
            return Err(StartError::Config(ConfigError {
                field: "peers",
                reason: format!(
                    "the listener is bound to {bound}, but the peers list {id} at {listed:?}; give them the same address"
                ),
            }));
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
    /// limit less the envelope. A [`Session`] command may be
    /// [`COMMAND_HEADER_BYTES`](crate::session::COMMAND_HEADER_BYTES) - 1
    /// bytes shorter.
    pub fn command_bytes_max(&self) -> u64 {
        self.shared.entry_bytes_max.saturating_sub(ENVELOPE_BYTES as u64)
    }

    /// Proposes `command` and blocks until it is applied, returning the
    /// state machine's answer. On a follower the command is forwarded to the
    /// leader; the answer still comes back here.
    pub fn propose(&self, command: &[u8]) -> Result<Vec<u8>, RequestError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.propose_with(command, Completion::new(move |result| drop(tx.send(result))));
        self.wait(&rx, true)
    }

    /// Proposes `command` and returns at once; `done` is called with the
    /// answer (or the error) later, on a runtime thread. For servers that
    /// keep many requests in flight without a thread each.
    pub fn propose_with(&self, command: &[u8], done: Completion) {
        self.propose_envelope(Envelope::Plain(command), done);
    }

    /// Proposes `envelope` behind this node's request envelope.
    fn propose_envelope(&self, envelope: Envelope<'_>, mut done: Completion) {
        done.node = Arc::downgrade(&self.shared);
        let bytes = (REQUEST_ENVELOPE_BYTES + envelope.encoded_len()) as u64;
        if bytes > self.shared.entry_bytes_max {
            return done.complete(Err(RequestError::TooLarge { bytes, max: self.shared.entry_bytes_max }));
        }
        let request_id = self.shared.next_request_id.fetch_add(1, Ordering::Relaxed);
        // A plain command leaves room for the event loop to put it in the
        // node's own session (see `resend`), without a copy.
        let room = if matches!(envelope, Envelope::Plain(_)) { resend::ROOM } else { 0 };
        let mut enveloped = Vec::with_capacity(room + bytes as usize);
        enveloped.resize(room, 0);
        enveloped.put_u64_le(self.shared.id.0);
        enveloped.put_u64_le(request_id);
        envelope.encode(&mut enveloped);
        let command = match envelope {
            Envelope::Plain(_) => resend::Proposal::Plain(enveloped),
            _ => resend::Proposal::Ready(Bytes::from(enveloped)),
        };
        self.submit(Request::Propose { command, request_id, done });
    }

    /// Proposes `envelope` and blocks until it is applied.
    fn propose_envelope_wait(&self, envelope: Envelope<'_>) -> Result<Vec<u8>, RequestError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.propose_envelope(envelope, Completion::new(move |result| drop(tx.send(result))));
        self.wait(&rx, true)
    }

    /// Runs `query` on the state machine once it reflects every write
    /// acknowledged before this call (a linearizable read, by ReadIndex),
    /// and returns the answer.
    pub fn read(&self, query: &[u8]) -> Result<Vec<u8>, RequestError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.read_with(query, Completion::new(move |result| drop(tx.send(result))));
        self.wait(&rx, false)
    }

    /// [`read`](Handle::read) without blocking: `done` gets the answer.
    pub fn read_with(&self, query: &[u8], mut done: Completion) {
        done.node = Arc::downgrade(&self.shared);
        self.submit(Request::Read { query: Bytes::copy_from_slice(query), done });
    }

    /// The node's role, term, leader and progress.
    pub fn status(&self) -> Result<Status, RequestError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.submit(Request::Status(tx));
        rx.recv_timeout(self.shared.request_timeout).map_err(|e| self.recv_error(e, false))
    }

    /// Asks this node, if it leads, to hand leadership to `to`. Returns once
    /// the transfer started; watch [`status`](Handle::status) for the
    /// outcome.
    pub fn transfer_leadership(&self, to: NodeId) -> Result<Result<(), TransferError>, RequestError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.submit(Request::Transfer(to, tx));
        rx.recv_timeout(self.shared.request_timeout).map_err(|e| self.recv_error(e, false))
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
        // Joint changes take two commits; the loop answers a timeout itself.
        // Every refusal before the hand-off is answered explicitly, so a
        // reply channel that closes unanswered may hide an appended change.
        rx.recv_timeout(self.shared.request_timeout * 2).map_err(|e| self.recv_error(e, true))?
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
        self.shared.hang_disk(false);
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

    /// Makes the log writer's next fsyncs hang until called with `false`
    /// (or until shutdown): a stalled disk, for tests.
    #[doc(hidden)]
    pub fn debug_hang_disk(&self, hang: bool) {
        self.shared.hang_disk(hang);
    }

    /// Where each node serves its clients, as far as this node knows: its
    /// own [`RuntimeConfig::client_addr`] and those its peers gave when they
    /// last connected (a peer that never connected is missing). For
    /// sending a client to the leader.
    pub fn client_addresses(&self) -> BTreeMap<NodeId, String> {
        self.shared.client_addrs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Running totals since the node started.
    pub fn metrics(&self) -> Metrics {
        let c = &self.shared.counters;
        Metrics {
            fsyncs: c.fsyncs.load(Ordering::Relaxed),
            writes: c.writes.load(Ordering::Relaxed),
            applied: c.applied.load(Ordering::Relaxed),
            resent: c.resent.load(Ordering::Relaxed),
        }
    }

    /// Why the node stopped, once it has (after [`shutdown`](Handle::shutdown)
    /// or a fatal error).
    pub fn stopped(&self) -> Option<StopReason> {
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

    /// Waits for the answer to a proposal (`writes`) or a read.
    fn wait(
        &self,
        rx: &Receiver<Result<Vec<u8>, RequestError>>,
        writes: bool,
    ) -> Result<Vec<u8>, RequestError> {
        // The apply thread answers timed-out waiters itself; the margin
        // only covers a runtime that stopped without answering.
        match rx.recv_timeout(self.shared.request_timeout + Duration::from_secs(1)) {
            Ok(result) => result,
            Err(e) => Err(self.recv_error(e, writes)),
        }
    }

    /// The error for a reply that did not come: for a request that may
    /// write (`writes`), the outcome is unknown.
    fn recv_error(&self, error: crossbeam_channel::RecvTimeoutError, writes: bool) -> RequestError {
        use crossbeam_channel::RecvTimeoutError::{Disconnected, Timeout};
        match (error, writes) {
            (Timeout, false) => RequestError::Timeout,
            (Timeout, true) => RequestError::OutcomeUnknown { why: Unanswered::Timeout },
            (Disconnected, false) => RequestError::Stopped(self.shared.stop_reason()),
            (Disconnected, true) => {
                RequestError::OutcomeUnknown { why: Unanswered::Stopped(self.shared.stop_reason()) }
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
