//! Hostile and broken input on both of a node's ports: strangers and
//! misconfigured peers on the raft port, malformed and oversized requests on
//! the RESP port. Each bad connection is closed (and, on the raft port,
//! logged with its reason), and the cluster goes on serving through every
//! node.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::support::{await_leader, serve_cluster, Reply, ServeNode};
use oar::codec::{encode_handshake, encode_message, Handshake};
use oar::message::Heartbeat;
use oar::{LogIndex, Message, MessageBody, NodeId, Term};

/// How long a node may take to close a connection it should close, or to
/// log why.
const REACTION_WITHIN: Duration = Duration::from_secs(5);
/// The cluster id `support::serve_cluster` gives its nodes.
const CLUSTER_ID: &str = "oar-test";

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream
}

fn handshake(cluster_id: &str, from: u64, to: u64) -> Vec<u8> {
    let mut out = Vec::new();
    encode_handshake(
        &Handshake {
            cluster_id: cluster_id.into(),
            from: NodeId(from),
            to: NodeId(to),
            addr: String::new(),
            incarnation: oar::Incarnation(from),
            state: oar::codec::PeerState::Member,
            client_addr: String::new(),
        },
        &mut out,
    );
    out
}

/// A well-formed frame: a heartbeat.
fn heartbeat_frame(from: u64, to: u64) -> Vec<u8> {
    let msg = Message {
        from: NodeId(from),
        to: NodeId(to),
        term: Term(1),
        from_incarnation: oar::Incarnation(from),
        body: MessageBody::Heartbeat(Heartbeat { commit: LogIndex(0), commit_term: Term(0), round: 1 }),
    };
    let mut out = Vec::new();
    encode_message(&msg, &mut out);
    out
}

/// Reads until the other side closes the connection (end of stream or a
/// reset), for at most `within`: the bytes received and whether it closed.
fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (Vec<u8>, bool) {
    stream.set_read_timeout(Some(Duration::from_millis(100))).expect("read timeout");
    let give_up = Instant::now() + within;
    let mut received = Vec::new();
    let mut buf = [0; 4096];
    while Instant::now() < give_up {
        match stream.read(&mut buf) {
            Ok(0) => return (received, true),
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => return (received, true),
        }
    }
    (received, false)
}

/// Sends `bytes` and asserts the node closes the connection.
fn assert_closed_after(node: &ServeNode, bytes: &[u8], what: &str) -> SocketAddr {
    let mut stream = connect(node.raft);
    let local = stream.local_addr().expect("local addr");
    // The node may close before it has read everything; a failed write is
    // then part of the expected outcome.
    let _ = stream.write_all(bytes);
    let (received, closed) = read_until_closed(&mut stream, REACTION_WITHIN);
    assert!(closed, "node {} kept the connection open after {what}\n{}", node.id, node.log());
    assert!(received.is_empty(), "node {} sent {received:?} on a peer connection after {what}", node.id);
    local
}

