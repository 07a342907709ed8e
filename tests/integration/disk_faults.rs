//! Real `oar serve` processes whose disks fail as operators' disks do: a
//! data directory replaced by an empty one, a directory restored from an
//! older copy, and a majority of the machines lost for good. Nothing
//! acknowledged may be lost, and each case is recovered from with the
//! procedure the README gives.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{
    assert_values, await_leader, change_membership, cluster_nodes, info_field, set_pipelined, Client, Reply,
    ServeNode,
};

/// Waits until node's `INFO` reports `field` as `value`.
fn await_info(node: &ServeNode, field: &str, value: &str, within: Duration) {
    let give_up = Instant::now() + within;
    loop {
        let got = info_field(node, field);
        if got.as_deref() == Some(value) {
            return;
        }
        assert!(
            Instant::now() < give_up,
            "node {}: INFO {field} is {got:?}, not {value}\n{}",
            node.id,
            node.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SET `key` `value` through the leader, retried until acknowledged.
fn set(nodes: &[ServeNode], key: &str, value: &str) {
    set_pipelined(nodes, &[(key.to_string(), value.to_string())], 1, Duration::from_secs(20));
}

fn replace_with_empty(dir: &Path) {
    std::fs::remove_dir_all(dir).expect("remove the data directory");
    std::fs::create_dir_all(dir).expect("an empty data directory");
}

/// The loss issue 11 observed: node 1 away while `x` is acknowledged by
/// nodes 2 and 3; then node 2's disk is replaced by an empty one and nodes 1
/// and 2 restart with their usual command lines. Node 1 must not lead on the
/// empty disk's vote; once node 3 is back, `x` is there, and node 2 says it
/// was refused and is re-admitted by `oar member replace 2`.
#[test]
fn a_node_with_a_replaced_disk_never_counts_until_re_admitted() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut nodes = cluster_nodes(3, root.path());
    for node in &mut nodes {
        node.start();
    }
    await_leader(&nodes, Duration::from_secs(20));
    nodes[0].kill();
    set(&nodes, "x", "acknowledged");
    nodes[1].kill();
    nodes[2].kill();
    replace_with_empty(&nodes[1].dir);
    nodes[0].start();
    nodes[1].start();

    // For a while: no leader, so no write, and above all no leader
    // without x.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        for node in &nodes[..2] {
            let role = Client::connect(node.resp).and_then(|mut c| c.role()).ok();
            assert_ne!(role.as_deref(), Some("leader"), "node {} leads on an empty disk's vote", node.id);
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    nodes[2].start();
    let leader = await_leader(&nodes, Duration::from_secs(20));
    assert_ne!(leader, 1, "the node with an empty disk does not lead");
    let expected = BTreeMap::from([("x".to_string(), "acknowledged".to_string())]);
    for node in &nodes {
        assert_values(node, &expected);
    }
    // Node 2 caught up, knows it is refused, and says what to do.
    await_info(&nodes[1], "raft_admission", "refused", Duration::from_secs(20));
    let advice = info_field(&nodes[1], "raft_admission_advice").expect("advice");
    assert!(advice.contains("oar member replace 2 2"), "{advice}");
    assert!(nodes[1].log().contains("refused"), "its log says so too:\n{}", nodes[1].log());
    assert!(
        nodes[leader].log().contains("not the one the configuration admitted"),
        "the leader says so too:\n{}",
        nodes[leader].log()
    );

    // `oar member replace 2` re-admits it.
    let output = Command::new(env!("CARGO_BIN_EXE_oar"))
        .args(["member", "replace", "2", "--via", &nodes[leader].resp.to_string()])
        .output()
        .expect("run oar member");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    await_info(&nodes[1], "raft_admission", "voter", Duration::from_secs(20));
    // Now nodes 1 and 2 are a quorum without node 3.
    nodes[2].kill();
    set(&nodes, "y", "after re-admission");
    let expected = BTreeMap::from([
        ("x".to_string(), "acknowledged".to_string()),
        ("y".to_string(), "after re-admission".to_string()),
    ]);
    assert_values(&nodes[1], &expected);
}

/// A follower's data directory restored from an older copy (it had
/// acknowledged entries beyond it) is noticed by the leader, which says so
/// once and repairs it: the follower catches up and serves reads.
#[test]
fn a_follower_restored_from_an_older_copy_is_caught_up_not_wedged() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut nodes = cluster_nodes(3, root.path());
    for node in &mut nodes {
        node.start();
    }
    let leader = await_leader(&nodes, Duration::from_secs(20));
    let f = (leader + 1) % 3;
    let first: Vec<(String, String)> = (0..200).map(|k| (format!("a{k}"), format!("v{k}"))).collect();
    set_pipelined(&nodes, &first, 50, Duration::from_secs(30));
    // A backup of the follower's directory, taken while it is stopped.
    nodes[f].kill();
    let backup = root.path().join("backup");
    copy_dir(&nodes[f].dir, &backup);
    nodes[f].start();
    let second: Vec<(String, String)> = (0..300).map(|k| (format!("b{k}"), format!("w{k}"))).collect();
    set_pipelined(&nodes, &second, 50, Duration::from_secs(30));
    // Make sure the follower acknowledged them: its DBSIZE sees them all.
    crate::support::await_db_size(&nodes[f], 500, Duration::from_secs(30));
    // The backup is restored over it.
    nodes[f].kill();
    std::fs::remove_dir_all(&nodes[f].dir).expect("remove");
    copy_dir(&backup, &nodes[f].dir);
    nodes[f].start();
    let expected: BTreeMap<String, String> = first.into_iter().chain(second).collect();
    assert_values(&nodes[f], &expected);
    let leader_log = nodes[leader].run_log();
    let warnings = leader_log.lines().filter(|l| l.contains("though it acknowledged up to")).count();
    assert_eq!(warnings, 1, "the leader says so once:\n{leader_log}");
}

/// Two of three machines lost for good: `oar force-new-cluster` makes the
/// survivor a cluster of one from its own log, which keeps every
/// acknowledged write, takes writes, and grows again by adding machines.
#[test]
fn a_lost_quorum_is_recovered_from_the_survivor() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut nodes = cluster_nodes(3, root.path());
    for node in &mut nodes {
        node.start();
    }
    await_leader(&nodes, Duration::from_secs(20));
    let pairs: Vec<(String, String)> = (0..100).map(|k| (format!("k{k}"), format!("v{k}"))).collect();
    set_pipelined(&nodes, &pairs, 25, Duration::from_secs(30));
    // Let every node hold every write, then lose nodes 2 and 3 for good.
    crate::support::await_db_size(&nodes[0], 100, Duration::from_secs(30));
    for node in &mut nodes {
        node.kill();
    }
    for node in &nodes[1..] {
        std::fs::remove_dir_all(&node.dir).expect("lose the disk");
    }
    let refused = Command::new(env!("CARGO_BIN_EXE_oar"))
        .args(["force-new-cluster", "--id", "1", "--raft-addr", &nodes[0].raft.to_string()])
        .arg("--data-dir")
        .arg(&nodes[0].dir)
        .output()
        .expect("run oar force-new-cluster");
    assert!(!refused.status.success(), "it asks for the explicit flag");
    let output = Command::new(env!("CARGO_BIN_EXE_oar"))
        .args(["force-new-cluster", "--id", "1", "--raft-addr", &nodes[0].raft.to_string()])
        .arg("--data-dir")
        .arg(&nodes[0].dir)
        .arg("--yes-the-other-voters-are-gone")
        .output()
        .expect("run oar force-new-cluster");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("only voter"), "{stdout}");
    // Restarted with its usual command line, it leads alone.
    nodes[0].start();
    let survivor = std::slice::from_ref(&nodes[0]);
    await_leader(survivor, Duration::from_secs(20));
    let mut expected: BTreeMap<String, String> = pairs.into_iter().collect();
    assert_values(&nodes[0], &expected);
    set(survivor, "after", "recovery");
    expected.insert("after".into(), "recovery".into());

    // A new machine joins, catches up and becomes a voter.
    let mut fourth = ServeNode::joining(4, root.path(), survivor);
    fourth.start();
    change_membership(survivor, &["ADD", "4", &fourth.raft.to_string()], Duration::from_secs(20));
    crate::support::await_db_size(&fourth, expected.len(), Duration::from_secs(30));
    change_membership(survivor, &["PROMOTE", "4"], Duration::from_secs(30));
    assert_values(&fourth, &expected);
    match Client::connect(fourth.resp).and_then(|mut c| c.command(&["SET", "grown", "yes"])) {
        Ok(Reply::Simple(ok)) => assert_eq!(ok, "OK"),
        other => panic!("a write through the new voter: {other:?}"),
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let path = entry.path();
        if path.is_dir() {
            copy_dir(&path, &to.join(entry.file_name()));
        } else if entry.file_name() != "LOCK" {
            std::fs::copy(&path, to.join(entry.file_name())).expect("copy");
        }
    }
}
