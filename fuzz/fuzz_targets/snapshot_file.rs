//! Any bytes as the only snapshot file of a snapshot directory: opening the
//! store never panics; a refusal is `SnapshotCorrupt` and repeatable
//! (refusing changed nothing on disk); a snapshot it accepts passes
//! `check`, streams back exactly its data, is what a writer makes of the
//! same metadata and data (byte for byte when the membership's encoding is
//! canonical), and moves to another store in chunks unchanged.
//!
//! Input layout: byte 0 bit 0 set means "fix the trailer": the target
//! rewrites the data length and the CRC that the layout in `oar::storage`
//! puts in the last 12 bytes, so that the fuzzer explores the header and
//! membership checks and not only checksum rejection. The other bits of
//! byte 0 pick the transfer's chunk size. The rest is the file, named for
//! the index and term its header claims, so that inputs get past the name
//! check as often as past the magic.
#![no_main]

use std::io::{Read, Write};
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use oar::storage::{
    SimFs, SnapshotOptions, SnapshotStore, StorageError, SNAPSHOT_HEADER_BYTES, SNAPSHOT_TRAILER_BYTES,
};
use oar::{LogIndex, Term};

fn le_u64(bytes: Option<&[u8]>) -> u64 {
    bytes.and_then(|b| b.try_into().ok()).map_or(0, u64::from_le_bytes)
}

fn fix_trailer(file: &mut [u8]) {
    let len = file.len();
    if len < SNAPSHOT_HEADER_BYTES + SNAPSHOT_TRAILER_BYTES {
        return;
    }
    let membership_len = u32::from_le_bytes(file[32..36].try_into().unwrap()) as usize;
    if let Some(data_len) = len.checked_sub(SNAPSHOT_HEADER_BYTES + SNAPSHOT_TRAILER_BYTES + membership_len) {
        file[len - 12..len - 4].copy_from_slice(&(data_len as u64).to_le_bytes());
    }
    let crc = crc32c::crc32c(&file[..len - 4]);
    file[len - 4..].copy_from_slice(&crc.to_le_bytes());
}

fn open(fs: &SimFs, dir: &Path) -> Result<(SnapshotStore<SimFs>, Option<oar::SnapshotMeta>), StorageError> {
    SnapshotStore::open_with(fs.clone(), dir, SnapshotOptions::default())
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut file = rest.to_vec();
    if mode & 1 == 1 {
        fix_trailer(&mut file);
    }
    let chunk_bytes = 1 + usize::from(mode >> 1) * 37;
    let (index, term) = (le_u64(file.get(16..24)), le_u64(file.get(24..32)));
    let dir = Path::new("/fuzz/snapshots");
    let path = dir.join(format!("snapshot-{index:020}-{term:020}.snap"));
    let fs = SimFs::new();
    fs.write_durable(&path, &file);

    let (store, meta) = match open(&fs, dir) {
        Ok(opened) => opened,
        Err(first) => {
            assert!(matches!(first, StorageError::SnapshotCorrupt { .. }), "{first}");
            let second = open(&fs, dir).map(|_| ()).expect_err("refused once, accepted the next time");
            assert_eq!(first.to_string(), second.to_string(), "refusing changed what is on disk");
            assert_eq!(fs.contents(&path).as_deref(), Some(&file[..]));
            return;
        }
    };
    let meta = meta.expect("a file under a snapshot's name is the snapshot");
    assert_eq!((meta.index, meta.term), (LogIndex(index), Term(term)));
    store.check().expect("check after open");
    let mut read = Vec::new();
    store.reader().unwrap().read_to_end(&mut read).expect("read back");
    let data_end = file.len() - SNAPSHOT_TRAILER_BYTES;
    assert_eq!(read[..], file[data_end - read.len()..data_end]);
    assert_eq!(store.data_len(), Some(read.len() as u64));

    // Written again by a writer.
    let again = SimFs::new();
    let (mut writer_store, _) = open(&again, dir).unwrap();
    let mut writer = writer_store.begin(&meta).expect("a snapshot that opened can be written");
    writer.write_all(&read).unwrap();
    assert_eq!(writer.finish().unwrap(), meta);
    let rewritten = again.contents(&path).unwrap();
    let membership_end = SNAPSHOT_HEADER_BYTES + meta.membership.to_bytes().len();
    if file.get(SNAPSHOT_HEADER_BYTES..membership_end) == Some(&meta.membership.to_bytes()[..]) {
        assert_eq!(rewritten, file, "decode then encode changed the file");
    }

    // Sent to another store in chunks.
    let target_fs = SimFs::new();
    let (mut target, _) = open(&target_fs, dir).unwrap();
    let mut offset = 0;
    while offset < store.file_len().unwrap() {
        let chunk = store.read_chunk(offset, chunk_bytes).unwrap();
        offset = target.receive_chunk(meta.index, meta.term, offset, &chunk).unwrap();
    }
    assert_eq!(target.finish_receive(meta.index, meta.term).unwrap(), meta);
    assert_eq!(target_fs.contents(&path).as_deref(), Some(&file[..]));
});
