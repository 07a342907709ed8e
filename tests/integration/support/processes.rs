//! `oar serve` processes: nodes to start, kill and restart, and what the
//! tests do to a cluster of them through its RESP ports.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_addrs, Client, Reply};

/// One `oar serve` process and what it needs to restart.
pub struct ServeNode {
    pub id: u64,
    pub raft: SocketAddr,
    pub resp: SocketAddr,
    pub dir: PathBuf,
    pub peers: Vec<(u64, SocketAddr)>,
    pub cluster_id: String,
    /// Start with `--join`: not a member until the cluster adds it.
    pub join: bool,
    /// `--snapshot-entries`, if set.
    pub snapshot_entries: Option<u64>,
    /// The process's `RUST_LOG`.
    pub rust_log: String,
    /// More `oar serve` arguments.
    pub extra_args: Vec<String>,
    /// Where the current run's lines begin in the log file, which keeps
    /// the earlier runs' lines ahead of them.
    log_start_bytes: u64,
    child: Option<Child>,
}

impl ServeNode {
    pub fn new(
        id: u64,
        raft: SocketAddr,
        resp: SocketAddr,
        dir: &Path,
        peers: Vec<(u64, SocketAddr)>,
    ) -> ServeNode {
        ServeNode {
            id,
            raft,
            resp,
            dir: dir.to_path_buf(),
            peers,
            cluster_id: "oar-test".to_string(),
            join: false,
            snapshot_entries: None,
            rust_log: "info".to_string(),
            extra_args: Vec::new(),
            log_start_bytes: 0,
            child: None,
        }
    }

