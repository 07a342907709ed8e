//! Snapshots and membership changes across real `oar serve` processes: a
//! follower that missed more than the log keeps catches up by snapshot,
//! also when its transfer is cut by a crash; the cluster grows and shrinks,
//! and the leader's machine is replaced, while clients write; no
//! acknowledged write is lost along the way.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::support::{
    assert_values, await_db_size, await_leader, await_member_list, change_membership, cluster_nodes,
    member_identity, serve_cluster, set_pipelined, voter_line, Client, Reply, ServeNode,
};

/// How long an election may take.
const ELECTION_WITHIN: Duration = Duration::from_secs(20);
/// How long one membership change may take, retries included.
const CHANGE_WITHIN: Duration = Duration::from_secs(30);
/// How long a follower may take to get and install a snapshot: the
/// leader may first wait out the stall timeout (10 s) of a transfer it
/// began while the follower was down.
const CATCH_UP_WITHIN: Duration = Duration::from_secs(60);

/// Client threads writing unique keys through random nodes until stopped.
/// A key counts once a node acknowledged it; until then its writer sends
/// it again, through another node (SET is idempotent).
struct Writers {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<BTreeMap<String, String>>>,
    acked_count: Arc<AtomicUsize>,
    threads: Vec<JoinHandle<()>>,
}

