//! The streaming RESP2 request parser.
//!
//! Clients send requests in two forms, both accepted on the same connection
//! (the first byte of each request decides):
//!
//! - **multibulk**, what every client library and `redis-cli` send:
//!   `*<count>\r\n` then `count` bulk strings `$<len>\r\n<len bytes>\r\n`.
//!   `*0\r\n` and `*-1\r\n` are empty requests and are skipped, as Redis does.
//! - **inline**, a line of words as typed into telnet or sent by
//!   `redis-benchmark`'s inline tests: `PING\r\n`, `SET k "a b"\n`. Words split
//!   on whitespace; double quotes allow `\n`, `\r`, `\t`, `\b`, `\a`, `\xHH`
//!   and `\<c>` escapes, single quotes allow `\'`, as in Redis's
//!   `sdssplitargs`. A blank line is skipped.
//!
//! Arguments are zero-copy: each is split off the receive buffer as a
//! [`Bytes`] sharing its memory (only quoted inline words are copied).
//!
//! Every length and count is checked against [`RespLimits`] before anything
//! is buffered or allocated for it, lines are searched at most once, and a
//! request's outcome does not depend on how its bytes were split into
//! chunks. After an error the parser stays failed: the server replies
//! [`RespError::reply`] (`-ERR protocol error: ...`) and closes the
//! connection, since the stream cannot be resynchronised.

use std::fmt;
use std::io;

use bytes::{Buf, Bytes, BytesMut};

use super::reply::Reply;

/// Redis's `proto-max-bulk-len`: the default largest argument.
pub const BULK_BYTES_MAX_DEFAULT: usize = 512 << 20;
/// The default largest number of arguments in one multibulk request.
pub const ARGS_MAX_DEFAULT: usize = 1 << 20;
/// Redis's `PROTO_INLINE_MAX_SIZE`: the default longest inline request.
pub const INLINE_BYTES_MAX_DEFAULT: usize = 64 << 10;
/// Redis's `client-query-buffer-limit`: the default largest total of argument
/// bytes in one multibulk request.
pub const REQUEST_BYTES_MAX_DEFAULT: usize = 1 << 30;

/// The longest `*<count>\r\n` or `$<len>\r\n` line: the marker, an `i64` of
/// at most 20 characters (`-9223372036854775808`), and `\r\n`.
const HEADER_LINE_BYTES_MAX: usize = 1 + 20 + 2;

/// Arguments preallocated for a multibulk request, whatever count it
/// announces: the count is only a claim until the arguments arrive.
const ARGS_PREALLOCATED_MAX: usize = 16;

/// The limits a [`RequestParser`] enforces. A request beyond any of them is
/// a protocol error, detected from its header before its body is buffered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RespLimits {
    /// The largest single argument (bulk string), in bytes.
    pub bulk_bytes_max: usize,
    /// The most arguments in one multibulk request.
    pub args_max: usize,
    /// The longest inline request line, `\n` included, in bytes.
    pub inline_bytes_max: usize,
    /// The largest total of argument bytes in one multibulk request.
    pub request_bytes_max: usize,
}

impl Default for RespLimits {
    fn default() -> RespLimits {
        RespLimits {
            bulk_bytes_max: BULK_BYTES_MAX_DEFAULT,
            args_max: ARGS_MAX_DEFAULT,
            inline_bytes_max: INLINE_BYTES_MAX_DEFAULT,
            request_bytes_max: REQUEST_BYTES_MAX_DEFAULT,
        }
    }
}

