//! The whole [`Store`] as a byte stream, for snapshots: written by
//! [`Store::write_snapshot`] to any [`Write`], read back by
//! [`Store::read_snapshot`] from any [`Read`].
//!
//! Both stream: writing walks the map in place and holds nothing beyond an
//! 8 KiB buffer ([`SNAPSHOT_WRITE_CHUNK_BYTES`], on the stack), and reading
//! holds nothing beyond the map it builds and the pair being read, so an
//! image larger than memory can be written to a file or a socket. Writing
//! passes its output on a chunk at a time; reading makes a few small reads
//! per pair, so hand it a [`BufReader`](std::io::BufReader).
//!
//! All integers are little-endian; lengths are `u32`.
//!
//! | size | field         | meaning                                              |
//! |------|---------------|------------------------------------------------------|
//! | 8    | `magic`       | [`SNAPSHOT_MAGIC`], `OARKVSNP`                        |
//! | 4    | `version`     | [`SNAPSHOT_VERSION`] (1)                              |
//! | 8    | `entry_count` | the number of pairs that follow                      |
//! | …    | entries       | per pair: `key_len`, `key`, `value_len`, `value`     |
//! | 8    | `end`         | [`SNAPSHOT_END`], `OARKVEND`                          |
//! | 4    | `crc`         | CRC-32C of every byte before it, `magic` to `end`    |
//!
//! Keys are in strictly increasing byte order, the map's own order, so two
//! stores with equal contents give identical bytes (replicas and tests
//! compare them), and decoding then encoding gives back the input.
//!
//! The count and the end marker frame the entries: a damaged count or
//! length is caught at the end marker if not before. The CRC catches what
//! framing cannot: a flipped bit inside a value, which would otherwise
//! restore a replica that silently differs from its peers.
//!
//! Decoding is total, since snapshots come from disk and from peers: any
//! bytes give a store or a [`SnapshotError`], never a panic. No key or value
//! may be longer than [`SNAPSHOT_ITEM_BYTES_MAX`]; a longer declared length
//! is refused as soon as it is read, and a length within it is read in
//! chunks of [`SNAPSHOT_READ_CHUNK_BYTES`], so a length the input does not
//! back up costs at most about twice the bytes the input holds, not the
//! length declared.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read, Write};

use byteorder::{ByteOrder, LittleEndian};
use bytes::Bytes;

use super::store::Store;
use crate::message::ENTRIES_BYTES_LIMIT;

/// The first 8 bytes of every key-value snapshot.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"OARKVSNP";
/// The layout version written after [`SNAPSHOT_MAGIC`].
pub const SNAPSHOT_VERSION: u32 = 1;
/// The marker after the last pair, before the CRC.
pub const SNAPSHOT_END: [u8; 8] = *b"OARKVEND";
/// Bytes before the first pair: magic, version, entry count.
pub const SNAPSHOT_HEADER_BYTES: usize = 8 + 4 + 8;
/// Bytes after the last pair: end marker, CRC.
pub const SNAPSHOT_TRAILER_BYTES: usize = 8 + 4;

/// The longest key or value a snapshot may hold. Every key and value in a
/// store arrived inside one committed log entry, and no entry is longer than
/// [`ENTRIES_BYTES_LIMIT`] (the wire limit no [`Config`](crate::Config) can
/// raise), so a longer length can only be damage.
pub const SNAPSHOT_ITEM_BYTES_MAX: u32 = {
    assert!(ENTRIES_BYTES_LIMIT <= u32::MAX as u64);
    ENTRIES_BYTES_LIMIT as u32
};

/// [`Store::write_snapshot`] hands its output to the writer in pieces of
/// this size (keys or values longer than it go straight through), from a
/// buffer of its own on the stack.
pub const SNAPSHOT_WRITE_CHUNK_BYTES: usize = 8 << 10;

/// Keys and values longer than this are read this many bytes at a time,
/// the buffer growing only as bytes arrive.
pub const SNAPSHOT_READ_CHUNK_BYTES: usize = 64 << 10;

