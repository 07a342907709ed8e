//! The wire format of [`Message`](crate::Message)s: length-prefixed frames, little-endian
//! fields written and read with `byteorder`, and total decoders.
//!
//! # Use
//!
//! - Sending: [`encode_message`] appends one whole frame (length prefix
//!   included) to a buffer; [`encoded_len`] says how long it will be.
//! - Receiving from a stream: feed bytes as they arrive to a
//!   [`FrameDecoder`] and call [`FrameDecoder::next_message`] until it
//!   answers `Ok(None)`.
//! - Receiving a buffer that starts with a frame: [`decode_frame`]; a frame's
//!   body already split off: [`decode_message`].
//!
//! Decoding is total: any bytes give a message or a [`DecodeError`], never a
//! panic, and nothing is allocated for a length or count before it has been
//! checked against both the bytes that remain and its `MAX_*` limit. Only
//! canonical encodings are accepted (booleans are `0` or `1`, tags are known,
//! no bytes are left over), so a decoded message re-encodes to exactly the
//! bytes it was decoded from. Entry payloads are [`Bytes::slice`](bytes::Bytes::slice)s of the
//! input: decoding copies no payload bytes, and a decoded entry keeps the
//! buffer it came from alive.
//!
//! # Layout
//!
//! All integers are little-endian. `u8` booleans are `0` (false) or `1`
//! (true).
//!
//! A **frame** is a length prefix followed by that many bytes, which make up
//! the message kind, the message header and the body of that kind:
//!
//! | field  | type       | notes                                                       |
//! |--------|------------|-------------------------------------------------------------|
//! | `len`  | `u32`      | bytes that follow: `kind` + header + body; ≤ [`MAX_FRAME_BYTES`] |
//! | `kind` | `u8`       | which body follows, see the table below                      |
//! | `from` | `u64`      | [`Message::from`](crate::Message::from)                                            |
//! | `to`   | `u64`      | [`Message::to`](crate::Message::to)                                              |
//! | `term` | `u64`      | [`Message::term`](crate::Message::term)                                            |
//! | `from_incarnation` | `u64` | [`Message::from_incarnation`](crate::Message::from_incarnation)          |
//! | body   | by `kind`  | see below                                                    |
//!
//! The bodies, by `kind`:
//!
//! | kind | message                 | body fields, in order                                          | bytes |
//! |------|-------------------------|----------------------------------------------------------------|-------|
//! | 1    | `RequestVote`           | `pre_vote u8`, `last_log_index u64`, `last_log_term u64`, `leadership_transfer u8` | 18 |
//! | 2    | `RequestVoteResponse`   | `pre_vote u8`, `granted u8`                                     | 2 |
//! | 3    | `AppendEntries`         | `prev_log_index u64`, `prev_log_term u64`, `leader_commit u64`, `entry_count u32`, then `entry_count` entries | 28 + entries |
//! | 4    | `AppendEntriesResponse` | `tag u8`; tag 0 `Accepted`: `match_index u64`; tag 1 `Rejected`: `rejected_index u64`, `hint_index u64`, `hint_term u64` | 9 or 25 |
//! | 5    | `Heartbeat`             | `commit u64`, `commit_term u64`, `round u64`                    | 24 |
//! | 6    | `HeartbeatResponse`     | `round u64`, `last_index u64`, `disk u8` (0 ok, 1 full, 2 stalled) | 17 |
//! | 7    | `TimeoutNow`            | nothing                                                         | 0 |
//! | 8    | `ReadIndex`             | `request_id u64`                                                | 8 |
//! | 9    | `ReadIndexResponse`     | `request_id u64`, `tag u8`; tag 0: no index; tag 1: `index u64` | 9 or 17 |
//! | 10   | `Propose`               | `command_count u32`, then per command `len u32`, `data`         | 4 + commands |
//! | 11   | reserved                | none: refused with [`DecodeError::ReservedKind`], see below     | – |
//! | 12   | `SnapshotChunk`         | `index u64`, `snapshot_term u64`, `offset u64`, `total_bytes u64`, `len u32`, `data` | 36 + data |
//! | 13   | `SnapshotAck`           | `index u64`, `snapshot_term u64`, `received u64`, `failed u8`   | 25 |
//!
//! Kind `0` is unused so that a zero-filled buffer never parses as a message.
//! Kind `11` is reserved and never reused: it carried `InstallSnapshot`,
//! the word that a snapshot had arrived whole, which a receiver acted on by
//! dropping its log. Only the receiver's own runtime can know that (it tells
//! its core with [`Node::handle_snapshot_received`](crate::Node::handle_snapshot_received)),
//! so no peer may say it; a frame of kind 11 is refused whatever its body.
//!
//! Each **entry** inside `AppendEntries`:
//!
//! | field  | type  | notes                                                  |
//! |--------|-------|--------------------------------------------------------|
//! | `term` | `u64` | [`Entry::term`](crate::Entry::term)                    |
//! | `kind` | `u8`  | `0` [`EntryKind::Blank`](crate::EntryKind::Blank) (data must be empty), `1` [`EntryKind::Command`](crate::EntryKind::Command), `2` [`EntryKind::Membership`](crate::EntryKind::Membership) |
//! | `len`  | `u32` | length of `data`                                       |
//! | `data` | bytes | the payload                                            |
//!
//! An entry's index is not on the wire: entry `k` (from `0`) of an
//! `AppendEntries` has index `prev_log_index + 1 + k`. An entry's encoded size
//! is exactly [`Entry::size_bytes`](crate::Entry::size_bytes), and the entries
//! of one message may total at most [`ENTRIES_BYTES_LIMIT`] by that count.
//! The commands of a `Propose` count the same way (length plus
//! [`ENTRY_HEADER_BYTES`] each) against the same limit, so no frame exceeds
//! [`MAX_FRAME_BYTES`].

