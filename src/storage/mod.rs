//! Durable storage: a segmented, CRC-framed, append-only log of entries and
//! hard states, with group commit and honest crash recovery; a store of
//! snapshot files; and the reconciliation of the two when a node starts.
//!
//! [`Wal`] is what a runtime's log-writer thread drives: [`Wal::open`] a data
//! directory (locked with fs2) and get back a [`RecoveredLog`]; then, per
//! batch of the core's `Persist` writes, [`Wal::write`] each one and
//! [`Wal::sync`] once (one `fdatasync` for the whole batch: the group
//! commit). [`Wal::read`] serves old entries to slow followers from disk;
//! [`Wal::compact_prefix`] drops old segments under a snapshot, and
//! [`Wal::reset`] replaces the whole log by an empty one after a snapshot
//! the log does not continue.
//!
//! [`SnapshotStore`] keeps the node's newest snapshot in a directory of its
//! own: taken with [`SnapshotStore::begin`] (a [`SnapshotWriter`] the
//! application streams its state into), read back with a
//! [`SnapshotReader`], sent to a lagging node as raw chunks and received
//! from a leader with [`SnapshotStore::receive_chunk`]. Its file format and
//! rules are in "Snapshots" below.
//!
//! [`open_node`] opens both for a node (the log in the data directory, the
//! snapshots in its [`SNAPSHOT_DIR`] subdirectory) and reconciles them into
//! the [`NodeState`] the node starts from.
//!
//! All file access goes through the [`Fs`] trait: [`RealFs`] is the disk,
//! [`SimFs`] an in-memory file system whose [`SimFs::crash`] loses what a
//! power cut may lose, so the simulator can run the real recovery code.
//!
//! This layer depends on [`crate::types`] and [`crate::membership`] (and
//! [`crate::rng`] for [`SimFs::crash`]) only; turning a [`RecoveredLog`]
//! into the core's `RecoveredState` is the runtime's job.
//!
//! # The one ordering rule
//!
//! A crash must never leave a later write durable while an earlier one is
//! not; above all, a hard state (its commit index, its vote) must never be
//! durable ahead of the entries written before it. So hard states are not
//! kept in a side file: they are records in the same append-only stream as
//! the entries, and recovery replays the stream in order. Within one file a
//! crash keeps a prefix of the unsynced writes (a torn record ends the
//! prefix); across files the log keeps order by syncing: a segment is
//! fsynced in full before the next one is created, and every new segment
//! starts with a copy of the latest hard state, so that deleting older
//! segments never loses it.
//!
//! # On disk
//!
//! A data directory holds a `LOCK` file and segment files named by the
//! index their header names, zero-padded to 20 digits:
//! `00000000000000000001.wal`. A segment is first written as `<name>.tmp`,
//! preallocated ([`WalOptions::segment_size_bytes`], default 64 MiB),
//! given its header and the current hard state, fsynced, renamed into place
//! and the directory fsynced: a segment under its real name is always whole.
//! A node's data directory also holds its snapshot directory,
//! [`SNAPSHOT_DIR`], which the log never reads.
//!
//! Segment header ([`SEGMENT_HEADER_BYTES`] = 40), little-endian:
//!
//! | offset | size | field                                                   |
//! |--------|------|---------------------------------------------------------|
//! | 0      | 8    | magic [`SEGMENT_MAGIC`] (`oar-wal\0`)                   |
//! | 8      | 4    | format version, [`FORMAT_VERSION`]                      |
//! | 12     | 4    | reserved, zero                                          |
//! | 16     | 8    | first index: the index of the segment's first entry     |
//! | 24     | 8    | previous term: the term of entry `first index - 1`      |
//! | 32     | 4    | CRC32C of bytes 0..32                                   |
//! | 36     | 4    | reserved, zero                                          |
//!
//! Then records, back to back, then zeros (the preallocated rest). Record
//! ([`RECORD_HEADER_BYTES`] = 9 before the payload):
//!
//! | offset | size | field                                                   |
//! |--------|------|---------------------------------------------------------|
//! | 0      | 4    | payload length `n`                                      |
//! | 4      | 4    | CRC32C of the length, kind and payload (bytes 0..4 and 8..9+n) |
//! | 8      | 1    | kind: 1 entry, 2 hard state, 3 truncate                 |
//! | 9      | n    | payload                                                 |
//!
//! Payloads:
//!
//! | kind           | payload                                                       |
//! |----------------|---------------------------------------------------------------|
//! | 1 entry        | index `u64`, term `u64`, entry kind `u8` (0 blank, 1 command), data (`n - 17` bytes, at most [`MAX_ENTRY_DATA_BYTES`]) |
//! | 2 hard state   | term `u64`, vote `u64` (0 = none), commit `u64`; `n = 24`      |
//! | 3 truncate     | last kept index `u64`: entries after it are deleted; `n = 8`  |
//!
//! The CRC covers the length so that a torn length cannot make a valid
//! record out of the bytes that follow. Entry records carry their index so
//! that replay checks consecutiveness instead of trusting positions.
//!
//! # Writing
//!
//! - An entry whose index is at or below the last one deletes the suffix
//!   from there: a truncate record is written, then the entries, in one
//!   write call. Nothing is ever overwritten in place, so a torn write can
//!   never splice new bytes onto old ones.
//! - A segment is sealed when the next record would not fit: buffered
//!   records are written, the segment is fsynced, and the next is created
//!   (a segment that holds no entry is replaced under its own name
//!   instead, so names stay unique and increasing).
//! - A truncate record goes in the segment holding the first deleted
//!   index. *Truncation across segments* (rare: a conflicting suffix longer
//!   than a segment) first syncs, appends the latest hard state to that
//!   older segment and syncs it, removes the newer segments newest first
//!   (fsyncing the directory after each), and then writes the truncate
//!   record there. A crash in the middle leaves the old log cut at a
//!   segment boundary at or after the truncation point, with the latest
//!   hard state: a prefix of a log that was durable, missing only entries
//!   the truncation deletes anyway (they conflict with the leader, so they
//!   were never committed). Never a mix of old and new entries.
//! - [`Wal::compact_prefix`] removes whole segments oldest first and syncs
//!   the directory; the hard state survives in the first kept segment.
//! - *Reset* ([`Wal::reset`] to continue after `(S, T)`) syncs what was
//!   written, writes the new segment (header: first index `S + 1`, previous
//!   term `T`; then the hard state) as `<name>.tmp`, fsyncs it, renames it
//!   to `<name>.reset` and fsyncs the directory: that is the commit point.
//!   Then it removes every old segment, fsyncs the directory, renames the
//!   new segment to `<name>` and fsyncs again. Recovery finishes a reset
//!   whose `.reset` file it finds, so a crash leaves either the old log or
//!   the new empty one, never old and new segments side by side, and never
//!   no segment at all (which would lose the hard state).
//! - Any failed write, fsync, or directory operation poisons the log
//!   ([`StorageError::Poisoned`] for every later write): after a failed
//!   fsync the page cache cannot be trusted, and nothing is retried.
//!
//! # Recovery decision table
//!
//! Segments are read in index order and their records replayed.
//!
//! | what recovery finds                                              | where                   | decision |
//! |------------------------------------------------------------------|-------------------------|----------|
//! | `*.wal.tmp` file                                                 | directory               | remove it (an interrupted segment creation; never used) |
//! | `*.wal.reset` file with a valid header named for it              | directory               | finish the reset: remove every segment, rename it into place |
//! | `*.wal.reset` file with a bad header, or two of them             | directory               | `Corruption` at offset 0 or 16, before anything is removed |
//! | no segment at all                                                | directory               | new log: create segment 1 |
//! | bad magic, version, header CRC; header index ≠ file name         | any segment             | `Corruption` at offset 0 or 16 |
//! | segment does not start where the previous ended (gap, overlap, previous term differs) | any but the first | `Corruption` at offset 16 or 24 |
//! | zero-filled bytes to the end of the file                         | any segment             | clean end of that segment |
//! | bad record (torn, short, bad CRC or kind or length) followed only by bytes that hold no whole record | last segment | **torn tail**: cut at the last whole record, zero the rest, fsync; reported in [`RecoveredLog::torn_tail`] and logged |
//! | bad record, and a whole valid record starts somewhere after it   | last segment            | `Corruption` at the bad record (damage inside the log, not a torn write) |
//! | bad record with any non-zero byte after it                       | any but the last        | `Corruption` at the bad record |
//! | entry whose index is not last + 1, or whose term decreases       | anywhere                | `Corruption` at that record |
//! | truncate record outside its segment's entries                    | anywhere                | `Corruption` at that record |
//!
//! After replay the last segment and the directory are fsynced: after a
//! process crash (rather than a power cut) the page cache may hold writes
//! no sync covered, and the node must not act on them until they are durable.
//!
//! What this cannot tell apart: a bit flip in the very last record looks
//! exactly like a torn write and is cut as one (reported, not silent). And
//! a disk that persists later sectors of an unsynced write before earlier
//! ones can leave a whole record after a torn one; that is reported as
//! `Corruption` rather than guessed at (the safe side: the node does not
//! start, no acknowledged entry is dropped).
//!
//! Decoding is total: every length is checked against the bytes that remain
//! and [`MAX_ENTRY_DATA_BYTES`] before anything is allocated, and segment
//! files above 4 GiB are refused before they are read.
//!
//! # Decisions worth knowing
//!
//! - Writes go to the file at once (one `pwrite` per [`Wal::write`]); only
//!   [`Wal::sync`] waits for the disk. Sealed segments are fsynced once, at
//!   rotation, so a sync is always a single `fdatasync` of one file.
//! - The log keeps 8 bytes per entry in memory (its offset) plus one pair
//!   per term change, so that [`Wal::read`] is one positional read per
//!   segment touched; entry data lives only on disk and in the caller.
//! - `Wal` is single-threaded (`&mut self` for writes); the runtime owns it
//!   in its log-writer thread.
//!
//! # Snapshots
//!
//! A snapshot directory ([`SNAPSHOT_DIR`] in a node's data directory)
//! holds a `LOCK` file and, between operations, one snapshot file, named
//! by the index and term it covers:
//! `snapshot-00000000000000000042-00000000000000000003.snap`. A snapshot is
//! written as `<name>.tmp` when taken and `<name>.recv` when received,
//! fsynced, renamed into place and the directory fsynced; only then is the
//! previous snapshot removed. So a name without a temporary extension always
//! stands for a whole file, and [`SnapshotStore::open`] may delete any
//! temporary it finds.
//!
//! A snapshot file ([`SNAPSHOT_HEADER_BYTES`] = 36 before the membership,
//! [`SNAPSHOT_TRAILER_BYTES`] = 12 after the data), little-endian:
//!
//! | offset         | size | field                                                      |
//! |----------------|------|------------------------------------------------------------|
//! | 0              | 8    | magic [`SNAPSHOT_MAGIC`] (`oar-snap`)                      |
//! | 8              | 4    | format version, [`SNAPSHOT_FORMAT_VERSION`]                |
//! | 12             | 4    | reserved, zero                                             |
//! | 16             | 8    | index: the last entry the snapshot covers, in `[1, 2^62)`  |
//! | 24             | 8    | term of that entry                                         |
//! | 32             | 4    | membership length `m`, at most [`MAX_SNAPSHOT_MEMBERSHIP_BYTES`] |
//! | 36             | m    | the membership at the index ([`Membership::encode`](crate::membership::Membership::encode)) |
//! | 36 + m         | d    | the application's data, opaque                             |
//! | 36 + m + d     | 8    | data length `d`                                            |
//! | 44 + m + d     | 4    | CRC32C of bytes `0 .. 44 + m + d`: everything before it    |
//!
//! The data length is redundant with the file's length, on purpose: a file
//! cut short, or grown, cannot put a valid trailer where the check looks
//! for it. The checksum covers the length too, so that no single damaged
//! field goes unseen. There is no separate header checksum: every path
//! that trusts a file ([`SnapshotStore::open`], a finished receive) first
//! checks the whole of it, reading it in pieces, so a corrupt file is a
//! typed error and never a panic or an unbounded allocation.
//!
//! Snapshot decisions worth knowing:
//!
//! - Only the newest snapshot matters. At open a damaged newest snapshot is
//!   [`StorageError::SnapshotCorrupt`], not a fall back to an older one:
//!   the log may already be compacted past the older one, and starting
//!   from it would silently lose committed entries.
//! - The snapshot's data is written and read as a stream: memory use is a
//!   fixed buffer, whatever the snapshot's size.
//! - A transfer moves the raw file, checksum and all, in chunks strictly in
//!   order; the receiver checks the whole file before installing it, so a
//!   damaged or mixed transfer is refused rather than installed.
//! - A failure after a new snapshot's file is whole (a failed rename or
//!   directory fsync) leaves the directory in an unknown state: the store
//!   refuses later changes ([`StorageError::Poisoned`]) until reopened.
//!   Failures before that only remove the temporary file.
//!
//! # Starting a node: why the reconciliation is safe
//!
//! [`open_node`] opens the log and the snapshot store and reconciles them.
//! With a snapshot at `(S, T)`:
//!
//! - A snapshot holds only committed entries, so the entry at `S` with
//!   term `T` is committed, and every node's log that holds an entry at `S`
//!   of term `T` agrees with the committed log at and below `S` (Log
//!   Matching, Raft §5.3). So when the log holds `(S, T)`, its entries
//!   after `S` continue the snapshot: keep them. Those at or below `S` are
//!   covered by the snapshot and left out of the returned state (a later
//!   [`Wal::compact_prefix`] removes them from disk).
//! - When the log ends before `S`, the snapshot supersedes all of it.
//! - When the log holds another term at `S`, that entry conflicts with a
//!   committed one, so it is not committed, and neither is any entry after
//!   it (a committed entry would imply, by Log Matching, the committed
//!   entry at `S`). Nothing committed is lost by dropping them.
//!
//! In the last two cases [`Wal::reset`] makes the log empty, continuing
//! after `(S, T)`. This is the same state as a node reaches when it installs
//! a received snapshot its log does not match, and finishing it here also
//! finishes one that a crash interrupted between installing the snapshot
//! and resetting the log.
//!
//! A log that starts after `S + 1` (or after 1 without a snapshot) is
//! missing entries that nothing else holds: it was compacted past the
//! snapshot, which no writer does. That is refused as
//! [`StorageError::Corruption`] rather than papered over by a reset, which
//! would silently drop entries this node may have acknowledged.

