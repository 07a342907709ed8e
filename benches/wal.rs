//! The log against the disk's own limit. For batches of 1, 16 and 256
//! entries of 16 B and of 1 KiB: `Wal::append` of the batch then one
//! `Wal::sync`, against the raw limit measured in the same run on the same
//! file system: one `write` of the same number of bytes plus `fdatasync`,
//! into preallocated files (a fresh one every 64 MiB, as the log does, so
//! that both write into never-written, preallocated extents).
//!
//! Criterion measures each side on its own; then a paired run alternates
//! the two batch by batch and prints, per configuration, entries/s and MB/s
//! (bytes written to the file per second) of both, and the log's
//! throughput as a fraction of raw: the figure to read.
//!
//! Run: `cargo bench -p oar-benches --bench wal`. The files go to a temporary directory
//! under `target/` (the disk the project lives on, not a tmpfs); set
//! `OAR_BENCH_DIR` to measure another disk.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use oar::storage::{Wal, WalOptions, DEFAULT_SEGMENT_SIZE_BYTES, RECORD_HEADER_BYTES};
use oar::{Bytes, Entry, EntryKind, LogIndex, Term};

/// Bytes of an entry record besides its data: the record header, index,
/// term and entry kind (see the layout in `oar::storage`).
const ENTRY_RECORD_OVERHEAD_BYTES: usize = RECORD_HEADER_BYTES + 17;

/// The segment size of the log and the file size of the raw writer:
/// `OAR_BENCH_SEGMENT_BYTES`, or the log's default (64 MiB).
fn segment_size_bytes() -> u64 {
    std::env::var("OAR_BENCH_SEGMENT_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_SEGMENT_SIZE_BYTES)
}

fn options() -> WalOptions {
    WalOptions { segment_size_bytes: segment_size_bytes() }
}

/// How long the paired comparison runs per configuration.
const PAIRED_TIME: Duration = Duration::from_secs(3);

/// `write` + `fdatasync` into preallocated files, moving to a new one when
/// the current is full.
struct Raw {
    dir: PathBuf,
    file: File,
    files_made: u64,
    offset: u64,
}

impl Raw {
    fn new(dir: &Path) -> Raw {
        std::fs::create_dir_all(dir).unwrap();
        let file = Raw::preallocated(dir, 0);
        Raw { dir: dir.to_path_buf(), file, files_made: 1, offset: 0 }
    }

    fn preallocated(dir: &Path, n: u64) -> File {
        let path = dir.join(format!("raw-{n}"));
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        fs2::FileExt::allocate(&file, segment_size_bytes()).unwrap();
        file.sync_all().unwrap();
        if n >= 4 {
            // Keep the disk footprint bounded, like compaction does.
            let _ = std::fs::remove_file(dir.join(format!("raw-{}", n - 4)));
        }
        file
    }

    fn write_and_sync(&mut self, bytes: &[u8]) {
        if self.offset + bytes.len() as u64 > segment_size_bytes() {
            self.file = Raw::preallocated(&self.dir, self.files_made);
            self.files_made += 1;
            self.offset = 0;
        }
        self.file.write_all_at(bytes, self.offset).unwrap();
        self.file.sync_data().unwrap();
        self.offset += bytes.len() as u64;
    }
}

fn bench(c: &mut Criterion, root: &Path) {
    for entry_bytes in [16usize, 1024] {
        let mut group = c.benchmark_group(format!("wal_{entry_bytes}B"));
        for batch in [1usize, 16, 256] {
            group.throughput(Throughput::Elements(batch as u64));
            let mut entries = batch_of(entry_bytes, batch);

            let dir = root.join(format!("wal-{entry_bytes}-{batch}"));
            let (mut wal, _) = Wal::open(&dir, options()).unwrap();
            group.bench_function(BenchmarkId::new("append+sync", batch), |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        wal_batch(&mut wal, &mut entries);
                    }
                    start.elapsed()
                })
            });
            drop(wal);

            let bytes = vec![0x5a; batch * (ENTRY_RECORD_OVERHEAD_BYTES + entry_bytes)];
            let mut raw = Raw::new(&root.join(format!("raw-{entry_bytes}-{batch}")));
            group.bench_function(BenchmarkId::new("raw write+fdatasync", batch), |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        raw.write_and_sync(&bytes);
                    }
                    start.elapsed()
                })
            });
        }
        group.finish();
    }
}

