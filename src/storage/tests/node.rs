//! [`open_node`]: the log reconciled with the newest snapshot, and a crash
//! at every step of taking a snapshot and compacting, and of installing a
//! received snapshot and resetting the log.

use std::io::Write;
use std::path::Path;

use super::snapshot::{data, meta, read_back, snapshot_image, take};
use super::*;
use crate::membership::SnapshotMeta;

fn start(fs: &SimFs) -> Result<(Wal<SimFs>, SnapshotStore<SimFs>, NodeState), StorageError> {
    open_node_with(fs.clone(), dir(), small(), SnapshotOptions::default())
}

/// Every entry ever written in these tests: 1..=20 of term 1, then term 2.
fn model(last: u64) -> Vec<Entry> {
    (1..=last).flat_map(|i| entries(i..=i, if i <= 20 { 1 } else { 2 })).collect()
}

/// A node with entries 1..=40 and `hs` synced.
fn node_with_log(fs: &SimFs, hs: HardState) -> (Wal<SimFs>, SnapshotStore<SimFs>) {
    let (mut wal, store, state) = start(fs).unwrap();
    assert_eq!(state, NodeState::default());
    wal.write(&model(40), Some(hs)).unwrap();
    wal.sync().unwrap();
    (wal, store)
}

fn with_commit(hs: HardState, commit: u64) -> HardState {
    HardState { commit: LogIndex(commit), ..hs }
}

#[test]
fn without_a_snapshot_the_node_starts_from_the_whole_log() {
    let fs = SimFs::new();
    let hs = hard_state(2, 1, 30);
    drop(node_with_log(&fs, hs));
    let (wal, store, state) = start(&fs).unwrap();
    assert_eq!(state.snapshot, None);
    assert_eq!(state.entries, model(40));
    assert_eq!(state.hard_state, hs);
    assert_eq!((wal.first_index(), store.current()), (LogIndex(1), None));
}

#[test]
fn a_log_that_holds_the_snapshot_index_and_term_keeps_its_entries_after_it() {
    for (index, commit) in [(25, 30), (35, 35), (40, 40)] {
        let fs = SimFs::new();
        let hs = hard_state(2, 1, 30);
        let (wal, mut store) = node_with_log(&fs, hs);
        take(&mut store, &meta(index, 2), b"state");
        drop((wal, store));
        let (wal, store, state) = start(&fs).unwrap();
        assert_eq!(state.snapshot, Some(meta(index, 2)));
        assert_eq!(state.entries, model(40)[index as usize..].to_vec(), "snapshot at {index}");
        assert_eq!(state.hard_state, with_commit(hs, commit), "commit raised to the snapshot");
        assert_eq!(
            (wal.first_index(), wal.last_index()),
            (LogIndex(1), LogIndex(40)),
            "the log is untouched"
        );
        assert_eq!(read_back(&store), b"state");
    }
}

#[test]
fn a_log_behind_or_conflicting_with_the_snapshot_is_reset_to_continue_it() {
    // Behind the log's end, and a different term at the snapshot's index.
    for (index, term) in [(60, 3), (25, 3)] {
        let fs = SimFs::new();
        let hs = hard_state(3, 2, 15);
        let (wal, mut store) = node_with_log(&fs, hs);
        take(&mut store, &meta(index, term), b"state");
        drop((wal, store));
        let context = format!("snapshot at {index} term {term}");
        let (wal, _, state) = start(&fs).unwrap();
        assert_eq!(state.snapshot, Some(meta(index, term)), "{context}");
        assert!(state.entries.is_empty(), "{context}");
        assert_eq!(state.hard_state, with_commit(hs, index), "{context}");
        assert_eq!(
            (wal.first_index(), wal.last_index()),
            (LogIndex(index + 1), LogIndex(index)),
            "{context}"
        );
        assert_eq!(wal.term(LogIndex(index)), Some(Term(term)), "{context}");
        assert_eq!(wal.hard_state(), hs, "{context}: the log's own hard state is kept");
        drop(wal);
        // The reset is durable: the next start finds the log continuing it.
        let before = segment_files(&fs);
        let (_, _, again) = start(&fs).unwrap();
        assert_eq!(again, state, "{context}");
        assert_eq!(segment_files(&fs), before, "{context}: no second reset");
    }
}

