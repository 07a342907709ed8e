//! Real `oar serve` processes whose disks fill up: each node's data
//! directory is a small tmpfs, shrunk to just above what it holds, so that
//! the three equal disks fill at about the same write, as issue 12 saw.
//! The cluster must refuse writes with an error that names the disk, keep
//! serving reads, lose nothing acknowledged, and take writes again once
//! space is freed, with no restart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{assert_values, await_leader, cluster_nodes, info_field, set_pipelined, Reply};

/// A tmpfs mounted on a directory, unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size_bytes: u64) -> Tmpfs {
        std::fs::create_dir_all(path).expect("create the mount point");
        let size = format!("size={size_bytes}");
        run(privileged("mount").args(["-t", "tmpfs", "-o", &size, "tmpfs"]).arg(path));
        Tmpfs { path: path.to_path_buf() }
    }

    /// Grows or shrinks the file system (never below what it holds).
    fn resize(&self, size_bytes: u64) {
        let options = format!("remount,size={size_bytes}");
        run(privileged("mount").args(["-o", &options]).arg(&self.path));
    }

    fn used_bytes(&self) -> u64 {
        let out = Command::new("df").args(["-B1", "--output=used"]).arg(&self.path).output().expect("run df");
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines().nth(1).and_then(|l| l.trim().parse().ok()).unwrap_or_else(|| panic!("df said {text:?}"))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: a process killed a moment ago may still hold a file.
        let _ = privileged("umount").arg("-l").arg(&self.path).status();
    }
}

/// `program`, through `sudo -n` unless this process is root already (as
/// `.ci/run` installs packages).
fn privileged(program: &str) -> Command {
    let uid =
        Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if uid.is_ok_and(|uid| uid == "0") {
        Command::new(program)
    } else {
        let mut cmd = Command::new("sudo");
        cmd.args(["-n", program]);
        cmd
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed (mounting a tmpfs needs root, or sudo without a password): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "needs root (or sudo without a password) to mount small tmpfs file systems, disks that fill on demand; .ci/run runs it"]
fn full_disks_refuse_writes_serve_reads_lose_nothing_and_recover_without_a_restart() {
    let root = tempfile::tempdir().expect("tempdir");
    // Mounted before the nodes exist, unmounted after they are gone.
    let disks: Vec<Tmpfs> =
        (1..=3).map(|id| Tmpfs::mount(&root.path().join(format!("node{id}")), 64 << 20)).collect();
    let mut nodes = cluster_nodes(3, root.path());
    for node in &mut nodes {
        // Small segments, so that the disks fill within a few hundred
        // writes; a snapshot every 300 entries, so that snapshots are
        // taken (and fail) on full disks too.
        node.extra_args = ["--segment-bytes", "65536"].map(String::from).to_vec();
        node.snapshot_entries = Some(300);
        node.start();
    }
    await_leader(&nodes, Duration::from_secs(20));
    let value = "v".repeat(1024);
    let mut acked: BTreeMap<String, String> =
        (0..50).map(|i| (format!("before{i}"), value.clone())).collect();
    let pairs: Vec<(String, String)> = acked.clone().into_iter().collect();
    set_pipelined(&nodes, &pairs, 10, Duration::from_secs(20));

    for disk in &disks {
        disk.resize(disk.used_bytes() + (768 << 10));
    }
    // Write fresh keys until the cluster says its disk is full.
    let give_up = Instant::now() + Duration::from_secs(60);
    let mut client = nodes[await_leader(&nodes, Duration::from_secs(10))].client(Duration::from_secs(5));
    let mut next = 0;
    let refusal = loop {
        assert!(Instant::now() < give_up, "no write refused for a full disk; {} acknowledged", acked.len());
        let key = format!("fill{next}");
        match client.command(&["SET", &key, &value]) {
            Ok(Reply::Simple(ok)) if ok == "OK" => {
                acked.insert(key, value.clone());
                next += 1;
            }
            Ok(Reply::Error(e)) if e.starts_with("ERR") && e.contains("disk") => break e,
            // Nothing written: the same key again, maybe through another
            // node.
            Ok(Reply::Error(e)) if e.starts_with("TRYAGAIN") => {
                std::thread::sleep(Duration::from_millis(20));
                client = nodes[await_leader(&nodes, Duration::from_secs(10))].client(Duration::from_secs(5));
            }
            // Maybe written: never counted, and not sent again.
            Ok(Reply::Error(e)) if e.starts_with("TIMEOUT") => next += 1,
            other => panic!("SET {key} answered {other:?}"),
        }
    };
    assert!(refusal.contains("full"), "{refusal}");

    // Every node still runs, a node says its disk is full, and every node
    // serves what was acknowledged (linearizable reads go on).
    for node in &mut nodes {
        assert!(node.exited().is_none(), "node {} exited on a full disk:\n{}", node.id, node.log());
    }
    assert!(
        nodes.iter().any(|n| info_field(n, "raft_disk").as_deref() == Some("full")),
        "no node's INFO says raft_disk:full"
    );
    for node in &nodes {
        assert_values(node, &acked);
    }

    // Space is freed: writes resume within seconds, with no restart.
    for disk in &disks {
        disk.resize(64 << 20);
    }
    let freed = Instant::now();
    let resumed = loop {
        assert!(
            freed.elapsed() < Duration::from_secs(20),
            "writes did not resume within 20 s of freeing space"
        );
        let leader = await_leader(&nodes, Duration::from_secs(10));
        let reply = nodes[leader].client(Duration::from_secs(5)).command(&["SET", "after", "space"]);
        if let Ok(Reply::Simple(ok)) = &reply {
            assert_eq!(ok, "OK");
            break freed.elapsed();
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!("writes resumed {resumed:?} after space was freed");
    acked.insert("after".into(), "space".into());
    for node in &mut nodes {
        assert!(node.exited().is_none(), "node {} exited:\n{}", node.id, node.log());
        assert_values(node, &acked);
    }
    let give_up = Instant::now() + Duration::from_secs(10);
    while !nodes.iter().all(|n| info_field(n, "raft_disk").as_deref() == Some("ok")) {
        assert!(Instant::now() < give_up, "a node still says its disk is in trouble");
        std::thread::sleep(Duration::from_millis(50));
    }
}
