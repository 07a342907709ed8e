//! Opening a data directory: finding the segments (finishing an interrupted
//! [`Wal::reset`](super::Wal::reset) first), replaying their records in
//! order, and deciding, per the table in [`crate::storage`], whether bad
//! bytes are a torn tail to cut or damage to refuse.

use std::path::{Path, PathBuf};

use log::{info, warn};

use super::error::StorageError;
use super::format::{decode_header, decode_record, find_record_from, RecordView, SEGMENT_HEADER_BYTES};
use super::fs::{Fs, FsFile};
use super::segment::{Segment, TermRuns};
use crate::types::{Entry, HardState, LogIndex, Term};

/// The extension of segment files.
pub(crate) const SEGMENT_EXTENSION: &str = ".wal";
/// The extension of a segment being created; never read by recovery.
pub(crate) const TEMP_EXTENSION: &str = ".tmp";
/// The extension of the whole, fsynced segment that replaces every other
/// one in a [`Wal::reset`](super::Wal::reset). Its name becoming durable is
/// the reset's commit point: recovery finishes any reset it finds.
pub(crate) const RESET_EXTENSION: &str = ".reset";

/// The largest segment file recovery reads. A segment is at most its
/// configured size plus one oversized record, well below this.
pub(crate) const MAX_SEGMENT_FILE_BYTES: u64 = 4 << 30;

/// The file name of the segment whose first index is `first`.
pub(crate) fn segment_name(first: LogIndex) -> String {
    format!("{:020}{SEGMENT_EXTENSION}", first.0)
}

/// The first index a segment file name stands for, if it is one.
pub(crate) fn parse_segment_name(name: &str) -> Option<LogIndex> {
    let digits = name.strip_suffix(SEGMENT_EXTENSION)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(LogIndex)
}

/// Lists the segments of `dir`, sorted by first index, after removing
/// interrupted segment creations (`*.wal.tmp`) and finishing an interrupted
/// reset (`*.wal.reset`), so that the names returned are exactly the log.
pub(crate) fn scan_dir<F: Fs>(fs: &F, dir: &Path) -> Result<Vec<(LogIndex, String)>, StorageError> {
    let listed = fs.list(dir).map_err(|e| StorageError::io("list", dir, e))?;
    let mut names = Vec::new();
    let mut resets = Vec::new();
    let mut removed_temp = false;
    for name in listed {
        if let Some(segment) = name.strip_suffix(TEMP_EXTENSION) {
            if parse_segment_name(segment).is_some() {
                // A segment whose creation was interrupted before its
                // rename: it was never used.
                let path = dir.join(&name);
                fs.remove(&path).map_err(|e| StorageError::io("remove", &path, e))?;
                removed_temp = true;
            }
        } else if let Some(segment) = name.strip_suffix(RESET_EXTENSION) {
            if let Some(first) = parse_segment_name(segment) {
                resets.push((first, name));
            }
        } else if let Some(first) = parse_segment_name(&name) {
            names.push((first, name));
        }
    }
    if removed_temp {
        fs.sync_dir(dir).map_err(|e| StorageError::sync(dir, e))?;
    }
    resets.sort();
    match resets.as_slice() {
        [] => {}
        [(first, name)] => {
            let staged = dir.join(name);
            check_reset_segment(fs, &staged, *first)?;
            info!("{}: finishing an interrupted reset to a log starting at {first}", dir.display());
            let old: Vec<PathBuf> = names.iter().map(|(_, name)| dir.join(name)).collect();
            let segment = segment_name(*first);
            finish_reset(fs, dir, &old, &staged, &dir.join(&segment))?;
            names = vec![(*first, segment)];
        }
        [_, (_, second), ..] => {
            // One reset finishes (here, at the latest) before the next can
            // begin: two are not something a crash leaves.
            return Err(StorageError::corruption(
                &dir.join(second),
                0,
                "a second reset segment: no writer leaves two",
            ));
        }
    }
    names.sort();
    Ok(names)
}

/// Checks that the reset segment at `path` has a valid header naming
/// `first`, before anything is deleted in its favour: a damaged one is
/// refused with nothing changed.
fn check_reset_segment<F: Fs>(fs: &F, path: &Path, first: LogIndex) -> Result<(), StorageError> {
    let file = fs.open(path).map_err(|e| StorageError::io("open", path, e))?;
    let len = file.size_bytes().map_err(|e| StorageError::io("stat", path, e))?;
    let mut header = [0; SEGMENT_HEADER_BYTES];
    if len < header.len() as u64 {
        return Err(StorageError::corruption(
            path,
            0,
            format!("reset segment is {len} bytes, shorter than a header"),
        ));
    }
    file.read_at(0, &mut header).map_err(|e| StorageError::io("read", path, e))?;
    let header = decode_header(&header).map_err(|reason| StorageError::corruption(path, 0, reason))?;
    if header.first_index != first {
        return Err(StorageError::corruption(
            path,
            16,
            format!("header says first index {} but the file is named for {first}", header.first_index),
        ));
    }
    Ok(())
}

