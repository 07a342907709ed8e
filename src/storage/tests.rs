//! Unit tests of the storage layer: the record format, and the log on the
//! simulated file system. Crash and corruption scenarios on the real disk
//! live in `tests/storage_*.rs`.

use std::path::PathBuf;

use super::format::{
    decode_header, decode_record, encode_entry, encode_hard_state, encode_header, encode_truncate,
    find_record_from, RecordError, RecordView, SegmentHeader,
};
use super::*;
use crate::rng::Rng;
use crate::types::{Bytes, Entry, EntryKind, HardState, LogIndex, NodeId, Term};

fn entry(index: u64, term: u64, data: &str) -> Entry {
    Entry {
        index: LogIndex(index),
        term: Term(term),
        kind: if data.is_empty() { EntryKind::Blank } else { EntryKind::Command },
        data: Bytes::copy_from_slice(data.as_bytes()),
    }
}

fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
    range.map(|i| entry(i, term, &format!("entry {i} of term {term}"))).collect()
}

fn hard_state(term: u64, vote: u64, commit: u64) -> HardState {
    HardState { term: Term(term), vote: (vote != 0).then_some(NodeId(vote)), commit: LogIndex(commit) }
}

fn dir() -> PathBuf {
    PathBuf::from("/data/n1")
}

fn small() -> WalOptions {
    WalOptions { segment_size_bytes: 512 }
}

fn open(fs: &SimFs, options: WalOptions) -> (Wal<SimFs>, RecoveredLog) {
    Wal::open_with(fs.clone(), dir(), options).expect("open")
}

fn segment_files(fs: &SimFs) -> Vec<String> {
    let mut names = fs.list(&dir()).expect("list");
    names.retain(|n| n.ends_with(".wal"));
    names.sort();
    names
}

fn all(wal: &Wal<SimFs>) -> Vec<Entry> {
    wal.read(wal.first_index()..wal.last_index().next()).expect("read")
}

// ------------------------------------------------------------------ format

#[test]
fn records_decode_to_what_was_encoded() {
    let e = entry(7, 3, "hello");
    let hs = hard_state(5, 2, 6);
    let mut buf = Vec::new();
    encode_entry(&e, &mut buf);
    let entry_len = buf.len();
    encode_hard_state(hs, &mut buf);
    encode_truncate(LogIndex(4), &mut buf);

    let (view, len) = decode_record(&buf).expect("entry");
    assert_eq!((view.to_entry(), len), (Some(e), entry_len));
    let (view, len) = decode_record(&buf[entry_len..]).expect("hard state");
    assert_eq!((view, len), (RecordView::HardState(hs), RECORD_HEADER_BYTES + 24));
    let (view, _) = decode_record(&buf[entry_len + len..]).expect("truncate");
    assert_eq!(view, RecordView::Truncate { last_kept: LogIndex(4) });
}

#[test]
fn every_prefix_and_every_bit_flip_of_a_record_is_rejected() {
    let mut buf = Vec::new();
    encode_entry(&entry(1, 1, "payload"), &mut buf);
    for cut in 0..buf.len() {
        assert!(decode_record(&buf[..cut]).is_err(), "prefix of {cut} bytes decoded");
    }
    for byte in 0..buf.len() {
        for bit in 0..8 {
            let mut flipped = buf.clone();
            flipped[byte] ^= 1 << bit;
            assert!(decode_record(&flipped).is_err(), "flip of bit {bit} in byte {byte} decoded");
        }
    }
}

#[test]
fn zeros_are_the_clean_end_and_lengths_are_bounded() {
    assert_eq!(decode_record(&[0; 64]), Err(RecordError::Zeroed));
    assert_eq!(decode_record(&[0; 3]), Err(RecordError::Zeroed));
    // A length just above the limit is refused before anything else.
    let mut huge = vec![0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1];
    huge.extend_from_slice(&[0; 32]);
    assert!(matches!(decode_record(&huge), Err(RecordError::BadLength { .. })));
    // A plausible length that runs past the end.
    let mut short = Vec::new();
    encode_entry(&entry(1, 1, "abcdefgh"), &mut short);
    short.truncate(short.len() - 1);
    assert!(matches!(decode_record(&short), Err(RecordError::Truncated { .. })));
}

