//! The write-ahead log: appends, hard state, group-commit sync, reads,
//! suffix truncation and prefix compaction over segment files.

use std::ops::Range;
use std::path::{Path, PathBuf};

use log::{debug, info};

use super::error::StorageError;
use super::format::{
    self, decode_record, encode_hard_state, encode_truncate, RecordView, SegmentHeader,
    HARD_STATE_RECORD_BYTES, MAX_ENTRY_DATA_BYTES, MAX_FIRST_INDEX, SEGMENT_HEADER_BYTES,
};
use super::fs::{Fs, FsFile, RealFs};
use super::identity::{Floor, FloorFile, FLOOR_FILE};
use super::recovery::{
    finish_reset, replay, scan_dir, segment_name, RecoveredLog, RESET_EXTENSION, TEMP_EXTENSION,
};
use super::segment::{create_segment, segment_from_spare, write_segment_file, Segment, TermRuns};
use crate::types::{Entry, HardState, LogIndex, Term};

/// The file a log preallocates for its next segment (see [`Wal::write`]).
pub const SPARE_FILE: &str = "next-segment.spare";

/// How many entries the log lets pass between two automatic raises of its
/// floor (see [`Wal::set_floor_step`]).
pub const DEFAULT_FLOOR_STEP: u64 = 1024;

/// The default size segments are preallocated to: 64 MiB.
pub const DEFAULT_SEGMENT_SIZE_BYTES: u64 = 64 << 20;
/// The smallest segment size accepted (small sizes are for tests).
pub const MIN_SEGMENT_SIZE_BYTES: u64 = 256;
/// The largest segment size accepted.
pub const MAX_SEGMENT_SIZE_BYTES: u64 = 1 << 30;

/// How a [`Wal`] lays out its files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalOptions {
    /// The size each segment file is preallocated to. A segment is sealed
    /// and a new one started when the next record would not fit (a record
    /// larger than a whole segment gets a segment of its own, which grows to
    /// hold it). Between [`MIN_SEGMENT_SIZE_BYTES`] and
    /// [`MAX_SEGMENT_SIZE_BYTES`].
    pub segment_size_bytes: u64,
}

impl Default for WalOptions {
    fn default() -> WalOptions {
        WalOptions { segment_size_bytes: DEFAULT_SEGMENT_SIZE_BYTES }
    }
}

impl WalOptions {
    fn validate(&self) -> Result<(), StorageError> {
        if !(MIN_SEGMENT_SIZE_BYTES..=MAX_SEGMENT_SIZE_BYTES).contains(&self.segment_size_bytes) {
            return Err(StorageError::InvalidOptions {
                reason: format!(
                    "segment_size_bytes is {}; it must lie in [{MIN_SEGMENT_SIZE_BYTES}, {MAX_SEGMENT_SIZE_BYTES}]",
                    self.segment_size_bytes
                ),
            });
        }
        Ok(())
    }
}

