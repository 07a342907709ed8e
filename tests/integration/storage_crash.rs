//! The log on the real disk, after crashes and bit rot made by editing its
//! files: torn tails are cut to exactly the whole records, damage anywhere
//! else is `Corruption` naming the file and the byte.
//!
//! Offsets are computed from the layout documented in `oar::storage`: a
//! 40-byte segment header, a hard state record (9 + 24 bytes), then entry
//! records of 9 + 17 + data bytes.

use std::fs;
use std::path::{Path, PathBuf};

use oar::storage::{RecoveredLog, StorageError, Wal, WalOptions, RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES};
use oar::{Bytes, Entry, EntryKind, HardState, LogIndex, NodeId, Term};

const HARD_STATE_RECORD_BYTES: usize = RECORD_HEADER_BYTES + 24;
const FIRST_RECORD_OFFSET: usize = SEGMENT_HEADER_BYTES + HARD_STATE_RECORD_BYTES;

fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
    Entry {
        index: LogIndex(index),
        term: Term(term),
        kind: if data.is_empty() { EntryKind::Blank } else { EntryKind::Command },
        data: Bytes::copy_from_slice(data),
    }
}

fn record_bytes(e: &Entry) -> usize {
    RECORD_HEADER_BYTES + 17 + e.data.len()
}

fn options(segment_size_bytes: u64) -> WalOptions {
    WalOptions { segment_size_bytes }
}

fn open(dir: &Path, segment_size_bytes: u64) -> Result<(Wal, RecoveredLog), StorageError> {
    Wal::open(dir, options(segment_size_bytes))
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    paths.sort();
    paths
}

fn first_index_of(path: &Path) -> u64 {
    path.file_stem().unwrap().to_str().unwrap().parse().unwrap()
}

fn flip(path: &Path, offset: usize) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset] ^= 0x04;
    fs::write(path, bytes).unwrap();
}

