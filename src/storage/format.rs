//! The bytes on disk: the segment header and the records after it.
//!
//! Encoding appends to a caller's buffer (reused across batches, so the hot
//! path allocates nothing per entry). Decoding is total: any bytes give a
//! record or a [`RecordError`], never a panic, and every length is checked
//! against the bytes that remain and a `MAX_*` limit before it is trusted.
//! The layout tables live in the module docs of [`crate::storage`].

use std::fmt;

use crate::types::{Entry, EntryKind, HardState, LogIndex, NodeId, Term};

/// The first eight bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"oar-wal\0";

/// The on-disk format version this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Bytes of a segment header: magic, version, reserved, first index,
/// previous term, CRC, reserved.
pub const SEGMENT_HEADER_BYTES: usize = 8 + 4 + 4 + 8 + 8 + 4 + 4;

/// Bytes of a record header: length, CRC, kind.
pub const RECORD_HEADER_BYTES: usize = 4 + 4 + 1;

/// The largest entry payload the log stores. Larger entries are refused by
/// [`Wal::append`](super::Wal::append) and rejected by the decoder before
/// anything is allocated.
pub const MAX_ENTRY_DATA_BYTES: usize = 64 << 20;

/// The largest first index a segment header may name. Far beyond any real
/// log, and far enough below `u64::MAX` that index arithmetic on a file's
/// worth of entries after it cannot overflow.
pub(crate) const MAX_FIRST_INDEX: LogIndex = LogIndex(1 << 62);

/// Entry record payload before the data: index, term, entry kind.
const ENTRY_FIXED_BYTES: usize = 8 + 8 + 1;
/// Hard state record payload: term, vote, commit.
const HARD_STATE_PAYLOAD_BYTES: usize = 8 + 8 + 8;
/// Truncate record payload: the last index kept.
const TRUNCATE_PAYLOAD_BYTES: usize = 8;

/// The largest payload any record may declare.
pub(crate) const MAX_RECORD_PAYLOAD_BYTES: usize = ENTRY_FIXED_BYTES + MAX_ENTRY_DATA_BYTES;

/// Bytes of a whole hard state record; every segment starts with one.
pub(crate) const HARD_STATE_RECORD_BYTES: usize = RECORD_HEADER_BYTES + HARD_STATE_PAYLOAD_BYTES;

// The header tables in the module docs are the contract; these pin them.
const _: () = assert!(SEGMENT_HEADER_BYTES == 40);
const _: () = assert!(RECORD_HEADER_BYTES == 9);
const _: () = assert!(HARD_STATE_RECORD_BYTES == 33);
/// Bytes of a truncate record.
pub(crate) const TRUNCATE_RECORD_BYTES: usize = RECORD_HEADER_BYTES + TRUNCATE_PAYLOAD_BYTES;
// Every record length fits its u32 field.
const _: () = assert!(MAX_RECORD_PAYLOAD_BYTES <= u32::MAX as usize);

const KIND_ENTRY: u8 = 1;
const KIND_HARD_STATE: u8 = 2;
const KIND_TRUNCATE: u8 = 3;

/// What a segment header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    /// The index the segment's first entry record has.
    pub(crate) first_index: LogIndex,
    /// The term of the entry at `first_index - 1` (0 when that is index 0),
    /// so that the log still knows it once older segments are compacted.
    pub(crate) prev_term: Term,
}

/// Appends the encoded header to `out`.
pub(crate) fn encode_header(header: SegmentHeader, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&SEGMENT_MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&header.first_index.0.to_le_bytes());
    out.extend_from_slice(&header.prev_term.0.to_le_bytes());
    let crc = crc32c::crc32c(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    debug_assert_eq!(out.len() - start, SEGMENT_HEADER_BYTES);
}

