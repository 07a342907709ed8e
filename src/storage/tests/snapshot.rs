//! The snapshot store: taking and reading back, the file check at open,
//! chunked transfers between stores, and the reader's own checks.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;
use crate::membership::{Membership, SnapshotMeta};
use crate::rng::Rng;

pub(super) fn snap_dir() -> PathBuf {
    dir().join(SNAPSHOT_DIR)
}

pub(super) fn meta(index: u64, term: u64) -> SnapshotMeta {
    let mut membership = Membership::with_voters([1, 2, 3].map(NodeId));
    for id in 1..=3 {
        membership.addresses.insert(NodeId(id), format!("10.0.0.{id}:7000"));
    }
    membership.learners.insert(NodeId(4));
    SnapshotMeta { index: LogIndex(index), term: Term(term), membership }
}

/// `len` bytes that differ with `seed`.
pub(super) fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

fn open_store(fs: &SimFs) -> (SnapshotStore<SimFs>, Option<SnapshotMeta>) {
    SnapshotStore::open_with(fs.clone(), snap_dir(), SnapshotOptions::default()).expect("open the store")
}

/// Takes a snapshot of `bytes`, written in pieces of uneven sizes.
pub(super) fn take<F: Fs>(store: &mut SnapshotStore<F>, meta: &SnapshotMeta, bytes: &[u8]) -> SnapshotMeta {
    let mut writer = store.begin(meta).expect("begin");
    let mut rest = bytes;
    for size in [1, 7, 4096, 100_000, 3].into_iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, tail) = rest.split_at(size.min(rest.len()));
        writer.write_all(piece).expect("write");
        rest = tail;
    }
    assert_eq!(writer.data_len(), bytes.len() as u64);
    writer.finish().expect("finish")
}

pub(super) fn read_back<F: Fs>(store: &SnapshotStore<F>) -> Vec<u8> {
    let mut out = Vec::new();
    store.reader().expect("reader").read_to_end(&mut out).expect("read");
    out
}

fn snapshot_path(index: u64, term: u64) -> PathBuf {
    snap_dir().join(format!("snapshot-{index:020}-{term:020}.snap"))
}

fn files(fs: &SimFs) -> Vec<String> {
    let mut names = fs.list(&snap_dir()).expect("list");
    names.retain(|n| n != "LOCK");
    names.sort();
    names
}

/// The bytes of a snapshot file at `(index, term)` holding `bytes`.
pub(super) fn snapshot_image(index: u64, term: u64, bytes: &[u8]) -> Vec<u8> {
    let fs = SimFs::new();
    let (mut store, _) = open_store(&fs);
    take(&mut store, &meta(index, term), bytes);
    fs.contents(&snapshot_path(index, term)).expect("the snapshot file")
}

fn expect_corrupt(fs: &SimFs, path: &Path, context: &str) {
    match SnapshotStore::open_with(fs.clone(), snap_dir(), SnapshotOptions::default()) {
        Err(StorageError::SnapshotCorrupt { path: p, .. }) => assert_eq!(p, path, "{context}"),
        Err(other) => panic!("{context}: expected SnapshotCorrupt, got {other}"),
        Ok((_, meta)) => panic!("{context}: expected SnapshotCorrupt, opened {meta:?}"),
    }
}

// ----------------------------------------------------------- take and read

#[test]
fn a_new_store_is_empty_and_says_so() {
    let fs = SimFs::new();
    let (store, current) = open_store(&fs);
    assert_eq!(current, None);
    assert_eq!((store.current(), store.file_len(), store.data_len()), (None, None, None));
    assert!(matches!(store.reader(), Err(StorageError::NoSnapshot)));
    assert!(matches!(store.read_chunk(0, 10), Err(StorageError::NoSnapshot)));
    store.check().unwrap();
}