/// Why a stream is not a key-value snapshot: it was cut short, damaged, or
/// written by an incompatible version. Nothing was restored; fetch the
/// snapshot again (from the leader, or from disk if it was only read badly).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotFormatError {
    /// The stream ends inside `field`.
    Truncated {
        /// The field cut short, as named in the layout table.
        field: &'static str,
    },
    /// The first 8 bytes are not [`SNAPSHOT_MAGIC`]: not a key-value
    /// snapshot at all.
    BadMagic {
        /// The bytes found.
        found: [u8; 8],
    },
    /// The `version` is not one this build reads.
    UnknownVersion {
        /// The version found.
        version: u32,
    },
    /// A `key_len` or `value_len` above [`SNAPSHOT_ITEM_BYTES_MAX`].
    TooLong {
        /// The length field.
        field: &'static str,
        /// The length declared.
        len: u32,
    },
    /// A key that is not greater than the key before it.
    KeysOutOfOrder {
        /// The pair's position, from 0.
        entry: u64,
    },
    /// The bytes after the last counted pair are not [`SNAPSHOT_END`]: the
    /// count or a length is wrong.
    BadEndMarker,
    /// The CRC does not match the bytes before it.
    ChecksumMismatch {
        /// The CRC in the stream.
        stored: u32,
        /// The CRC of the bytes read.
        computed: u32,
    },
    /// Bytes after the CRC.
    TrailingBytes,
}

impl fmt::Display for SnapshotFormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed key-value snapshot: ")?;
        match self {
            SnapshotFormatError::Truncated { field } => write!(f, "it ends inside `{field}`"),
            SnapshotFormatError::BadMagic { found } => {
                write!(
                    f,
                    "it starts with {:?}, not {:?}",
                    found.escape_ascii(),
                    SNAPSHOT_MAGIC.escape_ascii()
                )
            }
            SnapshotFormatError::UnknownVersion { version } => {
                write!(f, "layout version {version}, this build reads {SNAPSHOT_VERSION}")
            }
            SnapshotFormatError::TooLong { field, len } => {
                write!(f, "`{field}` is {len}, above the limit of {SNAPSHOT_ITEM_BYTES_MAX}")
            }
            SnapshotFormatError::KeysOutOfOrder { entry } => {
                write!(f, "the key of pair {entry} is not greater than the one before it")
            }
            SnapshotFormatError::BadEndMarker => write!(f, "no end marker after the last pair"),
            SnapshotFormatError::ChecksumMismatch { stored, computed } => {
                write!(f, "CRC {computed:#010x} of the contents, {stored:#010x} stored")
            }
            SnapshotFormatError::TrailingBytes => write!(f, "bytes after the CRC"),
        }
    }
}

impl std::error::Error for SnapshotFormatError {}

/// Why [`Store::read_snapshot`] gave no store.
#[derive(Debug)]
pub enum SnapshotError {
    /// The reader failed (other than by ending early, which is
    /// [`SnapshotFormatError::Truncated`]).
    Io(io::Error),
    /// The bytes are not a snapshot this build reads.
    Format(SnapshotFormatError),
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapshotError::Io(e) => write!(f, "reading a key-value snapshot: {e}"),
            SnapshotError::Format(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SnapshotError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SnapshotError::Io(e) => Some(e),
            SnapshotError::Format(e) => Some(e),
        }
    }
}

impl From<SnapshotFormatError> for SnapshotError {
    fn from(e: SnapshotFormatError) -> Self {
        SnapshotError::Format(e)
    }
}