/// Why a client's bytes are not a RESP request. Each one ends the
/// connection: reply [`RespError::reply`], then close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RespError {
    /// A `*` line is not a canonical integer, or is negative other than `-1`.
    InvalidMultibulkLength,
    /// A `*` line announces more arguments than [`RespLimits::args_max`].
    TooManyArgs {
        /// The count announced.
        count: u64,
        /// The limit.
        max: usize,
    },
    /// An argument of a multibulk request does not start with `$`.
    ExpectedBulk {
        /// The byte found instead.
        found: u8,
    },
    /// A `$` line is not a canonical integer, or is negative (a null bulk
    /// string is no argument).
    InvalidBulkLength,
    /// A `$` line announces more than [`RespLimits::bulk_bytes_max`].
    BulkTooLarge {
        /// The length announced.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// The bytes of a bulk string are not followed by `\r\n`.
    BulkNotTerminated,
    /// The arguments of one request add up to more than
    /// [`RespLimits::request_bytes_max`].
    RequestTooLarge {
        /// The total announced so far.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// An inline request has no `\n` within [`RespLimits::inline_bytes_max`].
    InlineTooLong {
        /// The limit.
        max: usize,
    },
    /// An inline request has a quote that is not closed, or a closing quote
    /// not followed by whitespace.
    UnbalancedQuotes,
}

impl RespError {
    /// The reply to send before closing the connection:
    /// `-ERR protocol error: <what was wrong>`.
    pub fn reply(&self) -> Reply {
        Reply::error(format!("ERR protocol error: {self}"))
    }
}

impl fmt::Display for RespError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RespError::InvalidMultibulkLength => write!(f, "invalid multibulk length"),
            RespError::TooManyArgs { count, max } => {
                write!(f, "{count} arguments in one request, above the limit of {max}")
            }
            RespError::ExpectedBulk { found } => {
                write!(f, "expected '$', got '{}'", char::from(*found).escape_default())
            }
            RespError::InvalidBulkLength => write!(f, "invalid bulk length"),
            RespError::BulkTooLarge { len, max } => {
                write!(f, "bulk length {len} above the limit of {max} bytes")
            }
            RespError::BulkNotTerminated => write!(f, "bulk string not followed by CRLF"),
            RespError::RequestTooLarge { len, max } => {
                write!(f, "request of at least {len} bytes, above the limit of {max}")
            }
            RespError::InlineTooLong { max } => {
                write!(f, "too big inline request: no newline within {max} bytes")
            }
            RespError::UnbalancedQuotes => write!(f, "unbalanced quotes in request"),
        }
    }
}

impl std::error::Error for RespError {}

/// The multibulk request being assembled. Invariant: `args.len() +
/// remaining` is the count its `*` line announced.
#[derive(Debug)]
struct Partial {
    /// The arguments complete so far.
    args: Vec<Bytes>,
    /// How many arguments are still to come.
    remaining: usize,
    /// The length from the `$` line of the next argument, once that line has
    /// been consumed and while its bytes have not all arrived.
    bulk_len: Option<usize>,
    /// The total of the `$` lengths read so far, against
    /// [`RespLimits::request_bytes_max`].
    request_bytes: u64,
}

/// Splits a client's byte stream into requests, each a list of arguments
/// (the command name first).
///
/// Feed it bytes as they arrive with [`extend`](RequestParser::extend) or
/// [`read_from`](RequestParser::read_from), then call
/// [`next_request`](RequestParser::next_request) until it answers `Ok(None)`;
/// a pipelined chunk yields several requests. The requests (and the error, if
/// any) are the same however the stream is cut into chunks.
///
/// After the first error the parser stays failed: every later `next_request`
/// returns that error again and further input is dropped. Reply
/// [`RespError::reply`] and close the connection.
#[derive(Debug)]
pub struct RequestParser {
    /// Bytes received and not yet consumed. Invariant: starts at a request
    /// boundary when `partial` is `None`, else at an argument boundary or
    /// (when `partial.bulk_len` is set) at the start of an argument's bytes.
    /// Empty once `failed` is set.
    buf: BytesMut,
    /// The limits every request is checked against.
    limits: RespLimits,
    /// The multibulk request in progress, if any.
    partial: Option<Partial>,
    /// How many bytes at the front of `buf` are known to hold no `\n`, so
    /// that a long inline line arriving in small chunks is scanned once.
    inline_scanned: usize,
    /// The first error met, returned from then on.
    failed: Option<RespError>,
}

