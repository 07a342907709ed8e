//! The first bytes on every peer connection: who is calling, in which
//! cluster, and whom it means to reach.
//!
//! | offset | size | field        | meaning                                        |
//! |--------|------|--------------|------------------------------------------------|
//! | 0      | 4    | `magic`      | [`HANDSHAKE_MAGIC`], which includes the version |
//! | 4      | 1    | `cluster_len`| length of the cluster id, 1 to [`CLUSTER_ID_BYTES_MAX`] |
//! | 5      | n    | `cluster_id` | the cluster's name, UTF-8                      |
//! | 5 + n  | 8    | `from`       | the dialing node's id                          |
//! | 13 + n | 8    | `to`         | the node it means to reach                     |
//! | 21 + n | 1    | `addr_len`   | length of the dialer's address, 0 to [`ADDRESS_BYTES_MAX`] |
//! | 22 + n | m    | `addr`       | where the dialer listens for peers, UTF-8 (empty: not said) |
//! | 22 + n + m | 8 | `incarnation` | the dialer's storage [`Incarnation`]      |
//! | 30 + n + m | 1 | `state`      | 0 new, 1 bootstrapping, 2 member (see [`PeerState`]) |
//! | 31 + n + m | 8 | `voters_hash`| while bootstrapping, which voters it bootstraps with; else 0 |
//! | 39 + n + m | 1 | `client_len` | length of the dialer's client address, 0 to [`ADDRESS_BYTES_MAX`] |
//! | 40 + n + m | k | `client_addr`| where the dialer serves its own clients, UTF-8 (empty: not said) |
//!
//! The address lets a node answer a peer its configuration does not list
//! yet: a node waiting to be added hears first from a leader it knows
//! nothing of. The incarnation and state let the node that bootstraps a
//! new cluster check that every initial voter is new too, and learn the
//! incarnation to admit each with. The client address lets any node tell
//! a client where the leader serves (for `oar serve`, its RESP address).
//!
//! Frames follow, from the dialer only: a connection carries messages one
//! way, from the node that dialed it.

use std::fmt;

use crate::types::{Incarnation, NodeId};

/// The magic and protocol version that open a peer connection.
pub const HANDSHAKE_MAGIC: [u8; 4] = *b"oar\x04";
/// The longest cluster id, in bytes.
pub const CLUSTER_ID_BYTES_MAX: usize = 255;
/// The longest handshake, in bytes.
pub const HANDSHAKE_BYTES_MAX: usize =
    4 + 1 + CLUSTER_ID_BYTES_MAX + 8 + 8 + 1 + ADDRESS_BYTES_MAX + 8 + 1 + 8 + 1 + ADDRESS_BYTES_MAX;
/// The longest address a handshake carries, in bytes.
pub const ADDRESS_BYTES_MAX: usize = 255;

/// The greeting a node sends on each connection it dials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handshake {
    /// The cluster the dialer belongs to.
    pub cluster_id: String,
    /// The dialer.
    pub from: NodeId,
    /// The node the dialer means to reach.
    pub to: NodeId,
    /// Where the dialer listens for peer connections; empty if not said.
    pub addr: String,
    /// The dialer's storage incarnation.
    pub incarnation: Incarnation,
    /// Whether the dialer belongs to a cluster yet.
    pub state: PeerState,
    /// Where the dialer serves its own clients; empty if not said.
    pub client_addr: String,
}

/// Whether a node belongs to a cluster, as its handshake says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PeerState {
    /// It has no log and no term, and waits to be added.
    New,
    /// It has no log and no term, and was started to bootstrap a new
    /// cluster with the voters whose ids hash to `voters_hash` (see
    /// [`voters_hash`]).
    Bootstrapping {
        /// The hash of the initial voters' ids.
        voters_hash: u64,
    },
    /// It has a log or a term: it belongs to a cluster.
    Member,
}

/// A stable hash (FNV-1a) of a set of node ids, sorted: what nodes
/// bootstrapping one cluster must agree on.
pub fn voters_hash(ids: impl IntoIterator<Item = NodeId>) -> u64 {
    let mut ids: Vec<u64> = ids.into_iter().map(|id| id.0).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for id in ids {
        for b in id.to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Why the first bytes of a connection are not a handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandshakeError {
    /// The connection does not start with [`HANDSHAKE_MAGIC`]: not an oar
    /// peer, or one speaking another protocol version.
    BadMagic {
        /// The four bytes found.
        found: [u8; 4],
    },
    /// The cluster id is empty or not UTF-8.
    BadClusterId,
    /// An address is not UTF-8.
    BadAddress,
    /// The state byte is unknown, or a hash comes with a state that has none.
    BadState,
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::BadMagic { found } => {
                write!(f, "not an oar peer (expected magic {HANDSHAKE_MAGIC:02x?}, got {found:02x?})")
            }
            HandshakeError::BadClusterId => write!(f, "the cluster id is empty or not UTF-8"),
            HandshakeError::BadAddress => write!(f, "an address of the dialer's is not UTF-8"),
            HandshakeError::BadState => write!(f, "the dialer's state is not one this version knows"),
        }
    }
}

