//! `oar cluster`: a local cluster of `oar serve` processes, to try oar with
//! redis-cli and to watch failover.
//!
//! Each node is a child process of its own, so a newcomer can `kill -9` the
//! leader and watch another take over. Nothing is restarted by itself: a
//! node that exits stays down until `restart <id>` is typed. The nodes run
//! with `--peers-are-voters`: data directories made with another `--nodes`
//! are refused with a message naming the configuration they hold.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Start a local cluster (default 3 nodes), each node an `oar serve`
/// process, and serve RESP until Ctrl-C.
#[derive(clap::Args)]
pub struct ClusterArgs {
    /// How many nodes.
    #[arg(long, default_value_t = 3)]
    nodes: u16,
    /// Where the nodes keep their data, one directory each (`node1`, ...).
    #[arg(long, default_value = "oar-data")]
    dir: PathBuf,
    /// The loopback (or local) address every node listens on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    host: IpAddr,
    /// The first node's RESP port; the others follow.
    #[arg(long, default_value_t = 7379)]
    resp_port: u16,
    /// The first node's raft port; the others follow.
    #[arg(long, default_value_t = 7001)]
    raft_port: u16,
}

/// How long stopped nodes get to exit on SIGTERM before SIGKILL.
const STOP_WITHIN: Duration = Duration::from_secs(5);
/// How often the nodes are asked their role.
const ROLE_POLL_INTERVAL: Duration = Duration::from_millis(250);

/// One node: where it listens, and its process while it runs.
struct Node {
    id: u64,
    resp: SocketAddr,
    raft: SocketAddr,
    dir: PathBuf,
    process: Option<Child>,
    /// How the last process ended, once it has.
    exit: Option<ExitStatus>,
    /// Whether the current process has answered a client yet: one that
    /// exits before it ever does could not start.
    answered: bool,
    /// What the node last said its role was.
    role: Option<String>,
}

impl Node {
    fn line(&self) -> String {
        let (id, resp, raft) = (self.id, self.resp, self.raft);
        match (&self.process, &self.exit) {
            (Some(p), _) => {
                let role = self.role.as_deref().unwrap_or("starting");
                format!("node {id}: pid {}, RESP {resp}, raft {raft}, {role}", p.id())
            }
            (None, Some(exit)) => {
                format!(
                    "node {id}: stopped ({exit}), RESP {resp}, raft {raft}; type `restart {id}` to start it"
                )
            }
            (None, None) => format!("node {id}: not started, RESP {resp}, raft {raft}"),
        }
    }
}

/// What the main loop waits for.
enum Event {
    /// Ctrl-C or SIGTERM.
    Interrupt,
    /// A line typed on standard input; `None` once it is closed.
    Line(Option<String>),
    /// Each node's role, by position (`None`: it did not answer).
    Roles(Vec<Option<String>>),
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
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the oar executable: {e}"))?;
    let mut nodes: Vec<Node> = (0..args.nodes)
        .map(|k| Node {
            id: u64::from(k) + 1,
            resp: SocketAddr::new(args.host, args.resp_port + k),
            raft: SocketAddr::new(args.host, args.raft_port + k),
            dir: args.dir.join(format!("node{}", k + 1)),
            process: None,
            exit: None,
            answered: false,
            role: None,
        })
        .collect();
    for node in &nodes {
        migrate_dir_name(&args.dir, node)?;
    }

    let (events, inbox) = crossbeam_channel::bounded::<Event>(64);
    let interrupts = events.clone();
    ctrlc::set_handler(move || {
        let _ = interrupts.try_send(Event::Interrupt);
    })
    .map_err(|e| format!("cannot catch Ctrl-C: {e}"))?;
    let typed = events.clone();
    std::thread::spawn(move || read_stdin(&typed));

    for k in 0..nodes.len() {
        if let Err(e) = spawn(&exe, &mut nodes, k) {
            stop_all(&mut nodes);
            return Err(e);
        }
    }
    println!(
        "oar cluster: {} nodes, each an `oar serve` process, data under {}",
        nodes.len(),
        args.dir.display()
    );
    for node in &nodes {
        println!("{}", node.line());
    }
    println!("try: redis-cli -h {} -p {} set hello world", args.host, args.resp_port);
    println!(
        "kill -9 the leader's pid to watch another take over; type `restart <id>` to start a stopped node."
    );
    println!("Ctrl-C stops the cluster.");

    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.resp).collect();
    let (quit, quitting) = crossbeam_channel::bounded::<()>(0);
    let poller = std::thread::spawn(move || poll_roles(&addrs, &events, &quitting));
    let result = serve(&exe, &mut nodes, &inbox);
    drop(quit);
    println!("stopping");
    stop_all(&mut nodes);
    let _ = poller.join();
    result
}

