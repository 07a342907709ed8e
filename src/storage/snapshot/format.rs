//! The bytes of a snapshot file: its names, its header and trailer, and the
//! streaming check that verifies a whole file before anything trusts it.
//! The layout table lives in the docs of the parent module.
//!
//! The check is total: any bytes give a [`SnapshotFile`] or a
//! [`CheckError`], never a panic; it reads the file in pieces of bounded
//! size, and allocates nothing larger than
//! [`MAX_SNAPSHOT_MEMBERSHIP_BYTES`] whatever the lengths on disk say.

use std::path::Path;

use byteorder::{LittleEndian, ReadBytesExt, WriteBytesExt};

use crate::membership::{Membership, SnapshotMeta};
use crate::storage::error::StorageError;
use crate::storage::format::MAX_FIRST_INDEX;
use crate::storage::fs::FsFile;
use crate::types::{LogIndex, Term};

/// The first eight bytes of every snapshot file.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"oar-snap";

/// The snapshot file format version this code writes and reads.
pub const SNAPSHOT_FORMAT_VERSION: u32 = 1;

/// Bytes of a snapshot file's fixed header, before the membership: magic,
/// version, reserved, index, term, membership length.
pub const SNAPSHOT_HEADER_BYTES: usize = 8 + 4 + 4 + 8 + 8 + 4;

/// Bytes of a snapshot file's trailer: the data length and the CRC.
pub const SNAPSHOT_TRAILER_BYTES: usize = 8 + 4;

/// The longest membership encoding a snapshot file may hold; the decoder
/// refuses a longer length before allocating. A configuration of
/// [`MEMBERS_MAX`](crate::membership::MEMBERS_MAX) members with the longest
/// addresses encodes to under 300 KiB.
pub const MAX_SNAPSHOT_MEMBERSHIP_BYTES: usize = 1 << 20;

/// The smallest snapshot file: no membership bytes and no data. (A real
/// membership encodes to at least 17 bytes; the check says which is short.)
pub(crate) const MIN_SNAPSHOT_FILE_BYTES: u64 = (SNAPSHOT_HEADER_BYTES + SNAPSHOT_TRAILER_BYTES) as u64;

/// The extension of a snapshot file.
pub(crate) const SNAPSHOT_EXTENSION: &str = ".snap";
/// Appended to a snapshot's name while it is being taken.
pub(crate) const TAKE_EXTENSION: &str = ".tmp";
/// Appended to a snapshot's name while it is being received.
pub(crate) const RECEIVE_EXTENSION: &str = ".recv";

/// The piece size files are read in when checked.
const CHECK_CHUNK_BYTES: usize = 64 << 10;

// The layout table in the module docs is the contract; these pin it.
const _: () = assert!(SNAPSHOT_HEADER_BYTES == 36);
const _: () = assert!(SNAPSHOT_TRAILER_BYTES == 12);
// The membership length fits its u32 field.
const _: () = assert!(MAX_SNAPSHOT_MEMBERSHIP_BYTES <= u32::MAX as usize);

/// The file name of the snapshot at `(index, term)`.
pub(crate) fn snapshot_name(index: LogIndex, term: Term) -> String {
    format!("snapshot-{:020}-{:020}{SNAPSHOT_EXTENSION}", index.0, term.0)
}

/// The index and term a snapshot file name stands for, if it is one.
pub(crate) fn parse_snapshot_name(name: &str) -> Option<(LogIndex, Term)> {
    let rest = name.strip_prefix("snapshot-")?.strip_suffix(SNAPSHOT_EXTENSION)?;
    let (index, term) = rest.split_once('-')?;
    let number = |digits: &str| {
        if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse::<u64>().ok()
    };
    Some((LogIndex(number(index)?), Term(number(term)?)))
}

/// Whether a snapshot may cover `index`: from 1 (index 0 is the empty log)
/// to below the highest index a log segment may start at, so that the log
/// can always be reset to continue after it.
pub(crate) fn index_in_range(index: LogIndex) -> bool {
    index > LogIndex(0) && index < MAX_FIRST_INDEX
}