    /// Node `id`, not started, that joins the cluster of `members` when
    /// started: it has addresses of its own and knows where they listen.
    pub fn joining(id: u64, root: &Path, members: &[ServeNode]) -> ServeNode {
        let addrs = free_addrs(2);
        let peers = members.iter().map(|m| (m.id, m.raft)).collect();
        let mut node = ServeNode::new(id, addrs[0], addrs[1], &root.join(format!("node{id}")), peers);
        node.join = true;
        node
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none(), "node {} already runs", self.id);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_oar"));
        cmd.arg("serve")
            .args(["--id", &self.id.to_string()])
            .arg("--data-dir")
            .arg(&self.dir)
            .args(["--raft-addr", &self.raft.to_string(), "--resp-addr", &self.resp.to_string()])
            .args(["--cluster-id", &self.cluster_id]);
        for (id, addr) in &self.peers {
            cmd.args(["--peer", &format!("{id}={addr}")]);
        }
        if self.join {
            cmd.arg("--join");
        } else {
            // A node of the cluster's first voters: bootstraps it when its
            // directory is empty, resumes otherwise.
            cmd.arg("--bootstrap");
        }
        if let Some(entries) = self.snapshot_entries {
            cmd.args(["--snapshot-entries", &entries.to_string()]);
        }
        cmd.args(&self.extra_args);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.with_extension("log"))
            .expect("open the node's log file");
        self.log_start_bytes = log.metadata().expect("the log file's length").len();
        cmd.env("RUST_LOG", &self.rust_log).stdout(Stdio::null()).stderr(log);
        self.child = Some(cmd.spawn().expect("spawn oar serve"));
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// A client, once the node accepts connections (within `within`).
    pub fn client(&self, within: Duration) -> Client {
        let give_up = Instant::now() + within;
        loop {
            match Client::connect(self.resp) {
                Ok(client) => return client,
                Err(e) => {
                    assert!(Instant::now() < give_up, "node {} does not accept clients: {e}", self.id);
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }

    /// The node's stderr so far, every run's, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.with_extension("log")).unwrap_or_default()
    }

    /// What the current run (the last started) wrote to stderr so far.
    pub fn run_log(&self) -> String {
        let bytes = std::fs::read(self.dir.with_extension("log")).unwrap_or_default();
        let start = (self.log_start_bytes as usize).min(bytes.len());
        String::from_utf8_lossy(&bytes[start..]).into_owned()
    }

    /// The first line of the current run's log that contains `needle`,
    /// once there is one (within `within`). It polls often: a test may
    /// need to act right after the line appears.
    pub fn await_log(&self, needle: &str, within: Duration) -> String {
        let give_up = Instant::now() + within;
        loop {
            if let Some(line) = self.run_log().lines().find(|l| l.contains(needle)) {
                return line.to_string();
            }
            assert!(
                Instant::now() < give_up,
                "node {} did not log {needle:?} within {within:?}; its log:\n{}",
                self.id,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for ServeNode {
    /// Kills the process; in a failing test, also shows its log, as the
    /// node's data directory goes with the test's.
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- node {}'s log ---\n{}", self.id, self.log());
        }
    }
}

/// A cluster of `n` `oar serve` processes under `root`, all started.
pub fn serve_cluster(n: usize, root: &Path) -> Vec<ServeNode> {
    let mut nodes = cluster_nodes(n, root);
    for node in &mut nodes {
        node.start();
    }
    nodes
}

/// The `n` nodes (ids 1 to `n`) of a cluster under `root`, each listing
/// the others as peers, none started: set their options, then start them.
pub fn cluster_nodes(n: usize, root: &Path) -> Vec<ServeNode> {
    let raft = free_addrs(n);
    let resp = free_addrs(n);
    (0..n)
        .map(|k| {
            let id = k as u64 + 1;
            let peers = (0..n).filter(|&j| j != k).map(|j| (j as u64 + 1, raft[j])).collect();
            ServeNode::new(id, raft[k], resp[k], &root.join(format!("node{id}")), peers)
        })
        .collect()
}

/// The index of the node that says it leads, once one does and the others
/// follow it (within `within`).
pub fn await_leader(nodes: &[ServeNode], within: Duration) -> usize {
    let give_up = Instant::now() + within;
    loop {
        let roles: Vec<Option<String>> =
            nodes
                .iter()
                .map(|n| {
                    if n.is_running() {
                        Client::connect(n.resp).and_then(|mut c| c.role()).ok()
                    } else {
                        None
                    }
                })
                .collect();
        let leaders: Vec<usize> =
            (0..nodes.len()).filter(|&k| roles[k].as_deref() == Some("leader")).collect();
        if let [leader] = leaders[..] {
            return leader;
        }
        assert!(Instant::now() < give_up, "no single leader within {within:?}: {roles:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl ServeNode {
    /// How the process ended, if it has (without waiting); `None` while it
    /// runs or when it was never started or was killed through [`ServeNode::kill`].
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|child| child.try_wait().expect("poll the node's process"))
    }
}

/// Sets every key of `pairs` through the leader, `batch` SETs per write
/// (pipelined), until each is acknowledged `OK` (within `within`): what a
/// batch got no `OK` for is sent again, to whichever node leads then.
pub fn set_pipelined(nodes: &[ServeNode], pairs: &[(String, String)], batch: usize, within: Duration) {
    let give_up = Instant::now() + within;
    let mut leader: Option<Client> = None;
    for chunk in pairs.chunks(batch) {
        let mut todo: Vec<&(String, String)> = chunk.iter().collect();
        while !todo.is_empty() {
            let left = give_up.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "{} keys were not acknowledged within {within:?}", todo.len());
            let client = match leader.as_mut() {
                Some(client) => client,
                None => leader.insert(nodes[await_leader(nodes, left)].client(left)),
            };
            let commands: Vec<Vec<&str>> = todo.iter().map(|(k, v)| vec!["SET", k, v]).collect();
            match client.pipeline(&commands) {
                Ok(replies) => {
                    let ok = Reply::Simple("OK".into());
                    todo =
                        todo.into_iter().zip(replies).filter(|(_, r)| *r != ok).map(|(kv, _)| kv).collect();
                }
                Err(_) => leader = None,
            }
            if !todo.is_empty() {
                // Refused or unknown: the leader may have changed.
                leader = None;
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Waits until `DBSIZE` through `node` (a linearizable read) answers
/// `keys` (within `within`).
pub fn await_db_size(node: &ServeNode, keys: usize, within: Duration) {
    let give_up = Instant::now() + within;
    let mut last = None;
    loop {
        let reply = Client::connect(node.resp).and_then(|mut c| c.command(&["DBSIZE"]));
        if let Ok(Reply::Integer(n)) = reply {
            if n == keys as i64 {
                return;
            }
        }
        assert!(
            Instant::now() < give_up,
            "node {}: DBSIZE is not {keys} within {within:?}; last answer {reply:?}, before {last:?}\n{}",
            node.id,
            node.log()
        );
        last = Some(reply);
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every key of `expected` holds its value when read through `node` (MGET,
/// linearizable, retried while the node answers TRYAGAIN).
pub fn assert_values(node: &ServeNode, expected: &BTreeMap<String, String>) {
    let mut client = node.client(Duration::from_secs(10));
    let keys: Vec<&String> = expected.keys().collect();
    for chunk in keys.chunks(500) {
        let give_up = Instant::now() + Duration::from_secs(30);
        let mut args = vec!["MGET"];
        args.extend(chunk.iter().map(|k| k.as_str()));
        let values = loop {
            match client.command(&args).expect("MGET") {
                Reply::Array(Some(values)) => break values,
                Reply::Error(e) if e.starts_with("TRYAGAIN") && Instant::now() < give_up => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => panic!("node {}: MGET answered {other:?}\n{}", node.id, node.log()),
            }
        };
        assert_eq!(values.len(), chunk.len(), "node {}: MGET of {} keys", node.id, chunk.len());
        for (key, value) in chunk.iter().zip(values) {
            assert_eq!(
                value.bulk_text().as_deref(),
                Some(expected[*key].as_str()),
                "node {} lost acknowledged write {key}",
                node.id
            );
        }
    }
}

/// Makes a membership change, `OAR.MEMBER <args>` (ADD, PROMOTE or
/// REMOVE), through the running `nodes`, and returns once a node answered
/// `OK` (within `within`). A `TRYAGAIN` naming the leader sends it there;
/// other `TRYAGAIN`s (another change completing, an election) are retried
/// after a pause. After an answer that leaves the outcome unknown
/// (`TIMEOUT`, a connection lost mid-request), the error saying the change
/// is already made counts as done.
pub fn change_membership(nodes: &[ServeNode], args: &[&str], within: Duration) {
    let give_up = Instant::now() + within;
    let mut command = vec!["OAR.MEMBER"];
    command.extend_from_slice(args);
    let running: Vec<&ServeNode> = nodes.iter().filter(|n| n.is_running()).collect();
    assert!(!running.is_empty(), "no node runs to ask for OAR.MEMBER {args:?}");
    let mut target = 0;
    let mut outcome_unknown = false;
    let mut answers = Vec::new();
    loop {
        assert!(
            Instant::now() < give_up,
            "OAR.MEMBER {args:?} was not done within {within:?}; answers: {answers:?}"
        );
        let node = running[target];
        let Ok(mut client) = Client::connect(node.resp) else {
            target = (target + 1) % running.len();
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        // A joint change takes two commits; the node gives up after twice
        // its request timeout.
        client.set_read_timeout(Duration::from_secs(30)).expect("read timeout");
        let reply = client.command(&command);
        answers.push(format!("n{}: {reply:?}", node.id));
        match reply {
            Ok(Reply::Simple(ok)) if ok == "OK" => return,
            Ok(Reply::Error(e)) if e.starts_with("TRYAGAIN not the leader; send it to node ") => {
                // `... send it to node <id>`, then ` at <resp-addr>` if known.
                let named = e.trim_start_matches("TRYAGAIN not the leader; send it to node ");
                let leader = named.split(' ').next().and_then(|id| id.parse::<u64>().ok());
                match running.iter().position(|n| Some(n.id) == leader) {
                    Some(k) => target = k,
                    None => target = (target + 1) % running.len(),
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(Reply::Error(e)) if e.starts_with("TRYAGAIN") => {
                if e.contains("no leader") {
                    target = (target + 1) % running.len();
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(Reply::Error(e)) if e.starts_with("TIMEOUT") => outcome_unknown = true,
            Ok(Reply::Error(e))
                if outcome_unknown
                    && ["is already a member", "is not a learner", "is not a member"]
                        .iter()
                        .any(|done| e.contains(done)) =>
            {
                return;
            }
            Ok(other) => panic!("node {}: OAR.MEMBER {args:?} answered {other:?}\n{}", node.id, node.log()),
            Err(_) => {
                outcome_unknown = true;
                target = (target + 1) % running.len();
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// The first three words of an `OAR.MEMBER LIST` line, `<id> <role>
/// <raft-addr>`: what stays put while leadership and lag change.
pub fn member_identity(line: &str) -> String {
    line.split(' ').take(3).collect::<Vec<_>>().join(" ")
}

/// `OAR.MEMBER LIST` through `node`: one `<id> <role> <raft-addr>` line
/// per member (the [`member_identity`] of each), by id.
pub fn member_list(node: &ServeNode) -> std::io::Result<Vec<String>> {
    match Client::connect(node.resp)?.command(&["OAR.MEMBER", "LIST"])? {
        Reply::Array(Some(items)) => {
            let mut lines: Vec<String> = items
                .iter()
                .map(|item| {
                    item.bulk_text()
                        .map(|line| member_identity(&line))
                        .ok_or_else(|| std::io::Error::other(format!("{item:?}")))
                })
                .collect::<Result<_, _>>()?;
            lines.sort_by_key(|line| line.split(' ').next().and_then(|id| id.parse::<u64>().ok()));
            Ok(lines)
        }
        other => Err(std::io::Error::other(format!("OAR.MEMBER LIST answered {other:?}"))),
    }
}

/// Waits until `OAR.MEMBER LIST` through `node` answers `expected` (lines
/// by id), within `within`.
pub fn await_member_list(node: &ServeNode, expected: &[String], within: Duration) {
    let give_up = Instant::now() + within;
    loop {
        let lines = member_list(node);
        if lines.as_deref().ok() == Some(expected) {
            return;
        }
        assert!(
            Instant::now() < give_up,
            "node {} lists the members as {lines:?}, not {expected:?}, after {within:?}",
            node.id
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The line `OAR.MEMBER LIST` gives a voter `node`.
pub fn voter_line(node: &ServeNode) -> String {
    format!("{} voter {}", node.id, node.raft)
}

/// The value of `field` in node's `INFO replication`, if it answers.
pub fn info_field(node: &ServeNode, field: &str) -> Option<String> {
    let reply = Client::connect(node.resp).ok()?.command(&["INFO", "replication"]).ok()?;
    let text = reply.bulk_text()?;
    text.split("\r\n").find_map(|line| line.strip_prefix(&format!("{field}:")).map(str::to_string))
}
