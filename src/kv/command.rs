//! Requests as typed commands, sorted by how the server must answer them.
//!
//! [`Command::parse`] turns the arguments of one request into a
//! [`Command`], or a [`CommandError`] whose [`reply`](CommandError::reply) is
//! the error Redis would send. Command names and keywords are matched
//! case-insensitively. The three variants of `Command` are the three ways
//! a node answers:
//!
//! - [`WriteOp`]: proposed through the Raft log, answered by
//!   [`Store::apply`](super::Store::apply) on the proposer once committed;
//! - [`ReadOp`]: a linearizable read (ReadIndex), answered by
//!   [`Store::query`](super::Store::query) once the local state machine has
//!   applied up to the read index;
//! - [`LocalOp`]: answered by the connection at once, without Raft, by
//!   [`answer_local`](super::answer_local).

use std::fmt;

use bytes::Bytes;

use super::reply::Reply;
use super::resp::parse_i64;

/// One client request, typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Changes the map: goes through the Raft log.
    Write(WriteOp),
    /// Reads the map: a linearizable read on the local state machine.
    Read(ReadOp),
    /// Needs neither the log nor the map.
    Local(LocalOp),
    /// `OAR.MEMBER ...`: reads or changes the cluster's membership.
    Member(MemberOp),
}

/// An `OAR.MEMBER` subcommand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberOp {
    /// `OAR.MEMBER ADD <id> <raft-addr>`: add a learner.
    Add {
        /// The new node's id.
        id: u64,
        /// Where it listens for peers.
        addr: String,
    },
    /// `OAR.MEMBER PROMOTE <id>`: make a learner a voter.
    Promote {
        /// The learner.
        id: u64,
    },
    /// `OAR.MEMBER REMOVE <id>`: remove a member.
    Remove {
        /// The member.
        id: u64,
    },
    /// `OAR.MEMBER REPLACE <learner-id> <voter-id>`: promote a learner and
    /// remove a voter in one joint change. `REPLACE <id> <id>` (or
    /// `REPLACE <id>`) re-admits voter `id` as the storage incarnation it
    /// now answers from: a node that lost its disk and caught up again.
    Replace {
        /// The learner that becomes a voter.
        promote: u64,
        /// The voter that leaves.
        remove: u64,
    },
    /// `OAR.MEMBER LIST`: the members, their roles and addresses.
    List,
}

/// How a [`Command`] is answered; see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandClass {
    /// Through the Raft log.
    Write,
    /// By a linearizable read.
    Read,
    /// By the connection alone.
    Local,
    /// Through the node's runtime: reads or changes the membership.
    Member,
}

/// A command that changes the map. Its encoding as a log entry is in
/// [`super::entry`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOp {
    /// `SET key value [NX|XX] [GET]`.
    Set {
        /// The key to set.
        key: Bytes,
        /// Its new value.
        value: Bytes,
        /// When to set it.
        condition: SetCondition,
        /// Whether to reply the old value (or null) instead of `OK`.
        get: bool,
    },
    /// `DEL key [key ...]`: replies how many of the keys existed.
    Del {
        /// The keys, at least one; duplicates allowed.
        keys: Vec<Bytes>,
    },
    /// `INCR key` (`delta` 1), `DECR key` (-1), `INCRBY key delta`.
    IncrBy {
        /// The key whose integer value changes.
        key: Bytes,
        /// The amount added.
        delta: i64,
    },
    /// `MSET key value [key value ...]`, applied in order (a repeated key
    /// ends with its last value).
    MSet {
        /// The pairs, at least one.
        pairs: Vec<(Bytes, Bytes)>,
    },
}

/// When `SET` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetCondition {
    /// Always (no option).
    Always,
    /// `NX`: only if the key does not exist.
    IfAbsent,
    /// `XX`: only if the key exists.
    IfPresent,
}

/// A command that reads the map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadOp {
    /// `GET key`.
    Get {
        /// The key to read.
        key: Bytes,
    },
    /// `EXISTS key [key ...]`: how many of the keys exist, counting a
    /// repeated key each time.
    Exists {
        /// The keys, at least one.
        keys: Vec<Bytes>,
    },
    /// `MGET key [key ...]`.
    MGet {
        /// The keys, at least one.
        keys: Vec<Bytes>,
    },
    /// `DBSIZE`: the number of keys.
    DbSize,
}

