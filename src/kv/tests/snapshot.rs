//! Tests of store snapshots: the layout is pinned, any store reached through
//! `Store::apply` round-trips, equal stores give equal bytes, and reading is
//! total: every cut, flipped byte, false length or trailing byte is refused,
//! and a length the input does not back up is not allocated.

use std::io::{self, Read, Write};

use bytes::Bytes;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;

use crate::kv::snapshot::{
    SNAPSHOT_END, SNAPSHOT_HEADER_BYTES, SNAPSHOT_MAGIC, SNAPSHOT_READ_CHUNK_BYTES, SNAPSHOT_TRAILER_BYTES,
    SNAPSHOT_VERSION, SNAPSHOT_WRITE_CHUNK_BYTES,
};
use crate::kv::tests::entry::{arb_bytes, arb_key, arb_write_op};
use crate::kv::{SetCondition, SnapshotError, SnapshotFormatError, Store, WriteOp, SNAPSHOT_ITEM_BYTES_MAX};

fn snapshot_of(store: &Store) -> Vec<u8> {
    let mut out = Vec::new();
    store.write_snapshot(&mut out).expect("writing to a Vec cannot fail");
    out
}

fn read(mut bytes: &[u8]) -> Result<Store, SnapshotError> {
    Store::read_snapshot(&mut bytes)
}

/// The format error reading `bytes` gives; panics if it reads or fails on IO.
fn format_error(bytes: &[u8]) -> SnapshotFormatError {
    match read(bytes) {
        Err(SnapshotError::Format(e)) => e,
        Err(SnapshotError::Io(e)) => panic!("an IO error from a slice: {e}"),
        Ok(store) => panic!("read a store of {} keys from bad bytes", store.len()),
    }
}

fn set(key: &'static [u8], value: &'static [u8]) -> WriteOp {
    WriteOp::Set {
        key: Bytes::from_static(key),
        value: Bytes::from_static(value),
        condition: SetCondition::Always,
        get: false,
    }
}

fn store_of(pairs: &[(&'static [u8], &'static [u8])]) -> Store {
    let mut store = Store::new();
    for &(key, value) in pairs {
        store.apply(set(key, value));
    }
    store
}

/// A header, then `body` as the entries, unchecked: for inputs that must
/// fail before the CRC is read.
fn header_then(entry_count: u64, body: &[u8]) -> Vec<u8> {
    let mut bytes = SNAPSHOT_MAGIC.to_vec();
    bytes.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&entry_count.to_le_bytes());
    bytes.extend_from_slice(body);
    bytes
}

/// `bytes` with its last four bytes replaced by the CRC of the rest, so
/// that a deliberately wrong field is what the reader trips on.
fn with_crc_fixed(mut bytes: Vec<u8>) -> Vec<u8> {
    let body = bytes.len() - 4;
    let crc = crc32c::crc32c(&bytes[..body]);
    bytes[body..].copy_from_slice(&crc.to_le_bytes());
    bytes
}

#[test]
fn the_layout_is_as_documented() {
    let bytes = snapshot_of(&store_of(&[(b"b", b""), (b"a", b"xy")]));
    let mut want = Vec::new();
    want.extend_from_slice(b"OARKVSNP");
    want.extend_from_slice(&[1, 0, 0, 0]);
    want.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 0]);
    want.extend_from_slice(&[1, 0, 0, 0, b'a', 2, 0, 0, 0, b'x', b'y']);
    want.extend_from_slice(&[1, 0, 0, 0, b'b', 0, 0, 0, 0]);
    want.extend_from_slice(b"OARKVEND");
    want.extend_from_slice(&crc32c::crc32c(&want).to_le_bytes());
    assert_eq!(bytes, want);
}

#[test]
fn an_empty_store_is_a_header_and_a_trailer() {
    let bytes = snapshot_of(&Store::new());
    assert_eq!(bytes.len(), SNAPSHOT_HEADER_BYTES + SNAPSHOT_TRAILER_BYTES);
    assert_eq!(bytes[SNAPSHOT_HEADER_BYTES..][..8], SNAPSHOT_END);
    assert_eq!(read(&bytes).expect("an empty snapshot reads"), Store::new());
}

