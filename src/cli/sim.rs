//! `oar sim`: the deterministic simulator over a range of seeds.

use std::ops::Range;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Run the deterministic cluster simulator: faults, then a liveness check.
#[derive(clap::Args)]
pub struct SimArgs {
    /// Run one seed (replays a failure exactly).
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Run a range of seeds, e.g. `0..1000`.
    #[arg(long, value_parser = parse_range)]
    seeds: Option<Range<u64>>,
    /// Cluster size.
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// Virtual seconds of fault injection per run.
    #[arg(long, default_value_t = 10)]
    fault_secs: u64,
    /// Virtual seconds the healed cluster has to make progress.
    #[arg(long, default_value_t = 10)]
    liveness_secs: u64,
    /// Lost disks and logs set back to older copies in every run (by
    /// default, in half of the seeds): `always` or `never`.
    #[arg(long, value_parser = parse_disk_faults)]
    disk_faults: Option<bool>,
    /// Print how often the nodes took each rare branch of Raft's rules
    /// (the situations a subtle bug would show in).
    #[arg(long)]
    coverage: bool,
    /// Fail the campaign if it never took one of those branches: its seeds
    /// could not have caught a bug there.
    #[arg(long)]
    require_coverage: bool,
    /// Print a trace: -v for faults and node events, -vv for every message.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

/// The median, the 99th percentile and the worst of `samples`, with the
/// worst one's seed.
fn spread(samples: &mut [(f64, u64)]) -> String {
    samples.sort_by(|a, b| a.0.total_cmp(&b.0));
    let at = |q: f64| samples.get(((samples.len() as f64 - 1.0) * q).round() as usize).map_or(0.0, |s| s.0);
    match samples.last() {
        Some(&(worst, seed)) => {
            format!("p50={:.1} p99={:.1} max={worst:.1} (seed {seed})", at(0.5), at(0.99))
        }
        None => "none".to_string(),
    }
}

fn parse_disk_faults(s: &str) -> Result<bool, String> {
    match s {
        "always" => Ok(true),
        "never" => Ok(false),
        _ => Err(format!("expected always or never, got {s:?}")),
    }
}

fn parse_range(s: &str) -> Result<Range<u64>, String> {
    let (a, b) = s.split_once("..").ok_or_else(|| format!("expected START..END, got {s:?}"))?;
    let start = a.parse().map_err(|e| format!("bad start {a:?}: {e}"))?;
    let end = b.parse().map_err(|e| format!("bad end {b:?}: {e}"))?;
    if start >= end {
        return Err(format!("empty range {s:?}"));
    }
    Ok(start..end)
}

pub fn run(args: SimArgs) -> ExitCode {
    let level = match args.verbose {
        // Recovery warns about every torn tail, which crashes cause by design.
        0 => "warn,oar::storage=error,oar::core=error",
        1 => "info,oar::core=info",
        _ => "debug",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .format_timestamp(None)
        .init();
    if args.nodes == 0 || args.nodes > 64 {
        eprintln!("--nodes must be between 1 and 64");
        return ExitCode::FAILURE;
    }
    let seeds = match (args.seed, args.seeds) {
        (Some(s), _) => s..s + 1,
        (None, Some(r)) => r,
        (None, None) => 0..100,
    };
    let started = Instant::now();
    let (mut violations, mut liveness_failures, mut steps) = (0u64, 0u64, 0u64);
    let (mut committed, mut accepted, mut crashes, mut reads, mut transfers) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let (mut changes, mut taken, mut installed) = (0u64, 0u64, 0u64);
    let (mut wipes, mut lost_tails, mut readmissions) = (0u64, 0u64, 0u64);
    let (mut full_disks, mut hangs, mut rot_refused) = (0u64, 0u64, 0u64);
    let (mut session_commands, mut session_retries, mut session_refusals) = (0u64, 0u64, 0u64);
    let mut coverage = oar::Coverage::default();
    // Recovery after healing, in election timeouts, with each seed.
    let mut to_leader: Vec<(f64, u64)> = Vec::new();
    let mut to_commit: Vec<(f64, u64)> = Vec::new();
    let count = seeds.end - seeds.start;
    for seed in seeds {
        let mut opts = oar::sim::SimOptions::new(seed, args.nodes);
        opts.fault_time = Duration::from_secs(args.fault_secs);
        opts.liveness_time = Duration::from_secs(args.liveness_secs);
        opts.disk_faults = args.disk_faults;
        let report = oar::sim::run(&opts);
        steps += report.steps;
        committed += report.committed;
        accepted += report.proposals_accepted;
        crashes += report.crashes;
        reads += report.reads_checked;
        transfers += report.transfers;
        changes += report.membership_changes;
        taken += report.snapshots_taken;
        installed += report.snapshots_installed;
        wipes += report.disk_wipes;
        lost_tails += report.lost_tails;
        readmissions += report.readmissions;
        full_disks += report.disk_full_faults;
        hangs += report.disk_hangs;
        rot_refused += report.rot_refused;
        session_commands += report.session_commands;
        session_retries += report.session_retries_answered;
        session_refusals += report.session_refusals;
        coverage.add(&report.coverage);
        let timeouts = |d: Duration| d.as_secs_f64() / report.election_timeout.as_secs_f64();
        to_leader.extend(report.heal_to_leader.map(|d| (timeouts(d), seed)));
        to_commit.extend(report.heal_to_commit.map(|d| (timeouts(d), seed)));
        if let Some(v) = &report.violation {
            violations += 1;
            eprintln!("seed {seed}: VIOLATION of {}: {}", v.property, v.detail);
            eprintln!("reproduce: oar sim --seed {seed} --nodes {} -vv", args.nodes);
        }
        if let Some(why) = &report.liveness_failure {
            liveness_failures += 1;
            eprintln!("seed {seed}: LIVENESS FAILURE: {why}");
            eprintln!("reproduce: oar sim --seed {seed} --nodes {} -vv", args.nodes);
        }
    }
    println!(
        "sim committed={committed} proposals_accepted={accepted} crashes={crashes} transfers={transfers} \
         membership_changes={changes} snapshots_taken={taken} snapshots_installed={installed} \
         disk_wipes={wipes} lost_tails={lost_tails} rot_refused={rot_refused} readmissions={readmissions} disks_full={full_disks} \
         disk_hangs={hangs} session_commands={session_commands} session_retries_answered={session_retries} \
         session_refusals={session_refusals}"
    );
    println!(
        "sim seeds={count} nodes={} violations={violations} liveness_failures={liveness_failures} reads_checked={reads} steps={steps} secs={:.1}",
        args.nodes,
        started.elapsed().as_secs_f64()
    );
    println!(
        "sim recovery after healing, in election timeouts: to_leader {} to_commit {}",
        spread(&mut to_leader),
        spread(&mut to_commit)
    );
    let unreached: Vec<&str> =
        coverage.counters().iter().filter(|(_, n)| *n == 0).map(|(name, _)| *name).collect();
    if args.coverage || args.require_coverage {
        let counts: Vec<String> = coverage.counters().iter().map(|(name, n)| format!("{name}={n}")).collect();
        println!("sim coverage {}", counts.join(" "));
    }
    if args.require_coverage && !unreached.is_empty() {
        eprintln!("the campaign never reached: {}", unreached.join(", "));
        return ExitCode::FAILURE;
    }
    if violations + liveness_failures > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
