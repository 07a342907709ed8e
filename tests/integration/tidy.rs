//! Enforces the layering of DESIGN.md by reading the source: the core stays
//! free of IO, threads, clocks and global randomness, and the lower layers
//! never reach into the core. Also keeps the integration tests one binary.

use std::fs;
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// The non-comment code of a file, line by line, with line numbers. Unit
/// test modules (`tests.rs`, `tests/`) are skipped by the callers that
/// allow tests to use more.
fn code_lines(path: &Path) -> Vec<(usize, String)> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.lines()
        .enumerate()
        .map(|(n, l)| (n + 1, l.split("//").next().unwrap_or("").to_string()))
        .filter(|(_, l)| !l.trim().is_empty())
        .collect()
}

fn violations(dir: &str, forbidden: &[&str], skip_tests: bool) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(!files.is_empty(), "no sources under {}", root.display());
    let mut found = Vec::new();
    for file in files {
        let is_test = file.components().any(|c| c.as_os_str() == "tests") || file.ends_with("tests.rs");
        if skip_tests && is_test {
            continue;
        }
        for (n, line) in code_lines(&file) {
            for word in forbidden {
                if line.contains(word) {
                    found.push(format!("{}:{n}: `{word}` in: {}", file.display(), line.trim()));
                }
            }
        }
    }
    found
}

#[test]
fn core_does_no_io_reads_no_clock_and_draws_no_global_randomness() {
    let forbidden = [
        "std::fs",
        "std::net",
        "std::io",
        "std::thread",
        "std::process",
        "std::env",
        "std::time::Instant",
        "std::time::SystemTime",
        "SystemTime",
        "Instant::now",
        "thread_rng",
        "rand::",
        "mio::",
        "crossbeam",
        "fs2",
        "HashMap",
        "HashSet",
        "println!",
        "eprintln!",
        "crate::sim",
        "crate::codec",
    ];
    let found = violations("src/core", &forbidden, false);
    assert!(found.is_empty(), "the core must stay sans-IO and deterministic:\n{}", found.join("\n"));
}

#[test]
fn lower_layers_do_not_depend_on_the_core_or_the_runtime() {
    let higher = ["crate::core", "crate::sim", "crate::runtime", "mio::", "crossbeam"];
    for (dir, also) in [("src/codec", None), ("src/storage", Some("crate::codec"))] {
        // Storage reads its own format; the wire codec is not its business.
        let forbidden: Vec<&str> = higher.iter().copied().chain(also).collect();
        let found = violations(dir, &forbidden, true);
        assert!(found.is_empty(), "{dir} must not depend on higher layers:\n{}", found.join("\n"));
    }
    for file in ["src/types.rs", "src/message.rs", "src/config.rs", "src/rng.rs"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        let bad: Vec<String> = code_lines(&path)
            .into_iter()
            .filter(|(_, l)| {
                ["crate::core", "crate::codec", "crate::sim", "std::fs", "std::net"]
                    .iter()
                    .any(|w| l.contains(w))
            })
            .map(|(n, l)| format!("{file}:{n}: {}", l.trim()))
            .collect();
        assert!(bad.is_empty(), "plain-data modules must stay plain:\n{}", bad.join("\n"));
    }
}

#[test]
fn sessions_are_plain_logic_over_the_types() {
    // The session table is replicated state: it must be deterministic, so
    // it reads no clock and does no IO, and it needs nothing above `types`.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/session.rs");
    let forbidden = [
        "crate::core",
        "crate::codec",
        "crate::storage",
        "crate::runtime",
        "crate::sim",
        "crate::kv",
        "crate::server",
        "std::fs",
        "std::net",
        "std::io",
        "std::thread",
        "std::time",
        "SystemTime",
        "HashMap",
    ];
    let bad: Vec<String> = code_lines(&path)
        .into_iter()
        .filter(|(_, l)| forbidden.iter().any(|w| l.contains(w)))
        .map(|(n, l)| format!("src/session.rs:{n}: {}", l.trim()))
        .collect();
    assert!(bad.is_empty(), "the session table must stay sans-IO:\n{}", bad.join("\n"));
}

#[test]
fn the_key_value_service_and_the_runtime_stay_apart() {
    // kv is the service without IO: the server puts it on a runtime node.
    let found = violations(
        "src/kv",
        &["crate::runtime", "crate::server", "crate::sim", "mio::", "crossbeam", "std::thread", "std::fs"],
        true,
    );
    assert!(found.is_empty(), "src/kv must stay free of IO and the runtime:\n{}", found.join("\n"));
    // The runtime is generic: it knows no key-value command.
    let found = violations("src/runtime", &["crate::kv", "crate::server", "crate::sim"], true);
    assert!(found.is_empty(), "src/runtime must not know the key-value service:\n{}", found.join("\n"));
}

#[test]
fn the_checker_itself_sees_a_forbidden_import() {
    // Guards the guard: a scan that matched nothing would pass vacuously.
    let found = violations("src/sim", &["crate::core"], false);
    assert!(!found.is_empty(), "the scan found no import the simulator is known to have");
}

#[test]
fn the_integration_tests_stay_one_binary() {
    // Cargo makes a test binary of every `tests/*.rs` and `tests/*/main.rs`,
    // and links each against the library and every dev-dependency: on a
    // fresh clone, that is most of what the first `cargo test` waits for.
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut binaries: Vec<String> = fs::read_dir(&tests)
        .unwrap_or_else(|e| panic!("read {}: {e}", tests.display()))
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.extension().is_some_and(|x| x == "rs") || path.join("main.rs").is_file())
        .map(|path| path.file_name().unwrap_or_default().to_string_lossy().into_owned())
        .collect();
    binaries.sort();
    assert_eq!(
        binaries,
        ["integration"],
        "add scenarios as modules of tests/integration/main.rs, not as test binaries of their own"
    );
}
