//! Peer connections over mio: dialing with backoff, the handshake, framing,
//! and per-peer send queues bounded in bytes.
//!
//! Connections are one-way: a node sends to a peer on the connection it
//! dialed ([`Link`]) and receives on the connections peers dialed
//! ([`Inbound`]). Nothing has to decide which of two crossing connections
//! survives, and a peer is known by the handshake it sent, never by where
//! the connection came from (a proxy may sit in between).
//!
//! The peers change with the cluster's membership
//! ([`set_peers`](Transport::set_peers)). A node also accepts connections
//! from nodes its configuration does not list yet (the cluster id admits
//! them) and dials them back at the address their handshake gives: a node
//! waiting to be added first hears from a leader it knows nothing of.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use log::{debug, info, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};

use crate::codec::{self, FrameDecoder, Handshake, PeerState, HANDSHAKE_BYTES_MAX};
use crate::message::Message;
use crate::types::{Incarnation, Instant, NodeId};

/// The listener's token.
pub(crate) const LISTENER: Token = Token(0);
/// The event loop's waker.
pub(crate) const WAKER: Token = Token(1);
/// Links take tokens from here up, one per peer, never reused.
const FIRST_LINK: usize = 2;
/// Nodes outside the configuration that a node keeps links to, learned from
/// their handshakes; the oldest is forgotten first.
const LEARNED_PEERS_MAX: usize = 64;
/// Inbound connections take tokens from here up.
const FIRST_INBOUND: usize = 1 << 20;
/// Inbound connections open at once; more are refused. Peers need one or two
/// each; the rest is room for reconnects and strays.
const INBOUND_CONNECTIONS_MAX: usize = 256;
/// The buffer every connection reads into.
const SCRATCH_BYTES: usize = 64 << 10;
/// Written bytes kept at the front of a send queue before it is compacted.
const COMPACT_BYTES_MIN: usize = 1 << 20;

/// Transport settings, from the runtime's config.
#[derive(Clone, Debug)]
pub(crate) struct TransportConfig {
    pub(crate) id: NodeId,
    pub(crate) cluster_id: String,
    pub(crate) queue_bytes_max: usize,
    pub(crate) delay_min: Duration,
    pub(crate) delay_max: Duration,
    pub(crate) connect_timeout: Duration,
    /// This node's own peer address, told to the nodes it dials.
    pub(crate) advertise: String,
    /// This node's storage incarnation, told to the nodes it dials.
    pub(crate) incarnation: Incarnation,
    /// Where this node serves its clients, told to the nodes it dials.
    pub(crate) client_addr: String,
    /// Whether this node belongs to a cluster yet, told to the nodes it
    /// dials (see [`Transport::set_state`]).
    pub(crate) state: PeerState,
}

enum LinkState {
    /// Not connected; dial again at `retry_at`.
    Idle { retry_at: Instant },
    /// Dialing; given up at `deadline` (a blackholed address would
    /// otherwise hold the link for the kernel's SYN retries, minutes).
    Connecting { stream: TcpStream, deadline: Instant },
    /// Connected since `since`.
    Connected { stream: TcpStream, since: Instant },
}

/// The connection this node dialed to one peer, and its send queue.
struct Link {
    peer: NodeId,
    addr: SocketAddr,
    token: Token,
    state: LinkState,
    /// Bytes to send: the handshake, then frames. Invariant: empty while
    /// idle; `written <= out.len()`.
    out: Vec<u8>,
    written: usize,
    /// The next redial delay; doubles per failure up to `delay_max`, reset
    /// after a connection that lasted `delay_max`.
    delay: Duration,
    delay_min: Duration,
    delay_max: Duration,
    /// Registered for WRITABLE: only while bytes wait.
    wants_writable: bool,
}

enum InboundState {
    /// Waiting for the handshake; holds what has arrived of it.
    Greeting(Vec<u8>),
    /// Receiving frames from `peer`.
    Receiving { peer: NodeId, decoder: FrameDecoder },
}

