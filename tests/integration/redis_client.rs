//! Client compatibility without system packages: the `redis` crate (the
//! Rust Redis client, synchronous) against a three-node cluster in this
//! process, each node with its RESP server on loopback. Writes and
//! linearizable reads through the leader and through followers, typed
//! commands and raw ones, pipelines, and the errors a client sees.
//!
//! `redis_tools` does the same with `redis-cli` and `redis-benchmark`, when
//! they are installed.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use oar::runtime::{Handle, Peer, Runtime, RuntimeConfig};
use oar::server::{KvMachine, Server, ServerConfig};
use oar::{NodeId, Role};
use redis::{Commands, Connection, ErrorKind, RedisResult, ServerErrorKind, Value};

/// Three nodes, each with its RESP server; stopped when dropped.
struct KvCluster {
    nodes: Vec<(Handle, Server)>,
    _dirs: Vec<tempfile::TempDir>,
}

impl KvCluster {
    fn start() -> KvCluster {
        // Raft listeners bound here and handed to the nodes, RESP on ports
        // the OS picks: no other test can take them in between.
        let listeners: Vec<TcpListener> =
            (0..3).map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a raft port")).collect();
        let peers: Vec<Peer> = listeners
            .iter()
            .enumerate()
            .map(|(k, l)| Peer { id: NodeId(k as u64 + 1), addr: l.local_addr().expect("local addr") })
            .collect();
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("tempdir")).collect();
        let nodes = listeners
            .into_iter()
            .zip(&dirs)
            .zip(&peers)
            .map(|((listener, dir), peer)| {
                let mut config = RuntimeConfig::new(peer.id);
                config.cluster_id = "redis-client-test".into();
                config.bootstrap = true;
                let handle = Runtime::start_on(config, dir.path(), &peers, listener, KvMachine::new())
                    .expect("start a node");
                let resp =
                    ServerConfig::new("127.0.0.1:0".parse().expect("an address"), handle.command_bytes_max());
                let server = Server::start(resp, handle.clone()).expect("serve RESP");
                (handle, server)
            })
            .collect();
        KvCluster { nodes, _dirs: dirs }
    }

    /// The position of the node that leads, once one does and every node
    /// follows it (within 20 s).
    fn await_leader(&self) -> usize {
        let give_up = Instant::now() + Duration::from_secs(20);
        loop {
            let statuses: Vec<_> = self.nodes.iter().map(|(h, _)| h.status().expect("status")).collect();
            if let Some(leader) = statuses.iter().position(|s| s.role == Role::Leader) {
                let (id, term) = (statuses[leader].id, statuses[leader].term);
                if statuses.iter().all(|s| s.leader == Some(id) && s.term == term) {
                    return leader;
                }
            }
            assert!(Instant::now() < give_up, "no agreed leader within 20 s: {statuses:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A `redis` connection to node `k`'s RESP server. Connecting sends
    /// `CLIENT SETINFO` twice, as the crate does by default.
    fn connect(&self, k: usize) -> Connection {
        let addr = self.nodes[k].1.addr();
        let client = redis::Client::open((addr.ip().to_string(), addr.port())).expect("a client");
        let con = client.get_connection_with_timeout(Duration::from_secs(5)).expect("connect");
        con.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
        con
    }

    /// The positions of every node, the leader first.
    fn leader_then_followers(&self) -> Vec<usize> {
        let leader = self.await_leader();
        std::iter::once(leader).chain((0..self.nodes.len()).filter(|&k| k != leader)).collect()
    }
}

impl Drop for KvCluster {
    fn drop(&mut self) {
        for (handle, server) in self.nodes.drain(..) {
            server.stop();
            handle.shutdown();
        }
    }
}

/// `request` on `con`, again while the answer is `TRYAGAIN` (nothing was
/// done: an election started), for up to 20 s.
fn until_done<T>(con: &mut Connection, mut request: impl FnMut(&mut Connection) -> RedisResult<T>) -> T {
    let give_up = Instant::now() + Duration::from_secs(20);
    loop {
        match request(con) {
            Ok(answer) => return answer,
            Err(e)
                if e.kind() == ErrorKind::Server(ServerErrorKind::TryAgain) && Instant::now() < give_up =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("the request failed: {e}"),
        }
    }
}

#[test]
fn typed_commands_through_the_leader_and_each_follower_read_every_nodes_writes() {
    let cluster = KvCluster::start();
    let order = cluster.leader_then_followers();
    let mut cons: Vec<Connection> = order.iter().map(|&k| cluster.connect(k)).collect();
    let n = cons.len();

    // Each node in turn writes through its own connection (a follower
    // forwards to the leader); the next node must read it at once, since
    // reads are linearizable on any node.
    for at in 0..n {
        let (key, counter, a, b) =
            (format!("key{at}"), format!("counter{at}"), format!("a{at}"), format!("b{at}"));
        let con = &mut cons[at];
        until_done(con, |c| c.set::<_, _, ()>(&key, "value"));
        assert_eq!(
            until_done(con, |c| c.get::<_, Option<String>>(&key)),
            Some("value".to_string()),
            "GET on node {at}"
        );
        // INCR as a raw command; the crate's `incr` sends INCRBY.
        let incr: i64 = until_done(con, |c| redis::cmd("INCR").arg(&counter).query(c));
        assert_eq!(incr, 1, "INCR of a missing key on node {at}");
        assert_eq!(until_done(con, |c| c.incr::<_, _, i64>(&counter, 10)), 11, "INCRBY on node {at}");
        until_done(con, |c| c.mset::<_, _, ()>(&[(&a, "1"), (&b, "2")]));
        assert_eq!(
            until_done(con, |c| c.mget::<_, Vec<Option<String>>>(&[&a, &b, &format!("missing{at}")])),
            vec![Some("1".to_string()), Some("2".to_string()), None],
            "MGET on node {at}"
        );

        let next = &mut cons[(at + 1) % n];
        assert_eq!(
            until_done(next, |c| c.get::<_, Option<String>>(&key)),
            Some("value".to_string()),
            "node {at}'s write, read next"
        );
        assert_eq!(until_done(next, |c| c.get::<_, Option<String>>(&counter)), Some("11".to_string()));
        assert!(until_done(next, |c| c.exists::<_, bool>(&a)), "EXISTS of node {at}'s MSET");
        assert_eq!(
            until_done(next, |c| c.del::<_, usize>(&[&a, &b, &format!("missing{at}")])),
            2,
            "DEL of two of three"
        );
        assert!(!until_done(next, |c| c.exists::<_, bool>(&a)), "EXISTS after DEL");
        assert_eq!(
            until_done(&mut cons[at], |c| c.mget::<_, Vec<Option<String>>>(&[&a, &b])),
            vec![None::<String>, None]
        );
    }

    // Every node holds every node's writes: 2 keys from each round.
    for (at, con) in cons.iter_mut().enumerate() {
        let keys: Vec<String> = (0..n).flat_map(|k| [format!("key{k}"), format!("counter{k}")]).collect();
        let values = until_done(con, |c| c.mget::<_, Vec<Option<String>>>(&keys));
        let want: Vec<Option<String>> =
            (0..n).flat_map(|_| [Some("value".to_string()), Some("11".to_string())]).collect();
        assert_eq!(values, want, "every write, read on node {at}");
        let size: i64 = until_done(con, |c| redis::cmd("DBSIZE").query(c));
        assert_eq!(size, 2 * n as i64, "DBSIZE on node {at}");
    }
}

#[test]
fn pipelines_are_answered_in_order_on_the_leader_and_on_followers() {
    let cluster = KvCluster::start();
    for (round, k) in cluster.leader_then_followers().into_iter().enumerate() {
        let mut con = cluster.connect(k);
        let key = format!("p{round}");
        // Writes and reads mixed in one pipeline: a read sees the writes
        // before it on its connection.
        #[allow(clippy::type_complexity)]
        let answers: (String, i64, i64, Option<String>, Vec<Option<String>>, bool, usize, bool) =
            redis::pipe()
                .set(&key, 1)
                .cmd("INCR")
                .arg(&key)
                .incr(&key, 5)
                .get(&key)
                .mget(&[key.as_str(), "nothing"])
                .exists(&key)
                .del(&key)
                .exists(&key)
                .query(&mut con)
                .unwrap_or_else(|e| panic!("pipeline {round} on node {k}: {e}"));
        assert_eq!(
            answers,
            (
                "OK".to_string(),
                2,
                7,
                Some("7".to_string()),
                vec![Some("7".to_string()), None],
                true,
                1,
                false
            ),
            "pipeline {round} on node {k}"
        );

        // Many writes in one pipeline, then one read of them all.
        let keys: Vec<String> = (0..200).map(|i| format!("{key}-{i}")).collect();
        let mut pipe = redis::pipe();
        for (i, key) in keys.iter().enumerate() {
            pipe.set(key, i).ignore();
        }
        pipe.mget(&keys);
        let (values,): (Vec<Option<u64>>,) = pipe.query(&mut con).expect("200 SETs and an MGET");
        assert_eq!(values, (0..200).map(Some).collect::<Vec<_>>(), "node {k}");
    }
}

#[test]
fn an_unknown_command_is_an_error_reply_and_the_connection_goes_on() {
    let cluster = KvCluster::start();
    for k in cluster.leader_then_followers() {
        let mut con = cluster.connect(k);
        let err =
            redis::cmd("FLUSHALL").query::<Value>(&mut con).expect_err("FLUSHALL is not a command of oar");
        assert_eq!(err.kind(), ErrorKind::Server(ServerErrorKind::ResponseError), "node {k}: {err:?}");
        assert_eq!(err.code(), Some("ERR"), "node {k}: {err:?}");
        assert_eq!(
            err.detail(),
            Some("unknown command 'FLUSHALL', with args beginning with: "),
            "node {k}: {err:?}"
        );
        let pong: String = redis::cmd("PING").query(&mut con).expect("PING after the error");
        assert_eq!(pong, "PONG");

        // In a pipeline, only that command fails; those around it are done.
        let key = format!("u{k}");
        let answers: Vec<RedisResult<Value>> = redis::pipe()
            .set(&key, "before")
            .cmd("NOSUCHCOMMAND")
            .arg(&key)
            .get(&key)
            .ignore_errors()
            .query(&mut con)
            .expect("a pipeline with errors ignored");
        assert_eq!(answers.len(), 3, "node {k}: {answers:?}");
        assert_eq!(answers[0].as_ref().ok(), Some(&Value::Okay), "node {k}: {answers:?}");
        let err = answers[1].as_ref().expect_err("NOSUCHCOMMAND fails");
        assert_eq!(err.kind(), ErrorKind::Server(ServerErrorKind::ResponseError), "node {k}: {err:?}");
        assert!(
            err.detail().is_some_and(|d| d.starts_with("unknown command 'NOSUCHCOMMAND'")),
            "node {k}: {err:?}"
        );
        assert_eq!(answers[2].as_ref().ok(), Some(&Value::BulkString(b"before".to_vec())), "node {k}");
    }
}
