//! The RESP server on a one-node cluster: pipelined requests are answered
//! in order, and a read waits for the connection's own writes.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::support::{Client, Reply};
use oar::runtime::{Handle, Peer, Runtime, RuntimeConfig};
use oar::server::{KvMachine, Server, ServerConfig};
use oar::NodeId;

/// A one-node cluster with its data in `dir`, and its RESP server.
fn one_node(dir: &std::path::Path) -> (Handle, Server) {
    // Both bound here, on ports the OS picks: no other test can take them.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let peers = [Peer { id: NodeId(1), addr: listener.local_addr().expect("addr") }];
    let mut config = RuntimeConfig::new(NodeId(1));
    config.bootstrap = true;
    let node = Runtime::start_on(config, dir, &peers, listener, KvMachine::new()).expect("start");
    let resp = "127.0.0.1:0".parse().expect("an address");
    let server =
        Server::start(ServerConfig::new(resp, node.command_bytes_max()), node.clone()).expect("serve");
    (node, server)
}

#[test]
fn pipelined_requests_are_answered_in_order_and_reads_see_earlier_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (node, server) = one_node(dir.path());
    let mut client = Client::connect(server.addr()).expect("connect");

    // A one-node cluster elects itself; wait until it takes writes.
    let give_up = Instant::now() + Duration::from_secs(10);
    loop {
        match client.command(&["SET", "ready", "1"]).expect("SET") {
            Reply::Simple(ok) if ok == "OK" => break,
            other => assert!(Instant::now() < give_up, "no leader in time: {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(10));
    }

    // One write holding a mix: writes go to the log together, the reads
    // and the PING in between wait for the writes before them.
    let mut batch = Vec::new();
    let requests: &[&[&str]] = &[
        &["SET", "k", "1"],
        &["INCR", "k"],
        &["GET", "k"],
        &["PING"],
        &["INCRBY", "k", "10"],
        &["SET", "other", "x"],
        &["MGET", "k", "other"],
        &["INCR", "other"],
        &["GET", "k"],
    ];
    for args in requests {
        batch.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for arg in *args {
            batch.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
        }
    }
    // Many writes after them, pipelined, then a count.
    for n in 0..500 {
        let key = format!("p{n}");
        batch.extend_from_slice(
            format!("*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$1\r\nv\r\n", key.len()).as_bytes(),
        );
    }
    batch.extend_from_slice(b"*1\r\n$6\r\nDBSIZE\r\n");
    client.send_raw(&batch).expect("send the batch");

    let bulk = |text: &str| Reply::Bulk(Some(text.as_bytes().to_vec()));
    let want = [
        Reply::Simple("OK".into()),
        Reply::Integer(2),
        bulk("2"),
        Reply::Simple("PONG".into()),
        Reply::Integer(12),
        Reply::Simple("OK".into()),
        Reply::Array(Some(vec![bulk("12"), bulk("x")])),
        Reply::Error("ERR value is not an integer or out of range".into()),
        bulk("12"),
    ];
    for (n, want) in want.iter().enumerate() {
        assert_eq!(&client.read_reply().expect("a reply"), want, "reply {n} to {:?}", requests[n]);
    }
    for n in 0..500 {
        assert_eq!(client.read_reply().expect("a reply"), Reply::Simple("OK".into()), "SET p{n}");
    }
    // ready, k, other, and the 500.
    assert_eq!(client.read_reply().expect("a reply"), Reply::Integer(503));

    server.stop();
    node.shutdown();
}

#[test]
fn a_client_that_sends_and_closes_gets_its_answer_and_a_close() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (node, server) = one_node(dir.path());
    // The request and the end of stream arrive together (`nc -N`): the
    // server must still see the end after answering.
    for _ in 0..20 {
        let mut stream = std::net::TcpStream::connect(server.addr()).expect("connect");
        stream.write_all(b"PING\r\n").expect("send");
        stream.shutdown(std::net::Shutdown::Write).expect("half-close");
        stream.set_read_timeout(Some(Duration::from_secs(5))).expect("read timeout");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).expect("the server answers, then closes");
        assert_eq!(answer, b"+PONG\r\n");
    }
    server.stop();
    node.shutdown();
}