mod decode;
mod encode;
mod error;
mod handshake;
mod reader;
mod stream;

#[cfg(test)]
mod tests;

pub use self::decode::{decode_frame, decode_message};
pub use self::encode::{encode_message, encoded_len};
pub use self::error::DecodeError;
pub use self::handshake::{
    decode_handshake, encode_handshake, voters_hash, Handshake, HandshakeError, PeerState, ADDRESS_BYTES_MAX,
    CLUSTER_ID_BYTES_MAX, HANDSHAKE_BYTES_MAX, HANDSHAKE_MAGIC,
};
pub(crate) use self::stream::read_appending;
pub use self::stream::FrameDecoder;

use crate::message::{MessageBody, ENTRIES_BYTES_LIMIT};
use crate::types::ENTRY_OVERHEAD_BYTES;

/// Bytes of a frame's length prefix.
pub const FRAME_LEN_BYTES: usize = 4;

/// Bytes of a frame's kind tag.
pub const FRAME_KIND_BYTES: usize = 1;

/// Bytes before a frame's message header: the length prefix and the kind.
pub const FRAME_HEADER_BYTES: usize = FRAME_LEN_BYTES + FRAME_KIND_BYTES;

/// Bytes of the message header every frame carries after its kind: `from`,
/// `to`, `term` and `from_incarnation`.
pub const MESSAGE_HEADER_BYTES: usize = 8 + 8 + 8 + 8;

/// Bytes of an entry before its data: `term`, `kind` and `len`.
pub const ENTRY_HEADER_BYTES: usize = 8 + 1 + 4;

/// Bytes of an `AppendEntries` body before its entries: `prev_log_index`,
/// `prev_log_term`, `leader_commit` and `entry_count`.
pub const APPEND_ENTRIES_FIXED_BYTES: usize = 8 + 8 + 8 + 4;

/// [`ENTRIES_BYTES_LIMIT`] as a `usize`, checked to convert losslessly.
const ENTRIES_BYTES_LIMIT_USIZE: usize = {
    // The limit must fit the `u32` entry length and frame length fields, and
    // hence a `usize` on every platform Rust supports with `std`.
    assert!(ENTRIES_BYTES_LIMIT <= u32::MAX as u64);
    ENTRIES_BYTES_LIMIT as usize
};

/// The most entries one `AppendEntries` can carry: each counts at least
/// [`ENTRY_OVERHEAD_BYTES`] against [`ENTRIES_BYTES_LIMIT`].
pub const MAX_ENTRY_COUNT: usize = ENTRIES_BYTES_LIMIT_USIZE / ENTRY_HEADER_BYTES;

/// The largest body of a fixed size (every kind but `AppendEntries`).
const MAX_FIXED_BODY_BYTES: usize = 8 + 8 + 8 + 1; // AppendEntriesResponse::Rejected

/// The largest value a frame's length prefix may hold: the kind, the message
/// header and the largest body, an `AppendEntries` whose entries reach
/// [`ENTRIES_BYTES_LIMIT`]. The 4-byte prefix itself is not counted. A
/// decoder rejects a larger prefix as soon as it has read it, before
/// buffering or allocating anything for the body.
pub const MAX_FRAME_BYTES: usize =
    FRAME_KIND_BYTES + MESSAGE_HEADER_BYTES + APPEND_ENTRIES_FIXED_BYTES + ENTRIES_BYTES_LIMIT_USIZE;