#[test]
fn headers_round_trip_and_reject_damage() {
    let header = SegmentHeader { first_index: LogIndex(42), prev_term: Term(7) };
    let mut buf = Vec::new();
    encode_header(header, &mut buf);
    assert_eq!(buf.len(), SEGMENT_HEADER_BYTES);
    assert_eq!(decode_header(&buf), Ok(header));
    for byte in 0..buf.len() {
        let mut flipped = buf.clone();
        flipped[byte] ^= 0x10;
        assert!(decode_header(&flipped).is_err(), "flip in header byte {byte} accepted");
    }
    assert!(decode_header(&buf[..SEGMENT_HEADER_BYTES - 1]).is_err());
}

#[test]
fn the_scan_finds_a_record_after_garbage() {
    let mut buf = vec![0xab; 13];
    encode_hard_state(hard_state(1, 0, 0), &mut buf);
    assert_eq!(find_record_from(&buf, 0), Some(13));
    assert_eq!(find_record_from(&buf, 14), None);
}

// ------------------------------------------------------------------ the log

#[test]
fn a_new_directory_starts_empty_and_keeps_what_was_synced() {
    let fs = SimFs::new();
    let (mut wal, recovered) = open(&fs, small());
    assert_eq!(recovered.first_index, LogIndex(1));
    assert!(recovered.entries.is_empty() && recovered.torn_tail.is_none());
    assert_eq!(recovered.hard_state, HardState::default());

    wal.write(&entries(1..=3, 1), Some(hard_state(1, 1, 2))).unwrap();
    wal.sync().unwrap();
    drop(wal);
    let (wal, recovered) = open(&fs, small());
    assert_eq!(recovered.entries, entries(1..=3, 1));
    assert_eq!(recovered.hard_state, hard_state(1, 1, 2));
    assert_eq!(
        (wal.first_index(), wal.last_index(), wal.term(LogIndex(3))),
        (LogIndex(1), LogIndex(3), Some(Term(1)))
    );
}

#[test]
fn sync_is_one_fdatasync_and_none_when_clean() {
    let fs = SimFs::new();
    let (mut wal, _) = open(&fs, WalOptions { segment_size_bytes: 1 << 20 });
    // The first term raises the floor kept beside the log (one more sync);
    // writes within a term do not.
    wal.set_hard_state(hard_state(1, 0, 0)).unwrap();
    wal.sync().unwrap();
    let before = fs.sync_count();
    for batch in 0..10 {
        wal.append(&entries(batch * 3 + 1..=batch * 3 + 3, 1)).unwrap();
    }
    wal.set_hard_state(hard_state(1, 0, 30)).unwrap();
    wal.sync().unwrap();
    assert_eq!(fs.sync_count() - before, 1, "group commit: one sync for many writes");
    wal.sync().unwrap();
    assert_eq!(fs.sync_count() - before, 1, "nothing written, nothing synced");
}

#[test]
fn rotation_spreads_the_log_over_segments_that_reopen_whole() {
    let fs = SimFs::new();
    let (mut wal, _) = open(&fs, small());
    for i in 1..=40 {
        wal.write(&entries(i..=i, 1 + i / 10), Some(hard_state(1 + i / 10, 0, i - 1))).unwrap();
    }
    wal.sync().unwrap();
    let files = segment_files(&fs);
    assert!(files.len() >= 5, "expected rotation, got {files:?}");
    assert_eq!(files[0], "00000000000000000001.wal");
    let expected: Vec<Entry> = (1..=40).flat_map(|i| entries(i..=i, 1 + i / 10)).collect();
    assert_eq!(all(&wal), expected);
    assert_eq!(wal.read(LogIndex(9)..LogIndex(23)).unwrap(), expected[8..22].to_vec());
    drop(wal);
    let (wal, recovered) = open(&fs, small());
    assert_eq!(recovered.entries, expected);
    assert_eq!(recovered.hard_state, hard_state(5, 0, 39));
    assert_eq!(wal.segment_count(), files.len());
    wal.check_invariants();
}