#[test]
fn a_multi_mebibyte_snapshot_streams_through_the_writer_and_back() {
    let fs = SimFs::new();
    let (mut store, _) = open_store(&fs);
    let bytes = data((5 << 20) + 123, 1);
    let m = meta(1000, 3);
    assert_eq!(take(&mut store, &m, &bytes), m);
    assert_eq!(store.current(), Some(&m));
    assert_eq!(store.data_len(), Some(bytes.len() as u64));
    let membership_bytes = m.membership.to_bytes().len() as u64;
    assert_eq!(store.file_len(), Some(48 + membership_bytes + bytes.len() as u64));
    assert!(read_back(&store) == bytes, "the data read back differs");
    store.check().unwrap();
    drop(store);
    let (store, current) = open_store(&fs);
    assert_eq!(current, Some(m.clone()));
    let mut reader = store.reader().unwrap();
    assert_eq!((reader.meta(), reader.data_len()), (&m, bytes.len() as u64));
    // Small reads, as a decoder might make.
    let mut back = Vec::new();
    let mut piece = [0; 999];
    loop {
        let n = reader.read(&mut piece).unwrap();
        if n == 0 {
            break;
        }
        back.extend_from_slice(&piece[..n]);
    }
    assert!(back == bytes, "the data read back in small pieces differs");
    assert_eq!(files(&fs), vec![format!("snapshot-{:020}-{:020}.snap", 1000, 3)]);
}

#[test]
fn snapshots_on_the_real_disk_round_trip_and_replace_each_other() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("snapshots");
    let (mut store, current) = SnapshotStore::open(&dir, SnapshotOptions::default()).unwrap();
    assert_eq!(current, None);
    let first = data(300_000, 2);
    take(&mut store, &meta(10, 1), &first);
    let second = data(1 << 20, 3);
    take(&mut store, &meta(20, 2), &second);
    assert!(read_back(&store) == second);
    drop(store);
    let (store, current) = SnapshotStore::open(&dir, SnapshotOptions::default()).unwrap();
    assert_eq!(current, Some(meta(20, 2)));
    assert!(read_back(&store) == second);
    let mut names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, vec!["LOCK".to_string(), format!("snapshot-{:020}-{:020}.snap", 20, 2)]);
}

#[test]
fn an_empty_snapshot_is_a_snapshot() {
    let fs = SimFs::new();
    let (mut store, _) = open_store(&fs);
    take(&mut store, &meta(5, 1), &[]);
    assert!(read_back(&store).is_empty());
    drop(store);
    assert_eq!(open_store(&fs).1, Some(meta(5, 1)));
}

#[test]
fn a_newer_snapshot_replaces_the_older_one_only_once_it_is_durable() {
    let fs = SimFs::new();
    let (mut store, _) = open_store(&fs);
    take(&mut store, &meta(10, 1), &data(5000, 1));
    let old_reader = store.reader().unwrap();
    take(&mut store, &meta(20, 2), &data(7000, 2));
    assert_eq!(files(&fs), vec![format!("snapshot-{:020}-{:020}.snap", 20, 2)]);
    // A reader of the old snapshot still reads it all.
    let mut old = Vec::new();
    let mut old_reader = old_reader;
    old_reader.read_to_end(&mut old).unwrap();
    assert!(old == data(5000, 1));
    // After a crash the new one is there whatever else was lost.
    fs.crash(&mut Rng::new(9));
    assert_eq!(open_store(&fs).1, Some(meta(20, 2)));
}

#[test]
fn begin_refuses_snapshots_not_newer_and_metadata_that_cannot_be_stored() {
    let fs = SimFs::new();
    let (mut store, _) = open_store(&fs);
    take(&mut store, &meta(20, 2), b"state");
    for index in [19, 20] {
        let err = store.begin(&meta(index, 2)).map(|_| ()).unwrap_err();
        assert!(matches!(err, StorageError::SnapshotRefused { .. }), "{err}");
    }
    let err = store.begin(&meta(0, 0)).map(|_| ()).unwrap_err();
    assert!(matches!(err, StorageError::SnapshotRefused { .. }), "{err}");
    let mut both = meta(30, 2);
    both.membership.learners.insert(NodeId(1));
    let err = store.begin(&both).map(|_| ()).unwrap_err();
    assert!(err.to_string().contains("membership"), "{err}");
    let mut long = meta(30, 2);
    long.membership.addresses.insert(NodeId(1), "x".repeat(300));
    assert!(store.begin(&long).is_err());
    assert_eq!(files(&fs).len(), 1, "refusals leave no file behind");
    assert_eq!(store.current(), Some(&meta(20, 2)));
}