/// A connection a peer dialed to this node.
struct Inbound {
    stream: TcpStream,
    addr: SocketAddr,
    state: InboundState,
}

/// Every peer connection of one node.
pub(crate) struct Transport {
    config: TransportConfig,
    listener: TcpListener,
    /// One per peer, sorted by id: the configured peers, then those learned
    /// from handshakes.
    links: Vec<Link>,
    /// The peers the configuration lists, with their addresses.
    configured: Vec<(NodeId, SocketAddr)>,
    /// Nodes outside the configuration that dialed this one, oldest first.
    learned: Vec<(NodeId, SocketAddr)>,
    next_link: usize,
    inbound: HashMap<Token, Inbound>,
    next_inbound: usize,
    /// Peers whose queued messages were lost since the last
    /// [`take_unreachable`](Transport::take_unreachable).
    unreachable: Vec<NodeId>,
    /// What each peer's latest handshake said of it: its incarnation and
    /// whether it belongs to a cluster.
    greetings: HashMap<NodeId, (Incarnation, PeerState)>,
    /// Client addresses peers gave in handshakes since the last
    /// [`take_client_addrs`](Transport::take_client_addrs).
    client_addrs: Vec<(NodeId, String)>,
    scratch: Vec<u8>,
}

impl Transport {
    /// Listens on `listener` (or binds `listen`) and prepares a link to each
    /// of `peers` (to be dialed at the first [`on_timer`](Transport::on_timer)).
    pub(crate) fn new(
        registry: &Registry,
        config: TransportConfig,
        listen: SocketAddr,
        listener: Option<std::net::TcpListener>,
        peers: &[(NodeId, SocketAddr)],
        now: Instant,
    ) -> io::Result<Transport> {
        let mut listener = match listener {
            Some(listener) => {
                listener.set_nonblocking(true)?;
                TcpListener::from_std(listener)
            }
            None => TcpListener::bind(listen)?,
        };
        registry.register(&mut listener, LISTENER, Interest::READABLE)?;
        let mut transport = Transport {
            config,
            listener,
            links: Vec::new(),
            configured: Vec::new(),
            learned: Vec::new(),
            next_link: FIRST_LINK,
            inbound: HashMap::new(),
            next_inbound: FIRST_INBOUND,
            unreachable: Vec::new(),
            greetings: HashMap::new(),
            client_addrs: Vec::new(),
            scratch: vec![0; SCRATCH_BYTES],
        };
        transport.set_peers(registry, peers, now);
        Ok(transport)
    }

    /// Makes the configured peers exactly `peers` (this node left out):
    /// links to new ones are dialed at the next timer, links to peers gone
    /// are closed, and a peer whose address changed is redialed there.
    pub(crate) fn set_peers(&mut self, registry: &Registry, peers: &[(NodeId, SocketAddr)], now: Instant) {
        let mut peers: Vec<(NodeId, SocketAddr)> =
            peers.iter().copied().filter(|&(id, _)| id != self.config.id).collect();
        peers.sort_unstable();
        peers.dedup_by_key(|p| p.0);
        if peers == self.configured {
            return;
        }
        self.configured = peers;
        self.learned.retain(|(id, _)| !self.configured.iter().any(|(c, _)| c == id));
        self.relink(registry, now);
    }

    /// Says from now on, in the handshakes of new connections, whether this
    /// node belongs to a cluster.
    pub(crate) fn set_state(&mut self, state: PeerState) {
        self.config.state = state;
    }

    /// What `peer`'s latest handshake said of it, if it has dialed.
    pub(crate) fn greeting(&self, peer: NodeId) -> Option<(Incarnation, PeerState)> {
        self.greetings.get(&peer).copied()
    }