impl Default for RequestParser {
    fn default() -> RequestParser {
        RequestParser::new(RespLimits::default())
    }
}

impl RequestParser {
    /// A parser at the start of a connection, enforcing `limits`.
    pub fn new(limits: RespLimits) -> RequestParser {
        RequestParser { buf: BytesMut::new(), limits, partial: None, inline_scanned: 0, failed: None }
    }

    /// The limits this parser enforces.
    pub fn limits(&self) -> RespLimits {
        self.limits
    }

    /// Appends `chunk`, the next bytes from the client. Dropped if the
    /// parser has failed.
    pub fn extend(&mut self, chunk: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(chunk);
        }
    }

    /// Reads once from `source` straight into the buffer (up to 64 KiB) and
    /// returns what `source.read` returned. `Ok(0)` means the client closed
    /// its side. For a nonblocking `source`, call it until it returns
    /// [`io::ErrorKind::WouldBlock`], draining
    /// [`next_request`](RequestParser::next_request) in between so that the
    /// buffer stays small.
    ///
    /// Safe code cannot read into uninitialised memory, so each call first
    /// zeroes 64 KiB of room. A server with many connections and small
    /// requests does better reading into one scratch buffer shared by all
    /// its connections and passing what it got to
    /// [`extend`](RequestParser::extend): one copy of the bytes received
    /// instead of a 64 KiB fill per read.
    pub fn read_from<R: io::Read + ?Sized>(&mut self, source: &mut R) -> io::Result<usize> {
        let result = crate::codec::read_appending(&mut self.buf, source);
        if self.failed.is_some() {
            self.buf.clear();
        }
        result
    }

    /// Bytes received but not yet consumed. Nonzero (or a request in
    /// progress) when the client closes means it stopped mid-request.
    pub fn buffered_len(&self) -> usize {
        self.buf.len()
    }

    /// Whether a multibulk request has been started and not finished.
    pub fn in_request(&self) -> bool {
        self.partial.is_some()
    }

    /// The next whole request as its arguments (never empty), `Ok(None)` if
    /// more bytes are needed first, or the error that made the stream
    /// unreadable (the same error on every call once it has happened).
    pub fn next_request(&mut self) -> Result<Option<Vec<Bytes>>, RespError> {
        if let Some(error) = self.failed {
            return Err(error);
        }
        self.parse().inspect_err(|&error| {
            self.failed = Some(error);
            self.buf = BytesMut::new();
            self.partial = None;
        })
    }

    fn parse(&mut self) -> Result<Option<Vec<Bytes>>, RespError> {
        loop {
            if self.partial.is_some() {
                return self.continue_multibulk();
            }
            let Some(&first) = self.buf.first() else {
                return Ok(None);
            };
            if first == b'*' {
                let Some((count, line_bytes)) = header_line(&self.buf, RespError::InvalidMultibulkLength)?
                else {
                    return Ok(None);
                };
                match count {
                    // Empty requests, skipped as Redis does.
                    -1 | 0 => self.buf.advance(line_bytes),
                    _ => {
                        let count = u64::try_from(count).map_err(|_| RespError::InvalidMultibulkLength)?;
                        let too_many = RespError::TooManyArgs { count, max: self.limits.args_max };
                        let count = usize::try_from(count).map_err(|_| too_many)?;
                        if count > self.limits.args_max {
                            return Err(too_many);
                        }
                        self.buf.advance(line_bytes);
                        self.partial = Some(Partial {
                            args: Vec::with_capacity(count.min(ARGS_PREALLOCATED_MAX)),
                            remaining: count,
                            bulk_len: None,
                            request_bytes: 0,
                        });
                    }
                }
            } else {
                let Some(line) = self.inline_line()? else {
                    return Ok(None);
                };
                // Redis splits the line without its `\n` or `\r\n`.
                let content_len = match line.as_ref() {
                    [.., b'\r', b'\n'] => line.len() - 2,
                    _ => line.len().saturating_sub(1),
                };
                let args = split_inline(&line.slice(..content_len))?;
                if !args.is_empty() {
                    return Ok(Some(args));
                }
            }
        }
    }

    /// Reads as many arguments of the request in progress as have arrived.
    fn continue_multibulk(&mut self) -> Result<Option<Vec<Bytes>>, RespError> {
        let RequestParser { buf, limits, partial, .. } = self;
        let Some(request) = partial else {
            return Ok(None);
        };
        while request.remaining > 0 {
            let len = match request.bulk_len {
                Some(len) => len,
                None => {
                    let Some(&first) = buf.first() else {
                        return Ok(None);
                    };
                    if first != b'$' {
                        return Err(RespError::ExpectedBulk { found: first });
                    }
                    let Some((len, line_bytes)) = header_line(buf, RespError::InvalidBulkLength)? else {
                        return Ok(None);
                    };
                    let len = u64::try_from(len).map_err(|_| RespError::InvalidBulkLength)?;
                    let too_large = RespError::BulkTooLarge { len, max: limits.bulk_bytes_max };
                    let len = usize::try_from(len).map_err(|_| too_large)?;
                    if len > limits.bulk_bytes_max {
                        return Err(too_large);
                    }
                    // `len <= usize::MAX`, so this cannot wrap on any target.
                    request.request_bytes = request.request_bytes.saturating_add(len as u64);
                    if request.request_bytes > limits.request_bytes_max as u64 {
                        return Err(RespError::RequestTooLarge {
                            len: request.request_bytes,
                            max: limits.request_bytes_max,
                        });
                    }
                    buf.advance(line_bytes);
                    request.bulk_len = Some(len);
                    len
                }
            };
            let Some(with_crlf) = len.checked_add(2) else {
                return Err(RespError::BulkTooLarge { len: len as u64, max: limits.bulk_bytes_max });
            };
            let Some(terminator) = buf.get(len..with_crlf) else {
                return Ok(None);
            };
            if terminator != b"\r\n" {
                return Err(RespError::BulkNotTerminated);
            }
            let arg = buf.split_to(len).freeze();
            buf.advance(2);
            request.args.push(arg);
            request.remaining -= 1;
            request.bulk_len = None;
        }
        Ok(self.partial.take().map(|request| request.args))
    }

    /// Splits off the inline line at the front of the buffer, `\n`
    /// included, once it has all arrived.
    fn inline_line(&mut self) -> Result<Option<Bytes>, RespError> {
        let max = self.limits.inline_bytes_max;
        let searchable = self.buf.get(..self.buf.len().min(max)).unwrap_or_default();
        let unscanned = searchable.get(self.inline_scanned..).unwrap_or_default();
        match unscanned.iter().position(|&b| b == b'\n') {
            Some(at) => {
                let line = self.buf.split_to(self.inline_scanned + at + 1).freeze();
                self.inline_scanned = 0;
                Ok(Some(line))
            }
            None if self.buf.len() >= max => Err(RespError::InlineTooLong { max }),
            None => {
                self.inline_scanned = searchable.len();
                Ok(None)
            }
        }
    }
}

