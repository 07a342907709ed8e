//! Write commands as Raft log entry payloads.
//!
//! Every [`WriteOp`] travels through the log as one entry whose payload is
//! laid out as below. All integers are little-endian; lengths and counts are
//! `u32`.
//!
//! | offset | size | field        | meaning                                               |
//! |--------|------|--------------|-------------------------------------------------------|
//! | 0      | 8    | `proposer`   | [`RequestHeader::proposer`]: node that proposed it (0 = none) |
//! | 8      | 8    | `request_id` | [`RequestHeader::request_id`]: the proposer's id for its waiting client |
//! | 16     | 1    | `version`    | [`WRITE_ENTRY_VERSION`] (1)                            |
//! | 17     | 1    | `op`         | 1 `SET`, 2 `DEL`, 3 `INCRBY`, 4 `MSET`                |
//! | 18     | …    | body         | by `op`, below                                        |
//!
//! | `op`     | body                                                                   |
//! |----------|------------------------------------------------------------------------|
//! | `SET`    | `flags: u8` (bit 0 `NX`, bit 1 `XX`, bit 2 `GET`), `key_len`, `key`, `value_len`, `value` |
//! | `DEL`    | `key_count` (≥ 1), then per key: `key_len`, `key`                       |
//! | `INCRBY` | `delta: i64`, `key_len`, `key`                                         |
//! | `MSET`   | `pair_count` (≥ 1), then per pair: `key_len`, `key`, `value_len`, `value` |
//!
//! The request header comes first, at a fixed place, so that a runtime can
//! read it ([`decode_request_header`]) to find the client waiting for the
//! entry without decoding the command, whatever `version` says.
//!
//! Decoding is total, since entries come from disk and the network: any
//! bytes give a [`WriteEntry`] or an [`EntryDecodeError`], never a panic.
//! Only canonical encodings are accepted (known flags, no `NX` with `XX`, no
//! empty key list, no trailing bytes), so decoding then encoding gives back
//! the same bytes. Counts are checked against the bytes that remain before
//! anything is allocated for them.

use std::fmt;

use byteorder::{ByteOrder, LittleEndian};
use bytes::{BufMut, Bytes};

use super::command::{SetCondition, WriteOp};
use crate::types::NodeId;

/// The layout version written at offset 16.
pub const WRITE_ENTRY_VERSION: u8 = 1;
/// The size of the [`RequestHeader`] at the start of every payload.
pub const REQUEST_HEADER_BYTES: usize = 16;
/// The bytes before the body: request header, version, op.
pub const WRITE_ENTRY_HEADER_BYTES: usize = REQUEST_HEADER_BYTES + 2;

const OP_SET: u8 = 1;
const OP_DEL: u8 = 2;
const OP_INCRBY: u8 = 3;
const OP_MSET: u8 = 4;

const FLAG_NX: u8 = 1 << 0;
const FLAG_XX: u8 = 1 << 1;
const FLAG_GET: u8 = 1 << 2;

/// Who waits for an entry: filled in by the runtime when proposing, and read
/// back when the entry is applied so that the proposer answers its client.
/// Opaque to the state machine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RequestHeader {
    /// The node that proposed the entry; `NodeId(0)` when nobody waits.
    pub proposer: NodeId,
    /// The proposer's identifier for the waiting request, unique on that
    /// node for as long as the request can still be applied.
    pub request_id: u64,
}

/// A decoded log entry payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteEntry {
    /// Who waits for it.
    pub header: RequestHeader,
    /// What it does.
    pub op: WriteOp,
}

/// Why a payload is not a write entry. Entries come from disk or from
/// peers; either this node's log is damaged or a peer runs an incompatible
/// version. Replicas apply the same entries, so a runtime should stop
/// applying (and report which index) rather than skip it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryDecodeError {
    /// The payload ends inside `field`.
    Truncated {
        /// The field cut short, as named in the layout table.
        field: &'static str,
    },
    /// The `version` byte is not one this build reads.
    UnknownVersion {
        /// The version found.
        version: u8,
    },
    /// The `op` byte names no write command.
    UnknownOp {
        /// The op found.
        op: u8,
    },
    /// `SET` flags with unknown bits, or `NX` and `XX` together.
    BadFlags {
        /// The flags found.
        flags: u8,
    },
    /// A `DEL` or `MSET` with a count of zero, which no encoder writes.
    EmptyList {
        /// The count field.
        field: &'static str,
    },
    /// Bytes left after the body.
    TrailingBytes {
        /// How many.
        count: usize,
    },
}