/// Appends the header and the membership of the snapshot `meta` to `out`.
/// Fails, saying why, if the metadata cannot be stored so that it reads
/// back the same.
pub(crate) fn encode_header(meta: &SnapshotMeta, out: &mut Vec<u8>) -> Result<(), String> {
    if !index_in_range(meta.index) {
        return Err(format!("index {} is outside [1, {MAX_FIRST_INDEX})", meta.index));
    }
    let mut membership = Vec::new();
    meta.membership.encode(&mut membership);
    if membership.len() > MAX_SNAPSHOT_MEMBERSHIP_BYTES {
        return Err(format!(
            "the membership encodes to {} bytes, above the limit of {MAX_SNAPSHOT_MEMBERSHIP_BYTES}",
            membership.len()
        ));
    }
    // A membership that does not read back (a node both voter and learner,
    // an address too long) would make the file fail its check at the next
    // start: refuse it now, while the caller can still act.
    match Membership::decode(&membership) {
        Ok(decoded) if decoded == meta.membership => {}
        Ok(_) => return Err("the membership does not survive encoding (an address is too long)".into()),
        Err(e) => return Err(format!("the membership cannot be stored: {e}")),
    }
    let vec_cannot_fail = "writing to a Vec cannot fail";
    out.extend_from_slice(&SNAPSHOT_MAGIC);
    out.write_u32::<LittleEndian>(SNAPSHOT_FORMAT_VERSION).expect(vec_cannot_fail);
    out.write_u32::<LittleEndian>(0).expect(vec_cannot_fail);
    out.write_u64::<LittleEndian>(meta.index.0).expect(vec_cannot_fail);
    out.write_u64::<LittleEndian>(meta.term.0).expect(vec_cannot_fail);
    out.write_u32::<LittleEndian>(membership.len() as u32).expect(vec_cannot_fail);
    out.extend_from_slice(&membership);
    Ok(())
}

/// What the check of a whole snapshot file found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SnapshotFile {
    /// What the snapshot covers.
    pub(crate) meta: SnapshotMeta,
    /// Where the application's data starts.
    pub(crate) data_start: u64,
    /// How long the data is.
    pub(crate) data_len: u64,
    /// The whole file's length.
    pub(crate) file_len: u64,
    /// The CRC32C of the bytes before the data, from which a reader
    /// continues the checksum over the data.
    pub(crate) prefix_crc: u32,
}

impl SnapshotFile {
    /// Where the data ends and the trailer starts.
    pub(crate) fn data_end(&self) -> u64 {
        self.data_start + self.data_len
    }
}