/// Reads the `*<n>\r\n` or `$<n>\r\n` line at the front of `buf`: its value
/// and its length in bytes, `None` if it has not all arrived, or `invalid`
/// if it is not a marker byte, a canonical integer and `\r\n`.
fn header_line(buf: &[u8], invalid: RespError) -> Result<Option<(i64, usize)>, RespError> {
    let searchable = buf.get(..buf.len().min(HEADER_LINE_BYTES_MAX)).unwrap_or_default();
    let Some(newline) = searchable.iter().position(|&b| b == b'\n') else {
        return if buf.len() >= HEADER_LINE_BYTES_MAX { Err(invalid) } else { Ok(None) };
    };
    let digits = searchable.get(1..newline).and_then(|line| line.strip_suffix(b"\r")).ok_or(invalid)?;
    let value = parse_i64(digits).ok_or(invalid)?;
    Ok(Some((value, newline + 1)))
}

/// Parses a canonical decimal `i64` the way Redis's `string2ll` does: an
/// optional `-`, then `0` alone or digits not starting with `0`; no `+`, no
/// spaces, no `-0`, nothing that overflows.
pub fn parse_i64(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.split_first()? {
        (b'-', rest) => (true, rest),
        _ => (false, text),
    };
    match digits {
        [] => return None,
        [b'0'] => return (!negative).then_some(0),
        [b'0', ..] => return None,
        _ => {}
    }
    // Accumulate negatively so that i64::MIN parses.
    let mut value: i64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_sub(i64::from(b - b'0'))?;
    }
    if negative {
        Some(value)
    } else {
        value.checked_neg()
    }
}

