//! Answers to the commands a connection handles without Raft: the
//! handshake and introspection commands that `redis-cli`, `redis-benchmark`
//! and client libraries send, plus `INFO` and `ROLE`, which report the
//! node's Raft state.

use std::fmt::Write as _;
use std::net::SocketAddr;

use bytes::Bytes;

use super::command::{ClientOp, CommandQuery, LocalOp, COMMAND_NAMES};
use super::reply::Reply;
use crate::core::Role;
use crate::types::{LogIndex, NodeId, Term};

/// The version `INFO` claims in `redis_version`, for clients that check it
/// before using a feature: the commands here behave as in this version.
pub const REDIS_VERSION: &str = "7.0.0";

/// The node's state as `INFO` and `ROLE` report it. The runtime fills it
/// from the core's status when answering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerInfo {
    /// This node.
    pub node: NodeId,
    /// Its Raft role.
    pub role: Role,
    /// Its current term.
    pub term: Term,
    /// The leader it knows of.
    pub leader: Option<NodeId>,
    /// Its commit index.
    pub commit_index: LogIndex,
    /// The index its state machine has applied up to.
    pub applied_index: LogIndex,
    /// The number of keys, if known; the `# Keyspace` section is left out
    /// when it is not.
    pub keys: Option<u64>,
    /// The incarnation of its storage.
    pub incarnation: crate::types::Incarnation,
    /// How the configuration regards it.
    pub admission: crate::core::Admission,
    /// Nonzero while it repairs a log that lost committed entries.
    pub repair_to: LogIndex,
    /// What keeps its disk from taking writes, if anything.
    pub disk: Option<crate::core::DiskTrouble>,
}

/// What a connection remembers about its client, for `CLIENT` commands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientState {
    /// A number unique among this node's connections (`CLIENT ID`).
    pub id: u64,
    /// The name set by `CLIENT SETNAME`, if any.
    pub name: Option<Bytes>,
    /// The client's address, if known.
    pub addr: Option<SocketAddr>,
}

/// Answers a local command for the client `client` on the node `server`
/// describes. `CLIENT SETNAME` updates `client`. For `QUIT`
/// ([`LocalOp::closes_connection`]), send the reply, then close.
pub fn answer_local(op: &LocalOp, client: &mut ClientState, server: &ServerInfo) -> Reply {
    match op {
        LocalOp::Ping { message: None } => Reply::Simple("PONG".into()),
        LocalOp::Ping { message: Some(message) } | LocalOp::Echo { message } => Reply::Bulk(message.clone()),
        // Clients only need a well-formed answer: `redis-cli` falls back to
        // its built-in hints on an empty one.
        LocalOp::Command(CommandQuery::List | CommandQuery::Docs) => Reply::Array(Vec::new()),
        LocalOp::Command(CommandQuery::Count) => Reply::Integer(COMMAND_NAMES.len() as i64),
        LocalOp::Command(CommandQuery::Info { names }) => {
            Reply::Array(names.iter().map(|_| Reply::NullArray).collect())
        }
        LocalOp::ConfigGet { patterns } => config_get(patterns),
        LocalOp::Info { sections } => Reply::Bulk(Bytes::from(info(sections, server))),
        LocalOp::Client(op) => answer_client(op, client),
        LocalOp::Role => Reply::Array(vec![
            Reply::bulk_from(role_name(server.role)),
            Reply::Integer(as_integer(server.term.0)),
            server.leader.map_or(Reply::NullBulk, |leader| Reply::Integer(as_integer(leader.0))),
            Reply::Integer(as_integer(server.commit_index.0)),
            Reply::Integer(as_integer(server.applied_index.0)),
        ]),
        LocalOp::Select | LocalOp::Quit => Reply::OK,
    }
}

/// The parameters `CONFIG GET` knows, with their fixed values. Every write
/// is in the fsynced Raft log before it is acknowledged, which is what
/// `appendonly yes` with `appendfsync always` promises; there are no RDB
/// snapshots to schedule.
const CONFIG: &[(&str, &str)] =
    &[("appendfsync", "always"), ("appendonly", "yes"), ("databases", "1"), ("save", "")];

/// `CONFIG GET`: a flat array of name, value pairs for every parameter some
/// pattern matches, each once, in table order.
fn config_get(patterns: &[Bytes]) -> Reply {
    let mut pairs = Vec::new();
    for (name, value) in CONFIG {
        if patterns.iter().any(|pattern| glob_match(pattern, name.as_bytes())) {
            pairs.push(Reply::bulk_from(name));
            pairs.push(Reply::bulk_from(value));
        }
    }
    Reply::Array(pairs)
}

