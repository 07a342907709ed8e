//! Starting a node from its data directory: the log and the newest
//! snapshot, reconciled into one consistent state.
//!
//! The rule and why it is safe are in "Starting a node" in the
//! [`crate::storage`] docs.

use std::path::Path;

use log::{info, warn};

use super::error::StorageError;
use super::fs::{Fs, RealFs};
use super::identity::Floor;
use super::recovery::{RecoveredLog, TornTail};
use super::snapshot::{SnapshotOptions, SnapshotStore, SNAPSHOT_DIR};
use super::wal::{Wal, WalOptions};
use crate::membership::SnapshotMeta;
use crate::types::{Entry, HardState, LogIndex, Term};

/// What a node starts from: its newest snapshot, its hard state and the log
/// entries after the snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeState {
    /// The newest snapshot, if any: the application restores its state
    /// from [`SnapshotStore::reader`] before applying `entries`.
    pub snapshot: Option<SnapshotMeta>,
    /// The last hard state written, its commit index raised to at least the
    /// snapshot's index (a snapshot holds only committed entries).
    pub hard_state: HardState,
    /// The log entries after the snapshot (from index 1 without one),
    /// consecutive.
    pub entries: Vec<Entry>,
    /// What recovery cut from the end of the log, if anything; see
    /// [`RecoveredLog::torn_tail`].
    pub torn_tail: Option<TornTail>,
    /// Nonzero if the log (with the snapshot) ends below its commit floor:
    /// committed entries up to here, which this node held, are lost. See
    /// `RecoveredState::repair_to`.
    pub repair_to: LogIndex,
}

/// Opens a node's storage in `dir` on the real disk: the log in `dir`, the
/// snapshots in `dir/snapshots`. See [`open_node_with`].
pub fn open_node(
    dir: impl AsRef<Path>,
    wal_options: WalOptions,
    snapshot_options: SnapshotOptions,
) -> Result<(Wal<RealFs>, SnapshotStore<RealFs>, NodeState), StorageError> {
    open_node_with(RealFs, dir, wal_options, snapshot_options)
}

/// Opens a node's storage in `dir` on `fs` and reconciles the log with the
/// newest snapshot at `(S, T)`: if the log holds `(S, T)` its entries after
/// `S` are kept; otherwise (it ends before `S`, or holds another term there)
/// the log is reset to start after `(S, T)`. See "Starting a node" in
/// [`crate::storage`] for why that is safe. Fails with
/// [`StorageError::Corruption`] if the log starts after `S + 1`, and with
/// the errors of [`Wal::open_with`] and [`SnapshotStore::open_with`].
pub fn open_node_with<F: Fs + Clone>(
    fs: F,
    dir: impl AsRef<Path>,
    wal_options: WalOptions,
    snapshot_options: SnapshotOptions,
) -> Result<(Wal<F>, SnapshotStore<F>, NodeState), StorageError> {
    let dir = dir.as_ref();
    // The log first: it locks the node's directory.
    let (mut wal, recovered) = Wal::open_with(fs.clone(), dir, wal_options)?;
    let (store, snapshot) = SnapshotStore::open_with(fs, dir.join(SNAPSHOT_DIR), snapshot_options)?;
    let RecoveredLog { mut hard_state, first_index, mut entries, torn_tail, .. } = recovered;
    let (after, after_term) = snapshot.as_ref().map_or((LogIndex(0), Term(0)), |s| (s.index, s.term));
    // Held to the floor before any reset: a log set back behind its
    // snapshot lost what the floor says it held after it, which a reset
    // would hide (a log that conflicts with the snapshot drops only
    // entries never committed).
    let floor = wal.floor();
    let repair_to = reconcile_floor(dir, floor, &mut hard_state, (after, after_term), |i| wal.term(i));

    if wal.term(after) == Some(after_term) {
        // `term(after)` is known, so `first_index - 1 <= after`.
        let covered = after.next().0 - first_index.0;
        entries.drain(..covered as usize);
    } else if after.next() < first_index {
        let what = match &snapshot {
            Some(_) => format!("the snapshot ends at {after}"),
            None => "there is no snapshot".to_string(),
        };
        return Err(StorageError::corruption(
            dir,
            0,
            format!(
                "the log starts at {first_index} but {what}: entries [{}, {}] are missing",
                after.next(),
                first_index.prev()
            ),
        ));
    } else {
        warn!(
            "{}: the log [{first_index}, {}] does not continue the snapshot at {after} (term {}); \
             it is reset to start after it",
            dir.display(),
            wal.last_index(),
            after_term.0
        );
        wal.reset(after, after_term)?;
        entries.clear();
        if repair_to > LogIndex(0) {
            // The reset lowered the floor; the loss is not repaired yet.
            wal.keep_floor(floor)?;
        }
    }
    hard_state.commit = hard_state.commit.max(after);
    debug_assert!(entries.iter().zip(after.next().0..).all(|(e, i)| e.index == LogIndex(i)));
    info!(
        "{}: starting from {} and entries [{}, {}]",
        dir.display(),
        snapshot.as_ref().map_or("no snapshot".to_string(), |s| format!("the snapshot at {}", s.index)),
        after.next(),
        wal.last_index()
    );
    Ok((wal, store, NodeState { snapshot, hard_state, entries, torn_tail, repair_to }))
}