/// Why a snapshot file did not check out.
#[derive(Debug)]
pub(crate) enum CheckError {
    /// The bytes are wrong at `offset`.
    Bad {
        /// Where.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// Reading the file failed.
    Io(StorageError),
}

/// Reads and verifies the whole snapshot file `file` (at `path`, for error
/// messages): header, lengths, trailer, the checksum over every byte, and
/// the metadata. Memory use is bounded whatever the file holds.
pub(crate) fn check_file<F: FsFile>(file: &F, path: &Path) -> Result<SnapshotFile, CheckError> {
    let io = |op: &'static str| move |e| CheckError::Io(StorageError::io(op, path, e));
    let bad = |offset: u64, reason: String| CheckError::Bad { offset, reason };
    let file_len = file.size_bytes().map_err(io("stat"))?;

    let mut header = [0; SNAPSHOT_HEADER_BYTES];
    let header_len = file_len.min(SNAPSHOT_HEADER_BYTES as u64) as usize;
    file.read_at(0, &mut header[..header_len]).map_err(io("read"))?;
    if file_len < MIN_SNAPSHOT_FILE_BYTES {
        let what =
            if header.starts_with(&SNAPSHOT_MAGIC) { "a truncated snapshot" } else { "not a snapshot" };
        return Err(bad(
            file_len,
            format!(
                "file is {file_len} bytes, shorter than any snapshot ({MIN_SNAPSHOT_FILE_BYTES}): {what}"
            ),
        ));
    }
    let mut r = &header[..];
    let short = |_| bad(0, "header shorter than its fixed size".into());
    let mut magic = [0; 8];
    std::io::Read::read_exact(&mut r, &mut magic).map_err(short)?;
    if magic != SNAPSHOT_MAGIC {
        return Err(bad(0, format!("bad magic {magic:02x?}: not an oar snapshot")));
    }
    let version = r.read_u32::<LittleEndian>().map_err(short)?;
    let reserved = r.read_u32::<LittleEndian>().map_err(short)?;
    let index = LogIndex(r.read_u64::<LittleEndian>().map_err(short)?);
    let term = Term(r.read_u64::<LittleEndian>().map_err(short)?);
    let membership_len = r.read_u32::<LittleEndian>().map_err(short)?;
    if version != SNAPSHOT_FORMAT_VERSION {
        return Err(bad(8, format!("format version {version}; this build reads {SNAPSHOT_FORMAT_VERSION}")));
    }
    if reserved != 0 {
        return Err(bad(12, "reserved header bytes are not zero".into()));
    }
    if membership_len as usize > MAX_SNAPSHOT_MEMBERSHIP_BYTES {
        return Err(bad(
            32,
            format!(
                "membership length {membership_len} is above the limit of {MAX_SNAPSHOT_MEMBERSHIP_BYTES}"
            ),
        ));
    }
    // Cannot overflow: both terms are small constants or bounded above.
    let data_start = (SNAPSHOT_HEADER_BYTES + membership_len as usize) as u64;
    let Some(data_len) = file_len.checked_sub(data_start + SNAPSHOT_TRAILER_BYTES as u64) else {
        return Err(bad(
            32,
            format!("membership of {membership_len} bytes runs past the end of a {file_len}-byte file"),
        ));
    };
    let trailer_start = data_start + data_len;
    let mut trailer = [0; SNAPSHOT_TRAILER_BYTES];
    file.read_at(trailer_start, &mut trailer).map_err(io("read"))?;
    let mut r = &trailer[..];
    let short = |_| bad(trailer_start, "trailer shorter than its fixed size".into());
    let stored_len = r.read_u64::<LittleEndian>().map_err(short)?;
    let stored_crc = r.read_u32::<LittleEndian>().map_err(short)?;
    if stored_len != data_len {
        return Err(bad(
            trailer_start,
            format!(
                "trailer says {stored_len} data bytes but the file holds {data_len}: truncated or damaged"
            ),
        ));
    }

    // Bounded by MAX_SNAPSHOT_MEMBERSHIP_BYTES, checked above.
    let mut prefix = vec![0; data_start as usize];
    file.read_at(0, &mut prefix).map_err(io("read"))?;
    let prefix_crc = crc32c::crc32c(&prefix);
    let mut crc = prefix_crc;
    let mut chunk = vec![0; (data_len + 8).min(CHECK_CHUNK_BYTES as u64) as usize];
    let crc_end = trailer_start + 8;
    let mut offset = data_start;
    while offset < crc_end {
        let n = chunk.len().min((crc_end - offset) as usize);
        file.read_at(offset, &mut chunk[..n]).map_err(io("read"))?;
        crc = crc32c::crc32c_append(crc, &chunk[..n]);
        offset += n as u64;
    }
    if crc != stored_crc {
        return Err(bad(
            crc_end,
            format!("checksum {stored_crc:#010x} does not match the file's bytes ({crc:#010x})"),
        ));
    }

    let membership = prefix.get(SNAPSHOT_HEADER_BYTES..).unwrap_or_default();
    let membership =
        Membership::decode(membership).map_err(|e| bad(SNAPSHOT_HEADER_BYTES as u64, e.to_string()))?;
    if !index_in_range(index) {
        return Err(bad(16, format!("index {index} is outside [1, {MAX_FIRST_INDEX})")));
    }
    Ok(SnapshotFile {
        meta: SnapshotMeta { index, term, membership },
        data_start,
        data_len,
        file_len,
        prefix_crc,
    })
}