impl Store {
    /// Writes the whole map to `out` in the layout above, in key order.
    /// Holds no copy of the map and allocates nothing: memory stays at an
    /// 8 KiB buffer however large the store, and `out` gets writes of that
    /// size (or of one longer key or value), so it need not be buffered.
    /// `out` is not flushed; flush (and for a file, sync) it before
    /// counting the snapshot as taken. On an error, what was written is not
    /// a snapshot: discard it.
    ///
    /// # Errors
    /// Those of `out`, and [`io::ErrorKind::InvalidInput`] for a key or
    /// value longer than [`SNAPSHOT_ITEM_BYTES_MAX`], which
    /// [`Store::read_snapshot`] would refuse (no committed entry can carry
    /// one, so only a store filled outside the log can hold it).
    pub fn write_snapshot<W: Write + ?Sized>(&self, out: &mut W) -> io::Result<()> {
        let mut out = CrcWriter::new(out);
        out.put(&SNAPSHOT_MAGIC)?;
        out.put(&SNAPSHOT_VERSION.to_le_bytes())?;
        out.put(&(self.len() as u64).to_le_bytes())?;
        for (key, value) in self.iter() {
            out.item(key, "key")?;
            out.item(value, "value")?;
        }
        out.put(&SNAPSHOT_END)?;
        out.finish()
    }

    /// Reads a store written by [`Store::write_snapshot`], which must make
    /// up the whole of `input`: it is read to its end, to check that
    /// nothing follows the snapshot.
    pub fn read_snapshot<R: Read + ?Sized>(input: &mut R) -> Result<Store, SnapshotError> {
        let mut input = CrcReader { inner: input, crc: 0 };
        let magic: [u8; 8] = input.array("magic")?;
        if magic != SNAPSHOT_MAGIC {
            return Err(SnapshotFormatError::BadMagic { found: magic }.into());
        }
        let version = LittleEndian::read_u32(&input.array::<4>("version")?);
        if version != SNAPSHOT_VERSION {
            return Err(SnapshotFormatError::UnknownVersion { version }.into());
        }
        // Nothing is allocated for the count: a false one ends in
        // `Truncated` or `BadEndMarker` once the pairs run out.
        let entry_count = LittleEndian::read_u64(&input.array::<8>("entry_count")?);
        let mut map = BTreeMap::new();
        for entry in 0..entry_count {
            let key = input.item("key_len", "key")?;
            // Against the map's last key rather than a kept copy: cloning a
            // fresh `Bytes` allocates, and the map's right edge is cheap.
            if map.last_key_value().is_some_and(|(last, _)| key <= last) {
                return Err(SnapshotFormatError::KeysOutOfOrder { entry }.into());
            }
            let value = input.item("value_len", "value")?;
            map.insert(key, value);
        }
        if input.array::<8>("end")? != SNAPSHOT_END {
            return Err(SnapshotFormatError::BadEndMarker.into());
        }
        let computed = input.crc;
        let stored = LittleEndian::read_u32(&input.array::<4>("crc")?);
        if stored != computed {
            return Err(SnapshotFormatError::ChecksumMismatch { stored, computed }.into());
        }
        if !at_end(input.inner)? {
            return Err(SnapshotFormatError::TrailingBytes.into());
        }
        Ok(Store::from_map(map))
    }
}

/// Whether `input` has no byte left.
fn at_end<R: Read + ?Sized>(input: &mut R) -> Result<bool, SnapshotError> {
    let mut byte = [0u8; 1];
    loop {
        match input.read(&mut byte) {
            Ok(n) => return Ok(n == 0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(SnapshotError::Io(e)),
        }
    }
}

/// A writer that gathers small writes into a fixed buffer and keeps the
/// CRC-32C of what it wrote. The buffer is for the CRC, not for the
/// system: computed per field (a length, a 13-byte key) the CRC cost a
/// fifth of writing a snapshot; over [`SNAPSHOT_WRITE_CHUNK_BYTES`] at a
/// time it costs next to nothing.
struct CrcWriter<'a, W: ?Sized> {
    inner: &'a mut W,
    crc: u32,
    chunk: [u8; SNAPSHOT_WRITE_CHUNK_BYTES],
    /// Bytes at the start of `chunk` not yet hashed and passed on; at most
    /// `SNAPSHOT_WRITE_CHUNK_BYTES`.
    chunk_len: usize,
}

