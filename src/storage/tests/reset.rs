//! [`Wal::reset`], logs that start far above index 1, and a crash at every
//! step of a reset.

use super::*;

/// A synced log of entries 1..=30 over several segments, with a hard state.
fn thirty(fs: &SimFs) -> Wal<SimFs> {
    let (mut wal, _) = open(fs, small());
    wal.write(&entries(1..=30, 1), Some(hard_state(2, 3, 4))).unwrap();
    wal.sync().unwrap();
    assert!(wal.segment_count() >= 3, "the test wants several segments");
    wal
}

fn reset_files(fs: &SimFs) -> Vec<String> {
    let mut names = fs.list(&dir()).expect("list");
    names.retain(|n| n.ends_with(".reset") || n.ends_with(".tmp"));
    names
}

#[test]
fn a_reset_empties_the_log_wherever_it_lands() {
    // Below the compacted log, inside it, at its end, and above it.
    for after in [3, 17, 30, 1000] {
        let fs = SimFs::new();
        let mut wal = thirty(&fs);
        if after == 3 {
            assert!(wal.compact_prefix(LogIndex(20)).unwrap() > LogIndex(4));
        }
        let context = format!("reset to {after}");
        wal.reset(LogIndex(after), Term(7)).unwrap();
        assert_eq!(wal.first_index(), LogIndex(after + 1), "{context}");
        assert_eq!(wal.last_index(), LogIndex(after), "{context}");
        assert_eq!(wal.term(LogIndex(after)), Some(Term(7)), "{context}");
        assert_eq!(wal.term(LogIndex(after - 1)), None, "{context}");
        assert_eq!(wal.hard_state(), hard_state(2, 3, 4), "{context}");
        assert!(all(&wal).is_empty(), "{context}");
        assert_eq!(segment_files(&fs), vec![format!("{:020}.wal", after + 1)], "{context}");
        assert!(reset_files(&fs).is_empty(), "{context}");
        wal.check_invariants();

        wal.write(&entries(after + 1..=after + 20, 8), Some(hard_state(8, 0, after))).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let (wal, recovered) = open(&fs, small());
        assert_eq!(recovered.first_index, LogIndex(after + 1), "{context}");
        assert_eq!(recovered.prev_term, Term(7), "{context}");
        assert_eq!(recovered.entries, entries(after + 1..=after + 20, 8), "{context}");
        assert_eq!(recovered.hard_state, hard_state(8, 0, after), "{context}");
        assert_eq!(wal.term(LogIndex(after)), Some(Term(7)), "{context}");
    }
}

#[test]
fn a_reset_keeps_a_hard_state_written_but_not_yet_synced() {
    let fs = SimFs::new();
    let mut wal = thirty(&fs);
    wal.set_hard_state(hard_state(9, 1, 4)).unwrap();
    wal.reset(LogIndex(50), Term(9)).unwrap();
    drop(wal);
    fs.crash(&mut Rng::new(3));
    let (_, recovered) = open(&fs, small());
    assert_eq!(recovered.hard_state, hard_state(9, 1, 4));
    assert_eq!(recovered.first_index, LogIndex(51));
}

#[test]
fn a_reset_to_zero_is_a_new_log_that_keeps_the_hard_state() {
    let fs = SimFs::new();
    let mut wal = thirty(&fs);
    wal.reset(LogIndex(0), Term(0)).unwrap();
    assert_eq!((wal.first_index(), wal.last_index()), (LogIndex(1), LogIndex(0)));
    wal.append(&entries(1..=2, 5)).unwrap();
    wal.sync().unwrap();
    drop(wal);
    let (_, recovered) = open(&fs, small());
    assert_eq!(recovered.entries, entries(1..=2, 5));
    assert_eq!(recovered.hard_state, hard_state(2, 3, 4));
}