#[test]
fn an_entry_larger_than_a_segment_gets_its_own() {
    let fs = SimFs::new();
    let (mut wal, _) = open(&fs, small());
    let big = "x".repeat(2000);
    wal.append(&[entry(1, 1, "a"), entry(2, 1, &big), entry(3, 1, "c")]).unwrap();
    wal.sync().unwrap();
    drop(wal);
    let (_, recovered) = open(&fs, small());
    assert_eq!(recovered.entries[1].data.len(), 2000);
    assert_eq!(recovered.entries.len(), 3);
}

#[test]
fn truncation_in_the_active_segment_survives_reopen() {
    let fs = SimFs::new();
    let (mut wal, _) = open(&fs, WalOptions { segment_size_bytes: 1 << 20 });
    wal.append(&entries(1..=5, 1)).unwrap();
    wal.append(&entries(3..=4, 2)).unwrap();
    wal.sync().unwrap();
    let expected: Vec<Entry> = entries(1..=2, 1).into_iter().chain(entries(3..=4, 2)).collect();
    assert_eq!(all(&wal), expected);
    drop(wal);
    let (mut wal, recovered) = open(&fs, WalOptions { segment_size_bytes: 1 << 20 });
    assert_eq!(recovered.entries, expected);
    wal.append(&entries(5..=6, 2)).unwrap();
    assert_eq!(wal.last_index(), LogIndex(6));
}

#[test]
fn truncation_across_segments_then_append_survives_reopen() {
    let fs = SimFs::new();
    let (mut wal, _) = open(&fs, small());
    wal.set_hard_state(hard_state(1, 1, 0)).unwrap();
    wal.append(&entries(1..=30, 1)).unwrap();
    wal.set_hard_state(hard_state(2, 3, 4)).unwrap();
    wal.sync().unwrap();
    let before = segment_files(&fs);
    assert!(before.len() >= 4, "{before:?}");
    // Replace everything from 6 on: several segments go.
    wal.append(&entries(6..=12, 2)).unwrap();
    wal.sync().unwrap();
    let expected: Vec<Entry> = entries(1..=5, 1).into_iter().chain(entries(6..=12, 2)).collect();
    assert_eq!(all(&wal), expected);
    assert!(segment_files(&fs).len() < before.len());
    wal.check_invariants();
    drop(wal);
    let (mut wal, recovered) = open(&fs, small());
    assert_eq!(recovered.entries, expected);
    assert_eq!(recovered.hard_state, hard_state(2, 3, 4), "the hard state survives the removed segments");
    // Truncating to exactly a segment's first index, then to nothing at all.
    let second = before[1].trim_end_matches(".wal").parse::<u64>().unwrap();
    wal.append(&entries(second..=second + 1, 3)).unwrap();
    wal.append(&entries(1..=2, 4)).unwrap();
    wal.sync().unwrap();
    drop(wal);
    let (_, recovered) = open(&fs, small());
    assert_eq!(recovered.entries, entries(1..=2, 4));
    assert_eq!(recovered.hard_state, hard_state(2, 3, 4));
}

#[test]
fn compaction_drops_whole_segments_and_keeps_the_hard_state() {
    let fs = SimFs::new();
    let (mut wal, _) = open(&fs, small());
    wal.set_hard_state(hard_state(3, 2, 0)).unwrap();
    for i in 1..=40 {
        wal.append(&entries(i..=i, 1 + i / 8)).unwrap();
    }
    wal.sync().unwrap();
    let segments = wal.segment_count();
    let first = wal.compact_prefix(LogIndex(20)).unwrap();
    assert!(first > LogIndex(1) && first <= LogIndex(20), "first index {first}");
    assert!(wal.segment_count() < segments);
    assert!(matches!(wal.read(LogIndex(1)..LogIndex(3)), Err(StorageError::OutOfRange { .. })));
    let kept = wal.read(first..LogIndex(41)).unwrap();
    assert_eq!(kept.first().map(|e| e.index), Some(first));
    // Compacting everything still leaves the segment being written.
    wal.compact_prefix(LogIndex(1000)).unwrap();
    assert!(wal.first_index() <= LogIndex(40));
    let first = wal.first_index();
    drop(wal);
    let (mut wal, recovered) = open(&fs, small());
    assert_eq!(recovered.first_index, first);
    assert_eq!(recovered.prev_term, Term(1 + (first.0 - 1) / 8));
    assert_eq!(recovered.hard_state, hard_state(3, 2, 0));
    assert_eq!(recovered.entries.last().map(|e| e.index), Some(LogIndex(40)));
    // A truncation down to the first retained index empties the log.
    wal.append(&[entry(first.0, 9, "new")]).unwrap();
    wal.sync().unwrap();
    drop(wal);
    let (_, recovered) = open(&fs, small());
    assert_eq!(recovered.entries, vec![entry(first.0, 9, "new")]);
}