/// A segmented, CRC-framed, append-only log of entries and hard states in
/// one data directory. See [`crate::storage`] for the format, the ordering
/// argument and the recovery rules.
///
/// Methods, by kind:
/// - open: [`Wal::open`] (the real disk), [`Wal::open_with`] (any [`Fs`]);
/// - writes, which reach the disk at once but are durable only after
///   [`Wal::sync`]: [`Wal::write`], [`Wal::append`], [`Wal::set_hard_state`];
/// - [`Wal::sync`]: one `fdatasync` for everything written so far;
/// - [`Wal::read`]: entries back from disk;
/// - [`Wal::compact_prefix`]: drop whole old segments;
/// - [`Wal::reset`]: replace the whole log by an empty one after a snapshot;
/// - getters: [`Wal::first_index`], [`Wal::last_index`], [`Wal::term`],
///   [`Wal::hard_state`], [`Wal::dir`].
///
/// After a fatal error (a failed write or fsync, a full disk) every later
/// write, sync or compaction returns [`StorageError::Poisoned`]; reopen the
/// directory (restart the node) to recover from what is really on disk.
#[derive(Debug)]
pub struct Wal<F: Fs = RealFs> {
    fs: F,
    dir: PathBuf,
    options: WalOptions,
    /// Held for the life of the log; released on drop.
    _lock: F::Lock,
    /// Oldest first; the last one is written to. Invariant: never empty;
    /// each starts at the previous one's `end_index()`; all but the last
    /// are durable in full.
    segments: Vec<Segment>,
    /// The last segment's file.
    active: F::File,
    terms: TermRuns,
    last_index: LogIndex,
    last_term: Term,
    /// The last hard state written (not necessarily synced).
    hard_state: HardState,
    /// Bytes were written to `active` since its last sync.
    dirty: bool,
    /// Records encoded but not yet written. Empty between calls; kept for
    /// its capacity so that writes do not allocate.
    buf: Vec<u8>,
    /// Why the log stopped, after a fatal error.
    poisoned: Option<String>,
    /// A lower bound on what the log holds durably, kept apart from it (see
    /// the `identity` module), and how far the synced log must pass it
    /// before [`Wal::sync`] raises it by itself.
    floor: FloorFile<F::File>,
    floor_step: u64,
    /// A file preallocated for the next segment, made before a write that
    /// will need one: running out of space then fails the write before it
    /// changes anything, and the log goes on (see [`StorageError::OutOfSpace`]).
    spare: Option<F::File>,
}

impl Wal<RealFs> {
    /// Opens (creating if needed) the log in `dir` on the real disk, locks
    /// the directory, and recovers what it holds. Fails with
    /// [`StorageError::Locked`] if another process has it open, and with
    /// [`StorageError::Corruption`] if the log is damaged beyond a torn tail.
    pub fn open(
        dir: impl AsRef<Path>,
        options: WalOptions,
    ) -> Result<(Wal<RealFs>, RecoveredLog), StorageError> {
        Wal::open_with(RealFs, dir, options)
    }
}

impl<F: Fs> Wal<F> {
    /// [`Wal::open`] on the file system `fs`, for example a
    /// [`SimFs`](super::SimFs).
    pub fn open_with(
        fs: F,
        dir: impl AsRef<Path>,
        options: WalOptions,
    ) -> Result<(Wal<F>, RecoveredLog), StorageError> {
        options.validate()?;
        let dir = dir.as_ref().to_path_buf();
        fs.create_dir_all(&dir).map_err(|e| StorageError::io("create directory", &dir, e))?;
        let lock = fs.lock_dir(&dir).map_err(|e| {
            if e.kind() == std::io::ErrorKind::WouldBlock {
                StorageError::Locked { dir: dir.clone() }
            } else {
                StorageError::io("lock", &dir, e)
            }
        })?;
        let names = scan_dir(&fs, &dir)?;

        let mut buf = Vec::new();
        let (segments, active, terms, last_term, recovered) = if names.is_empty() {
            info!("{}: new log", dir.display());
            let (active, segment) = create_segment(
                &fs,
                &dir,
                SegmentHeader { first_index: LogIndex(1), prev_term: Term(0) },
                HardState::default(),
                options.segment_size_bytes,
                &mut buf,
            )?;
            let recovered = RecoveredLog { first_index: LogIndex(1), ..RecoveredLog::default() };
            (vec![segment], active, TermRuns::new(LogIndex(1), Term(0)), Term(0), recovered)
        } else {
            let r = replay(&fs, &dir, &names)?;
            (r.segments, r.active, r.terms, r.last_term, r.recovered)
        };
        buf.clear();
        let floor = FloorFile::open(&fs, &dir)?;
        let mut recovered = recovered;
        recovered.floor = floor.floor;
        let last_index = recovered.first_index.plus(recovered.entries.len() as u64).prev();
        let wal = Wal {
            fs,
            dir,
            options,
            _lock: lock,
            segments,
            active,
            terms,
            last_index,
            last_term,
            hard_state: recovered.hard_state,
            dirty: false,
            buf,
            poisoned: None,
            floor,
            floor_step: DEFAULT_FLOOR_STEP,
            spare: None,
        };
        // A spare left by a crash may be a prefix of anything: made anew
        // when needed.
        if wal
            .fs
            .list(&wal.dir)
            .map_err(|e| StorageError::io("list", &wal.dir, e))?
            .iter()
            .any(|n| n == SPARE_FILE)
        {
            let spare = wal.dir.join(SPARE_FILE);
            wal.fs.remove(&spare).map_err(|e| StorageError::io("remove", &spare, e))?;
        }
        wal.check_invariants();
        Ok((wal, recovered))
    }