    /// The client addresses peers gave in the handshakes received since
    /// the last call (a peer that gave none is left out).
    pub(crate) fn take_client_addrs(&mut self) -> impl Iterator<Item = (NodeId, String)> + '_ {
        self.client_addrs.drain(..)
    }

    /// Brings the links in line with the configured and learned peers.
    fn relink(&mut self, registry: &Registry, now: Instant) {
        let mut wanted: Vec<(NodeId, SocketAddr)> =
            self.configured.iter().chain(&self.learned).copied().collect();
        wanted.sort_unstable();
        self.links.retain_mut(|link| match wanted.iter().find(|(id, _)| *id == link.peer) {
            Some(&(_, addr)) if addr == link.addr => true,
            _ => {
                info!("no longer linked to {} at {}", link.peer, link.addr);
                link.close(registry);
                false
            }
        });
        for (peer, addr) in wanted {
            if self.links.iter().any(|l| l.peer == peer) {
                continue;
            }
            info!("{}: linking to {peer} at {addr}", self.config.id);
            let token = Token(self.next_link);
            self.next_link += 1;
            self.links.push(Link {
                peer,
                addr,
                token,
                state: LinkState::Idle { retry_at: now },
                out: Vec::new(),
                written: 0,
                delay: self.config.delay_min,
                delay_min: self.config.delay_min,
                delay_max: self.config.delay_max,
                wants_writable: false,
            });
        }
        self.links.sort_unstable_by_key(|l| l.peer);
    }

    /// A node outside the configuration dialed this one, saying it listens
    /// at `addr`: link to it so that answers reach it.
    fn learn(&mut self, registry: &Registry, peer: NodeId, addr: &str, now: Instant) {
        if self.configured.iter().any(|(id, _)| *id == peer) {
            return;
        }
        let Ok(addr) = addr.parse::<SocketAddr>() else {
            debug!("{}: {peer} gave no usable address ({addr:?}); it cannot be answered", self.config.id);
            return;
        };
        if self.learned.contains(&(peer, addr)) {
            return;
        }
        self.learned.retain(|(id, _)| *id != peer);
        if self.learned.len() >= LEARNED_PEERS_MAX {
            self.learned.remove(0);
        }
        self.learned.push((peer, addr));
        self.relink(registry, now);
    }

    /// The next redial.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.links
            .iter()
            .filter_map(|l| match l.state {
                LinkState::Idle { retry_at } => Some(retry_at),
                LinkState::Connecting { deadline, .. } => Some(deadline),
                LinkState::Connected { .. } => None,
            })
            .min()
    }

    /// Dials the peers whose redial time has come, and gives up dials
    /// that took too long.
    pub(crate) fn on_timer(&mut self, registry: &Registry, now: Instant) {
        for link in &mut self.links {
            match link.state {
                LinkState::Idle { retry_at } if retry_at <= now => link.dial(registry, &self.config, now),
                LinkState::Connecting { deadline, .. } if deadline <= now => {
                    debug!("{}: dialing {} at {} timed out", self.config.id, link.peer, link.addr);
                    link.disconnect(registry, now, &mut self.unreachable);
                }
                _ => {}
            }
        }
    }

    /// Queues `msg` for its peer. `false` if it was dropped: the peer is not
    /// connected or its queue is full.
    pub(crate) fn send(&mut self, msg: &Message) -> bool {
        let Some(link) = self.links.iter_mut().find(|l| l.peer == msg.to) else {
            debug!("{}: dropped a message to unknown node {}", self.config.id, msg.to);
            return false;
        };
        if matches!(link.state, LinkState::Idle { .. }) {
            return false;
        }
        if link.out.len() - link.written + codec::encoded_len(msg) > self.config.queue_bytes_max {
            debug!("{}: send queue to {} full, dropped {}", self.config.id, link.peer, msg.body.name());
            return false;
        }
        codec::encode_message(msg, &mut link.out);
        true
    }

    /// Writes what the queues hold, as far as the sockets take it.
    pub(crate) fn flush(&mut self, registry: &Registry, now: Instant) {
        for link in &mut self.links {
            // A link waiting for WRITABLE is written when that comes.
            if link.written < link.out.len()
                && !link.wants_writable
                && matches!(link.state, LinkState::Connected { .. })
            {
                link.write_queued(registry, &self.config, now, &mut self.unreachable);
            }
        }
    }

    /// Peers that lost queued messages, for the core's `handle_unreachable`.
    pub(crate) fn take_unreachable(&mut self) -> impl Iterator<Item = NodeId> + '_ {
        self.unreachable.drain(..)
    }

    /// Handles a readiness event for `token`, delivering the messages that
    /// arrived.
    pub(crate) fn on_event(
        &mut self,
        registry: &Registry,
        event: &mio::event::Event,
        now: Instant,
        deliver: &mut dyn FnMut(Message),
    ) {
        let token = event.token();
        if token == LISTENER {
            self.accept(registry);
        } else if token.0 >= FIRST_INBOUND {
            self.on_inbound(registry, token, event.is_read_closed() || event.is_error(), now, deliver);
        } else if let Some(link) = self.links.iter_mut().find(|l| l.token == token) {
            link.on_event(registry, event, &self.config, now, &mut self.scratch, &mut self.unreachable);
        }
    }

    fn accept(&mut self, registry: &Registry) {
        loop {
            let (mut stream, addr) = match self.listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    warn!("{}: accept failed: {e}", self.config.id);
                    return;
                }
            };
            if self.inbound.len() >= INBOUND_CONNECTIONS_MAX && !self.evict_a_stranger(registry) {
                warn!(
                    "{}: refused peer connection from {addr}: {INBOUND_CONNECTIONS_MAX} peer connections open",
                    self.config.id
                );
                continue;
            }
            let token = Token(self.next_inbound);
            self.next_inbound += 1;
            if let Err(e) = registry.register(&mut stream, token, Interest::READABLE) {
                warn!("{}: cannot register the connection from {addr}: {e}", self.config.id);
                continue;
            }
            let _ = stream.set_nodelay(true);
            debug!("{}: peer connection from {addr}", self.config.id);
            self.inbound.insert(token, Inbound { stream, addr, state: InboundState::Greeting(Vec::new()) });
        }
    }

    /// Makes room for a new connection by closing the oldest one that has
    /// not finished its handshake, so that strangers holding connections
    /// open cannot lock the peers out. `false` if every connection is a
    /// known peer's.
    fn evict_a_stranger(&mut self, registry: &Registry) -> bool {
        let oldest = self
            .inbound
            .iter()
            .filter(|(_, conn)| matches!(conn.state, InboundState::Greeting(_)))
            .map(|(&token, _)| token)
            .min();
        let Some(token) = oldest else { return false };
        let mut conn = self.inbound.remove(&token).expect("found above");
        warn!("{}: closed connection from {}: no handshake, and room is needed", self.config.id, conn.addr);
        let _ = registry.deregister(&mut conn.stream);
        true
    }

    fn on_inbound(
        &mut self,
        registry: &Registry,
        token: Token,
        peer_closed: bool,
        now: Instant,
        deliver: &mut dyn FnMut(Message),
    ) {
        let Some(conn) = self.inbound.get_mut(&token) else { return };
        match conn.receive(&self.config, &mut self.scratch, peer_closed, deliver) {
            Ok(None) => {}
            Ok(Some((peer, addr, greeting, client_addr))) => {
                self.greetings.insert(peer, greeting);
                if !client_addr.is_empty() {
                    self.client_addrs.push((peer, client_addr));
                }
                if !self.links.iter().any(|l| l.peer == peer) {
                    self.learn(registry, peer, &addr, now);
                }
                // A peer dials one connection at a time: its older ones are
                // dead (a half-open connection after a partition or a crash
                // never shows an error to a side that only reads). Close
                // them, or they would pile up and lock the peers out.
                let stale: Vec<Token> = self
                    .inbound
                    .iter()
                    .filter(|&(&t, c)| {
                        t != token && matches!(c.state, InboundState::Receiving { peer: p, .. } if p == peer)
                    })
                    .map(|(&t, _)| t)
                    .collect();
                for t in stale {
                    let mut conn = self.inbound.remove(&t).expect("listed above");
                    debug!(
                        "{}: connection from {} replaced by a newer one from {peer}",
                        self.config.id, conn.addr
                    );
                    let _ = registry.deregister(&mut conn.stream);
                }
            }
            Err(reason) => {
                let mut conn = self.inbound.remove(&token).expect("present above");
                match reason {
                    Close::Quietly(why) => {
                        debug!("{}: connection from {} closed: {why}", self.config.id, conn.addr)
                    }
                    Close::Warn(why) => {
                        warn!("{}: closed connection from {}: {why}", self.config.id, conn.addr)
                    }
                }
                let _ = registry.deregister(&mut conn.stream);
            }
        }
    }
}