/// The main loop: reports what changes, restarts nodes on request, until
/// Ctrl-C or a node that could not start.
fn serve(exe: &Path, nodes: &mut [Node], inbox: &Receiver<Event>) -> Result<(), String> {
    let mut shown: Vec<String> = nodes.iter().map(Node::line).collect();
    loop {
        match inbox.recv_timeout(ROLE_POLL_INTERVAL) {
            Ok(Event::Interrupt) => return Ok(()),
            Ok(Event::Line(Some(line))) => command(exe, nodes, &line),
            Ok(Event::Line(None)) | Err(RecvTimeoutError::Timeout) => {}
            Ok(Event::Roles(roles)) => {
                for (node, role) in nodes.iter_mut().zip(roles) {
                    if node.process.is_some() {
                        node.answered |= role.is_some();
                        node.role = role;
                    }
                }
            }
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
        for node in nodes.iter_mut() {
            let Some(process) = node.process.as_mut() else { continue };
            let Ok(Some(exit)) = process.try_wait() else { continue };
            node.process = None;
            node.exit = Some(exit);
            node.role = None;
            if !node.answered {
                return Err(format!("node {} could not start ({exit}); its message is above", node.id));
            }
        }
        for (node, shown) in nodes.iter().zip(&mut shown) {
            let line = node.line();
            if line != *shown {
                println!("{line}");
                *shown = line;
            }
        }
    }
}

/// Runs a typed command: `restart <id>` (or `r <id>`).
fn command(exe: &Path, nodes: &mut [Node], line: &str) {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words[..] {
        [] => nodes.iter().for_each(|n| println!("{}", n.line())),
        ["restart" | "r", id] => match nodes.iter().position(|n| n.id.to_string() == id) {
            Some(k) if nodes[k].process.is_some() => println!("node {id} runs already"),
            Some(k) => {
                if let Err(e) = spawn(exe, nodes, k) {
                    println!("{e}");
                }
            }
            None => println!("no node {id}; the nodes are 1 to {}", nodes.len()),
        },
        _ => println!("commands: `restart <id>` starts a stopped node again; an empty line shows the nodes"),
    }
    let _ = std::io::stdout().flush();
}

/// Starts node `k` as `oar serve`, one of a fixed set of voters.
fn spawn(exe: &Path, nodes: &mut [Node], k: usize) -> Result<(), String> {
    let node = &nodes[k];
    let mut cmd = Command::new(exe);
    cmd.arg("serve")
        .args(["--id", &node.id.to_string()])
        .arg("--data-dir")
        .arg(&node.dir)
        .args(["--raft-addr", &node.raft.to_string(), "--resp-addr", &node.resp.to_string()])
        .args(["--cluster-id", "oar", "--bootstrap", "--peers-are-voters"]);
    for other in nodes.iter().filter(|n| n.id != node.id) {
        cmd.args(["--peer", &format!("{}={}", other.id, other.raft)]);
    }
    // Warnings and errors reach the terminal; RUST_LOG says more.
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "warn");
    }
    let process = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start node {}: {e}", node.id))?;
    let node = &mut nodes[k];
    node.process = Some(process);
    node.exit = None;
    node.answered = false;
    node.role = None;
    Ok(())
}

/// SIGTERM to every running node, then SIGKILL to those still running
/// after [`STOP_WITHIN`].
fn stop_all(nodes: &mut [Node]) {
    for process in nodes.iter().filter_map(|n| n.process.as_ref()) {
        if let Ok(pid) = i32::try_from(process.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }
    let give_up = Instant::now() + STOP_WITHIN;
    for node in nodes.iter_mut() {
        let Some(mut process) = node.process.take() else { continue };
        loop {
            match process.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() >= give_up => {
                    let _ = process.kill();
                    let _ = process.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}

/// Earlier versions named the data directories `noden1`, ...: renames one
/// to `node1` if only the old name exists.
fn migrate_dir_name(root: &Path, node: &Node) -> Result<(), String> {
    let old = root.join(format!("noden{}", node.id));
    if old.is_dir() && !node.dir.exists() {
        std::fs::rename(&old, &node.dir)
            .map_err(|e| format!("cannot rename {} to {}: {e}", old.display(), node.dir.display()))?;
        println!("renamed {} to {} (the name data directories have now)", old.display(), node.dir.display());
    }
    Ok(())
}

/// Forwards typed lines to the main loop.
fn read_stdin(events: &Sender<Event>) {
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if events.send(Event::Line(Some(line))).is_err() {
            return;
        }
    }
    let _ = events.send(Event::Line(None));
}

/// Asks every node its role (`ROLE`) every [`ROLE_POLL_INTERVAL`] until
/// `quit` closes.
fn poll_roles(addrs: &[SocketAddr], events: &Sender<Event>, quit: &Receiver<()>) {
    while let Err(RecvTimeoutError::Timeout) = quit.recv_timeout(ROLE_POLL_INTERVAL) {
        let roles = addrs.iter().map(|&addr| role(addr).ok()).collect();
        if events.send(Event::Roles(roles)).is_err() {
            return;
        }
    }
}

/// The first word of a node's `ROLE` reply (`leader`, `follower`, ...).
fn role(addr: SocketAddr) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    stream.write_all(b"*1\r\n$4\r\nROLE\r\n")?;
    let mut reader = BufReader::new(stream);
    let mut lines = Vec::new();
    // `*<n>`, `$<len>`, then the role itself.
    for _ in 0..3 {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        lines.push(line.trim_end().to_string());
    }
    match &lines[..] {
        [count, len, role] if count.starts_with('*') && len.starts_with('$') => Ok(role.clone()),
        _ => Err(std::io::Error::other(format!("ROLE answered {lines:?}"))),
    }
}
