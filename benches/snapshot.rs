//! Snapshots of the key-value store: a `Store` of 1,000,000 keys
//! (`key:000000000` to `key:000999999`, 13 bytes) with 16-byte values.
//!
//! - `take`: `Store::write_snapshot` into a new file through a 64 KiB
//!   `BufWriter`, flushed, then `sync_all`: the fsync is part of the cost,
//!   since a snapshot is not taken until it is durable.
//! - `install`: that file read through a 64 KiB `BufReader` by
//!   `Store::read_snapshot` into a fresh store. Dropping the store read is
//!   not timed.
//!
//! - `node take`: what a node does on `SnapshotAction::Take`: the
//!   `KvMachine` streamed through a 1 MiB `BufWriter` into a
//!   `SnapshotStore` writer (checksummed), which fsyncs the file, renames it
//!   into place, fsyncs the directory and removes the previous snapshot.
//! - `node install`: what a restarting node does: `SnapshotStore::open`
//!   (which checks the whole file's checksum) and `KvMachine::restore` from
//!   its reader into a fresh machine. A follower installing a received
//!   snapshot does the same check (in `finish_receive`) and restore.
//!
//! Before the timed runs it prints the snapshot's size in bytes and the
//! allocations made while writing one (zero: writing walks the map in place,
//! so its memory does not grow with the store) and while reading one,
//! counted by a global allocator wrapper.
//!
//! Run: `cargo bench -p oar-benches --bench snapshot`. The file goes to a temporary
//! directory under `target/` (the disk the project lives on, not a tmpfs);
//! set `OAR_BENCH_DIR` to measure another disk.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput};
use oar::kv::{SetCondition, Store, WriteOp};
use oar::runtime::StateMachine;
use oar::server::KvMachine;
use oar::storage::{SnapshotOptions, SnapshotStore};
use oar::{Bytes, LogIndex, Membership, NodeId, SnapshotMeta, Term};

#[path = "common/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::ALLOCATIONS;

const KEY_COUNT: u64 = 1_000_000;
const VALUE: [u8; 16] = *b"0123456789abcdef";
const BUFFER_BYTES: usize = 64 << 10;

fn store() -> Store {
    let mut store = Store::new();
    for n in 0..KEY_COUNT {
        store.apply(WriteOp::Set {
            key: Bytes::from(format!("key:{n:09}")),
            value: Bytes::from_static(&VALUE),
            condition: SetCondition::Always,
            get: false,
        });
    }
    store
}

/// Writes `store` to `path` and makes it durable.
fn take(store: &Store, path: &Path) {
    let mut out = BufWriter::with_capacity(BUFFER_BYTES, File::create(path).unwrap());
    store.write_snapshot(&mut out).unwrap();
    out.flush().unwrap();
    out.get_ref().sync_all().unwrap();
}

fn install(path: &Path) -> Store {
    let mut input = BufReader::with_capacity(BUFFER_BYTES, File::open(path).unwrap());
    Store::read_snapshot(&mut input).unwrap()
}

fn main() {
    let base = std::env::var_os("OAR_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    std::fs::create_dir_all(&base).unwrap();
    let dir = tempfile::tempdir_in(&base).unwrap();
    let path = dir.path().join("snapshot");

    let built = Instant::now();
    let store = store();
    println!("built a store of {} keys in {:?}", store.len(), built.elapsed());

    // One untimed round for the figures criterion does not give.
    let mut out = BufWriter::with_capacity(BUFFER_BYTES, File::create(&path).unwrap());
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    store.write_snapshot(&mut out).unwrap();
    let write_allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    drop(out);
    let file_bytes = std::fs::metadata(&path).unwrap().len();
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let read = install(&path);
    let read_allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert_eq!(read, store, "the snapshot read back differs");
    drop(read);
    println!(
        "snapshot: {file_bytes} bytes ({:.1} MiB, {:.1} bytes/key); allocations: {write_allocations} \
         writing, {read_allocations} reading ({:.2} per key)",
        file_bytes as f64 / (1 << 20) as f64,
        file_bytes as f64 / KEY_COUNT as f64,
        read_allocations as f64 / KEY_COUNT as f64,
    );

    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(10))
        .configure_from_args();
    let mut group = c.benchmark_group("snapshot_1M_keys");
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Bytes(file_bytes));
    group.bench_function("take (write+fsync)", |b| b.iter(|| take(&store, &path)));
    group.bench_function("install (read)", |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let read = install(&path);
                elapsed += start.elapsed();
                assert_eq!(read.len(), store.len());
            }
            elapsed
        })
    });

    // The node's own path, through the snapshot store.
    let mut machine = KvMachine::new();
    machine.restore(&mut BufReader::new(File::open(&path).unwrap())).unwrap();
    let store_dir = dir.path().join("snapshots");
    let (mut snapshots, _) = SnapshotStore::open(&store_dir, SnapshotOptions::default()).unwrap();
    let membership = Membership::with_voters([1, 2, 3].map(NodeId));
    let mut index = 0;
    group.bench_function("node take (store write+fsync+rename)", |b| {
        b.iter(|| {
            index += 1;
            let meta = SnapshotMeta { index: LogIndex(index), term: Term(1), membership: membership.clone() };
            let mut writer = snapshots.begin(&meta).unwrap();
            {
                let mut buffered = BufWriter::with_capacity(1 << 20, &mut writer);
                machine.snapshot(&mut buffered).unwrap();
                buffered.flush().unwrap();
            }
            writer.finish().unwrap();
        })
    });
    drop(snapshots);
    group.bench_function("node install (store open+check, restore)", |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let (snapshots, meta) = SnapshotStore::open(&store_dir, SnapshotOptions::default()).unwrap();
                assert!(meta.is_some());
                let mut restored = KvMachine::new();
                let mut reader = BufReader::with_capacity(1 << 20, snapshots.reader().unwrap());
                restored.restore(&mut reader).unwrap();
                elapsed += start.elapsed();
                assert_eq!(restored.store().len(), store.len());
            }
            elapsed
        })
    });
    group.finish();
    c.final_summary();
}