fn answer_client(op: &ClientOp, client: &mut ClientState) -> Reply {
    match op {
        ClientOp::SetName(name) => {
            client.name = if name.is_empty() { None } else { Some(name.clone()) };
            Reply::OK
        }
        ClientOp::GetName => client.name.clone().map_or(Reply::NullBulk, Reply::Bulk),
        ClientOp::Id => Reply::Integer(as_integer(client.id)),
        ClientOp::Info => {
            let mut line = format!("id={}", client.id);
            if let Some(addr) = client.addr {
                let _ = write!(line, " addr={addr}");
            }
            let name = client.name.as_deref().unwrap_or_default();
            let _ = writeln!(line, " name={} db=0", String::from_utf8_lossy(name));
            Reply::Bulk(Bytes::from(line))
        }
        ClientOp::SetInfo => Reply::OK,
    }
}

/// The `INFO` sections, in order; a request names some of them, or `all`,
/// `everything` or `default` (or nothing) for every one.
const SECTIONS: &[&str] = &["server", "replication", "keyspace"];

/// The `INFO` text: `# Section` headers and `field:value` lines, with
/// `\r\n` line ends as Redis sends.
fn info(sections: &[Bytes], server: &ServerInfo) -> String {
    let everything = sections.is_empty()
        || sections.iter().any(|s| {
            [&b"all"[..], b"everything", b"default"].iter().any(|word| s.eq_ignore_ascii_case(word))
        });
    let wanted =
        |section: &str| everything || sections.iter().any(|s| s.eq_ignore_ascii_case(section.as_bytes()));
    let mut text = String::new();
    for section in SECTIONS.iter().filter(|section| wanted(section)) {
        if !text.is_empty() {
            text.push_str("\r\n");
        }
        // Writing to a String cannot fail.
        let _ = match *section {
            "server" => write!(
                text,
                "# Server\r\nredis_version:{REDIS_VERSION}\r\noar_version:{}\r\nredis_mode:standalone\r\n",
                env!("CARGO_PKG_VERSION")
            ),
            "replication" => write!(
                text,
                "# Replication\r\nrole:{}\r\nraft_node_id:{}\r\nraft_role:{}\r\nraft_term:{}\r\n\
                 raft_leader_id:{}\r\nraft_commit_index:{}\r\nraft_applied_index:{}\r\n\
                 raft_incarnation:{}\r\nraft_admission:{}\r\nraft_repair_to:{}\r\nraft_disk:{}\r\n{}",
                if server.role == Role::Leader { "master" } else { "slave" },
                server.node.0,
                role_name(server.role),
                server.term.0,
                server.leader.map_or(0, |leader| leader.0),
                server.commit_index.0,
                server.applied_index.0,
                server.incarnation,
                admission_name(server.admission),
                server.repair_to.0,
                match server.disk {
                    None => "ok",
                    Some(crate::core::DiskTrouble::Full) => "full",
                    Some(crate::core::DiskTrouble::Stalled) => "stalled",
                },
                admission_advice(server),
            ),
            _ => match server.keys {
                Some(keys) if keys > 0 => {
                    write!(text, "# Keyspace\r\ndb0:keys={keys},expires=0,avg_ttl=0\r\n")
                }
                _ => write!(text, "# Keyspace\r\n"),
            },
        };
    }
    text
}

fn admission_name(admission: crate::core::Admission) -> &'static str {
    match admission {
        crate::core::Admission::Voter => "voter",
        crate::core::Admission::Learner => "learner",
        crate::core::Admission::NotMember => "not-member",
        crate::core::Admission::Refused { .. } => "refused",
    }
}

/// For a refused node, what happened and what to do, as an INFO line.
fn admission_advice(server: &ServerInfo) -> String {
    match server.admission {
        crate::core::Admission::Refused { admitted, ours } => format!(
            "raft_admission_advice:the cluster admitted node {id} with storage incarnation {admitted}, \
             this data directory is {ours} (a lost or replaced disk); it counts in no quorum. Once it has \
             caught up, re-admit it from the leader: oar member replace {id} {id}\r\n",
            id = server.node.0
        ),
        _ => String::new(),
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Follower => "follower",
        Role::PreCandidate => "precandidate",
        Role::Candidate => "candidate",
        Role::Leader => "leader",
    }
}

/// A counter as an integer reply; counters stay far below `i64::MAX`.
fn as_integer(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Whether `text` matches the glob `pattern` (`*` any run, `?` any byte,
/// anything else itself, ASCII case ignored), as `CONFIG GET` matches
/// parameter names. Linear backtracking over the last `*`, so no pattern
/// takes more than `O(pattern × text)` steps.
pub(super) fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where to resume after the last `*`: the pattern after it, and the text
    // position it has absorbed up to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match (pattern.get(p), text.get(t)) {
            (Some(b'*'), _) => {
                star = Some((p + 1, t));
                p += 1;
            }
            (Some(&want), Some(&got)) if want == b'?' || want.eq_ignore_ascii_case(&got) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((after, absorbed)) => {
                    p = after;
                    t = absorbed + 1;
                    star = Some((after, absorbed + 1));
                }
                None => return false,
            },
        }
    }
    pattern.get(p..).unwrap_or_default().iter().all(|&b| b == b'*')
}