#[test]
fn a_log_compacted_past_its_snapshot_is_refused() {
    let fs = SimFs::new();
    let (mut wal, mut store) = node_with_log(&fs, hard_state(2, 1, 30));
    take(&mut store, &meta(5, 1), b"state");
    assert!(wal.compact_prefix(LogIndex(30)).unwrap() > LogIndex(6));
    drop((wal, store));
    match start(&fs) {
        Err(StorageError::Corruption { reason, .. }) => assert!(reason.contains("missing"), "{reason}"),
        other => panic!("expected Corruption, got {:?}", other.map(|(_, _, s)| s)),
    }
    // Without any snapshot at all, likewise.
    fs.remove(&dir().join(SNAPSHOT_DIR).join(format!("snapshot-{:020}-{:020}.snap", 5, 1))).unwrap();
    fs.sync_dir(&dir().join(SNAPSHOT_DIR)).unwrap();
    assert!(matches!(start(&fs), Err(StorageError::Corruption { .. })));
}

/// Checks a node's state after a crash against what may survive: one of
/// the `snapshots`, entries after it that are a prefix of `model(44)`
/// holding at least entries up to 40 (or nothing, after a reset), and the
/// hard state `hs` with its commit raised to the snapshot.
fn check_state(
    fs: &SimFs,
    snapshots: &[(SnapshotMeta, Vec<u8>)],
    hs: HardState,
    context: &str,
) -> Option<SnapshotMeta> {
    let (mut wal, store, state) = start(fs).unwrap_or_else(|e| panic!("{context}: {e}"));
    let (after, term) = state.snapshot.as_ref().map_or((0, Term(0)), |s| (s.index.0, s.term));
    if let Some(snapshot) = &state.snapshot {
        let data = snapshots.iter().find(|(m, _)| m == snapshot).map(|(_, d)| d);
        let data = data.unwrap_or_else(|| panic!("{context}: unexpected {snapshot:?}"));
        assert!(read_back(&store) == *data, "{context}: the snapshot's data differs");
    } else {
        assert!(snapshots.iter().any(|(m, _)| m.index == LogIndex(0)), "{context}: the snapshot was lost");
    }
    let last = after + state.entries.len() as u64;
    let held = (after as usize).checked_sub(1).and_then(|i| model(44).get(i).map(|e| e.term));
    let reset = after > 40 || held.is_some_and(|t| t != term);
    if reset {
        assert!(state.entries.is_empty(), "{context}: entries after a snapshot the log did not hold");
    } else {
        assert!((40..=44).contains(&last), "{context}: the log ends at {last}");
        assert_eq!(state.entries, model(last)[after as usize..].to_vec(), "{context}");
    }
    assert_eq!(state.hard_state, with_commit(hs, hs.commit.0.max(after)), "{context}");
    assert!(wal.first_index() <= LogIndex(after + 1), "{context}: the log starts at {}", wal.first_index());
    assert_eq!(wal.term(LogIndex(after)), Some(term), "{context}");
    assert_eq!(wal.last_index(), LogIndex(last), "{context}");
    wal.check_invariants();

    // The node goes on from there, and starts again the same way.
    let next = entry(last + 1, term.0.max(2), "after the crash");
    wal.append(std::slice::from_ref(&next)).unwrap();
    wal.sync().unwrap();
    drop((wal, store));
    let (_, _, again) = start(fs).unwrap_or_else(|e| panic!("{context}, restarted: {e}"));
    assert_eq!(again.snapshot, state.snapshot, "{context}");
    assert_eq!(again.entries.last(), Some(&next), "{context}");
    assert_eq!(again.entries.len(), state.entries.len() + 1, "{context}");
    state.snapshot
}

