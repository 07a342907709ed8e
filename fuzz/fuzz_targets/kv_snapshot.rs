//! Any bytes, as a key-value snapshot (from disk or from a peer), are
//! either refused with a `SnapshotError` or read to a store that writes
//! back to exactly those bytes and reads again to an equal store: the
//! reader is total and accepts only canonical snapshots.
//!
//! Input layout: byte 0 bit 0 set means "fix the checksum": the target
//! replaces the last four bytes with the CRC-32C of the rest, following
//! the layout in `oar::kv::snapshot`, so that the fuzzer explores the
//! framing rules and not only checksum rejection. The rest is the snapshot.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oar::kv::Store;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut snapshot = rest.to_vec();
    if mode & 1 == 1 && snapshot.len() >= 4 {
        let body = snapshot.len() - 4;
        let crc = crc32c::crc32c(&snapshot[..body]);
        snapshot[body..].copy_from_slice(&crc.to_le_bytes());
    }
    let Ok(store) = Store::read_snapshot(&mut &snapshot[..]) else { return };
    let mut written = Vec::new();
    store.write_snapshot(&mut written).expect("writing to a Vec");
    assert_eq!(written, snapshot, "a snapshot that reads does not write back the same");
    let again = Store::read_snapshot(&mut &written[..]).expect("a written snapshot reads");
    assert_eq!(again, store);
});