#[test]
fn an_unfinished_writer_leaves_nothing_behind() {
    let fs = SimFs::new();
    let (mut store, _) = open_store(&fs);
    take(&mut store, &meta(10, 1), b"old");
    let mut writer = store.begin(&meta(20, 2)).unwrap();
    writer.write_all(&data(200_000, 4)).unwrap();
    writer.flush().unwrap();
    drop(writer);
    assert_eq!(files(&fs), vec![format!("snapshot-{:020}-{:020}.snap", 10, 1)]);
    assert_eq!(store.current(), Some(&meta(10, 1)));
    assert_eq!(read_back(&store), b"old");
}

#[test]
fn a_failed_write_fails_the_snapshot_and_keeps_the_current_one() {
    let fs = SimFs::new();
    let (mut store, _) = open_store(&fs);
    take(&mut store, &meta(10, 1), b"old");
    fs.set_capacity_bytes(Some(fs.contents(&snapshot_path(10, 1)).unwrap().len() as u64 + 100_000));
    let mut writer = store.begin(&meta(20, 2)).unwrap();
    let err = writer.write_all(&data(300_000, 4)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::StorageFull);
    assert!(writer.write_all(b"more").is_err(), "a failed writer stays failed");
    let err = writer.finish().unwrap_err();
    // Not fatal, unlike a log write cut short: nothing of the snapshot is
    // kept, and the node goes on with the one it has.
    assert!(matches!(err, StorageError::OutOfSpace { .. }), "{err}");
    fs.set_capacity_bytes(None);
    assert_eq!(files(&fs), vec![format!("snapshot-{:020}-{:020}.snap", 10, 1)]);
    // The store goes on.
    take(&mut store, &meta(20, 2), b"new");
    assert_eq!(read_back(&store), b"new");
}

#[test]
fn a_failed_directory_sync_while_installing_stops_the_store() {
    let fs = SimFs::new();
    let (mut store, _) = open_store(&fs);
    take(&mut store, &meta(10, 1), b"old");
    let mut writer = store.begin(&meta(20, 2)).unwrap();
    writer.write_all(b"new").unwrap();
    writer.flush().unwrap();
    // Four steps pass (the trailer's two writes, the file's fsync, the
    // rename); the directory's fsync fails.
    fs.cut_power_after(Some(4));
    let err = writer.finish().unwrap_err();
    assert!(matches!(err, StorageError::SyncFailed { .. }), "{err}");
    fs.cut_power_after(None);
    assert_eq!(store.current(), Some(&meta(10, 1)), "not current until the directory is synced");
    let poisoned = store.begin(&meta(30, 3)).map(|_| ()).unwrap_err();
    assert!(matches!(poisoned, StorageError::Poisoned { .. }), "{poisoned}");
    assert_eq!(read_back(&store), b"old", "reads go on");
    drop(store);
    // Reopened, the store holds one of the two, whole.
    fs.crash(&mut Rng::new(1));
    let (store, current) = open_store(&fs);
    assert!(current == Some(meta(10, 1)) || current == Some(meta(20, 2)), "{current:?}");
    store.check().unwrap();
}

// ------------------------------------------------------------- open checks