/// Waits for the node to log a line that contains every one of `needles`.
fn await_log_line(node: &ServeNode, needles: &[&str]) {
    let give_up = Instant::now() + REACTION_WITHIN;
    loop {
        if node.log().lines().any(|line| needles.iter().all(|needle| line.contains(needle))) {
            return;
        }
        assert!(
            Instant::now() < give_up,
            "node {} logged no line with {needles:?} within {REACTION_WITHIN:?}\n{}",
            node.id,
            node.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every bad peer input against `target`, whose peers are `peers`.
fn misbehave_as_peer(nodes: &[ServeNode], target: usize) -> Vec<TcpStream> {
    let node = &nodes[target];
    let to = node.id;
    let peer = nodes[(target + 1) % nodes.len()].id;

    // Not an oar peer at all: an HTTP request, then binary noise.
    let mut garbage = b"GET / HTTP/1.1\r\nHost: oar\r\n\r\n".to_vec();
    garbage.extend((0..=255u8).rev());
    let from = assert_closed_after(node, &garbage, "an HTTP request");
    await_log_line(node, &[&format!("closed connection from {from}: bad handshake: not an oar peer")]);
    let from = assert_closed_after(node, &[0xff, 0x00, 0x13, 0x37, 0x00], "binary noise");
    await_log_line(node, &[&format!("closed connection from {from}: bad handshake")]);

    // Another cluster.
    let from = assert_closed_after(node, &handshake("other-cluster", peer, to), "a foreign cluster id");
    await_log_line(
        node,
        &[&format!("closed connection from {from}: "), "belongs to cluster \"other-cluster\""],
    );

    // Node ids no peer can have: the reserved 0, and the node's own. (A
    // node not in the configuration is admitted, since membership changes
    // and a joining node first hears from a leader it does not know; what
    // it says never counts.)
    let from = assert_closed_after(node, &handshake(CLUSTER_ID, 0, to), "node id 0");
    await_log_line(node, &[&format!("closed connection from {from}: node n0 cannot be a peer")]);
    let from = assert_closed_after(node, &handshake(CLUSTER_ID, to, to), "the node's own id");
    await_log_line(node, &[&format!("closed connection from {from}: node n{to} cannot be a peer")]);

    // A peer that dialed the wrong node.
    let wrong_to = nodes[(target + 2) % nodes.len()].id;
    let from =
        assert_closed_after(node, &handshake(CLUSTER_ID, peer, wrong_to), "a handshake for another node");
    await_log_line(
        node,
        &[&format!("closed connection from {from}: "), &format!("meant to reach node n{wrong_to}")],
    );

    // A good handshake, then a length prefix far above any frame.
    let mut huge = handshake(CLUSTER_ID, peer, to);
    huge.extend_from_slice(&u32::MAX.to_le_bytes());
    huge.extend_from_slice(&[3; 64]);
    let from = assert_closed_after(node, &huge, "a 4 GiB frame length");
    await_log_line(node, &[&format!("closed connection from {from}: malformed frame from n{peer}")]);

    // A good handshake, then a whole frame that claims another sender.
    let mut spoofed = handshake(CLUSTER_ID, peer, to);
    spoofed.extend(heartbeat_frame(99, to));
    let from = assert_closed_after(node, &spoofed, "a frame from another sender");
    await_log_line(
        node,
        &[&format!("closed connection from {from}: n{peer} sent a message from n99 to n{to}")],
    );

    // A good handshake, then half a frame, then the end of the stream: a
    // peer that died mid-write. The node closes its side too.
    let mut stream = connect(node.raft);
    let mut truncated = handshake(CLUSTER_ID, peer, to);
    let frame = heartbeat_frame(peer, to);
    truncated.extend_from_slice(&frame[..frame.len() / 2]);
    stream.write_all(&truncated).expect("send a truncated frame");
    stream.shutdown(Shutdown::Write).expect("shut down the write side");
    let (received, closed) = read_until_closed(&mut stream, REACTION_WITHIN);
    assert!(closed, "node {} kept a connection its peer ended mid-frame\n{}", node.id, node.log());
    assert!(received.is_empty(), "node {} sent {received:?} on a peer connection", node.id);

    // Half a handshake, held open for the rest of the test: the node must
    // not wait on it.
    let mut stalled = Vec::new();
    for _ in 0..3 {
        let mut stream = connect(node.raft);
        stream.write_all(&handshake(CLUSTER_ID, peer, to)[..7]).expect("send half a handshake");
        stalled.push(stream);
    }
    stalled
}

/// SET then GET through every node (reads are linearizable on any node),
/// retrying while the cluster answers TRYAGAIN; and no process has exited.
fn assert_healthy(nodes: &mut [ServeNode], key_prefix: &str) {
    for node in nodes.iter_mut() {
        assert_eq!(node.exited(), None, "node {} exited\n{}", node.id, node.log());
    }
    for node in nodes.iter() {
        let key = format!("{key_prefix}-{}", node.id);
        let value = format!("value via node {}", node.id);
        let mut client = node.client(Duration::from_secs(5));
        let give_up = Instant::now() + Duration::from_secs(20);
        let mut retry = |args: &[&str]| loop {
            match client.command(args).expect("a reply") {
                // A connection that impersonated a peer replaced the real
                // one, and what was queued on it was lost: a forwarded SET
                // may time out. SET and GET are safe to retry.
                Reply::Error(e)
                    if (e.starts_with("TRYAGAIN") || e.starts_with("TIMEOUT"))
                        && Instant::now() < give_up =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                reply => break reply,
            }
        };
        let set = retry(&["SET", &key, &value]);
        assert_eq!(set, Reply::Simple("OK".into()), "node {}: SET\n{}", node.id, node.log());
        let get = retry(&["GET", &key]);
        assert_eq!(get.bulk_text().as_deref(), Some(value.as_str()), "node {}: GET\n{}", node.id, node.log());
    }
    for node in nodes.iter_mut() {
        assert_eq!(node.exited(), None, "node {} exited\n{}", node.id, node.log());
        let log = node.log();
        assert!(!log.contains("panicked"), "node {} panicked\n{log}", node.id);
    }
}

#[test]
fn bad_peer_connections_are_closed_and_logged_and_the_cluster_keeps_serving() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut nodes = serve_cluster(3, root.path());
    let leader = await_leader(&nodes, Duration::from_secs(20));
    let follower = (leader + 1) % nodes.len();
    let mut stalled = misbehave_as_peer(&nodes, leader);
    stalled.extend(misbehave_as_peer(&nodes, follower));
    assert_healthy(&mut nodes, "after-bad-peers");
    // The stalled greetings were held open all along.
    drop(stalled);
}

/// Sends `bytes` on a new client connection and asserts the node answers a
/// protocol error naming `reason`, then closes the connection.
fn assert_protocol_error(node: &ServeNode, bytes: &[u8], reason: &str) {
    let mut stream = connect(node.resp);
    let _ = stream.write_all(bytes);
    let (received, closed) = read_until_closed(&mut stream, REACTION_WITHIN);
    let text = String::from_utf8_lossy(&received);
    assert!(
        text.starts_with("-ERR protocol error: ") && text.contains(reason) && text.ends_with("\r\n"),
        "node {}: {bytes:?} got {text:?}, expected a protocol error naming {reason:?}",
        node.id
    );
    assert_eq!(text.matches("\r\n").count(), 1, "node {}: more than one reply: {text:?}", node.id);
    assert!(closed, "node {} kept the connection open after {text:?}", node.id);
}

/// Every bad client input against `node`.
fn misbehave_as_client(node: &ServeNode) {
    assert_protocol_error(node, b"*1\r\n+PING\r\n", "expected '$', got '+'");
    assert_protocol_error(node, b"*x\r\n", "invalid multibulk length");
    assert_protocol_error(node, b"*1\r\n$-5\r\n", "invalid bulk length");
    assert_protocol_error(node, b"*1\r\n$4\r\nPINGxx", "bulk string not followed by CRLF");
    assert_protocol_error(node, b"SET k \"unterminated\r\n", "unbalanced quotes");
    assert_protocol_error(node, b"*1\r\n$99999999999\r\n", "bulk length 99999999999 above the limit");

    // A request cut off mid-way by the client's end of stream: nothing
    // runs, and the node closes its side.
    let key = format!("cut-off-{}", node.id);
    let mut stream = connect(node.resp);
    let request = format!("*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$5\r\nval", key.len());
    stream.write_all(request.as_bytes()).expect("send half a request");
    stream.shutdown(Shutdown::Write).expect("shut down the write side");
    let (received, closed) = read_until_closed(&mut stream, REACTION_WITHIN);
    assert!(closed, "node {} kept a connection whose client ended mid-request", node.id);
    assert!(received.is_empty(), "node {} answered half a request: {received:?}", node.id);

    // A value over the entry limit but under the parser's bulk limit: an
    // error reply, and the connection stays usable.
    let mut client = node.client(Duration::from_secs(5));
    let value = "v".repeat(oversized_value_bytes());
    match client.command(&["SET", "too-big", &value]).expect("a reply to a large SET") {
        Reply::Error(e) => assert!(e.starts_with("ERR ") && e.contains("exceeds the entry limit"), "{e}"),
        other => panic!("node {}: a SET of {} bytes answered {other:?}", node.id, value.len()),
    }
    assert_eq!(client.command(&["PING"]).expect("PING"), Reply::Simple("PONG".into()));
    let give_up = Instant::now() + Duration::from_secs(10);
    let get = loop {
        match client.command(&["GET", &key]).expect("GET") {
            Reply::Error(e) if e.starts_with("TRYAGAIN") && Instant::now() < give_up => {
                std::thread::sleep(Duration::from_millis(20));
            }
            reply => break reply,
        }
    };
    assert_eq!(get, Reply::Bulk(None), "node {}: half a SET took effect", node.id);
}

/// A value twice the size of the largest command, less some room: the
/// server parses arguments up to twice the entry limit (to answer `-ERR`
/// rather than cut the connection), so this must get an error reply.
fn oversized_value_bytes() -> usize {
    let command_bytes_max = oar::Config::new(NodeId(1)).entry_bytes_max - oar::runtime::ENVELOPE_BYTES as u64;
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("an address");
    let bulk_bytes_max = oar::server::ServerConfig::new(addr, command_bytes_max).resp_limits.bulk_bytes_max;
    let value_bytes = bulk_bytes_max - 4096;
    assert!(value_bytes as u64 > command_bytes_max && value_bytes > (1 << 20));
    value_bytes
}

#[test]
fn bad_client_requests_get_an_error_and_the_cluster_keeps_serving() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut nodes = serve_cluster(3, root.path());
    let leader = await_leader(&nodes, Duration::from_secs(20));
    let follower = (leader + 1) % nodes.len();
    misbehave_as_client(&nodes[leader]);
    misbehave_as_client(&nodes[follower]);
    assert_healthy(&mut nodes, "after-bad-clients");
}

#[test]
fn a_newer_connection_from_a_peer_replaces_the_older_one() {
    // Stale connections (half-open after a partition, say) never show an
    // error to the side that only reads; unless replaced they pile up.
    let root = tempfile::tempdir().expect("tempdir");
    let mut nodes = serve_cluster(3, root.path());
    await_leader(&nodes, Duration::from_secs(20));
    let target = &nodes[0];
    let mut older = connect(target.raft);
    older.write_all(&handshake(CLUSTER_ID, 2, 1)).expect("send a handshake");
    older.write_all(&heartbeat_frame(2, 1)).expect("send a frame");
    let mut newer = connect(target.raft);
    newer.write_all(&handshake(CLUSTER_ID, 2, 1)).expect("send a handshake");
    let (_, closed) = read_until_closed(&mut older, REACTION_WITHIN);
    assert!(closed, "the older connection from n2 stayed open\n{}", target.log());
    drop(newer);
    assert_healthy(&mut nodes, "after-replaced-connection");
}

#[test]
fn a_client_that_does_not_read_cannot_make_the_server_buffer_without_bound() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut nodes = serve_cluster(1, root.path());
    await_leader(&nodes, Duration::from_secs(20));
    let mut greedy = connect(nodes[0].resp);
    greedy.set_write_timeout(Some(Duration::from_millis(500))).expect("write timeout");
    let chunk = b"PING\r\n".repeat(10_000);
    let mut sent = 0usize;
    let limit = 256 << 20;
    while sent < limit {
        match greedy.write(&chunk) {
            Ok(n) => sent += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) => panic!("writing failed: {e}"),
        }
    }
    // Socket buffers take some megabytes; the server's own share is capped
    // at a few more. Without the cap it would read (and answer into memory)
    // all 256 MiB.
    assert!(sent < limit, "the server kept reading {sent} bytes from a client that never reads");
    // Other clients are served meanwhile.
    let mut other = nodes[0].client(Duration::from_secs(5));
    assert_eq!(other.command(&["PING"]).expect("PING"), Reply::Simple("PONG".into()));
    // Once the client reads, it gets every answer in order.
    greedy.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
    let mut reader = std::io::BufReader::new(greedy.try_clone().expect("clone"));
    for n in 0..(sent / 6).min(100_000) {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut reader, &mut line).expect("a reply");
        assert_eq!(line, "+PONG\r\n", "reply {n}");
    }
    assert_healthy(&mut nodes, "after-greedy-client");
}
