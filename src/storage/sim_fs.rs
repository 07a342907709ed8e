//! An in-memory file system that loses what a power cut loses.
//!
//! Every file (an inode, reachable by name) keeps two images: what is
//! durable and what a reader sees now, plus the writes made since the last
//! `sync_data`, in order. Directory changes (create, rename, remove) are
//! likewise pending until `sync_dir`. [`SimFs::crash`] then keeps, for every
//! file and for the directory independently, the synced state plus an
//! arbitrary prefix of the pending operations, and may tear the first lost
//! write: a prefix of its bytes lands, and the rest of the sector it was cut
//! in may fill with garbage. Everything is drawn from the caller's [`Rng`]
//! and every collection is ordered, so one seed gives one outcome.
//!
//! This is deliberately harsher than ext4 in one way (files do not keep their
//! write order relative to each other) and kinder in another (within a file,
//! later writes never land before earlier ones); the log's ordering argument
//! in [`crate::storage`] relies on neither.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::fs::{Fs, FsFile};
use crate::rng::Rng;

/// The sector size a crash tears at.
pub const SIM_SECTOR_BYTES: usize = 512;

/// A simulated file system shared by handles: clone it to keep a handle
/// across a simulated crash of the process that used it.
///
/// Deterministic: given the same operations and the same [`Rng`] state,
/// [`SimFs::crash`] leaves the same bytes.
#[derive(Clone, Debug, Default)]
pub struct SimFs {
    state: Arc<Mutex<SimState>>,
}

#[derive(Debug, Default)]
struct SimState {
    inodes: BTreeMap<u64, Inode>,
    next_inode: u64,
    /// The names a reader sees now.
    names: BTreeMap<PathBuf, u64>,
    /// The names a crash would leave if no pending change survived.
    durable_names: BTreeMap<PathBuf, u64>,
    /// Name changes since the last `sync_dir`, oldest first. Invariant:
    /// applying them to `durable_names` gives `names`.
    dir_ops: Vec<DirOp>,
    dirs: BTreeSet<PathBuf>,
    locks: BTreeSet<PathBuf>,
    /// Bumped by every crash; handles from an older generation fail.
    generation: u64,
    /// Total bytes the files may hold, if limited.
    capacity_bytes: Option<u64>,
    /// Fail this many upcoming syncs (file or directory) with an IO error.
    failing_syncs: u32,
    /// Every `sync_data` so far, for tests that count them.
    syncs: u64,
    /// Mutating operations (creates, renames, removes, writes, allocations
    /// and syncs) that succeeded so far.
    ops: u64,
    /// How many more mutating operations may succeed before the simulated
    /// power cut, if one is armed; none after it.
    ops_left: Option<u64>,
}

#[derive(Clone, Debug, Default)]
struct Inode {
    durable: Vec<u8>,
    current: Vec<u8>,
    /// Writes since the last sync, oldest first. Invariant: applying them to
    /// `durable` gives `current`.
    pending: Vec<DataOp>,
}

#[derive(Clone, Debug)]
enum DataOp {
    Write { offset: usize, data: Vec<u8> },
    Extend { len: usize },
}

#[derive(Clone, Debug)]
enum DirOp {
    Link { path: PathBuf, inode: u64 },
    Unlink { path: PathBuf },
    Rename { from: PathBuf, to: PathBuf },
}

impl DataOp {
    fn apply(&self, image: &mut Vec<u8>) {
        match self {
            DataOp::Write { offset, data } => write_into(image, *offset, data),
            DataOp::Extend { len } => {
                if image.len() < *len {
                    image.resize(*len, 0);
                }
            }
        }
    }
}

impl DirOp {
    fn apply(&self, names: &mut BTreeMap<PathBuf, u64>) {
        match self {
            DirOp::Link { path, inode } => {
                names.insert(path.clone(), *inode);
            }
            DirOp::Unlink { path } => {
                names.remove(path);
            }
            DirOp::Rename { from, to } => {
                if let Some(inode) = names.remove(from) {
                    names.insert(to.clone(), inode);
                }
            }
        }
    }

    fn touches(&self, dir: &Path) -> bool {
        let in_dir = |p: &PathBuf| p.parent() == Some(dir);
        match self {
            DirOp::Link { path, .. } | DirOp::Unlink { path } => in_dir(path),
            DirOp::Rename { from, to } => in_dir(from) || in_dir(to),
        }
    }
}

