//! `oar cluster`: a local cluster in one process, to try oar with redis-cli.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use oar::runtime::Peer;
use oar::NodeId;

use super::{await_leader, interrupted, start_node, LocalNode};

/// Start a local cluster (default 3 nodes) and serve RESP until Ctrl-C.
#[derive(clap::Args)]
pub struct ClusterArgs {
    /// How many nodes.
    #[arg(long, default_value_t = 3)]
    nodes: u16,
    /// Where the nodes keep their data, one directory each.
    #[arg(long, default_value = "oar-data")]
    dir: PathBuf,
    /// The first node's RESP port on 127.0.0.1; the others follow.
    #[arg(long, default_value_t = 7379)]
    resp_port: u16,
    /// The first node's raft port on 127.0.0.1; the others follow.
    #[arg(long, default_value_t = 7001)]
    raft_port: u16,
}

pub fn run(args: ClusterArgs) -> Result<(), String> {
    super::init_logging("warn");
    if !(1..=64).contains(&args.nodes) {
        return Err(format!("--nodes {}: give 1 to 64", args.nodes));
    }
    let ports_fit = |base: u16| base.checked_add(args.nodes - 1).is_some_and(|last| base > 0 && last > 0);
    if !ports_fit(args.resp_port) || !ports_fit(args.raft_port) {
        return Err("--resp-port and --raft-port must leave room for one port per node".into());
    }
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let peers: Vec<Peer> = (0..args.nodes)
        .map(|k| Peer { id: NodeId(u64::from(k) + 1), addr: SocketAddr::new(localhost, args.raft_port + k) })
        .collect();
    let stop = interrupted()?;
    let mut nodes: Vec<LocalNode> = Vec::new();
    for (k, peer) in peers.iter().enumerate() {
        let dir = args.dir.join(format!("node{}", peer.id));
        let resp = SocketAddr::new(localhost, args.resp_port + k as u16);
        match start_node(peer.id, &dir, &peers, resp, "oar") {
            Ok(node) => nodes.push(node),
            Err(e) => {
                nodes.into_iter().for_each(LocalNode::stop);
                return Err(e);
            }
        }
    }
    println!("oar cluster: {} nodes, data under {}", nodes.len(), args.dir.display());
    for (node, peer) in nodes.iter().zip(&peers) {
        println!("  {}: RESP {}  raft {}", peer.id, node.server.addr(), peer.addr);
    }
    match await_leader(&nodes, Duration::from_secs(10)) {
        Ok(k) => println!("  leader: {}", nodes[k].handle.id()),
        Err(e) => println!("  {e}; still trying"),
    }
    println!("try: redis-cli -p {} set hello world", args.resp_port);
    println!("Ctrl-C stops the cluster.");
    let _ = stop.recv();
    println!("stopping");
    nodes.into_iter().for_each(LocalNode::stop);
    Ok(())
}
