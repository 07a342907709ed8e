//! The Redis-protocol server: the [`kv`](crate::kv) service over TCP, on a
//! [`runtime`](crate::runtime) node.
//!
//! One thread runs a mio loop over the listener and every client
//! connection. Writes and reads go to the node through
//! [`Handle::propose_with`] and [`Handle::read_with`], whose completions
//! come back on a channel with a [`mio::Waker`], so thousands of clients
//! need no thread each.
//!
//! Each connection answers its requests in order. Pipelined writes go to the
//! node together (up to 1,024 per connection), since the log keeps their
//! order; any other request waits until every write before it is answered,
//! so replies keep request order and a client always reads its own writes.
//! What a slow or hostile client can make this node hold is bounded by the
//! parser's limits, that window, and 4 MiB of unsent replies (past which the
//! connection runs nothing more until the client reads).

mod connection;
mod machine;
mod member;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use log::{error, info, warn};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};

use self::connection::Connection;
pub use self::machine::{KvMachine, KvMachineError};
use crate::kv::{RespLimits, ServerInfo};
use crate::runtime::{Handle, RequestError};
use crate::types::{LogIndex, Term};

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_CONNECTION: usize = 2;

/// How the server treats its clients.
#[derive(Clone, Copy, Debug)]
pub struct ServerConfig {
    /// Where to listen for clients.
    pub addr: SocketAddr,
    /// Clients connected at once; one more is told `-ERR max number of
    /// clients reached` and disconnected.
    pub connections_max: usize,
    /// The limits on each client's requests.
    pub resp_limits: RespLimits,
}

impl ServerConfig {
    /// Defaults for a server on `addr` in front of a node whose commands
    /// may be up to `entry_bytes_max` bytes: arguments up to twice that are
    /// parsed (so that a value just over the limit gets a clear `-ERR`), and
    /// anything larger is a protocol error that closes the connection.
    pub fn new(addr: SocketAddr, entry_bytes_max: u64) -> ServerConfig {
        let bulk_bytes_max = usize::try_from(entry_bytes_max.saturating_mul(2)).unwrap_or(usize::MAX);
        ServerConfig {
            addr,
            connections_max: 10_000,
            resp_limits: RespLimits {
                bulk_bytes_max,
                request_bytes_max: bulk_bytes_max.saturating_mul(2),
                ..RespLimits::default()
            },
        }
    }
}