/// `batch` entries of `entry_bytes` each, sharing one payload; `wal_batch`
/// numbers them.
fn batch_of(entry_bytes: usize, batch: usize) -> Vec<Entry> {
    let data = Bytes::from(vec![0x5a; entry_bytes]);
    (0..batch)
        .map(|_| Entry { index: LogIndex(0), term: Term(1), kind: EntryKind::Command, data: data.clone() })
        .collect()
}

fn wal_batch(wal: &mut Wal, entries: &mut [Entry]) {
    let mut next = wal.last_index().next();
    for e in entries.iter_mut() {
        e.index = next;
        next = next.next();
    }
    wal.append(entries).unwrap();
    wal.sync().unwrap();
    if wal.segment_count() > 4 {
        wal.compact_prefix(wal.last_index()).unwrap();
    }
}

/// The ratio criterion cannot give: the log and the raw writer take turns,
/// batch for batch, for [`PAIRED_TIME`], so that both see the same disk
/// (a shared VM's fsync latency drifts by 2x within a minute, which makes
/// ratios of separately measured means meaningless).
fn paired(root: &Path) {
    println!();
    println!("paired: log and raw alternate batch by batch for {PAIRED_TIME:?} per row");
    println!(
        "{:>6} {:>6} | {:>12} {:>9} | {:>12} {:>9} | {:>8}",
        "entry", "batch", "wal ent/s", "wal MB/s", "raw ent/s", "raw MB/s", "wal/raw"
    );
    for entry_bytes in [16usize, 1024] {
        for batch in [1usize, 16, 256] {
            let mut entries = batch_of(entry_bytes, batch);
            let (mut wal, _) =
                Wal::open(root.join(format!("paired-wal-{entry_bytes}-{batch}")), options()).unwrap();
            let bytes = vec![0x5a; batch * (ENTRY_RECORD_OVERHEAD_BYTES + entry_bytes)];
            let mut raw = Raw::new(&root.join(format!("paired-raw-{entry_bytes}-{batch}")));
            for _ in 0..20 {
                wal_batch(&mut wal, &mut entries);
                raw.write_and_sync(&bytes);
            }
            let (mut wal_time, mut raw_time, mut rounds) = (Duration::ZERO, Duration::ZERO, 0u64);
            let start = Instant::now();
            while start.elapsed() < PAIRED_TIME {
                let t = Instant::now();
                wal_batch(&mut wal, &mut entries);
                wal_time += t.elapsed();
                let t = Instant::now();
                raw.write_and_sync(&bytes);
                raw_time += t.elapsed();
                rounds += 1;
            }
            let rate = |time: Duration| {
                let batches_per_s = rounds as f64 / time.as_secs_f64();
                (batches_per_s * batch as f64, batches_per_s * bytes.len() as f64 / 1e6)
            };
            let (w, r) = (rate(wal_time), rate(raw_time));
            println!(
                "{:>5}B {:>6} | {:>12.0} {:>9.2} | {:>12.0} {:>9.2} | {:>8.3}",
                entry_bytes,
                batch,
                w.0,
                w.1,
                r.0,
                r.1,
                w.0 / r.0
            );
        }
    }
}

fn main() {
    let base = std::env::var_os("OAR_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    std::fs::create_dir_all(&base).unwrap();
    let root = tempfile::tempdir_in(&base).unwrap();
    let mut c = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(20)
        .configure_from_args();
    bench(&mut c, root.path());
    c.final_summary();
    paired(root.path());
}