fn write_into(image: &mut Vec<u8>, offset: usize, data: &[u8]) {
    let end = offset + data.len();
    if image.len() < end {
        image.resize(end, 0);
    }
    image[offset..end].copy_from_slice(data);
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{}: no such file", path.display()))
}

fn to_usize(value: u64) -> io::Result<usize> {
    usize::try_from(value).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))
}

impl SimFs {
    /// An empty file system.
    pub fn new() -> SimFs {
        SimFs::default()
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        // A panic while holding the lock leaves consistent state behind
        // (every mutation completes before returning), so poisoning is moot.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Simulates a power cut: every handle and lock taken before it becomes
    /// invalid, and each file keeps what was synced plus a random prefix of
    /// its unsynced writes, the first lost write possibly torn. The
    /// directory likewise keeps a random prefix of its unsynced changes.
    pub fn crash(&self, rng: &mut Rng) {
        let mut state = self.lock();
        let state = &mut *state;
        let keep = rng.below(state.dir_ops.len() as u64 + 1) as usize;
        for op in state.dir_ops.drain(..).take(keep) {
            op.apply(&mut state.durable_names);
        }
        state.names = state.durable_names.clone();
        for inode in state.inodes.values_mut() {
            let pending = std::mem::take(&mut inode.pending);
            let keep = rng.below(pending.len() as u64 + 1) as usize;
            for op in &pending[..keep] {
                op.apply(&mut inode.durable);
            }
            if let Some(DataOp::Write { offset, data }) = pending.get(keep) {
                if rng.chance(1, 2) {
                    let cut = rng.below(data.len() as u64 + 1) as usize;
                    write_into(&mut inode.durable, *offset, &data[..cut]);
                    if cut < data.len() && rng.chance(1, 2) {
                        // The sector being written when power failed holds
                        // neither the old nor the new bytes.
                        let sector_end =
                            (offset + cut) / SIM_SECTOR_BYTES * SIM_SECTOR_BYTES + SIM_SECTOR_BYTES;
                        let garbage_end = sector_end.min(offset + data.len());
                        let garbage: Vec<u8> =
                            (offset + cut..garbage_end).map(|_| rng.next_u64() as u8).collect();
                        write_into(&mut inode.durable, offset + cut, &garbage);
                    }
                }
            }
            inode.current = inode.durable.clone();
        }
        let live: BTreeSet<u64> = state.names.values().copied().collect();
        state.inodes.retain(|inode, _| live.contains(inode));
        state.locks.clear();
        state.ops_left = None;
        state.generation += 1;
    }

    /// Arms a power cut after `count` more mutating operations (creates,
    /// renames, removes, writes, allocations, file and directory syncs):
    /// every one after that fails with an IO error and changes nothing, as
    /// if the machine stopped there. Follow it with [`SimFs::crash`] to see
    /// what survives. Stepping `count` from 0 to the [`SimFs::op_count`] of
    /// a whole operation crashes it at every step. `None` disarms it; so
    /// does a crash.
    pub fn cut_power_after(&self, count: Option<u64>) {
        self.lock().ops_left = count;
    }

    /// How many mutating operations succeeded so far: the steps
    /// [`SimFs::cut_power_after`] counts.
    pub fn op_count(&self) -> u64 {
        self.lock().ops
    }

    /// The bytes all files hold now.
    pub fn used_bytes(&self) -> u64 {
        self.lock().used_bytes()
    }

    /// Limits the total bytes all files may hold; writes and allocations
    /// beyond it fail with [`io::ErrorKind::StorageFull`]. `None` lifts it.
    pub fn set_capacity_bytes(&self, capacity_bytes: Option<u64>) {
        self.lock().capacity_bytes = capacity_bytes;
    }

    /// Makes the next `count` syncs (of files or directories) fail with an
    /// IO error, as a dying disk would. Their data stays unsynced.
    pub fn fail_next_syncs(&self, count: u32) {
        self.lock().failing_syncs = count;
    }

    /// How many times a file was synced so far.
    pub fn sync_count(&self) -> u64 {
        self.lock().syncs
    }

    /// What a reader of `path` would see now, if the file exists.
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.lock();
        let inode = state.names.get(path)?;
        state.inodes.get(inode).map(|i| i.current.clone())
    }