#[test]
fn every_prefix_and_every_flipped_byte_of_a_snapshot_file_is_a_typed_error_at_open() {
    let image = snapshot_image(42, 3, &data(300, 5));
    let path = snapshot_path(42, 3);
    for cut in 0..image.len() {
        let fs = SimFs::new();
        fs.write_durable(&path, &image[..cut]);
        expect_corrupt(&fs, &path, &format!("prefix of {cut} bytes"));
        assert_eq!(fs.contents(&path).map(|c| c.len()), Some(cut), "refusing changed nothing");
    }
    for offset in 0..image.len() {
        for mask in [0x01, 0x80] {
            let fs = SimFs::new();
            fs.write_durable(&path, &image);
            assert!(fs.flip_bits(&path, offset as u64, mask));
            expect_corrupt(&fs, &path, &format!("flip of {mask:#04x} at byte {offset}"));
        }
    }
    // And a byte too many.
    let fs = SimFs::new();
    let mut long = image.clone();
    long.push(0);
    fs.write_durable(&path, &long);
    expect_corrupt(&fs, &path, "one byte appended");
}

#[test]
fn a_corrupt_newest_snapshot_is_refused_even_with_an_older_one_intact() {
    let fs = SimFs::new();
    fs.write_durable(&snapshot_path(10, 1), &snapshot_image(10, 1, b"older"));
    let mut newest = snapshot_image(20, 2, b"newest");
    let last = newest.len() - 1;
    newest[last] ^= 0x10;
    fs.write_durable(&snapshot_path(20, 2), &newest);
    expect_corrupt(&fs, &snapshot_path(20, 2), "damaged newest");
    assert_eq!(files(&fs).len(), 2, "nothing was removed");
    let err = SnapshotStore::open_with(fs.clone(), snap_dir(), SnapshotOptions::default()).unwrap_err();
    assert!(err.to_string().contains("restore"), "{err}");
}

#[test]
fn a_snapshot_file_named_for_another_snapshot_is_corrupt() {
    let fs = SimFs::new();
    fs.write_durable(&snapshot_path(11, 1), &snapshot_image(10, 1, b"state"));
    match SnapshotStore::open_with(fs.clone(), snap_dir(), SnapshotOptions::default()) {
        Err(StorageError::SnapshotCorrupt { offset: 16, .. }) => {}
        other => panic!("expected SnapshotCorrupt at 16, got {other:?}"),
    }
}

#[test]
fn open_keeps_the_newest_snapshot_and_removes_older_ones_and_temporaries() {
    let fs = SimFs::new();
    fs.write_durable(&snapshot_path(10, 1), &snapshot_image(10, 1, b"ten"));
    fs.write_durable(&snapshot_path(30, 2), &snapshot_image(30, 2, b"thirty"));
    fs.write_durable(&snapshot_path(20, 2), b"an older file is not even read");
    let temp = snap_dir().join(format!("snapshot-{:020}-{:020}.snap.tmp", 40, 2));
    let partial = snap_dir().join(format!("snapshot-{:020}-{:020}.snap.recv", 50, 3));
    fs.write_durable(&temp, b"half taken");
    fs.write_durable(&partial, b"half received");
    let other = snap_dir().join("notes.txt");
    fs.write_durable(&other, b"not ours");
    let (store, current) = open_store(&fs);
    assert_eq!(current, Some(meta(30, 2)));
    assert_eq!(read_back(&store), b"thirty");
    assert_eq!(files(&fs), vec!["notes.txt".to_string(), format!("snapshot-{:020}-{:020}.snap", 30, 2)]);
    assert_eq!(store.receiving(), None);
}

#[test]
fn a_second_store_on_the_same_directory_is_refused() {
    let fs = SimFs::new();
    let (store, _) = open_store(&fs);
    let err = SnapshotStore::open_with(fs.clone(), snap_dir(), SnapshotOptions::default()).unwrap_err();
    assert!(matches!(err, StorageError::Locked { .. }), "{err}");
    drop(store);
    open_store(&fs);
}

#[test]
fn options_below_the_smallest_file_are_refused() {
    let options = SnapshotOptions { receive_bytes_max: 47 };
    let err = SnapshotStore::open_with(SimFs::new(), snap_dir(), options).unwrap_err();
    assert!(matches!(err, StorageError::InvalidOptions { .. }), "{err}");
}

// ------------------------------------------------------------ the reader

