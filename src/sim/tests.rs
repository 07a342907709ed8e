//! The simulator against the real core, and against deliberately broken
//! cores to prove the checker can fail.
//!
//! `cargo test` builds oar at opt-level 0 (see Cargo.toml), where a run is
//! about eight times slower than in a release build, so the campaigns here
//! are small: enough seeds to exercise every fault and to catch every bug
//! injected below. CI (`.ci/run`) runs the same campaigns with thousands of
//! seeds through `oar sim`, built for release.

use std::time::Duration;

use super::{run, SimOptions, SimReport};
use crate::config::InjectedBugs;

/// Runs seeds `0..count`; returns the first report with a violation.
fn first_violation(count: u64, nodes: usize, bugs: InjectedBugs) -> Option<SimReport> {
    first_violation_where(count, nodes, bugs, |_| {})
}

/// Runs seeds `0..count` with a fault phase of `fault_time`; returns the
/// first report with a violation.
fn first_violation_with(
    count: u64,
    nodes: usize,
    fault_time: Duration,
    bugs: InjectedBugs,
) -> Option<SimReport> {
    first_violation_where(count, nodes, bugs, |opts| opts.fault_time = fault_time)
}

/// Runs seeds `0..count` with `bugs` and the options `tweak` sets; returns
/// the first report with a violation.
fn first_violation_where(
    count: u64,
    nodes: usize,
    bugs: InjectedBugs,
    tweak: impl Fn(&mut SimOptions),
) -> Option<SimReport> {
    (0..count)
        .map(|seed| {
            let mut opts = SimOptions::new(seed, nodes);
            opts.bugs = bugs;
            tweak(&mut opts);
            run(&opts)
        })
        .find(|r| r.violation.is_some())
}

#[test]
fn a_run_is_deterministic() {
    let a = run(&SimOptions::new(7, 5));
    let b = run(&SimOptions::new(7, 5));
    assert_eq!((a.steps, a.messages, a.committed, a.end), (b.steps, b.messages, b.committed, b.end));
    assert!(a.committed > 0);
}

#[test]
fn seeds_find_no_violation_and_the_cluster_recovers() {
    for nodes in [3, 5] {
        for seed in 0..30 {
            let mut opts = SimOptions::new(seed, nodes);
            opts.fault_time = Duration::from_secs(5);
            let r = run(&opts);
            assert!(
                r.violation.is_none() && r.liveness_failure.is_none(),
                "seed {seed} nodes {nodes}: {:?} {:?}\nreproduce: oar sim --seed {seed} --nodes {nodes} --fault-secs 5 -vv",
                r.violation,
                r.liveness_failure
            );
            assert!(r.committed > 0, "seed {seed}: nothing committed");
        }
    }
}

#[test]
fn checker_catches_acknowledging_before_persisting() {
    let bugs = InjectedBugs { ack_before_persist: true, ..InjectedBugs::default() };
    let report = first_violation(50, 3, bugs).expect("the checker missed acks sent before fsync");
    let v = report.violation.unwrap();
    println!("seed {} found: {} ({})", report.seed, v.property, v.detail);
    assert_eq!(v.property, "durability");
}

/// A leader that commits entries of earlier terms by counting their
/// replicas (Raft Figure 8): caught by the leader commit rule the moment
/// its commit lands on such an entry, which messages of one entry make
/// happen before its own entry reaches a majority.
#[test]
fn checker_catches_commits_of_earlier_terms_by_counting() {
    let bugs = InjectedBugs { commit_old_terms_by_counting: true, ..InjectedBugs::default() };
    let report = first_violation(300, 3, bugs).expect("the checker missed a Figure 8 commit");
    let v = report.violation.unwrap();
    println!("seed {} found: {} ({})", report.seed, v.property, v.detail);
    assert_eq!(v.property, "leader commit rule");
}

/// Every election timeout the minimum: where delays are steady, followers
/// that lose their leader together time out together and split the vote
/// again and again, and the cluster never recovers in time.
#[test]
fn checker_catches_an_election_timeout_that_is_not_random() {
    let bugs = InjectedBugs { fixed_election_timeout: true, ..InjectedBugs::default() };
    let report = (0..300)
        .map(|seed| {
            let mut opts = SimOptions::new(seed, 3);
            opts.bugs = bugs;
            run(&opts)
        })
        .find(|r| r.violation.is_some() || r.liveness_failure.is_some())
        .expect("the simulator missed election timeouts that are all the same");
    println!("seed {} found: {:?} {:?}", report.seed, report.violation, report.liveness_failure);
}

