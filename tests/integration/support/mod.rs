//! Helpers shared by the tests: free ports and a small blocking RESP
//! client; and, in `processes` (with the `cli` feature, which builds the
//! `oar` binary), `oar serve` nodes to start and kill, and what the tests
//! do to a cluster through its RESP ports: load keys, check them, and
//! change the membership.
#![allow(dead_code)]

#[cfg(feature = "cli")]
mod processes;
#[cfg(feature = "cli")]
pub use processes::*;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

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

    /// How long a reply may take before reads fail (10 s unless changed).
    pub fn set_read_timeout(&mut self, timeout: Duration) -> std::io::Result<()> {
        self.reader.get_ref().set_read_timeout(Some(timeout))
    }

    pub fn command(&mut self, args: &[&str]) -> std::io::Result<Reply> {
        let mut out = Vec::new();
        encode_command(args, &mut out);
        self.writer.write_all(&out)?;
        self.read_reply()
    }

    /// Sends `commands` in one write and reads their replies, in order.
    pub fn pipeline<S: AsRef<str>>(&mut self, commands: &[Vec<S>]) -> std::io::Result<Vec<Reply>> {
        let mut out = Vec::new();
        for args in commands {
            let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
            encode_command(&args, &mut out);
        }
        self.writer.write_all(&out)?;
        commands.iter().map(|_| self.read_reply()).collect()
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

/// Appends `args` to `out` as a RESP multibulk request.
fn encode_command(args: &[&str], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
    }
}
