//! `oar cluster` driven by the real Redis tools, as the README tells a
//! user to try it: `redis-cli` against each node, `redis-benchmark`, and
//! Ctrl-C.
//!
//! Needs `redis-cli` and `redis-benchmark` on PATH (Debian's `redis-tools`),
//! so it is ignored by a plain `cargo test`; `.ci/run` installs the tools
//! and runs it (`cargo test -- --ignored`). Run without the tools, it fails
//! and says what to install. `redis_client` covers client compatibility
//! with no system package.

use std::io::{BufRead, BufReader, ErrorKind};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Nodes in the cluster `oar cluster` starts by default.
const NODES: u16 = 3;

/// A base port with `NODES` consecutive ports free right now, different
/// from `avoid`'s range.
fn free_port_range(avoid: Option<u16>, seed: u64) -> u16 {
    let mut state = seed | 1;
    for _ in 0..200 {
        // xorshift: a different base per attempt and per test run.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let base = 20_000 + (state % 40_000) as u16;
        if avoid.is_some_and(|other| base.abs_diff(other) < NODES) {
            continue;
        }
        let bound: Vec<_> = (base..base + NODES).map(|port| TcpListener::bind(("127.0.0.1", port))).collect();
        if bound.iter().all(Result::is_ok) {
            return base;
        }
    }
    panic!("no {NODES} consecutive free ports found in 20000..60000");
}

/// Runs `program` with `args`, its output in files under `dir`, for at most
/// `within`: its exit status, stdout and stderr.
fn run(dir: &Path, program: &str, args: &[&str], within: Duration) -> (ExitStatus, String, String) {
    let (out_path, err_path) = (dir.join(format!("{program}.out")), dir.join(format!("{program}.err")));
    let out = std::fs::File::create(&out_path).expect("create the stdout file");
    let err = std::fs::File::create(&err_path).expect("create the stderr file");
    let mut child =
        match Command::new(program).args(args).stdin(Stdio::null()).stdout(out).stderr(err).spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "{program} is not on PATH: install redis-tools (`apt-get install redis-tools` on Debian/Ubuntu, \
             `brew install redis` on macOS) to run this test"
        ),
            Err(e) => panic!("cannot run {program}: {e}"),
        };
    let status = wait_bounded(&mut child, within)
        .unwrap_or_else(|| panic!("`{program} {}` did not finish within {within:?}", args.join(" ")));
    let read = |path: &Path| std::fs::read_to_string(path).expect("read the output file");
    (status, read(&out_path), read(&err_path))
}