/// Holds a recovered log to the floor kept beside it: `term_at` gives the
/// term of the log's entry at an index (or of the snapshot it continues,
/// `None` beyond it). A hard state whose term is below the term floor lost
/// a term, and maybe the vote cast in it, so the node starts in the term
/// after the floor's, having voted in none (it can never vote twice in a
/// term). A log that does not hold the floor's position lost synced
/// entries, some of which this node acknowledged: their index is returned
/// for `RecoveredState::repair_to` (0 if nothing was lost). Both can only
/// come from a disk that lied about a sync, or a log restored from an
/// older copy; both are logged.
///
/// The snapshot (`snapshot`: its index and term) is a floor of its own: a
/// node holds a snapshot of term T only after it learned of term T, but the
/// snapshot file is made durable apart from the log, so a crash can keep it
/// and lose the hard state that recorded term T. The node then starts in
/// the term after T, having voted in none, as for the term floor.
pub fn reconcile_floor(
    dir: &Path,
    floor: Floor,
    hard_state: &mut HardState,
    snapshot: (LogIndex, Term),
    term_at: impl Fn(LogIndex) -> Option<Term>,
) -> LogIndex {
    let (snapshot_index, snapshot_term) = snapshot;
    if hard_state.term < snapshot_term {
        warn!(
            "{}: the log's hard state is at term {} but the snapshot is of term {}: a crash kept \
             the snapshot and lost the hard state; starting in term {} without a vote",
            dir.display(),
            hard_state.term.0,
            snapshot_term.0,
            snapshot_term.0 + 1
        );
        *hard_state = HardState { term: snapshot_term.next(), vote: None, commit: hard_state.commit };
    }
    if hard_state.term < floor.term {
        warn!(
            "{}: the log's hard state is at term {} but the log reached term {} before: it lost \
             synced writes; starting in term {} without a vote",
            dir.display(),
            hard_state.term.0,
            floor.term.0,
            floor.term.0 + 1
        );
        *hard_state = HardState { term: floor.term.next(), vote: None, commit: hard_state.commit };
    }
    if floor.index > snapshot_index && term_at(floor.index) != Some(floor.index_term) {
        warn!(
            "{}: the log held entry {} of term {} durably, and no longer does: synced entries were \
             lost; the node will not vote until a leader restores them",
            dir.display(),
            floor.index,
            floor.index_term.0
        );
        floor.index
    } else {
        LogIndex(0)
    }
}