/// The second half of a reset, once the new segment is durable under its
/// reset name: removes the `old` segments, then renames the new one into
/// place. Idempotent up to the rename, so recovery can redo it after a
/// crash anywhere in it; every step is durable before the next, so no crash
/// leaves old and new segments side by side under segment names.
pub(crate) fn finish_reset<F: Fs>(
    fs: &F,
    dir: &Path,
    old: &[PathBuf],
    staged: &Path,
    path: &Path,
) -> Result<(), StorageError> {
    for segment in old {
        fs.remove(segment).map_err(|e| StorageError::io("remove", segment, e))?;
    }
    fs.sync_dir(dir).map_err(|e| StorageError::sync(dir, e))?;
    fs.rename(staged, path).map_err(|e| StorageError::io("rename", staged, e))?;
    fs.sync_dir(dir).map_err(|e| StorageError::sync(dir, e))
}

/// What recovery cut from the end of the last segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// The last segment.
    pub path: PathBuf,
    /// Where its last whole record ends, and the log now ends.
    pub offset: u64,
    /// How many bytes from `offset` to the last non-zero byte of the file
    /// were discarded (they are zero now).
    pub discarded_bytes: u64,
    /// Why the bytes at `offset` are not a record.
    pub reason: String,
}

/// What [`Wal::open`](super::Wal::open) found on disk: everything a node
/// needs to start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveredLog {
    /// The last hard state written; all zero for a new directory.
    pub hard_state: HardState,
    /// The index of the first entry still in the log: 1 unless a prefix was
    /// compacted.
    pub first_index: LogIndex,
    /// The term of the entry just before `first_index` (0 when that is
    /// index 0): what a compacted prefix leaves behind.
    pub prev_term: Term,
    /// The log, consecutive from `first_index`.
    pub entries: Vec<Entry>,
    /// What recovery cut from the end of the log after a crash, if anything:
    /// records that were being written when the power went. Logged at
    /// `warn`; reported here so that nothing disappears unsaid.
    pub torn_tail: Option<TornTail>,
    /// The floor kept beside the log: a position it holds durably at least,
    /// and the latest term its hard state held. A log that does not hold
    /// the first (once reconciled with the newest snapshot) lost synced
    /// entries; a hard state below the second lost a term.
    pub floor: super::Floor,
}

/// The log's state after replay, handed to the [`Wal`](super::Wal).
pub(crate) struct Replayed<F: Fs> {
    pub(crate) recovered: RecoveredLog,
    pub(crate) segments: Vec<Segment>,
    pub(crate) active: F::File,
    pub(crate) terms: TermRuns,
    pub(crate) last_term: Term,
}