mod error;
mod force;
pub(crate) mod format;
mod fs;
mod identity;
mod node;
pub(crate) mod recovery;
mod segment;
mod sim_fs;
mod snapshot;
mod wal;

pub use self::error::StorageError;
pub use self::force::{force_new_cluster, ForcedCluster};
pub use self::format::{
    FORMAT_VERSION, MAX_ENTRY_DATA_BYTES, RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES, SEGMENT_MAGIC,
};
pub use self::fs::{Fs, FsFile, RealFs};
pub use self::identity::{
    new_incarnation, open_identity, read_floor, read_identity, write_identity, Floor, Identity, FLOOR_FILE,
    IDENTITY_FILE,
};
pub use self::node::{open_node, open_node_with, reconcile_floor, NodeState};
pub use self::recovery::{RecoveredLog, TornTail};
pub use self::sim_fs::{SimFile, SimFs, SimLock, SIM_SECTOR_BYTES};
pub(crate) use self::snapshot::{
    parse_snapshot_name as parse_snapshot_file_name, snapshot_name as snapshot_file_name,
};
pub use self::snapshot::{
    ReceiveProgress, SnapshotOptions, SnapshotReader, SnapshotStore, SnapshotWriter,
    DEFAULT_SNAPSHOT_RECEIVE_BYTES_MAX, MAX_SNAPSHOT_MEMBERSHIP_BYTES, SNAPSHOT_CHUNK_BYTES_MAX,
    SNAPSHOT_DIR, SNAPSHOT_FORMAT_VERSION, SNAPSHOT_HEADER_BYTES, SNAPSHOT_MAGIC, SNAPSHOT_TRAILER_BYTES,
};
pub use self::wal::{
    Wal, WalOptions, DEFAULT_FLOOR_STEP, DEFAULT_SEGMENT_SIZE_BYTES, MAX_SEGMENT_SIZE_BYTES,
    MIN_SEGMENT_SIZE_BYTES, SPARE_FILE,
};

#[cfg(test)]
mod tests;
