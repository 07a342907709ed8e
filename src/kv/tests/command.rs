//! Tests of command parsing (names, arity, options, classification, the
//! error texts Redis sends) and of the answers to local commands.

use bytes::Bytes;

use super::args;
use crate::kv::{
    answer_local, ClientOp, ClientState, Command, CommandClass, CommandError, CommandQuery, LocalOp,
    MemberOp, ReadOp, Reply, ServerInfo, SetCondition, WriteOp, COMMAND_NAMES,
};
use crate::types::{LogIndex, NodeId, NodeIdError, Term};
use crate::Role;

fn parse(words: &[&[u8]]) -> Result<Command, CommandError> {
    Command::parse(args(words))
}

/// The error reply of a request, as the client sees it.
fn error_line(words: &[&[u8]]) -> String {
    let error = parse(words).expect_err("an invalid request");
    String::from_utf8(error.reply().to_vec()).expect("ASCII")
}

fn b(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

fn server() -> ServerInfo {
    ServerInfo {
        node: NodeId(2),
        role: Role::Follower,
        term: Term(7),
        leader: Some(NodeId(1)),
        commit_index: LogIndex(40),
        applied_index: LogIndex(39),
        keys: Some(5),
        incarnation: crate::types::Incarnation(0xab),
        admission: crate::core::Admission::Voter,
        repair_to: LogIndex(0),
        disk: Some(crate::core::DiskTrouble::Full),
    }
}

fn local(words: &[&[u8]], client: &mut ClientState) -> Reply {
    match parse(words) {
        Ok(Command::Local(op)) => answer_local(&op, client, &server()),
        other => panic!("not a local command: {other:?}"),
    }
}

#[test]
fn names_and_keywords_are_case_insensitive() {
    let want = Command::Read(ReadOp::Get { key: b("k") });
    for name in [&b"GET"[..], b"get", b"GeT"] {
        assert_eq!(parse(&[name, b"k"]), Ok(want.clone()));
    }
    let set = parse(&[b"sEt", b"k", b"v", b"nx", b"GeT"]);
    let want = WriteOp::Set { key: b("k"), value: b("v"), condition: SetCondition::IfAbsent, get: true };
    assert_eq!(set, Ok(Command::Write(want)));
}

#[test]
fn every_command_is_classified() {
    let cases: &[(&[&[u8]], CommandClass)] = &[
        (&[b"SET", b"k", b"v"], CommandClass::Write),
        (&[b"DEL", b"k"], CommandClass::Write),
        (&[b"INCR", b"k"], CommandClass::Write),
        (&[b"INCRBY", b"k", b"5"], CommandClass::Write),
        (&[b"DECR", b"k"], CommandClass::Write),
        (&[b"MSET", b"k", b"v"], CommandClass::Write),
        (&[b"GET", b"k"], CommandClass::Read),
        (&[b"EXISTS", b"k"], CommandClass::Read),
        (&[b"MGET", b"k"], CommandClass::Read),
        (&[b"DBSIZE"], CommandClass::Read),
        (&[b"PING"], CommandClass::Local),
        (&[b"ECHO", b"x"], CommandClass::Local),
        (&[b"COMMAND"], CommandClass::Local),
        (&[b"CONFIG", b"GET", b"save"], CommandClass::Local),
        (&[b"INFO"], CommandClass::Local),
        (&[b"CLIENT", b"ID"], CommandClass::Local),
        (&[b"ROLE"], CommandClass::Local),
        (&[b"SELECT", b"0"], CommandClass::Local),
        (&[b"QUIT"], CommandClass::Local),
        (&[b"OAR.MEMBER", b"LIST"], CommandClass::Member),
    ];
    for &(words, class) in cases {
        assert_eq!(parse(words).map(|c| c.class()), Ok(class), "{words:?}");
    }
    // Each command name in the table is parsed by something above.
    assert_eq!(COMMAND_NAMES.len(), 20);
}

#[test]
fn incr_decr_and_incrby_are_one_operation() {
    let incr = |delta| Ok(Command::Write(WriteOp::IncrBy { key: b("k"), delta }));
    assert_eq!(parse(&[b"INCR", b"k"]), incr(1));
    assert_eq!(parse(&[b"DECR", b"k"]), incr(-1));
    assert_eq!(parse(&[b"INCRBY", b"k", b"-9223372036854775808"]), incr(i64::MIN));
    for bad in [&b"x"[..], b"1.5", b" 1", b"+1", b"9223372036854775808"] {
        assert_eq!(parse(&[b"INCRBY", b"k", bad]), Err(CommandError::NotInteger));
    }
}

#[test]
fn multi_key_commands_keep_every_key_in_order() {
    assert_eq!(
        parse(&[b"MSET", b"a", b"1", b"b", b"2", b"a", b"3"]),
        Ok(Command::Write(WriteOp::MSet {
            pairs: vec![(b("a"), b("1")), (b("b"), b("2")), (b("a"), b("3"))]
        }))
    );
    assert_eq!(parse(&[b"DEL", b"a", b"a"]), Ok(Command::Write(WriteOp::Del { keys: args(&[b"a", b"a"]) })));
    assert_eq!(
        parse(&[b"EXISTS", b"a", b"b"]),
        Ok(Command::Read(ReadOp::Exists { keys: args(&[b"a", b"b"]) }))
    );
    assert_eq!(parse(&[b"MGET", b"a"]), Ok(Command::Read(ReadOp::MGet { keys: args(&[b"a"]) })));
}

#[test]
fn set_options_follow_redis_7() {
    let set =
        |condition, get| Ok(Command::Write(WriteOp::Set { key: b("k"), value: b("v"), condition, get }));
    assert_eq!(parse(&[b"SET", b"k", b"v"]), set(SetCondition::Always, false));
    assert_eq!(parse(&[b"SET", b"k", b"v", b"XX"]), set(SetCondition::IfPresent, false));
    assert_eq!(parse(&[b"SET", b"k", b"v", b"GET"]), set(SetCondition::Always, true));
    assert_eq!(parse(&[b"SET", b"k", b"v", b"NX", b"NX"]), set(SetCondition::IfAbsent, false));
    assert_eq!(parse(&[b"SET", b"k", b"v", b"GET", b"XX", b"KEEPTTL"]), set(SetCondition::IfPresent, true));
    for bad in [&[&b"NX"[..], b"XX"][..], &[b"XX", b"NX"], &[b"FOO"], &[b"EX"], &[b"EX", b"10", b"PX", b"5"]]
    {
        let mut words: Vec<&[u8]> = vec![b"SET", b"k", b"v"];
        words.extend_from_slice(bad);
        assert_eq!(parse(&words), Err(CommandError::Syntax), "{bad:?}");
    }
    for expiry in [&b"EX"[..], b"px", b"EXAT", b"PXAT"] {
        assert_eq!(parse(&[b"SET", b"k", b"v", expiry, b"10"]), Err(CommandError::ExpiryUnsupported));
    }
    assert!(error_line(&[b"SET", b"k", b"v", b"EX", b"1"]).starts_with("-ERR SET with EX"));
}

#[test]
fn arity_errors_name_the_command_like_redis() {
    let cases: &[(&[&[u8]], &str)] = &[
        (&[b"GET"], "get"),
        (&[b"get", b"a", b"b"], "get"),
        (&[b"SET", b"k"], "set"),
        (&[b"DEL"], "del"),
        (&[b"EXISTS"], "exists"),
        (&[b"INCR"], "incr"),
        (&[b"INCRBY", b"k"], "incrby"),
        (&[b"DECR", b"a", b"b"], "decr"),
        (&[b"MGET"], "mget"),
        (&[b"MSET"], "mset"),
        (&[b"MSET", b"k", b"v", b"k2"], "mset"),
        (&[b"DBSIZE", b"x"], "dbsize"),
        (&[b"PING", b"a", b"b"], "ping"),
        (&[b"ECHO"], "echo"),
        (&[b"ROLE", b"x"], "role"),
        (&[b"SELECT"], "select"),
        (&[b"CONFIG"], "config"),
        (&[b"CONFIG", b"GET"], "config|get"),
        (&[b"COMMAND", b"COUNT", b"x"], "command|count"),
        (&[b"CLIENT"], "client"),
        (&[b"CLIENT", b"SETNAME"], "client|setname"),
        (&[b"CLIENT", b"ID", b"x"], "client|id"),
        (&[b"CLIENT", b"SETINFO", b"lib-name"], "client|setinfo"),
    ];
    for &(words, name) in cases {
        assert_eq!(error_line(words), format!("-ERR wrong number of arguments for '{name}' command\r\n"));
    }
}

#[test]
fn unknown_commands_and_subcommands_get_redis_errors() {
    assert_eq!(error_line(&[b"FOO"]), "-ERR unknown command 'FOO', with args beginning with: \r\n");
    assert_eq!(
        error_line(&[b"foo", b"a", b"b\r\nc"]),
        "-ERR unknown command 'foo', with args beginning with: 'a' 'b  c' \r\n"
    );
    let long = vec![b'x'; 300];
    let line = error_line(&[&long, &long, &long]);
    assert!(!line.contains(&"x".repeat(129)), "quoted names and arguments are capped: {line}");
    assert_eq!(line.matches('\'').count(), 4, "only the first argument fits: {line}");
    assert_eq!(
        error_line(&[b"CONFIG", b"SET", b"save", b""]),
        "-ERR unknown subcommand 'SET'. Try CONFIG HELP.\r\n"
    );
    assert!(error_line(&[b"CLIENT", b"KILL"]).starts_with("-ERR unknown subcommand 'KILL'. Try CLIENT HELP."));
    assert!(error_line(&[b"COMMAND", b"GETKEYS"]).starts_with("-ERR unknown subcommand"));
    assert_eq!(Command::parse(Vec::new()), Err(CommandError::Empty));
}

#[test]
fn ping_echo_select_and_quit_answer_locally() {
    let mut client = ClientState::default();
    assert_eq!(local(&[b"PING"], &mut client).to_vec(), b"+PONG\r\n");
    assert_eq!(local(&[b"ping", b"hi"], &mut client), Reply::Bulk(b("hi")));
    assert_eq!(local(&[b"ECHO", b"x y"], &mut client), Reply::Bulk(b("x y")));
    assert_eq!(local(&[b"SELECT", b"0"], &mut client), Reply::OK);
    assert_eq!(parse(&[b"SELECT", b"1"]), Err(CommandError::DbIndexOutOfRange));
    assert_eq!(parse(&[b"SELECT", b"x"]), Err(CommandError::NotInteger));
    assert_eq!(local(&[b"QUIT", b"now"], &mut client), Reply::OK);
    assert_eq!(parse(&[b"QUIT"]), Ok(Command::Local(LocalOp::Quit)));
    assert!(LocalOp::Quit.closes_connection() && !LocalOp::Role.closes_connection());
}

#[test]
fn command_and_config_get_satisfy_redis_tools() {
    let mut client = ClientState::default();
    assert_eq!(local(&[b"COMMAND"], &mut client), Reply::Array(vec![]));
    assert_eq!(local(&[b"COMMAND", b"DOCS"], &mut client), Reply::Array(vec![]));
    assert_eq!(local(&[b"command", b"docs", b"get"], &mut client), Reply::Array(vec![]));
    assert_eq!(local(&[b"COMMAND", b"COUNT"], &mut client), Reply::Integer(20));
    assert_eq!(
        parse(&[b"COMMAND", b"INFO", b"get"]),
        Ok(Command::Local(LocalOp::Command(CommandQuery::Info { names: args(&[b"get"]) })))
    );
    assert_eq!(
        local(&[b"COMMAND", b"INFO", b"get", b"x"], &mut client),
        Reply::Array(vec![Reply::NullArray; 2])
    );
    let pairs = |pairs: &[(&str, &str)]| {
        Reply::Array(pairs.iter().flat_map(|(n, v)| [Reply::bulk_from(n), Reply::bulk_from(v)]).collect())
    };
    // What redis-benchmark asks for on start.
    assert_eq!(local(&[b"CONFIG", b"GET", b"save"], &mut client), pairs(&[("save", "")]));
    assert_eq!(local(&[b"config", b"get", b"APPENDONLY"], &mut client), pairs(&[("appendonly", "yes")]));
    assert_eq!(
        local(&[b"CONFIG", b"GET", b"append*", b"save", b"s?ve"], &mut client),
        pairs(&[("appendfsync", "always"), ("appendonly", "yes"), ("save", "")])
    );
    assert_eq!(local(&[b"CONFIG", b"GET", b"maxmemory"], &mut client), Reply::Array(vec![]));
    match local(&[b"CONFIG", b"GET", b"*"], &mut client) {
        Reply::Array(items) => assert_eq!(items.len(), 8),
        other => panic!("{other:?}"),
    }
}

#[test]
fn glob_matching_handles_stars_and_question_marks() {
    use crate::kv::local::glob_match;
    let cases: &[(&str, &str, bool)] = &[
        ("*", "save", true),
        ("", "", true),
        ("", "save", false),
        ("save", "SAVE", true),
        ("sa*", "save", true),
        ("*ve", "save", true),
        ("*a*e*", "save", true),
        ("s?v?", "save", true),
        ("s?v", "save", false),
        ("a*b*c", "aXbYbZc", true),
        ("a*b*c", "aXbYbZ", false),
        ("**", "", true),
        ("*x", "save", false),
    ];
    for &(pattern, text, want) in cases {
        assert_eq!(glob_match(pattern.as_bytes(), text.as_bytes()), want, "{pattern} vs {text}");
    }
}

#[test]
fn client_commands_track_the_connection() {
    let mut client = ClientState { id: 12, name: None, addr: Some("127.0.0.1:5000".parse().expect("addr")) };
    assert_eq!(local(&[b"CLIENT", b"GETNAME"], &mut client), Reply::NullBulk);
    assert_eq!(local(&[b"CLIENT", b"SETNAME", b"worker-1"], &mut client), Reply::OK);
    assert_eq!(local(&[b"client", b"getname"], &mut client), Reply::Bulk(b("worker-1")));
    assert_eq!(local(&[b"CLIENT", b"ID"], &mut client), Reply::Integer(12));
    assert_eq!(
        local(&[b"CLIENT", b"INFO"], &mut client),
        Reply::Bulk(b("id=12 addr=127.0.0.1:5000 name=worker-1 db=0\n"))
    );
    assert_eq!(local(&[b"CLIENT", b"SETINFO", b"LIB-NAME", b"redis-py"], &mut client), Reply::OK);
    assert_eq!(local(&[b"CLIENT", b"SETNAME", b""], &mut client), Reply::OK);
    assert_eq!(client.name, None);
    for bad in [&b"a b"[..], b"a\nb", b"\x7f"] {
        assert_eq!(parse(&[b"CLIENT", b"SETNAME", bad]), Err(CommandError::InvalidClientName));
    }
    assert_eq!(parse(&[b"CLIENT", b"GETNAME"]), Ok(Command::Local(LocalOp::Client(ClientOp::GetName))));
}

#[test]
fn info_and_role_report_the_raft_state() {
    let mut client = ClientState::default();
    let Reply::Bulk(text) = local(&[b"INFO"], &mut client) else { panic!("INFO is a bulk string") };
    let text = String::from_utf8(text.to_vec()).expect("ASCII");
    for line in [
        "# Server",
        "redis_version:7.0.0",
        "# Replication",
        "role:slave",
        "raft_node_id:2",
        "raft_role:follower",
        "raft_term:7",
        "raft_leader_id:1",
        "raft_commit_index:40",
        "raft_applied_index:39",
        "raft_incarnation:00000000000000ab",
        "raft_admission:voter",
        "raft_repair_to:0",
        "raft_disk:full",
        "# Keyspace",
        "db0:keys=5,expires=0,avg_ttl=0",
    ] {
        assert!(text.split("\r\n").any(|l| l == line), "{line:?} missing from {text:?}");
    }
    let Reply::Bulk(text) = local(&[b"INFO", b"REPLICATION"], &mut client) else { panic!("bulk") };
    assert!(text.starts_with(b"# Replication\r\n") && !text.windows(8).any(|w| w == b"# Server"));
    assert_eq!(local(&[b"INFO", b"nosuchsection"], &mut client), Reply::Bulk(Bytes::new()));

    assert_eq!(
        local(&[b"ROLE"], &mut client),
        Reply::Array(vec![
            Reply::bulk_from("follower"),
            Reply::Integer(7),
            Reply::Integer(1),
            Reply::Integer(40),
            Reply::Integer(39)
        ])
    );
    let leader = ServerInfo { role: Role::Leader, leader: None, ..server() };
    let Reply::Bulk(text) = answer_local(&LocalOp::Info { sections: vec![] }, &mut client, &leader) else {
        panic!("bulk")
    };
    let text = String::from_utf8(text.to_vec()).expect("ASCII");
    assert!(text.contains("\r\nrole:master\r\n") && text.contains("\r\nraft_leader_id:0\r\n"), "{text}");
    assert!(!text.contains("raft_admission_advice"), "no advice for a voter");

    // A node whose disk was replaced says so, and what to do.
    let admission = crate::core::Admission::Refused {
        admitted: crate::types::Incarnation(0xab),
        ours: crate::types::Incarnation(0xcd),
    };
    let refused = ServerInfo { admission, ..server() };
    let Reply::Bulk(text) = answer_local(&LocalOp::Info { sections: vec![] }, &mut client, &refused) else {
        panic!("bulk")
    };
    let text = String::from_utf8(text.to_vec()).expect("ASCII");
    assert!(text.contains("\r\nraft_admission:refused\r\n"), "{text}");
    let advice = text.split("\r\n").find(|l| l.starts_with("raft_admission_advice:")).expect("advice");
    assert!(advice.contains("oar member replace 2 2") && advice.contains("00000000000000cd"), "{advice}");
}

#[test]
fn oar_member_subcommands_parse_and_bad_ones_say_why() {
    let member = |words: &[&[u8]]| parse(words);
    assert_eq!(member(&[b"OAR.MEMBER", b"LIST"]), Ok(Command::Member(MemberOp::List)));
    assert_eq!(member(&[b"oar.member", b"list"]), Ok(Command::Member(MemberOp::List)));
    assert_eq!(
        member(&[b"OAR.MEMBER", b"ADD", b"4", b"127.0.0.1:7004"]),
        Ok(Command::Member(MemberOp::Add { id: 4, addr: "127.0.0.1:7004".into() }))
    );
    assert_eq!(member(&[b"OAR.MEMBER", b"PROMOTE", b"4"]), Ok(Command::Member(MemberOp::Promote { id: 4 })));
    assert_eq!(member(&[b"OAR.MEMBER", b"REMOVE", b"2"]), Ok(Command::Member(MemberOp::Remove { id: 2 })));
    assert_eq!(
        member(&[b"OAR.MEMBER", b"REPLACE", b"4", b"1"]),
        Ok(Command::Member(MemberOp::Replace { promote: 4, remove: 1 }))
    );
    assert_eq!(
        member(&[b"OAR.MEMBER", b"REPLACE", b"4"]),
        Ok(Command::Member(MemberOp::Replace { promote: 4, remove: 4 })),
        "one id: re-admit it"
    );
    assert_eq!(
        member(&[b"OAR.MEMBER", b"REPLACE", b"4", b"1", b"2"]),
        Err(CommandError::WrongArity { command: "oar.member|replace" })
    );
    assert_eq!(member(&[b"OAR.MEMBER"]), Err(CommandError::WrongArity { command: "oar.member" }));
    assert_eq!(
        member(&[b"OAR.MEMBER", b"ADD", b"4"]),
        Err(CommandError::WrongArity { command: "oar.member|add" })
    );
    // Ids are checked as `oar serve --id` checks them, with the same words.
    let reserved = member(&[b"OAR.MEMBER", b"PROMOTE", b"0"]);
    assert_eq!(reserved, Err(CommandError::BadNodeId(NodeIdError::Reserved)));
    assert_eq!(
        reserved.expect_err("0").reply(),
        Reply::error("ERR node id 0 is reserved; number nodes from 1")
    );
    assert_eq!(
        member(&[b"OAR.MEMBER", b"REMOVE", b"x"]),
        Err(CommandError::BadNodeId(NodeIdError::NotANumber("x".into())))
    );
    assert!(matches!(member(&[b"OAR.MEMBER", b"REMOVE", b"+2"]), Err(CommandError::BadNodeId(_))));
    assert_eq!(member(&[b"OAR.MEMBER", b"REMOVE", b"n2"]), Ok(Command::Member(MemberOp::Remove { id: 2 })));
    assert_eq!(
        member(&[b"OAR.MEMBER", b"LIST", b"extra"]),
        Err(CommandError::WrongArity { command: "oar.member|list" })
    );
    assert!(matches!(member(&[b"OAR.MEMBER", b"JUMP"]), Err(CommandError::UnknownSubcommand { .. })));
}