/// What a peer's handshake said: who, where it listens, its incarnation and
/// whether it belongs to a cluster, and where it serves its clients.
type Greeted = (NodeId, String, (Incarnation, PeerState), String);

/// Why a connection ends.
enum Close {
    /// The peer went away: normal.
    Quietly(String),
    /// The peer misbehaved: worth an operator's attention.
    Warn(String),
}

impl Inbound {
    /// Reads until the socket is drained, delivering every message; `Err`
    /// when the connection must close.
    fn receive(
        &mut self,
        config: &TransportConfig,
        scratch: &mut [u8],
        peer_closed: bool,
        deliver: &mut dyn FnMut(Message),
    ) -> Result<Option<Greeted>, Close> {
        let mut greeted = None;
        loop {
            // A short read of frames emptied the socket, so new bytes raise a
            // new event, unless the peer closed: its FIN may have been taken
            // with the last bytes, and only a further read shows it. (A
            // greeting read is capped at the handshake, so it proves nothing.)
            let was_receiving = matches!(self.state, InboundState::Receiving { .. });
            let read = match &mut self.state {
                InboundState::Greeting(buf) => {
                    let room = (HANDSHAKE_BYTES_MAX - buf.len()).min(scratch.len());
                    let n = read_some(&mut self.stream, &mut scratch[..room])?;
                    buf.extend_from_slice(&scratch[..n]);
                    if let Some((handshake, len)) = codec::decode_handshake(buf)
                        .map_err(|e| Close::Warn(format!("bad handshake: {e}")))?
                    {
                        let peer = check_handshake(&handshake, config).map_err(Close::Warn)?;
                        let mut decoder = FrameDecoder::new();
                        decoder.extend(&buf[len..]);
                        debug!("{}: {} connected from {}", config.id, peer, self.addr);
                        self.state = InboundState::Receiving { peer, decoder };
                        greeted = Some((
                            peer,
                            handshake.addr,
                            (handshake.incarnation, handshake.state),
                            handshake.client_addr,
                        ));
                    }
                    n
                }
                // Into the shared scratch buffer, then only the bytes that
                // came: `FrameDecoder::read_from` would zero 64 KiB of
                // fresh buffer per read.
                InboundState::Receiving { decoder, .. } => {
                    let n = read_some(&mut self.stream, scratch)?;
                    decoder.extend(&scratch[..n]);
                    n
                }
            };
            let drained = was_receiving && !peer_closed && read < scratch.len();
            if let InboundState::Receiving { peer, decoder } = &mut self.state {
                loop {
                    match decoder.next_message() {
                        Ok(Some(msg)) if msg.from == *peer && msg.to == config.id => deliver(msg),
                        Ok(Some(msg)) => {
                            return Err(Close::Warn(format!(
                                "{} sent a message from {} to {}",
                                peer, msg.from, msg.to
                            )))
                        }
                        Ok(None) => break,
                        Err(e) => return Err(Close::Warn(format!("malformed frame from {peer}: {e}"))),
                    }
                }
            }
            if read == 0 || drained {
                return Ok(greeted);
            }
        }
    }
}