fn expect_corruption(result: Result<(Wal, RecoveredLog), StorageError>, path: &Path, offset: usize) {
    match result {
        Err(StorageError::Corruption { path: p, offset: o, reason }) => {
            assert_eq!((p.as_path(), o), (path, offset as u64), "reason: {reason}");
        }
        Err(other) => panic!("expected Corruption at {}:{offset}, got {other}", path.display()),
        Ok((_, recovered)) => panic!(
            "expected Corruption at {}:{offset}, recovered {} entries",
            path.display(),
            recovered.entries.len()
        ),
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Cut {
    /// The rest of the file reads as zeros, as preallocated space does.
    Zeroed,
    /// The file ends at the cut.
    Shortened,
    /// The rest of the record being written holds junk (a torn sector).
    Garbage,
}

#[test]
fn a_crash_at_every_byte_of_the_final_records_keeps_exactly_the_whole_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let base: Vec<Entry> = (1..=4).map(|i| entry(i, 1, format!("base {i}").as_bytes())).collect();
    let finals = vec![entry(5, 2, b""), entry(6, 2, b"seven b"), entry(7, 2, &[0xee; 30])];
    {
        let (mut wal, _) = open(dir, 4096).unwrap();
        wal.append(&base).unwrap();
        wal.sync().unwrap();
        wal.append(&finals).unwrap();
        wal.sync().unwrap();
    }
    let path = dir.join("00000000000000000001.wal");
    let image = fs::read(&path).unwrap();
    let start = FIRST_RECORD_OFFSET + base.iter().map(record_bytes).sum::<usize>();
    let ends: Vec<usize> = finals
        .iter()
        .scan(start, |end, e| {
            *end += record_bytes(e);
            Some(*end)
        })
        .collect();
    let end = *ends.last().unwrap();
    assert!(image[end..].iter().all(|&b| b == 0), "the layout in this test is out of date");
    assert!(image[end - 1] != 0);

    for cut in start..=end {
        for how in [Cut::Zeroed, Cut::Shortened, Cut::Garbage] {
            // Zeroing bytes that were zero already changes nothing: a record
            // ending in zeros (a blank entry's kind byte) is still whole.
            let effective = match how {
                Cut::Zeroed => cut + image[cut..].iter().take_while(|&&b| b == 0).count(),
                _ => cut,
            };
            let whole = ends.iter().filter(|&&e| e <= effective).count();
            let at_boundary = effective == start || effective >= end || ends.contains(&effective);
            let mut damaged = image[..cut].to_vec();
            let record_end = ends.iter().copied().find(|&e| e > cut).unwrap_or(cut);
            match how {
                Cut::Zeroed => damaged.resize(image.len(), 0),
                Cut::Shortened => {}
                Cut::Garbage => {
                    damaged.extend((cut..record_end).map(|i| (i as u8).wrapping_mul(151) | 1));
                    damaged.resize(image.len(), 0);
                }
            }
            fs::write(&path, &damaged).unwrap();
            let context = format!("cut at byte {cut} ({how:?})");

            let (mut wal, recovered) = open(dir, 4096).unwrap_or_else(|e| panic!("{context}: {e}"));
            let expected: Vec<Entry> = base.iter().chain(&finals[..whole]).cloned().collect();
            assert_eq!(recovered.entries, expected, "{context}");
            let torn = if how == Cut::Garbage { record_end > cut } else { !at_boundary };
            assert_eq!(recovered.torn_tail.is_some(), torn, "{context}: {:?}", recovered.torn_tail);
            if let Some(tail) = &recovered.torn_tail {
                let last_whole = [start].iter().chain(&ends).rfind(|&&e| e <= effective).copied();
                assert_eq!(Some(tail.offset), last_whole.map(|e| e as u64), "{context}");
            }
            if how != Cut::Zeroed {
                continue;
            }
            // The log goes on from exactly there, and says so after reopening.
            let next = entry(expected.len() as u64 + 1, 3, b"after the crash");
            wal.append(std::slice::from_ref(&next)).unwrap();
            wal.sync().unwrap();
            drop(wal);
            let (_, reopened) = open(dir, 4096).unwrap();
            assert_eq!(reopened.entries.last(), Some(&next), "{context}");
            assert_eq!(reopened.entries.len(), expected.len() + 1, "{context}");
            assert!(reopened.torn_tail.is_none(), "{context}");
        }
    }
}

#[test]
fn a_bit_flip_in_the_last_record_is_recovered_as_a_torn_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let all: Vec<Entry> = (1..=5).map(|i| entry(i, 1, b"0123456789")).collect();
    {
        let (mut wal, _) = open(dir, 4096).unwrap();
        wal.append(&all).unwrap();
        wal.sync().unwrap();
    }
    let path = dir.join("00000000000000000001.wal");
    let last = FIRST_RECORD_OFFSET + 4 * record_bytes(&all[0]);
    flip(&path, last + 20);
    let (_, recovered) = open(dir, 4096).unwrap();
    assert_eq!(recovered.entries, all[..4].to_vec());
    let tail = recovered.torn_tail.expect("reported");
    assert_eq!((tail.path, tail.offset), (path, last as u64));
}

#[test]
fn a_bit_flip_in_an_earlier_record_of_the_last_segment_is_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let all: Vec<Entry> = (1..=5).map(|i| entry(i, 1, b"0123456789")).collect();
    {
        let (mut wal, _) = open(dir, 4096).unwrap();
        wal.append(&all).unwrap();
        wal.sync().unwrap();
    }
    let path = dir.join("00000000000000000001.wal");
    let second = FIRST_RECORD_OFFSET + record_bytes(&all[0]);
    flip(&path, second + 30);
    expect_corruption(open(dir, 4096), &path, second);
    // Refusing changed nothing: the same answer again.
    expect_corruption(open(dir, 4096), &path, second);
}

#[test]
fn a_bit_flip_in_an_earlier_segment_is_corruption_even_in_its_last_record() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let all: Vec<Entry> = (1..=40).map(|i| entry(i, 1, b"0123456789abcdef")).collect();
    {
        let (mut wal, _) = open(dir, 512).unwrap();
        wal.append(&all).unwrap();
        wal.sync().unwrap();
    }
    let paths = segments(dir);
    assert!(paths.len() >= 3, "{paths:?}");
    let size = record_bytes(&all[0]);
    let in_first = first_index_of(&paths[1]) as usize - 1;

    let record = FIRST_RECORD_OFFSET + size;
    flip(&paths[0], record + 3);
    expect_corruption(open(dir, 512), &paths[0], record);
    flip(&paths[0], record + 3);

    let last_of_first = FIRST_RECORD_OFFSET + (in_first - 1) * size;
    flip(&paths[0], last_of_first + size - 1);
    expect_corruption(open(dir, 512), &paths[0], last_of_first);
    flip(&paths[0], last_of_first + size - 1);

    flip(&paths[1], 20);
    expect_corruption(open(dir, 512), &paths[1], 0);
    flip(&paths[1], 20);

    let (_, recovered) = open(dir, 512).unwrap();
    assert_eq!(recovered.entries, all, "undoing the flips restores the log");
}