/// A command answered by the connection, without Raft.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LocalOp {
    /// `PING [message]`.
    Ping {
        /// Echoed back if present; else the reply is `PONG`.
        message: Option<Bytes>,
    },
    /// `ECHO message`.
    Echo {
        /// Echoed back.
        message: Bytes,
    },
    /// `COMMAND`, `COMMAND COUNT`, `COMMAND DOCS ...`, `COMMAND INFO ...`.
    Command(CommandQuery),
    /// `CONFIG GET pattern [pattern ...]`.
    ConfigGet {
        /// Glob patterns (`*`, `?`) over parameter names.
        patterns: Vec<Bytes>,
    },
    /// `INFO [section ...]`.
    Info {
        /// The sections asked for; none means the default set.
        sections: Vec<Bytes>,
    },
    /// `CLIENT SETNAME | GETNAME | ID | INFO | SETINFO`.
    Client(ClientOp),
    /// `ROLE`.
    Role,
    /// `SELECT 0`, the only database there is.
    Select,
    /// `QUIT`: reply `OK`, then close the connection.
    Quit,
}

/// The forms of `COMMAND` that clients send on connecting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandQuery {
    /// `COMMAND`: details of every command.
    List,
    /// `COMMAND COUNT`.
    Count,
    /// `COMMAND DOCS [name ...]`.
    Docs,
    /// `COMMAND INFO [name ...]`.
    Info {
        /// The commands asked about.
        names: Vec<Bytes>,
    },
}

/// The forms of `CLIENT` that clients send on connecting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientOp {
    /// `CLIENT SETNAME name`; an empty name clears it.
    SetName(Bytes),
    /// `CLIENT GETNAME`.
    GetName,
    /// `CLIENT ID`.
    Id,
    /// `CLIENT INFO`.
    Info,
    /// `CLIENT SETINFO attribute value`, sent by client libraries; accepted
    /// and ignored.
    SetInfo,
}

/// Why a request is not a command this server runs. Each has the text of
/// the error Redis replies; the connection stays open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandError {
    /// A request with no arguments (the parser never produces one).
    Empty,
    /// The command name is not one this server knows.
    Unknown {
        /// The name as sent (lossily decoded, at most 128 bytes).
        name: String,
        /// The start of the other arguments, quoted, as Redis shows them.
        args: String,
    },
    /// The command, or subcommand as in `config|get`, got too few or too
    /// many arguments.
    WrongArity {
        /// The lower-case command name.
        command: &'static str,
    },
    /// A subcommand this server does not know.
    UnknownSubcommand {
        /// The upper-case command.
        command: &'static str,
        /// The subcommand as sent.
        subcommand: String,
    },
    /// Options that do not go together, or an unknown option.
    Syntax,
    /// An argument that must be a 64-bit integer is not one.
    NotInteger,
    /// `SET` with `EX`, `PX`, `EXAT` or `PXAT`: keys never expire here.
    ExpiryUnsupported,
    /// `SELECT` of a database other than 0.
    DbIndexOutOfRange,
    /// `CLIENT SETNAME` with a space, a line break or another special byte.
    InvalidClientName,
    /// An `OAR.MEMBER` node id that is not one.
    BadNodeId(crate::types::NodeIdError),
}

