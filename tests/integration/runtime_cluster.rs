//! Three nodes through the library, on loopback and real files: election,
//! writes through any node, failover, restart and catch-up, a partition
//! through TCP proxies, leadership transfer, and a fatal error.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};

use oar::runtime::{
    Handle, Peer, RequestError, Runtime, RuntimeConfig, StartError, StateMachine, StopReason, Unanswered,
};
use oar::{LogIndex, NodeId, Role};

/// Appends every command to a list; answers a command with its position,
/// and a query with the whole list joined by commas.
#[derive(Default)]
struct Journal {
    commands: Vec<Vec<u8>>,
}

impl StateMachine for Journal {
    type Error = std::io::Error;

    fn apply(&mut self, _index: LogIndex, command: &[u8]) -> Result<Vec<u8>, std::io::Error> {
        self.commands.push(command.to_vec());
        Ok(self.commands.len().to_string().into_bytes())
    }

    fn query(&self, _query: &[u8]) -> Vec<u8> {
        self.commands.join(&b","[..])
    }

    /// Each command, length-prefixed.
    fn snapshot(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        for c in &self.commands {
            out.write_all(&(c.len() as u32).to_le_bytes())?;
            out.write_all(c)?;
        }
        Ok(())
    }

    fn restore(&mut self, input: &mut dyn std::io::Read) -> Result<(), std::io::Error> {
        let mut bytes = Vec::new();
        input.read_to_end(&mut bytes)?;
        let mut commands = Vec::new();
        let mut rest = &bytes[..];
        let cut = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("a cut {what}"));
        while !rest.is_empty() {
            let (len, tail) = rest.split_first_chunk::<4>().ok_or_else(|| cut("length"))?;
            let len = u32::from_le_bytes(*len) as usize;
            let (command, tail) = tail.split_at_checked(len).ok_or_else(|| cut("command"))?;
            commands.push(command.to_vec());
            rest = tail;
        }
        self.commands = commands;
        Ok(())
    }
}

