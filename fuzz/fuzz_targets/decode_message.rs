//! Any bytes are either rejected with a `DecodeError` or decode to a message
//! that re-encodes to exactly the bytes consumed: the decoders are total and
//! accept only canonical encodings.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oar::codec::{decode_frame, decode_message, encode_message, encoded_len, FRAME_LEN_BYTES};
use oar::Bytes;

fn encode(msg: &oar::Message) -> Vec<u8> {
    let mut out = Vec::new();
    encode_message(msg, &mut out);
    assert_eq!(out.len(), encoded_len(msg));
    out
}

fuzz_target!(|data: &[u8]| {
    let input = Bytes::copy_from_slice(data);

    // As a frame at the start of a buffer.
    if let Ok((msg, consumed)) = decode_frame(&input) {
        assert_eq!(Some(&encode(&msg)[..]), data.get(..consumed));
    }

    // As a frame body (the fuzzer need not guess a matching length prefix).
    if let Ok(msg) = decode_message(&input) {
        assert_eq!(encode(&msg).get(FRAME_LEN_BYTES..), Some(data));
    }
});