/// Recovery that takes a rotten record with whole ones after it for a torn
/// write cuts synced entries off the log; the simulator's model of the
/// disk names the loss when the node restarts.
#[test]
fn checker_catches_recovery_that_cuts_damage_as_a_torn_tail() {
    use crate::storage::recovery::DAMAGE_AS_TORN;
    DAMAGE_AS_TORN.with(|bug| bug.set(true));
    let report = first_violation_where(300, 3, InjectedBugs::default(), |opts| opts.disk_faults = Some(true));
    DAMAGE_AS_TORN.with(|bug| bug.set(false));
    let report = report.expect("the simulator missed synced records cut as a torn tail");
    let v = report.violation.unwrap();
    println!("seed {} found: {} ({})", report.seed, v.property, v.detail);
    assert_eq!(v.property, "recovery");
}

/// A voter that ignores the candidate's log lets a stale node lead and
/// overwrite committed entries.
#[test]
fn checker_catches_votes_that_ignore_the_log() {
    let bugs = InjectedBugs { vote_ignores_log: true, ..InjectedBugs::default() };
    let report = first_violation(200, 5, bugs).expect("the checker missed votes for stale candidates");
    let v = report.violation.unwrap();
    println!("seed {} found: {} ({})", report.seed, v.property, v.detail);
}

/// A leader that answers reads without confirming it still leads serves
/// stale reads once deposed.
#[test]
fn checker_catches_a_deposed_leader_serving_reads() {
    let bugs = InjectedBugs { reads_without_confirmation: true, ..InjectedBugs::default() };
    let report = first_violation(200, 3, bugs).expect("the checker missed stale reads from a deposed leader");
    let v = report.violation.unwrap();
    println!("seed {} found: {} ({})", report.seed, v.property, v.detail);
    assert_eq!(v.property, "linearizability");
}

/// A leader in a joint configuration that counts only C_new commits what
/// C_old's majority does not hold (a majority of C_old could then elect a
/// leader without it). Membership changes are a small share of the faults
/// and only some of them make the halves' majorities differ (a replacement,
/// a removal from an even C_old), so the runs have a long fault phase.
#[test]
fn checker_catches_a_joint_configuration_counted_by_its_incoming_half_only() {
    let bugs = InjectedBugs { joint_counts_only_incoming: true, ..InjectedBugs::default() };
    let report = first_violation_with(100, 3, Duration::from_secs(20), bugs)
        .expect("the checker missed commits without a majority of C_old");
    let v = report.violation.unwrap();
    println!("seed {} found: {} ({})", report.seed, v.property, v.detail);
    assert_eq!(v.property, "durability");
}

/// With incarnations ignored, a node that lost its disk votes and
/// acknowledges again under its old id, empty: it helps elect a leader
/// that lacks committed entries (the loss issue 11 observed with real
/// processes).
#[test]
fn checker_catches_a_node_that_lost_its_disk_counting_again() {
    let bugs = InjectedBugs { ignore_incarnations: true, ..InjectedBugs::default() };
    // Three nodes: one wiped voter is enough (five need two, which takes
    // about a hundred seeds).
    let report = first_violation_where(300, 3, bugs, |opts| opts.disk_faults = Some(true))
        .expect("the checker missed a wiped node counted in a quorum");
    let v = report.violation.unwrap();
    println!("seed {} found: {} ({})", report.seed, v.property, v.detail);
}

/// Disks wiped and logs set back to older copies, with the protections
/// on: nothing acknowledged is lost, and the cluster recovers (wiped
/// voters are re-admitted, set-back logs repaired).
#[test]
fn lost_disks_and_lost_tails_lose_nothing() {
    let (mut wipes, mut lost_tails, mut readmissions) = (0, 0, 0);
    for nodes in [3, 5] {
        for seed in 0..20 {
            let mut opts = SimOptions::new(seed, nodes);
            opts.disk_faults = Some(true);
            let r = run(&opts);
            assert!(
                r.violation.is_none() && r.liveness_failure.is_none(),
                "seed {seed} nodes {nodes}: {:?} {:?}\nreproduce: oar sim --seed {seed} --nodes {nodes} -vv",
                r.violation,
                r.liveness_failure
            );
            wipes += r.disk_wipes;
            lost_tails += r.lost_tails;
            readmissions += r.readmissions;
        }
    }
    println!("{wipes} wipes, {lost_tails} lost tails, {readmissions} readmissions");
    assert!(
        wipes > 8 && lost_tails > 10 && readmissions > 3,
        "{wipes} wipes, {lost_tails} lost tails, {readmissions} readmissions"
    );
}

