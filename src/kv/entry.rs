//! Key-value commands as payloads for the runtime: writes as Raft log
//! entries, reads as linearizable read queries.
//!
//! The runtime wraps every payload in an envelope of its own (the proposing
//! node and its request id) to find the client waiting for it; that envelope
//! is not part of the layouts below, which start at offset 0 of what the
//! runtime hands over. All integers are little-endian; lengths and counts are
//! `u32`.
//!
//! Every [`WriteOp`] travels through the log as one entry whose payload is
//! made by [`encode_write`] and read by [`decode_write`]:
//!
//! | offset | size | field     | meaning                                  |
//! |--------|------|-----------|------------------------------------------|
//! | 0      | 1    | `version` | [`WRITE_ENTRY_VERSION`] (1)               |
//! | 1      | 1    | `op`      | 1 `SET`, 2 `DEL`, 3 `INCRBY`, 4 `MSET`   |
//! | 2      | …    | body      | by `op`, below                           |
//!
//! | `op`     | body                                                                   |
//! |----------|------------------------------------------------------------------------|
//! | `SET`    | `flags: u8` (bit 0 `NX`, bit 1 `XX`, bit 2 `GET`), `key_len`, `key`, `value_len`, `value` |
//! | `DEL`    | `key_count` (≥ 1), then per key: `key_len`, `key`                       |
//! | `INCRBY` | `delta: i64`, `key_len`, `key`                                         |
//! | `MSET`   | `pair_count` (≥ 1), then per pair: `key_len`, `key`, `value_len`, `value` |
//!
//! Every [`ReadOp`] is handed to the runtime's read path as a query made by
//! [`encode_read`] and read by [`decode_read`], with the same version byte:
//!
//! | offset | size | field     | meaning                                       |
//! |--------|------|-----------|-----------------------------------------------|
//! | 0      | 1    | `version` | [`WRITE_ENTRY_VERSION`] (1)                    |
//! | 1      | 1    | `op`      | 1 `GET`, 2 `EXISTS`, 3 `MGET`, 4 `DBSIZE`     |
//! | 2      | …    | body      | by `op`, below                                |
//!
//! | `op`              | body                                               |
//! |-------------------|----------------------------------------------------|
//! | `GET`             | `key_len`, `key`                                   |
//! | `EXISTS`, `MGET`  | `key_count` (≥ 1), then per key: `key_len`, `key`  |
//! | `DBSIZE`          | none                                               |
//!
//! Decoding is total, since payloads come from disk and the network: any
//! bytes give an op or an [`EntryDecodeError`], never a panic. Only
//! canonical encodings are accepted (known flags, no `NX` with `XX`, no
//! empty key list, no trailing bytes), so decoding then encoding gives back
//! the same bytes. Counts are checked against the bytes that remain before
//! anything is allocated for them.

use std::fmt;

use byteorder::{ByteOrder, LittleEndian};
use bytes::{BufMut, Bytes};

use super::command::{ReadOp, SetCondition, WriteOp};

/// The layout version written at offset 0 of write and read payloads.
pub const WRITE_ENTRY_VERSION: u8 = 1;
/// The bytes of a write payload before the body: version, op.
pub const WRITE_ENTRY_HEADER_BYTES: usize = 2;

const OP_SET: u8 = 1;
const OP_DEL: u8 = 2;
const OP_INCRBY: u8 = 3;
const OP_MSET: u8 = 4;

const OP_GET: u8 = 1;
const OP_EXISTS: u8 = 2;
const OP_MGET: u8 = 3;
const OP_DBSIZE: u8 = 4;

const FLAG_NX: u8 = 1 << 0;
const FLAG_XX: u8 = 1 << 1;
const FLAG_GET: u8 = 1 << 2;

/// Why a payload is not a write or read payload. Writes come from disk or
/// from peers: either this node's log is damaged or a peer runs an
/// incompatible version. Replicas apply the same entries, so a runtime
/// should stop applying (and report which index) rather than skip it. A read
/// query never leaves the node that encoded it, so one that fails to decode
/// points at a bug in its caller: answer that client with an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryDecodeError {
    /// The payload ends inside `field`.
    Truncated {
        /// The field cut short, as named in the layout tables.
        field: &'static str,
    },
    /// The `version` byte is not one this build reads.
    UnknownVersion {
        /// The version found.
        version: u8,
    },
    /// The `op` byte names no command of the payload's kind (write or read).
    UnknownOp {
        /// The op found.
        op: u8,
    },
    /// `SET` flags with unknown bits, or `NX` and `XX` together.
    BadFlags {
        /// The flags found.
        flags: u8,
    },
    /// A `DEL`, `MSET`, `EXISTS` or `MGET` with a count of zero, which no
    /// encoder writes.
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
        write!(f, "malformed key-value payload: ")?;
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

/// The size in bytes of the payload [`encode_write`] makes for `op` (the
/// runtime's envelope not included). Check it against the entry limit
/// before proposing, and answer `-ERR` instead.
pub fn write_entry_len(op: &WriteOp) -> u64 {
    let body: usize = match op {
        WriteOp::Set { key, value, .. } => 1 + 4 + key.len() + 4 + value.len(),
        WriteOp::Del { keys } => keys_len(keys),
        WriteOp::IncrBy { key, .. } => 8 + 4 + key.len(),
        WriteOp::MSet { pairs } => {
            4 + pairs.iter().map(|(key, value)| 4 + key.len() + 4 + value.len()).sum::<usize>()
        }
    };
    (WRITE_ENTRY_HEADER_BYTES + body) as u64
}