/// Reads once into `buf`: `Ok(0)` means "nothing more for now", and a
/// closed connection is an `Err`.
fn read_some(stream: &mut TcpStream, buf: &mut [u8]) -> Result<usize, Close> {
    loop {
        return match stream.read(buf) {
            Ok(0) if !buf.is_empty() => Err(Close::Quietly("closed by the peer".into())),
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => Err(Close::Quietly(e.to_string())),
        };
    }
}

/// The peer a handshake names, if this node should accept it.
///
/// Membership is not checked: the configuration changes, and a node learns
/// of new members after they first call. The cluster id admits a node; what
/// a non-member says never counts in the core.
fn check_handshake(handshake: &Handshake, config: &TransportConfig) -> Result<NodeId, String> {
    if handshake.cluster_id != config.cluster_id {
        return Err(format!(
            "node {} belongs to cluster {:?}, this node to {:?}",
            handshake.from, handshake.cluster_id, config.cluster_id
        ));
    }
    if handshake.to != config.id {
        return Err(format!(
            "node {} meant to reach node {}, this is {}",
            handshake.from, handshake.to, config.id
        ));
    }
    if handshake.from == NodeId(0) || handshake.from == config.id {
        return Err(format!("node {} cannot be a peer of node {}", handshake.from, config.id));
    }
    Ok(handshake.from)
}