/// A running server. [`stop`](Server::stop) it before shutting the node
/// down.
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Listens on `config.addr` and serves clients from a new thread.
    pub fn start(config: ServerConfig, node: Handle) -> io::Result<Server> {
        let poll = Poll::new()?;
        let mut listener = TcpListener::bind(config.addr)?;
        let addr = listener.local_addr()?;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let stop = Arc::new(AtomicBool::new(false));
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        let mut event_loop = ServerLoop {
            poll,
            listener,
            config,
            node,
            connections: HashMap::new(),
            next_token: FIRST_CONNECTION,
            next_client_id: 1,
            scratch: vec![0; 64 << 10],
            answers: Answers { tx: done_tx, waker: Arc::clone(&waker), wake_pending: Arc::default() },
            answered: done_rx,
            stop: Arc::clone(&stop),
            info: None,
        };
        let thread =
            std::thread::Builder::new().name(format!("oar-resp-{addr}")).spawn(move || event_loop.run())?;
        info!("serving RESP on {addr}");
        Ok(Server { addr, stop, waker, thread: Some(thread) })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every connection and the listener, and returns once the
    /// server thread ended.
    pub fn stop(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.waker.wake();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                error!("the RESP server thread panicked");
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Which of a connection's requests an answer is for.
#[derive(Clone, Copy, Debug)]
enum Slot {
    /// The write with this number on its connection.
    Write(u64),
    /// The one read in flight.
    Read,
}

/// An answer from the node for a request a connection has in flight.
struct Answer {
    token: Token,
    slot: Slot,
    result: Result<Vec<u8>, RequestError>,
}

/// Where completions send their answers, waking the server loop once per
/// batch.
#[derive(Clone)]
struct Answers {
    tx: Sender<Answer>,
    waker: Arc<Waker>,
    wake_pending: Arc<AtomicBool>,
}

impl Answers {
    fn send(&self, answer: Answer) {
        if self.tx.send(answer).is_ok() && !self.wake_pending.swap(true, Ordering::AcqRel) {
            let _ = self.waker.wake();
        }
    }
}

struct ServerLoop {
    poll: Poll,
    listener: TcpListener,
    config: ServerConfig,
    node: Handle,
    connections: HashMap<Token, Connection>,
    /// Tokens are never reused, so a late answer for a closed connection
    /// cannot reach a new one.
    next_token: usize,
    next_client_id: u64,
    /// Every connection reads into this, then hands the bytes to its parser.
    scratch: Vec<u8>,
    answers: Answers,
    answered: Receiver<Answer>,
    stop: Arc<AtomicBool>,
    /// The node's state for INFO and ROLE, fetched when first asked for in
    /// a turn of the loop.
    info: Option<ServerInfo>,
}

impl ServerLoop {
    fn run(&mut self) {
        let mut events = Events::with_capacity(1024);
        while !self.stop.load(Ordering::Acquire) {
            if let Err(e) = self.poll.poll(&mut events, None) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                error!("the RESP server's poll failed, stopping it: {e}");
                break;
            }
            self.info = None;
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
                    token => {
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            if let Some(conn) = self.connections.get_mut(&token) {
                                conn.mark_readable(event.is_read_closed() || event.is_error());
                            }
                        }
                        self.pump(token);
                    }
                }
            }
            self.answers.wake_pending.swap(false, Ordering::AcqRel);
            while let Ok(answer) = self.answered.try_recv() {
                if let Some(conn) = self.connections.get_mut(&answer.token) {
                    conn.answer(answer.slot, answer.result);
                    self.pump(answer.token);
                }
            }
        }
        info!("RESP server on {} stopped", self.config.addr);
    }

    fn accept(&mut self) {
        loop {
            let (mut stream, addr) = match self.listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of file descriptors, most likely: keep serving
                    // the connections there are.
                    warn!("accepting a client failed: {e}");
                    return;
                }
            };
            if self.connections.len() >= self.config.connections_max {
                use std::io::Write as _;
                let _ = stream.write_all(b"-ERR max number of clients reached\r\n");
                continue;
            }
            let token = Token(self.next_token);
            self.next_token += 1;
            if let Err(e) = self.poll.registry().register(&mut stream, token, Interest::READABLE) {
                warn!("cannot register client {addr}: {e}");
                continue;
            }
            let _ = stream.set_nodelay(true);
            let id = self.next_client_id;
            self.next_client_id += 1;
            self.connections.insert(token, Connection::new(stream, token, addr, id, self.config.resp_limits));
            self.pump(token);
        }
    }

    /// Moves a connection forward as far as it can go, and closes it if it
    /// is finished.
    fn pump(&mut self, token: Token) {
        let Some(conn) = self.connections.get_mut(&token) else { return };
        let context = connection::Context {
            node: &self.node,
            token,
            answers: &self.answers,
            info: &mut self.info,
            registry: self.poll.registry(),
            entry_bytes_max: self.node.command_bytes_max(),
        };
        if conn.pump(&mut self.scratch, context).is_break() {
            let mut conn = self.connections.remove(&token).expect("present above");
            conn.deregister(self.poll.registry());
        }
    }
}

/// The node's state as INFO and ROLE report it.
fn server_info(node: &Handle) -> ServerInfo {
    match node.status() {
        Ok(status) => ServerInfo {
            node: status.id,
            role: status.role,
            term: status.term,
            leader: status.leader,
            commit_index: status.commit,
            applied_index: status.applied,
            keys: None,
            incarnation: status.incarnation,
            admission: status.admission,
            repair_to: status.repair_to,
            disk: status.disk,
        },
        Err(_) => placeholder_info(node),
    }
}

/// What commands that do not report the node's state are given.
fn placeholder_info(node: &Handle) -> ServerInfo {
    ServerInfo {
        node: node.id(),
        role: crate::core::Role::Follower,
        term: Term(0),
        leader: None,
        commit_index: LogIndex(0),
        applied_index: LogIndex(0),
        keys: None,
        incarnation: crate::types::Incarnation::UNKNOWN,
        admission: crate::core::Admission::NotMember,
        repair_to: LogIndex(0),
        disk: None,
    }
}