/// Encodes `op` as a log entry payload in one allocation of exactly
/// [`write_entry_len`] bytes. Propose it; every replica decodes it with
/// [`decode_write`] when it commits.
///
/// # Panics
/// If a key, a value or a list is longer than `u32::MAX`: check
/// [`write_entry_len`] against the entry limit first.
pub fn encode_write(op: &WriteOp) -> Bytes {
    let len = write_entry_len(op);
    let mut out = Vec::with_capacity(usize::try_from(len).expect("a payload that fits in memory"));
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
            put_keys(&mut out, keys);
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

/// Decodes a log entry payload made by [`encode_write`].
///
/// Keys and values are copied out of `payload` rather than sliced from it:
/// the map keeps them for long, and a slice would pin the whole buffer the
/// entry arrived in (a network frame of many entries, a storage read).
pub fn decode_write(payload: &[u8]) -> Result<WriteOp, EntryDecodeError> {
    let mut reader = Reader::versioned(payload)?;
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
        OP_DEL => WriteOp::Del { keys: reader.keys()? },
        OP_INCRBY => {
            let delta = reader.u64("delta")? as i64;
            let key = reader.bytes("key_len", "key")?;
            WriteOp::IncrBy { key, delta }
        }
        OP_MSET => {
            // Each pair takes at least its two 4-byte lengths.
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
    reader.finish()?;
    Ok(op)
}

/// Encodes `op` as a read query, in one allocation of exactly its size.
/// Hand it to the runtime's read path; the state machine decodes it with
/// [`decode_read`] once its read index is applied.
///
/// # Panics
/// If a key or the key list is longer than `u32::MAX`.
pub fn encode_read(op: &ReadOp) -> Bytes {
    let body = match op {
        ReadOp::Get { key } => 4 + key.len(),
        ReadOp::Exists { keys } | ReadOp::MGet { keys } => keys_len(keys),
        ReadOp::DbSize => 0,
    };
    let len = 2 + body; // version, op
    let mut out = Vec::with_capacity(len);
    out.put_u8(WRITE_ENTRY_VERSION);
    match op {
        ReadOp::Get { key } => {
            out.put_u8(OP_GET);
            put_bytes(&mut out, key);
        }
        ReadOp::Exists { keys } => {
            out.put_u8(OP_EXISTS);
            put_keys(&mut out, keys);
        }
        ReadOp::MGet { keys } => {
            out.put_u8(OP_MGET);
            put_keys(&mut out, keys);
        }
        ReadOp::DbSize => out.put_u8(OP_DBSIZE),
    }
    assert_eq!(out.len(), len, "encode_read wrote other than the size it computed");
    Bytes::from(out)
}

/// Decodes a read query made by [`encode_read`]. Keys are copied, since
/// `payload` is borrowed and a [`ReadOp`] owns its keys.
pub fn decode_read(payload: &[u8]) -> Result<ReadOp, EntryDecodeError> {
    let mut reader = Reader::versioned(payload)?;
    let op = match reader.u8("op")? {
        OP_GET => ReadOp::Get { key: reader.bytes("key_len", "key")? },
        OP_EXISTS => ReadOp::Exists { keys: reader.keys()? },
        OP_MGET => ReadOp::MGet { keys: reader.keys()? },
        OP_DBSIZE => ReadOp::DbSize,
        op => return Err(EntryDecodeError::UnknownOp { op }),
    };
    reader.finish()?;
    Ok(op)
}

/// The size of a key list as [`put_keys`] writes it.
fn keys_len(keys: &[Bytes]) -> usize {
    4 + keys.iter().map(|key| 4 + key.len()).sum::<usize>()
}

fn put_keys(out: &mut Vec<u8>, keys: &[Bytes]) {
    put_len(out, keys.len());
    for key in keys {
        put_bytes(out, key);
    }
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

impl<'a> Reader<'a> {
    /// A reader past the `version` byte of `payload`, if this build reads
    /// that version.
    fn versioned(payload: &'a [u8]) -> Result<Self, EntryDecodeError> {
        let mut reader = Reader { rest: payload };
        let version = reader.u8("version")?;
        if version != WRITE_ENTRY_VERSION {
            return Err(EntryDecodeError::UnknownVersion { version });
        }
        Ok(reader)
    }

    /// Succeeds if every byte was read.
    fn finish(self) -> Result<(), EntryDecodeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(EntryDecodeError::TrailingBytes { count: self.rest.len() })
        }
    }

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

    /// A nonzero `key_count`, then that many length-prefixed keys.
    fn keys(&mut self) -> Result<Vec<Bytes>, EntryDecodeError> {
        // Each key takes at least its 4-byte length.
        let count = self.count("key_count", 4)?;
        let mut keys = Vec::with_capacity(count);
        for _ in 0..count {
            keys.push(self.bytes("key_len", "key")?);
        }
        Ok(keys)
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