#[test]
fn junk_after_the_records_of_an_earlier_segment_is_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let all: Vec<Entry> = (1..=40).map(|i| entry(i, 1, b"0123456789abcdef")).collect();
    {
        let (mut wal, _) = open(dir, 512).unwrap();
        wal.append(&all).unwrap();
        wal.sync().unwrap();
    }
    let paths = segments(dir);
    let in_first = first_index_of(&paths[1]) as usize - 1;
    let end_of_first = FIRST_RECORD_OFFSET + in_first * record_bytes(&all[0]);
    flip(&paths[0], end_of_first + 2);
    expect_corruption(open(dir, 512), &paths[0], end_of_first);
}

#[test]
fn preallocated_zeros_are_the_clean_end_of_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let all: Vec<Entry> = (1..=3).map(|i| entry(i, 1, b"abc")).collect();
    {
        let (mut wal, _) = open(dir, 8192).unwrap();
        wal.append(&all).unwrap();
        wal.sync().unwrap();
    }
    let path = dir.join("00000000000000000001.wal");
    let image = fs::read(&path).unwrap();
    assert_eq!(image.len(), 8192, "segments are preallocated");
    let end = FIRST_RECORD_OFFSET + 3 * record_bytes(&all[0]);
    assert!(image[end..].iter().all(|&b| b == 0));
    let (_, recovered) = open(dir, 8192).unwrap();
    assert_eq!(recovered.entries, all);
    assert!(recovered.torn_tail.is_none());
}

#[test]
fn rotation_truncation_and_compaction_survive_reopen_on_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let hs = HardState { term: Term(2), vote: Some(NodeId(3)), commit: LogIndex(5) };
    let mut model: Vec<Entry> = (1..=30).map(|i| entry(i, 1, b"first term data")).collect();
    {
        let (mut wal, _) = open(dir, 512).unwrap();
        wal.write(&model, Some(hs)).unwrap();
        wal.sync().unwrap();
    }
    assert!(segments(dir).len() >= 4);
    {
        let (mut wal, recovered) = open(dir, 512).unwrap();
        assert_eq!((recovered.entries.clone(), recovered.hard_state), (model.clone(), hs));
        // A conflicting suffix across several segments.
        let replacement: Vec<Entry> = (8..=12).map(|i| entry(i, 2, b"second")).collect();
        wal.append(&replacement).unwrap();
        wal.sync().unwrap();
        model.truncate(7);
        model.extend(replacement);
    }
    let first = {
        let (mut wal, recovered) = open(dir, 512).unwrap();
        assert_eq!(recovered.entries, model);
        assert_eq!(recovered.hard_state, hs);
        let more: Vec<Entry> = (13..=40).map(|i| entry(i, 2, b"second term data")).collect();
        wal.append(&more).unwrap();
        wal.sync().unwrap();
        model.extend(more);
        let first = wal.compact_prefix(LogIndex(20)).unwrap();
        assert!(first > LogIndex(1));
        assert_eq!(wal.read(first..LogIndex(41)).unwrap(), model[(first.0 - 1) as usize..].to_vec());
        first
    };
    let (_, recovered) = open(dir, 512).unwrap();
    assert_eq!(recovered.first_index, first);
    assert_eq!(recovered.prev_term, model[(first.0 - 2) as usize].term);
    assert_eq!(recovered.entries, model[(first.0 - 1) as usize..].to_vec());
    assert_eq!(recovered.hard_state, hs);
}

#[test]
fn a_second_opener_of_a_directory_gets_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (wal, _) = open(dir, 4096).unwrap();
    let err = open(dir, 4096).map(|_| ()).unwrap_err();
    assert!(matches!(&err, StorageError::Locked { dir: d } if d == dir), "{err}");
    assert!(err.to_string().contains(&dir.display().to_string()), "{err}");
    drop(wal);
    open(dir, 4096).expect("the lock is released with the log");
}
