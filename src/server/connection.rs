//! One client connection: parse, answer in order, write back.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::ops::ControlFlow;

use log::debug;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use super::{placeholder_info, server_info, Answer, Answers, Slot};
use crate::kv::{
    answer_local, encode_read, encode_write, write_entry_len, ClientState, Command, CommandError, LocalOp,
    RequestParser, RespLimits, ServerInfo,
};
use crate::runtime::{Completion, Handle, RequestError};

/// Writes one connection may have with the node at once (pipelined);
/// further requests wait in the socket.
const PIPELINED_WRITES_MAX: usize = 1024;

/// Reply bytes a connection holds unsent before it stops running requests:
/// a client that does not read cannot make the server buffer without bound.
const UNSENT_REPLY_BYTES_MAX: usize = 4 << 20;

/// What a connection needs from the server loop while it moves forward.
pub(super) struct Context<'a> {
    pub(super) node: &'a Handle,
    pub(super) token: Token,
    pub(super) answers: &'a Answers,
    pub(super) info: &'a mut Option<ServerInfo>,
    pub(super) registry: &'a Registry,
    /// The largest command the node takes.
    pub(super) entry_bytes_max: u64,
}

pub(super) struct Connection {
    stream: TcpStream,
    token: Token,
    parser: RequestParser,
    client: ClientState,
    /// Replies not yet written; `written` bytes of it already were.
    out: Vec<u8>,
    written: usize,
    /// A read is with the node; nothing else runs until it is answered.
    read_waiting: bool,
    /// Writes with the node, oldest first, holding their answers until every
    /// write before them is answered too. The front one is number
    /// `writes_base`.
    writes: VecDeque<Option<Result<Vec<u8>, RequestError>>>,
    writes_base: u64,
    /// A parsed request that waits for the writes ahead of it.
    held: Option<Result<Command, CommandError>>,
    /// The client closed its side, or must be closed (QUIT, a protocol
    /// error) once `out` is written.
    closing: bool,
    /// No more bytes to read: the client closed its side.
    read_closed: bool,
    /// The socket may hold unread bytes: set by a readiness event, cleared
    /// once a read finds the socket empty.
    readable: bool,
    /// A readiness event said the client closed its side.
    peer_closed: bool,
    wants_writable: bool,
}

impl Connection {
    pub(super) fn new(
        stream: TcpStream,
        token: Token,
        addr: SocketAddr,
        id: u64,
        limits: RespLimits,
    ) -> Connection {
        Connection {
            stream,
            token,
            parser: RequestParser::new(limits),
            client: ClientState { id, name: None, addr: Some(addr) },
            out: Vec::new(),
            written: 0,
            read_waiting: false,
            writes: VecDeque::new(),
            writes_base: 0,
            held: None,
            closing: false,
            read_closed: false,
            readable: true,
            peer_closed: false,
            wants_writable: false,
        }
    }

    /// Notes a readiness event: the socket may have bytes to read, and, if
    /// `closed`, the client's end of stream after them.
    pub(super) fn mark_readable(&mut self, closed: bool) {
        self.readable = true;
        self.peer_closed |= closed;
    }

    /// Takes the node's answer to a request in flight.
    pub(super) fn answer(&mut self, slot: Slot, result: Result<Vec<u8>, RequestError>) {
        match slot {
            Slot::Read => {
                debug_assert!(self.read_waiting && self.writes.is_empty(), "a read answer out of turn");
                self.read_waiting = false;
                encode_answer(&mut self.out, result, false);
            }
            Slot::Write(seq) => {
                let k = seq.checked_sub(self.writes_base).expect("an answer for a write already answered");
                let k = usize::try_from(k).expect("fewer writes in flight than memory");
                self.writes[k] = Some(result);
                // Replies go out in request order: release the answered
                // prefix.
                while let Some(Some(_)) = self.writes.front() {
                    let result = self.writes.pop_front().flatten().expect("checked above");
                    self.writes_base += 1;
                    encode_answer(&mut self.out, result, true);
                }
            }
        }
    }