/// Decodes a segment header from the start of `bytes`.
pub(crate) fn decode_header(bytes: &[u8]) -> Result<SegmentHeader, String> {
    let Some(header) = bytes.get(..SEGMENT_HEADER_BYTES) else {
        return Err(format!(
            "file is {} bytes, shorter than a segment header ({SEGMENT_HEADER_BYTES} bytes)",
            bytes.len()
        ));
    };
    let mut r = Cursor(header);
    let magic = r.take(8);
    if magic != SEGMENT_MAGIC {
        return Err(format!("bad magic {magic:02x?}: not an oar log segment"));
    }
    let version = r.u32();
    let reserved = r.u32();
    let first_index = LogIndex(r.u64());
    let prev_term = Term(r.u64());
    let stored_crc = r.u32();
    let reserved_tail = r.u32();
    let crc = crc32c::crc32c(&header[..32]);
    if stored_crc != crc {
        return Err(format!("header checksum {stored_crc:#010x} does not match its bytes ({crc:#010x})"));
    }
    if version != FORMAT_VERSION {
        return Err(format!("format version {version}; this build reads version {FORMAT_VERSION}"));
    }
    if reserved != 0 || reserved_tail != 0 {
        return Err("reserved header bytes are not zero".into());
    }
    if first_index == LogIndex(0) {
        return Err("header names first index 0; indexes start at 1".into());
    }
    if first_index > MAX_FIRST_INDEX {
        return Err(format!("header names first index {first_index}, beyond any log"));
    }
    if first_index == LogIndex(1) && prev_term != Term(0) {
        return Err(format!("first index 1 with previous term {}; index 0 has term 0", prev_term.0));
    }
    Ok(SegmentHeader { first_index, prev_term })
}

/// A record as it lies in a buffer; entry data still borrows the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RecordView<'a> {
    /// One log entry.
    Entry {
        /// Its index.
        index: LogIndex,
        /// Its term.
        term: Term,
        /// What it carries.
        kind: EntryKind,
        /// Its payload.
        data: &'a [u8],
    },
    /// A new hard state.
    HardState(HardState),
    /// Every entry after `last_kept` is deleted.
    Truncate {
        /// The last entry that stays.
        last_kept: LogIndex,
    },
}

impl RecordView<'_> {
    /// The entry this record holds, copying its data out of the buffer.
    pub(crate) fn to_entry(self) -> Option<Entry> {
        match self {
            RecordView::Entry { index, term, kind, data } => {
                Some(Entry { index, term, kind, data: crate::types::Bytes::copy_from_slice(data) })
            }
            _ => None,
        }
    }
}

/// Why the bytes at some offset are not a whole, valid record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RecordError {
    /// All nine header bytes are zero: never-written, preallocated space.
    Zeroed,
    /// Fewer bytes remain than the header or the declared length needs.
    Truncated {
        /// Bytes the record needs.
        needed: u64,
        /// Bytes that remain.
        remaining: u64,
    },
    /// The kind byte names no record.
    UnknownKind(u8),
    /// The declared payload length does not fit the kind.
    BadLength {
        /// The kind byte.
        kind: u8,
        /// The declared payload length.
        len: u64,
    },
    /// The checksum does not match the bytes.
    Checksum {
        /// What the record says.
        stored: u32,
        /// What the bytes give.
        computed: u32,
    },
    /// A field holds a value no writer produces.
    BadField(&'static str),
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Zeroed => write!(f, "zero-filled record header"),
            RecordError::Truncated { needed, remaining } => {
                write!(f, "record needs {needed} bytes but only {remaining} remain")
            }
            RecordError::UnknownKind(kind) => write!(f, "unknown record kind {kind}"),
            RecordError::BadLength { kind, len } => {
                write!(f, "record kind {kind} cannot be {len} bytes long")
            }
            RecordError::Checksum { stored, computed } => {
                write!(f, "checksum {stored:#010x} does not match the record's bytes ({computed:#010x})")
            }
            RecordError::BadField(field) => write!(f, "invalid {field}"),
        }
    }
}

