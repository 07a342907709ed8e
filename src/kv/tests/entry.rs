//! Tests of the payload encodings of writes (log entries) and reads (read
//! queries): the layouts are pinned, every op round-trips, decoding is total
//! and accepts only canonical bytes.

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;

use crate::kv::entry::{WRITE_ENTRY_HEADER_BYTES, WRITE_ENTRY_VERSION};
use crate::kv::{
    decode_read, decode_write, encode_read, encode_write, write_entry_len, EntryDecodeError, ReadOp,
    SetCondition, WriteOp,
};

pub(super) fn arb_bytes() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..12).prop_map(Bytes::from)
}

/// A key from a small set, so that sequences of ops collide, or any bytes.
pub(super) fn arb_key() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        Just(Bytes::from_static(b"a")),
        Just(Bytes::from_static(b"b")),
        Just(Bytes::from_static(b"")),
        arb_bytes()
    ]
}

/// Any write a client could send.
pub(super) fn arb_write_op() -> impl Strategy<Value = WriteOp> {
    let value = prop_oneof![
        Just(Bytes::from_static(b"0")),
        Just(Bytes::from_static(b"9223372036854775807")),
        (-3i64..3).prop_map(|n| Bytes::from(n.to_string())),
        arb_bytes(),
    ];
    let condition =
        prop_oneof![Just(SetCondition::Always), Just(SetCondition::IfAbsent), Just(SetCondition::IfPresent)];
    let delta = prop_oneof![Just(i64::MAX), Just(i64::MIN), -2i64..3, any::<i64>()];
    prop_oneof![
        (arb_key(), value.clone(), condition, any::<bool>())
            .prop_map(|(key, value, condition, get)| WriteOp::Set { key, value, condition, get }),
        vec(arb_key(), 1..4).prop_map(|keys| WriteOp::Del { keys }),
        (arb_key(), delta).prop_map(|(key, delta)| WriteOp::IncrBy { key, delta }),
        vec((arb_key(), value), 1..4).prop_map(|pairs| WriteOp::MSet { pairs }),
    ]
}

/// Any read a client could send.
fn arb_read_op() -> impl Strategy<Value = ReadOp> {
    prop_oneof![
        arb_key().prop_map(|key| ReadOp::Get { key }),
        vec(arb_key(), 1..4).prop_map(|keys| ReadOp::Exists { keys }),
        vec(arb_key(), 1..4).prop_map(|keys| ReadOp::MGet { keys }),
        Just(ReadOp::DbSize),
    ]
}

/// `encoded` with up to a few bytes overwritten, to reach the decoders'
/// checks past the first bytes more often than random bytes do.
fn mutated(encoded: Bytes, edits: Vec<(u8, u8)>) -> Vec<u8> {
    let mut bytes = encoded.to_vec();
    let len = bytes.len();
    for (at, byte) in edits {
        bytes[usize::from(at) % len] = byte;
    }
    bytes
}

fn set(condition: SetCondition, get: bool) -> WriteOp {
    WriteOp::Set { key: Bytes::from_static(b"k"), value: Bytes::from_static(b"vv"), condition, get }
}