/// `n` listeners on ephemeral loopback ports, and the peer list they make.
/// The nodes are started on the listeners themselves (`Runtime::start_on`),
/// so no other test can take a port in between.
pub(crate) fn bind_peers(n: usize) -> (Vec<TcpListener>, Vec<Peer>) {
    let listeners: Vec<TcpListener> =
        (0..n).map(|_| TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port")).collect();
    let peers = listeners
        .iter()
        .enumerate()
        .map(|(k, l)| Peer { id: NodeId(k as u64 + 1), addr: l.local_addr().expect("local addr") })
        .collect();
    (listeners, peers)
}

struct Cluster {
    peers: Vec<Peer>,
    dirs: Vec<tempfile::TempDir>,
    handles: Vec<Option<Handle>>,
}

impl Cluster {
    fn start(n: usize) -> Cluster {
        let (listeners, peers) = bind_peers(n);
        let dirs: Vec<_> = (0..n).map(|_| tempfile::tempdir().expect("tempdir")).collect();
        let handles = listeners
            .into_iter()
            .zip(&dirs)
            .enumerate()
            .map(|(k, (listener, dir))| {
                Some(
                    Runtime::start_on(config(peers[k].id), dir.path(), &peers, listener, Journal::default())
                        .expect("start a node"),
                )
            })
            .collect();
        Cluster { peers, dirs, handles }
    }

    /// Starts a stopped node again from its directory, on its old port.
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

/// A node of a new cluster: bootstrapped by its first start.
fn config(id: NodeId) -> RuntimeConfig {
    let mut config = RuntimeConfig::new(id);
    config.cluster_id = "runtime-test".into();
    config.bootstrap = true;
    config
}

fn start_node(id: NodeId, dir: &Path, peers: &[Peer]) -> Handle {
    Runtime::start(config(id), dir, peers, Journal::default()).expect("start a node")
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
    type Error = std::io::Error;

    fn apply(&mut self, index: LogIndex, command: &[u8]) -> Result<Vec<u8>, std::io::Error> {
        if command == b"poison" {
            return Err(std::io::Error::other(format!("cannot apply entry {index}")));
        }
        Ok(command.to_vec())
    }

    fn query(&self, _query: &[u8]) -> Vec<u8> {
        Vec::new()
    }

    fn snapshot(&self, _out: &mut dyn std::io::Write) -> std::io::Result<()> {
        Ok(())
    }

    fn restore(&mut self, _input: &mut dyn std::io::Read) -> Result<(), std::io::Error> {
        Ok(())
    }
}

#[test]
fn a_fatal_error_stops_the_node_and_fails_every_caller() {
    let _ = env_logger::builder().is_test(true).try_init();
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut listeners, peers) = bind_peers(1);
    let listener = listeners.pop().expect("one listener");
    let handle =
        Runtime::start_on(bootstrapping(NodeId(1)), dir.path(), &peers, listener, Fussy).expect("start");
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
    // The poison was committed before the state machine refused it: its
    // caller must not be told it was not done.
    let poisoned = handle.propose(b"poison");
    assert!(
        matches!(
            &poisoned,
            Err(RequestError::OutcomeUnknown { why: Unanswered::Stopped(StopReason::Apply { .. }) })
        ),
        "the poisoned proposal: {poisoned:?}"
    );
    for caller in callers {
        let outcomes = caller.join().expect("caller thread");
        let last = outcomes.last().expect("at least one outcome");
        // A caller either finished its 1000 proposals before the poison or
        // ended on the error: refused before the hand-off, or handed off
        // and unknown; never on a timeout, never hanging.
        let stopped = |e: &RequestError| {
            matches!(
                e,
                RequestError::Stopped(_) | RequestError::OutcomeUnknown { why: Unanswered::Stopped(_) }
            )
        };
        assert!(outcomes.len() == 1000 || last.as_ref().is_err_and(stopped), "a caller ended with {last:?}");
    }
    let reason = handle.stopped().expect("the node stopped on its own");
    assert!(matches!(reason, StopReason::Apply { .. }), "{reason:?}");
    assert!(reason.to_string().contains("cannot apply entry"), "{reason}");
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

/// A TCP proxy on loopback that forwards to `target` until cut: cutting
/// drops every connection through it and refuses new ones until healed.
/// Nodes reach each other only through proxies here, so peers are known by
/// their handshakes, not by the addresses connections come from.
pub(crate) struct Proxy {
    pub(crate) addr: SocketAddr,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Proxy {
    pub(crate) fn start(target: SocketAddr) -> Proxy {
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&cut);
        std::thread::spawn(move || {
            for inbound in listener.incoming() {
                let Ok(inbound) = inbound else { continue };
                if flag.load(Ordering::SeqCst) {
                    continue; // dropped: the dialer sees the connection close
                }
                let Ok(outbound) = std::net::TcpStream::connect(target) else { continue };
                for (from, to) in [(&inbound, &outbound), (&outbound, &inbound)] {
                    let (mut from, mut to) =
                        (from.try_clone().expect("clone"), to.try_clone().expect("clone"));
                    let flag = std::sync::Arc::clone(&flag);
                    // Bounded: each pump ends when either side closes, or
                    // within 50 ms of a cut.
                    std::thread::spawn(move || {
                        use std::io::{Read, Write};
                        from.set_read_timeout(Some(Duration::from_millis(50))).expect("timeout");
                        let mut buf = [0; 16 << 10];
                        loop {
                            if flag.load(Ordering::SeqCst) {
                                break;
                            }
                            match from.read(&mut buf) {
                                Ok(0) => break,
                                Ok(n) => {
                                    if to.write_all(&buf[..n]).is_err() {
                                        break;
                                    }
                                }
                                Err(e)
                                    if matches!(
                                        e.kind(),
                                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                                    ) => {}
                                Err(_) => break,
                            }
                        }
                        let _ = from.shutdown(std::net::Shutdown::Both);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Proxy { addr, cut }
    }

    pub(crate) fn set_cut(&self, cut: bool) {
        self.cut.store(cut, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn an_isolated_leader_is_replaced_and_after_healing_nothing_acknowledged_is_lost() {
    let _ = env_logger::builder().is_test(true).try_init();
    let (listeners, listed) = bind_peers(3);
    let listen: Vec<SocketAddr> = listed.iter().map(|p| p.addr).collect();
    let ids: Vec<NodeId> = (1..=3).map(NodeId).collect();
    // proxies[i][j]: how node i reaches node j.
    let proxies: Vec<Vec<Option<Proxy>>> =
        (0..3).map(|i| (0..3).map(|j| (i != j).then(|| Proxy::start(listen[j]))).collect()).collect();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("tempdir")).collect();
    let handles: Vec<Handle> = listeners
        .into_iter()
        .enumerate()
        .map(|(i, listener)| {
            let peers: Vec<Peer> = (0..3)
                .map(|j| Peer { id: ids[j], addr: proxies[i][j].as_ref().map_or(listen[i], |p| p.addr) })
                .collect();
            Runtime::start_on(config(ids[i]), dirs[i].path(), &peers, listener, Journal::default())
                .expect("start")
        })
        .collect();
    let cluster =
        Cluster { peers: Vec::new(), dirs: Vec::new(), handles: handles.into_iter().map(Some).collect() };
    let leader_of = |within: Duration, among: &[usize]| -> usize {
        let give_up = Instant::now() + within;
        loop {
            let statuses: Vec<_> = among
                .iter()
                .map(|&k| cluster.handles[k].as_ref().expect("live").status().expect("status"))
                .collect();
            if let Some(l) = statuses.iter().find(|s| s.role == Role::Leader) {
                if statuses.iter().all(|s| s.leader == Some(l.id) && s.term == l.term) {
                    return ids.iter().position(|&id| id == l.id).expect("known");
                }
            }
            assert!(Instant::now() < give_up, "no agreed leader among {among:?}: {statuses:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let handle = |k: usize| cluster.handles[k].as_ref().expect("live");

    let old = leader_of(Duration::from_secs(10), &[0, 1, 2]);
    let mut acknowledged = Vec::new();
    for n in 0..20 {
        let command = format!("a{n}");
        propose(handle(old), command.as_bytes());
        acknowledged.push(command);
    }

    // Isolate the leader: every link to and from it is cut.
    let cut = |on: bool| {
        for (i, row) in proxies.iter().enumerate() {
            for (j, proxy) in row.iter().enumerate() {
                if i == old || j == old {
                    if let Some(p) = proxy {
                        p.set_cut(on);
                    }
                }
            }
        }
    };
    cut(true);
    let others: Vec<usize> = (0..3).filter(|&k| k != old).collect();
    let new = leader_of(Duration::from_secs(10), &others);
    assert_ne!(new, old);
    for n in 0..20 {
        let command = format!("b{n}");
        propose(handle(new), command.as_bytes());
        acknowledged.push(command);
    }
    // The old leader, hearing from no quorum, steps down (CheckQuorum), and
    // anything proposed to it meanwhile is never acknowledged.
    let give_up = Instant::now() + Duration::from_secs(10);
    while handle(old).status().expect("status").role == Role::Leader {
        assert!(Instant::now() < give_up, "the isolated leader did not step down");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(handle(old).propose(b"lost").is_err(), "an isolated node acknowledged a write");

    // Heal: one leader for all, and every node holds exactly what was
    // acknowledged, in order.
    cut(false);
    leader_of(Duration::from_secs(10), &[0, 1, 2]);
    for (k, id) in ids.iter().enumerate() {
        assert_eq!(read_all(handle(k)), acknowledged, "node {id}");
    }
}

#[test]
fn a_read_the_leader_cannot_confirm_times_out() {
    // Without CheckQuorum a leader that lost its followers never steps
    // down, so its confirmation rounds never complete: the runtime's
    // request timeout must end the read.
    let _ = env_logger::builder().is_test(true).try_init();
    let (listeners, peers) = bind_peers(3);
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("tempdir")).collect();
    let handles: Vec<Handle> = peers
        .iter()
        .zip(&dirs)
        .zip(listeners)
        .map(|((p, dir), listener)| {
            let mut config = bootstrapping(p.id);
            config.raft.check_quorum = false;
            config.raft.pre_vote = false;
            config.request_timeout = Duration::from_secs(1);
            Runtime::start_on(config, dir.path(), &peers, listener, Journal::default()).expect("start")
        })
        .collect();
    propose(&handles[0], b"x");
    let leader = handles.iter().find(|h| h.status().expect("status").role == Role::Leader).expect("a leader");
    for other in handles.iter().filter(|h| h.id() != leader.id()) {
        other.shutdown();
    }
    // Through the callback API, which has no timeout of its own: only the
    // runtime can end this read.
    let (tx, rx) = std::sync::mpsc::channel();
    leader.read_with(b"", oar::runtime::Completion::new(move |result| drop(tx.send(result))));
    let answer = rx.recv_timeout(Duration::from_secs(5)).expect("the read was never answered");
    assert_eq!(answer, Err(RequestError::Timeout));
    assert_eq!(leader.status().expect("status").role, Role::Leader, "the leader stepped down after all");
    for handle in &handles {
        handle.shutdown();
    }
}

/// The position of the node that leads, once one does.
fn leader_of(handles: &[Handle]) -> usize {
    let give_up = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(k) = handles.iter().position(|h| h.status().is_ok_and(|s| s.role == Role::Leader)) {
            return k;
        }
        assert!(Instant::now() < give_up, "no leader within 10 s");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Retries a membership change while the cluster is busy with another one
/// or electing; panics on anything else.
fn change(
    handle: &Handle,
    what: &str,
    f: impl Fn(&Handle) -> Result<Result<oar::Membership, oar::core::MembershipChangeError>, RequestError>,
) -> oar::Membership {
    use oar::core::MembershipChangeError as E;
    let give_up = Instant::now() + Duration::from_secs(20);
    loop {
        match f(handle) {
            Ok(Ok(m)) => return m,
            Ok(Err(E::InProgress | E::NotReady)) | Err(RequestError::NoLeader)
                if Instant::now() < give_up =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => panic!("{what} failed: {other:?}"),
        }
    }
}

#[test]
fn a_node_added_after_compaction_catches_up_by_snapshot_and_replaces_the_leader() {
    let _ = env_logger::builder().is_test(true).try_init();
    let (mut listeners, mut peers) = bind_peers(4);
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().expect("tempdir")).collect();
    let joiner = peers.pop().expect("four peers");
    let joiner_listener = listeners.pop().expect("four listeners");
    // Snapshot every 40 entries, keeping none below: a node added later
    // can only catch up by snapshot.
    let small_snapshots = |id| {
        let mut c = config(id);
        c.raft.snapshot_entries = 40;
        c.raft.compaction_margin = 0;
        c.snapshot_chunk_bytes_max = 64;
        c.snapshot_chunks_in_flight = 2;
        c
    };
    let mut handles: Vec<Handle> = listeners
        .into_iter()
        .zip(&dirs)
        .enumerate()
        .map(|(k, (listener, dir))| {
            Runtime::start_on(small_snapshots(peers[k].id), dir.path(), &peers, listener, Journal::default())
                .expect("start a node")
        })
        .collect();
    let leader = leader_of(&handles);
    let mut acknowledged = Vec::new();
    for k in 0..200 {
        let command = format!("c{k}");
        propose(&handles[leader], command.as_bytes());
        acknowledged.push(command);
    }
    let status = handles[leader].status().expect("status");
    assert!(status.snapshot_index >= LogIndex(160), "the leader took snapshots: {status:?}");
    assert!(status.first_index > LogIndex(1), "and compacted its log: {status:?}");

    // A fourth node, started to join, added as a learner: the entries it
    // needs are gone, so it gets the snapshot (in chunks of 64 bytes).
    let mut join = small_snapshots(joiner.id);
    join.bootstrap = false;
    join.join = true;
    let all = [peers.clone(), vec![joiner]].concat();
    let fourth = Runtime::start_on(join, dirs[3].path(), &all, joiner_listener, Journal::default())
        .expect("start the fourth node");
    let m = change(&handles[leader], "add_learner", |h| h.add_learner(joiner.id, joiner.addr));
    assert!(m.learners.contains(&joiner.id) && !m.is_voter(joiner.id), "{m}");
    assert_eq!(read_all(&fourth), acknowledged, "the learner caught up");
    let status = fourth.status().expect("status");
    assert!(status.snapshot_index > LogIndex(0), "by snapshot: {status:?}");

    // Replace the leader's machine by the new node in one joint change.
    let old_leader = peers[leader].id;
    let m = change(&handles[leader], "replace", |h| {
        h.change_membership(oar::MembershipChange::Replace { promote: joiner.id, remove: old_leader })
    });
    assert!(m.is_voter(joiner.id) && !m.contains(old_leader) && !m.is_joint(), "{m}");
    handles.push(fourth);
    let deposed = handles.remove(leader);
    // The old leader steps down once the final configuration commits, and
    // the others elect one of themselves.
    let give_up = Instant::now() + Duration::from_secs(10);
    while deposed.status().expect("status").role == Role::Leader {
        assert!(Instant::now() < give_up, "the removed leader kept leading");
        std::thread::sleep(Duration::from_millis(10));
    }
    deposed.shutdown();
    let new_leader = leader_of(&handles);
    assert_ne!(handles[new_leader].id(), old_leader);
    propose(&handles[new_leader], b"after");
    acknowledged.push("after".to_string());
    for handle in &handles {
        assert_eq!(read_all(handle), acknowledged, "node {} holds every acknowledged command", handle.id());
        assert_eq!(handle.membership().expect("membership"), m);
    }
    for handle in handles {
        handle.shutdown();
    }
}

/// Default settings for a node of a new cluster, which its first start
/// bootstraps.
fn bootstrapping(id: NodeId) -> RuntimeConfig {
    let mut config = RuntimeConfig::new(id);
    config.bootstrap = true;
    config
}

/// A node told its peers are the cluster's voters (`peers_are_voters`, as
/// `oar cluster` runs them) refuses a data directory whose configuration
/// has other voters, and says which configuration the directory holds;
/// without the flag, peers only say where nodes listen.
#[test]
fn a_directory_made_for_another_cluster_shape_is_refused_with_its_configuration() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Node 1 restarts on its port each time; node 2 never runs.
    let (listeners, peers) = bind_peers(2);
    drop(listeners);
    let alone = &peers[..1];
    let handle = Runtime::start(config(NodeId(1)), dir.path(), alone, Journal::default()).expect("start");
    assert_eq!(propose(&handle, b"x"), b"1");
    handle.shutdown();

    let mut fixed = config(NodeId(1));
    fixed.peers_are_voters = true;
    let refused = Runtime::start(fixed.clone(), dir.path(), &peers, Journal::default());
    let Err(error) = refused else { panic!("a directory of a 1-node cluster started as one of 2") };
    assert!(matches!(&error, StartError::PeersDiffer { given, .. } if given == &[NodeId(1), NodeId(2)]));
    let text = error.to_string();
    assert!(
        text.contains("holds a cluster whose configuration is") && text.contains("(members 1)"),
        "{text}"
    );
    assert!(text.contains("started with the voters 1, 2") && text.contains("--nodes 1"), "{text}");

    // The shape it was made with starts, and so does any shape unchecked.
    for (config, peers) in [(fixed, alone), (config(NodeId(1)), &peers[..])] {
        let handle = Runtime::start(config, dir.path(), peers, Journal::default()).expect("restart");
        assert_eq!(read_all(&handle), ["x"]);
        handle.shutdown();
    }
}

/// Issue 12: a leader whose fsync hangs (no error, no progress) stops
/// leading: a write through it gets an answer, another node leads and
/// serves within a few election timeouts of the stall being noticed, and
/// nothing is applied twice.
#[test]
fn a_leader_whose_fsync_hangs_is_replaced_and_the_cluster_serves() {
    let _ = env_logger::builder().is_test(true).try_init();
    let mut cluster = Cluster::start(3);
    let leader = cluster.await_leader(Duration::from_secs(10));
    propose(cluster.handles[leader].as_ref().expect("live"), b"before");
    let config = config(NodeId(1)).raft;
    let hung = cluster.handles[leader].take().expect("live");
    hung.debug_hang_disk(true);
    let stalled_at = Instant::now();
    // A write through the stalled leader: it needs the disk, so the stall
    // shows. Its answer comes (whatever it is), never a hang.
    let (tx, rx) = crossbeam_channel::bounded(1);
    hung.propose_with(
        b"during",
        oar::runtime::Completion::new(move |result| {
            let _ = tx.send(result);
        }),
    );
    // Another node leads, and serves writes and reads.
    let new_leader = cluster.await_leader(Duration::from_secs(10));
    let moved_after = stalled_at.elapsed();
    assert_ne!(new_leader, leader);
    let bound = config.persist_stall_timeout + 10 * config.election_timeout_max;
    assert!(moved_after < bound, "leadership moved {moved_after:?} after the stall, beyond {bound:?}");
    eprintln!("leadership moved {moved_after:?} after the leader's fsync hung");
    let serving = cluster.handles[new_leader].as_ref().expect("live");
    propose(serving, b"after");
    let log = read_all(serving);
    assert_eq!(log.iter().filter(|c| *c == "before").count(), 1);
    assert_eq!(log.iter().filter(|c| *c == "during").count(), log.contains(&"during".to_string()) as usize);
    assert_eq!(log.last().map(String::as_str), Some("after"));
    let status = hung.status().expect("the stalled node still answers");
    assert_eq!(status.disk, Some(oar::DiskTrouble::Stalled));
    assert_ne!(status.role, Role::Leader);
    let answer =
        rx.recv_timeout(Duration::from_secs(30)).expect("the write through the stalled leader is answered");
    match answer {
        Ok(_) => assert!(log.contains(&"during".to_string()), "acknowledged but not in the log"),
        Err(RequestError::OutcomeUnknown { .. } | RequestError::Disk(_)) => {}
        Err(e) => panic!("the write through the stalled leader got {e:?}"),
    }
    // The disk comes back: the node catches up and follows.
    hung.debug_hang_disk(false);
    cluster.handles[leader] = Some(hung);
    let handle = cluster.handles[leader].as_ref().expect("live");
    assert_eq!(read_all(handle), log);
}