#[test]
fn hard_state_only_segments_are_replaced_not_multiplied() {
    let fs = SimFs::new();
    let (mut wal, _) = open(&fs, small());
    for term in 1..=100 {
        wal.set_hard_state(hard_state(term, term % 3, 0)).unwrap();
    }
    wal.sync().unwrap();
    assert_eq!(segment_files(&fs), vec!["00000000000000000001.wal".to_string()]);
    drop(wal);
    let (_, recovered) = open(&fs, small());
    assert_eq!(recovered.hard_state, hard_state(100, 1, 0));
}

#[test]
fn a_second_opener_is_refused_with_the_directory_named() {
    let fs = SimFs::new();
    let (wal, _) = open(&fs, small());
    let err = Wal::open_with(fs.clone(), dir(), small()).unwrap_err();
    assert!(matches!(&err, StorageError::Locked { dir: d } if d == &dir()), "{err}");
    assert!(err.to_string().contains("/data/n1"), "{err}");
    drop(wal);
    open(&fs, small());
}

#[test]
fn a_failed_fsync_poisons_every_later_write() {
    let fs = SimFs::new();
    let (mut wal, _) = open(&fs, small());
    wal.append(&entries(1..=2, 1)).unwrap();
    fs.fail_next_syncs(1);
    let err = wal.sync().unwrap_err();
    assert!(matches!(err, StorageError::SyncFailed { .. }) && err.is_fatal(), "{err}");
    for result in [wal.append(&entries(3..=3, 1)), wal.sync(), wal.set_hard_state(hard_state(1, 0, 0))] {
        assert!(matches!(result, Err(StorageError::Poisoned { .. })), "{result:?}");
    }
    assert!(matches!(wal.compact_prefix(LogIndex(2)), Err(StorageError::Poisoned { .. })));
    // Reads still serve what was written.
    assert_eq!(wal.read(LogIndex(1)..LogIndex(3)).unwrap(), entries(1..=2, 1));
}

#[test]
fn a_full_disk_refuses_the_write_that_needs_a_segment_and_the_log_goes_on_once_space_is_freed() {
    let fs = SimFs::new();
    let (mut wal, _) = open(&fs, small());
    wal.append(&entries(1..=3, 1)).unwrap();
    wal.sync().unwrap();
    fs.set_capacity_bytes(Some(fs_used(&fs)));
    let mut refused = None;
    for i in 4..=40 {
        let before = (wal.last_index(), segment_files(&fs));
        match wal.write(&entries(i..=i, 1), Some(hard_state(1, 1, i - 1))) {
            Ok(()) => {}
            Err(e) => {
                assert_eq!((wal.last_index(), segment_files(&fs)), before, "nothing was written");
                refused = Some((i, e));
                break;
            }
        }
    }
    let (at, err) = refused.expect("the segment fills");
    assert!(matches!(err, StorageError::OutOfSpace { .. }), "{err}");
    assert!(!err.is_fatal() && err.to_string().contains("disk full"), "{err}");
    wal.sync().expect("the log goes on");
    assert!(wal.write(&entries(at..=at, 1), None).is_err(), "still full");
    fs.set_capacity_bytes(None);
    wal.write(&entries(at..=at + 5, 1), Some(hard_state(1, 1, at))).expect("space is back");
    wal.sync().unwrap();
    drop(wal);
    let (_, recovered) = open(&fs, small());
    assert_eq!(recovered.entries, entries(1..=at + 5, 1));
    assert!(!fs.list(&dir()).unwrap().iter().any(|n| n == SPARE_FILE), "no spare is left behind");
}

