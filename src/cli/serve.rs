//! `oar serve`: one node of a replicated key-value map, spoken to in RESP.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use oar::runtime::Peer;
use oar::NodeId;

use oar::runtime::RuntimeConfig;

use super::{interrupted, parse_addr, parse_node_id, parse_peer, start_node_with};

/// Serve one node of a replicated key-value map over the Redis protocol.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// This node's id (1 or more), unique in the cluster.
    #[arg(long, value_parser = parse_node_id)]
    id: NodeId,
    /// Where this node keeps its log (created if missing, locked while in use).
    #[arg(long)]
    data_dir: PathBuf,
    /// Where to listen for peers.
    #[arg(long, value_parser = parse_addr)]
    raft_addr: SocketAddr,
    /// Where to listen for Redis clients.
    #[arg(long, value_parser = parse_addr)]
    resp_addr: SocketAddr,
    /// Another member, as ID=HOST:PORT (its raft address); repeat per peer.
    #[arg(long = "peer", value_parser = parse_peer)]
    peers: Vec<Peer>,
    /// The cluster's name; nodes refuse peers with another.
    #[arg(long, default_value = "oar")]
    cluster_id: String,
    /// Bootstrap a new cluster whose voters are this node and its peers, if
    /// the data directory is empty (ignored once it holds anything). Give it
    /// to every initial node with the same peers; they wait for one another.
    /// A node started on an empty directory without it waits to be added.
    #[arg(long, conflicts_with = "join")]
    bootstrap: bool,
    /// Join a running cluster: wait for its leader to add this node
    /// (`oar member add`); the peers only say where nodes listen. (What a
    /// node with an empty directory does anyway without --bootstrap.)
    #[arg(long)]
    join: bool,
    /// The peers are exactly the cluster's voters, for good (as `oar
    /// cluster` runs its nodes): refuse to start on a data directory whose
    /// configuration has other voters, a directory made for a cluster of
    /// another shape. Leave it out where members are added and removed.
    #[arg(long, conflicts_with = "join")]
    peers_are_voters: bool,
    /// Take a snapshot (and compact the log) after this many entries.
    #[arg(long)]
    snapshot_entries: Option<u64>,
    /// The size log segments are preallocated to, in bytes (default 64 MiB):
    /// a node needs about twice this free to start and to keep writing.
    #[arg(long)]
    segment_bytes: Option<u64>,
}

pub fn run(args: ServeArgs) -> Result<(), String> {
    super::init_logging("info");
    let id = args.id;
    if let Some(p) = args.peers.iter().find(|p| p.id == id) {
        return Err(format!("--peer {}={} names this node; list only the other members", p.id, p.addr));
    }
    let mut peers = args.peers.clone();
    peers.push(Peer { id, addr: args.raft_addr });
    let stop = interrupted()?;
    let mut config = RuntimeConfig::new(id);
    config.cluster_id = args.cluster_id.clone();
    config.join = args.join;
    config.bootstrap = args.bootstrap;
    config.peers_are_voters = args.peers_are_voters;
    if let Some(entries) = args.snapshot_entries {
        if entries == 0 {
            return Err("--snapshot-entries 0 would never snapshot; give a positive count".into());
        }
        config.raft.snapshot_entries = entries;
        config.raft.compaction_margin = config.raft.compaction_margin.min(entries / 2);
    }
    if let Some(bytes) = args.segment_bytes {
        let (min, max) = (oar::storage::MIN_SEGMENT_SIZE_BYTES, oar::storage::MAX_SEGMENT_SIZE_BYTES);
        if !(min..=max).contains(&bytes) {
            return Err(format!("--segment-bytes {bytes} must lie in [{min}, {max}]"));
        }
        config.wal.segment_size_bytes = bytes;
    }
    let node = start_node_with(config, &args.data_dir, &peers, args.resp_addr)?;
    log::info!("node {id} serving RESP on {} (raft on {})", node.server.addr(), args.raft_addr);
    // Until Ctrl-C or SIGTERM, or until the node stops on its own (a failed
    // fsync, say): then exit with an error so that a supervisor notices.
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(Duration::from_millis(200)) {
        if let Some(reason) = node.handle.stopped() {
            node.stop();
            return Err(format!("node {id} stopped: {reason}"));
        }
    }
    log::info!("node {id}: stopping");
    node.stop();
    Ok(())
}
