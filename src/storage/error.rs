//! The storage layer's one error type.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::types::{LogIndex, Term};

/// Why a storage operation failed, and what to do about it.
///
/// [`StorageError::is_fatal`] tells the runtime whether the log can go on:
/// after a fatal error every later write is refused with
/// [`StorageError::Poisoned`], because the state of the page cache and the
/// file is unknown (nothing is retried).
#[derive(Debug)]
pub enum StorageError {
    /// Another process (or another [`Wal`](super::Wal) in this one) holds the
    /// data directory's lock. Stop the other user, or point this node at its
    /// own directory.
    Locked {
        /// The data directory.
        dir: PathBuf,
    },
    /// The on-disk log is damaged in a way a crash cannot explain: a bad
    /// record before the end of the log, a gap in indexes, or a segment that
    /// does not start where the previous one ended. The node must not start:
    /// restore the directory from a replica or a backup. Nothing was changed.
    Corruption {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset of the damage in that file.
        offset: u64,
        /// What is wrong there.
        reason: String,
    },
    /// No room for what a write needed first (the log's next segment):
    /// nothing was written, and the log goes on. Not fatal: free space (or
    /// let compaction free it) and write again.
    OutOfSpace {
        /// What could not be created or grown.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The operating system's error.
        source: io::Error,
    },
    /// The disk (or the user's quota) is full in the middle of a write.
    /// Fatal: free space and restart the node; recovery keeps every whole
    /// record.
    DiskFull {
        /// The file that could not grow.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// `fsync` of a file or directory failed. Fatal: the kernel may have
    /// dropped the dirty pages, so whether the data reached the disk is
    /// unknown; restart the node to recover from what is really there.
    SyncFailed {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// Any other IO failure. Fatal when it happened while writing.
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// An earlier fatal error stopped the log (or the snapshot store); it
    /// refuses writes until it is reopened (by a restarted node).
    Poisoned {
        /// The earlier error.
        cause: String,
    },
    /// An entry's data is larger than
    /// [`MAX_ENTRY_DATA_BYTES`](super::MAX_ENTRY_DATA_BYTES). Nothing was
    /// written; the log goes on.
    EntryTooLarge {
        /// The entry's index.
        index: LogIndex,
        /// Its data length.
        len_bytes: u64,
        /// The limit.
        max_bytes: u64,
    },
    /// A read asked for entries the log does not hold (compacted, or not
    /// written yet). A leader should send a snapshot instead.
    OutOfRange {
        /// The first index asked for.
        start: LogIndex,
        /// One past the last index asked for.
        end: LogIndex,
        /// The first index the log holds.
        first: LogIndex,
        /// The last index the log holds.
        last: LogIndex,
    },
    /// The options passed to [`Wal::open`](super::Wal::open) or
    /// [`SnapshotStore::open`](super::SnapshotStore::open) make no sense.
    InvalidOptions {
        /// What is wrong.
        reason: String,
    },
    /// The newest snapshot in a snapshot directory is damaged: a short
    /// file, a bad header, a checksum that does not match. The node must not
    /// start: the log may already be compacted past any older snapshot, so
    /// there is nothing safe to fall back to. Restore the directory from a
    /// replica or a backup. Nothing was changed.
    SnapshotCorrupt {
        /// The snapshot file.
        path: PathBuf,
        /// Byte offset of the damage in that file.
        offset: u64,
        /// What is wrong there.
        reason: String,
    },
    /// A snapshot could not be taken or received: its metadata cannot be
    /// stored, it is not newer than the current one, or a received file
    /// does not verify or names another snapshot. Nothing was installed and
    /// the current snapshot is unchanged; a received snapshot must be sent
    /// again from offset 0.
    SnapshotRefused {
        /// The index the snapshot was to cover.
        index: LogIndex,
        /// Its term.
        term: Term,
        /// Why it was refused.
        reason: String,
    },
    /// A snapshot being received grew past
    /// [`SnapshotOptions::receive_bytes_max`](super::SnapshotOptions::receive_bytes_max).
    /// The partial file was discarded; raise the limit if snapshots of that
    /// size are expected.
    SnapshotTooLarge {
        /// The index of the snapshot being received.
        index: LogIndex,
        /// Its term.
        term: Term,
        /// The bytes it would have held with the refused chunk.
        len_bytes: u64,
        /// The limit.
        max_bytes: u64,
    },
    /// A snapshot chunk at an offset that cannot be used. When receiving,
    /// chunks must arrive in order: `expected` is the number of bytes
    /// received so far, where the sender should resume. When reading,
    /// `expected` is the file's length, which the offset passed.
    ChunkOffset {
        /// The offset given.
        offset: u64,
        /// The offset that would have been accepted.
        expected: u64,
    },
    /// The snapshot store holds no snapshot to read.
    NoSnapshot,
    /// The data directory's identity file is damaged, or names another node
    /// or cluster than the one being started. Nothing was changed: point the
    /// node at its own directory.
    Identity {
        /// The identity file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl StorageError {
    /// Whether the log stopped accepting writes because of this error.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            StorageError::DiskFull { .. }
                | StorageError::SyncFailed { .. }
                | StorageError::Io { .. }
                | StorageError::Poisoned { .. }
        )
    }

    /// Maps an IO error from `op` on `path`, recognising a full disk.
    pub(crate) fn io(op: &'static str, path: &Path, source: io::Error) -> StorageError {
        let path = path.to_path_buf();
        if matches!(source.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded) {
            StorageError::DiskFull { path, source }
        } else {
            StorageError::Io { op, path, source }
        }
    }

    /// Maps a failed fsync of `path`.
    pub(crate) fn sync(path: &Path, source: io::Error) -> StorageError {
        StorageError::SyncFailed { path: path.to_path_buf(), source }
    }

    /// Maps an IO error from `op` on `path` that happened before anything
    /// was written: a full disk is [`StorageError::OutOfSpace`].
    pub(crate) fn out_of_space(op: &'static str, path: &Path, source: io::Error) -> StorageError {
        if matches!(source.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded) {
            StorageError::OutOfSpace { path: path.to_path_buf(), op, source }
        } else {
            StorageError::Io { op, path: path.to_path_buf(), source }
        }
    }

    /// A damaged snapshot file.
    pub(crate) fn snapshot_corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> StorageError {
        StorageError::SnapshotCorrupt { path: path.to_path_buf(), offset, reason: reason.into() }
    }

    /// A corruption report.
    pub(crate) fn corruption(path: &Path, offset: u64, reason: impl Into<String>) -> StorageError {
        StorageError::Corruption { path: path.to_path_buf(), offset, reason: reason.into() }
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::Locked { dir } => write!(
                f,
                "data directory {} is locked by another process; stop it or use another directory",
                dir.display()
            ),
            StorageError::Corruption { path, offset, reason } => write!(
                f,
                "log corrupted in {} at byte {offset}: {reason}; refusing to start \
                 (restore this directory from a replica or backup)",
                path.display()
            ),
            StorageError::OutOfSpace { path, op, source } => write!(
                f,
                "disk full: cannot {op} {}: {source}; nothing was written, and writing resumes once space is freed",
                path.display()
            ),
            StorageError::DiskFull { path, source } => {
                write!(f, "disk full writing {}: {source}; free space and restart the node", path.display())
            }
            StorageError::SyncFailed { path, source } => write!(
                f,
                "fsync of {} failed: {source}; the log stopped, restart the node to recover",
                path.display()
            ),
            StorageError::Io { op, path, source } => write!(f, "{op} {}: {source}", path.display()),
            StorageError::Poisoned { cause } => {
                write!(f, "the log stopped after an earlier failure ({cause}); restart the node")
            }
            StorageError::EntryTooLarge { index, len_bytes, max_bytes } => {
                write!(f, "entry {index} holds {len_bytes} bytes, above the log's limit of {max_bytes}")
            }
            StorageError::OutOfRange { start, end, first, last } => write!(
                f,
                "entries [{start}, {end}) asked for, but the log holds [{first}, {last}]; \
                 older entries were compacted (send a snapshot)"
            ),
            StorageError::InvalidOptions { reason } => write!(f, "invalid storage options: {reason}"),
            StorageError::SnapshotCorrupt { path, offset, reason } => write!(
                f,
                "snapshot {} is damaged at byte {offset}: {reason}; refusing to start, as the log may be \
                 compacted past any older snapshot (restore this directory from a replica or backup)",
                path.display()
            ),
            StorageError::SnapshotRefused { index, term, reason } => {
                write!(f, "snapshot at {index} (term {}) refused: {reason}", term.0)
            }
            StorageError::SnapshotTooLarge { index, term, len_bytes, max_bytes } => write!(
                f,
                "snapshot at {index} (term {}) would hold {len_bytes} bytes, above the receive limit of \
                 {max_bytes}; raise receive_bytes_max to accept it",
                term.0
            ),
            StorageError::ChunkOffset { offset, expected } => {
                write!(f, "snapshot chunk at byte {offset} does not fit; expected byte {expected}")
            }
            StorageError::NoSnapshot => write!(f, "no snapshot is stored"),
            StorageError::Identity { path, reason } => write!(f, "{}: {reason}", path.display()),
        }
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StorageError::DiskFull { source, .. }
            | StorageError::OutOfSpace { source, .. }
            | StorageError::SyncFailed { source, .. }
            | StorageError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
