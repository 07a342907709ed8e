//! Snapshots on disk: a directory holding the node's newest snapshot, the
//! streams that take one and read one back (`stream`), the chunked
//! transfer that copies its file to another node, and the file's bytes
//! (`format`). The layout, the file format and the rules are in the
//! "Snapshots" section of the [`crate::storage`] docs.

mod format;

mod stream;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use log::{debug, info, warn};

use self::format::{
    check_file, index_in_range, CheckError, SnapshotFile, MIN_SNAPSHOT_FILE_BYTES, RECEIVE_EXTENSION,
    TAKE_EXTENSION,
};
pub(crate) use self::format::{parse_snapshot_name, snapshot_name};
use super::error::StorageError;
use super::fs::{Fs, FsFile, RealFs};
use crate::membership::SnapshotMeta;
use crate::types::{Bytes, LogIndex, Term};

pub use self::format::{
    MAX_SNAPSHOT_MEMBERSHIP_BYTES, SNAPSHOT_FORMAT_VERSION, SNAPSHOT_HEADER_BYTES, SNAPSHOT_MAGIC,
    SNAPSHOT_TRAILER_BYTES,
};
pub use self::stream::{SnapshotReader, SnapshotWriter};

/// The directory, inside a node's data directory, that holds its snapshots
/// (see [`open_node`](crate::storage::open_node)).
pub const SNAPSHOT_DIR: &str = "snapshots";

/// The default limit on the size of a snapshot file being received: 64 GiB.
pub const DEFAULT_SNAPSHOT_RECEIVE_BYTES_MAX: u64 = 64 << 30;

/// The most bytes [`SnapshotStore::read_chunk`] returns at once, whatever
/// the caller asks for: 16 MiB.
pub const SNAPSHOT_CHUNK_BYTES_MAX: usize = 16 << 20;

/// How a [`SnapshotStore`] behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotOptions {
    /// The largest snapshot file [`SnapshotStore::receive_chunk`] accepts,
    /// in bytes; a chunk that would take a receive past it is refused with
    /// [`StorageError::SnapshotTooLarge`], and the partial file discarded.
    /// At least the size of an empty snapshot file (48 bytes).
    pub receive_bytes_max: u64,
}

impl Default for SnapshotOptions {
    fn default() -> SnapshotOptions {
        SnapshotOptions { receive_bytes_max: DEFAULT_SNAPSHOT_RECEIVE_BYTES_MAX }
    }
}

impl SnapshotOptions {
    fn validate(&self) -> Result<(), StorageError> {
        if self.receive_bytes_max < MIN_SNAPSHOT_FILE_BYTES {
            return Err(StorageError::InvalidOptions {
                reason: format!(
                    "receive_bytes_max is {}; no snapshot file is smaller than {MIN_SNAPSHOT_FILE_BYTES} bytes",
                    self.receive_bytes_max
                ),
            });
        }
        Ok(())
    }
}

/// How far the receive of a snapshot has come.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceiveProgress {
    /// The index the snapshot being received covers.
    pub index: LogIndex,
    /// Its term.
    pub term: Term,
    /// The bytes received so far: the offset the next chunk must have.
    pub received_bytes: u64,
}

/// The snapshot the store holds.
struct Current<F: Fs> {
    path: PathBuf,
    info: SnapshotFile,
    /// Open for [`SnapshotStore::read_chunk`].
    file: F::File,
}

/// A snapshot being received.
struct Receive<F: Fs> {
    index: LogIndex,
    term: Term,
    path: PathBuf,
    file: F::File,
    /// Bytes written to `file`, all from offset 0 on.
    received_bytes: u64,
}