    /// Answers every request it can, reads more when it needs more, writes
    /// what it can. `Break` when the connection is done.
    pub(super) fn pump(&mut self, scratch: &mut [u8], mut cx: Context<'_>) -> ControlFlow<()> {
        while !self.closing && !self.read_waiting {
            // A client that sends without reading gets no more answers
            // until it reads: replies must not pile up without bound.
            if self.out.len() - self.written > UNSENT_REPLY_BYTES_MAX {
                break;
            }
            let next = match self.held.take() {
                Some(command) => command,
                None if self.writes.len() >= PIPELINED_WRITES_MAX => break,
                None => match self.parser.next_request() {
                    Ok(Some(args)) => Command::parse(args),
                    Ok(None) if self.read_closed => {
                        if self.writes.is_empty() {
                            self.closing = true;
                        }
                        break;
                    }
                    Ok(None) if !self.readable => break,
                    Ok(None) => {
                        match self.stream.read(scratch) {
                            Ok(0) => self.read_closed = true,
                            Ok(n) => {
                                // A short read emptied the socket: new bytes
                                // raise a new readiness event, so there is
                                // no need to read on until `WouldBlock`.
                                // Unless the client closed: its FIN may have
                                // been taken with these bytes, and only the
                                // next read returns the end.
                                self.readable = n == scratch.len() || self.peer_closed;
                                self.parser.extend(&scratch[..n]);
                            }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable = false,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => {
                                debug!("client {:?}: read failed: {e}", self.client.addr);
                                return ControlFlow::Break(());
                            }
                        }
                        continue;
                    }
                    // The parser repeats its error, so it can wait for the
                    // writes ahead of it to be answered.
                    Err(_) if !self.writes.is_empty() => break,
                    Err(e) => {
                        debug!("client {:?}: {e}; closing", self.client.addr);
                        e.reply().encode(&mut self.out);
                        self.closing = true;
                        break;
                    }
                },
            };
            // Writes may follow each other into the log; anything else is
            // answered only after every write before it, so that replies keep
            // request order and reads see the connection's own writes.
            let pipelined =
                matches!(&next, Ok(Command::Write(op)) if write_entry_len(op) <= cx.entry_bytes_max);
            if !pipelined && !self.writes.is_empty() {
                self.held = Some(next);
                break;
            }
            self.run(next, &mut cx);
        }
        self.write(cx.registry)?;
        if self.closing && self.written == self.out.len() {
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }

    /// Runs one request.
    fn run(&mut self, command: Result<Command, CommandError>, cx: &mut Context<'_>) {
        let command = match command {
            Ok(command) => command,
            Err(e) => return e.reply().encode(&mut self.out),
        };
        match command {
            Command::Local(op) => {
                // Only INFO and ROLE report the node's state; fetch it once
                // per turn of the loop, and not for a PING.
                let info = if matches!(op, LocalOp::Info { .. } | LocalOp::Role) {
                    *cx.info.get_or_insert_with(|| server_info(cx.node))
                } else {
                    placeholder_info(cx.node)
                };
                answer_local(&op, &mut self.client, &info).encode(&mut self.out);
                if op.closes_connection() {
                    self.closing = true;
                }
            }
            Command::Write(op) => {
                let bytes = write_entry_len(&op);
                if bytes > cx.entry_bytes_max {
                    let too_large = RequestError::TooLarge { bytes, max: cx.entry_bytes_max };
                    return encode_answer(&mut self.out, Err(too_large), true);
                }
                let seq = self.writes_base + self.writes.len() as u64;
                self.writes.push_back(None);
                cx.node.propose_with(&encode_write(&op), self.completion(cx, Slot::Write(seq)));
            }
            Command::Read(op) => {
                self.read_waiting = true;
                cx.node.read_with(&encode_read(&op), self.completion(cx, Slot::Read));
            }
            Command::Member(op) => {
                // Answered like a read, in order. A change waits for its
                // commit, so it gets a thread rather than block the server.
                self.read_waiting = true;
                let done = self.completion(cx, Slot::Read);
                let node = cx.node.clone();
                let spawned = std::thread::Builder::new()
                    .name("oar-member".into())
                    .spawn(move || done.complete(Ok(super::member::answer(&node, op))));
                if let Err(e) = spawned {
                    // `done` was dropped with the closure, unanswered and
                    // never handed off: it answers that nothing was done.
                    debug!("cannot start a thread for OAR.MEMBER: {e}");
                }
            }
        }
    }

    fn completion(&self, cx: &Context<'_>, slot: Slot) -> Completion {
        let answers = cx.answers.clone();
        let token = cx.token;
        Completion::new(move |result| answers.send(Answer { token, slot, result }))
    }

    /// Writes queued replies; registers for WRITABLE only while some wait.
    fn write(&mut self, registry: &Registry) -> ControlFlow<()> {
        while self.written < self.out.len() {
            match self.stream.write(&self.out[self.written..]) {
                Ok(0) => return ControlFlow::Break(()),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    debug!("client {:?}: write failed: {e}", self.client.addr);
                    return ControlFlow::Break(());
                }
            }
        }
        let done = self.written == self.out.len();
        if done {
            self.out.clear();
            self.written = 0;
        }
        if done == self.wants_writable {
            self.wants_writable = !done;
            let interest = if done { Interest::READABLE } else { Interest::READABLE | Interest::WRITABLE };
            if registry.reregister(&mut self.stream, self.token, interest).is_err() {
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }

    pub(super) fn deregister(&mut self, registry: &Registry) {
        let _ = registry.deregister(&mut self.stream);
    }
}

/// Appends the reply for a request the node answered, or the error line.
fn encode_answer(out: &mut Vec<u8>, result: Result<Vec<u8>, RequestError>, write: bool) {
    match result {
        Ok(reply) => out.extend_from_slice(&reply),
        Err(e) => crate::kv::write_error(out, &error_reply(&e, write)),
    }
}

/// The error line for a request the node could not answer (see the
/// README's reply table). `-TIMEOUT` is the one that leaves a write's
/// outcome open; every other line guarantees nothing was appended.
pub(super) fn error_reply(e: &RequestError, write: bool) -> String {
    match e {
        RequestError::NoLeader => "TRYAGAIN no leader".to_string(),
        RequestError::Busy => "TRYAGAIN the leader is busy, retry".to_string(),
        RequestError::Timeout if write => {
            // A write never gets it (it gets `OutcomeUnknown`); were one
            // to, it would not say what was done.
            "TIMEOUT outcome unknown: no answer in time".to_string()
        }
        RequestError::Timeout => "TRYAGAIN the read was not confirmed in time".to_string(),
        RequestError::TooLarge { bytes, max } => {
            format!("ERR command of {bytes} bytes exceeds the entry limit of {max}")
        }
        RequestError::Removed => {
            "ERR this node was removed from the cluster; nothing was done: send commands to a member"
                .to_string()
        }
        RequestError::Stopped(reason) => {
            format!("ERR the node stopped; nothing was done: {reason}")
        }
        RequestError::OutcomeUnknown { why } => {
            format!("TIMEOUT outcome unknown: {why}")
        }
        // The server proposes no session commands; were one refused, it
        // applied nothing.
        RequestError::Session { .. } => format!("ERR {e}"),
        // Says the disk, as an operator needs to hear; nothing was written.
        RequestError::Disk(crate::core::DiskTrouble::Full) => format!("ERR {e}"),
        RequestError::Disk(crate::core::DiskTrouble::Stalled) => format!("TRYAGAIN {e}"),
    }
}
