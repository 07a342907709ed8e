//! Recovering from a lost quorum: making one surviving node a cluster of
//! its own, from its own log.
//!
//! When a majority of the voters is gone for good (their machines and
//! disks destroyed), Raft cannot commit anything again, by design: no
//! majority can be formed. [`force_new_cluster`] is the way out that etcd
//! (`--force-new-cluster`) and hashicorp/raft (`peers.json`) give. It is an
//! explicit, offline act on one surviving data directory:
//!
//! - It keeps every entry the node holds, committed or not, and appends a
//!   configuration in which this node is the only voter, in a term after
//!   any it has seen. Started, the node elects itself and commits the whole
//!   log beneath an entry of its own term.
//! - Entries after the node's known commit index may never have been
//!   committed (nor acknowledged to a client); they become committed now.
//!   Entries that were committed on the lost majority but never reached
//!   this node are lost: choose the survivor with the longest log.
//! - The lost machines must never come back with their old data
//!   directories: they still believe in the old configuration, and a
//!   majority of them could elect a leader of their own. Wipe them, start
//!   them on empty directories, and add them as new members.

use std::path::Path;

use log::warn;

use super::error::StorageError;
use super::identity::read_identity;
use super::node::open_node;
use super::snapshot::SnapshotOptions;
use super::wal::WalOptions;
use crate::membership::Membership;
use crate::types::{Bytes, Entry, EntryKind, HardState, LogIndex, NodeId, Term};

/// What [`force_new_cluster`] found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForcedCluster {
    /// The last index the node's log held (the new configuration follows it).
    pub last_index: LogIndex,
    /// The highest index the node knew committed: entries after it, up to
    /// `last_index`, may never have been committed.
    pub known_commit: LogIndex,
    /// The index of the new configuration entry.
    pub config_index: LogIndex,
    /// The term it was written in.
    pub term: Term,
    /// The configuration the node believed in before.
    pub previous: Membership,
}

/// Makes the node whose data directory is `dir` (node `node_id`, listening
/// for peers at `address`) the only voter of its cluster; see the module
/// docs. The node must not be running (the directory is locked).
pub fn force_new_cluster(
    dir: &Path,
    node_id: NodeId,
    address: &str,
    wal_options: WalOptions,
) -> Result<ForcedCluster, StorageError> {
    let (mut wal, _store, state) = open_node(dir, wal_options, SnapshotOptions::default())?;
    let identity = read_identity(&super::RealFs, dir)?.ok_or_else(|| StorageError::Identity {
        path: dir.join(super::IDENTITY_FILE),
        reason: "no identity file: this is not the data directory of a node that ran".into(),
    })?;
    if identity.node_id != node_id {
        return Err(StorageError::Identity {
            path: dir.join(super::IDENTITY_FILE),
            reason: format!("this data directory belongs to node {}, not {}", identity.node_id.0, node_id.0),
        });
    }
    let snapshot_index = state.snapshot.as_ref().map_or(LogIndex(0), |s| s.index);
    let last_index = state.entries.last().map_or(snapshot_index, |e| e.index);
    let last_term = state.entries.last().map(|e| e.term).or(state.snapshot.as_ref().map(|s| s.term));
    let previous = state
        .entries
        .iter()
        .rev()
        .find(|e| e.kind == EntryKind::Membership)
        .and_then(|e| Membership::decode(&e.data).ok())
        .or_else(|| state.snapshot.as_ref().map(|s| s.membership.clone()))
        .unwrap_or_default();
    let term = state.hard_state.term.max(last_term.unwrap_or(Term(0))).next();
    let mut membership = Membership::with_identified_voters([(node_id, identity.incarnation)]);
    membership.addresses.insert(node_id, address.to_string());
    let config_index = last_index.next();
    let entry = Entry {
        term,
        index: config_index,
        kind: EntryKind::Membership,
        data: Bytes::from(membership.to_bytes()),
    };
    let known_commit = state.hard_state.commit;
    let hard_state = HardState { term, vote: Some(node_id), commit: known_commit };
    wal.write(&[entry], Some(hard_state))?;
    wal.sync()?;
    wal.raise_floor()?;
    warn!(
        "{}: forced a new cluster: node {} is its only voter from entry {config_index} (term {}); \
         entries {} to {last_index} were not known committed and will be",
        dir.display(),
        node_id.0,
        term.0,
        known_commit.next()
    );
    Ok(ForcedCluster { last_index, known_commit, config_index, term, previous })
}
