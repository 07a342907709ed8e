//! Three nodes through the library, on loopback and real files: election,
//! writes through any node, failover, restart and catch-up.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};

use oar::runtime::{Handle, Peer, RequestError, Runtime, RuntimeConfig, StateMachine};
use oar::{LogIndex, NodeId, Role};

/// Appends every command to a list; answers a command with its position,
/// and a query with the whole list joined by commas.
#[derive(Default)]
struct Journal {
    commands: Vec<Vec<u8>>,
}

impl StateMachine for Journal {
    fn apply(&mut self, _index: LogIndex, command: &[u8]) -> Result<Vec<u8>, String> {
        self.commands.push(command.to_vec());
        Ok(self.commands.len().to_string().into_bytes())
    }

    fn query(&self, _query: &[u8]) -> Vec<u8> {
        self.commands.join(&b","[..])
    }
}

fn free_addrs(n: usize) -> Vec<SocketAddr> {
    // Hold every listener until all ports are chosen, so none repeats.
    let listeners: Vec<TcpListener> =
        (0..n).map(|_| TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port")).collect();
    listeners.iter().map(|l| l.local_addr().expect("local addr")).collect()
}

struct Cluster {
    peers: Vec<Peer>,
    dirs: Vec<tempfile::TempDir>,
    handles: Vec<Option<Handle>>,
}

impl Cluster {
    fn start(n: usize) -> Cluster {
        let peers: Vec<Peer> = free_addrs(n)
            .into_iter()
            .enumerate()
            .map(|(k, addr)| Peer { id: NodeId(k as u64 + 1), addr })
            .collect();
        let dirs = (0..n).map(|_| tempfile::tempdir().expect("tempdir")).collect();
        let mut cluster = Cluster { peers, dirs, handles: (0..n).map(|_| None).collect() };
        for k in 0..n {
            cluster.restart(k);
        }
        cluster
    }

    fn restart(&mut self, k: usize) {
        let id = self.peers[k].id;
        let handle = start_node(id, self.dirs[k].path(), &self.peers);
        self.handles[k] = Some(handle);
    }

    fn stop(&mut self, k: usize) {
        if let Some(handle) = self.handles[k].take() {
            handle.shutdown();
        }
    }

    fn live(&self) -> impl Iterator<Item = &Handle> {
        self.handles.iter().flatten()
    }

    /// Waits until one live node leads and every live node knows it.
    fn await_leader(&self, within: Duration) -> usize {
        let give_up = Instant::now() + within;
        loop {
            let statuses: Vec<_> = self.live().map(|h| h.status().expect("status")).collect();
            if let Some(leader) = statuses.iter().find(|s| s.role == Role::Leader) {
                if statuses.iter().all(|s| s.leader == Some(leader.id) && s.term == leader.term) {
                    return self.peers.iter().position(|p| p.id == leader.id).expect("a known node");
                }
            }
            assert!(Instant::now() < give_up, "no agreed leader within {within:?}: {statuses:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for handle in self.handles.iter_mut().flatten() {
            handle.shutdown();
        }
    }
}

fn start_node(id: NodeId, dir: &Path, peers: &[Peer]) -> Handle {
    let mut config = RuntimeConfig::new(id);
    config.cluster_id = "runtime-test".into();
    Runtime::start(config, dir, peers, Journal::default()).expect("start a node")
}

/// Proposes until accepted, retrying while there is no leader.
fn propose(handle: &Handle, command: &[u8]) -> Vec<u8> {
    let give_up = Instant::now() + Duration::from_secs(20);
    loop {
        match handle.propose(command) {
            Ok(answer) => return answer,
            Err(RequestError::NoLeader | RequestError::Busy) if Instant::now() < give_up => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("proposing {:?} failed: {e}", String::from_utf8_lossy(command)),
        }
    }
}

fn read_all(handle: &Handle) -> Vec<String> {
    let give_up = Instant::now() + Duration::from_secs(20);
    loop {
        match handle.read(b"") {
            Ok(answer) => {
                let text = String::from_utf8(answer).expect("utf-8");
                return text.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect();
            }
            Err(RequestError::NoLeader | RequestError::Busy) if Instant::now() < give_up => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("read failed: {e}"),
        }
    }
}

#[test]
fn elects_writes_fails_over_and_catches_up() {
    let _ = env_logger::builder().is_test(true).try_init();
    let mut cluster = Cluster::start(3);
    let leader = cluster.await_leader(Duration::from_secs(10));
    let follower = (leader + 1) % 3;

    // Writes through the leader and, forwarded, through a follower; each
    // caller gets its own command's position back.
    let mut acknowledged = Vec::new();
    for k in 0..50 {
        let via = if k % 2 == 0 { leader } else { follower };
        let command = format!("w{k}");
        let answer = propose(cluster.handles[via].as_ref().expect("live"), command.as_bytes());
        assert_eq!(String::from_utf8(answer).expect("utf-8"), (k + 1).to_string());
        acknowledged.push(command);
    }
    for handle in cluster.live() {
        assert_eq!(read_all(handle), acknowledged, "a linearizable read on {} sees every write", handle.id());
    }

    // Stop the leader: another takes over, and nothing acknowledged is lost.
    cluster.stop(leader);
    let new_leader = cluster.await_leader(Duration::from_secs(10));
    assert_ne!(new_leader, leader);
    for k in 50..80 {
        let command = format!("w{k}");
        propose(cluster.handles[new_leader].as_ref().expect("live"), command.as_bytes());
        acknowledged.push(command);
    }
    for handle in cluster.live() {
        assert_eq!(read_all(handle), acknowledged);
    }

    // The stopped node restarts from its directory and catches up.
    cluster.restart(leader);
    let restarted = cluster.handles[leader].as_ref().expect("live");
    assert_eq!(read_all(restarted), acknowledged, "the restarted node caught up");
}

/// Refuses the command `poison`, as a state machine does with an entry it
/// cannot decode.
struct Fussy;

impl StateMachine for Fussy {
    fn apply(&mut self, index: LogIndex, command: &[u8]) -> Result<Vec<u8>, String> {
        if command == b"poison" {
            return Err(format!("cannot apply entry {index}"));
        }
        Ok(command.to_vec())
    }

    fn query(&self, _query: &[u8]) -> Vec<u8> {
        Vec::new()
    }
}

#[test]
fn a_fatal_error_stops_the_node_and_fails_every_caller() {
    let _ = env_logger::builder().is_test(true).try_init();
    let dir = tempfile::tempdir().expect("tempdir");
    let peers = [Peer { id: NodeId(1), addr: free_addrs(1)[0] }];
    let handle = Runtime::start(RuntimeConfig::new(NodeId(1)), dir.path(), &peers, Fussy).expect("start");
    assert_eq!(propose(&handle, b"fine"), b"fine");

    // Callers blocked in `propose` when the node fails all get an error.
    let callers: Vec<_> = (0..8)
        .map(|k| {
            let handle = handle.clone();
            std::thread::spawn(move || {
                let mut outcomes = Vec::new();
                for n in 0..1000 {
                    let result = handle.propose(format!("{k}-{n}").as_bytes());
                    let failed = result.is_err();
                    outcomes.push(result);
                    if failed {
                        break;
                    }
                }
                outcomes
            })
        })
        .collect();
    let poisoned = handle.propose(b"poison");
    assert!(matches!(poisoned, Err(RequestError::Stopped(_))), "the poisoned proposal: {poisoned:?}");
    for caller in callers {
        let outcomes = caller.join().expect("caller thread");
        let last = outcomes.last().expect("at least one outcome");
        // A caller either finished its 1000 proposals before the poison or
        // ended on the error; never on a timeout, never hanging.
        assert!(
            outcomes.len() == 1000 || matches!(last, Err(RequestError::Stopped(_))),
            "a caller ended with {last:?}"
        );
    }
    let reason = handle.stopped().expect("the node stopped on its own");
    assert!(reason.contains("cannot apply entry"), "{reason}");
    assert!(matches!(handle.propose(b"later"), Err(RequestError::Stopped(_))));
    assert!(matches!(handle.read(b""), Err(RequestError::Stopped(_))));
    handle.shutdown();
}

#[test]
fn leadership_moves_where_it_is_sent() {
    let _ = env_logger::builder().is_test(true).try_init();
    let cluster = Cluster::start(3);
    let leader = cluster.await_leader(Duration::from_secs(10));
    let target = (leader + 1) % 3;
    let target_id = cluster.peers[target].id;
    let leader_handle = cluster.handles[leader].as_ref().expect("live");
    propose(leader_handle, b"before");
    leader_handle.transfer_leadership(target_id).expect("the node answers").expect("the transfer starts");
    let give_up = Instant::now() + Duration::from_secs(10);
    while cluster.await_leader(Duration::from_secs(10)) != target {
        assert!(Instant::now() < give_up, "leadership did not move to {target_id}");
        std::thread::sleep(Duration::from_millis(10));
    }
    // A follower refuses to hand over what it does not hold.
    let follower = cluster.handles[leader].as_ref().expect("live");
    let refused = follower.transfer_leadership(target_id).expect("the node answers");
    assert!(refused.is_err(), "a follower started a transfer: {refused:?}");
    propose(cluster.handles[target].as_ref().expect("live"), b"after");
    assert_eq!(read_all(follower), ["before", "after"]);
}
