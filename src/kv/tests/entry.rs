//! Tests of the log entry encoding of writes: the layout is pinned, every
//! write round-trips, decoding is total and accepts only canonical bytes.

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;

use super::payload;
use crate::kv::entry::{REQUEST_HEADER_BYTES, WRITE_ENTRY_HEADER_BYTES, WRITE_ENTRY_VERSION};
use crate::kv::{
    decode_request_header, decode_write, encode_write, write_entry_len, EntryDecodeError, RequestHeader,
    SetCondition, WriteEntry, WriteOp,
};
use crate::types::NodeId;

fn arb_bytes() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..12).prop_map(Bytes::from)
}

/// Any write a client could send (keys drawn from a small set, so that
/// sequences of them collide).
pub(super) fn arb_write_op() -> impl Strategy<Value = WriteOp> {
    let key = prop_oneof![
        Just(Bytes::from_static(b"a")),
        Just(Bytes::from_static(b"b")),
        Just(Bytes::from_static(b"")),
        arb_bytes()
    ];
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
        (key.clone(), value.clone(), condition, any::<bool>())
            .prop_map(|(key, value, condition, get)| WriteOp::Set { key, value, condition, get }),
        vec(key.clone(), 1..4).prop_map(|keys| WriteOp::Del { keys }),
        (key.clone(), delta).prop_map(|(key, delta)| WriteOp::IncrBy { key, delta }),
        vec((key, value), 1..4).prop_map(|pairs| WriteOp::MSet { pairs }),
    ]
}

fn set(condition: SetCondition, get: bool) -> WriteOp {
    WriteOp::Set { key: Bytes::from_static(b"k"), value: Bytes::from_static(b"vv"), condition, get }
}

#[test]
fn the_layout_is_as_documented() {
    let header = RequestHeader { proposer: NodeId(0x0102), request_id: 0x0a0b_0c0d };
    let encoded = encode_write(header, &set(SetCondition::IfPresent, true));
    let mut want = vec![0x02, 0x01, 0, 0, 0, 0, 0, 0, 0x0d, 0x0c, 0x0b, 0x0a, 0, 0, 0, 0];
    want.extend_from_slice(&[1, 1, 0b110]); // version, op SET, flags XX|GET
    want.extend_from_slice(&[1, 0, 0, 0, b'k', 2, 0, 0, 0, b'v', b'v']);
    assert_eq!(&encoded[..], &want[..]);

    let del = encode_write(header, &WriteOp::Del { keys: vec![Bytes::from_static(b"a"), Bytes::new()] });
    assert_eq!(del.get(16..), Some(&[1, 2, 2, 0, 0, 0, 1, 0, 0, 0, b'a', 0, 0, 0, 0][..]));
    let incr = encode_write(header, &WriteOp::IncrBy { key: Bytes::from_static(b"n"), delta: -2 });
    let mut want = vec![1, 3];
    want.extend_from_slice(&(-2i64).to_le_bytes());
    want.extend_from_slice(&[1, 0, 0, 0, b'n']);
    assert_eq!(incr.get(16..), Some(&want[..]));
    let pairs = vec![(Bytes::from_static(b"a"), Bytes::from_static(b"b"))];
    let mset = encode_write(header, &WriteOp::MSet { pairs });
    assert_eq!(mset.get(16..), Some(&[1, 4, 1, 0, 0, 0, 1, 0, 0, 0, b'a', 1, 0, 0, 0, b'b'][..]));
    assert_eq!((REQUEST_HEADER_BYTES, WRITE_ENTRY_HEADER_BYTES, WRITE_ENTRY_VERSION), (16, 18, 1));
}

#[test]
fn the_request_header_reads_without_the_rest() {
    let header = RequestHeader { proposer: NodeId(9), request_id: u64::MAX };
    let encoded = encode_write(header, &set(SetCondition::Always, false));
    assert_eq!(decode_request_header(&encoded), Ok(header));
    // Even from a payload of a later version, or just the header.
    assert_eq!(decode_request_header(encoded.get(..16).unwrap_or_default()), Ok(header));
    assert_eq!(decode_request_header(&[0; 15]), Err(EntryDecodeError::Truncated { field: "request_id" }));
}

