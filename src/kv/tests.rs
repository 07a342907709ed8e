//! Tests of the key-value service: the request parser, command parsing and
//! local answers, the state machine's semantics against Redis's, the
//! payload encodings of writes and reads, and snapshots of the store.

use bytes::Bytes;

use super::{encode_write, WriteOp};

mod command;
mod entry;
mod reply;
mod resp;
mod snapshot;
mod store;

/// A request's arguments from literals.
fn args(words: &[&[u8]]) -> Vec<Bytes> {
    words.iter().map(|word| Bytes::copy_from_slice(word)).collect()
}

/// The multibulk encoding of a request, as client libraries send it.
fn multibulk(words: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", words.len()).into_bytes();
    for word in words {
        out.extend_from_slice(format!("${}\r\n", word.len()).as_bytes());
        out.extend_from_slice(word);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The log entry payload for `op`.
fn payload(op: &WriteOp) -> Bytes {
    encode_write(op)
}