impl<'a, W: Write + ?Sized> CrcWriter<'a, W> {
    fn new(inner: &'a mut W) -> Self {
        CrcWriter { inner, crc: 0, chunk: [0; SNAPSHOT_WRITE_CHUNK_BYTES], chunk_len: 0 }
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Some(free) = self.chunk.get_mut(self.chunk_len..self.chunk_len + bytes.len()) {
            free.copy_from_slice(bytes);
            self.chunk_len += bytes.len();
            return Ok(());
        }
        self.pass_on()?;
        if let Some(free) = self.chunk.get_mut(..bytes.len()) {
            free.copy_from_slice(bytes);
            self.chunk_len = bytes.len();
            return Ok(());
        }
        // Longer than the whole chunk: straight through, no copy.
        self.crc = crc32c::crc32c_append(self.crc, bytes);
        self.inner.write_all(bytes)
    }

    /// Hashes and writes what `chunk` holds.
    fn pass_on(&mut self) -> io::Result<()> {
        let pending = &self.chunk[..self.chunk_len];
        self.crc = crc32c::crc32c_append(self.crc, pending);
        self.chunk_len = 0;
        self.inner.write_all(pending)
    }

    /// `bytes`, length first, refusing what a reader would refuse.
    fn item(&mut self, bytes: &[u8], what: &str) -> io::Result<()> {
        let len = u32::try_from(bytes.len()).ok().filter(|&len| len <= SNAPSHOT_ITEM_BYTES_MAX);
        let Some(len) = len else {
            let message = format!(
                "a {what} of {} bytes is longer than a snapshot may hold ({SNAPSHOT_ITEM_BYTES_MAX})",
                bytes.len()
            );
            return Err(io::Error::new(io::ErrorKind::InvalidInput, message));
        };
        self.put(&len.to_le_bytes())?;
        self.put(bytes)
    }

    /// Writes what is buffered, then the CRC of everything.
    fn finish(mut self) -> io::Result<()> {
        self.pass_on()?;
        self.inner.write_all(&self.crc.to_le_bytes())
    }
}

/// A reader that keeps the CRC-32C of what it read, and whose every take
/// either gets all its bytes or fails naming the field.
struct CrcReader<'a, R: ?Sized> {
    inner: &'a mut R,
    crc: u32,
}

impl<R: Read + ?Sized> CrcReader<'_, R> {
    /// Fills `buf`, or fails with `Truncated { field }` if the input ends.
    fn fill(&mut self, buf: &mut [u8], field: &'static str) -> Result<(), SnapshotError> {
        self.inner.read_exact(buf).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => SnapshotFormatError::Truncated { field }.into(),
            _ => SnapshotError::Io(e),
        })?;
        self.crc = crc32c::crc32c_append(self.crc, buf);
        Ok(())
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], SnapshotError> {
        let mut buf = [0u8; N];
        self.fill(&mut buf, field)?;
        Ok(buf)
    }

    /// A length-prefixed key or value. The length is checked against
    /// [`SNAPSHOT_ITEM_BYTES_MAX`] before anything is allocated, and a long
    /// one is read a chunk at a time, so that a length the input cannot
    /// back up fails at its end having allocated little more than it held.
    fn item(&mut self, len_field: &'static str, field: &'static str) -> Result<Bytes, SnapshotError> {
        let len = LittleEndian::read_u32(&self.array::<4>(len_field)?);
        if len > SNAPSHOT_ITEM_BYTES_MAX {
            return Err(SnapshotFormatError::TooLong { field: len_field, len }.into());
        }
        let len = usize::try_from(len).map_err(|_| SnapshotFormatError::TooLong { field: len_field, len })?;
        let mut buf = vec![0u8; len.min(SNAPSHOT_READ_CHUNK_BYTES)];
        self.fill(&mut buf, field)?;
        while buf.len() < len {
            let start = buf.len();
            buf.resize(len.min(start + SNAPSHOT_READ_CHUNK_BYTES), 0);
            self.fill(&mut buf[start..], field)?;
        }
        Ok(Bytes::from(buf))
    }
}