/// A directory of snapshot files holding the node's newest snapshot. See
/// "Snapshots" in [`crate::storage`] for the format and the crash-safety
/// argument.
///
/// Methods, by kind:
/// - open: [`SnapshotStore::open`] (the real disk),
///   [`SnapshotStore::open_with`] (any [`Fs`]); both return the current
///   snapshot's metadata, checked;
/// - taking a snapshot: [`SnapshotStore::begin`] gives a [`SnapshotWriter`]
///   to stream the data into, and [`SnapshotWriter::finish`] installs it;
/// - reading it back: [`SnapshotStore::reader`] streams the data;
/// - sending it: [`SnapshotStore::file_len`] and
///   [`SnapshotStore::read_chunk`] give the raw file;
/// - receiving one: [`SnapshotStore::receive_chunk`] in order, then
///   [`SnapshotStore::finish_receive`] (or [`SnapshotStore::abort_receive`]);
/// - upkeep: [`SnapshotStore::check`], [`SnapshotStore::remove_all_but_current`];
/// - getters: [`SnapshotStore::current`], [`SnapshotStore::receiving`],
///   [`SnapshotStore::dir`].
pub struct SnapshotStore<F: Fs = RealFs> {
    fs: F,
    dir: PathBuf,
    options: SnapshotOptions,
    /// Held for the life of the store; released on drop.
    _lock: F::Lock,
    /// The newest snapshot, checked when it was opened or installed.
    /// Invariant: its file is durable under its name.
    current: Option<Current<F>>,
    /// The receive in progress. Invariant: names another file than
    /// `current`.
    receive: Option<Receive<F>>,
    /// Why the store stopped accepting changes, after a failure that left
    /// the directory in an unknown state.
    poisoned: Option<String>,
}

impl<F: Fs> fmt::Debug for SnapshotStore<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotStore")
            .field("dir", &self.dir)
            .field("current", &self.current())
            .field("receiving", &self.receiving())
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl SnapshotStore<RealFs> {
    /// Opens (creating if needed) the snapshot directory `dir` on the real
    /// disk and locks it; see [`SnapshotStore::open_with`].
    pub fn open(
        dir: impl AsRef<Path>,
        options: SnapshotOptions,
    ) -> Result<(SnapshotStore<RealFs>, Option<SnapshotMeta>), StorageError> {
        SnapshotStore::open_with(RealFs, dir, options)
    }
}