impl CommandError {
    /// The error reply to send; the connection stays open.
    pub fn reply(&self) -> Reply {
        Reply::error(format!("ERR {self}"))
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::Empty => write!(f, "empty request"),
            CommandError::Unknown { name, args } => {
                write!(f, "unknown command '{name}', with args beginning with: {args}")
            }
            CommandError::WrongArity { command } => {
                write!(f, "wrong number of arguments for '{command}' command")
            }
            CommandError::UnknownSubcommand { command, subcommand } => {
                write!(f, "unknown subcommand '{subcommand}'. Try {command} HELP.")
            }
            CommandError::Syntax => write!(f, "syntax error"),
            CommandError::NotInteger => write!(f, "value is not an integer or out of range"),
            CommandError::ExpiryUnsupported => {
                write!(f, "SET with EX, PX, EXAT or PXAT is not supported: keys do not expire")
            }
            CommandError::DbIndexOutOfRange => write!(f, "DB index is out of range"),
            CommandError::InvalidClientName => {
                write!(f, "Client names cannot contain spaces, newlines or special characters.")
            }
            CommandError::BadNodeId(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for CommandError {}

/// The commands this server knows, as `COMMAND COUNT` counts them.
pub const COMMAND_NAMES: &[&str] = &[
    "ping",
    "echo",
    "set",
    "get",
    "del",
    "exists",
    "incr",
    "incrby",
    "decr",
    "mget",
    "mset",
    "dbsize",
    "command",
    "config",
    "info",
    "client",
    "role",
    "select",
    "quit",
    "oar.member",
];

/// How much of a name or argument an error message quotes, as in Redis.
const QUOTED_BYTES_MAX: usize = 128;

impl Command {
    /// Parses the arguments of one request (the command name first), as
    /// [`RequestParser::next_request`](super::RequestParser::next_request)
    /// returns them. Argument bytes are moved, not copied.
    pub fn parse(mut args: Vec<Bytes>) -> Result<Command, CommandError> {
        if args.is_empty() {
            return Err(CommandError::Empty);
        }
        let name = args.remove(0);
        let arity = |command| move |_| CommandError::WrongArity { command };
        Ok(match Upper::of(&name).as_bytes() {
            b"GET" => {
                let [key] = args.try_into().map_err(arity("get"))?;
                Command::Read(ReadOp::Get { key })
            }
            b"SET" => Command::Write(parse_set(args)?),
            b"DEL" => Command::Write(WriteOp::Del { keys: non_empty(args, "del")? }),
            b"EXISTS" => Command::Read(ReadOp::Exists { keys: non_empty(args, "exists")? }),
            b"MGET" => Command::Read(ReadOp::MGet { keys: non_empty(args, "mget")? }),
            b"INCR" => {
                let [key] = args.try_into().map_err(arity("incr"))?;
                Command::Write(WriteOp::IncrBy { key, delta: 1 })
            }
            b"DECR" => {
                let [key] = args.try_into().map_err(arity("decr"))?;
                Command::Write(WriteOp::IncrBy { key, delta: -1 })
            }
            b"INCRBY" => {
                let [key, delta] = args.try_into().map_err(arity("incrby"))?;
                let delta = parse_i64(&delta).ok_or(CommandError::NotInteger)?;
                Command::Write(WriteOp::IncrBy { key, delta })
            }
            b"MSET" => {
                if args.is_empty() || args.len() % 2 != 0 {
                    return Err(CommandError::WrongArity { command: "mset" });
                }
                let mut pairs = Vec::with_capacity(args.len() / 2);
                let mut args = args.into_iter();
                while let (Some(key), Some(value)) = (args.next(), args.next()) {
                    pairs.push((key, value));
                }
                Command::Write(WriteOp::MSet { pairs })
            }
            b"DBSIZE" => {
                let [] = args.try_into().map_err(arity("dbsize"))?;
                Command::Read(ReadOp::DbSize)
            }
            b"PING" => {
                if args.len() > 1 {
                    return Err(CommandError::WrongArity { command: "ping" });
                }
                Command::Local(LocalOp::Ping { message: args.pop() })
            }
            b"ECHO" => {
                let [message] = args.try_into().map_err(arity("echo"))?;
                Command::Local(LocalOp::Echo { message })
            }
            b"COMMAND" => Command::Local(LocalOp::Command(parse_command_query(args)?)),
            b"OAR.MEMBER" => Command::Member(parse_member(args)?),
            b"CONFIG" => Command::Local(parse_config(args)?),
            b"INFO" => Command::Local(LocalOp::Info { sections: args }),
            b"CLIENT" => Command::Local(LocalOp::Client(parse_client(args)?)),
            b"ROLE" => {
                let [] = args.try_into().map_err(arity("role"))?;
                Command::Local(LocalOp::Role)
            }
            b"SELECT" => {
                let [index] = args.try_into().map_err(arity("select"))?;
                match parse_i64(&index) {
                    Some(0) => Command::Local(LocalOp::Select),
                    Some(_) => return Err(CommandError::DbIndexOutOfRange),
                    None => return Err(CommandError::NotInteger),
                }
            }
            // Redis ignores QUIT's arguments.
            b"QUIT" => Command::Local(LocalOp::Quit),
            _ => return Err(unknown_command(&name, &args)),
        })
    }

    /// How this command is answered.
    pub fn class(&self) -> CommandClass {
        match self {
            Command::Write(_) => CommandClass::Write,
            Command::Read(_) => CommandClass::Read,
            Command::Local(_) => CommandClass::Local,
            Command::Member(_) => CommandClass::Member,
        }
    }
}

impl LocalOp {
    /// Whether the connection closes once the reply is sent (`QUIT`).
    pub fn closes_connection(&self) -> bool {
        matches!(self, LocalOp::Quit)
    }
}

/// `SET key value [NX|XX] [GET] [KEEPTTL]`, with the option rules of Redis
/// 7: `NX` with `XX` is a syntax error, `NX` with `GET` is allowed, an
/// option may repeat. Expiry options are recognised (so that their syntax
/// errors come first) and then refused.
fn parse_set(args: Vec<Bytes>) -> Result<WriteOp, CommandError> {
    let mut args = args.into_iter();
    let (Some(key), Some(value)) = (args.next(), args.next()) else {
        return Err(CommandError::WrongArity { command: "set" });
    };
    let mut condition = SetCondition::Always;
    let mut get = false;
    let mut expiry = false;
    while let Some(option) = args.next() {
        match Upper::of(&option).as_bytes() {
            b"NX" if condition != SetCondition::IfPresent => condition = SetCondition::IfAbsent,
            b"XX" if condition != SetCondition::IfAbsent => condition = SetCondition::IfPresent,
            b"GET" => get = true,
            // Without expiry every key keeps its (absent) time to live.
            b"KEEPTTL" if !expiry => {}
            b"EX" | b"PX" | b"EXAT" | b"PXAT" if !expiry => {
                args.next().ok_or(CommandError::Syntax)?;
                expiry = true;
            }
            _ => return Err(CommandError::Syntax),
        }
    }
    if expiry {
        return Err(CommandError::ExpiryUnsupported);
    }
    Ok(WriteOp::Set { key, value, condition, get })
}

fn parse_member(args: Vec<Bytes>) -> Result<MemberOp, CommandError> {
    let mut args = args.into_iter();
    let Some(subcommand) = args.next() else {
        return Err(CommandError::WrongArity { command: "oar.member" });
    };
    let rest: Vec<Bytes> = args.collect();
    let id = |raw: &Bytes| {
        String::from_utf8_lossy(raw)
            .parse::<crate::types::NodeId>()
            .map(|id| id.0)
            .map_err(CommandError::BadNodeId)
    };
    match (Upper::of(&subcommand).as_bytes(), rest.as_slice()) {
        (b"ADD", [node, addr]) => {
            let addr = std::str::from_utf8(addr).map_err(|_| CommandError::Syntax)?.to_string();
            Ok(MemberOp::Add { id: id(node)?, addr })
        }
        (b"ADD", _) => Err(CommandError::WrongArity { command: "oar.member|add" }),
        (b"PROMOTE", [node]) => Ok(MemberOp::Promote { id: id(node)? }),
        (b"PROMOTE", _) => Err(CommandError::WrongArity { command: "oar.member|promote" }),
        (b"REMOVE", [node]) => Ok(MemberOp::Remove { id: id(node)? }),
        (b"REMOVE", _) => Err(CommandError::WrongArity { command: "oar.member|remove" }),
        (b"REPLACE", [promote, remove]) => {
            Ok(MemberOp::Replace { promote: id(promote)?, remove: id(remove)? })
        }
        (b"REPLACE", [node]) => {
            let node = id(node)?;
            Ok(MemberOp::Replace { promote: node, remove: node })
        }
        (b"REPLACE", _) => Err(CommandError::WrongArity { command: "oar.member|replace" }),
        (b"LIST", []) => Ok(MemberOp::List),
        (b"LIST", _) => Err(CommandError::WrongArity { command: "oar.member|list" }),
        _ => Err(unknown_subcommand("OAR.MEMBER", &subcommand)),
    }
}

fn parse_command_query(args: Vec<Bytes>) -> Result<CommandQuery, CommandError> {
    let mut args = args.into_iter();
    let Some(subcommand) = args.next() else {
        return Ok(CommandQuery::List);
    };
    match Upper::of(&subcommand).as_bytes() {
        b"COUNT" if args.len() == 0 => Ok(CommandQuery::Count),
        b"COUNT" => Err(CommandError::WrongArity { command: "command|count" }),
        b"DOCS" => Ok(CommandQuery::Docs),
        b"INFO" => Ok(CommandQuery::Info { names: args.collect() }),
        _ => Err(unknown_subcommand("COMMAND", &subcommand)),
    }
}

fn parse_config(args: Vec<Bytes>) -> Result<LocalOp, CommandError> {
    let mut args = args.into_iter();
    let Some(subcommand) = args.next() else {
        return Err(CommandError::WrongArity { command: "config" });
    };
    match Upper::of(&subcommand).as_bytes() {
        b"GET" if args.len() == 0 => Err(CommandError::WrongArity { command: "config|get" }),
        b"GET" => Ok(LocalOp::ConfigGet { patterns: args.collect() }),
        _ => Err(unknown_subcommand("CONFIG", &subcommand)),
    }
}

fn parse_client(args: Vec<Bytes>) -> Result<ClientOp, CommandError> {
    let mut args = args.into_iter();
    let Some(subcommand) = args.next() else {
        return Err(CommandError::WrongArity { command: "client" });
    };
    let rest: Vec<Bytes> = args.collect();
    let arity = |command| move |_| CommandError::WrongArity { command };
    match Upper::of(&subcommand).as_bytes() {
        b"SETNAME" => {
            let [name] = rest.try_into().map_err(arity("client|setname"))?;
            // Redis allows only printable ASCII other than space.
            if name.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
                return Err(CommandError::InvalidClientName);
            }
            Ok(ClientOp::SetName(name))
        }
        b"GETNAME" => {
            let [] = rest.try_into().map_err(arity("client|getname"))?;
            Ok(ClientOp::GetName)
        }
        b"ID" => {
            let [] = rest.try_into().map_err(arity("client|id"))?;
            Ok(ClientOp::Id)
        }
        b"INFO" => {
            let [] = rest.try_into().map_err(arity("client|info"))?;
            Ok(ClientOp::Info)
        }
        b"SETINFO" => {
            let [_, _] = rest.try_into().map_err(arity("client|setinfo"))?;
            Ok(ClientOp::SetInfo)
        }
        _ => Err(unknown_subcommand("CLIENT", &subcommand)),
    }
}

/// `args`, or the arity error of `command` if there are none.
fn non_empty(args: Vec<Bytes>, command: &'static str) -> Result<Vec<Bytes>, CommandError> {
    if args.is_empty() {
        Err(CommandError::WrongArity { command })
    } else {
        Ok(args)
    }
}

/// Redis 7's unknown-command error: the name, then the other arguments
/// quoted until the list passes 128 bytes.
fn unknown_command(name: &[u8], args: &[Bytes]) -> CommandError {
    let mut quoted = String::new();
    for arg in args {
        if quoted.len() >= QUOTED_BYTES_MAX {
            break;
        }
        let room = QUOTED_BYTES_MAX - quoted.len();
        quoted.push('\'');
        quoted.push_str(&lossy(arg, room));
        quoted.push_str("' ");
    }
    CommandError::Unknown { name: lossy(name, QUOTED_BYTES_MAX), args: quoted }
}

fn unknown_subcommand(command: &'static str, subcommand: &[u8]) -> CommandError {
    CommandError::UnknownSubcommand { command, subcommand: lossy(subcommand, QUOTED_BYTES_MAX) }
}

/// At most `max` bytes of `bytes` as text, invalid UTF-8 replaced.
fn lossy(bytes: &[u8], max: usize) -> String {
    String::from_utf8_lossy(bytes.get(..max).unwrap_or(bytes)).into_owned()
}

/// A word in ASCII upper case, for matching keywords without allocating.
/// Words longer than any keyword become empty, which matches none.
struct Upper {
    bytes: [u8; Upper::BYTES_MAX],
    len: usize,
}

impl Upper {
    /// Longer than every keyword.
    const BYTES_MAX: usize = 16;

    fn of(word: &[u8]) -> Upper {
        let mut upper = Upper { bytes: [0; Upper::BYTES_MAX], len: 0 };
        if let Some(dest) = upper.bytes.get_mut(..word.len()) {
            dest.copy_from_slice(word);
            dest.make_ascii_uppercase();
            upper.len = word.len();
        }
        upper
    }

    fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }
}
