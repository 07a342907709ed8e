//! Decoding a byte stream that arrives in arbitrary pieces.

use std::io;

use bytes::{Buf, BytesMut};

use super::decode::{decode_message, peek_frame_len};
use super::error::DecodeError;
use super::FRAME_LEN_BYTES;
use crate::message::Message;

/// How many bytes [`FrameDecoder::read_from`] asks for per call.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Reads once from `source` onto the end of `buf`, at most 64 KiB, and
/// returns what `source.read` returned. Safe code cannot read into
/// uninitialised memory, so the room is zeroed first; a reader that claims
/// more bytes than it was given is broken, and the zeroes it did not write
/// are never kept.
pub(crate) fn read_appending<R: io::Read + ?Sized>(buf: &mut BytesMut, source: &mut R) -> io::Result<usize> {
    let start = buf.len();
    buf.resize(start + READ_CHUNK_BYTES, 0);
    let result = match buf.get_mut(start..) {
        Some(spare) => source.read(spare),
        None => Ok(0),
    };
    let read = result.as_ref().map_or(0, |&n| n.min(READ_CHUNK_BYTES));
    buf.truncate(start + read);
    result
}

/// Splits a byte stream (a peer connection) into messages.
///
/// Feed it bytes as they arrive, with [`extend`](FrameDecoder::extend) or
/// [`read_from`](FrameDecoder::read_from), then call
/// [`next_message`](FrameDecoder::next_message) until it answers `Ok(None)`.
/// The pieces may be of any size: the messages are the same as those of
/// decoding the whole stream at once with [`decode_frame`](super::decode_frame).
///
/// A length prefix above [`MAX_FRAME_BYTES`](super::MAX_FRAME_BYTES) is
/// rejected as soon as its four bytes arrive: the body it announces is never
/// buffered. The buffer therefore holds at most one frame plus one piece of
/// input.
///
/// After the first error the decoder stays failed: every later
/// `next_message` returns that error again and further input is dropped,
/// because a stream that went wrong once cannot be resynchronised. Close
/// the connection.
///
/// Messages are zero-copy: each frame is split off the internal buffer, and
/// entry payloads are slices of it.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    /// Bytes received and not yet decoded. Invariant: starts at a frame
    /// boundary; empty once `failed` is set.
    buf: BytesMut,
    /// The first error met, returned from then on.
    failed: Option<DecodeError>,
}

impl FrameDecoder {
    /// A decoder at the start of a stream.
    pub fn new() -> FrameDecoder {
        FrameDecoder::default()
    }

    /// Appends `chunk`, the next bytes of the stream. If they complete an
    /// invalid length prefix, the decoder fails at once and drops the rest
    /// of `chunk` instead of buffering it.
    pub fn extend(&mut self, chunk: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        let mut rest = chunk;
        let prefix_missing = FRAME_LEN_BYTES.saturating_sub(self.buf.len());
        if prefix_missing > 0 {
            let (prefix, after) = chunk.split_at(prefix_missing.min(chunk.len()));
            self.buf.extend_from_slice(prefix);
            if self.head_frame_len().is_err() {
                return;
            }
            rest = after;
        }
        self.buf.extend_from_slice(rest);
    }

    /// Reads once from `source` straight into the buffer (up to 64 KiB, with
    /// no intermediate copy) and returns what `source.read` returned. `Ok(0)`
    /// means the stream has ended; check
    /// [`buffered_len`](FrameDecoder::buffered_len) to tell a clean end from
    /// one in the middle of a frame. For a nonblocking `source`, call it
    /// until it returns [`io::ErrorKind::WouldBlock`], calling
    /// `next_message` in between.
    ///
    /// Safe code cannot read into uninitialised memory, so each call first
    /// zeroes 64 KiB of room, often freshly allocated after frames were
    /// split off. A reader of many small messages does better reading into
    /// one reused buffer and passing what it got to
    /// [`extend`](FrameDecoder::extend), as the runtime does: in its event
    /// loop that zeroing cost 9% of the samples.
    ///
    /// Once the decoder has failed, the bytes read are dropped.
    pub fn read_from<R: io::Read + ?Sized>(&mut self, source: &mut R) -> io::Result<usize> {
        let start = self.buf.len();
        let result = read_appending(&mut self.buf, source);
        if self.failed.is_some() {
            self.buf.clear();
        } else if start < FRAME_LEN_BYTES {
            // The prefix may have just become whole: check it now.
            let _ = self.head_frame_len();
        }
        result
    }

    /// The next whole message, `Ok(None)` if more bytes are needed first, or
    /// the error that made the stream unreadable (the same error on every
    /// call once it has happened).
    pub fn next_message(&mut self) -> Result<Option<Message>, DecodeError> {
        let Some(body_len) = self.head_frame_len()? else {
            return Ok(None);
        };
        // Cannot overflow: `body_len <= MAX_FRAME_BYTES`, which fits in a u32.
        let frame_len = FRAME_LEN_BYTES + body_len;
        if self.buf.len() < frame_len {
            return Ok(None);
        }
        let mut frame = self.buf.split_to(frame_len);
        frame.advance(FRAME_LEN_BYTES);
        decode_message(&frame.freeze()).map(Some).map_err(|error| self.fail(error))
    }

    /// Bytes received but not yet returned as messages. Nonzero when the
    /// stream ends means it ended in the middle of a frame.
    pub fn buffered_len(&self) -> usize {
        self.buf.len()
    }

    /// The length after the prefix of the frame at the head of the buffer,
    /// `None` while the prefix is incomplete. Fails the decoder on a bad
    /// prefix.
    fn head_frame_len(&mut self) -> Result<Option<usize>, DecodeError> {
        if let Some(error) = self.failed {
            return Err(error);
        }
        peek_frame_len(&self.buf).map_err(|error| self.fail(error))
    }

    /// Enters the failed state for good.
    fn fail(&mut self, error: DecodeError) -> DecodeError {
        self.failed = Some(error);
        self.buf = BytesMut::new();
        error
    }
}