    // ---------------------------------------------------------------- getters

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The index of the first entry in the log (1 unless compacted); the
    /// log is empty when it exceeds [`Wal::last_index`].
    pub fn first_index(&self) -> LogIndex {
        self.segments[0].first
    }

    /// The index of the last entry written; `first_index() - 1` when empty.
    pub fn last_index(&self) -> LogIndex {
        self.last_index
    }

    /// The term of the entry at `index`, for any index from
    /// `first_index() - 1` to `last_index()`.
    pub fn term(&self, index: LogIndex) -> Option<Term> {
        if index > self.last_index {
            return None;
        }
        self.terms.term(index)
    }

    /// The last hard state written (durable after the next [`Wal::sync`]).
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// How many segment files the log spans.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    // ----------------------------------------------------------------- writes

    /// Writes `entries` and then, if given, `hard_state`, with one write
    /// call: the shape of the core's `Persist`. If `entries[0].index` is at
    /// or below [`Wal::last_index`], every stored entry from that index on is
    /// deleted first. Durable after the next [`Wal::sync`]; a crash before
    /// that keeps a prefix of this and earlier unsynced writes, in order.
    ///
    /// # Panics
    /// If `entries` are not consecutive, their terms decrease, or the first
    /// one would leave a gap or reach into the compacted prefix: those are
    /// bugs in the caller.
    ///
    /// On a full disk, a write that needs a new segment fails with
    /// [`StorageError::OutOfSpace`] before anything is written: the log is
    /// as it was, and the same write may be tried again once space is freed.
    pub fn write(&mut self, entries: &[Entry], hard_state: Option<HardState>) -> Result<(), StorageError> {
        self.check_writable()?;
        self.check_entries(entries)?;
        debug_assert!(self.buf.is_empty());
        if let Err(e) = self.reserve_for(entries, hard_state) {
            return Err(match e {
                StorageError::OutOfSpace { .. } => e,
                e => self.poison(e),
            });
        }
        let result = self.write_records(entries, hard_state);
        self.buf.clear();
        result.map_err(|e| {
            // Past the reservation, a full disk leaves the write half done:
            // that stops the log, as any failure in the middle does.
            let e = match e {
                StorageError::OutOfSpace { path, source, .. } => StorageError::DiskFull { path, source },
                e => e,
            };
            self.poison(e)
        })
    }