proptest! {
    /// Any store the log can build comes back equal, and writes back to
    /// the same bytes.
    #[test]
    fn stores_built_by_apply_round_trip(ops in vec(arb_write_op(), 0..40)) {
        let mut store = Store::new();
        for op in ops {
            store.apply(op);
        }
        let bytes = snapshot_of(&store);
        let back = read(&bytes).expect("a snapshot reads");
        prop_assert_eq!(&back, &store);
        prop_assert_eq!(snapshot_of(&back), bytes);
    }

    /// Equal contents reached by different histories (other orders, keys
    /// written and deleted, counters moved and removed) give identical
    /// bytes.
    #[test]
    fn equal_stores_give_identical_bytes(
        pairs in btree_map(arb_key(), arb_bytes(), 0..12),
        junk in vec((arb_key(), arb_bytes()), 0..6),
    ) {
        let mut forward = Store::new();
        for (key, value) in &pairs {
            forward.apply(WriteOp::MSet { pairs: vec![(key.clone(), value.clone())] });
        }
        let mut backward = Store::new();
        let junk: Vec<_> = junk.into_iter().filter(|(key, _)| !pairs.contains_key(key)).collect();
        for (key, value) in &junk {
            backward.apply(WriteOp::Set {
                key: key.clone(),
                value: value.clone(),
                condition: SetCondition::Always,
                get: false,
            });
            backward.apply(WriteOp::IncrBy { key: key.clone(), delta: 1 });
        }
        for (key, value) in pairs.iter().rev() {
            backward.apply(WriteOp::Set {
                key: key.clone(),
                value: Bytes::from_static(b"overwritten"),
                condition: SetCondition::Always,
                get: false,
            });
            backward.apply(WriteOp::Set {
                key: key.clone(),
                value: value.clone(),
                condition: SetCondition::IfPresent,
                get: true,
            });
        }
        if !junk.is_empty() {
            backward.apply(WriteOp::Del { keys: junk.into_iter().map(|(key, _)| key).collect() });
        }
        prop_assert_eq!(&forward, &backward);
        prop_assert_eq!(snapshot_of(&forward), snapshot_of(&backward));
    }

    /// Every proper prefix of a snapshot is refused as truncated.
    #[test]
    fn every_prefix_is_refused(ops in vec(arb_write_op(), 0..12)) {
        let mut store = Store::new();
        for op in ops {
            store.apply(op);
        }
        let bytes = snapshot_of(&store);
        for len in 0..bytes.len() {
            let error = format_error(&bytes[..len]);
            let truncated = matches!(error, SnapshotFormatError::Truncated { .. });
            prop_assert!(truncated, "prefix {}: {:?}", len, error);
        }
    }

    /// A damaged snapshot (a few bytes overwritten, the CRC then made to
    /// match or not) is a store or an error, never a panic; a store it
    /// gives writes back to exactly those bytes.
    #[test]
    fn reading_is_total_and_canonical(
        ops in vec(arb_write_op(), 0..8),
        edits in vec((any::<u16>(), any::<u8>()), 1..4),
        fix_crc in any::<bool>(),
    ) {
        let mut store = Store::new();
        for op in ops {
            store.apply(op);
        }
        let mut bytes = snapshot_of(&store);
        let len = bytes.len();
        for (at, byte) in edits {
            bytes[usize::from(at) % len] = byte;
        }
        if fix_crc {
            bytes = with_crc_fixed(bytes);
        }
        if let Ok(store) = read(&bytes) {
            prop_assert_eq!(snapshot_of(&store), bytes);
        }
    }
}

/// The layout written the plainest way, one field after another, to check
/// the chunked writer against.
fn plainly_encoded(store: &Store) -> Vec<u8> {
    let mut bytes = header_then(store.len() as u64, &[]);
    for (key, value) in store.iter() {
        for item in [key, value] {
            bytes.extend_from_slice(&(item.len() as u32).to_le_bytes());
            bytes.extend_from_slice(item);
        }
    }
    bytes.extend_from_slice(&SNAPSHOT_END);
    bytes.extend_from_slice(&crc32c::crc32c(&bytes).to_le_bytes());
    bytes
}

/// A value length near a multiple of the writer's chunk, or small.
fn arb_value_len() -> impl Strategy<Value = usize> {
    let chunk = SNAPSHOT_WRITE_CHUNK_BYTES;
    prop_oneof![0..40usize, chunk - 12..chunk + 4, 2 * chunk - 4..2 * chunk + 4]
}

