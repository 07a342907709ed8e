//! A data directory's identity, and the floor under its commit index.
//!
//! **Identity** (`IDENTITY`): which node of which cluster the directory
//! belongs to, and its [`Incarnation`], drawn at random when the directory
//! is first used and never changed. A node started on an empty or replaced
//! directory therefore speaks from a new incarnation, which the cluster
//! does not count until it is re-admitted. The file is written once (as a
//! temporary, fsynced, renamed, directory fsynced), so it is either whole
//! or absent.
//!
//! | offset | size | field                                  |
//! |--------|------|----------------------------------------|
//! | 0      | 8    | magic `oar-node`                       |
//! | 8      | 4    | format version, 1                      |
//! | 12     | 8    | node id                                |
//! | 20     | 8    | incarnation (never 0)                  |
//! | 28     | 1    | cluster id length `n`, 1 to 255        |
//! | 29     | n    | cluster id, UTF-8                      |
//! | 29 + n | 4    | CRC32C of everything before it         |
//!
//! **Floor** (`FLOOR`): a lower bound on what the log holds durably, kept
//! apart from it and rewritten in place (with its own checksum): a log
//! position it held durably (raised as the log grows, lowered *before* a
//! truncation or a reset removes it) and the latest term its hard state
//! held (raised at every new term). A log that later does not hold that
//! position lost synced entries, and with them entries this node
//! acknowledged; a hard state below the term floor lost a term, and
//! perhaps the vote cast in it. Either comes from a disk that lied about a
//! sync, or a log restored from an older copy. The node then must not vote
//! until a leader has given the entries back (see
//! `RecoveredState::repair_to`), and starts in the term after the floor's,
//! so that it can never vote twice in a term. A torn or missing floor
//! reads as zero: it can only miss a loss, never invent one.
//!
//! | offset | size | field                                  |
//! |--------|------|----------------------------------------|
//! | 0      | 8    | magic `oar-flor`                       |
//! | 8      | 8    | index of the position                  |
//! | 16     | 8    | term of the entry there                |
//! | 24     | 8    | term floor                             |
//! | 32     | 4    | CRC32C of bytes 0..32                  |

use std::path::Path;

use byteorder::{ByteOrder, LittleEndian};

use super::error::StorageError;
use super::fs::{Fs, FsFile};
use crate::types::{Incarnation, LogIndex, NodeId, Term};

/// The identity file's name in a data directory.
pub const IDENTITY_FILE: &str = "IDENTITY";
/// The floor file's name in a data directory.
pub const FLOOR_FILE: &str = "FLOOR";

const IDENTITY_MAGIC: &[u8; 8] = b"oar-node";
const IDENTITY_VERSION: u32 = 1;
const FLOOR_MAGIC: &[u8; 8] = b"oar-flor";
const FLOOR_BYTES: usize = 36;
/// An identity file is at most this long (a 255-byte cluster id).
const IDENTITY_BYTES_MAX: u64 = 29 + 255 + 4;

/// Which node of which cluster a data directory belongs to, and which
/// incarnation of that node's storage it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The node.
    pub node_id: NodeId,
    /// The directory's incarnation.
    pub incarnation: Incarnation,
    /// The cluster's name.
    pub cluster_id: String,
}

/// Reads the identity of the data directory `dir`, if it has one. A file
/// that is there but damaged is an error: the directory's identity is
/// exactly what must never be guessed.
pub fn read_identity<F: Fs>(fs: &F, dir: &Path) -> Result<Option<Identity>, StorageError> {
    let path = dir.join(IDENTITY_FILE);
    let names = fs.list(dir).map_err(|e| StorageError::io("list", dir, e))?;
    if !names.iter().any(|n| n == IDENTITY_FILE) {
        return Ok(None);
    }
    let file = fs.open(&path).map_err(|e| StorageError::io("open", &path, e))?;
    let len = file.size_bytes().map_err(|e| StorageError::io("stat", &path, e))?;
    let bad = |reason: &str| StorageError::Identity { path: path.clone(), reason: reason.to_string() };
    if !(29 + 1 + 4..=IDENTITY_BYTES_MAX).contains(&len) {
        return Err(bad("the file's length is not that of an identity"));
    }
    let mut bytes = vec![0; len as usize];
    file.read_at(0, &mut bytes).map_err(|e| StorageError::io("read", &path, e))?;
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32c::crc32c(body) != LittleEndian::read_u32(crc) {
        return Err(bad("checksum mismatch"));
    }
    if &body[..8] != IDENTITY_MAGIC || LittleEndian::read_u32(&body[8..12]) != IDENTITY_VERSION {
        return Err(bad("not an oar identity file of a known version"));
    }
    let node_id = NodeId(LittleEndian::read_u64(&body[12..20]));
    let incarnation = Incarnation(LittleEndian::read_u64(&body[20..28]));
    let n = body[28] as usize;
    if n == 0 || body.len() != 29 + n || incarnation == Incarnation::UNKNOWN || node_id == NodeId(0) {
        return Err(bad("inconsistent fields"));
    }
    let cluster_id = std::str::from_utf8(&body[29..]).map_err(|_| bad("the cluster id is not UTF-8"))?;
    Ok(Some(Identity { node_id, incarnation, cluster_id: cluster_id.to_string() }))
}