#[test]
fn the_reader_notices_a_file_that_changed_and_never_reads_past_the_data() {
    let fs = SimFs::new();
    let (mut store, _) = open_store(&fs);
    let bytes = data(10_000, 6);
    take(&mut store, &meta(10, 1), &bytes);
    let path = snapshot_path(10, 1);
    let data_start = store.file_len().unwrap() - 12 - bytes.len() as u64;

    // A flipped data byte: every byte still comes back, then the end fails.
    assert!(fs.flip_bits(&path, data_start + 5000, 0x20));
    let mut out = Vec::new();
    let err = store.reader().unwrap().read_to_end(&mut out).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
    assert!(matches!(store.check(), Err(StorageError::SnapshotCorrupt { .. })));
    assert!(fs.flip_bits(&path, data_start + 5000, 0x20));
    store.check().unwrap();

    // A file cut short: an error, not a panic and not a short success.
    let image = fs.contents(&path).unwrap();
    for cut in [0, 10, data_start as usize + 100, image.len() - 5] {
        fs.write_durable(&path, &image[..cut]);
        let mut out = Vec::new();
        let result = store.reader().unwrap().read_to_end(&mut out);
        assert!(result.is_err(), "cut at {cut} read {} bytes", out.len());
        assert!(out.len() <= bytes.len());
    }
    // A file grown at the end.
    let mut long = image.clone();
    long.extend_from_slice(&[0; 100]);
    fs.write_durable(&path, &long);
    let mut out = Vec::new();
    assert!(store.reader().unwrap().read_to_end(&mut out).is_err());
    assert_eq!(out.len(), bytes.len(), "never past the data");
}

// --------------------------------------------------------------- transfer

/// Sends `from`'s current snapshot to `to` in chunks of `chunk_bytes`.
pub(super) fn transfer<F: Fs, G: Fs>(
    from: &SnapshotStore<F>,
    to: &mut SnapshotStore<G>,
    chunk_bytes: usize,
) -> Result<SnapshotMeta, StorageError> {
    let meta = from.current().expect("a snapshot to send").clone();
    let file_len = from.file_len().unwrap();
    let mut offset = 0;
    while offset < file_len {
        let chunk = from.read_chunk(offset, chunk_bytes)?;
        assert!(!chunk.is_empty() && chunk.len() <= chunk_bytes);
        offset = to.receive_chunk(meta.index, meta.term, offset, &chunk)?;
        assert_eq!(to.receiving().map(|r| r.received_bytes), Some(offset));
    }
    to.finish_receive(meta.index, meta.term)
}

#[test]
fn a_snapshot_moves_between_stores_in_chunks_of_any_size() {
    for chunk_bytes in [1, 7, 4096] {
        let (a, b) = (SimFs::new(), SimFs::new());
        let (mut source, _) = open_store(&a);
        let bytes = data(20_000, chunk_bytes as u64);
        take(&mut source, &meta(50, 4), &bytes);
        let (mut target, _) = open_store(&b);
        take(&mut target, &meta(10, 1), b"older");
        assert_eq!(transfer(&source, &mut target, chunk_bytes).unwrap(), meta(50, 4));
        assert_eq!(target.current(), Some(&meta(50, 4)));
        assert_eq!(target.receiving(), None);
        assert!(read_back(&target) == bytes, "chunks of {chunk_bytes}");
        assert_eq!(files(&b), vec![format!("snapshot-{:020}-{:020}.snap", 50, 4)]);
        drop(target);
        let (target, current) = open_store(&b);
        assert_eq!(current, Some(meta(50, 4)));
        assert!(read_back(&target) == bytes);
    }
}

