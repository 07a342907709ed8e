//! The cluster simulator driven by fuzzer bytes: the first eight bytes are
//! the seed, the ninth picks the cluster size (1 to 7 nodes). Any safety
//! violation or liveness failure is a crash. The simulator is deterministic,
//! so a crashing input replays exactly; `oar sim --seed N --nodes M
//! --fault-secs 2 -vv` prints its trace.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use oar::sim::{run, SimOptions};

fuzz_target!(|data: &[u8]| {
    let mut seed = [0u8; 8];
    for (dst, src) in seed.iter_mut().zip(data) {
        *dst = *src;
    }
    let nodes = data.get(8).map_or(3, |b| usize::from(b % 7) + 1);
    let mut opts = SimOptions::new(u64::from_le_bytes(seed), nodes);
    opts.fault_time = Duration::from_secs(2);
    opts.liveness_time = Duration::from_secs(10);
    let report = run(&opts);
    assert!(
        report.violation.is_none() && report.liveness_failure.is_none(),
        "seed {} nodes {nodes}: {:?} {:?}",
        report.seed,
        report.violation,
        report.liveness_failure
    );
});