/// Writes `identity` as the identity of `dir`, durably: a temporary file,
/// fsynced, renamed into place, the directory fsynced.
pub fn write_identity<F: Fs>(fs: &F, dir: &Path, identity: &Identity) -> Result<(), StorageError> {
    assert!(identity.incarnation != Incarnation::UNKNOWN && identity.node_id != NodeId(0));
    assert!((1..=255).contains(&identity.cluster_id.len()), "cluster ids are 1 to 255 bytes");
    let mut bytes = Vec::with_capacity(IDENTITY_BYTES_MAX as usize);
    bytes.extend_from_slice(IDENTITY_MAGIC);
    bytes.extend_from_slice(&IDENTITY_VERSION.to_le_bytes());
    bytes.extend_from_slice(&identity.node_id.0.to_le_bytes());
    bytes.extend_from_slice(&identity.incarnation.0.to_le_bytes());
    bytes.push(identity.cluster_id.len() as u8);
    bytes.extend_from_slice(identity.cluster_id.as_bytes());
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    let path = dir.join(IDENTITY_FILE);
    let temp = dir.join(format!("{IDENTITY_FILE}.tmp"));
    let mut file = fs.create(&temp).map_err(|e| StorageError::io("create", &temp, e))?;
    file.write_at(0, &bytes).map_err(|e| StorageError::io("write", &temp, e))?;
    file.sync_data().map_err(|e| StorageError::sync(&temp, e))?;
    fs.rename(&temp, &path).map_err(|e| StorageError::io("rename", &temp, e))?;
    fs.sync_dir(dir).map_err(|e| StorageError::sync(dir, e))
}

/// Opens the identity of the data directory `dir` for node `node_id` of
/// cluster `cluster_id`, creating it (with a new incarnation) in a
/// directory whose storage holds nothing yet (`has_state` false: no entry,
/// no term, no snapshot; open the log first, which locks the directory).
/// Refuses, with a message saying what to fix, a directory that belongs to
/// another node or cluster, and one that holds state but no identity (made
/// by an older oar, or its `IDENTITY` deleted): its incarnation cannot be
/// known, and guessing would let a replaced disk pass for the old one.
pub fn open_identity<F: Fs>(
    fs: &F,
    dir: &Path,
    node_id: NodeId,
    cluster_id: &str,
    has_state: bool,
) -> Result<Identity, StorageError> {
    let path = dir.join(IDENTITY_FILE);
    if let Some(identity) = read_identity(fs, dir)? {
        if identity.node_id != node_id || identity.cluster_id != cluster_id {
            return Err(StorageError::Identity {
                path,
                reason: format!(
                    "this data directory belongs to node {} of cluster {:?}, not to node {} of cluster {:?}; \
                     start each node on its own directory",
                    identity.node_id.0, identity.cluster_id, node_id.0, cluster_id
                ),
            });
        }
        return Ok(identity);
    }
    if has_state {
        return Err(StorageError::Identity {
            path,
            reason: "this data directory holds a log but no identity file (it was made by an older oar, or \
                     the file was deleted), so whether it is the disk the cluster admitted cannot be known; \
                     move the directory away, start the node on an empty one, and re-admit it \
                     (oar member replace ID ID)"
                .to_string(),
        });
    }
    let identity = Identity { node_id, incarnation: new_incarnation(), cluster_id: cluster_id.to_string() };
    write_identity(fs, dir, &identity)?;
    log::info!("{}: new data directory, storage incarnation {}", dir.display(), identity.incarnation);
    Ok(identity)
}