#[test]
fn read_chunk_ends_with_an_empty_chunk_and_refuses_offsets_past_the_end() {
    let fs = SimFs::new();
    let (mut store, _) = open_store(&fs);
    take(&mut store, &meta(5, 1), &data(100, 1));
    let len = store.file_len().unwrap();
    let image = fs.contents(&snapshot_path(5, 1)).unwrap();
    assert_eq!(store.read_chunk(0, usize::MAX).unwrap(), image);
    assert_eq!(store.read_chunk(len - 3, 100).unwrap(), image[image.len() - 3..]);
    assert!(store.read_chunk(len, 100).unwrap().is_empty());
    match store.read_chunk(len + 1, 100) {
        Err(StorageError::ChunkOffset { offset, expected }) => assert_eq!((offset, expected), (len + 1, len)),
        other => panic!("expected ChunkOffset, got {other:?}"),
    }
}

#[test]
fn chunks_out_of_order_are_refused_with_the_offset_to_resume_from() {
    let image = snapshot_image(50, 4, &data(1000, 7));
    let fs = SimFs::new();
    let (mut store, _) = open_store(&fs);
    let (index, term) = (LogIndex(50), Term(4));
    let offset_error = |result: Result<u64, StorageError>| match result {
        Err(StorageError::ChunkOffset { offset, expected }) => (offset, expected),
        other => panic!("expected ChunkOffset, got {other:?}"),
    };
    // Nothing received yet: only offset 0 starts a receive.
    assert_eq!(offset_error(store.receive_chunk(index, term, 100, &image[100..200])), (100, 0));
    assert_eq!(store.receive_chunk(index, term, 0, &image[..100]).unwrap(), 100);
    assert_eq!(offset_error(store.receive_chunk(index, term, 150, &image[150..200])), (150, 100));
    assert_eq!(offset_error(store.receive_chunk(index, term, 50, &image[50..100])), (50, 100));
    // Another snapshot's chunk does not disturb this receive.
    assert_eq!(offset_error(store.receive_chunk(LogIndex(60), term, 100, &image[100..200])), (100, 0));
    assert_eq!(
        store.receiving(),
        Some(ReceiveProgress { index, term, received_bytes: 100 }),
        "the refused chunks changed nothing"
    );
    // Resuming where the store said.
    assert_eq!(store.receive_chunk(index, term, 100, &image[100..]).unwrap(), image.len() as u64);
    // Finishing another snapshot is refused; this one is installed.
    assert!(matches!(store.finish_receive(LogIndex(60), term), Err(StorageError::SnapshotRefused { .. })));
    assert_eq!(store.finish_receive(index, term).unwrap(), meta(50, 4));
    assert_eq!(read_back(&store), data(1000, 7));
    assert!(matches!(store.finish_receive(index, term), Err(StorageError::SnapshotRefused { .. })));
}

#[test]
fn a_chunk_at_offset_zero_starts_over() {
    let image = snapshot_image(50, 4, &data(1000, 7));
    let fs = SimFs::new();
    let (mut store, _) = open_store(&fs);
    let (index, term) = (LogIndex(50), Term(4));
    store.receive_chunk(index, term, 0, &[0xff; 300]).unwrap();
    store.receive_chunk(index, term, 0, &image[..10]).unwrap();
    store.receive_chunk(index, term, 10, &image[10..]).unwrap();
    assert_eq!(store.finish_receive(index, term).unwrap(), meta(50, 4));
}

#[test]
fn a_received_file_that_does_not_check_out_is_refused_and_discarded() {
    let image = snapshot_image(50, 4, &data(1000, 7));
    let (index, term) = (LogIndex(50), Term(4));
    let fs = SimFs::new();
    let (mut store, _) = open_store(&fs);
    take(&mut store, &meta(10, 1), b"current");
    let cases: Vec<(&str, LogIndex, Term, Vec<u8>)> = vec![
        ("a flipped byte", index, term, {
            let mut bad = image.clone();
            bad[500] ^= 1;
            bad
        }),
        ("a file cut short", index, term, image[..image.len() - 1].to_vec()),
        ("another snapshot's file", LogIndex(51), term, image.clone()),
        ("another term's file", index, Term(5), image.clone()),
        ("garbage", index, term, vec![7; 60]),
    ];
    for (what, index, term, bytes) in cases {
        store.receive_chunk(index, term, 0, &bytes).unwrap();
        match store.finish_receive(index, term) {
            Err(StorageError::SnapshotRefused { index: i, term: t, reason }) => {
                assert_eq!((i, t), (index, term), "{what}: {reason}");
            }
            other => panic!("{what}: expected SnapshotRefused, got {other:?}"),
        }
        assert_eq!(store.receiving(), None, "{what}");
        assert_eq!(files(&fs), vec![format!("snapshot-{:020}-{:020}.snap", 10, 1)], "{what}");
        assert_eq!(store.current(), Some(&meta(10, 1)), "{what}");
    }
}