// The wire sizes agree with the byte accounting the core does, so "fits in
// ENTRIES_BYTES_LIMIT" means the same thing on both sides.
const _: () = assert!(ENTRY_HEADER_BYTES as u64 == ENTRY_OVERHEAD_BYTES);
// An AppendEntries body with any entries is the largest body.
const _: () = assert!(MAX_FIXED_BODY_BYTES <= APPEND_ENTRIES_FIXED_BYTES);
// Every frame length fits its u32 prefix.
const _: () = assert!(MAX_FRAME_BYTES <= u32::MAX as usize);

/// The kind tag that starts every frame body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    RequestVote,
    RequestVoteResponse,
    AppendEntries,
    AppendEntriesResponse,
    Heartbeat,
    HeartbeatResponse,
    TimeoutNow,
    ReadIndex,
    ReadIndexResponse,
    Propose,
    SnapshotChunk,
    SnapshotAck,
}

impl Kind {
    /// The kind of `body`.
    fn of(body: &MessageBody) -> Kind {
        match body {
            MessageBody::RequestVote(_) => Kind::RequestVote,
            MessageBody::RequestVoteResponse(_) => Kind::RequestVoteResponse,
            MessageBody::AppendEntries(_) => Kind::AppendEntries,
            MessageBody::AppendEntriesResponse(_) => Kind::AppendEntriesResponse,
            MessageBody::Heartbeat(_) => Kind::Heartbeat,
            MessageBody::HeartbeatResponse(_) => Kind::HeartbeatResponse,
            MessageBody::TimeoutNow => Kind::TimeoutNow,
            MessageBody::ReadIndex(_) => Kind::ReadIndex,
            MessageBody::ReadIndexResponse(_) => Kind::ReadIndexResponse,
            MessageBody::Propose(_) => Kind::Propose,
            MessageBody::SnapshotChunk(_) => Kind::SnapshotChunk,
            MessageBody::SnapshotAck(_) => Kind::SnapshotAck,
        }
    }

    /// The byte on the wire.
    fn tag(self) -> u8 {
        match self {
            Kind::RequestVote => 1,
            Kind::RequestVoteResponse => 2,
            Kind::AppendEntries => 3,
            Kind::AppendEntriesResponse => 4,
            Kind::Heartbeat => 5,
            Kind::HeartbeatResponse => 6,
            Kind::TimeoutNow => 7,
            Kind::ReadIndex => 8,
            Kind::ReadIndexResponse => 9,
            Kind::Propose => 10,
            Kind::SnapshotChunk => 12,
            Kind::SnapshotAck => 13,
        }
    }

    /// The kind whose byte is `tag`, if any.
    fn from_tag(tag: u8) -> Option<Kind> {
        match tag {
            1 => Some(Kind::RequestVote),
            2 => Some(Kind::RequestVoteResponse),
            3 => Some(Kind::AppendEntries),
            4 => Some(Kind::AppendEntriesResponse),
            5 => Some(Kind::Heartbeat),
            6 => Some(Kind::HeartbeatResponse),
            7 => Some(Kind::TimeoutNow),
            8 => Some(Kind::ReadIndex),
            9 => Some(Kind::ReadIndexResponse),
            10 => Some(Kind::Propose),
            12 => Some(Kind::SnapshotChunk),
            13 => Some(Kind::SnapshotAck),
            _ => None,
        }
    }
}

/// Message kinds no encoder produces and every decoder refuses with
/// [`DecodeError::ReservedKind`]: 11 was `InstallSnapshot` (see the layout
/// above). Never give a new message one of these numbers: a peer of an older
/// version would take it for the old one.
const RESERVED_KINDS: [u8; 1] = [11];

/// `AppendEntriesResponse` tags.
const APPEND_RESPONSE_ACCEPTED: u8 = 0;
const APPEND_RESPONSE_REJECTED: u8 = 1;

/// `ReadIndexResponse` tags.
const READ_INDEX_NONE: u8 = 0;
const READ_INDEX_SOME: u8 = 1;

/// Bytes of a `Propose` body before its commands: `command_count`.
const PROPOSE_FIXED_BYTES: usize = 4;

/// Bytes of a forwarded command before its data: `len`.
const COMMAND_HEADER_BYTES: usize = 4;

/// `EntryKind` tags.
const ENTRY_KIND_BLANK: u8 = 0;
const ENTRY_KIND_COMMAND: u8 = 1;
const ENTRY_KIND_MEMBERSHIP: u8 = 2;