/// A new incarnation: random, never 0. Drawn from the standard library's
/// randomly keyed hasher (seeded by the operating system) mixed with the
/// time and the process id, so two directories created anywhere, at any
/// time, differ.
pub fn new_incarnation() -> Incarnation {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    hasher.write_u128(nanos);
    hasher.write_u32(std::process::id());
    Incarnation(hasher.finish().max(1))
}

/// What a log holds durably at least, kept apart from it: see the module
/// docs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Floor {
    /// A position the log holds durably: an index...
    pub index: LogIndex,
    /// ...and the term of its entry there.
    pub index_term: Term,
    /// The latest term the log's hard state held durably.
    pub term: Term,
}

/// Reads the floor kept beside the log in `dir`: zero if there is none or
/// it is damaged.
pub fn read_floor<F: Fs>(fs: &F, dir: &Path) -> Result<Floor, StorageError> {
    let names = fs.list(dir).map_err(|e| StorageError::io("list", dir, e))?;
    if !names.iter().any(|n| n == FLOOR_FILE) {
        return Ok(Floor::default());
    }
    let path = dir.join(FLOOR_FILE);
    let file = fs.open(&path).map_err(|e| StorageError::io("open", &path, e))?;
    if file.size_bytes().map_err(|e| StorageError::io("stat", &path, e))? != FLOOR_BYTES as u64 {
        return Ok(Floor::default());
    }
    let mut bytes = [0; FLOOR_BYTES];
    file.read_at(0, &mut bytes).map_err(|e| StorageError::io("read", &path, e))?;
    let body = FLOOR_BYTES - 4;
    let valid = &bytes[..8] == FLOOR_MAGIC
        && crc32c::crc32c(&bytes[..body]) == LittleEndian::read_u32(&bytes[body..]);
    if !valid {
        return Ok(Floor::default());
    }
    Ok(Floor {
        index: LogIndex(LittleEndian::read_u64(&bytes[8..16])),
        index_term: Term(LittleEndian::read_u64(&bytes[16..24])),
        term: Term(LittleEndian::read_u64(&bytes[24..32])),
    })
}

/// The open floor file of a log, rewritten in place.
#[derive(Debug)]
pub(crate) struct FloorFile<File> {
    file: File,
    /// The floor last made durable.
    pub(crate) floor: Floor,
}

impl<File: FsFile> FloorFile<File> {
    /// Opens (creating it if needed, durably) the floor file of `dir`.
    pub(crate) fn open<F: Fs<File = File>>(fs: &F, dir: &Path) -> Result<FloorFile<File>, StorageError> {
        let floor = read_floor(fs, dir)?;
        let path = dir.join(FLOOR_FILE);
        let names = fs.list(dir).map_err(|e| StorageError::io("list", dir, e))?;
        let file = if names.iter().any(|n| n == FLOOR_FILE) {
            fs.open(&path).map_err(|e| StorageError::io("open", &path, e))?
        } else {
            let mut file = fs.create(&path).map_err(|e| StorageError::io("create", &path, e))?;
            file.write_at(0, &encode_floor(floor)).map_err(|e| StorageError::io("write", &path, e))?;
            file.sync_data().map_err(|e| StorageError::sync(&path, e))?;
            fs.sync_dir(dir).map_err(|e| StorageError::sync(dir, e))?;
            file
        };
        Ok(FloorFile { file, floor })
    }

    /// Makes `floor` durable as the new floor.
    pub(crate) fn set(&mut self, floor: Floor, path: &Path) -> Result<(), StorageError> {
        debug_assert!(floor.term >= self.floor.term);
        self.file.write_at(0, &encode_floor(floor)).map_err(|e| StorageError::io("write", path, e))?;
        self.file.sync_data().map_err(|e| StorageError::sync(path, e))?;
        self.floor = floor;
        Ok(())
    }
}

fn encode_floor(floor: Floor) -> [u8; FLOOR_BYTES] {
    let mut bytes = [0; FLOOR_BYTES];
    bytes[..8].copy_from_slice(FLOOR_MAGIC);
    LittleEndian::write_u64(&mut bytes[8..16], floor.index.0);
    LittleEndian::write_u64(&mut bytes[16..24], floor.index_term.0);
    LittleEndian::write_u64(&mut bytes[24..32], floor.term.0);
    let crc = crc32c::crc32c(&bytes[..32]);
    LittleEndian::write_u32(&mut bytes[32..], crc);
    bytes
}
