//! The core alone: a 3-node cluster of `Node`s in one thread, messages passed
//! by a loop, every write reported durable at once, 16-byte proposals in
//! batches of 1, 64 and 1024 per round. A round ends when every node has
//! applied every entry of the batch, so the throughput criterion reports is
//! entries committed and applied on all three nodes per second.
//!
//! Before the timed runs it prints allocations per committed entry, counted
//! by a global allocator wrapper.
//!
//! Run: `cargo bench -p oar-benches --bench core`.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant as WallClock};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use oar::{Bytes, Config, Instant, LogIndex, Message, Node, NodeId, RecoveredState, Role};

#[path = "common/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::ALLOCATIONS;

const PAYLOAD: [u8; 16] = *b"0123456789abcdef";

struct Cluster {
    nodes: Vec<Node>,
    in_flight: Vec<Message>,
    delivering: Vec<Message>,
    now: Instant,
    leader: usize,
}

impl Cluster {
    fn new() -> Cluster {
        let voters: Vec<NodeId> = (1..=3).map(NodeId).collect();
        let nodes = voters
            .iter()
            .map(|&id| Node::new(Config::new(id), &voters, RecoveredState::default(), Instant::ZERO).unwrap())
            .collect();
        let mut c =
            Cluster { nodes, in_flight: Vec::new(), delivering: Vec::new(), now: Instant::ZERO, leader: 0 };
        c.nodes[0].campaign(c.now);
        c.pump();
        assert_eq!(c.nodes[0].role(), Role::Leader);
        c
    }

    /// Drains every node and delivers every message until all is quiet.
    fn pump(&mut self) {
        loop {
            for node in self.nodes.iter_mut() {
                drain(node, self.now, &mut self.in_flight);
            }
            if self.in_flight.is_empty() {
                return;
            }
            std::mem::swap(&mut self.in_flight, &mut self.delivering);
            for msg in self.delivering.drain(..) {
                let to = msg.to.0 as usize - 1;
                self.nodes[to].handle_message(self.now, msg);
            }
        }
    }

    /// Proposes `batch` entries and runs until all three nodes applied them.
    fn round(&mut self, batch: usize) {
        let mut last = LogIndex(0);
        for _ in 0..batch {
            let proposed =
                self.nodes[self.leader].propose(self.now, Bytes::copy_from_slice(&PAYLOAD)).unwrap();
            last = proposed.index().expect("the leader appends");
        }
        self.pump();
        debug_assert!(self.nodes.iter().all(|n| n.applied_index() >= last));
    }
}

fn drain(node: &mut Node, now: Instant, out: &mut Vec<Message>) {
    loop {
        let mut progressed = false;
        while let Some(p) = node.poll_persist() {
            node.handle_persisted(now, p.id);
            progressed = true;
        }
        while let Some(m) = node.poll_send() {
            out.push(m);
            progressed = true;
        }
        while let Some(e) = node.poll_apply() {
            node.handle_applied(e.index);
            progressed = true;
        }
        while node.poll_event().is_some() {}
        if !progressed {
            return;
        }
    }
}

const BATCHES: [usize; 3] = [1, 64, 1024];

fn print_allocations() {
    for batch in BATCHES {
        let mut c = Cluster::new();
        for _ in 0..10 {
            c.round(batch);
        }
        let rounds = (100_000 / batch).max(100);
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        for _ in 0..rounds {
            c.round(batch);
        }
        let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
        let entries = (rounds * batch) as f64;
        println!(
            "core/batch {batch:>4}: {:.2} allocations per committed entry",
            allocations as f64 / entries
        );
    }
}

fn bench_rounds(c: &mut Criterion) {
    let mut group = c.benchmark_group("core_3_nodes");
    group.measurement_time(Duration::from_secs(3)).sample_size(20);
    for batch in BATCHES {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::new("round", batch), &batch, |b, &batch| {
            // A fresh cluster per sample keeps the logs (which this bench
            // never compacts) from growing without bound.
            b.iter_custom(|iters| {
                let mut cluster = Cluster::new();
                let start = WallClock::now();
                for _ in 0..iters {
                    cluster.round(batch);
                }
                start.elapsed()
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench_rounds);

fn main() {
    print_allocations();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