#[test]
fn a_receive_past_the_limit_is_refused_and_discarded() {
    let image = snapshot_image(50, 4, &data(2000, 7));
    let fs = SimFs::new();
    let options = SnapshotOptions { receive_bytes_max: 1500 };
    let (mut store, _) = SnapshotStore::open_with(fs.clone(), snap_dir(), options).unwrap();
    let (index, term) = (LogIndex(50), Term(4));
    let mut offset = 0;
    let err = loop {
        match store.receive_chunk(index, term, offset, &image[offset as usize..offset as usize + 400]) {
            Ok(received) => offset = received,
            Err(e) => break e,
        }
    };
    assert!(err.to_string().contains("receive_bytes_max"), "{err}");
    match err {
        StorageError::SnapshotTooLarge { len_bytes, max_bytes, .. } => {
            assert_eq!((len_bytes, max_bytes), (1600, 1500));
        }
        other => panic!("expected SnapshotTooLarge, got {other}"),
    }
    assert_eq!(store.receiving(), None);
    assert!(files(&fs).is_empty(), "{:?}", files(&fs));
}

#[test]
fn an_interrupted_receive_starts_over_cleanly_after_reopening() {
    let image = snapshot_image(50, 4, &data(3000, 8));
    let (index, term) = (LogIndex(50), Term(4));
    let fs = SimFs::new();
    let (mut store, _) = open_store(&fs);
    store.receive_chunk(index, term, 0, &image[..1000]).unwrap();
    drop(store);
    fs.crash(&mut Rng::new(4));
    let (mut store, current) = open_store(&fs);
    assert_eq!((current, store.receiving()), (None, None));
    assert!(files(&fs).is_empty(), "the partial file is gone: {:?}", files(&fs));
    match store.receive_chunk(index, term, 1000, &image[1000..2000]) {
        Err(StorageError::ChunkOffset { expected: 0, .. }) => {}
        other => panic!("expected a restart from 0, got {other:?}"),
    }
    store.receive_chunk(index, term, 0, &image[..2000]).unwrap();
    store.receive_chunk(index, term, 2000, &image[2000..]).unwrap();
    assert_eq!(store.finish_receive(index, term).unwrap(), meta(50, 4));
    assert!(read_back(&store) == data(3000, 8));
}

#[test]
fn a_receive_of_a_new_snapshot_discards_an_unfinished_older_one() {
    let older = snapshot_image(50, 4, &data(3000, 8));
    let newer = snapshot_image(60, 5, &data(100, 9));
    let fs = SimFs::new();
    let (mut store, _) = open_store(&fs);
    store.receive_chunk(LogIndex(50), Term(4), 0, &older[..1000]).unwrap();
    store.receive_chunk(LogIndex(60), Term(5), 0, &newer).unwrap();
    assert_eq!(files(&fs), vec![format!("snapshot-{:020}-{:020}.snap.recv", 60, 5)]);
    assert!(matches!(
        store.receive_chunk(LogIndex(50), Term(4), 1000, &older[1000..]),
        Err(StorageError::ChunkOffset { expected: 0, .. })
    ));
    assert_eq!(store.finish_receive(LogIndex(60), Term(5)).unwrap(), meta(60, 5));
    store.abort_receive();
    assert_eq!(files(&fs), vec![format!("snapshot-{:020}-{:020}.snap", 60, 5)]);
}

