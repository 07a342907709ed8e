//! Bootstrapping a new cluster: an explicit act
//! ([`RuntimeConfig::bootstrap`](super::RuntimeConfig::bootstrap)) that
//! makes the first configuration, with every initial voter's storage
//! incarnation in it.
//!
//! Every initial node is started with `bootstrap` and the same peers. Each
//! one tells the others in its handshake that it is brand new and which
//! voters it bootstraps with. The node with the lowest id among the peers
//! writes the configuration as the first entry of its log once every other
//! initial node has dialed it saying exactly that (their incarnations come
//! with it), and campaigns; the others follow it like nodes being added.
//!
//! So an empty directory started with an old command line can never make a
//! second cluster: the node that would write the configuration hears from a
//! peer that already belongs to one (a member says so in its handshake)
//! and gives up, saying why; its data directory is new, so the cluster does
//! not count it until it is re-admitted.

use log::{error, info, warn};

use super::event_loop::EventLoop;
use super::Peer;
use crate::codec::{voters_hash, PeerState};
use crate::membership::Membership;
use crate::types::{Instant, LogIndex, NodeId, Term};

/// A brand-new node waiting to bootstrap a new cluster.
pub(crate) struct Bootstrap {
    /// The initial voters: every peer given at start, this node included.
    peers: Vec<Peer>,
    /// What every initial node must say it bootstraps with.
    pub(crate) voters_hash: u64,
    /// Whether this node writes the first configuration (the lowest id).
    writes: bool,
    /// Peers already warned about, so that each refusal is logged once.
    warned: Vec<NodeId>,
}

impl Bootstrap {
    pub(crate) fn new(me: NodeId, peers: &[Peer]) -> Bootstrap {
        let lowest = peers.iter().map(|p| p.id).min().unwrap_or(me);
        let writes = lowest == me;
        if writes {
            info!(
                "{me}: brand new; bootstrapping a cluster of {} voters once every one has connected",
                peers.len()
            );
        } else {
            info!("{me}: brand new; waiting for {lowest} (the lowest id) to bootstrap the cluster");
        }
        Bootstrap {
            peers: peers.to_vec(),
            voters_hash: voters_hash(peers.iter().map(|p| p.id)),
            writes,
            warned: Vec::new(),
        }
    }
}

impl EventLoop {
    /// Bootstraps the cluster once every initial voter is known to be new
    /// and to bootstrap the same voters; gives up if one belongs to a
    /// cluster already. Done when this node's log is no longer empty.
    pub(super) fn maybe_bootstrap(&mut self, now: Instant) {
        let Some(b) = self.bootstrap.as_mut() else { return };
        let me = self.node.id();
        if self.node.last_index() > LogIndex(0) || self.node.term() > Term(0) {
            self.bootstrap = None;
            self.transport.set_state(PeerState::Member);
            return;
        }
        if !b.writes {
            return;
        }
        let mut voters = Vec::with_capacity(b.peers.len());
        for peer in &b.peers {
            if peer.id == me {
                voters.push((me, self.node.incarnation()));
                continue;
            }
            match self.transport.greeting(peer.id) {
                None => return,
                Some((incarnation, PeerState::Bootstrapping { voters_hash }))
                    if voters_hash == b.voters_hash =>
                {
                    voters.push((peer.id, incarnation));
                }
                Some((_, PeerState::Member)) => {
                    error!(
                        "{me}: not bootstrapping: {} already belongs to a cluster, so this one exists and this \
                         node's empty data directory is a new disk. It waits to be fed the log; once it has \
                         caught up, re-admit it from the leader: oar member replace {} {}",
                        peer.id, me.0, me.0
                    );
                    self.bootstrap = None;
                    self.transport.set_state(PeerState::New);
                    return;
                }
                Some(_) => {
                    if !b.warned.contains(&peer.id) {
                        b.warned.push(peer.id);
                        warn!(
                            "{me}: {} was not started to bootstrap these same voters (start every initial node \
                             with --bootstrap and the same --peer list); waiting",
                            peer.id
                        );
                    }
                    return;
                }
            }
        }
        let mut membership = Membership::with_identified_voters(voters);
        membership.addresses = b.peers.iter().map(|p| (p.id, p.addr.to_string())).collect();
        match self.node.bootstrap(now, membership) {
            Ok(_) => {
                info!("{me}: every initial voter has connected: bootstrapped the cluster; campaigning");
                self.node.campaign(now);
            }
            Err(e) => error!("{me}: cannot bootstrap: {e}"),
        }
        self.bootstrap = None;
        self.transport.set_state(PeerState::Member);
    }
}

/// Checks, for a node started with
/// [`peers_are_voters`](super::RuntimeConfig::peers_are_voters), that the
/// voters of the configuration its log holds (`stored`) are exactly the
/// peers given, this node included; returns the ids given when they are
/// not. A log whose configuration does not list this node (empty: it
/// bootstraps or waits to be added; or it was removed) is not checked.
pub(crate) fn check_peers(me: NodeId, stored: &Membership, peers: &[Peer]) -> Result<(), Vec<NodeId>> {
    if !stored.contains(me) {
        return Ok(());
    }
    let mut given: Vec<NodeId> = peers.iter().map(|p| p.id).collect();
    given.sort_unstable();
    let mut voters: Vec<NodeId> = stored.voters.iter().chain(&stored.outgoing).copied().collect();
    voters.sort_unstable();
    voters.dedup();
    if voters == given && stored.members().count() == given.len() {
        Ok(())
    } else {
        Err(given)
    }
}

/// Whether any configuration in a recovered log (its snapshot's, or a
/// membership entry) lists `me`: a node that was a member once and is not
/// in the configuration in force was removed.
pub(crate) fn ever_member(
    me: NodeId,
    snapshot: Option<&crate::membership::SnapshotMeta>,
    entries: &[crate::types::Entry],
) -> bool {
    snapshot.is_some_and(|s| s.membership.contains(me))
        || entries
            .iter()
            .filter(|e| e.kind == crate::types::EntryKind::Membership)
            .any(|e| Membership::decode(&e.data).is_ok_and(|m| m.contains(me)))
}

/// The peers to link to: every member but `me`, at the address the address
/// book gives (this node's own `peers`: the operator's word for where a node
/// is reached from here, a proxy say), else at the configuration's; then
/// the rest of the address book.
pub(super) fn peer_addresses(
    m: &Membership,
    address_book: &[(NodeId, std::net::SocketAddr)],
    me: NodeId,
) -> Vec<(NodeId, std::net::SocketAddr)> {
    let mut out: Vec<(NodeId, std::net::SocketAddr)> = Vec::new();
    for id in m.members().filter(|&id| id != me) {
        let addr = address_book
            .iter()
            .find(|(p, _)| *p == id)
            .map(|&(_, a)| a)
            .or_else(|| m.address(id).and_then(|a| a.parse().ok()));
        match addr {
            Some(addr) => out.push((id, addr)),
            None => log::warn!("{me}: member {id} has no usable address; it cannot be reached"),
        }
    }
    for &(id, addr) in address_book {
        if !out.iter().any(|(p, _)| *p == id) {
            out.push((id, addr));
        }
    }
    out
}