#[test]
fn every_prefix_of_an_entry_is_truncated() {
    let ops = [
        set(SetCondition::IfAbsent, false),
        WriteOp::Del { keys: vec![Bytes::from_static(b"ab"), Bytes::from_static(b"c")] },
        WriteOp::IncrBy { key: Bytes::from_static(b"n"), delta: 5 },
        WriteOp::MSet { pairs: vec![(Bytes::from_static(b"k"), Bytes::from_static(b"v"))] },
    ];
    for op in ops {
        let encoded = payload(&op);
        assert_eq!(encoded.len() as u64, write_entry_len(&op));
        for len in 0..encoded.len() {
            let error = decode_write(encoded.get(..len).unwrap_or_default());
            assert!(
                matches!(error, Err(EntryDecodeError::Truncated { .. })),
                "{op:?} cut at {len}: {error:?}"
            );
        }
        let mut longer = encoded.to_vec();
        longer.push(0);
        assert_eq!(decode_write(&longer), Err(EntryDecodeError::TrailingBytes { count: 1 }));
    }
}

#[test]
fn non_canonical_entries_are_rejected() {
    let good = payload(&set(SetCondition::Always, true)).to_vec();
    let with = |at: usize, byte: u8| {
        let mut bytes = good.clone();
        bytes[at] = byte;
        decode_write(&bytes)
    };
    assert_eq!(with(16, 2), Err(EntryDecodeError::UnknownVersion { version: 2 }));
    assert_eq!(with(17, 0), Err(EntryDecodeError::UnknownOp { op: 0 }));
    assert_eq!(with(17, 5), Err(EntryDecodeError::UnknownOp { op: 5 }));
    assert_eq!(with(18, 0b011), Err(EntryDecodeError::BadFlags { flags: 0b011 }));
    assert_eq!(with(18, 0b1000), Err(EntryDecodeError::BadFlags { flags: 0b1000 }));

    let mut empty_del = good.get(..16).unwrap_or_default().to_vec();
    empty_del.extend_from_slice(&[1, 2, 0, 0, 0, 0]);
    assert_eq!(decode_write(&empty_del), Err(EntryDecodeError::EmptyList { field: "key_count" }));
    // A count the remaining bytes cannot hold is refused before allocating.
    let mut huge_mset = good.get(..16).unwrap_or_default().to_vec();
    huge_mset.extend_from_slice(&[1, 4, 0xff, 0xff, 0xff, 0xff]);
    assert_eq!(decode_write(&huge_mset), Err(EntryDecodeError::Truncated { field: "pair_count" }));
    let error = EntryDecodeError::UnknownVersion { version: 2 }.to_string();
    assert_eq!(error, "malformed key-value log entry: layout version 2, this build reads 1");
}

proptest! {
    #[test]
    fn writes_round_trip(op in arb_write_op(), proposer in any::<u64>(), request_id in any::<u64>()) {
        let header = RequestHeader { proposer: NodeId(proposer), request_id };
        let encoded = encode_write(header, &op);
        prop_assert_eq!(encoded.len() as u64, write_entry_len(&op));
        prop_assert_eq!(decode_request_header(&encoded), Ok(header));
        prop_assert_eq!(decode_write(&encoded), Ok(WriteEntry { header, op }));
    }

    /// Any bytes decode to an entry or an error without panicking, and an
    /// entry that decodes encodes back to exactly those bytes.
    #[test]
    fn decoding_any_bytes_is_total_and_canonical(
        bytes in prop_oneof![
            vec(any::<u8>(), 0..64),
            (arb_write_op(), vec(any::<(u8, u8)>(), 0..3)).prop_map(|(op, edits)| {
                let mut bytes = payload(&op).to_vec();
                let len = bytes.len();
                for (at, byte) in edits {
                    bytes[usize::from(at) % len] = byte;
                }
                bytes
            }),
        ],
    ) {
        if let Ok(entry) = decode_write(&bytes) {
            prop_assert_eq!(&encode_write(entry.header, &entry.op)[..], &bytes[..]);
        }
    }
}