/// Waits up to `within` for `child` to exit; kills it and answers `None`
/// if it does not.
fn wait_bounded(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let give_up = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("poll a child process") {
            return Some(status);
        }
        if Instant::now() >= give_up {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `redis-cli -p port args...`, retried while the cluster answers TRYAGAIN
/// (an election in progress) or its node does not listen yet: its trimmed
/// stdout.
fn redis_cli(dir: &Path, port: u16, args: &[&str]) -> String {
    let port_arg = port.to_string();
    let mut all_args = vec!["-p", port_arg.as_str()];
    all_args.extend_from_slice(args);
    let give_up = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, out, err) = run(dir, "redis-cli", &all_args, Duration::from_secs(10));
        // The nodes are processes of their own, maybe not listening yet.
        let starting = err.contains("Connection refused");
        if (out.contains("TRYAGAIN") || starting) && Instant::now() < give_up {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        assert!(
            status.success(),
            "redis-cli {all_args:?} exited with {status}\nstdout: {out}\nstderr: {err}"
        );
        return out.trim().to_string();
    }
}

/// The `oar cluster` process; killed if the test ends without stopping it.
struct ClusterProcess(Child);

impl Drop for ClusterProcess {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
#[ignore = "needs redis-cli and redis-benchmark (Debian: apt-get install redis-tools); .ci/run installs them and runs this"]
fn redis_cli_and_redis_benchmark_work_against_oar_cluster() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    // Fail early, and with the fix, when the tools are missing.
    for tool in ["redis-cli", "redis-benchmark"] {
        let (status, _, _) = run(dir, tool, &["--version"], Duration::from_secs(10));
        assert!(status.success(), "{tool} --version failed: install redis-tools");
    }

    let seed = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id());
    let resp_port = free_port_range(None, seed);
    let raft_port = free_port_range(Some(resp_port), seed.rotate_left(32));
    let stderr = std::fs::File::create(dir.join("cluster.err")).expect("create the cluster's stderr file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_oar"))
        .arg("cluster")
        .arg("--dir")
        .arg(dir.join("data"))
        .args(["--resp-port", &resp_port.to_string(), "--raft-port", &raft_port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("spawn oar cluster");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut cluster = ClusterProcess(child);
    let cluster_log = || std::fs::read_to_string(dir.join("cluster.err")).unwrap_or_default();

    // Its banner, read on a thread so that the wait for it is bounded; the
    // thread reads on to the end so the pipe never fills.
    let (lines_tx, lines_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut banner = Vec::new();
    let give_up = Instant::now() + Duration::from_secs(30);
    while !banner.iter().any(|line: &String| line.contains("Ctrl-C stops the cluster.")) {
        let left = give_up.saturating_duration_since(Instant::now());
        match lines_rx.recv_timeout(left) {
            Ok(line) => banner.push(line),
            Err(e) => {
                panic!("no `Ctrl-C stops the cluster.` line ({e}); printed {banner:#?}\n{}", cluster_log())
            }
        }
    }
    let hint = format!("redis-cli -h 127.0.0.1 -p {resp_port} set hello world");
    assert!(banner.iter().any(|line| line.contains(&hint)), "no {hint:?} line in {banner:#?}");

    // The benchmark must not meet an election: wait until the first node
    // knows a leader. ROLE is [role, term, leader or nil, commit, applied],
    // one per line in redis-cli's raw output, nil as an empty line.
    let give_up = Instant::now() + Duration::from_secs(20);
    loop {
        let role = redis_cli(dir, resp_port, &["role"]);
        let fields: Vec<&str> = role.lines().map(str::trim).collect();
        let settled = match fields[..] {
            ["leader", ..] => true,
            ["follower", _, leader, ..] => leader.parse::<u64>().is_ok_and(|id| id > 0),
            _ => false,
        };
        if settled {
            break;
        }
        assert!(Instant::now() < give_up, "node 1 knows no leader: ROLE {fields:?}\n{}", cluster_log());
        std::thread::sleep(Duration::from_millis(50));
    }

    assert_eq!(redis_cli(dir, resp_port, &["set", "hello", "world"]), "OK");
    assert_eq!(redis_cli(dir, resp_port + 1, &["get", "hello"]), "world");
    let info = redis_cli(dir, resp_port + 2, &["info"]);
    for field in ["redis_version:", "raft_node_id:3", "raft_leader_id:"] {
        assert!(info.contains(field), "INFO on node 3 lacks {field:?}:\n{info}");
    }
    assert!(
        info.contains("role:master") || info.contains("role:slave"),
        "INFO on node 3 reports no role:\n{info}"
    );

    let port = resp_port.to_string();
    let (status, out, err) = run(
        dir,
        "redis-benchmark",
        &["-p", &port, "-t", "set,get", "-n", "10000", "-q"],
        Duration::from_secs(120),
    );
    let report = format!("stdout:\n{out}\nstderr:\n{err}");
    assert!(status.success(), "redis-benchmark exited with {status}\n{report}");
    // Progress updates end in `\r`, results in `\n`.
    let lines: Vec<&str> = out.split(['\r', '\n']).chain(err.split(['\r', '\n'])).collect();
    for test in ["SET", "GET"] {
        assert!(
            lines
                .iter()
                .any(|line| line.starts_with(&format!("{test}: ")) && line.contains("requests per second")),
            "redis-benchmark printed no {test} result\n{report}"
        );
    }
    let bad: Vec<&&str> =
        lines.iter().filter(|line| line.contains("ERR") || line.to_lowercase().contains("error")).collect();
    assert!(bad.is_empty(), "redis-benchmark reported errors: {bad:?}\n{report}");

    // Ctrl-C: a clean stop.
    let pid = cluster.0.id().to_string();
    let kill = Command::new("kill").args(["-INT", &pid]).status().expect("run kill");
    assert!(kill.success(), "kill -INT {pid} failed");
    let status = wait_bounded(&mut cluster.0, Duration::from_secs(15))
        .unwrap_or_else(|| panic!("oar cluster did not stop within 15 s of SIGINT\n{}", cluster_log()));
    assert_eq!(status.code(), Some(0), "oar cluster exited with {status} after SIGINT\n{}", cluster_log());
    reader.join().expect("the stdout reader");
    let rest: Vec<String> = lines_rx.try_iter().collect();
    assert!(rest.iter().any(|line| line == "stopping"), "no `stopping` line after SIGINT: {rest:?}");
}
