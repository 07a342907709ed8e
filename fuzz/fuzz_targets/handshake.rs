//! Any bytes at the start of a peer connection are a handshake followed by
//! whatever comes next, a request for more (never past the longest
//! handshake), or a typed error; a handshake re-encodes to exactly the
//! bytes it was decoded from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oar::codec::{decode_handshake, encode_handshake, HANDSHAKE_BYTES_MAX};

fuzz_target!(|data: &[u8]| {
    match decode_handshake(data) {
        Ok(Some((handshake, len))) => {
            let mut out = Vec::new();
            encode_handshake(&handshake, &mut out);
            assert_eq!(&out[..], &data[..len]);
        }
        Ok(None) => assert!(data.len() < HANDSHAKE_BYTES_MAX),
        Err(_) => {}
    }
});
