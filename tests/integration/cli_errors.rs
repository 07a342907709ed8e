//! Misconfiguration gets an error that says what to fix, and a failing exit.

use std::process::{Command, Output};
use std::time::Duration;

use crate::support::{free_addrs, ServeNode};

fn oar(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_oar")).args(args).output().expect("run oar")
}

fn assert_fails_saying(args: &[&str], needle: &str) {
    let out = oar(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "oar {args:?} succeeded");
    assert!(stderr.contains(needle), "oar {args:?} said:\n{stderr}\nwanted: {needle}");
}

#[test]
fn bad_serve_arguments_are_refused_with_what_to_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("d");
    let data = data.to_str().expect("utf-8 path");
    let base = ["serve", "--data-dir", data, "--raft-addr", "127.0.0.1:1", "--resp-addr", "127.0.0.1:2"];
    let with = |extra: &[&'static str]| -> Vec<String> {
        base.iter().map(|s| s.to_string()).chain(extra.iter().map(|s| s.to_string())).collect()
    };
    let run = |extra: &[&'static str], needle: &str| {
        let args = with(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_fails_saying(&args, needle);
    };
    run(&["--id", "0"], "node id 0 is reserved; number nodes from 1");
    run(&["--id", "x"], "node id \"x\" is not a number");
    run(&["--id", "1", "--peer", "2"], "expected ID=HOST:PORT");
    run(&["--id", "1", "--peer", "x=127.0.0.1:3"], "node id \"x\" is not a number");
    run(&["--id", "1", "--peer", "0=127.0.0.1:3"], "node id 0 is reserved; number nodes from 1");
    run(&["--id", "1", "--peer", "1=127.0.0.1:3"], "names this node");
    run(&["--id", "1", "--peer", "2=127.0.0.1:3", "--peer", "2=127.0.0.1:4"], "listed twice");
    run(&["--id", "1", "--cluster-id", ""], "cluster_id");
    assert_fails_saying(&["cluster", "--nodes", "0"], "--nodes 0");
    assert_fails_saying(&["bench", "--pipeline", "0"], "--pipeline");
}

#[test]
fn a_second_process_on_the_same_data_directory_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addrs = free_addrs(4);
    let mut first = ServeNode::new(1, addrs[0], addrs[1], &dir.path().join("node1"), Vec::new());
    first.start();
    // Once the first node serves, its directory is locked.
    drop(first.client(Duration::from_secs(10)));
    let data = dir.path().join("node1");
    let out = Command::new(env!("CARGO_BIN_EXE_oar"))
        .args(["serve", "--id", "1", "--data-dir"])
        .arg(&data)
        .args(["--raft-addr", &addrs[2].to_string(), "--resp-addr", &addrs[3].to_string()])
        .output()
        .expect("run oar");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("locked") || stderr.contains("Locked"), "the second process said:\n{stderr}");
    // The first node is unaffected.
    assert_eq!(first.exited(), None, "the first node stopped");
    drop(first.client(Duration::from_secs(5)));
}