proptest! {
    /// Pairs that fill the writer's chunk exactly, cross it, or are longer
    /// than it are written as the layout says.
    #[test]
    fn the_chunked_writer_writes_the_layout(
        value_lens in vec(arb_value_len(), 0..8),
        fill in any::<u8>(),
    ) {
        let mut store = Store::new();
        for (n, len) in value_lens.into_iter().enumerate() {
            store.apply(WriteOp::MSet { pairs: vec![(Bytes::from(format!("k{n}")), Bytes::from(vec![fill; len]))] });
        }
        let bytes = snapshot_of(&store);
        prop_assert!(bytes == plainly_encoded(&store));
        prop_assert_eq!(read(&bytes).expect("reads"), store);
    }
}

/// A writer that takes at most `room` bytes and then fails, a few bytes per
/// call.
struct Full {
    room: usize,
    largest_write: usize,
}

impl Write for Full {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.largest_write = self.largest_write.max(buf.len());
        if self.room == 0 {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"));
        }
        let len = buf.len().min(self.room).min(7);
        self.room -= len;
        Ok(len)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn writer_errors_are_returned_and_writes_come_in_chunks() {
    let pairs: Vec<_> =
        (0..2000).map(|n| (Bytes::from(format!("key{n:05}")), Bytes::from_static(b"v"))).collect();
    let mut store = Store::new();
    store.apply(WriteOp::MSet { pairs });
    let len = snapshot_of(&store).len();
    for room in [0, 1, SNAPSHOT_WRITE_CHUNK_BYTES, len - 4, len - 1] {
        let mut out = Full { room, largest_write: 0 };
        let error = store.write_snapshot(&mut out).expect_err("no room");
        assert_eq!(error.kind(), io::ErrorKind::StorageFull, "room {room}");
    }
    let mut out = Full { room: len, largest_write: 0 };
    store.write_snapshot(&mut out).expect("just enough room");
    assert_eq!(out.largest_write, SNAPSHOT_WRITE_CHUNK_BYTES);
}

#[test]
fn every_changed_byte_is_refused() {
    let bytes = snapshot_of(&store_of(&[(b"alpha", b"1"), (b"beta", b"two"), (b"gamma", b"")]));
    for at in 0..bytes.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut damaged = bytes.clone();
            damaged[at] ^= flip;
            assert!(read(&damaged).is_err(), "byte {at} xor {flip:#04x} was accepted");
        }
    }
}

#[test]
fn a_flipped_value_bit_is_caught_by_the_crc() {
    let bytes = snapshot_of(&store_of(&[(b"k", b"value")]));
    let mut damaged = bytes.clone();
    damaged[SNAPSHOT_HEADER_BYTES + 4 + 1 + 4] ^= 0x20;
    assert!(matches!(format_error(&damaged), SnapshotFormatError::ChecksumMismatch { .. }));
}

#[test]
fn trailing_bytes_are_refused() {
    let bytes = snapshot_of(&store_of(&[(b"k", b"v")]));
    for extra in [&[0u8][..], b"\n", &bytes] {
        let mut longer = bytes.clone();
        longer.extend_from_slice(extra);
        assert_eq!(format_error(&longer), SnapshotFormatError::TrailingBytes);
    }
}

#[test]
fn lengths_above_the_limit_are_refused_before_allocating() {
    // A declared 4 GiB value after a one-byte key.
    let mut body = vec![1, 0, 0, 0, b'k'];
    body.extend_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        format_error(&header_then(1, &body)),
        SnapshotFormatError::TooLong { field: "value_len", len: u32::MAX }
    );
    let over = SNAPSHOT_ITEM_BYTES_MAX + 1;
    assert_eq!(
        format_error(&header_then(1, &over.to_le_bytes())),
        SnapshotFormatError::TooLong { field: "key_len", len: over }
    );
}

/// A reader over a slice that records the largest buffer it was asked to
/// fill: the reader allocates the buffers it reads into, so this bounds
/// what it allocated for one key or value.
struct Recording<'a> {
    rest: &'a [u8],
    largest_read: usize,
}

impl Read for Recording<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.largest_read = self.largest_read.max(buf.len());
        self.rest.read(buf)
    }
}

#[test]
fn a_length_within_the_limit_is_read_in_chunks_not_allocated_at_once() {
    let mut body = vec![1, 0, 0, 0, b'k'];
    body.extend_from_slice(&SNAPSHOT_ITEM_BYTES_MAX.to_le_bytes());
    body.extend_from_slice(&[7; 100]);
    let bytes = header_then(1, &body);
    let mut input = Recording { rest: &bytes, largest_read: 0 };
    match Store::read_snapshot(&mut input) {
        Err(SnapshotError::Format(SnapshotFormatError::Truncated { field: "value" })) => {}
        other => panic!("{other:?}"),
    }
    assert!(input.largest_read <= SNAPSHOT_READ_CHUNK_BYTES, "read into {} bytes", input.largest_read);
}

