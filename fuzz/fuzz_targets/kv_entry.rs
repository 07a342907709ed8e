//! Any bytes, as a key-value write payload (a log entry from disk or the
//! network) and as a read query, are either rejected with an
//! `EntryDecodeError` or decode to an op that re-encodes to exactly those
//! bytes: both decoders are total and accept only canonical encodings.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oar::kv::{decode_read, decode_write, encode_read, encode_write, write_entry_len};

fuzz_target!(|data: &[u8]| {
    if let Ok(op) = decode_write(data) {
        assert_eq!(write_entry_len(&op), data.len() as u64);
        assert_eq!(&encode_write(&op)[..], data);
    }
    if let Ok(op) = decode_read(data) {
        assert_eq!(&encode_read(&op)[..], data);
    }
});