/// Replays every segment in `names` (sorted by first index, not empty).
pub(crate) fn replay<F: Fs>(
    fs: &F,
    dir: &Path,
    names: &[(LogIndex, String)],
) -> Result<Replayed<F>, StorageError> {
    assert!(!names.is_empty(), "replay needs at least one segment");
    let mut entries: Vec<Entry> = Vec::new();
    let mut segments: Vec<Segment> = Vec::with_capacity(names.len());
    let mut terms = TermRuns::default();
    let mut hard_state = None;
    let mut first_index = LogIndex(0);
    let mut prev_term = Term(0);
    let mut last = LogIndex(0);
    let mut last_term = Term(0);
    let mut torn_tail = None;
    let mut active = None;

    for (position, (name_index, name)) in names.iter().enumerate() {
        let is_last = position + 1 == names.len();
        let path = dir.join(name);
        let file = fs.open(&path).map_err(|e| StorageError::io("open", &path, e))?;
        let len = file.size_bytes().map_err(|e| StorageError::io("stat", &path, e))?;
        if len > MAX_SEGMENT_FILE_BYTES {
            return Err(StorageError::corruption(
                &path,
                0,
                format!("segment file is {len} bytes, above the {MAX_SEGMENT_FILE_BYTES} any writer makes"),
            ));
        }
        // Cannot truncate: checked against MAX_SEGMENT_FILE_BYTES above.
        let mut bytes = vec![0; len as usize];
        file.read_at(0, &mut bytes).map_err(|e| StorageError::io("read", &path, e))?;

        let header = decode_header(&bytes).map_err(|reason| StorageError::corruption(&path, 0, reason))?;
        if header.first_index != *name_index {
            return Err(StorageError::corruption(
                &path,
                16,
                format!(
                    "header says first index {} but the file is named for {}",
                    header.first_index, name_index
                ),
            ));
        }
        if position == 0 {
            first_index = header.first_index;
            prev_term = header.prev_term;
            last = first_index.prev();
            last_term = prev_term;
            terms = TermRuns::new(first_index, prev_term);
        } else if header.first_index != last.next() {
            return Err(StorageError::corruption(
                &path,
                16,
                format!(
                    "segment starts at {} but the previous one ends at {last}: a segment is missing or damaged",
                    header.first_index
                ),
            ));
        } else if header.prev_term != last_term {
            return Err(StorageError::corruption(
                &path,
                24,
                format!(
                    "header says entry {last} has term {} but the previous segment gives it term {}",
                    header.prev_term.0, last_term.0
                ),
            ));
        }

        let mut segment = Segment::new(header.first_index, header.prev_term, path.clone());
        let mut offset = SEGMENT_HEADER_BYTES;
        while offset < bytes.len() {
            let rest = &bytes[offset..];
            let (view, record_len) = match decode_record(rest) {
                Ok(decoded) => decoded,
                Err(error) => {
                    let Some(last_nonzero) = rest.iter().rposition(|&b| b != 0) else {
                        // Zero-filled (preallocated) space: the clean end.
                        break;
                    };
                    if !is_last {
                        return Err(StorageError::corruption(
                            &path,
                            offset as u64,
                            format!("{error}, in a segment that is not the last"),
                        ));
                    }
                    let follows = find_record_from(&bytes, offset + 1);
                    #[cfg(test)]
                    let follows = follows.filter(|_| !DAMAGE_AS_TORN.with(std::cell::Cell::get));
                    if let Some(next) = follows {
                        return Err(StorageError::corruption(
                            &path,
                            offset as u64,
                            format!(
                                "{error}, yet a whole record follows at byte {next}: \
                                 damage inside the log, not a torn write"
                            ),
                        ));
                    }
                    torn_tail = Some(TornTail {
                        path: path.clone(),
                        offset: offset as u64,
                        discarded_bytes: last_nonzero as u64 + 1,
                        reason: error.to_string(),
                    });
                    break;
                }
            };
            let at = |reason: String| StorageError::corruption(&path, offset as u64, reason);
            match view {
                RecordView::Entry { index, term, .. } => {
                    if index != last.next() {
                        return Err(at(format!(
                            "entry {index} follows entry {last}: indexes must be consecutive"
                        )));
                    }
                    if term < last_term {
                        return Err(at(format!(
                            "entry {index} has term {} below the previous entry's {}",
                            term.0, last_term.0
                        )));
                    }
                    entries.extend(view.to_entry());
                    segment.entry_offsets.push(offset as u64);
                    terms.push(index, term);
                    last = index;
                    last_term = term;
                }
                RecordView::HardState(state) => hard_state = Some(state),
                RecordView::Truncate { last_kept } => {
                    if last_kept < segment.first.prev() || last_kept > last {
                        return Err(at(format!(
                            "truncation to {last_kept} outside this segment's entries [{}, {last}]",
                            segment.first
                        )));
                    }
                    // In range by the check above; first_index <= segment.first.
                    entries.truncate((last_kept.0 + 1 - first_index.0) as usize);
                    segment.entry_offsets.truncate((last_kept.0 + 1 - segment.first.0) as usize);
                    terms.truncate_after(last_kept);
                    last = last_kept;
                    last_term = terms.term(last_kept).unwrap_or(prev_term);
                }
            }
            offset += record_len;
        }
        segment.end = offset as u64;
        segments.push(segment);
        if is_last {
            active = Some(file);
        }
    }

    let mut active = active.expect("the loop visits the last segment");
    let last_path = &segments.last().expect("one segment at least").path;
    if let Some(torn) = &torn_tail {
        warn!(
            "{}: cut a torn tail at byte {} ({} bytes discarded: {}); most likely records being written \
             when the node stopped, which no sync had covered",
            torn.path.display(),
            torn.offset,
            torn.discarded_bytes,
            torn.reason
        );
        // Zeroing makes the cut durable with the sync below, and leaves no
        // stale bytes for a later recovery to mistake for records.
        let zeros = vec![0; torn.discarded_bytes as usize];
        active.write_at(torn.offset, &zeros).map_err(|e| StorageError::io("write", last_path, e))?;
    }
    // Make what was recovered durable before anyone acts on it: after a
    // process crash (not a power cut) the page cache may still hold writes
    // that were never synced, and the directory may hold a segment whose
    // name was never synced.
    active.sync_data().map_err(|e| StorageError::sync(last_path, e))?;
    fs.sync_dir(dir).map_err(|e| StorageError::sync(dir, e))?;

    debug_assert!(entries.iter().zip(first_index.0..).all(|(e, i)| e.index == LogIndex(i)));
    info!("{}: recovered entries [{first_index}, {last}] in {} segment(s)", dir.display(), segments.len());
    Ok(Replayed {
        recovered: RecoveredLog {
            floor: super::Floor::default(),
            hard_state: hard_state.unwrap_or_default(),
            first_index,
            prev_term,
            entries,
            torn_tail,
        },
        segments,
        active,
        terms,
        last_term,
    })
}

#[cfg(test)]
thread_local! {
    /// An injected bug, for the simulator's tests on this thread: damage in
    /// the last segment with whole records after it is cut as a torn tail,
    /// losing synced records, instead of refused.
    pub(crate) static DAMAGE_AS_TORN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}