/// Decodes the record at the start of `bytes`, returning it and its length
/// in bytes.
pub(crate) fn decode_record(bytes: &[u8]) -> Result<(RecordView<'_>, usize), RecordError> {
    let Some(header) = bytes.get(..RECORD_HEADER_BYTES) else {
        if bytes.iter().all(|&b| b == 0) {
            return Err(RecordError::Zeroed);
        }
        return Err(RecordError::Truncated {
            needed: RECORD_HEADER_BYTES as u64,
            remaining: bytes.len() as u64,
        });
    };
    if header.iter().all(|&b| b == 0) {
        return Err(RecordError::Zeroed);
    }
    let mut r = Cursor(header);
    let len_field = r.u32();
    let stored = r.u32();
    let kind = r.u8();
    let len = len_field as usize;
    let len_ok = match kind {
        KIND_ENTRY => (ENTRY_FIXED_BYTES..=MAX_RECORD_PAYLOAD_BYTES).contains(&len),
        KIND_HARD_STATE => len == HARD_STATE_PAYLOAD_BYTES,
        KIND_TRUNCATE => len == TRUNCATE_PAYLOAD_BYTES,
        other => return Err(RecordError::UnknownKind(other)),
    };
    if !len_ok {
        return Err(RecordError::BadLength { kind, len: u64::from(len_field) });
    }
    // Cannot overflow: `len <= MAX_RECORD_PAYLOAD_BYTES`, far below usize::MAX.
    let total = RECORD_HEADER_BYTES + len;
    let Some(record) = bytes.get(..total) else {
        return Err(RecordError::Truncated { needed: total as u64, remaining: bytes.len() as u64 });
    };
    let computed = crc32c::crc32c_append(crc32c::crc32c(&record[..4]), &record[8..]);
    if computed != stored {
        return Err(RecordError::Checksum { stored, computed });
    }
    let payload = &record[RECORD_HEADER_BYTES..];
    let mut r = Cursor(payload);
    let view = match kind {
        KIND_ENTRY => {
            let index = LogIndex(r.u64());
            let term = Term(r.u64());
            let kind = match r.u8() {
                0 => EntryKind::Blank,
                1 => EntryKind::Command,
                2 => EntryKind::Membership,
                _ => return Err(RecordError::BadField("entry kind")),
            };
            if index == LogIndex(0) {
                return Err(RecordError::BadField("entry index 0"));
            }
            RecordView::Entry { index, term, kind, data: r.0 }
        }
        KIND_HARD_STATE => {
            let term = Term(r.u64());
            let vote = match r.u64() {
                0 => None,
                id => Some(NodeId(id)),
            };
            let commit = LogIndex(r.u64());
            RecordView::HardState(HardState { term, vote, commit })
        }
        _ => RecordView::Truncate { last_kept: LogIndex(r.u64()) },
    };
    Ok((view, total))
}

/// The offset of the first whole, valid record that starts at or after
/// `from`, if any. Recovery uses it to tell a torn tail (nothing valid
/// follows the damage) from damage inside the log (something does).
pub(crate) fn find_record_from(bytes: &[u8], from: usize) -> Option<usize> {
    let mut offset = from;
    while let Some(rest) = bytes.get(offset..) {
        if rest.len() < RECORD_HEADER_BYTES {
            return None;
        }
        if decode_record(rest).is_ok() {
            return Some(offset);
        }
        offset += 1;
    }
    None
}

/// Appends one entry record to `out`.
pub(crate) fn encode_entry(entry: &Entry, out: &mut Vec<u8>) {
    let start = begin_record(KIND_ENTRY, out);
    out.extend_from_slice(&entry.index.0.to_le_bytes());
    out.extend_from_slice(&entry.term.0.to_le_bytes());
    out.push(entry.kind as u8);
    out.extend_from_slice(&entry.data);
    finish_record(start, out);
}

/// Appends one hard state record to `out`.
pub(crate) fn encode_hard_state(hard_state: HardState, out: &mut Vec<u8>) {
    let start = begin_record(KIND_HARD_STATE, out);
    out.extend_from_slice(&hard_state.term.0.to_le_bytes());
    out.extend_from_slice(&hard_state.vote.map_or(0, |id| id.0).to_le_bytes());
    out.extend_from_slice(&hard_state.commit.0.to_le_bytes());
    finish_record(start, out);
}

/// Appends one truncate record to `out`.
pub(crate) fn encode_truncate(last_kept: LogIndex, out: &mut Vec<u8>) {
    let start = begin_record(KIND_TRUNCATE, out);
    out.extend_from_slice(&last_kept.0.to_le_bytes());
    finish_record(start, out);
}

/// The encoded size of an entry's record.
pub(crate) fn entry_record_bytes(entry: &Entry) -> usize {
    RECORD_HEADER_BYTES + ENTRY_FIXED_BYTES + entry.data.len()
}

fn begin_record(kind: u8, out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    out.push(kind);
    start
}

fn finish_record(start: usize, out: &mut [u8]) {
    let payload_len = out.len() - start - RECORD_HEADER_BYTES;
    assert!(payload_len <= MAX_RECORD_PAYLOAD_BYTES, "record payload of {payload_len} bytes is too large");
    let record = &mut out[start..];
    record[..4].copy_from_slice(&(payload_len as u32).to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&record[..4]), &record[8..]);
    record[4..8].copy_from_slice(&crc.to_le_bytes());
}

/// A cursor over bytes whose length the caller has already checked; every
/// take is in bounds by that check, and yields zeros past the end rather
/// than panicking if the check were ever wrong.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.0.len());
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        taken
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0; N];
        let taken = self.take(N);
        out[..taken.len()].copy_from_slice(taken);
        out
    }

    fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }
}