/// Runs `operation` on a fresh node from `setup` with the power cut after
/// every possible number of steps, and checks the state after each crash
/// with `check`. Returns how many steps the whole operation takes.
fn crash_at_every_step<S, O, C>(setup: S, operation: O, mut check: C) -> u64
where
    S: Fn() -> (SimFs, Wal<SimFs>, SnapshotStore<SimFs>),
    O: Fn(&mut Wal<SimFs>, &mut SnapshotStore<SimFs>) -> Result<(), StorageError>,
    C: FnMut(&SimFs, bool, &str),
{
    let steps = {
        let (fs, mut wal, mut store) = setup();
        let before = fs.op_count();
        operation(&mut wal, &mut store).expect("the operation without a crash");
        fs.op_count() - before
    };
    for step in 0..=steps {
        for seed in 0..3 {
            let context = format!("power cut after {step} of {steps} steps, seed {seed}");
            let (fs, mut wal, mut store) = setup();
            fs.cut_power_after(Some(step));
            let completed = operation(&mut wal, &mut store).is_ok();
            drop((wal, store));
            fs.crash(&mut Rng::new(seed));
            check(&fs, completed, &context);
        }
    }
    steps
}

#[test]
fn a_crash_at_every_step_of_taking_a_snapshot_and_compacting_leaves_a_consistent_node() {
    let hs = hard_state(2, 1, 30);
    let older = (meta(10, 1), data(3000, 10));
    let newer = (meta(30, 2), data(200_000, 30));
    let setup = || {
        let fs = SimFs::new();
        let (mut wal, mut store) = node_with_log(&fs, hs);
        take(&mut store, &older.0, &older.1);
        wal.compact_prefix(LogIndex(11)).unwrap();
        // Written, never synced: a crash keeps any prefix of them.
        wal.append(&model(44)[40..]).unwrap();
        (fs, wal, store)
    };
    let operation = |wal: &mut Wal<SimFs>, store: &mut SnapshotStore<SimFs>| {
        let mut writer = store.begin(&newer.0)?;
        for piece in newer.1.chunks(10_000) {
            writer.write_all(piece).map_err(|e| StorageError::io("write", Path::new("snapshot"), e))?;
        }
        writer.finish()?;
        wal.compact_prefix(LogIndex(31))?;
        Ok(())
    };
    let mut outcomes = Vec::new();
    let steps = crash_at_every_step(setup, operation, |fs, completed, context| {
        let snapshot = check_state(fs, &[older.clone(), newer.clone()], hs, context);
        if completed {
            assert_eq!(snapshot.as_ref(), Some(&newer.0), "{context}: the snapshot was finished");
        }
        outcomes.push(snapshot);
    });
    assert!(steps >= 10, "taking and compacting takes {steps} steps");
    assert!(outcomes.contains(&Some(older.0.clone())) && outcomes.contains(&Some(newer.0.clone())));
}

#[test]
fn a_crash_at_every_step_of_installing_a_received_snapshot_and_resetting_leaves_a_consistent_node() {
    // A log behind the snapshot, and a log holding another term at its index.
    for (index, term) in [(60, 3), (25, 3)] {
        let hs = hard_state(3, 2, 15);
        let received = (meta(index, term), data(20_000, index));
        let image = snapshot_image(index, term, &received.1);
        let setup = || {
            let fs = SimFs::new();
            let (mut wal, store) = node_with_log(&fs, hs);
            wal.append(&model(44)[40..]).unwrap();
            (fs, wal, store)
        };
        let operation = |wal: &mut Wal<SimFs>, store: &mut SnapshotStore<SimFs>| {
            let (index, term) = (LogIndex(index), Term(term));
            let mut offset = 0;
            for chunk in image.chunks(4096) {
                offset = store.receive_chunk(index, term, offset, chunk)?;
            }
            store.finish_receive(index, term)?;
            wal.reset(index, term)?;
            Ok(())
        };
        let none = (SnapshotMeta::default(), Vec::new());
        let mut outcomes = Vec::new();
        let steps = crash_at_every_step(setup, operation, |fs, completed, context| {
            let context = format!("snapshot at {index} term {term}, {context}");
            let snapshot = check_state(fs, &[none.clone(), received.clone()], hs, &context);
            if completed {
                assert_eq!(snapshot.as_ref(), Some(&received.0), "{context}: the install was finished");
            }
            outcomes.push(snapshot);
        });
        assert!(steps >= 10, "installing and resetting takes {steps} steps");
        assert!(outcomes.contains(&None) && outcomes.contains(&Some(received.0.clone())));
    }
}
