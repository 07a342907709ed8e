//! RESP2 replies and their encoding.
//!
//! A [`Reply`] is what every command produces, wherever it runs: the
//! connection for local commands, the state machine for reads and writes.
//! [`Reply::encode`] writes its wire form into any [`BufMut`] (`Vec<u8>`,
//! `BytesMut`); the `write_*` functions write one element each, for callers
//! that stream a reply without building a `Reply` first.

use std::borrow::Cow;

use bytes::{BufMut, Bytes};

/// One RESP2 reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// A status line, `+OK\r\n`. Any `\r` or `\n` inside is sent as a space,
    /// since the line cannot hold them.
    Simple(Cow<'static, str>),
    /// An error line: the text after the `-`, starting with its code, as in
    /// `ERR syntax error` or `TRYAGAIN no leader`. Line breaks inside are sent
    /// as spaces.
    Error(Cow<'static, str>),
    /// An integer, `:42\r\n`.
    Integer(i64),
    /// A binary-safe string, `$3\r\nfoo\r\n`.
    Bulk(Bytes),
    /// The null bulk string, `$-1\r\n`: "no value" (GET of a missing key).
    NullBulk,
    /// An array of replies, `*2\r\n...`.
    Array(Vec<Reply>),
    /// The null array, `*-1\r\n`.
    NullArray,
}

impl Reply {
    /// `+OK`.
    pub const OK: Reply = Reply::Simple(Cow::Borrowed("OK"));

    /// An error reply; `text` starts with the error code (`ERR ...`).
    pub fn error(text: impl Into<Cow<'static, str>>) -> Reply {
        Reply::Error(text.into())
    }

    /// A bulk string copied from `bytes`.
    pub fn bulk_from(bytes: impl AsRef<[u8]>) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(bytes.as_ref()))
    }

    /// Whether this is an error reply.
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// Appends the wire form of this reply to `out`.
    pub fn encode<B: BufMut>(&self, out: &mut B) {
        match self {
            Reply::Simple(text) => write_simple(out, text),
            Reply::Error(text) => write_error(out, text),
            Reply::Integer(value) => write_integer(out, *value),
            Reply::Bulk(bytes) => write_bulk(out, bytes),
            Reply::NullBulk => write_null_bulk(out),
            Reply::Array(items) => {
                write_array_header(out, items.len());
                for item in items {
                    item.encode(out);
                }
            }
            Reply::NullArray => write_null_array(out),
        }
    }

    /// The wire form of this reply in a new buffer. Handy in tests and for
    /// a state machine whose answers travel as bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// Writes a status line `+text\r\n`, with line breaks in `text` as spaces.
pub fn write_simple<B: BufMut>(out: &mut B, text: &str) {
    out.put_u8(b'+');
    put_line(out, text.as_bytes());
}

/// Writes an error line `-text\r\n`; `text` starts with the error code
/// (`ERR`, `TRYAGAIN`, ...). Line breaks in `text` are sent as spaces.
pub fn write_error<B: BufMut>(out: &mut B, text: &str) {
    out.put_u8(b'-');
    put_line(out, text.as_bytes());
}

/// Writes an integer `:value\r\n`.
pub fn write_integer<B: BufMut>(out: &mut B, value: i64) {
    out.put_u8(b':');
    put_decimal(out, value.unsigned_abs(), value < 0);
    out.put_slice(b"\r\n");
}

/// Writes a bulk string `$len\r\nbytes\r\n`.
pub fn write_bulk<B: BufMut>(out: &mut B, bytes: &[u8]) {
    out.put_u8(b'$');
    put_decimal(out, bytes.len() as u64, false);
    out.put_slice(b"\r\n");
    out.put_slice(bytes);
    out.put_slice(b"\r\n");
}

/// Writes the null bulk string `$-1\r\n`.
pub fn write_null_bulk<B: BufMut>(out: &mut B) {
    out.put_slice(b"$-1\r\n");
}

/// Writes the header `*len\r\n` of an array; the caller then writes `len`
/// elements.
pub fn write_array_header<B: BufMut>(out: &mut B, len: usize) {
    out.put_u8(b'*');
    put_decimal(out, len as u64, false);
    out.put_slice(b"\r\n");
}

/// Writes the null array `*-1\r\n`.
pub fn write_null_array<B: BufMut>(out: &mut B) {
    out.put_slice(b"*-1\r\n");
}

/// Writes `text` then `\r\n`, replacing each `\r` or `\n` in `text` by a
/// space: a line that contained one would end early and desynchronise the
/// client. (Error texts may quote what a client sent.)
fn put_line<B: BufMut>(out: &mut B, text: &[u8]) {
    let mut pieces = text.split(|&b| b == b'\r' || b == b'\n');
    if let Some(first) = pieces.next() {
        out.put_slice(first);
    }
    for piece in pieces {
        out.put_u8(b' ');
        out.put_slice(piece);
    }
    out.put_slice(b"\r\n");
}

/// Writes `magnitude` in decimal, with a leading `-` if `negative`, without
/// allocating.
fn put_decimal<B: BufMut>(out: &mut B, mut magnitude: u64, negative: bool) {
    // u64::MAX has 20 digits.
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        // `magnitude % 10 < 10`, so the cast is lossless.
        digits[start] = b'0' + (magnitude % 10) as u8;
        magnitude /= 10;
        if magnitude == 0 {
            break;
        }
    }
    if negative {
        out.put_u8(b'-');
    }
    out.put_slice(&digits[start..]);
}