impl<F: Fs> SnapshotStore<F> {
    /// Opens the snapshot directory `dir` on `fs`, creating it if missing,
    /// and returns the store with the newest snapshot's metadata.
    ///
    /// The newest snapshot (highest index) is checked in full first: if it
    /// is damaged the result is [`StorageError::SnapshotCorrupt`] and
    /// nothing was changed. Then leftover temporaries (interrupted takes and
    /// receives) and older snapshots are deleted. Fails with
    /// [`StorageError::Locked`] if another store has the directory open.
    pub fn open_with(
        fs: F,
        dir: impl AsRef<Path>,
        options: SnapshotOptions,
    ) -> Result<(SnapshotStore<F>, Option<SnapshotMeta>), StorageError> {
        options.validate()?;
        let dir = dir.as_ref().to_path_buf();
        fs.create_dir_all(&dir).map_err(|e| StorageError::io("create directory", &dir, e))?;
        // The snapshot directory's own name must be durable before any
        // snapshot in it is relied on.
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs.sync_dir(parent).map_err(|e| StorageError::sync(parent, e))?;
        }
        let lock = fs.lock_dir(&dir).map_err(|e| {
            if e.kind() == io::ErrorKind::WouldBlock {
                StorageError::Locked { dir: dir.clone() }
            } else {
                StorageError::io("lock", &dir, e)
            }
        })?;
        let listed = fs.list(&dir).map_err(|e| StorageError::io("list", &dir, e))?;
        let newest = listed.iter().filter_map(|name| Some((parse_snapshot_name(name)?, name))).max();
        let current = match newest {
            None => None,
            Some(((index, term), name)) => {
                let path = dir.join(name);
                let file = fs.open(&path).map_err(|e| StorageError::io("open", &path, e))?;
                let info = match check_file(&file, &path) {
                    Ok(info) => info,
                    Err(CheckError::Bad { offset, reason }) => {
                        return Err(StorageError::snapshot_corrupt(&path, offset, reason))
                    }
                    Err(CheckError::Io(e)) => return Err(e),
                };
                if (info.meta.index, info.meta.term) != (index, term) {
                    return Err(StorageError::snapshot_corrupt(
                        &path,
                        16,
                        format!(
                            "the file holds the snapshot at {} (term {}) but is named for {index} (term {})",
                            info.meta.index, info.meta.term.0, term.0
                        ),
                    ));
                }
                Some(Current { path, info, file })
            }
        };
        let mut store =
            SnapshotStore { fs, dir, options, _lock: lock, current, receive: None, poisoned: None };
        store.remove_all_but_current()?;
        let meta = store.current().cloned();
        match &meta {
            Some(meta) => info!(
                "{}: snapshot at {} (term {}), {} data bytes",
                store.dir.display(),
                meta.index,
                meta.term.0,
                store.data_len().unwrap_or(0)
            ),
            None => info!("{}: no snapshot", store.dir.display()),
        }
        Ok((store, meta))
    }

    // ---------------------------------------------------------------- getters

    /// The snapshot directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What the current snapshot covers, if there is one.
    pub fn current(&self) -> Option<&SnapshotMeta> {
        self.current.as_ref().map(|c| &c.info.meta)
    }

    /// The length of the current snapshot's file: what a transfer with
    /// [`SnapshotStore::read_chunk`] sends.
    pub fn file_len(&self) -> Option<u64> {
        self.current.as_ref().map(|c| c.info.file_len)
    }

    /// The length of the application's data in the current snapshot: what
    /// its [`SnapshotReader`] yields.
    pub fn data_len(&self) -> Option<u64> {
        self.current.as_ref().map(|c| c.info.data_len)
    }

    /// The receive in progress, if any.
    pub fn receiving(&self) -> Option<ReceiveProgress> {
        self.receive.as_ref().map(|r| ReceiveProgress {
            index: r.index,
            term: r.term,
            received_bytes: r.received_bytes,
        })
    }

    // ------------------------------------------------------------------ reads

    /// A stream of the current snapshot's data, for the application to
    /// restore its state from. Fails with [`StorageError::NoSnapshot`] if
    /// there is none. The stream owns its file: it stays readable even if
    /// a newer snapshot replaces this one meanwhile.
    pub fn reader(&self) -> Result<SnapshotReader<F>, StorageError> {
        let current = self.current.as_ref().ok_or(StorageError::NoSnapshot)?;
        let file = self.fs.open(&current.path).map_err(|e| StorageError::io("open", &current.path, e))?;
        Ok(SnapshotReader::new(file, current.path.clone(), current.info.clone()))
    }

    /// Up to `max_bytes` (and at most [`SNAPSHOT_CHUNK_BYTES_MAX`]) of the
    /// current snapshot's file from `offset`: a chunk to send to a node
    /// that lags behind the log. Empty at the end of the file; an offset
    /// past the end is refused with [`StorageError::ChunkOffset`].
    pub fn read_chunk(&self, offset: u64, max_bytes: usize) -> Result<Bytes, StorageError> {
        let current = self.current.as_ref().ok_or(StorageError::NoSnapshot)?;
        let file_len = current.info.file_len;
        let Some(remaining) = file_len.checked_sub(offset) else {
            return Err(StorageError::ChunkOffset { offset, expected: file_len });
        };
        let len = remaining.min(max_bytes.min(SNAPSHOT_CHUNK_BYTES_MAX) as u64) as usize;
        let mut chunk = vec![0; len];
        current.file.read_at(offset, &mut chunk).map_err(|e| StorageError::io("read", &current.path, e))?;
        Ok(Bytes::from(chunk))
    }

    /// Reads the current snapshot's file again and checks all of it, as
    /// [`SnapshotStore::open`] did: [`StorageError::SnapshotCorrupt`] if it
    /// changed since. `Ok` when there is no snapshot.
    pub fn check(&self) -> Result<(), StorageError> {
        let Some(current) = &self.current else { return Ok(()) };
        let path = &current.path;
        let file = self.fs.open(path).map_err(|e| StorageError::io("open", path, e))?;
        match check_file(&file, path) {
            Ok(info) if info == current.info => Ok(()),
            Ok(_) => Err(StorageError::snapshot_corrupt(path, 0, "the file changed since it was checked")),
            Err(CheckError::Bad { offset, reason }) => {
                Err(StorageError::snapshot_corrupt(path, offset, reason))
            }
            Err(CheckError::Io(e)) => Err(e),
        }
    }

    // ----------------------------------------------------------------- writes

    /// Starts taking a snapshot covering `meta`: the application streams
    /// its state into the returned writer and calls
    /// [`SnapshotWriter::finish`]. Refused with
    /// [`StorageError::SnapshotRefused`] if `meta` is not newer than the
    /// current snapshot or cannot be stored (an index outside `[1, 2^62)`,
    /// a membership that does not encode).
    pub fn begin(&mut self, meta: &SnapshotMeta) -> Result<SnapshotWriter<'_, F>, StorageError> {
        self.check_writable()?;
        let refuse =
            |reason: String| StorageError::SnapshotRefused { index: meta.index, term: meta.term, reason };
        if let Some(current) = self.current() {
            if meta.index <= current.index {
                return Err(refuse(format!("not newer than the current snapshot at {}", current.index)));
            }
        }
        let mut buf = Vec::new();
        format::encode_header(meta, &mut buf).map_err(refuse)?;
        let temp = self.dir.join(format!("{}{TAKE_EXTENSION}", snapshot_name(meta.index, meta.term)));
        let file = self.fs.create(&temp).map_err(|e| StorageError::out_of_space("create", &temp, e))?;
        debug!("{}: taking a snapshot at {} (term {})", self.dir.display(), meta.index, meta.term.0);
        Ok(SnapshotWriter::new(self, meta.clone(), temp, file, buf))
    }

    /// Writes one chunk of the snapshot file at `(index, term)` being
    /// received, and returns the bytes received so far.
    ///
    /// A chunk at offset 0 starts that receive afresh, discarding any
    /// unfinished one (its temporary file is removed). Any other chunk must
    /// continue the receive of the same snapshot at exactly the bytes
    /// received so far; otherwise it is refused with
    /// [`StorageError::ChunkOffset`], whose `expected` tells the sender
    /// where to resume (0 if this snapshot is not being received).
    /// A chunk that would take the file past
    /// [`SnapshotOptions::receive_bytes_max`] is refused with
    /// [`StorageError::SnapshotTooLarge`] and the receive discarded, as it
    /// is after a failed write. Memory use is the chunk itself.
    pub fn receive_chunk(
        &mut self,
        index: LogIndex,
        term: Term,
        offset: u64,
        data: &[u8],
    ) -> Result<u64, StorageError> {
        self.check_writable()?;
        if offset == 0 {
            if !index_in_range(index) {
                return Err(StorageError::SnapshotRefused {
                    index,
                    term,
                    reason: "its index is outside [1, 2^62)".into(),
                });
            }
            self.abort_receive();
            let path = self.dir.join(format!("{}{RECEIVE_EXTENSION}", snapshot_name(index, term)));
            let file = self.fs.create(&path).map_err(|e| StorageError::out_of_space("create", &path, e))?;
            debug!("{}: receiving a snapshot at {index} (term {})", self.dir.display(), term.0);
            self.receive = Some(Receive { index, term, path, file, received_bytes: 0 });
        }
        let max_bytes = self.options.receive_bytes_max;
        let Some(receive) = self.receive.as_mut().filter(|r| (r.index, r.term) == (index, term)) else {
            return Err(StorageError::ChunkOffset { offset, expected: 0 });
        };
        if offset != receive.received_bytes {
            return Err(StorageError::ChunkOffset { offset, expected: receive.received_bytes });
        }
        let len_bytes = offset.saturating_add(data.len() as u64);
        let written = if len_bytes > max_bytes {
            Err(StorageError::SnapshotTooLarge { index, term, len_bytes, max_bytes })
        } else {
            receive
                .file
                .write_at(offset, data)
                .map_err(|e| StorageError::out_of_space("write", &receive.path, e))
        };
        match written {
            Ok(()) => {
                receive.received_bytes = len_bytes;
                Ok(len_bytes)
            }
            Err(e) => {
                self.abort_receive();
                Err(e)
            }
        }
    }

    /// Finishes receiving the snapshot at `(index, term)`: checks the whole
    /// file (trailer, checksum, and that it names this index and term),
    /// fsyncs it, and installs it as the current snapshot, removing the
    /// previous one. Returns what the snapshot covers.
    ///
    /// If the store already holds a snapshot at `index` or later (taken or
    /// received meanwhile), the received one is checked and discarded and
    /// the current one stays: compare the result with
    /// [`SnapshotStore::current`]. A file that does not check out is
    /// refused with [`StorageError::SnapshotRefused`] and discarded; the
    /// sender must send it again from offset 0.
    pub fn finish_receive(&mut self, index: LogIndex, term: Term) -> Result<SnapshotMeta, StorageError> {
        self.check_writable()?;
        let refuse = |reason: String| StorageError::SnapshotRefused { index, term, reason };
        let receive = match self.receive.take() {
            Some(r) if (r.index, r.term) == (index, term) => r,
            other => {
                self.receive = other;
                return Err(refuse(
                    "no receive of this snapshot is in progress; send it from offset 0".into(),
                ));
            }
        };
        let Receive { path, mut file, .. } = receive;
        let discard = |fs: &F| {
            // Best effort: open removes any temporary left behind.
            let _ = fs.remove(&path);
        };
        let info = match check_file(&file, &path) {
            Ok(info) => info,
            Err(CheckError::Bad { offset, reason }) => {
                discard(&self.fs);
                return Err(refuse(format!(
                    "the file received does not check out at byte {offset}: {reason}"
                )));
            }
            Err(CheckError::Io(e)) => {
                discard(&self.fs);
                return Err(e);
            }
        };
        if (info.meta.index, info.meta.term) != (index, term) {
            discard(&self.fs);
            return Err(refuse(format!(
                "the file received holds the snapshot at {} (term {})",
                info.meta.index, info.meta.term.0
            )));
        }
        if let Some(current) = self.current() {
            if current.index >= index {
                debug!(
                    "{}: received snapshot at {index} discarded: the store has one at {}",
                    self.dir.display(),
                    current.index
                );
                discard(&self.fs);
                return Ok(info.meta);
            }
        }
        if let Err(e) = file.sync_data() {
            discard(&self.fs);
            return Err(StorageError::sync(&path, e));
        }
        let meta = info.meta.clone();
        self.install(&path, info, file)?;
        Ok(meta)
    }

    /// Abandons the receive in progress, if any, removing its temporary
    /// file (best effort: the next open removes what is left).
    pub fn abort_receive(&mut self) {
        if let Some(receive) = self.receive.take() {
            debug!("{}: receive of snapshot at {} abandoned", self.dir.display(), receive.index);
            let _ = self.fs.remove(&receive.path);
        }
    }

    /// Removes every file of the directory that is a snapshot or a
    /// snapshot's temporary, except the current snapshot and the receive in
    /// progress, and makes the removals durable. [`SnapshotStore::open`]
    /// calls it; call it again after an error left files behind.
    pub fn remove_all_but_current(&mut self) -> Result<(), StorageError> {
        self.check_writable()?;
        let listed = self.fs.list(&self.dir).map_err(|e| StorageError::io("list", &self.dir, e))?;
        let keep: Vec<&Path> = self
            .current
            .iter()
            .map(|c| c.path.as_path())
            .chain(self.receive.iter().map(|r| r.path.as_path()))
            .collect();
        let mut removed = 0;
        for name in listed {
            let base = name
                .strip_suffix(TAKE_EXTENSION)
                .or_else(|| name.strip_suffix(RECEIVE_EXTENSION))
                .unwrap_or(&name);
            let path = self.dir.join(&name);
            if parse_snapshot_name(base).is_none() || keep.contains(&path.as_path()) {
                continue;
            }
            self.fs.remove(&path).map_err(|e| StorageError::io("remove", &path, e))?;
            debug!("{}: removed {name}", self.dir.display());
            removed += 1;
        }
        if removed > 0 {
            self.fs.sync_dir(&self.dir).map_err(|e| StorageError::sync(&self.dir, e))?;
        }
        Ok(())
    }

    // -------------------------------------------------------------- internals

    fn check_writable(&self) -> Result<(), StorageError> {
        match &self.poisoned {
            Some(cause) => Err(StorageError::Poisoned { cause: cause.clone() }),
            None => Ok(()),
        }
    }

    fn poison(&mut self, error: StorageError) -> StorageError {
        if self.poisoned.is_none() {
            log::error!("{}: the snapshot store stops accepting changes: {error}", self.dir.display());
            self.poisoned = Some(error.to_string());
        }
        error
    }

    /// Renames the whole, fsynced snapshot file `from` into place, makes
    /// that durable, and only then removes the previous snapshot. A failure
    /// of the rename or the directory fsync poisons the store: whether the
    /// new name is durable is unknown.
    fn install(&mut self, from: &Path, info: SnapshotFile, file: F::File) -> Result<(), StorageError> {
        let path = self.dir.join(snapshot_name(info.meta.index, info.meta.term));
        if let Err(e) = self.fs.rename(from, &path) {
            return Err(self.poison(StorageError::io("rename", from, e)));
        }
        if let Err(e) = self.fs.sync_dir(&self.dir) {
            return Err(self.poison(StorageError::sync(&self.dir, e)));
        }
        info!(
            "{}: snapshot at {} (term {}) installed, {} data bytes",
            self.dir.display(),
            info.meta.index,
            info.meta.term.0,
            info.data_len
        );
        let previous = self.current.replace(Current { path, info, file });
        if let Some(previous) = previous {
            // Not synced: if a crash brings it back, open removes it again.
            if let Err(e) = self.fs.remove(&previous.path) {
                warn!("{}: could not remove the previous snapshot: {e}", previous.path.display());
            }
        }
        Ok(())
    }
}