/// Splits an inline line into words as Redis's `sdssplitargs` does. Words
/// without quotes are slices of `line`; quoted ones are unescaped copies.
fn split_inline(line: &Bytes) -> Result<Vec<Bytes>, RespError> {
    let mut args = Vec::new();
    let mut at = 0;
    loop {
        while line.get(at).is_some_and(|&b| is_space(b)) {
            at += 1;
        }
        if at >= line.len() {
            return Ok(args);
        }
        let start = at;
        let mut word: Option<Vec<u8>> = None;
        loop {
            match line.get(at) {
                None => break,
                Some(&b) if is_space(b) => break,
                Some(&quote @ (b'"' | b'\'')) => {
                    let copied = word.get_or_insert_with(|| line.get(start..at).unwrap_or_default().to_vec());
                    at = read_quoted(line, at + 1, quote, copied)?;
                    if line.get(at).is_some_and(|&b| !is_space(b)) {
                        return Err(RespError::UnbalancedQuotes);
                    }
                }
                Some(&b) => {
                    if let Some(copied) = word.as_mut() {
                        copied.push(b);
                    }
                    at += 1;
                }
            }
        }
        args.push(match word {
            Some(copied) => Bytes::from(copied),
            None => line.slice(start..at),
        });
    }
}

/// Appends to `word` the unescaped contents of a quoted string starting at
/// `at` (just after the opening `quote`); returns the index after the
/// closing quote.
fn read_quoted(line: &[u8], mut at: usize, quote: u8, word: &mut Vec<u8>) -> Result<usize, RespError> {
    loop {
        let b = *line.get(at).ok_or(RespError::UnbalancedQuotes)?;
        let next = line.get(at + 1).copied();
        if b == quote {
            return Ok(at + 1);
        }
        let Some(escaped) = next.filter(|_| b == b'\\') else {
            word.push(b);
            at += 1;
            continue;
        };
        if quote == b'\'' {
            // Single quotes know one escape: `\'`.
            if escaped == b'\'' {
                word.push(b'\'');
                at += 2;
            } else {
                word.push(b);
                at += 1;
            }
            continue;
        }
        let hex = line.get(at + 2..at + 4).and_then(|pair| match pair {
            [high, low] => Some(hex_digit(*high)? << 4 | hex_digit(*low)?),
            _ => None,
        });
        match (escaped, hex) {
            (b'x', Some(byte)) => {
                word.push(byte);
                at += 4;
            }
            _ => {
                word.push(match escaped {
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'b' => 0x08,
                    b'a' => 0x07,
                    other => other,
                });
                at += 2;
            }
        }
    }
}

fn hex_digit(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// C's `isspace`, which `sdssplitargs` splits on.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}
