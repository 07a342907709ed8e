//! Helpers shared by the tests that run `oar` processes: free ports, a
//! small blocking RESP client, and `oar serve` nodes to start and kill.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `n` distinct loopback addresses with ports free right now, for nodes in
/// other processes (which must bind them themselves). They share one
/// loopback address of their own, drawn from 127.0.0.0/8, so that another
/// test picking ports at the same moment (on 127.0.0.1 or on its own
/// address) cannot take one of them before the node binds it.
pub fn free_addrs(n: usize) -> Vec<SocketAddr> {
    let ip = private_loopback_ip();
    // Hold every listener until all are chosen, so no port repeats.
    let listeners: Vec<TcpListener> =
        (0..n).map(|_| TcpListener::bind((ip, 0)).expect("bind an ephemeral port")).collect();
    listeners.iter().map(|l| l.local_addr().expect("local addr")).collect()
}

/// A loopback address other than 127.0.0.1, different on each call.
fn private_loopback_ip() -> std::net::Ipv4Addr {
    use std::sync::atomic::{AtomicU64, Ordering};
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let mut x =
        (nanos as u64) ^ (u64::from(std::process::id()) << 32) ^ CALLS.fetch_add(1, Ordering::Relaxed);
    // SplitMix64, to spread nearby seeds.
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    let [a, b, c, ..] = x.to_le_bytes();
    std::net::Ipv4Addr::new(127, a.max(1), b, c.clamp(1, 254))
}

/// A RESP2 reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    pub fn bulk_text(&self) -> Option<String> {
        match self {
            Reply::Bulk(Some(bytes)) => Some(String::from_utf8_lossy(bytes).into_owned()),
            _ => None,
        }
    }
}

/// A blocking RESP client with timeouts.
pub struct Client {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> std::io::Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_nodelay(true)?;
        Ok(Client { writer: stream.try_clone()?, reader: BufReader::new(stream) })
    }

    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(bytes)
    }

    pub fn command(&mut self, args: &[&str]) -> std::io::Result<Reply> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            out.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
        }
        self.writer.write_all(&out)?;
        self.read_reply()
    }

    pub fn read_reply(&mut self) -> std::io::Result<Reply> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed"));
        }
        let line = line.trim_end_matches("\r\n");
        let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad reply line {line:?}"));
        let (kind, rest) = line.split_at_checked(1).ok_or_else(bad)?;
        Ok(match kind {
            "+" => Reply::Simple(rest.to_string()),
            "-" => Reply::Error(rest.to_string()),
            ":" => Reply::Integer(rest.parse().map_err(|_| bad())?),
            "$" => {
                let len: i64 = rest.parse().map_err(|_| bad())?;
                if len < 0 {
                    Reply::Bulk(None)
                } else {
                    let mut body = vec![0; len as usize + 2];
                    self.reader.read_exact(&mut body)?;
                    body.truncate(len as usize);
                    Reply::Bulk(Some(body))
                }
            }
            "*" => {
                let len: i64 = rest.parse().map_err(|_| bad())?;
                if len < 0 {
                    Reply::Array(None)
                } else {
                    Reply::Array(Some((0..len).map(|_| self.read_reply()).collect::<Result<_, _>>()?))
                }
            }
            _ => return Err(bad()),
        })
    }

    /// The node's role as ROLE reports it.
    pub fn role(&mut self) -> std::io::Result<String> {
        match self.command(&["ROLE"])? {
            Reply::Array(Some(items)) => items
                .first()
                .and_then(Reply::bulk_text)
                .ok_or_else(|| std::io::Error::other("ROLE without a role")),
            other => Err(std::io::Error::other(format!("ROLE answered {other:?}"))),
        }
    }
}

/// One `oar serve` process and what it needs to restart.
pub struct ServeNode {
    pub id: u64,
    pub raft: SocketAddr,
    pub resp: SocketAddr,
    pub dir: PathBuf,
    pub peers: Vec<(u64, SocketAddr)>,
    pub cluster_id: String,
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
            child: None,
        }
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
        let log = std::fs::File::create(self.dir.with_extension("log")).expect("create the node's log file");
        cmd.env("RUST_LOG", "info").stdout(Stdio::null()).stderr(log);
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

    /// The node's stderr so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.with_extension("log")).unwrap_or_default()
    }
}

impl Drop for ServeNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A cluster of `n` `oar serve` processes under `root`, all started.
pub fn serve_cluster(n: usize, root: &Path) -> Vec<ServeNode> {
    let raft = free_addrs(n);
    let resp = free_addrs(n);
    let mut nodes: Vec<ServeNode> = (0..n)
        .map(|k| {
            let id = k as u64 + 1;
            let peers = (0..n).filter(|&j| j != k).map(|j| (j as u64 + 1, raft[j])).collect();
            ServeNode::new(id, raft[k], resp[k], &root.join(format!("node{id}")), peers)
        })
        .collect();
    for node in &mut nodes {
        node.start();
    }
    nodes
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