#[test]
fn a_received_snapshot_not_newer_than_the_current_one_is_checked_and_discarded() {
    let fs = SimFs::new();
    let (mut store, _) = open_store(&fs);
    take(&mut store, &meta(60, 5), b"current");
    let image = snapshot_image(50, 4, b"older");
    store.receive_chunk(LogIndex(50), Term(4), 0, &image).unwrap();
    assert_eq!(store.finish_receive(LogIndex(50), Term(4)).unwrap(), meta(50, 4));
    assert_eq!(store.current(), Some(&meta(60, 5)));
    assert_eq!(read_back(&store), b"current");
    assert_eq!(files(&fs), vec![format!("snapshot-{:020}-{:020}.snap", 60, 5)]);
}

#[test]
fn remove_all_but_current_spares_the_receive_in_progress() {
    let fs = SimFs::new();
    let (mut store, _) = open_store(&fs);
    take(&mut store, &meta(10, 1), b"current");
    store.receive_chunk(LogIndex(20), Term(2), 0, b"partial").unwrap();
    fs.write_durable(&snapshot_path(5, 1), b"stale");
    store.remove_all_but_current().unwrap();
    assert_eq!(
        files(&fs),
        vec![
            format!("snapshot-{:020}-{:020}.snap", 10, 1),
            format!("snapshot-{:020}-{:020}.snap.recv", 20, 2)
        ]
    );
}

/// A step of a transfer over an unreliable network.
#[derive(Clone, Debug)]
enum Step {
    /// Send the next chunk, of this many bytes.
    Next(usize),
    /// Send a chunk at a wrong offset (a duplicate or a skip).
    Misplaced(u64, usize),
    /// The sender starts again from 0.
    Restart,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (1usize..3000).prop_map(Step::Next),
        1 => (any::<u64>(), 1usize..500).prop_map(|(o, n)| Step::Misplaced(o, n)),
        1 => Just(Step::Restart),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever the chunk sizes, duplicates, skips and restarts, the
    /// receiver accepts exactly the bytes in order and installs exactly the
    /// sender's snapshot.
    #[test]
    fn any_transfer_schedule_installs_exactly_the_senders_snapshot(
        data_len in 0usize..20_000,
        seed in any::<u64>(),
        steps in proptest::collection::vec(step(), 1..200),
    ) {
        let (a, b) = (SimFs::new(), SimFs::new());
        let (mut source, _) = open_store(&a);
        let bytes = data(data_len, seed);
        take(&mut source, &meta(50, 4), &bytes);
        let (mut target, _) = open_store(&b);
        let (index, term) = (LogIndex(50), Term(4));
        let file_len = source.file_len().unwrap();
        let mut offset = 0u64;
        for step in steps.iter().cycle().take(10_000) {
            if offset == file_len {
                break;
            }
            match step {
                Step::Next(n) => {
                    let chunk = source.read_chunk(offset, *n).unwrap();
                    offset = target.receive_chunk(index, term, offset, &chunk).unwrap();
                }
                Step::Misplaced(at, n) => {
                    let at = at % (file_len + 1);
                    if at == offset || at == 0 {
                        continue;
                    }
                    let chunk = source.read_chunk(at, *n).unwrap();
                    match target.receive_chunk(index, term, at, &chunk) {
                        Err(StorageError::ChunkOffset { expected, .. }) => prop_assert_eq!(expected, offset),
                        other => prop_assert!(false, "misplaced chunk: {:?}", other),
                    }
                }
                Step::Restart => {
                    let chunk = source.read_chunk(0, 100).unwrap();
                    offset = target.receive_chunk(index, term, 0, &chunk).unwrap();
                }
            }
        }
        // Finish whatever the schedule left.
        while offset < file_len {
            let chunk = source.read_chunk(offset, 4096).unwrap();
            offset = target.receive_chunk(index, term, offset, &chunk).unwrap();
        }
        prop_assert_eq!(target.finish_receive(index, term).unwrap(), meta(50, 4));
        prop_assert!(read_back(&target) == bytes);
    }
}
