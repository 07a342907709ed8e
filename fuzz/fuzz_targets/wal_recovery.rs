//! Any bytes as the only segment file of a data directory: opening the log
//! never panics; a log it recovers is valid (consecutive indexes from the
//! first index, terms never decreasing); recovering a second time gives the
//! same log (the first recovery made its tail cut durable) with nothing
//! more to cut; and the recovered log accepts an append that survives a
//! reopen.
//!
//! Input layout: byte 0 bit 0 set means "fix the checksums": the target
//! recomputes the header CRC and the CRC of every record it can frame,
//! following the layout in `oar::storage`, so that the fuzzer explores the
//! replay rules and not only checksum rejection. The rest is the file.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use oar::storage::{
    RecoveredLog, SimFs, StorageError, Wal, WalOptions, RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES,
};
use oar::{Bytes, Entry, EntryKind, LogIndex};

fn fix_checksums(file: &mut [u8]) {
    if file.len() < SEGMENT_HEADER_BYTES {
        return;
    }
    let crc = crc32c::crc32c(&file[..32]);
    file[32..36].copy_from_slice(&crc.to_le_bytes());
    let mut offset = SEGMENT_HEADER_BYTES;
    while offset + RECORD_HEADER_BYTES <= file.len() {
        let len = u32::from_le_bytes(file[offset..offset + 4].try_into().unwrap()) as usize;
        let end = offset + RECORD_HEADER_BYTES + len;
        if len == 0 || end > file.len() {
            return;
        }
        let crc = crc32c::crc32c_append(crc32c::crc32c(&file[offset..offset + 4]), &file[offset + 8..end]);
        file[offset + 4..offset + 8].copy_from_slice(&crc.to_le_bytes());
        offset = end;
    }
}

fn open(fs: &SimFs, dir: &Path) -> Result<(Wal<SimFs>, RecoveredLog), StorageError> {
    Wal::open_with(fs.clone(), dir, WalOptions { segment_size_bytes: 4096 })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut file = rest.to_vec();
    if mode & 1 == 1 {
        fix_checksums(&mut file);
    }
    // Name the file for the index its header claims, so that inputs get
    // past the name check as often as past the magic.
    let first = file.get(16..24).map_or(1, |b| u64::from_le_bytes(b.try_into().unwrap())).max(1);
    let dir = Path::new("/fuzz");
    let fs = SimFs::new();
    fs.write_durable(&dir.join(format!("{first:020}.wal")), &file);

    // The first log is dropped at once, releasing its lock for the second.
    let once = open(&fs, dir).map(|(_, recovered)| recovered);
    let twice = open(&fs, dir);
    let (recovered, (wal, again)) = match (once, twice) {
        (Err(e1), Err(e2)) => {
            assert_eq!(e1.to_string(), e2.to_string(), "refusing changed what is on disk");
            return;
        }
        (Ok(_), Err(e)) | (Err(e), Ok(_)) => panic!("recovery is not repeatable: once ok, once {e}"),
        (Ok(recovered), Ok(second)) => (recovered, second),
    };
    assert_eq!(recovered.first_index.0, first);
    for (i, e) in recovered.entries.iter().enumerate() {
        assert_eq!(e.index, recovered.first_index.plus(i as u64));
    }
    let mut term = recovered.prev_term;
    for e in &recovered.entries {
        assert!(e.term >= term, "terms decrease");
        term = e.term;
    }
    assert_eq!(
        (&again.entries, again.hard_state, again.first_index, again.prev_term),
        (&recovered.entries, recovered.hard_state, recovered.first_index, recovered.prev_term)
    );
    assert_eq!(again.torn_tail, None, "the first recovery left something to cut");

    let mut wal = wal;
    let next = Entry {
        index: wal.last_index().next(),
        term,
        kind: EntryKind::Command,
        data: Bytes::from_static(b"after recovery"),
    };
    if next.index == LogIndex(u64::MAX) {
        return;
    }
    wal.append(std::slice::from_ref(&next)).expect("append after recovery");
    wal.sync().expect("sync after recovery");
    drop(wal);
    let (_, third) = open(&fs, dir).expect("reopen after an append");
    assert_eq!(third.entries.len(), recovered.entries.len() + 1);
    assert_eq!(third.entries.last(), Some(&next));
});