fn keys(keys: &[&'static [u8]]) -> Vec<Bytes> {
    keys.iter().map(|key| Bytes::from_static(key)).collect()
}

#[test]
fn the_write_layout_is_as_documented() {
    let encoded = encode_write(&set(SetCondition::IfPresent, true));
    let mut want = vec![1, 1, 0b110]; // version, op SET, flags XX|GET
    want.extend_from_slice(&[1, 0, 0, 0, b'k', 2, 0, 0, 0, b'v', b'v']);
    assert_eq!(&encoded[..], &want[..]);

    let del = encode_write(&WriteOp::Del { keys: keys(&[b"a", b""]) });
    assert_eq!(&del[..], &[1, 2, 2, 0, 0, 0, 1, 0, 0, 0, b'a', 0, 0, 0, 0][..]);
    let incr = encode_write(&WriteOp::IncrBy { key: Bytes::from_static(b"n"), delta: -2 });
    let mut want = vec![1, 3];
    want.extend_from_slice(&(-2i64).to_le_bytes());
    want.extend_from_slice(&[1, 0, 0, 0, b'n']);
    assert_eq!(&incr[..], &want[..]);
    let pairs = vec![(Bytes::from_static(b"a"), Bytes::from_static(b"b"))];
    let mset = encode_write(&WriteOp::MSet { pairs });
    assert_eq!(&mset[..], &[1, 4, 1, 0, 0, 0, 1, 0, 0, 0, b'a', 1, 0, 0, 0, b'b'][..]);
    assert_eq!((WRITE_ENTRY_HEADER_BYTES, WRITE_ENTRY_VERSION), (2, 1));
}

#[test]
fn the_read_layout_is_as_documented() {
    let get = encode_read(&ReadOp::Get { key: Bytes::from_static(b"k") });
    assert_eq!(&get[..], &[1, 1, 1, 0, 0, 0, b'k'][..]);
    let exists = encode_read(&ReadOp::Exists { keys: keys(&[b"a", b""]) });
    assert_eq!(&exists[..], &[1, 2, 2, 0, 0, 0, 1, 0, 0, 0, b'a', 0, 0, 0, 0][..]);
    let mget = encode_read(&ReadOp::MGet { keys: keys(&[b"b"]) });
    assert_eq!(&mget[..], &[1, 3, 1, 0, 0, 0, 1, 0, 0, 0, b'b'][..]);
    assert_eq!(&encode_read(&ReadOp::DbSize)[..], &[1, 4][..]);
}

/// Every proper prefix of `encoded` is `Truncated`, and one byte more is
/// `TrailingBytes`.
fn assert_cut_and_extended<T: std::fmt::Debug>(
    encoded: &[u8],
    decode: impl Fn(&[u8]) -> Result<T, EntryDecodeError>,
) {
    for len in 0..encoded.len() {
        let error = decode(encoded.get(..len).unwrap_or_default());
        assert!(
            matches!(error, Err(EntryDecodeError::Truncated { .. })),
            "{encoded:?} cut at {len}: {error:?}"
        );
    }
    let mut longer = encoded.to_vec();
    longer.push(0);
    let error = decode(&longer);
    assert!(matches!(error, Err(EntryDecodeError::TrailingBytes { count: 1 })), "{encoded:?}: {error:?}");
}

#[test]
fn every_prefix_of_a_write_is_truncated() {
    let ops = [
        set(SetCondition::IfAbsent, false),
        WriteOp::Del { keys: keys(&[b"ab", b"c"]) },
        WriteOp::IncrBy { key: Bytes::from_static(b"n"), delta: 5 },
        WriteOp::MSet { pairs: vec![(Bytes::from_static(b"k"), Bytes::from_static(b"v"))] },
    ];
    for op in ops {
        let encoded = encode_write(&op);
        assert_eq!(encoded.len() as u64, write_entry_len(&op));
        assert_cut_and_extended(&encoded, decode_write);
    }
}

#[test]
fn every_prefix_of_a_read_is_truncated() {
    let ops = [
        ReadOp::Get { key: Bytes::from_static(b"k") },
        ReadOp::Exists { keys: keys(&[b"ab", b"c"]) },
        ReadOp::MGet { keys: keys(&[b"k", b""]) },
        ReadOp::DbSize,
    ];
    for op in ops {
        assert_cut_and_extended(&encode_read(&op), decode_read);
    }
}

#[test]
fn non_canonical_writes_are_rejected() {
    let good = encode_write(&set(SetCondition::Always, true)).to_vec();
    let with = |at: usize, byte: u8| {
        let mut bytes = good.clone();
        bytes[at] = byte;
        decode_write(&bytes)
    };
    assert_eq!(with(0, 2), Err(EntryDecodeError::UnknownVersion { version: 2 }));
    assert_eq!(with(1, 0), Err(EntryDecodeError::UnknownOp { op: 0 }));
    assert_eq!(with(1, 5), Err(EntryDecodeError::UnknownOp { op: 5 }));
    assert_eq!(with(2, 0b011), Err(EntryDecodeError::BadFlags { flags: 0b011 }));
    assert_eq!(with(2, 0b1000), Err(EntryDecodeError::BadFlags { flags: 0b1000 }));

    let empty_del = [1, 2, 0, 0, 0, 0];
    assert_eq!(decode_write(&empty_del), Err(EntryDecodeError::EmptyList { field: "key_count" }));
    let empty_mset = [1, 4, 0, 0, 0, 0];
    assert_eq!(decode_write(&empty_mset), Err(EntryDecodeError::EmptyList { field: "pair_count" }));
    // A count the remaining bytes cannot hold is refused before allocating.
    let huge_mset = [1, 4, 0xff, 0xff, 0xff, 0xff];
    assert_eq!(decode_write(&huge_mset), Err(EntryDecodeError::Truncated { field: "pair_count" }));
    let huge_del = [1, 2, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
    assert_eq!(decode_write(&huge_del), Err(EntryDecodeError::Truncated { field: "key_count" }));
    let error = EntryDecodeError::UnknownVersion { version: 2 }.to_string();
    assert_eq!(error, "malformed key-value payload: layout version 2, this build reads 1");
}

#[test]
fn non_canonical_reads_are_rejected() {
    let good = encode_read(&ReadOp::Get { key: Bytes::from_static(b"k") }).to_vec();
    let with = |at: usize, byte: u8| {
        let mut bytes = good.clone();
        bytes[at] = byte;
        decode_read(&bytes)
    };
    assert_eq!(with(0, 0), Err(EntryDecodeError::UnknownVersion { version: 0 }));
    assert_eq!(with(0, 2), Err(EntryDecodeError::UnknownVersion { version: 2 }));
    assert_eq!(with(1, 0), Err(EntryDecodeError::UnknownOp { op: 0 }));
    assert_eq!(with(1, 5), Err(EntryDecodeError::UnknownOp { op: 5 }));
    // DBSIZE has no body, so a GET's body after it is trailing.
    assert_eq!(with(1, 4), Err(EntryDecodeError::TrailingBytes { count: 5 }));

    for op in [2, 3] {
        let empty = [1, op, 0, 0, 0, 0];
        assert_eq!(decode_read(&empty), Err(EntryDecodeError::EmptyList { field: "key_count" }));
        // A count the remaining bytes cannot hold is refused before allocating.
        let huge = [1, op, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        assert_eq!(decode_read(&huge), Err(EntryDecodeError::Truncated { field: "key_count" }));
        let two_for_one = [1, op, 2, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(decode_read(&two_for_one), Err(EntryDecodeError::Truncated { field: "key_count" }));
    }
}

proptest! {
    #[test]
    fn writes_round_trip(op in arb_write_op()) {
        let encoded = encode_write(&op);
        prop_assert_eq!(encoded.len() as u64, write_entry_len(&op));
        prop_assert_eq!(decode_write(&encoded), Ok(op));
    }

    #[test]
    fn reads_round_trip(op in arb_read_op()) {
        prop_assert_eq!(decode_read(&encode_read(&op)), Ok(op));
    }

    /// Any bytes decode to a write or an error without panicking, and a
    /// write that decodes encodes back to exactly those bytes.
    #[test]
    fn decoding_any_bytes_as_a_write_is_total_and_canonical(
        bytes in prop_oneof![
            vec(any::<u8>(), 0..64),
            (arb_write_op(), vec(any::<(u8, u8)>(), 0..3))
                .prop_map(|(op, edits)| mutated(encode_write(&op), edits)),
        ],
    ) {
        if let Ok(op) = decode_write(&bytes) {
            prop_assert_eq!(&encode_write(&op)[..], &bytes[..]);
        }
    }

    /// The same for reads.
    #[test]
    fn decoding_any_bytes_as_a_read_is_total_and_canonical(
        bytes in prop_oneof![
            vec(any::<u8>(), 0..64),
            (arb_read_op(), vec(any::<(u8, u8)>(), 0..3))
                .prop_map(|(op, edits)| mutated(encode_read(&op), edits)),
        ],
    ) {
        if let Ok(op) = decode_read(&bytes) {
            prop_assert_eq!(&encode_read(&op)[..], &bytes[..]);
        }
    }
}