impl fmt::Display for EntryDecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed key-value log entry: ")?;
        match self {
            EntryDecodeError::Truncated { field } => write!(f, "it ends inside `{field}`"),
            EntryDecodeError::UnknownVersion { version } => {
                write!(f, "layout version {version}, this build reads {WRITE_ENTRY_VERSION}")
            }
            EntryDecodeError::UnknownOp { op } => write!(f, "unknown op {op}"),
            EntryDecodeError::BadFlags { flags } => write!(f, "invalid SET flags {flags:#04x}"),
            EntryDecodeError::EmptyList { field } => write!(f, "`{field}` is zero"),
            EntryDecodeError::TrailingBytes { count } => write!(f, "{count} bytes after the end"),
        }
    }
}

impl std::error::Error for EntryDecodeError {}

/// The size in bytes of the payload [`encode_write`] makes for `op`. Check
/// it against the entry limit before proposing, and answer `-ERR` instead.
pub fn write_entry_len(op: &WriteOp) -> u64 {
    let body: usize = match op {
        WriteOp::Set { key, value, .. } => 1 + 4 + key.len() + 4 + value.len(),
        WriteOp::Del { keys } => 4 + keys.iter().map(|key| 4 + key.len()).sum::<usize>(),
        WriteOp::IncrBy { key, .. } => 8 + 4 + key.len(),
        WriteOp::MSet { pairs } => {
            4 + pairs.iter().map(|(key, value)| 4 + key.len() + 4 + value.len()).sum::<usize>()
        }
    };
    (WRITE_ENTRY_HEADER_BYTES + body) as u64
}

/// Encodes `op`, proposed for the request `header` names, as a log entry
/// payload in one allocation of exactly [`write_entry_len`] bytes.
///
/// # Panics
/// If a key, a value or a list is longer than `u32::MAX`: check
/// [`write_entry_len`] against the entry limit first.
pub fn encode_write(header: RequestHeader, op: &WriteOp) -> Bytes {
    let len = write_entry_len(op);
    let mut out = Vec::with_capacity(usize::try_from(len).expect("a payload that fits in memory"));
    out.put_u64_le(header.proposer.0);
    out.put_u64_le(header.request_id);
    out.put_u8(WRITE_ENTRY_VERSION);
    match op {
        WriteOp::Set { key, value, condition, get } => {
            let mut flags = match condition {
                SetCondition::Always => 0,
                SetCondition::IfAbsent => FLAG_NX,
                SetCondition::IfPresent => FLAG_XX,
            };
            if *get {
                flags |= FLAG_GET;
            }
            out.put_u8(OP_SET);
            out.put_u8(flags);
            put_bytes(&mut out, key);
            put_bytes(&mut out, value);
        }
        WriteOp::Del { keys } => {
            out.put_u8(OP_DEL);
            put_len(&mut out, keys.len());
            for key in keys {
                put_bytes(&mut out, key);
            }
        }
        WriteOp::IncrBy { key, delta } => {
            out.put_u8(OP_INCRBY);
            out.put_i64_le(*delta);
            put_bytes(&mut out, key);
        }
        WriteOp::MSet { pairs } => {
            out.put_u8(OP_MSET);
            put_len(&mut out, pairs.len());
            for (key, value) in pairs {
                put_bytes(&mut out, key);
                put_bytes(&mut out, value);
            }
        }
    }
    assert_eq!(out.len() as u64, len, "write_entry_len disagrees with encode_write");
    Bytes::from(out)
}

/// Reads the request header of a payload without decoding the rest.
pub fn decode_request_header(payload: &[u8]) -> Result<RequestHeader, EntryDecodeError> {
    let mut reader = Reader { rest: payload };
    Ok(RequestHeader { proposer: NodeId(reader.u64("proposer")?), request_id: reader.u64("request_id")? })
}