impl Writers {
    /// Starts `count` writers, each sending through the RESP addresses
    /// `addrs` in a random order of its own (seeded by its number).
    fn start(count: usize, addrs: &[SocketAddr]) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(BTreeMap::new()));
        let acked_count = Arc::new(AtomicUsize::new(0));
        let threads = (0..count)
            .map(|t| {
                let addrs = addrs.to_vec();
                let (stop, acked, acked_count) = (stop.clone(), acked.clone(), acked_count.clone());
                std::thread::spawn(move || write_until_stopped(t, &addrs, &stop, &acked, &acked_count))
            })
            .collect();
        Writers { stop, acked, acked_count, threads }
    }

    /// Waits until `more` writes beyond those acknowledged so far are
    /// acknowledged: the cluster serves writes now.
    fn await_progress(&self, more: usize, within: Duration) {
        let target = self.acked_count.load(Ordering::Relaxed) + more;
        let give_up = Instant::now() + within;
        while self.acked_count.load(Ordering::Relaxed) < target {
            assert!(
                Instant::now() < give_up,
                "the writers did not get {more} writes acknowledged in {within:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the writers and returns every acknowledged write.
    fn stop(mut self) -> BTreeMap<String, String> {
        self.stop.store(true, Ordering::Relaxed);
        for thread in std::mem::take(&mut self.threads) {
            thread.join().expect("writer thread");
        }
        std::mem::take(&mut *self.acked.lock().expect("lock"))
    }
}

impl Drop for Writers {
    /// A failing test stops its writers too.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Writer `t`: keys `w<t>-<n>` for n = 0, 1, ..., each through a random
/// node, again through another after any answer but `OK`.
fn write_until_stopped(
    t: usize,
    addrs: &[SocketAddr],
    stop: &AtomicBool,
    acked: &Mutex<BTreeMap<String, String>>,
    acked_count: &AtomicUsize,
) {
    let mut rng = 0x9E37_79B9_7F4A_7C15_u64.wrapping_mul(t as u64 + 1);
    let mut clients: Vec<Option<Client>> = addrs.iter().map(|_| None).collect();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let (key, value) = (format!("w{t}-{n}"), format!("value-{t}-{n}"));
        // xorshift64
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let k = (rng % addrs.len() as u64) as usize;
        let client = match clients[k].take().map_or_else(|| Client::connect(addrs[k]), Ok) {
            Ok(client) => clients[k].insert(client),
            Err(_) => {
                // Down, or removed and killed: another node.
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        match client.command(&["SET", &key, &value]) {
            Ok(Reply::Simple(ok)) if ok == "OK" => {
                acked.lock().expect("lock").insert(key, value);
                acked_count.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
            // TRYAGAIN while the cluster elects or the node is not yet a
            // member, TIMEOUT (the outcome unknown, so the key is sent
            // again), a broken connection.
            Ok(_) => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => {
                clients[k] = None;
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// `count` keys `key<n>`, each with a value of `value_bytes` bytes.
fn numbered_pairs(count: usize, value_bytes: usize) -> Vec<(String, String)> {
    (0..count).map(|n| (format!("key{n:06}"), format!("{n:0>value_bytes$}"))).collect()
}

/// Every `step`-th pair and the last, to spot-check.
fn sample(pairs: &[(String, String)], step: usize) -> BTreeMap<String, String> {
    pairs.iter().step_by(step).chain(pairs.last()).cloned().collect()
}

/// The members as `oar member list --via <via>` prints them, by id.
fn cli_member_list(via: SocketAddr) -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_oar"))
        .args(["member", "list", "--via", &via.to_string()])
        .output()
        .expect("run oar member list");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "oar member list failed: {}", String::from_utf8_lossy(&out.stderr));
    let mut lines: Vec<String> = stdout.lines().map(str::to_string).collect();
    lines.sort_by_key(|line| line.split(' ').next().and_then(|id| id.parse::<u64>().ok()));
    lines
}

/// The node's role, or `None` if it cannot tell.
fn role(node: &ServeNode) -> Option<String> {
    Client::connect(node.resp).and_then(|mut c| c.role()).ok()
}

#[test]
fn a_follower_stopped_through_100k_writes_catches_up_by_snapshot() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut nodes = cluster_nodes(3, root.path());
    for node in &mut nodes {
        node.snapshot_entries = Some(20_000);
        node.start();
    }
    let leader = await_leader(&nodes, ELECTION_WITHIN);
    let follower = (leader + 1) % nodes.len();
    nodes[follower].kill();

    let pairs = numbered_pairs(100_000, 8);
    set_pipelined(&nodes, &pairs, 500, Duration::from_secs(120));
    // Five snapshots' worth: the leader compacted its log past what the
    // follower has.
    let leader = await_leader(&nodes, ELECTION_WITHIN);
    nodes[leader].await_log("snapshot taken at", Duration::from_secs(30));

    nodes[follower].start();
    nodes[follower].await_log("installing snapshot", CATCH_UP_WITHIN);
    nodes[follower].await_log("state machine restored from snapshot", CATCH_UP_WITHIN);
    await_db_size(&nodes[follower], pairs.len(), CATCH_UP_WITHIN);
    assert_values(&nodes[follower], &sample(&pairs, 997));
}

#[test]
fn the_cluster_grows_from_3_to_5_and_back_while_clients_write() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut nodes = serve_cluster(3, root.path());
    let joining: Vec<ServeNode> = (4..=5).map(|id| ServeNode::joining(id, root.path(), &nodes)).collect();
    nodes.extend(joining);
    for node in &mut nodes[3..] {
        node.start();
    }
    await_leader(&nodes[..3], ELECTION_WITHIN);
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.resp).collect();
    let writers = Writers::start(3, &addrs);
    writers.await_progress(50, ELECTION_WITHIN);

    for k in 3..5 {
        let (id, raft) = (nodes[k].id.to_string(), nodes[k].raft.to_string());
        change_membership(&nodes, &["ADD", &id, &raft], CHANGE_WITHIN);
        change_membership(&nodes, &["PROMOTE", &id], CHANGE_WITHIN);
        writers.await_progress(50, ELECTION_WITHIN);
    }
    let five: Vec<String> = nodes.iter().map(voter_line).collect();
    await_member_list(&nodes[4], &five, Duration::from_secs(10));

    // Back to three: two of the first three go, the leader first if it is
    // one of them.
    let leader = await_leader(&nodes, ELECTION_WITHIN);
    let mut removed = if leader < 3 { vec![leader] } else { Vec::new() };
    removed.extend((0..3).filter(|&k| k != leader).take(2 - removed.len()));
    for &k in &removed {
        let id = nodes[k].id.to_string();
        change_membership(&nodes, &["REMOVE", &id], CHANGE_WITHIN);
        nodes[k].kill();
        writers.await_progress(50, ELECTION_WITHIN);
    }
    let acked = writers.stop();

    let remaining: Vec<&ServeNode> = nodes.iter().filter(|n| n.is_running()).collect();
    let three: Vec<String> = remaining.iter().map(|n| voter_line(n)).collect();
    assert_eq!(three.len(), 3);
    for node in &remaining {
        await_member_list(node, &three, Duration::from_secs(10));
        assert_values(node, &acked);
    }
}

#[test]
fn the_leaders_machine_is_replaced() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut nodes = serve_cluster(3, root.path());
    await_leader(&nodes, ELECTION_WITHIN);
    let mut newcomer = ServeNode::joining(4, root.path(), &nodes);
    newcomer.start();
    nodes.push(newcomer);
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.resp).collect();
    let writers = Writers::start(2, &addrs);
    writers.await_progress(50, ELECTION_WITHIN);

    let raft = nodes[3].raft.to_string();
    // `oar member` asked of a follower goes on to the leader by itself.
    let leader = await_leader(&nodes[..3], ELECTION_WITHIN);
    let follower = nodes[(leader + 1) % 3].resp.to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_oar"))
        .args(["member", "add", "4", &raft, "--via", &follower, "--retry-secs", "30"])
        .output()
        .expect("run oar member add");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "oar member add via a follower: {stderr}");
    assert!(stderr.contains("does not lead; asking the leader at"), "{stderr}");
    change_membership(&nodes, &["PROMOTE", "4"], CHANGE_WITHIN);
    let old = await_leader(&nodes, ELECTION_WITHIN);
    assert_ne!(nodes[old].id, 4, "the newcomer leads already; nothing to replace");
    let old_id = nodes[old].id.to_string();
    change_membership(&nodes, &["REMOVE", &old_id], CHANGE_WITHIN);
    // Removed, it steps down; then its machine goes.
    let give_up = Instant::now() + Duration::from_secs(10);
    while role(&nodes[old]).as_deref() == Some("leader") {
        assert!(Instant::now() < give_up, "removed node {old_id} still leads\n{}", nodes[old].log());
        std::thread::sleep(Duration::from_millis(20));
    }
    // Asked to write, it says it was removed (not TRYAGAIN forever), and
    // that nothing was done.
    let give_up = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = Client::connect(nodes[old].resp).and_then(|mut c| c.command(&["SET", "to-removed", "x"]));
        match reply {
            Ok(Reply::Error(e)) if e.starts_with("ERR this node was removed from the cluster") => break,
            other => {
                assert!(
                    Instant::now() < give_up,
                    "removed node {old_id} answers {other:?}\n{}",
                    nodes[old].log()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    nodes[old].kill();
    let new = await_leader(&nodes, ELECTION_WITHIN);
    assert_ne!(new, old);
    writers.await_progress(100, ELECTION_WITHIN);
    let acked = writers.stop();

    let remaining: Vec<&ServeNode> = nodes.iter().filter(|n| n.is_running()).collect();
    let three: Vec<String> = remaining.iter().map(|n| voter_line(n)).collect();
    let give_up = Instant::now() + Duration::from_secs(10);
    for node in &remaining {
        // `oar member list` asked of any node answers from the leader: who
        // leads, where each member serves clients, and how far behind it is.
        let full = |lines: &[String]| {
            lines.iter().zip(&remaining).all(|(line, member)| {
                let words: Vec<&str> = line.split(' ').collect();
                let state = if member.id == nodes[new].id { "state=leader" } else { "state=follower" };
                words.len() == 6
                    && words[3] == format!("resp={}", member.resp)
                    && words[4] == state
                    && words[5].strip_prefix("behind=").is_some_and(|n| n.parse::<u64>().is_ok())
            })
        };
        loop {
            let lines = cli_member_list(node.resp);
            let identities: Vec<String> = lines.iter().map(|l| member_identity(l)).collect();
            if identities == three && full(&lines) {
                break;
            }
            assert!(Instant::now() < give_up, "node {} lists {lines:?}", node.id);
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_values(node, &acked);
    }
}

#[test]
fn a_snapshot_transfer_cut_by_a_restart_finishes() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut nodes = cluster_nodes(3, root.path());
    for node in &mut nodes {
        node.snapshot_entries = Some(2_000);
        // The snapshot store says at debug level when a receive begins.
        node.rust_log = "info,oar::storage::snapshot=debug".to_string();
        node.start();
    }
    let leader = await_leader(&nodes, ELECTION_WITHIN);
    let follower = (leader + 1) % nodes.len();
    nodes[follower].kill();

    // About 4.5 MiB of snapshot: 18 chunks of 256 KiB, which take some
    // 15 ms to arrive on loopback.
    let mut pairs = numbered_pairs(40_000, 100);
    set_pipelined(&nodes, &pairs, 500, Duration::from_secs(120));
    let leader = await_leader(&nodes, ELECTION_WITHIN);
    nodes[leader].await_log("snapshot taken at", Duration::from_secs(30));

    // Killed as soon as the first chunk is stored. Should the rest arrive
    // before the kill lands (a busy machine), more writes make it need a
    // newer snapshot, and the cut is tried again.
    let mut attempts = 0;
    loop {
        attempts += 1;
        nodes[follower].start();
        nodes[follower].await_log("receiving a snapshot", CATCH_UP_WITHIN);
        nodes[follower].kill();
        let run = nodes[follower].run_log();
        if !run.contains("received snapshot") {
            break;
        }
        assert!(attempts < 3, "the whole snapshot arrived before each of {attempts} kills:\n{run}");
        let more: Vec<(String, String)> =
            (0..6_000).map(|n| (format!("more{attempts}-{n}"), format!("{n:0>100}"))).collect();
        set_pipelined(&nodes, &more, 500, Duration::from_secs(60));
        pairs.extend(more);
    }

    nodes[follower].start();
    nodes[follower].await_log("received snapshot", CATCH_UP_WITHIN);
    nodes[follower].await_log("state machine restored from snapshot", CATCH_UP_WITHIN);
    await_db_size(&nodes[follower], pairs.len(), CATCH_UP_WITHIN);
    assert_values(&nodes[follower], &sample(&pairs, 499));
}
