//! A `RequestParser` fed a client stream in arbitrary pieces yields the
//! same requests, and fails at the same place with the same error, as one
//! parser given the whole stream at once; and nothing downstream of it
//! panics on what it yields: command parsing, local answers, the write and
//! read payload encodings (which must round-trip) and the state machine.
//! Arbitrary bytes as payloads are the `kv_entry` target's job.
//!
//! Input layout: byte 0 holds the number of chunk sizes (low 4 bits, plus
//! one), whether to use small limits (bit 6) so that the limit checks are
//! reached, and whether to feed through `read_from` instead of `extend`
//! (bit 7); then one byte per chunk size (plus one); the rest is the stream.
#![no_main]

use std::io;

use libfuzzer_sys::fuzz_target;
use oar::kv::{
    answer_local, decode_read, decode_write, encode_read, encode_write, ClientState, Command, RequestParser,
    RespError, RespLimits, ServerInfo, Store,
};
use oar::{Bytes, LogIndex, NodeId, Role, Term};

#[derive(Debug, PartialEq)]
struct Outcome {
    requests: Vec<Vec<Bytes>>,
    error: Option<RespError>,
    buffered_len: usize,
    in_request: bool,
}

fn drain(parser: &mut RequestParser, requests: &mut Vec<Vec<Bytes>>) -> Option<RespError> {
    loop {
        match parser.next_request() {
            Ok(Some(request)) => {
                assert!(!request.is_empty());
                requests.push(request);
            }
            Ok(None) => return None,
            Err(error) => {
                // Failure is for good.
                assert_eq!(parser.next_request(), Err(error));
                assert_eq!(parser.buffered_len(), 0);
                return Some(error);
            }
        }
    }
}

fn finish(parser: &RequestParser, requests: Vec<Vec<Bytes>>, error: Option<RespError>) -> Outcome {
    Outcome { requests, error, buffered_len: parser.buffered_len(), in_request: parser.in_request() }
}

fn one_shot(limits: RespLimits, stream: &[u8]) -> Outcome {
    let mut parser = RequestParser::new(limits);
    let mut requests = Vec::new();
    parser.extend(stream);
    let error = drain(&mut parser, &mut requests);
    finish(&parser, requests, error)
}

/// A source that hands out the stream in the chosen piece sizes.
struct Pieces<'a> {
    rest: &'a [u8],
    sizes: std::iter::Cycle<std::slice::Iter<'a, u8>>,
}

impl Pieces<'_> {
    fn next_piece(&mut self, max: usize) -> &[u8] {
        let size = self.sizes.next().map_or(1, |&s| usize::from(s) + 1);
        let (piece, rest) = self.rest.split_at(size.min(max).min(self.rest.len()));
        self.rest = rest;
        piece
    }
}

impl io::Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let piece = self.next_piece(buf.len());
        let n = piece.len();
        buf[..n].copy_from_slice(piece);
        Ok(n)
    }
}

fn chunked(limits: RespLimits, stream: &[u8], sizes: &[u8], use_read_from: bool) -> Outcome {
    let mut source = Pieces { rest: stream, sizes: sizes.iter().cycle() };
    let mut parser = RequestParser::new(limits);
    let mut requests = Vec::new();
    while !source.rest.is_empty() {
        if use_read_from {
            assert!(parser.read_from(&mut source).expect("Pieces never fails") > 0);
        } else {
            let piece = source.next_piece(usize::MAX);
            parser.extend(piece);
        }
        if let Some(error) = drain(&mut parser, &mut requests) {
            return finish(&parser, requests, Some(error));
        }
    }
    finish(&parser, requests, None)
}

/// Runs every request through the rest of the server's pipeline.
fn execute(requests: &[Vec<Bytes>]) {
    let mut store = Store::new();
    let mut client = ClientState::default();
    let server = ServerInfo {
        node: NodeId(1),
        role: Role::Leader,
        term: Term(1),
        leader: Some(NodeId(1)),
        commit_index: LogIndex(1),
        applied_index: LogIndex(1),
        keys: Some(0),
        incarnation: oar::Incarnation(1),
        admission: oar::core::Admission::Voter,
        repair_to: LogIndex(0),
        disk: None,
    };
    let mut out = Vec::new();
    for request in requests {
        let reply = match Command::parse(request.clone()) {
            Ok(Command::Write(op)) => {
                let decoded = decode_write(&encode_write(&op)).expect("an encoded write decodes");
                assert_eq!(decoded, op);
                store.apply(decoded)
            }
            Ok(Command::Read(op)) => {
                let decoded = decode_read(&encode_read(&op)).expect("an encoded read decodes");
                assert_eq!(decoded, op);
                store.query(&decoded)
            }
            Ok(Command::Local(op)) => answer_local(&op, &mut client, &server),
            // Membership commands need a running node; parsing them is what
            // is under test here.
            Ok(Command::Member(_)) => continue,
            Err(error) => error.reply(),
        };
        reply.encode(&mut out);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let size_count = usize::from(control & 0x0f) + 1;
    let limits = if control & 0x40 != 0 {
        RespLimits { bulk_bytes_max: 16, args_max: 6, inline_bytes_max: 24, request_bytes_max: 40 }
    } else {
        RespLimits::default()
    };
    let use_read_from = control & 0x80 != 0;
    let Some((sizes, stream)) = rest.split_at_checked(size_count) else {
        return;
    };
    let whole = one_shot(limits, stream);
    assert_eq!(chunked(limits, stream, sizes, use_read_from), whole);
    execute(&whole.requests);
});
