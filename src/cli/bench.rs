//! `oar bench`: a local cluster with real sockets and fsync, driven by
//! closed-loop Redis clients.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use mio::{Events, Interest, Poll, Token};
use oar::runtime::Peer;
use oar::NodeId;

use super::{await_leader, start_node, LocalNode};

/// Benchmark a local cluster: concurrent clients SET keys through the leader.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// Cluster size.
    #[arg(long, default_value_t = 3)]
    nodes: u16,
    /// Concurrent clients (connections).
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Requests each client keeps in flight (pipelined on its connection).
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    /// Bytes per value.
    #[arg(long, default_value_t = 16)]
    value_bytes: usize,
    /// How long to run.
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// Where the nodes keep their data (default: a fresh directory under the
    /// system's temporary directory, removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// What the clients measured.
struct ClientReport {
    latencies_us: Histogram<u64>,
    errors: u64,
}

pub fn run(args: BenchArgs) -> Result<(), String> {
    super::init_logging("warn");
    if !(1..=16).contains(&args.nodes)
        || args.clients == 0
        || args.secs == 0
        || !(1..=1024).contains(&args.pipeline)
    {
        return Err(
            "give --nodes 1 to 16, --clients of 1 or more, --pipeline 1 to 1024, and --secs of 1 or more"
                .into(),
        );
    }
    if args.value_bytes.saturating_mul(args.pipeline) > 1 << 20 {
        return Err(
            "--value-bytes times --pipeline must stay within 1 MiB of requests in flight per client".into()
        );
    }
    let (dir, remove_dir) = match &args.dir {
        Some(dir) => (dir.clone(), false),
        None => (std::env::temp_dir().join(format!("oar-bench-{}", std::process::id())), true),
    };
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let raft_addrs = free_ports(args.nodes.into())?;
    let resp_addrs = free_ports(args.nodes.into())?;
    let peers: Vec<Peer> = raft_addrs
        .iter()
        .enumerate()
        .map(|(k, &port)| Peer { id: NodeId(k as u64 + 1), addr: SocketAddr::new(localhost, port) })
        .collect();
    let mut nodes: Vec<LocalNode> = Vec::new();
    for (peer, &port) in peers.iter().zip(&resp_addrs) {
        let node_dir = dir.join(format!("node{}", peer.id.0));
        match start_node(peer.id, &node_dir, &peers, SocketAddr::new(localhost, port), "oar-bench") {
            Ok(node) => nodes.push(node),
            Err(e) => {
                nodes.into_iter().for_each(LocalNode::stop);
                return Err(e);
            }
        }
    }
    let result = drive(&args, &nodes);
    nodes.into_iter().for_each(LocalNode::stop);
    if remove_dir {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn drive(args: &BenchArgs, nodes: &[LocalNode]) -> Result<(), String> {
    let leader = await_leader(nodes, Duration::from_secs(10))?;
    let target = nodes[leader].server.addr();
    let fsyncs_before: u64 = nodes.iter().map(|n| n.handle.metrics().fsyncs).sum();
    let ops = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let value = "v".repeat(args.value_bytes);
    let started = Instant::now();
    let driver = {
        let (ops, stop, count, pipeline) = (Arc::clone(&ops), Arc::clone(&stop), args.clients, args.pipeline);
        std::thread::spawn(move || clients(count, pipeline, target, &value, &ops, &stop))
    };
    let bar = ProgressBar::new(args.secs * 10);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {elapsed}/{duration} {msg}")
            .unwrap_or(ProgressStyle::default_bar()),
    );
    while started.elapsed() < Duration::from_secs(args.secs) {
        std::thread::sleep(Duration::from_millis(100));
        bar.inc(1);
        let rate = ops.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
        bar.set_message(format!("{rate:.0} ops/s"));
    }
    stop.store(true, Ordering::Relaxed);
    let report = driver.join().map_err(|_| "the client thread panicked".to_string())??;
    let (latencies, errors) = (report.latencies_us, report.errors);
    let secs = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let fsyncs: u64 = nodes.iter().map(|n| n.handle.metrics().fsyncs).sum::<u64>() - fsyncs_before;
    let done = latencies.len();
    println!(
        "bench nodes={} clients={} value_bytes={} ops={done} secs={secs:.2} ops_per_sec={:.0} p50_us={} p99_us={} p999_us={} fsyncs_per_sec={:.0}",
        args.nodes,
        args.clients,
        args.value_bytes,
        done as f64 / secs,
        latencies.value_at_quantile(0.5),
        latencies.value_at_quantile(0.99),
        latencies.value_at_quantile(0.999),
        fsyncs as f64 / secs,
    );
    if errors > 0 {
        return Err(format!("{errors} requests failed"));
    }
    Ok(())
}

/// Every client, on one thread over mio (as redis-benchmark does): each
/// connection sends a SET, waits for its reply, and sends the next, until
/// `stop`. One thread keeps the clients' own cost small next to the
/// cluster's on a machine with few cores.
fn clients(
    count: usize,
    pipeline: usize,
    target: SocketAddr,
    value: &str,
    ops: &AtomicU64,
    stop: &AtomicBool,
) -> Result<ClientReport, String> {
    struct Conn {
        stream: mio::net::TcpStream,
        /// When each request in flight was sent, oldest first.
        sent: VecDeque<Instant>,
        n: u64,
        inbuf: Vec<u8>,
    }
    let io = |e: std::io::Error| e.to_string();
    let mut poll = Poll::new().map_err(io)?;
    let mut conns = Vec::with_capacity(count);
    for k in 0..count {
        let stream = std::net::TcpStream::connect(target)
            .map_err(|e| format!("client {k}: connect to {target}: {e}"))?;
        stream.set_nodelay(true).map_err(io)?;
        stream.set_nonblocking(true).map_err(io)?;
        let mut stream = mio::net::TcpStream::from_std(stream);
        poll.registry().register(&mut stream, Token(k), Interest::READABLE).map_err(io)?;
        conns.push(Conn { stream, sent: VecDeque::new(), n: 0, inbuf: Vec::new() });
    }
    // Appends `count` SETs to `out` and sends them in one write.
    let mut out = Vec::new();
    let mut send = |k: usize, conn: &mut Conn, count: usize| -> Result<(), String> {
        out.clear();
        let now = Instant::now();
        for _ in 0..count {
            let key = format!("key:{k}:{}", conn.n % 10_000);
            conn.n += 1;
            write!(out, "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n{value}\r\n", key.len(), value.len())
                .map_err(io)?;
            conn.sent.push_back(now);
        }
        // The requests in flight (at most 1 MiB of values, checked at the
        // start) fit the socket buffer of a connection whose replies are
        // read as they come: one write.
        let written = conn.stream.write(&out).map_err(|e| format!("client {k}: send: {e}"))?;
        if written != out.len() {
            return Err(format!("client {k}: short write"));
        }
        Ok(())
    };
    for (k, conn) in conns.iter_mut().enumerate() {
        send(k, conn, pipeline)?;
    }
    let mut latencies_us = Histogram::<u64>::new(3).map_err(|e| e.to_string())?;
    let mut errors = 0;
    let mut events = Events::with_capacity(count);
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        match poll.poll(&mut events, Some(Duration::from_millis(100))) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            result => result.map_err(io)?,
        }
        for event in events.iter() {
            let k = event.token().0;
            let conn = &mut conns[k];
            loop {
                match conn.stream.read(&mut buf) {
                    Ok(0) => return Err(format!("client {k}: the server closed the connection")),
                    Ok(n) => {
                        conn.inbuf.extend_from_slice(&buf[..n]);
                        // A short read emptied the socket; the next reply
                        // raises a new event.
                        if n < buf.len() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(format!("client {k}: receive: {e}")),
                }
            }
            // SET answers one line, +OK or an error, in request order.
            let mut answered = 0;
            let mut start = 0;
            while let Some(len) = conn.inbuf[start..].iter().position(|&b| b == b'\n') {
                let line = &conn.inbuf[start..start + len];
                start += len + 1;
                answered += 1;
                let sent =
                    conn.sent.pop_front().ok_or_else(|| format!("client {k}: a reply to no request"))?;
                if line.starts_with(b"+OK") {
                    latencies_us
                        .record(sent.elapsed().as_micros().max(1) as u64)
                        .map_err(|e| e.to_string())?;
                    ops.fetch_add(1, Ordering::Relaxed);
                } else {
                    errors += 1;
                    if errors <= 3 {
                        eprintln!("client {k}: {}", String::from_utf8_lossy(line).trim_end());
                    }
                }
            }
            conn.inbuf.drain(..start);
            if answered > 0 && !stop.load(Ordering::Relaxed) {
                send(k, conn, answered)?;
            }
        }
    }
    Ok(ClientReport { latencies_us, errors })
}

/// `n` ports on 127.0.0.1 free right now.
fn free_ports(n: usize) -> Result<Vec<u16>, String> {
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot find a free port: {e}"))?;
    listeners.iter().map(|l| l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())).collect()
}