/// Long runs go through many membership changes and snapshots; the
/// checker's membership properties find nothing wrong with the real core.
#[test]
fn long_runs_with_many_membership_changes_find_no_violation() {
    let (mut changes, mut installs) = (0, 0);
    for nodes in [3, 5] {
        for seed in 0..5 {
            let mut opts = SimOptions::new(seed, nodes);
            opts.fault_time = Duration::from_secs(30);
            let r = run(&opts);
            assert!(
                r.violation.is_none() && r.liveness_failure.is_none(),
                "seed {seed} nodes {nodes}: {:?} {:?}\nreproduce: oar sim --seed {seed} --nodes {nodes} --fault-secs 30 -vv",
                r.violation,
                r.liveness_failure
            );
            changes += r.membership_changes;
            installs += r.snapshots_installed;
        }
    }
    println!("{changes} membership changes, {installs} snapshots installed");
    assert!(changes > 6, "only {changes} membership changes in 10 runs");
    assert!(installs > 40, "only {installs} snapshots installed in 10 runs");
}

#[test]
fn reads_and_transfers_happen_and_are_checked() {
    let (mut reads, mut transfers) = (0, 0);
    for seed in 0..10 {
        let r = run(&SimOptions::new(seed, 5));
        assert!(r.violation.is_none() && r.liveness_failure.is_none(), "seed {seed}: {r:?}");
        reads += r.reads_checked;
        transfers += r.transfers;
    }
    println!("{reads} reads checked, {transfers} transfers");
    assert!(reads > 1000, "only {reads} reads checked in 10 runs");
    assert!(transfers > 0, "no leadership transfer in 10 runs");
}

mod recovery_oracle {
    use crate::core::{Persist, PersistId};
    use crate::sim::disk::SimDisk;
    use crate::types::{Bytes, Entry, EntryKind, HardState, LogIndex, NodeId, Term};

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            term: Term(term),
            index: LogIndex(index),
            kind: EntryKind::Command,
            data: Bytes::from(vec![index as u8]),
        }
    }

    fn hs(term: u64, commit: u64) -> HardState {
        HardState { term: Term(term), vote: Some(NodeId(1)), commit: LogIndex(commit) }
    }

    /// Synced: entries 1..=3 of term 1. Unsynced: entries 4..=5 then a
    /// write that truncates from 3 and appends 3..=4 of term 2.
    fn disk_and_lost() -> (SimDisk, Vec<Persist>) {
        let mut disk = SimDisk::default();
        disk.write(Persist {
            id: PersistId(1),
            snapshot: None,
            entries: (1..=3).map(|i| entry(i, 1)).collect(),
            hard_state: Some(hs(1, 0)),
        });
        disk.sync();
        let lost = vec![
            Persist {
                id: PersistId(2),
                snapshot: None,
                entries: vec![entry(4, 1), entry(5, 1)],
                hard_state: Some(hs(1, 3)),
            },
            Persist {
                id: PersistId(3),
                snapshot: None,
                entries: vec![entry(3, 2), entry(4, 2)],
                hard_state: Some(hs(2, 3)),
            },
        ];
        (disk, lost)
    }

    #[test]
    fn accepts_the_synced_state_followed_by_a_prefix_of_the_lost_writes() {
        let (disk, lost) = disk_and_lost();
        let synced: Vec<Entry> = (1..=3).map(|i| entry(i, 1)).collect();
        assert!(disk.explains(&lost, None, hs(1, 0), &synced));
        assert!(disk.explains(&lost, None, hs(1, 0), &[synced.clone(), vec![entry(4, 1)]].concat()));
        assert!(disk.explains(
            &lost,
            None,
            hs(1, 3),
            &[synced.clone(), vec![entry(4, 1), entry(5, 1)]].concat()
        ));
        // The truncation survived, its entries torn off.
        assert!(disk.explains(&lost, None, hs(1, 3), &synced[..2]));
        assert!(disk.explains(&lost, None, hs(2, 3), &[&synced[..2], &[entry(3, 2), entry(4, 2)]].concat()));
    }

    #[test]
    fn rejects_lost_synced_entries_reordered_writes_and_inventions() {
        let (disk, lost) = disk_and_lost();
        let synced: Vec<Entry> = (1..=3).map(|i| entry(i, 1)).collect();
        // A synced entry lost without a later truncation explaining it.
        assert!(!disk.explains(&[], None, hs(1, 0), &synced[..2]));
        // A hard state ahead of the entries written before it.
        assert!(!disk.explains(&lost, None, hs(1, 3), &synced));
        // An entry nobody wrote.
        assert!(!disk.explains(&lost, None, hs(1, 0), &[synced.clone(), vec![entry(4, 9)]].concat()));
    }
}
