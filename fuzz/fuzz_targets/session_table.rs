//! Any bytes, as the session table of a snapshot (from disk or from a
//! peer), are either refused with a `TableError` or read to a table that
//! encodes back to exactly those bytes and reads again to an equal table:
//! the decoder is total and accepts only canonical tables. With byte 0 bit
//! 1 set, the rest is a session envelope (the head of a committed command)
//! instead: it is refused with an `EnvelopeError` or read to an envelope
//! that encodes to bytes reading back to the same envelope.
//!
//! Input layout: byte 0 bit 0 set means "fix the checksum": the target
//! replaces the last four bytes with the CRC-32C of the rest, as
//! `SessionTable::encode` lays it out, so that the fuzzer explores the
//! structure and not only checksum rejection. The rest is the table.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oar::session::{Envelope, SessionTable};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode & 2 == 2 {
        let Ok(envelope) = Envelope::decode(rest) else { return };
        let mut written = Vec::new();
        envelope.encode(&mut written);
        assert_eq!(written.len(), envelope.encoded_len());
        assert_eq!(Envelope::decode(&written), Ok(envelope), "an envelope does not read back");
        return;
    }
    let mut bytes = rest.to_vec();
    if mode & 1 == 1 && bytes.len() >= 4 {
        let body = bytes.len() - 4;
        let crc = crc32c::crc32c(&bytes[..body]);
        bytes[body..].copy_from_slice(&crc.to_le_bytes());
    }
    let Ok(table) = SessionTable::decode(&bytes) else { return };
    table.check_invariants();
    let mut written = Vec::new();
    table.encode(&mut written);
    assert_eq!(written, bytes, "a table that reads does not encode back the same");
    let again = SessionTable::decode(&written).expect("an encoded table reads");
    assert_eq!(again, table);
});