/// What the files on `fs` hold now.
fn fs_used(fs: &SimFs) -> u64 {
    fs.durable_paths().iter().filter_map(|p| fs.contents(p)).map(|c| c.len() as u64).sum()
}

#[test]
fn an_oversized_entry_is_refused_without_stopping_the_log() {
    let fs = SimFs::new();
    let (mut wal, _) = open(&fs, small());
    let huge = Entry {
        index: LogIndex(1),
        term: Term(1),
        kind: EntryKind::Command,
        data: Bytes::from(vec![0u8; MAX_ENTRY_DATA_BYTES + 1]),
    };
    assert!(matches!(wal.append(&[huge]), Err(StorageError::EntryTooLarge { .. })));
    wal.append(&entries(1..=1, 1)).unwrap();
    wal.sync().unwrap();
}

#[test]
fn leftover_temporary_segments_are_removed_on_open() {
    let fs = SimFs::new();
    drop(open(&fs, small()));
    let temp = dir().join("00000000000000000007.wal.tmp");
    fs.write_durable(&temp, b"half made");
    let (_, recovered) = open(&fs, small());
    assert!(recovered.entries.is_empty());
    assert!(fs.contents(&temp).is_none());
}

#[test]
fn a_missing_middle_segment_is_corruption_naming_the_next() {
    let fs = SimFs::new();
    let (mut wal, _) = open(&fs, small());
    wal.append(&entries(1..=30, 1)).unwrap();
    wal.sync().unwrap();
    drop(wal);
    let files = segment_files(&fs);
    fs.remove(&dir().join(&files[1])).unwrap();
    fs.sync_dir(&dir()).unwrap();
    match Wal::open_with(fs.clone(), dir(), small()) {
        Err(StorageError::Corruption { path, offset, reason }) => {
            assert_eq!((path, offset), (dir().join(&files[2]), 16), "{reason}");
        }
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn unsynced_writes_may_be_lost_but_synced_ones_never_are() {
    for seed in 0..200 {
        let fs = SimFs::new();
        let (mut wal, _) = open(&fs, small());
        wal.write(&entries(1..=6, 1), Some(hard_state(1, 1, 3))).unwrap();
        wal.sync().unwrap();
        wal.write(&entries(7..=12, 2), Some(hard_state(2, 2, 6))).unwrap();
        fs.crash(&mut Rng::new(seed));
        drop(wal);
        let (_, recovered) = open(&fs, small());
        let n = recovered.entries.len();
        assert!((6..=12).contains(&n), "seed {seed}: {n} entries");
        assert_eq!(recovered.entries[..6], entries(1..=6, 1)[..], "seed {seed}");
        let expected_hs =
            if n == 12 { [hard_state(1, 1, 3), hard_state(2, 2, 6)] } else { [hard_state(1, 1, 3); 2] };
        assert!(expected_hs.contains(&recovered.hard_state), "seed {seed}: hard state ahead of its entries");
    }
}

#[test]
fn sim_fs_is_deterministic() {
    let run = |seed| {
        let fs = SimFs::new();
        let (mut wal, _) = open(&fs, small());
        wal.append(&entries(1..=20, 1)).unwrap();
        fs.crash(&mut Rng::new(seed));
        drop(wal);
        segment_files(&fs).iter().map(|n| fs.contents(&dir().join(n))).collect::<Vec<_>>()
    };
    for seed in 0..20 {
        assert_eq!(run(seed), run(seed));
    }
}

#[test]
fn stale_handles_fail_after_a_crash() {
    let fs = SimFs::new();
    let (mut wal, _) = open(&fs, small());
    fs.crash(&mut Rng::new(1));
    assert!(wal.append(&entries(1..=1, 1)).is_err());
}

// Larger groups of tests, in `tests/`.
mod identity;
mod node;
mod reset;
mod snapshot;
