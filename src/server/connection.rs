//! One client connection: parse, answer in order, write back.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::ops::ControlFlow;

use log::debug;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use super::{placeholder_info, server_info, Answer, Answers};
use crate::kv::{
    answer_local, encode_read, encode_write, write_entry_len, ClientState, Command, LocalOp, RequestParser,
    RespLimits, ServerInfo,
};
use crate::runtime::{Completion, Handle, RequestError};

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
    /// A request is with the node; nothing else is parsed until it answers.
    waiting: bool,
    /// The kind of the request with the node, for its error replies.
    waiting_for_write: bool,
    /// The client closed its side, or must be closed (QUIT, a protocol
    /// error) once `out` is written.
    closing: bool,
    /// No more bytes to read: the client closed its side.
    read_closed: bool,
    /// The socket may hold unread bytes: set by a readiness event, cleared
    /// once a read finds the socket empty.
    readable: bool,
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
            waiting: false,
            waiting_for_write: false,
            closing: false,
            read_closed: false,
            readable: true,
            wants_writable: false,
        }
    }

    /// Notes a readiness event: the socket may have bytes (or an end) to read.
    pub(super) fn mark_readable(&mut self) {
        self.readable = true;
    }

    /// Takes the node's answer to the request in flight.
    pub(super) fn answer(&mut self, result: Result<Vec<u8>, RequestError>) {
        debug_assert!(self.waiting, "an answer with no request in flight");
        self.waiting = false;
        match result {
            Ok(reply) => self.out.extend_from_slice(&reply),
            Err(e) => {
                let text = error_reply(&e, self.waiting_for_write);
                crate::kv::write_error(&mut self.out, &text);
            }
        }
    }

    /// Answers every request it can, reads more when it needs more, writes
    /// what it can. `Break` when the connection is done.
    pub(super) fn pump(&mut self, scratch: &mut [u8], mut cx: Context<'_>) -> ControlFlow<()> {
        while !self.waiting && !self.closing {
            match self.parser.next_request() {
                Ok(Some(args)) => self.run(args, &mut cx),
                Ok(None) if self.read_closed => self.closing = true,
                Ok(None) if !self.readable => break,
                Ok(None) => match self.stream.read(scratch) {
                    Ok(0) => self.read_closed = true,
                    Ok(n) => {
                        // A short read emptied the socket: new bytes will
                        // raise a new readiness event, so there is no need
                        // to read on until `WouldBlock`.
                        self.readable = n == scratch.len();
                        self.parser.extend(&scratch[..n]);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.readable = false;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        debug!("client {:?}: read failed: {e}", self.client.addr);
                        return ControlFlow::Break(());
                    }
                },
                Err(e) => {
                    debug!("client {:?}: {e}; closing", self.client.addr);
                    e.reply().encode(&mut self.out);
                    self.closing = true;
                }
            }
        }
        self.write(cx.registry)?;
        if self.closing && self.written == self.out.len() {
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }

    /// Runs one request.
    fn run(&mut self, args: Vec<bytes::Bytes>, cx: &mut Context<'_>) {
        let command = match Command::parse(args) {
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
                    let text = format!(
                        "ERR command of {bytes} bytes exceeds the entry limit of {}",
                        cx.entry_bytes_max
                    );
                    return crate::kv::write_error(&mut self.out, &text);
                }
                self.waiting = true;
                self.waiting_for_write = true;
                cx.node.propose_with(&encode_write(&op), self.completion(cx));
            }
            Command::Read(op) => {
                self.waiting = true;
                self.waiting_for_write = false;
                cx.node.read_with(&encode_read(&op), self.completion(cx));
            }
        }
    }

    fn completion(&self, cx: &Context<'_>) -> Completion {
        let answers = cx.answers.clone();
        let token = cx.token;
        Completion::new(move |result| answers.send(Answer { token, result }))
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

/// The error line for a request the node could not answer.
fn error_reply(e: &RequestError, write: bool) -> String {
    match e {
        RequestError::NoLeader => "TRYAGAIN no leader".to_string(),
        RequestError::Busy => "TRYAGAIN the leader is busy, retry".to_string(),
        RequestError::Timeout if write => "TIMEOUT outcome unknown".to_string(),
        RequestError::Timeout => "TRYAGAIN the read was not confirmed in time".to_string(),
        RequestError::TooLarge { bytes, max } => {
            format!("ERR command of {bytes} bytes exceeds the entry limit of {max}")
        }
        RequestError::Stopped(reason) => format!("ERR the node stopped: {reason}"),
    }
}
