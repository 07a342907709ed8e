//! The peer handshake: its pinned layout, incremental decoding, and
//! totality on any bytes.

use proptest::collection::vec;
use proptest::prelude::*;

use crate::codec::{
    decode_handshake, encode_handshake, Handshake, HandshakeError, PeerState, HANDSHAKE_BYTES_MAX,
};
use crate::types::{Incarnation, NodeId};

fn encoded(handshake: &Handshake) -> Vec<u8> {
    let mut out = Vec::new();
    encode_handshake(handshake, &mut out);
    out
}

#[test]
fn the_layout_is_as_documented() {
    let bytes = encoded(&Handshake {
        cluster_id: "ab".into(),
        from: NodeId(2),
        to: NodeId(0x0301),
        addr: "h:1".into(),
        incarnation: Incarnation(0x0405),
        state: PeerState::Bootstrapping { voters_hash: 7 },
        client_addr: "c:22".into(),
    });
    let mut want = b"oar\x04\x02ab".to_vec();
    want.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 0, 1, 3, 0, 0, 0, 0, 0, 0]);
    want.extend_from_slice(b"\x03h:1");
    want.extend_from_slice(&[5, 4, 0, 0, 0, 0, 0, 0]);
    want.extend_from_slice(&[1, 7, 0, 0, 0, 0, 0, 0, 0]);
    want.extend_from_slice(b"\x04c:22");
    assert_eq!(bytes, want);
}

#[test]
fn every_prefix_asks_for_more_and_frames_after_it_are_left_alone() {
    let handshake = Handshake {
        cluster_id: "oar".into(),
        from: NodeId(1),
        to: NodeId(2),
        addr: "127.0.0.1:7001".into(),
        incarnation: Incarnation(9),
        state: PeerState::Member,
        client_addr: "127.0.0.1:7379".into(),
    };
    let mut bytes = encoded(&handshake);
    let len = bytes.len();
    for cut in 0..len {
        assert_eq!(decode_handshake(&bytes[..cut]), Ok(None), "cut at {cut}");
    }
    bytes.extend_from_slice(b"frames follow");
    assert_eq!(decode_handshake(&bytes), Ok(Some((handshake, len))));
}

#[test]
fn strangers_are_refused_at_once() {
    let refused = decode_handshake(b"GET / HTTP/1.1\r\n");
    assert_eq!(refused, Err(HandshakeError::BadMagic { found: *b"GET " }));
    // Even from the first wrong byte.
    assert_eq!(decode_handshake(b"x"), Err(HandshakeError::BadMagic { found: [b'x', 0, 0, 0] }));
    assert_eq!(decode_handshake(b"oar\x04\x00"), Err(HandshakeError::BadClusterId));
    assert_eq!(decode_handshake(b"oar\x04\x01\xff"), Err(HandshakeError::BadClusterId));
    // The previous versions' peers are strangers too.
    for old in [&b"oar\x01\x01a"[..], b"oar\x02\x01a", b"oar\x03\x01a"] {
        assert!(matches!(decode_handshake(old), Err(HandshakeError::BadMagic { .. })));
    }
    let mut bad_addr = b"oar\x04\x01a".to_vec();
    bad_addr.extend_from_slice(&[0; 16]);
    bad_addr.extend_from_slice(b"\x01\xff");
    assert_eq!(decode_handshake(&bad_addr), Err(HandshakeError::BadAddress));
    // A state byte this version does not know, or a hash without a
    // bootstrap.
    for (state, hash) in [(3u8, 0u8), (0, 1), (2, 1)] {
        let mut bad_state = b"oar\x04\x01a".to_vec();
        bad_state.extend_from_slice(&[0; 16]);
        bad_state.extend_from_slice(&[0]);
        bad_state.extend_from_slice(&[1; 8]);
        bad_state.push(state);
        bad_state.extend_from_slice(&[hash, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(decode_handshake(&bad_state), Err(HandshakeError::BadState), "state {state} hash {hash}");
    }
    let mut bad_client = encoded(&Handshake {
        cluster_id: "a".into(),
        from: NodeId(1),
        to: NodeId(2),
        addr: String::new(),
        incarnation: Incarnation(1),
        state: PeerState::Member,
        client_addr: "x".into(),
    });
    *bad_client.last_mut().expect("not empty") = 0xff;
    assert_eq!(decode_handshake(&bad_client), Err(HandshakeError::BadAddress));
}

proptest! {
    #[test]
    fn handshakes_round_trip(
        cluster_id in "[a-z0-9-]{1,60}",
        from in any::<u64>(),
        to in any::<u64>(),
        addr in "[a-z0-9.:]{0,60}",
        client_addr in "[a-z0-9.:]{0,60}",
        incarnation in any::<u64>(),
        state in prop_oneof![
            Just(PeerState::New),
            Just(PeerState::Member),
            any::<u64>().prop_map(|voters_hash| PeerState::Bootstrapping { voters_hash }),
        ],
    ) {
        let handshake =
            Handshake { cluster_id, from: NodeId(from), to: NodeId(to), addr, incarnation: Incarnation(incarnation), state, client_addr };
        let bytes = encoded(&handshake);
        prop_assert!(bytes.len() <= HANDSHAKE_BYTES_MAX);
        prop_assert_eq!(decode_handshake(&bytes), Ok(Some((handshake, bytes.len()))));
    }

    /// Any bytes give a handshake, a request for more (never once
    /// `HANDSHAKE_BYTES_MAX` bytes are there), or an error; never a panic.
    #[test]
    fn decoding_any_bytes_is_total(bytes in vec(any::<u8>(), 0..600)) {
        match decode_handshake(&bytes) {
            Ok(Some((handshake, len))) => prop_assert_eq!(&encoded(&handshake)[..], &bytes[..len]),
            Ok(None) => prop_assert!(bytes.len() < HANDSHAKE_BYTES_MAX),
            Err(_) => {}
        }
    }
}