#[test]
fn a_value_longer_than_a_chunk_round_trips() {
    let mut store = Store::new();
    let value = Bytes::from((0..3 * SNAPSHOT_READ_CHUNK_BYTES + 5).map(|i| i as u8).collect::<Vec<_>>());
    store.apply(WriteOp::Set {
        key: Bytes::from_static(b"big"),
        value,
        condition: SetCondition::Always,
        get: false,
    });
    assert_eq!(read(&snapshot_of(&store)).expect("reads"), store);
}

#[test]
fn a_value_no_snapshot_may_hold_is_not_written() {
    let mut store = Store::new();
    let too_long = vec![0u8; SNAPSHOT_ITEM_BYTES_MAX as usize + 1];
    store.apply(WriteOp::Set {
        key: Bytes::from_static(b"k"),
        value: Bytes::from(too_long),
        condition: SetCondition::Always,
        get: false,
    });
    let error = store.write_snapshot(&mut io::sink()).expect_err("refused");
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn a_wrong_count_is_refused() {
    let bytes = snapshot_of(&store_of(&[(b"a", b"1"), (b"b", b"2")]));
    let mut fewer = bytes.clone();
    fewer[12] = 1;
    assert_eq!(format_error(&fewer), SnapshotFormatError::BadEndMarker);
    // Too many: the end marker is read as the next pair, and its first four
    // bytes are a length far above the limit.
    let too_long = SnapshotFormatError::TooLong { field: "key_len", len: u32::from_le_bytes(*b"OARK") };
    let mut more = bytes.clone();
    more[12] = 3;
    assert_eq!(format_error(&more), too_long);
    let mut huge = bytes;
    huge[12..20].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(format_error(&huge), too_long);
}

#[test]
fn keys_out_of_order_or_repeated_are_refused() {
    for (first, second) in [(b"b", b"a"), (b"a", b"a")] {
        let mut body = Vec::new();
        for key in [first, second] {
            body.extend_from_slice(&[1, 0, 0, 0, key[0], 0, 0, 0, 0]);
        }
        body.extend_from_slice(&SNAPSHOT_END);
        body.extend_from_slice(&[0; 4]);
        let bytes = with_crc_fixed(header_then(2, &body));
        assert_eq!(format_error(&bytes), SnapshotFormatError::KeysOutOfOrder { entry: 1 });
    }
}

#[test]
fn another_magic_or_version_is_refused() {
    let bytes = snapshot_of(&Store::new());
    let mut magic = bytes.clone();
    magic[..8].copy_from_slice(b"OARKVSNQ");
    assert_eq!(format_error(&magic), SnapshotFormatError::BadMagic { found: *b"OARKVSNQ" });
    let mut version = bytes;
    version[8] = 2;
    assert_eq!(format_error(&version), SnapshotFormatError::UnknownVersion { version: 2 });
}

/// A reader that gives one byte per call and is interrupted before each.
struct Stuttering<'a> {
    rest: &'a [u8],
    interrupt: bool,
}

impl Read for Stuttering<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.interrupt = !self.interrupt;
        if self.interrupt {
            return Err(io::ErrorKind::Interrupted.into());
        }
        let len = buf.len().min(1);
        self.rest.read(&mut buf[..len])
    }
}

#[test]
fn short_and_interrupted_reads_give_the_same_store() {
    let store = store_of(&[(b"alpha", b"1"), (b"beta", b"two")]);
    let bytes = snapshot_of(&store);
    let back = Store::read_snapshot(&mut Stuttering { rest: &bytes, interrupt: false }).expect("reads");
    assert_eq!(back, store);
}

struct Failing;

impl Read for Failing {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::other("disk on fire"))
    }
}

#[test]
fn reader_errors_are_io_errors() {
    match Store::read_snapshot(&mut Failing) {
        Err(SnapshotError::Io(e)) => assert_eq!(e.to_string(), "disk on fire"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn errors_say_what_was_wrong() {
    let error = SnapshotError::Format(SnapshotFormatError::TooLong { field: "value_len", len: u32::MAX });
    let limit = SNAPSHOT_ITEM_BYTES_MAX;
    let want = format!("malformed key-value snapshot: `value_len` is 4294967295, above the limit of {limit}");
    assert_eq!(error.to_string(), want);
}
