//! Three `oar serve` processes, clients writing through all of them, and
//! `kill -9`: every acknowledged write must be on every node afterwards.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{await_leader, serve_cluster, Client, Reply, ServeNode};

const WRITERS: usize = 4;
const KEYS_PER_WRITER: usize = 150;

/// Acknowledged writes, key to value.
type Acked = Arc<Mutex<BTreeMap<String, String>>>;

/// Writer `t`: sets its keys one by one through node `t % n`, moving to the
/// next node on any error and retrying the same key (SET is idempotent), so
/// a key counts as acknowledged only once some node answered `OK`.
fn writer(
    t: usize,
    addrs: Vec<std::net::SocketAddr>,
    acked: Acked,
    count: Arc<AtomicUsize>,
    give_up: Instant,
) {
    let mut node = t % addrs.len();
    let mut client: Option<Client> = None;
    for n in 0..KEYS_PER_WRITER {
        let (key, value) = (format!("w{t}-{n}"), format!("value-{t}-{n}"));
        loop {
            assert!(Instant::now() < give_up, "writer {t} could not write {key} in time");
            let reply = match client.as_mut() {
                Some(c) => c.command(&["SET", &key, &value]),
                None => Client::connect(addrs[node]).and_then(|c| {
                    client = Some(c);
                    client.as_mut().expect("just set").command(&["SET", &key, &value])
                }),
            };
            match reply {
                Ok(Reply::Simple(ok)) if ok == "OK" => {
                    acked.lock().expect("lock").insert(key.clone(), value.clone());
                    count.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                // TRYAGAIN, TIMEOUT, a refused or broken connection: another
                // node, after a pause so that a dead cluster is not spun on.
                _ => {
                    client = None;
                    node = (node + 1) % addrs.len();
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
}

/// Runs the writers and, once `kill_after` writes are acknowledged, injects
/// `fault` (which also brings the nodes back), then lets the writers finish.
fn burst(
    nodes: &mut [ServeNode],
    kill_after: usize,
    fault: impl FnOnce(&mut [ServeNode]),
) -> BTreeMap<String, String> {
    let acked: Acked = Arc::default();
    let count = Arc::new(AtomicUsize::new(0));
    let addrs: Vec<_> = nodes.iter().map(|n| n.resp).collect();
    let give_up = Instant::now() + Duration::from_secs(120);
    let writers: Vec<_> = (0..WRITERS)
        .map(|t| {
            let (addrs, acked, count) = (addrs.clone(), Arc::clone(&acked), Arc::clone(&count));
            std::thread::spawn(move || writer(t, addrs, acked, count, give_up))
        })
        .collect();
    while count.load(Ordering::Relaxed) < kill_after {
        assert!(Instant::now() < give_up, "the burst did not get going");
        std::thread::sleep(Duration::from_millis(5));
    }
    fault(nodes);
    for w in writers {
        w.join().expect("writer thread");
    }
    let acked = acked.lock().expect("lock").clone();
    assert_eq!(acked.len(), WRITERS * KEYS_PER_WRITER);
    acked
}

/// Every acknowledged key holds its value on every node (linearizable reads
/// through each node in turn).
fn assert_all_present(nodes: &[ServeNode], acked: &BTreeMap<String, String>) {
    for node in nodes {
        let mut client = node.client(Duration::from_secs(10));
        let keys: Vec<&String> = acked.keys().collect();
        for chunk in keys.chunks(100) {
            let give_up = Instant::now() + Duration::from_secs(30);
            let values = loop {
                let mut args = vec!["MGET"];
                args.extend(chunk.iter().map(|k| k.as_str()));
                match client.command(&args).expect("MGET") {
                    Reply::Array(Some(values)) => break values,
                    Reply::Error(e) if e.starts_with("TRYAGAIN") && Instant::now() < give_up => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    other => panic!("node {}: MGET answered {other:?}\n{}", node.id, node.log()),
                }
            };
            for (key, value) in chunk.iter().zip(values) {
                assert_eq!(
                    value.bulk_text().as_deref(),
                    Some(acked[*key].as_str()),
                    "node {} lost acknowledged write {key}",
                    node.id
                );
            }
        }
    }
}

#[test]
fn killing_the_leader_mid_burst_loses_no_acknowledged_write() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut nodes = serve_cluster(3, root.path());
    let leader = await_leader(&nodes, Duration::from_secs(20));
    let acked = burst(&mut nodes, 100, |nodes| {
        nodes[leader].kill();
        // The survivors elect a leader and the writers go on; the killed
        // node comes back from its data directory while they write.
        await_leader(nodes, Duration::from_secs(20));
        nodes[leader].start();
    });
    await_leader(&nodes, Duration::from_secs(20));
    assert_all_present(&nodes, &acked);
}

#[test]
fn killing_every_node_mid_burst_loses_no_acknowledged_write() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut nodes = serve_cluster(3, root.path());
    await_leader(&nodes, Duration::from_secs(20));
    let acked = burst(&mut nodes, 100, |nodes| {
        for node in nodes.iter_mut() {
            node.kill();
        }
        for node in nodes.iter_mut() {
            node.start();
        }
    });
    await_leader(&nodes, Duration::from_secs(20));
    assert_all_present(&nodes, &acked);
}