    /// Appends `entries`, replacing any stored suffix from the first one's
    /// index: [`Wal::write`] without a hard state.
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        self.write(entries, None)
    }

    /// Records a new hard state after everything written so far:
    /// [`Wal::write`] without entries.
    pub fn set_hard_state(&mut self, hard_state: HardState) -> Result<(), StorageError> {
        self.write(&[], Some(hard_state))
    }

    /// Makes everything written so far durable with one `fdatasync` (none
    /// if nothing was written since the last sync). Call it once per batch
    /// of writes: that is the group commit. A failure is fatal.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.check_writable()?;
        if !self.dirty {
            return Ok(());
        }
        self.sync_active().map_err(|e| self.poison(e))?;
        // The log is durable to its end now: raise the floor kept beside it
        // when the log has grown enough, or the term moved.
        let old = self.floor.floor;
        if self.last_index >= old.index.plus(self.floor_step) || self.hard_state.term > old.term {
            self.raise_floor()?;
        }
        Ok(())
    }

    /// Raises the floor kept beside the log to the log's end and current
    /// term, durably (one small fsync), if they moved. Everything written
    /// must be synced: call it right after [`Wal::sync`]. [`Wal::sync`]
    /// calls it by itself every [`Wal::set_floor_step`] entries and at every
    /// new term; a runtime may call it on a timer instead, bounding how
    /// recent a loss of synced entries recovery can miss.
    pub fn raise_floor(&mut self) -> Result<(), StorageError> {
        self.check_writable()?;
        assert!(!self.dirty, "raise the floor only over a synced log");
        let old = self.floor.floor;
        // A log shorter than its floor lost entries (recovery said so), and
        // has not got them back: keep the floor there, so that a restart
        // before the repair still knows.
        let (index, index_term) = if self.last_index >= old.index {
            (self.last_index, self.last_term)
        } else {
            (old.index, old.index_term)
        };
        let floor = Floor { index, index_term, term: self.hard_state.term.max(old.term) };
        if floor == self.floor.floor {
            return Ok(());
        }
        let path = self.dir.join(FLOOR_FILE);
        self.floor.set(floor, &path).map_err(|e| self.poison(e))
    }

    /// Puts the floor back to `floor` (durably) after a reset lowered it,
    /// when the entries it names were lost rather than dropped: until the
    /// log holds that far again, a restart must still see the loss.
    pub fn keep_floor(&mut self, floor: Floor) -> Result<(), StorageError> {
        self.check_writable()?;
        if floor == self.floor.floor {
            return Ok(());
        }
        let path = self.dir.join(FLOOR_FILE);
        self.floor.set(floor, &path).map_err(|e| self.poison(e))
    }

    /// Lowers the floor, durably, before the log drops entries at or below
    /// it: to `(index, term)`, the position the log will still hold.
    fn lower_floor(&mut self, index: LogIndex, term: Term) -> Result<(), StorageError> {
        if self.floor.floor.index <= index {
            return Ok(());
        }
        let floor = Floor { index, index_term: term, term: self.floor.floor.term };
        let path = self.dir.join(FLOOR_FILE);
        self.floor.set(floor, &path)
    }

    /// Has [`Wal::sync`] raise the floor once the log has grown by
    /// `entries` past it (1 keeps it at the log's end, at the cost of a
    /// small fsync per sync; [`DEFAULT_FLOOR_STEP`] by default). Smaller
    /// steps let recovery catch smaller losses of synced entries.
    pub fn set_floor_step(&mut self, entries: u64) {
        self.floor_step = entries.max(1);
    }

    /// The floor last made durable.
    pub fn floor(&self) -> Floor {
        self.floor.floor
    }

    /// Deletes whole segments all of whose entries lie below `below`, once
    /// a snapshot covers them, and returns the new [`Wal::first_index`]. The
    /// segment being written is never deleted, so some entries below
    /// `below` usually remain. The deletion is durable on return.
    pub fn compact_prefix(&mut self, below: LogIndex) -> Result<LogIndex, StorageError> {
        self.check_writable()?;
        let mut removed = 0;
        let mut result = Ok(());
        while removed + 1 < self.segments.len() && self.segments[removed + 1].first <= below {
            let path = &self.segments[removed].path;
            if let Err(e) = self.fs.remove(path) {
                result = Err(StorageError::io("remove", path, e));
                break;
            }
            removed += 1;
        }
        if removed > 0 {
            self.segments.drain(..removed);
            let first = self.segments[0].first;
            self.terms.compact(first, self.segments[0].prev_term);
            if result.is_ok() {
                result = self.fs.sync_dir(&self.dir).map_err(|e| StorageError::sync(&self.dir, e));
            }
            debug!("{}: compacted {removed} segment(s); log starts at {first}", self.dir.display());
        }
        result.map_err(|e| self.poison(e))?;
        self.check_invariants();
        Ok(self.first_index())
    }

    /// Discards every entry and makes the log empty, continuing after
    /// `(after, term)`: then [`Wal::first_index`] is `after + 1`,
    /// [`Wal::last_index`] is `after` and `term(after)` is `Some(term)`. The
    /// hard state stays. Call it after installing a snapshot that ends at
    /// `(after, term)` when the log does not continue it (the log ends
    /// before `after`, or holds another term there); `after` may lie below,
    /// inside or above the current log. Durable on return.
    ///
    /// A crash at any point leaves either the old log (everything written
    /// before the call, which it syncs first) or the new empty one, never a
    /// mix: the new segment is written whole under a temporary name and
    /// fsynced, renamed to `<name>.reset` (the commit point), the old
    /// segments are removed, and it is renamed into place; recovery
    /// finishes a reset it finds committed. See "Reset" in
    /// [`crate::storage`].
    ///
    /// # Panics
    /// If `after` is 0 with a term other than 0 (index 0 has term 0), or
    /// `after` is at or beyond `2^62`, past any log: bugs in the caller, who
    /// takes `after` from a verified snapshot.
    pub fn reset(&mut self, after: LogIndex, term: Term) -> Result<(), StorageError> {
        self.check_writable()?;
        assert!(after != LogIndex(0) || term == Term(0), "index 0 has term 0, not {}", term.0);
        assert!(after < MAX_FIRST_INDEX, "reset to {after}, beyond any log");
        // Room for the new segment is taken before anything changes: a
        // full disk refuses the reset and leaves the log as it was.
        let result = self.reset_files(after, term);
        result.map_err(|e| self.poison(e))?;
        self.check_invariants();
        info!(
            "{}: reset: the log is empty and continues after {after} (term {})",
            self.dir.display(),
            term.0
        );
        Ok(())
    }

    // ------------------------------------------------------------------ reads

    /// Reads the entries with indexes in `range` back from disk, checking
    /// their checksums again. Fails with [`StorageError::OutOfRange`] if the
    /// log does not hold all of them, and with [`StorageError::Corruption`]
    /// if the disk returns different bytes from those written.
    pub fn read(&self, range: Range<LogIndex>) -> Result<Vec<Entry>, StorageError> {
        let Range { start, end } = range;
        if start >= end {
            return Ok(Vec::new());
        }
        if start < self.first_index() || end > self.last_index.next() {
            return Err(StorageError::OutOfRange {
                start,
                end,
                first: self.first_index(),
                last: self.last_index,
            });
        }
        let mut out = Vec::with_capacity((end.0 - start.0) as usize);
        let mut index = start;
        let from = self.segments.partition_point(|s| s.first <= start) - 1;
        let active_position = self.segments.len() - 1;
        for (position, segment) in self.segments.iter().enumerate().skip(from) {
            let upto = end.min(segment.end_index());
            if index >= end {
                break;
            }
            if index >= upto {
                continue;
            }
            let (a, b) = ((index.0 - segment.first.0) as usize, (upto.0 - segment.first.0) as usize);
            let span_start = segment.entry_offsets[a];
            let span_end = segment.entry_offsets.get(b).copied().unwrap_or(segment.end);
            let mut bytes = vec![0; (span_end - span_start) as usize];
            let io = |e| StorageError::io("read", &segment.path, e);
            if position == active_position {
                self.active.read_at(span_start, &mut bytes).map_err(io)?;
            } else {
                self.fs.open(&segment.path).and_then(|f| f.read_at(span_start, &mut bytes)).map_err(io)?;
            }
            for (i, &offset) in segment.entry_offsets[a..b].iter().enumerate() {
                let expected = index.plus(i as u64);
                let corrupt = |reason: String| StorageError::corruption(&segment.path, offset, reason);
                let rest = bytes.get((offset - span_start) as usize..).unwrap_or_default();
                match decode_record(rest) {
                    Ok((view @ RecordView::Entry { index: got, .. }, _)) if got == expected => {
                        out.extend(view.to_entry());
                    }
                    Ok(_) => return Err(corrupt(format!("expected entry {expected} here"))),
                    Err(e) => return Err(corrupt(format!("reading entry {expected} back: {e}"))),
                }
            }
            index = upto;
        }
        debug_assert_eq!(out.len() as u64, end.0 - start.0);
        Ok(out)
    }

    /// Asserts the log's internal invariants; O(segments). The simulator
    /// may call it after every step.
    pub fn check_invariants(&self) {
        assert!(!self.segments.is_empty(), "a log always has a segment to write to");
        for pair in self.segments.windows(2) {
            assert_eq!(pair[1].first, pair[0].end_index(), "segments must be contiguous");
            assert!(pair[0].first < pair[1].first, "sealed segments hold at least one entry");
        }
        let last = self.segments.last().expect("not empty");
        assert_eq!(last.end_index(), self.last_index.next(), "the last segment ends the log");
        assert_eq!(self.term(self.last_index), Some(self.last_term));
        assert!(self.buf.is_empty(), "no records are left unwritten between calls");
        for segment in &self.segments {
            debug_assert!(segment.entry_offsets.windows(2).all(|w| w[0] < w[1]));
            debug_assert!(segment.entry_offsets.last().is_none_or(|&o| o < segment.end));
        }
    }

    // -------------------------------------------------------------- internals

    fn check_writable(&self) -> Result<(), StorageError> {
        match &self.poisoned {
            Some(cause) => Err(StorageError::Poisoned { cause: cause.clone() }),
            None => Ok(()),
        }
    }

    fn poison(&mut self, error: StorageError) -> StorageError {
        if error.is_fatal() && self.poisoned.is_none() {
            log::error!("{}: the log stops accepting writes: {error}", self.dir.display());
            self.poisoned = Some(error.to_string());
        }
        error
    }

    /// Refuses oversized entries (an operating error: nothing is written)
    /// and asserts the caller's contract (a bug if broken).
    fn check_entries(&self, entries: &[Entry]) -> Result<(), StorageError> {
        let Some(first) = entries.first() else { return Ok(()) };
        if let Some(big) = entries.iter().find(|e| e.data.len() > MAX_ENTRY_DATA_BYTES) {
            return Err(StorageError::EntryTooLarge {
                index: big.index,
                len_bytes: big.data.len() as u64,
                max_bytes: MAX_ENTRY_DATA_BYTES as u64,
            });
        }
        assert!(
            first.index >= self.first_index() && first.index <= self.last_index.next(),
            "entry {} would leave a gap or rewrite the compacted prefix of a log holding [{}, {}]",
            first.index,
            self.first_index(),
            self.last_index
        );
        let prev_term = self.terms.term(first.index.prev()).expect("checked to be in the log");
        assert!(first.term >= prev_term, "entry {} has a term below its predecessor's", first.index);
        for pair in entries.windows(2) {
            assert_eq!(pair[1].index, pair[0].index.next(), "entries must be consecutive");
            assert!(pair[1].term >= pair[0].term, "entry terms must not decrease");
        }
        Ok(())
    }

    /// Makes sure the next segment can be had before a write that will fill
    /// the active one: preallocates the spare now, while failing changes
    /// nothing. (A write that would fill more than one more segment takes
    /// the others as it goes, as a failure there still stops the log.)
    fn reserve_for(&mut self, entries: &[Entry], hard_state: Option<HardState>) -> Result<(), StorageError> {
        if self.spare.is_some() {
            return Ok(());
        }
        let mut needed: u64 = entries.iter().map(|e| format::entry_record_bytes(e) as u64).sum();
        needed += if hard_state.is_some() { HARD_STATE_RECORD_BYTES as u64 } else { 0 };
        if entries.first().is_some_and(|e| e.index <= self.last_index) {
            needed += format::TRUNCATE_RECORD_BYTES as u64;
        }
        let end = self.segments.last().expect("never empty").end;
        if end + needed <= self.options.segment_size_bytes {
            return Ok(());
        }
        let path = self.dir.join(SPARE_FILE);
        let mut file = self.fs.create(&path).map_err(|e| StorageError::out_of_space("create", &path, e))?;
        if let Err(e) = file.allocate(self.options.segment_size_bytes) {
            // Leave no half-made file using space on a full disk.
            let _ = self.fs.remove(&path);
            return Err(StorageError::out_of_space("preallocate", &path, e));
        }
        self.spare = Some(file);
        Ok(())
    }

    fn write_records(
        &mut self,
        entries: &[Entry],
        hard_state: Option<HardState>,
    ) -> Result<(), StorageError> {
        if let Some(first) = entries.first() {
            if first.index <= self.last_index {
                let kept = first.index.prev();
                let kept_term = self.terms.term(kept).expect("the truncation point is in the log");
                self.lower_floor(kept, kept_term)?;
                self.truncate_after(kept)?;
            }
            for entry in entries {
                self.make_room(format::entry_record_bytes(entry))?;
                let segment = self.segments.last_mut().expect("never empty");
                segment.entry_offsets.push(segment.end + self.buf.len() as u64);
                format::encode_entry(entry, &mut self.buf);
                self.terms.push(entry.index, entry.term);
                self.last_index = entry.index;
                self.last_term = entry.term;
            }
        }
        if let Some(hard_state) = hard_state {
            self.make_room(HARD_STATE_RECORD_BYTES)?;
            encode_hard_state(hard_state, &mut self.buf);
            self.hard_state = hard_state;
        }
        self.flush()
    }

    /// The file work of [`Wal::reset`]; on error the caller poisons the log,
    /// whose segment list may no longer match the directory.
    fn reset_files(&mut self, after: LogIndex, term: Term) -> Result<(), StorageError> {
        // Everything written so far becomes durable first, so that a crash
        // before the commit point leaves the old log as the caller last saw
        // it, and the new segment's hard state is never ahead of it.
        self.flush()?;
        if self.dirty {
            self.sync_active()?;
        }
        self.lower_floor(after, term)?;
        let header = SegmentHeader { first_index: after.next(), prev_term: term };
        let name = segment_name(header.first_index);
        let path = self.dir.join(&name);
        let temp = self.dir.join(format!("{name}{TEMP_EXTENSION}"));
        let staged = self.dir.join(format!("{name}{RESET_EXTENSION}"));
        let mut scratch = Vec::with_capacity(SEGMENT_HEADER_BYTES + HARD_STATE_RECORD_BYTES);
        let file = write_segment_file(
            &self.fs,
            &temp,
            header,
            self.hard_state,
            self.options.segment_size_bytes,
            &mut scratch,
        )?;
        self.fs.rename(&temp, &staged).map_err(|e| StorageError::io("rename", &temp, e))?;
        self.fs.sync_dir(&self.dir).map_err(|e| StorageError::sync(&self.dir, e))?;
        let old: Vec<PathBuf> = self.segments.iter().map(|s| s.path.clone()).collect();
        finish_reset(&self.fs, &self.dir, &old, &staged, &path)?;
        let mut segment = Segment::new(header.first_index, header.prev_term, path);
        segment.end = scratch.len() as u64;
        self.segments = vec![segment];
        self.active = file;
        self.terms = TermRuns::new(header.first_index, term);
        self.last_index = after;
        self.last_term = term;
        self.dirty = false;
        Ok(())
    }

    /// Deletes every entry after `last_kept` with a truncate record in the
    /// segment that holds `last_kept + 1`. If that is an older segment, the
    /// newer ones are removed first (see "Truncation across segments" in the
    /// module docs for why this order is safe).
    fn truncate_after(&mut self, last_kept: LogIndex) -> Result<(), StorageError> {
        debug_assert!(last_kept < self.last_index);
        let active_first = self.segments.last().expect("never empty").first;
        if last_kept.next() < active_first {
            self.flush()?;
            self.sync_active()?;
            let keep = self.segments.partition_point(|s| s.first <= last_kept.next());
            assert!(keep >= 1, "the first segment starts at or before any index the log may truncate to");
            let holder = &mut self.segments[keep - 1];
            let mut file =
                self.fs.open(&holder.path).map_err(|e| StorageError::io("open", &holder.path, e))?;
            let mut record = Vec::with_capacity(HARD_STATE_RECORD_BYTES);
            encode_hard_state(self.hard_state, &mut record);
            file.write_at(holder.end, &record).map_err(|e| StorageError::io("write", &holder.path, e))?;
            file.sync_data().map_err(|e| StorageError::sync(&holder.path, e))?;
            holder.end += record.len() as u64;
            for segment in self.segments.drain(keep..).rev() {
                self.fs.remove(&segment.path).map_err(|e| StorageError::io("remove", &segment.path, e))?;
                self.fs.sync_dir(&self.dir).map_err(|e| StorageError::sync(&self.dir, e))?;
            }
            self.active = file;
            debug!("{}: truncation to {last_kept} reopened segment {}", self.dir.display(), active_first);
        }
        // The truncate record goes where `last_kept + 1` lives, whatever the
        // segment's size: a later segment would start after it.
        encode_truncate(last_kept, &mut self.buf);
        let segment = self.segments.last_mut().expect("never empty");
        segment.entry_offsets.truncate((last_kept.0 + 1 - segment.first.0) as usize);
        self.terms.truncate_after(last_kept);
        self.last_index = last_kept;
        self.last_term = self.terms.term(last_kept).expect("the truncation point is in the log");
        Ok(())
    }

    /// Starts a new segment if a record of `record_bytes` would not fit in
    /// the active one (after what is buffered). A freshly started segment
    /// takes any record, so a record larger than a segment cannot loop.
    fn make_room(&mut self, record_bytes: usize) -> Result<(), StorageError> {
        let segment = self.segments.last().expect("never empty");
        let pending_end = segment.end + self.buf.len() as u64;
        let fresh_end = (SEGMENT_HEADER_BYTES + HARD_STATE_RECORD_BYTES) as u64;
        if pending_end + record_bytes as u64 <= self.options.segment_size_bytes || pending_end <= fresh_end {
            return Ok(());
        }
        self.rotate()
    }

    /// Seals the active segment and starts the next one.
    fn rotate(&mut self) -> Result<(), StorageError> {
        // Sealed segments are durable before the next one exists, so that
        // nothing in the new segment (its copy of the hard state first of
        // all) is ever durable ahead of the old segment's tail.
        self.flush()?;
        self.sync_active()?;
        let active = self.segments.last().expect("never empty");
        let header = if active.entry_offsets.is_empty() {
            // It holds no entry (only hard states, or entries truncated
            // away): a successor would have the same first index, so
            // replace it instead, atomically by rename. Nothing in it is
            // lost: the replacement starts with the latest hard state.
            SegmentHeader { first_index: active.first, prev_term: active.prev_term }
        } else {
            SegmentHeader { first_index: self.last_index.next(), prev_term: self.last_term }
        };
        let mut scratch = Vec::with_capacity(SEGMENT_HEADER_BYTES + HARD_STATE_RECORD_BYTES);
        let (file, segment) = match self.spare.take() {
            Some(spare) => {
                let from = self.dir.join(SPARE_FILE);
                segment_from_spare(&self.fs, &self.dir, spare, &from, header, self.hard_state, &mut scratch)?
            }
            None => create_segment(
                &self.fs,
                &self.dir,
                header,
                self.hard_state,
                self.options.segment_size_bytes,
                &mut scratch,
            )?,
        };
        let active = self.segments.last().expect("never empty");
        if active.entry_offsets.is_empty() {
            *self.segments.last_mut().expect("never empty") = segment;
        } else {
            self.segments.push(segment);
        }
        self.active = file;
        self.dirty = false;
        debug!("{}: started segment {}", self.dir.display(), header.first_index);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StorageError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let segment = self.segments.last_mut().expect("never empty");
        self.active
            .write_at(segment.end, &self.buf)
            .map_err(|e| StorageError::io("write", &segment.path, e))?;
        segment.end += self.buf.len() as u64;
        self.buf.clear();
        self.dirty = true;
        Ok(())
    }

    fn sync_active(&mut self) -> Result<(), StorageError> {
        let path = &self.segments.last().expect("never empty").path;
        self.active.sync_data().map_err(|e| StorageError::sync(path, e))?;
        self.dirty = false;
        Ok(())
    }
}