impl Link {
    fn dial(&mut self, registry: &Registry, config: &TransportConfig, now: Instant) {
        debug_assert!(self.out.is_empty());
        match TcpStream::connect(self.addr) {
            Ok(mut stream) => {
                if let Err(e) =
                    registry.register(&mut stream, self.token, Interest::READABLE | Interest::WRITABLE)
                {
                    warn!("{}: cannot register the connection to {}: {e}", config.id, self.peer);
                    self.retry_later(now);
                    return;
                }
                self.wants_writable = true;
                codec::encode_handshake(
                    &Handshake {
                        cluster_id: config.cluster_id.clone(),
                        from: config.id,
                        to: self.peer,
                        addr: config.advertise.clone(),
                        incarnation: config.incarnation,
                        state: config.state,
                        client_addr: config.client_addr.clone(),
                    },
                    &mut self.out,
                );
                self.state = LinkState::Connecting { stream, deadline: now + config.connect_timeout };
            }
            Err(e) => {
                debug!("{}: cannot dial {} at {}: {e}", config.id, self.peer, self.addr);
                self.retry_later(now);
            }
        }
    }

    fn on_event(
        &mut self,
        registry: &Registry,
        event: &mio::event::Event,
        config: &TransportConfig,
        now: Instant,
        scratch: &mut [u8],
        unreachable: &mut Vec<NodeId>,
    ) {
        match &mut self.state {
            LinkState::Idle { .. } => {}
            LinkState::Connecting { stream, .. } => {
                if !event.is_writable() && !event.is_error() && !event.is_write_closed() {
                    return;
                }
                let failed = match stream.take_error() {
                    Ok(Some(e)) | Err(e) => Some(e),
                    Ok(None) => match stream.peer_addr() {
                        Ok(_) => None,
                        // Not connected yet: a spurious wakeup.
                        Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                        Err(e) => Some(e),
                    },
                };
                if let Some(e) = failed {
                    debug!("{}: cannot connect to {} at {}: {e}", config.id, self.peer, self.addr);
                    self.disconnect(registry, now, unreachable);
                    return;
                }
                let _ = stream.set_nodelay(true);
                let LinkState::Connecting { stream, .. } =
                    std::mem::replace(&mut self.state, LinkState::Idle { retry_at: now })
                else {
                    unreachable!("matched above")
                };
                info!("{}: connected to {} at {}", config.id, self.peer, self.addr);
                self.state = LinkState::Connected { stream, since: now };
                self.write_queued(registry, config, now, unreachable);
            }
            LinkState::Connected { stream, .. } => {
                if event.is_readable() || event.is_read_closed() {
                    // Peers never send on a link: bytes or an end of stream
                    // both mean the connection is finished.
                    match read_some(stream, scratch) {
                        Ok(0) => {}
                        Ok(_) => {
                            warn!(
                                "{}: {} sent data on a one-way connection; reconnecting",
                                config.id, self.peer
                            );
                            self.disconnect(registry, now, unreachable);
                            return;
                        }
                        Err(Close::Quietly(why) | Close::Warn(why)) => {
                            info!("{}: connection to {} lost: {why}", config.id, self.peer);
                            self.disconnect(registry, now, unreachable);
                            return;
                        }
                    }
                }
                if event.is_writable() {
                    self.write_queued(registry, config, now, unreachable);
                }
            }
        }
    }

