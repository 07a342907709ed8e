//! The subcommands of `oar`.

pub mod bench;
pub mod cluster;
pub mod force;
pub mod member;
pub mod serve;
pub mod sim;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use oar::runtime::{Handle, Peer, Runtime, RuntimeConfig};
use oar::server::{KvMachine, Server, ServerConfig};
use oar::{NodeId, Role};

/// Sets up logging for a subcommand: `RUST_LOG` if set, else `default`.
pub fn init_logging(default: &str) {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default)).init();
}

/// Parses a node id (`3`, or `n3` as logs print it), with the words every
/// command and `OAR.MEMBER` use for a bad one.
pub fn parse_node_id(s: &str) -> Result<NodeId, String> {
    s.parse::<NodeId>().map_err(|e| e.to_string())
}

/// Parses `ID=HOST:PORT`, as `--peer` takes it.
pub fn parse_peer(s: &str) -> Result<Peer, String> {
    let (id, addr) = s.split_once('=').ok_or_else(|| format!("expected ID=HOST:PORT, got {s:?}"))?;
    let id = parse_node_id(id).map_err(|e| format!("{e}, in {s:?}"))?;
    Ok(Peer { id, addr: parse_addr(addr)? })
}

/// Parses `HOST:PORT`, resolving a host name once, now.
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    s.to_socket_addrs()
        .map_err(|e| format!("cannot resolve {s:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("{s:?} resolves to no address"))
}

/// One node of a local cluster: the runtime and its RESP server.
pub struct LocalNode {
    pub handle: Handle,
    pub server: Server,
}

impl LocalNode {
    /// Stops the RESP server, then the node.
    pub fn stop(self) {
        self.server.stop();
        self.handle.shutdown();
    }
}

/// Starts node `id` of a cluster whose raft addresses are `peers`, with its
/// data in `dir` and RESP on `resp_addr`.
pub fn start_node(
    id: NodeId,
    dir: &Path,
    peers: &[Peer],
    resp_addr: SocketAddr,
    cluster_id: &str,
) -> Result<LocalNode, String> {
    let mut config = RuntimeConfig::new(id);
    config.cluster_id = cluster_id.to_string();
    // A local cluster of brand-new nodes bootstraps itself; restarted on
    // the same directories, its nodes simply resume.
    config.bootstrap = true;
    start_node_with(config, dir, peers, resp_addr)
}

/// [`start_node`] with a whole runtime configuration.
pub fn start_node_with(
    config: RuntimeConfig,
    dir: &Path,
    peers: &[Peer],
    resp_addr: SocketAddr,
) -> Result<LocalNode, String> {
    let id = config.raft.id;
    let mut config = config;
    // Peers tell clients where this node serves them (`OAR.MEMBER LIST`,
    // and the leader's address in a redirect); a port the OS picks later
    // is not known yet.
    if resp_addr.port() != 0 {
        config.client_addr = resp_addr.to_string();
    }
    let handle =
        Runtime::start(config, dir, peers, KvMachine::new()).map_err(|e| format!("node {id}: {e}"))?;
    let server_config = ServerConfig::new(resp_addr, handle.command_bytes_max());
    match Server::start(server_config, handle.clone()) {
        Ok(server) => Ok(LocalNode { handle, server }),
        Err(e) => {
            handle.shutdown();
            Err(format!("node {id}: cannot serve RESP on {resp_addr}: {e}"))
        }
    }
}

/// Waits until some node leads and all agree on it; its position.
pub fn await_leader(nodes: &[LocalNode], within: Duration) -> Result<usize, String> {
    let give_up = Instant::now() + within;
    loop {
        let statuses: Vec<_> = nodes.iter().filter_map(|n| n.handle.status().ok()).collect();
        if let Some(leader) = statuses.iter().find(|s| s.role == Role::Leader) {
            if statuses.len() == nodes.len() && statuses.iter().all(|s| s.leader == Some(leader.id)) {
                if let Some(k) = nodes.iter().position(|n| n.handle.id() == leader.id) {
                    return Ok(k);
                }
            }
        }
        if Instant::now() >= give_up {
            return Err(format!("no leader elected within {within:?}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A channel that receives once on Ctrl-C (SIGINT) or SIGTERM.
pub fn interrupted() -> Result<mpsc::Receiver<()>, String> {
    let (tx, rx) = mpsc::sync_channel(1);
    ctrlc::set_handler(move || {
        let _ = tx.try_send(());
    })
    .map_err(|e| format!("cannot catch Ctrl-C: {e}"))?;
    Ok(rx)
}