/// Decodes a log entry payload made by [`encode_write`].
///
/// Keys and values are copied out of `payload` rather than sliced from it:
/// the map keeps them for long, and a slice would pin the whole buffer the
/// entry arrived in (a network frame of many entries, a storage read).
pub fn decode_write(payload: &[u8]) -> Result<WriteEntry, EntryDecodeError> {
    let header = decode_request_header(payload)?;
    let mut reader = Reader { rest: payload.get(REQUEST_HEADER_BYTES..).unwrap_or_default() };
    let version = reader.u8("version")?;
    if version != WRITE_ENTRY_VERSION {
        return Err(EntryDecodeError::UnknownVersion { version });
    }
    let op = match reader.u8("op")? {
        OP_SET => {
            let flags = reader.u8("flags")?;
            let condition = match flags & (FLAG_NX | FLAG_XX) {
                0 => SetCondition::Always,
                FLAG_NX => SetCondition::IfAbsent,
                FLAG_XX => SetCondition::IfPresent,
                _ => return Err(EntryDecodeError::BadFlags { flags }),
            };
            if flags & !(FLAG_NX | FLAG_XX | FLAG_GET) != 0 {
                return Err(EntryDecodeError::BadFlags { flags });
            }
            let key = reader.bytes("key_len", "key")?;
            let value = reader.bytes("value_len", "value")?;
            WriteOp::Set { key, value, condition, get: flags & FLAG_GET != 0 }
        }
        OP_DEL => {
            // Each key takes at least its 4-byte length.
            let count = reader.count("key_count", 4)?;
            let mut keys = Vec::with_capacity(count);
            for _ in 0..count {
                keys.push(reader.bytes("key_len", "key")?);
            }
            WriteOp::Del { keys }
        }
        OP_INCRBY => {
            let delta = reader.u64("delta")? as i64;
            let key = reader.bytes("key_len", "key")?;
            WriteOp::IncrBy { key, delta }
        }
        OP_MSET => {
            let count = reader.count("pair_count", 8)?;
            let mut pairs = Vec::with_capacity(count);
            for _ in 0..count {
                let key = reader.bytes("key_len", "key")?;
                let value = reader.bytes("value_len", "value")?;
                pairs.push((key, value));
            }
            WriteOp::MSet { pairs }
        }
        op => return Err(EntryDecodeError::UnknownOp { op }),
    };
    if !reader.rest.is_empty() {
        return Err(EntryDecodeError::TrailingBytes { count: reader.rest.len() });
    }
    Ok(WriteEntry { header, op })
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    out.put_u32_le(u32::try_from(len).expect("a key, value or list longer than u32::MAX"));
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_len(out, bytes.len());
    out.put_slice(bytes);
}

/// A checked cursor: every take either gets all its bytes or fails naming
/// the field.
struct Reader<'a> {
    rest: &'a [u8],
}

impl Reader<'_> {
    fn take(&mut self, len: usize, field: &'static str) -> Result<&[u8], EntryDecodeError> {
        let (taken, rest) = self.rest.split_at_checked(len).ok_or(EntryDecodeError::Truncated { field })?;
        self.rest = rest;
        Ok(taken)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, EntryDecodeError> {
        let (&byte, rest) = self.rest.split_first().ok_or(EntryDecodeError::Truncated { field })?;
        self.rest = rest;
        Ok(byte)
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, EntryDecodeError> {
        self.take(4, field).map(LittleEndian::read_u32)
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, EntryDecodeError> {
        self.take(8, field).map(LittleEndian::read_u64)
    }

    /// A length-prefixed byte string, copied.
    fn bytes(&mut self, len_field: &'static str, field: &'static str) -> Result<Bytes, EntryDecodeError> {
        let len = self.u32(len_field)?;
        let len = usize::try_from(len).map_err(|_| EntryDecodeError::Truncated { field })?;
        self.take(len, field).map(Bytes::copy_from_slice)
    }

    /// A nonzero count of items each at least `item_bytes_min` long, checked
    /// against what remains so that the caller can allocate for it.
    fn count(&mut self, field: &'static str, item_bytes_min: usize) -> Result<usize, EntryDecodeError> {
        let count = self.u32(field)?;
        if count == 0 {
            return Err(EntryDecodeError::EmptyList { field });
        }
        let count = usize::try_from(count).map_err(|_| EntryDecodeError::Truncated { field })?;
        if count > self.rest.len() / item_bytes_min {
            return Err(EntryDecodeError::Truncated { field });
        }
        Ok(count)
    }
}