    /// Writes queued bytes until done or the socket is full.
    fn write_queued(
        &mut self,
        registry: &Registry,
        config: &TransportConfig,
        now: Instant,
        unreachable: &mut Vec<NodeId>,
    ) {
        let LinkState::Connected { stream, .. } = &mut self.state else { return };
        while self.written < self.out.len() {
            match stream.write(&self.out[self.written..]) {
                Ok(0) => break,
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    info!("{}: connection to {} lost: {e}", config.id, self.peer);
                    self.disconnect(registry, now, unreachable);
                    return;
                }
            }
        }
        let done = self.written == self.out.len();
        if done {
            self.out.clear();
            self.written = 0;
        } else if self.written >= COMPACT_BYTES_MIN && self.written * 2 >= self.out.len() {
            self.out.drain(..self.written);
            self.written = 0;
        }
        if done == self.wants_writable {
            self.wants_writable = !done;
            let interest = if done { Interest::READABLE } else { Interest::READABLE | Interest::WRITABLE };
            if let Err(e) = registry.reregister(stream, self.token, interest) {
                warn!("{}: cannot reregister the connection to {}: {e}", config.id, self.peer);
                self.disconnect(registry, now, unreachable);
            }
        }
    }

    /// Drops the connection and what it queued, and schedules a redial.
    fn disconnect(&mut self, registry: &Registry, now: Instant, unreachable: &mut Vec<NodeId>) {
        match std::mem::replace(&mut self.state, LinkState::Idle { retry_at: now }) {
            LinkState::Connected { mut stream, since } => {
                let _ = registry.deregister(&mut stream);
                // Back off afresh only after a connection that lasted: a peer
                // that accepts and at once refuses the handshake (another
                // cluster) must not be redialed at the shortest delay forever.
                if now.saturating_duration_since(since) >= self.delay_max {
                    self.delay = self.delay_min;
                }
            }
            LinkState::Connecting { mut stream, .. } => {
                let _ = registry.deregister(&mut stream);
            }
            LinkState::Idle { .. } => {}
        }
        if self.out.len() > self.written {
            unreachable.push(self.peer);
        }
        self.out.clear();
        self.written = 0;
        self.wants_writable = false;
        self.retry_later(now);
    }

    /// Closes the link for good: its peer left the configuration.
    fn close(&mut self, registry: &Registry) {
        match &mut self.state {
            LinkState::Connected { stream, .. } | LinkState::Connecting { stream, .. } => {
                let _ = registry.deregister(stream);
            }
            LinkState::Idle { .. } => {}
        }
    }

    fn retry_later(&mut self, now: Instant) {
        self.state = LinkState::Idle { retry_at: now + self.delay };
        self.delay = (self.delay * 2).min(self.delay_max);
    }
}