#[test]
fn a_log_far_above_index_one_rotates_truncates_compacts_and_reopens() {
    let base = 1_000_000_000_000;
    let fs = SimFs::new();
    let (mut wal, _) = open(&fs, small());
    wal.reset(LogIndex(base), Term(4)).unwrap();
    wal.append(&entries(base + 1..=base + 40, 4)).unwrap();
    // A conflicting suffix across segments, then more.
    wal.append(&entries(base + 6..=base + 12, 5)).unwrap();
    wal.write(&entries(base + 13..=base + 50, 5), Some(hard_state(5, 2, base + 9))).unwrap();
    wal.sync().unwrap();
    let expected: Vec<Entry> =
        entries(base + 1..=base + 5, 4).into_iter().chain(entries(base + 6..=base + 50, 5)).collect();
    assert_eq!(all(&wal), expected);
    assert!(wal.segment_count() >= 4);
    let first = wal.compact_prefix(LogIndex(base + 30)).unwrap();
    assert!(first > LogIndex(base + 1) && first <= LogIndex(base + 30), "first index {first}");
    let kept = expected[(first.0 - base - 1) as usize..].to_vec();
    assert_eq!(all(&wal), kept);
    drop(wal);
    let (wal, recovered) = open(&fs, small());
    assert_eq!(recovered.first_index, first);
    assert_eq!(recovered.prev_term, expected[(first.0 - base - 2) as usize].term);
    assert_eq!(recovered.entries, kept);
    assert_eq!(recovered.hard_state, hard_state(5, 2, base + 9));
    assert_eq!(wal.read(LogIndex(base + 40)..LogIndex(base + 43)).unwrap(), expected[39..42].to_vec());
    wal.check_invariants();
}

#[test]
fn a_damaged_reset_segment_is_corruption_and_nothing_is_removed() {
    let fs = SimFs::new();
    drop(thirty(&fs));
    let before = segment_files(&fs);
    let staged = dir().join("00000000000000000100.wal.reset");
    fs.write_durable(&staged, &[0xab; 64]);
    match Wal::open_with(fs.clone(), dir(), small()) {
        Err(StorageError::Corruption { path, offset: 0, .. }) => assert_eq!(path, staged),
        other => panic!("expected corruption, got {other:?}"),
    }
    assert_eq!(segment_files(&fs), before);
    // A header naming another index than the file's name.
    let mut header = Vec::new();
    super::encode_header(SegmentHeader { first_index: LogIndex(99), prev_term: Term(1) }, &mut header);
    fs.write_durable(&staged, &header);
    match Wal::open_with(fs.clone(), dir(), small()) {
        Err(StorageError::Corruption { path, offset: 16, .. }) => assert_eq!(path, staged),
        other => panic!("expected corruption, got {other:?}"),
    }
    assert_eq!(segment_files(&fs), before);
}

/// The log a reset may leave after a crash.
#[derive(Debug, PartialEq)]
enum Outcome {
    Old,
    New,
}

#[test]
fn a_crash_at_every_step_of_a_reset_leaves_the_old_log_or_the_new_one() {
    let after = LogIndex(45);
    let setup = || {
        let fs = SimFs::new();
        let wal = thirty(&fs);
        (fs, wal)
    };
    let steps = {
        let (fs, mut wal) = setup();
        let before = fs.op_count();
        wal.reset(after, Term(6)).unwrap();
        fs.op_count() - before
    };
    assert!(steps >= 8, "a reset takes {steps} steps");
    let mut seen = Vec::new();
    for step in 0..=steps {
        for seed in 0..4 {
            let context = format!("power cut after {step} of {steps} steps, seed {seed}");
            let (fs, mut wal) = setup();
            fs.cut_power_after(Some(step));
            let result = wal.reset(after, Term(6));
            drop(wal);
            fs.crash(&mut Rng::new(seed));
            let (wal, recovered) =
                Wal::open_with(fs.clone(), dir(), small()).unwrap_or_else(|e| panic!("{context}: {e}"));
            assert_eq!(recovered.hard_state, hard_state(2, 3, 4), "{context}");
            let outcome = if recovered.first_index == LogIndex(1) {
                assert_eq!(recovered.entries, entries(1..=30, 1), "{context}");
                Outcome::Old
            } else {
                assert_eq!(recovered.first_index, after.next(), "{context}");
                assert_eq!(recovered.prev_term, Term(6), "{context}");
                assert!(recovered.entries.is_empty(), "{context}");
                Outcome::New
            };
            if result.is_ok() {
                assert_eq!(outcome, Outcome::New, "{context}: the reset returned, so it is durable");
            }
            assert!(reset_files(&fs).is_empty(), "{context}: recovery left {:?}", reset_files(&fs));
            wal.check_invariants();
            drop(wal);
            let (_, again) = open(&fs, small());
            assert_eq!(
                (again.first_index, again.entries.len()),
                (recovered.first_index, recovered.entries.len()),
                "{context}: a second recovery differs"
            );
            seen.push(outcome);
        }
    }
    assert!(seen.contains(&Outcome::Old) && seen.contains(&Outcome::New), "both outcomes occur");
}
