//! Segment files: what the log knows of each, the terms of its entries,
//! and making a new segment durable before anything is written to it.

use std::path::{Path, PathBuf};

use super::error::StorageError;
use super::format::{encode_hard_state, encode_header, SegmentHeader, SEGMENT_HEADER_BYTES};
use super::fs::{Fs, FsFile};
use super::recovery::{segment_name, TEMP_EXTENSION};
use crate::types::{HardState, LogIndex, Term};

/// One segment file as the log knows it.
#[derive(Clone, Debug)]
pub(crate) struct Segment {
    /// The index its header names: its first entry, when it has one.
    pub(crate) first: LogIndex,
    /// The term of the entry before `first`.
    pub(crate) prev_term: Term,
    pub(crate) path: PathBuf,
    /// The byte offset of each live entry, `first + i` at position `i`.
    /// Invariant: strictly increasing, each below `end`.
    pub(crate) entry_offsets: Vec<u64>,
    /// Where the next record goes: the end of the last whole record.
    pub(crate) end: u64,
}

impl Segment {
    pub(crate) fn new(first: LogIndex, prev_term: Term, path: PathBuf) -> Segment {
        Segment { first, prev_term, path, entry_offsets: Vec::new(), end: SEGMENT_HEADER_BYTES as u64 }
    }

    /// One past its last live entry: where the next segment must start.
    pub(super) fn end_index(&self) -> LogIndex {
        self.first.plus(self.entry_offsets.len() as u64)
    }
}

/// The term of every entry, stored as runs (terms change rarely).
#[derive(Clone, Debug, Default)]
pub(crate) struct TermRuns {
    /// The entry just before the log and its term.
    base: (LogIndex, Term),
    /// `(first index of the run, term)`, by index. Invariant: indexes
    /// increasing, terms increasing, every index above `base.0`.
    runs: Vec<(LogIndex, Term)>,
}

impl TermRuns {
    pub(crate) fn new(first: LogIndex, prev_term: Term) -> TermRuns {
        TermRuns { base: (first.prev(), prev_term), runs: Vec::new() }
    }

    pub(crate) fn push(&mut self, index: LogIndex, term: Term) {
        if self.runs.last().map(|&(_, t)| t) != Some(term) {
            self.runs.push((index, term));
        }
    }

    /// The term of `index`, for an index from the base to the last pushed.
    pub(crate) fn term(&self, index: LogIndex) -> Option<Term> {
        if index == self.base.0 {
            return Some(self.base.1);
        }
        if index < self.base.0 {
            return None;
        }
        let run = self.runs.partition_point(|&(start, _)| start <= index);
        run.checked_sub(1).map(|r| self.runs[r].1)
    }

    pub(crate) fn truncate_after(&mut self, last_kept: LogIndex) {
        let keep = self.runs.partition_point(|&(start, _)| start <= last_kept);
        self.runs.truncate(keep);
    }

    pub(super) fn compact(&mut self, first: LogIndex, prev_term: Term) {
        let covering = self.runs.partition_point(|&(start, _)| start <= first);
        if covering > 0 {
            self.runs.drain(..covering - 1);
            self.runs[0].0 = self.runs[0].0.max(first);
        }
        self.base = (first.prev(), prev_term);
    }
}

/// Creates the segment `header` describes, starting with `hard_state`, and
/// makes it durable before anything is written to it: written under a
/// temporary name, preallocated, fsynced, renamed into place (replacing a
/// segment of the same name), and the directory fsynced. A crash at any
/// point leaves either no segment or a whole one (and maybe a temporary
/// file, which the next open removes).
pub(super) fn create_segment<F: Fs>(
    fs: &F,
    dir: &Path,
    header: SegmentHeader,
    hard_state: HardState,
    size_bytes: u64,
    scratch: &mut Vec<u8>,
) -> Result<(F::File, Segment), StorageError> {
    let name = segment_name(header.first_index);
    let temp = dir.join(format!("{name}{TEMP_EXTENSION}"));
    let file = write_segment_file(fs, &temp, header, hard_state, size_bytes, scratch)?;
    let segment = put_in_place(fs, dir, &temp, header, scratch.len())?;
    Ok((file, segment))
}

/// Makes the preallocated `spare` (at `from`) the segment `header`
/// describes, as [`create_segment`] does a new file: its header and
/// `hard_state` written and fsynced, then renamed into place and the
/// directory fsynced.
pub(super) fn segment_from_spare<F: Fs>(
    fs: &F,
    dir: &Path,
    mut spare: F::File,
    from: &Path,
    header: SegmentHeader,
    hard_state: HardState,
    scratch: &mut Vec<u8>,
) -> Result<(F::File, Segment), StorageError> {
    scratch.clear();
    encode_header(header, scratch);
    encode_hard_state(hard_state, scratch);
    spare.write_at(0, scratch).map_err(|e| StorageError::io("write", from, e))?;
    spare.sync_data().map_err(|e| StorageError::sync(from, e))?;
    let segment = put_in_place(fs, dir, from, header, scratch.len())?;
    Ok((spare, segment))
}

/// Renames the synced segment file at `from` to the name `header` gives it
/// and fsyncs the directory; returns the segment, whose first `written`
/// bytes (its header and hard state) are its only records.
fn put_in_place<F: Fs>(
    fs: &F,
    dir: &Path,
    from: &Path,
    header: SegmentHeader,
    written: usize,
) -> Result<Segment, StorageError> {
    let path = dir.join(segment_name(header.first_index));
    fs.rename(from, &path).map_err(|e| StorageError::io("rename", from, e))?;
    fs.sync_dir(dir).map_err(|e| StorageError::sync(dir, e))?;
    let mut segment = Segment::new(header.first_index, header.prev_term, path);
    segment.end = written as u64;
    Ok(segment)
}

/// Writes a new segment file at `temp`: preallocated, with its header and
/// `hard_state`, and fsynced. The caller gives it its real name. Leaves the
/// bytes written in `scratch`.
pub(super) fn write_segment_file<F: Fs>(
    fs: &F,
    temp: &Path,
    header: SegmentHeader,
    hard_state: HardState,
    size_bytes: u64,
    scratch: &mut Vec<u8>,
) -> Result<F::File, StorageError> {
    let mut file = fs.create(temp).map_err(|e| StorageError::out_of_space("create", temp, e))?;
    if let Err(e) = file.allocate(size_bytes) {
        // Best effort: leave no half-made file using space on a full disk.
        let _ = fs.remove(temp);
        return Err(StorageError::out_of_space("preallocate", temp, e));
    }
    scratch.clear();
    encode_header(header, scratch);
    encode_hard_state(hard_state, scratch);
    file.write_at(0, scratch).map_err(|e| StorageError::io("write", temp, e))?;
    file.sync_data().map_err(|e| StorageError::sync(temp, e))?;
    Ok(file)
}
