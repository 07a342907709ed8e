//! `oar cluster` as a newcomer meets it: its nodes are `oar serve` child
//! processes; killing the leader's pid hands leadership to another, `restart
//! <id>` brings the old one back, Ctrl-C stops them all; directories are
//! named `node<id>` (old `noden<id>` ones renamed); a directory made with
//! another `--nodes` is refused with the configuration it holds.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::{free_addrs, Client, Reply};

const WITHIN: Duration = Duration::from_secs(30);

/// A running `oar cluster`: its stdin, and its stdout a line at a time.
struct ClusterCommand {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    /// Every line so far, for failure messages.
    seen: Vec<String>,
    /// The latest `node <id>: ...` line of each node.
    nodes: BTreeMap<u64, String>,
}

impl ClusterCommand {
    fn start(dir: &Path, nodes: u16, host: IpAddr, resp_port: u16, raft_port: u16) -> ClusterCommand {
        let mut child = Command::new(env!("CARGO_BIN_EXE_oar"))
            .args(["cluster", "--nodes", &nodes.to_string(), "--host", &host.to_string()])
            .args(["--resp-port", &resp_port.to_string(), "--raft-port", &raft_port.to_string()])
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn oar cluster");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        ClusterCommand { child, stdin, lines, seen: Vec::new(), nodes: BTreeMap::new() }
    }

    /// Reads lines until the nodes' latest lines satisfy `done` (within
    /// [`WITHIN`]).
    fn await_nodes(&mut self, what: &str, done: impl Fn(&BTreeMap<u64, String>) -> bool) {
        let give_up = Instant::now() + WITHIN;
        while !done(&self.nodes) {
            let left = give_up.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "oar cluster did not show {what} within {WITHIN:?}; it printed:\n{}",
                    self.seen.join("\n")
                )
            });
            if let Some(id) = line.strip_prefix("node ").and_then(|rest| rest.split(':').next()) {
                if let Ok(id) = id.parse() {
                    self.nodes.insert(id, line.clone());
                }
            }
            self.seen.push(line);
        }
    }

    fn type_line(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("write to oar cluster");
    }
}

impl Drop for ClusterCommand {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The pid a `node <id>: pid <pid>, ...` line shows.
fn pid_of(line: &str) -> Option<u32> {
    line.split(", ").next()?.split("pid ").nth(1)?.parse().ok()
}

fn leader(nodes: &BTreeMap<u64, String>) -> Option<u64> {
    let leaders: Vec<u64> =
        nodes.iter().filter(|(_, l)| l.ends_with(", leader")).map(|(&id, _)| id).collect();
    match leaders[..] {
        [id] => Some(id),
        _ => None,
    }
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill").args([name, &pid.to_string()]).status().expect("run kill");
    assert!(status.success(), "kill {name} {pid}");
}

/// `2 * n` consecutive free ports on `host`: RESP then raft.
fn consecutive_ports(host: IpAddr, n: u16) -> u16 {
    for attempt in 0..100u16 {
        let base = 20_000 + (std::process::id() as u16 % 20_000).wrapping_add(attempt * 97) % 40_000;
        let free = (0..2 * n).all(|k| TcpListener::bind(SocketAddr::new(host, base + k)).is_ok());
        if free {
            return base;
        }
    }
    panic!("no {} consecutive free ports on {host}", 2 * n);
}

#[test]
fn kill_the_leader_watch_failover_restart_it_and_stop_with_ctrl_c() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("oar-data");
    // A directory under the name earlier versions gave it.
    std::fs::create_dir_all(dir.join("noden1")).expect("old directory");
    let host = free_addrs(1)[0].ip();
    let base = consecutive_ports(host, 3);
    let mut cluster = ClusterCommand::start(&dir, 3, host, base, base + 3);
    let all_up =
        |nodes: &BTreeMap<u64, String>| nodes.len() == 3 && nodes.values().all(|l| pid_of(l).is_some());
    cluster.await_nodes("a leader among 3 running nodes", |nodes| all_up(nodes) && leader(nodes).is_some());
    assert!(dir.join("node1").is_dir() && !dir.join("noden1").exists(), "noden1 was not renamed");
    assert!(cluster.seen.iter().any(|l| l.starts_with("renamed ")), "{:?}", cluster.seen);
    let pids: BTreeMap<u64, u32> =
        cluster.nodes.iter().map(|(&id, l)| (id, pid_of(l).expect("pid"))).collect();
    assert!(pids.values().all(|&pid| pid != cluster.child.id()), "the nodes run in processes of their own");

    let old = leader(&cluster.nodes).expect("a leader");
    let resp = |id: u64| SocketAddr::new(host, base + id as u16 - 1);
    let set = Client::connect(resp(old)).and_then(|mut c| c.command(&["SET", "hello", "world"]));
    assert_eq!(set.expect("SET"), Reply::Simple("OK".into()));

    signal(pids[&old], "-9");
    cluster.await_nodes("another leader after the old one was killed", |nodes| {
        nodes[&old].contains("stopped") && leader(nodes).is_some_and(|new| new != old)
    });
    let new = leader(&cluster.nodes).expect("a new leader");
    let get = Client::connect(resp(new)).and_then(|mut c| c.command(&["GET", "hello"]));
    assert_eq!(get.expect("GET").bulk_text().as_deref(), Some("world"));

    cluster.type_line(&format!("restart {old}"));
    cluster.await_nodes("the old leader back as a follower", |nodes| {
        pid_of(&nodes[&old]).is_some_and(|pid| pid != pids[&old]) && nodes[&old].ends_with(", follower")
    });
    let running: Vec<u32> = cluster.nodes.values().map(|l| pid_of(l).expect("all run")).collect();

    // Ctrl-C reaches only `oar cluster` here (no terminal): it stops every
    // node itself, promptly.
    let interrupted = Instant::now();
    signal(cluster.child.id(), "-INT");
    let give_up = interrupted + Duration::from_secs(10);
    while cluster.child.try_wait().expect("poll oar cluster").is_none() {
        assert!(Instant::now() < give_up, "oar cluster did not stop within 10 s of Ctrl-C");
        std::thread::sleep(Duration::from_millis(20));
    }
    for pid in running {
        assert!(!pid_alive(pid), "node process {pid} outlived oar cluster");
    }

    // Started again with another shape, it refuses, saying what the
    // directories hold.
    let out = Command::new(env!("CARGO_BIN_EXE_oar"))
        .args(["cluster", "--nodes", "4", "--host", &host.to_string()])
        .args(["--resp-port", &base.to_string(), "--raft-port", &(base + 4).to_string()])
        .arg("--dir")
        .arg(&dir)
        .stdin(Stdio::null())
        .output()
        .expect("run oar cluster");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "oar cluster --nodes 4 on directories of 3 started");
    assert!(
        stderr.contains("holds a cluster whose configuration is") && stderr.contains("--nodes 3"),
        "it said:\n{stderr}"
    );
}