    /// The bytes of `path` that survive a crash, if its name does.
    pub fn durable_contents(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.lock();
        let inode = state.durable_names.get(path)?;
        state.inodes.get(inode).map(|i| i.durable.clone())
    }

    /// The paths whose names survive a crash, sorted.
    pub fn durable_paths(&self) -> Vec<std::path::PathBuf> {
        let state = self.lock();
        let mut paths: Vec<_> = state.durable_names.keys().cloned().collect();
        paths.sort();
        paths
    }

    /// Removes `path`, durably. For tests and the simulator, which replace
    /// files behind a node's back (a restored backup).
    pub fn remove_durable(&self, path: &Path) {
        let mut state = self.lock();
        state.names.remove(path);
        state.durable_names.remove(path);
    }

    /// Creates or replaces `path` with `bytes`, durably (as if written,
    /// synced, and its directory synced). For tests and fuzzing that craft
    /// files by hand.
    pub fn write_durable(&self, path: &Path, bytes: &[u8]) {
        let mut state = self.lock();
        let state = &mut *state;
        if let Some(parent) = path.parent() {
            state.dirs.insert(parent.to_path_buf());
        }
        let inode = state.next_inode;
        state.next_inode += 1;
        state
            .inodes
            .insert(inode, Inode { durable: bytes.to_vec(), current: bytes.to_vec(), pending: Vec::new() });
        state.names.insert(path.to_path_buf(), inode);
        state.durable_names.insert(path.to_path_buf(), inode);
    }

    /// XORs `mask` into the byte at `offset` of `path`, in both the durable
    /// and the current image: bit rot. Returns whether the byte exists.
    pub fn flip_bits(&self, path: &Path, offset: u64, mask: u8) -> bool {
        let mut state = self.lock();
        let Some(&inode) = state.names.get(path) else { return false };
        let Some(inode) = state.inodes.get_mut(&inode) else { return false };
        let Ok(offset) = usize::try_from(offset) else { return false };
        let mut hit = false;
        for image in [&mut inode.durable, &mut inode.current] {
            if let Some(byte) = image.get_mut(offset) {
                *byte ^= mask;
                hit = true;
            }
        }
        hit
    }

    fn file_op<T>(
        &self,
        file: &SimFile,
        op: impl FnOnce(&mut SimState, u64) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut state = self.lock();
        if state.generation != file.generation {
            return Err(io::Error::other(
                "stale file handle: the simulated machine crashed since it was opened",
            ));
        }
        op(&mut state, file.inode)
    }
}

impl SimState {
    /// Counts one mutating operation, or fails it after the power cut.
    fn spend_op(&mut self) -> io::Result<()> {
        match self.ops_left {
            Some(0) => return Err(io::Error::other("simulated power cut")),
            Some(left) => self.ops_left = Some(left - 1),
            None => {}
        }
        self.ops += 1;
        Ok(())
    }

    fn used_bytes(&self) -> u64 {
        self.inodes.values().map(|i| i.current.len() as u64).sum()
    }

    /// Fails if growing a file from `old_len` to `new_len` exceeds capacity.
    fn check_room(&self, old_len: usize, new_len: usize) -> io::Result<()> {
        let Some(capacity) = self.capacity_bytes else { return Ok(()) };
        let growth = new_len.saturating_sub(old_len) as u64;
        if growth > 0 && self.used_bytes() + growth > capacity {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "simulated disk full"));
        }
        Ok(())
    }

    fn take_sync_failure(&mut self) -> io::Result<()> {
        if self.failing_syncs > 0 {
            self.failing_syncs -= 1;
            return Err(io::Error::other("simulated fsync failure"));
        }
        Ok(())
    }

    fn inode(&mut self, inode: u64) -> io::Result<&mut Inode> {
        self.inodes.get_mut(&inode).ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "file was removed"))
    }
}

/// An open file of a [`SimFs`].
#[derive(Debug)]
pub struct SimFile {
    fs: SimFs,
    inode: u64,
    generation: u64,
}

/// A held directory lock of a [`SimFs`]; dropping it releases the lock.
#[derive(Debug)]
pub struct SimLock {
    fs: SimFs,
    dir: PathBuf,
    generation: u64,
}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut state = self.fs.lock();
        if state.generation == self.generation {
            state.locks.remove(&self.dir);
        }
    }
}