impl std::error::Error for HandshakeError {}

/// Appends the encoding of `handshake` to `out`.
///
/// # Panics
/// If the cluster id is empty or longer than [`CLUSTER_ID_BYTES_MAX`], or an
/// address longer than [`ADDRESS_BYTES_MAX`]: validate them when the
/// configuration is read.
pub fn encode_handshake(handshake: &Handshake, out: &mut Vec<u8>) {
    let cluster = handshake.cluster_id.as_bytes();
    assert!(
        (1..=CLUSTER_ID_BYTES_MAX).contains(&cluster.len()),
        "cluster id of {} bytes; it must have 1 to {CLUSTER_ID_BYTES_MAX}",
        cluster.len()
    );
    out.extend_from_slice(&HANDSHAKE_MAGIC);
    out.push(cluster.len() as u8);
    out.extend_from_slice(cluster);
    out.extend_from_slice(&handshake.from.0.to_le_bytes());
    out.extend_from_slice(&handshake.to.0.to_le_bytes());
    let addr = handshake.addr.as_bytes();
    assert!(addr.len() <= ADDRESS_BYTES_MAX, "address of {} bytes; at most {ADDRESS_BYTES_MAX}", addr.len());
    out.push(addr.len() as u8);
    out.extend_from_slice(addr);
    out.extend_from_slice(&handshake.incarnation.0.to_le_bytes());
    let (state, hash) = match handshake.state {
        PeerState::New => (0, 0),
        PeerState::Bootstrapping { voters_hash } => (1, voters_hash),
        PeerState::Member => (2, 0),
    };
    out.push(state);
    out.extend_from_slice(&hash.to_le_bytes());
    let client = handshake.client_addr.as_bytes();
    assert!(
        client.len() <= ADDRESS_BYTES_MAX,
        "client address of {} bytes; at most {ADDRESS_BYTES_MAX}",
        client.len()
    );
    out.push(client.len() as u8);
    out.extend_from_slice(client);
}

/// Decodes a handshake from the start of `buf`: `Ok(None)` while more bytes
/// are needed (never more than [`HANDSHAKE_BYTES_MAX`] in all), else the
/// handshake and the number of bytes it took. Bytes after it are frames.
pub fn decode_handshake(buf: &[u8]) -> Result<Option<(Handshake, usize)>, HandshakeError> {
    let magic_len = HANDSHAKE_MAGIC.len().min(buf.len());
    let (magic, rest) = buf.split_at(magic_len);
    if magic != &HANDSHAKE_MAGIC[..magic_len] {
        let mut found = [0; 4];
        found[..magic_len].copy_from_slice(magic);
        return Err(HandshakeError::BadMagic { found });
    }
    if magic_len < HANDSHAKE_MAGIC.len() {
        return Ok(None);
    }
    let Some((&cluster_len, rest)) = rest.split_first() else { return Ok(None) };
    let cluster_len = usize::from(cluster_len);
    if cluster_len == 0 {
        return Err(HandshakeError::BadClusterId);
    }
    let Some((cluster, rest)) = rest.split_at_checked(cluster_len) else { return Ok(None) };
    let cluster_id = std::str::from_utf8(cluster).map_err(|_| HandshakeError::BadClusterId)?;
    let Some((from, rest)) = rest.split_first_chunk::<8>() else { return Ok(None) };
    let Some((to, rest)) = rest.split_first_chunk::<8>() else { return Ok(None) };
    let Some((&addr_len, rest)) = rest.split_first() else { return Ok(None) };
    let addr_len = usize::from(addr_len);
    let Some((addr, rest)) = rest.split_at_checked(addr_len) else { return Ok(None) };
    let addr = std::str::from_utf8(addr).map_err(|_| HandshakeError::BadAddress)?;
    let Some((incarnation, rest)) = rest.split_first_chunk::<8>() else { return Ok(None) };
    let Some((&state, rest)) = rest.split_first() else { return Ok(None) };
    let Some((hash, rest)) = rest.split_first_chunk::<8>() else { return Ok(None) };
    let hash = u64::from_le_bytes(*hash);
    let state = match (state, hash) {
        (0, 0) => PeerState::New,
        (1, voters_hash) => PeerState::Bootstrapping { voters_hash },
        (2, 0) => PeerState::Member,
        _ => return Err(HandshakeError::BadState),
    };
    let Some((&client_len, rest)) = rest.split_first() else { return Ok(None) };
    let client_len = usize::from(client_len);
    let Some((client, _)) = rest.split_at_checked(client_len) else { return Ok(None) };
    let client_addr = std::str::from_utf8(client).map_err(|_| HandshakeError::BadAddress)?;
    let handshake = Handshake {
        cluster_id: cluster_id.to_string(),
        from: NodeId(u64::from_le_bytes(*from)),
        to: NodeId(u64::from_le_bytes(*to)),
        addr: addr.to_string(),
        incarnation: Incarnation(u64::from_le_bytes(*incarnation)),
        state,
        client_addr: client_addr.to_string(),
    };
    Ok(Some((handshake, 4 + 1 + cluster_len + 16 + 1 + addr_len + 17 + 1 + client_len)))
}