impl Fs for SimFs {
    type File = SimFile;
    type Lock = SimLock;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.lock().dirs.insert(dir.to_path_buf());
        Ok(())
    }

    fn lock_dir(&self, dir: &Path) -> io::Result<SimLock> {
        let mut state = self.lock();
        if !state.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        if !state.locks.insert(dir.to_path_buf()) {
            return Err(io::Error::new(io::ErrorKind::WouldBlock, "directory is locked"));
        }
        Ok(SimLock { fs: self.clone(), dir: dir.to_path_buf(), generation: state.generation })
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let state = self.lock();
        if !state.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        Ok(state
            .names
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(String::from))
            .collect())
    }

    fn open(&self, path: &Path) -> io::Result<SimFile> {
        let state = self.lock();
        let inode = *state.names.get(path).ok_or_else(|| not_found(path))?;
        Ok(SimFile { fs: self.clone(), inode, generation: state.generation })
    }

    fn create(&self, path: &Path) -> io::Result<SimFile> {
        let mut state = self.lock();
        let parent = path.parent().ok_or_else(|| not_found(path))?;
        if !state.dirs.contains(parent) {
            return Err(not_found(parent));
        }
        state.spend_op()?;
        let inode = state.next_inode;
        state.next_inode += 1;
        state.inodes.insert(inode, Inode::default());
        state.names.insert(path.to_path_buf(), inode);
        state.dir_ops.push(DirOp::Link { path: path.to_path_buf(), inode });
        Ok(SimFile { fs: self.clone(), inode, generation: state.generation })
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.lock();
        if !state.names.contains_key(from) {
            return Err(not_found(from));
        }
        state.spend_op()?;
        let inode = state.names.remove(from).ok_or_else(|| not_found(from))?;
        state.names.insert(to.to_path_buf(), inode);
        state.dir_ops.push(DirOp::Rename { from: from.to_path_buf(), to: to.to_path_buf() });
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        if !state.names.contains_key(path) {
            return Err(not_found(path));
        }
        state.spend_op()?;
        state.names.remove(path);
        state.dir_ops.push(DirOp::Unlink { path: path.to_path_buf() });
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.spend_op()?;
        state.take_sync_failure()?;
        let state = &mut *state;
        let mut rest = Vec::new();
        for op in state.dir_ops.drain(..) {
            if op.touches(dir) {
                op.apply(&mut state.durable_names);
            } else {
                rest.push(op);
            }
        }
        state.dir_ops = rest;
        Ok(())
    }
}

impl FsFile for SimFile {
    fn size_bytes(&self) -> io::Result<u64> {
        self.fs.file_op(self, |state, inode| Ok(state.inode(inode)?.current.len() as u64))
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.fs.file_op(self, |state, inode| {
            let image = &state.inode(inode)?.current;
            let start = to_usize(offset)?;
            let bytes =
                start.checked_add(buf.len()).and_then(|end| image.get(start..end)).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end of the file")
                })?;
            buf.copy_from_slice(bytes);
            Ok(())
        })
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.fs.file_op(self, |state, inode| {
            let offset = to_usize(offset)?;
            let old_len = state.inode(inode)?.current.len();
            state.check_room(old_len, offset + data.len())?;
            state.spend_op()?;
            let file = state.inode(inode)?;
            write_into(&mut file.current, offset, data);
            file.pending.push(DataOp::Write { offset, data: data.to_vec() });
            Ok(())
        })
    }

    fn allocate(&mut self, len: u64) -> io::Result<()> {
        self.fs.file_op(self, |state, inode| {
            let len = to_usize(len)?;
            let old_len = state.inode(inode)?.current.len();
            if len <= old_len {
                return Ok(());
            }
            state.check_room(old_len, len)?;
            state.spend_op()?;
            let file = state.inode(inode)?;
            file.current.resize(len, 0);
            file.pending.push(DataOp::Extend { len });
            Ok(())
        })
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.fs.file_op(self, |state, inode| {
            state.inode(inode)?;
            state.spend_op()?;
            state.take_sync_failure()?;
            state.syncs += 1;
            let file = state.inode(inode)?;
            for op in std::mem::take(&mut file.pending) {
                op.apply(&mut file.durable);
            }
            debug_assert_eq!(file.durable, file.current);
            Ok(())
        })
    }
}
