//! A deterministic cluster simulator that tries to break the core.
//!
//! One seed drives everything: node configurations, message loss,
//! duplication and delay, partitions (symmetric, one-way, and a bridge node
//! that sees both halves), crashes, slow disks, and a stream of client
//! proposals, reads, leadership transfers, membership changes (learners
//! added, promoted, voters removed and replaced, through joint consensus)
//! and snapshots (taken when the nodes ask and at random, then the log
//! compacted; sent to followers that fell behind the compacted log, and
//! lost or delayed like any message). Virtual time jumps from one
//! event or deadline to the next, so a run of minutes takes milliseconds.
//!
//! Nodes persist through the real storage code: a [`crate::storage::Wal`]
//! on a [`crate::storage::SimFs`], whose crash keeps what was synced plus an
//! arbitrary prefix of what was not, possibly tearing the last sector. A
//! restarted node runs the real recovery, and the recovered log is checked
//! against a model of what the node had synced.
//!
//! After every step the [`checker`](self) asserts Raft's safety properties.
//! When the fault phase ends, everything heals and a liveness phase requires
//! a leader that commits a fresh entry, applied on every node, within a
//! bounded time. Proposals accepted during the fault phase may be lost when
//! their leader is deposed: Raft allows that, and the runtime reports such an
//! outcome as unknown.
//!
//! ```
//! let report = oar::sim::run(&oar::sim::SimOptions::new(42, 3));
//! assert!(report.violation.is_none() && report.liveness_failure.is_none());
//! ```

mod app;
mod checker;
mod disk;
mod lifecycle;
mod network;
mod report;
mod sessions;
#[cfg(test)]
mod tests;
mod workload;

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::time::Duration;

use ::log::{debug, info};

use crate::config::Config;
use crate::core::{Node, Persist, RecoveredState, Role, SnapshotAction};
use crate::membership::{Membership, SnapshotMeta};
use crate::message::Message;
use crate::rng::Rng;
use crate::storage::{read_identity, reconcile_floor, write_identity, Fs, Identity, SimFs, Wal, WalOptions};
use crate::types::{Incarnation, Instant, LogIndex, NodeId, Term};

use self::app::held;
pub use self::checker::Violation;
use self::checker::{chain_step, digest, Checker, APP_DIGEST_START};
use self::disk::SimDisk;
use self::lifecycle::{continue_snapshot, is_log_file, new_disk};
use self::network::Network;
pub use self::report::SimReport;
use self::workload::random_config;

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// Drives every random choice.
    pub seed: u64,
    /// Cluster size.
    pub nodes: usize,
    /// How long faults are injected, in virtual time.
    pub fault_time: Duration,
    /// How long after healing the cluster has to show progress.
    pub liveness_time: Duration,
    /// Whether disks fail (wiped, or their log set back to an older copy);
    /// `None`: in half the seeds, as the seed decides.
    pub disk_faults: Option<bool>,
    /// Deliberate core bugs, to prove the checker catches them.
    #[cfg(test)]
    pub bugs: crate::config::InjectedBugs,
}

impl SimOptions {
    /// Options for `seed` with `nodes` nodes and default phase lengths.
    pub fn new(seed: u64, nodes: usize) -> SimOptions {
        SimOptions {
            seed,
            nodes,
            fault_time: Duration::from_secs(10),
            liveness_time: Duration::from_secs(10),
            disk_faults: None,
            #[cfg(test)]
            bugs: Default::default(),
        }
    }
}

/// Runs one simulation.
pub fn run(opts: &SimOptions) -> SimReport {
    World::new(opts).run()
}

enum Event {
    Deliver(Message),
    /// The disk of a node (in a given life of its process) finishes
    /// syncing.
    Sync(NodeId, u64),
    Restart(NodeId),
    Fault,
    Propose,
    Read,
    LivenessProbe,
    /// A snapshot sent by a leader reaches a follower whole.
    SnapshotArrives {
        from: NodeId,
        to: NodeId,
        term: crate::types::Term,
        snapshot: Snapshot,
    },
    /// A snapshot sent by a leader was lost on the way.
    SnapshotLost {
        from: NodeId,
        to: NodeId,
    },
    /// A node (in a given life) tries its queued writes again.
    RetryWrites(NodeId, u64),
    /// A slow application gets to what it was handed.
    ApplyLater(NodeId, u64),
    /// A node's disk has room again.
    DiskSpace(NodeId),
}

/// A simulated snapshot: what it covers and the application's digest there.
#[derive(Clone, Debug)]
struct Snapshot {
    meta: SnapshotMeta,
    digest: u64,
    /// The application's session table (encoded) and model there.
    sessions: sessions::SessionsSnapshot,
}

struct SimNode {
    node: Option<Node>,
    config: Config,
    /// Counts the node's process lives: events of an earlier life are void.
    life: u64,
    /// The application's applied index and state digest; survive crashes
    /// if `app_durable`.
    app_applied: LogIndex,
    app_digest: u64,
    /// The application's sessions, which go with `app_applied`.
    app_sessions: sessions::AppSessions,
    /// What its application answered the workload's session clients.
    session_replies: Vec<sessions::Observed>,
    sync_scheduled: bool,
    disk_slow_until: Instant,
    /// The node's file system, which outlives its crashes.
    fs: SimFs,
    /// Its log, while it runs.
    wal: Option<Wal<SimFs>>,
    /// Writes not synced when it last crashed, until it restarts.
    lost_writes: Vec<Persist>,
    probe_applied: bool,
    /// Its latest snapshot, durable (written and synced before the node
    /// hears of it, as the runtime does).
    snapshot: Option<Snapshot>,
    /// The incarnation of its storage now.
    incarnation: Incarnation,
    /// Whether the node bootstraps the cluster when it starts empty: the
    /// first nodes, in runs where they bootstrap together, or the first
    /// node alone while the others are still empty (the runtime's rule).
    /// Nodes added later, and nodes whose disk was wiped, never do.
    bootstraps: bool,
    /// What its next restart does to its disk first.
    disk_fault: Option<DiskFault>,
    /// Its log holds a rotten record: it must not open.
    rotten: bool,
    /// An older copy of its log, and the model of what it held then.
    backup: Option<Backup>,
    next_backup: Instant,
    /// Writes handed out by the core and not written yet: the disk had no
    /// room for the first (the runtime's log writer keeps them the same
    /// way, and tries again).
    queued: VecDeque<Persist>,
    /// The core was told its disk is full.
    disk_full: bool,
    retry_scheduled: bool,
    /// Syncs do not complete before this: the disk hangs.
    disk_hang_until: Instant,
    /// The application is slow until then: what it is handed waits.
    apply_slow_until: Instant,
    /// Handed to the application and not applied yet, in order.
    to_apply: VecDeque<ToApply>,
    apply_scheduled: bool,
}

/// Work the core hands the application.
enum ToApply {
    Entry(crate::types::Entry),
    Install(SnapshotMeta),
}

/// A fault a node's disk suffers while the node is down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DiskFault {
    /// The disk is replaced by an empty one.
    Wipe,
    /// The log is replaced by an older copy of itself.
    RestoreOldLog,
    /// A bit of a synced record rots, a whole record after it: recovery
    /// must refuse the log (then the disk is replaced, as an operator
    /// would), never cut it as a torn write.
    Rot,
}

/// A copy of a node's log files taken when all its writes were synced.
struct Backup {
    files: Vec<(std::path::PathBuf, Vec<u8>)>,
    disk: SimDisk,
}

const STEP_BUDGET: u64 = 20_000_000;
const DATA_DIR: &str = "/data";
const PROBE: &[u8] = b"liveness-probe";
/// How many nodes a run may add to the ones it starts with.
const MAX_ADDED_NODES: usize = 4;

struct World {
    opts: SimOptions,
    rng: Rng,
    now: Instant,
    /// Every node that was ever started, members or not.
    ids: Vec<NodeId>,
    nodes: BTreeMap<NodeId, SimNode>,
    template: Config,
    disks: BTreeMap<NodeId, SimDisk>,
    events: BTreeMap<(Instant, u64), Event>,
    event_seq: u64,
    network: Network,
    checker: Checker,
    app_durable: bool,
    wal_options: WalOptions,
    fault_end: Instant,
    healed: bool,
    next_payload: u64,
    next_read: u64,
    report: SimReport,
    fates: Vec<Duration>,
    /// The configuration the first nodes bootstrap with.
    bootstrap: Membership,
    /// Whether this run's disks fail: wiped, or their log set back.
    disk_faults: bool,
    /// Whether every first node bootstraps, rather than the first alone.
    bootstrap_all: bool,
    /// The session clients and their own random stream.
    clients: Vec<sessions::SimClient>,
    client_rng: Rng,
    /// A leader cut off with a minority, which gets most proposals.
    fed: Option<NodeId>,
    /// Whether delays are constant, network and disk alike: nothing but
    /// the nodes' own randomized timeouts breaks a symmetry.
    steady: bool,
}

impl World {
    fn new(opts: &SimOptions) -> World {
        let mut rng = Rng::new(opts.seed);
        let voters: Vec<NodeId> = (1..=opts.nodes as u64).map(NodeId).collect();
        #[allow(unused_mut)]
        let mut template = random_config(&mut rng);
        #[cfg(test)]
        {
            template.bugs = opts.bugs;
        }
        let app_durable = rng.chance(1, 2);
        let disk_faults = opts.disk_faults.unwrap_or_else(|| rng.chance(1, 2));
        let bootstrap_all = rng.chance(1, 2);
        let steady = rng.chance(1, 8);
        let incarnations: Vec<Incarnation> =
            voters.iter().map(|_| Incarnation(rng.next_u64().max(1))).collect();
        let bootstrap =
            Membership::with_identified_voters(voters.iter().copied().zip(incarnations.iter().copied()));
        let mut world = World {
            opts: opts.clone(),
            now: Instant::ZERO,
            ids: Vec::new(),
            nodes: BTreeMap::new(),
            template: template.clone(),
            disks: voters.iter().map(|&id| (id, SimDisk::default())).collect(),
            events: BTreeMap::new(),
            event_seq: 0,
            network: Network::healthy(steady),
            checker: Checker::default(),
            app_durable,
            // Small segments, so that runs rotate through many of them.
            wal_options: WalOptions { segment_size_bytes: 16 << 10 },
            fault_end: Instant::ZERO + opts.fault_time,
            healed: false,
            next_payload: 0,
            next_read: 0,
            report: SimReport { seed: opts.seed, ..SimReport::default() },
            fates: Vec::new(),
            rng,
            bootstrap,
            disk_faults,
            bootstrap_all,
            clients: sessions::new_clients(),
            client_rng: sessions::client_rng(opts.seed),
            fed: None,
            steady,
        };
        info!(
            target: "oar::sim",
            "seed {} nodes {} pre_vote {} check_quorum {} inflight {} msg_bytes {} app_durable {} disk_faults {} bootstrap_all {} steady {}",
            opts.seed,
            opts.nodes,
            template.pre_vote,
            template.check_quorum,
            template.inflight_messages_max,
            template.message_bytes_max,
            app_durable,
            disk_faults,
            bootstrap_all,
            steady
        );
        for (k, &id) in voters.iter().enumerate() {
            world.add_node(id, incarnations[k], bootstrap_all || k == 0);
        }
        world.schedule(Duration::from_millis(50), Event::Fault);
        world.schedule(Duration::from_millis(5), Event::Propose);
        world.schedule(Duration::from_millis(7), Event::Read);
        world
    }

    /// Creates node `id` with an empty disk of incarnation `incarnation`
    /// and starts it.
    fn add_node(&mut self, id: NodeId, incarnation: Incarnation, bootstraps: bool) {
        let mut config = self.template.clone();
        config.id = id;
        let fs = SimFs::new();
        new_disk(&fs, id, incarnation);
        let sim_node = SimNode {
            node: None,
            config,
            life: 0,
            app_applied: LogIndex(0),
            app_digest: APP_DIGEST_START,
            app_sessions: sessions::AppSessions::default(),
            session_replies: Vec::new(),
            sync_scheduled: false,
            disk_slow_until: Instant::ZERO,
            fs,
            wal: None,
            lost_writes: Vec::new(),
            probe_applied: false,
            snapshot: None,
            bootstraps,
            disk_fault: None,
            rotten: false,
            backup: None,
            next_backup: self.now,
            incarnation,
            queued: VecDeque::new(),
            disk_full: false,
            retry_scheduled: false,
            disk_hang_until: Instant::ZERO,
            apply_slow_until: Instant::ZERO,
            to_apply: VecDeque::new(),
            apply_scheduled: false,
        };
        self.ids.push(id);
        self.disks.insert(id, SimDisk::default());
        self.nodes.insert(id, sim_node);
        self.restart(id);
    }

    /// The nodes the cluster counts on: the members of the configuration of
    /// the node that knows the most committed entries.
    fn members(&self) -> Vec<NodeId> {
        // Nodes still waiting to learn the configuration know no members.
        let best = self
            .nodes
            .values()
            .filter_map(|n| n.node.as_ref())
            .filter(|n| n.membership().members().next().is_some())
            .max_by_key(|n| (n.commit_index(), n.term()));
        match best {
            Some(n) => n.membership().members().collect(),
            None => self.ids.clone(),
        }
    }

    fn schedule(&mut self, after: Duration, event: Event) {
        self.event_seq += 1;
        self.events.insert((self.now + after, self.event_seq), event);
    }

    fn run(mut self) -> SimReport {
        let deadline = self.fault_end + self.opts.liveness_time;
        while self.checker.violation.is_none() {
            if self.report.steps >= STEP_BUDGET {
                self.report.liveness_failure = Some(format!("step budget of {STEP_BUDGET} exhausted"));
                break;
            }
            if !self.healed && self.now >= self.fault_end {
                self.heal();
            }
            if self.healed && self.report.heal_to_leader.is_none() && self.newest_leader().is_some() {
                self.report.heal_to_leader = Some(self.now.saturating_duration_since(self.fault_end));
            }
            if self.healed && self.members().iter().all(|id| self.nodes[id].probe_applied) {
                self.report.heal_to_commit = Some(self.now.saturating_duration_since(self.fault_end));
                break;
            }
            let Some(next) = self.next_time() else { break };
            if next > deadline {
                self.now = deadline;
                let waiting: Vec<String> = self
                    .members()
                    .iter()
                    .filter(|id| !self.nodes[id].probe_applied)
                    .map(|id| id.to_string())
                    .collect();
                self.report.liveness_failure = Some(format!(
                    "no progress within {:?} after healing: {} never applied a fresh entry",
                    self.opts.liveness_time,
                    waiting.join(", ")
                ));
                break;
            }
            self.step();
        }
        if self.checker.violation.is_none() {
            self.check_sessions_applied();
        }
        for node in self.nodes.values().filter_map(|n| n.node.as_ref()) {
            self.report.coverage.add(&node.coverage());
        }
        self.report.session_commands = self.checker.sessions.commands_applied;
        self.report.session_retries_answered = self.checker.sessions.retries_answered;
        self.report.session_refusals = self.checker.sessions.refused;
        self.report.reads_checked = self.checker.reads_checked;
        self.report.violation = self.checker.violation.clone();
        self.report.committed = self.checker.committed_len();
        self.report.end = self.now;
        self.report.election_timeout = self.template.election_timeout_max;
        self.report
    }

    /// The time of the next event or node deadline.
    fn next_time(&self) -> Option<Instant> {
        let event = self.events.keys().next().map(|&(t, _)| t);
        let timer = self.nodes.values().filter_map(|n| n.node.as_ref()?.poll_timeout()).min();
        match (event, timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn step(&mut self) {
        self.report.steps += 1;
        let event_time = self.events.keys().next().map(|&(t, _)| t);
        let timer =
            self.nodes.iter().filter_map(|(&id, n)| Some((n.node.as_ref()?.poll_timeout()?, id))).min();
        if let Some((t, id)) = timer {
            if event_time.is_none_or(|e| t < e) {
                self.now = self.now.max(t);
                let now = self.now;
                if let Some(node) = self.nodes.get_mut(&id).and_then(|n| n.node.as_mut()) {
                    node.handle_timeout(now);
                }
                self.drain(id);
                return;
            }
        }
        let Some(((t, _), event)) = self.events.pop_first() else { return };
        self.now = self.now.max(t);
        match event {
            Event::Deliver(msg) => self.deliver(msg),
            Event::Sync(id, life) => self.sync(id, life),
            Event::Restart(id) => {
                if self.nodes[&id].node.is_none() {
                    self.restart(id);
                }
            }
            Event::Fault => {
                if !self.healed {
                    self.inject_fault();
                    let next = Duration::from_millis(self.rng.range(100, 1500));
                    self.schedule(next, Event::Fault);
                }
            }
            Event::Propose => {
                if !self.healed {
                    self.propose_random();
                    self.session_step();
                    let next = Duration::from_millis(self.rng.range(2, 40));
                    self.schedule(next, Event::Propose);
                }
            }
            Event::Read => {
                if !self.healed {
                    self.read_random();
                    let next = Duration::from_millis(self.rng.range(2, 40));
                    self.schedule(next, Event::Read);
                }
            }
            Event::LivenessProbe => {
                // Operators re-admit voters that lost their disk.
                self.readmit_refused();
                self.propose_probe();
                self.schedule(Duration::from_millis(100), Event::LivenessProbe);
            }
            Event::SnapshotArrives { from, to, term, snapshot } => {
                self.snapshot_arrives(from, to, term, snapshot)
            }
            Event::RetryWrites(id, life) => {
                let sim = self.nodes.get_mut(&id).expect("known node");
                if sim.life == life {
                    sim.retry_scheduled = false;
                    self.drain(id);
                }
            }
            Event::ApplyLater(id, life) => {
                let World { nodes, checker, report, .. } = self;
                let sim = nodes.get_mut(&id).expect("known node");
                if sim.life == life {
                    sim.apply_scheduled = false;
                    // A slow application gets through a few at a time.
                    for _ in 0..4 {
                        let Some(item) = sim.to_apply.pop_front() else { break };
                        sim.apply(id, checker, report, item);
                    }
                    self.drain(id);
                }
            }
            Event::DiskSpace(id) => {
                let now = self.now;
                info!(target: "oar::sim", "{now} {id}'s disk has room again");
                self.nodes[&id].fs.set_capacity_bytes(None);
                self.drain(id);
            }
            Event::SnapshotLost { from, to } => {
                let now = self.now;
                if let Some(node) = self.nodes.get_mut(&from).and_then(|n| n.node.as_mut()) {
                    debug!(target: "oar::sim", "{now} snapshot {from}->{to} lost");
                    node.handle_snapshot_failed(to);
                    self.drain(from);
                }
            }
        }
    }

    fn deliver(&mut self, msg: Message) {
        let (from, to) = (msg.from, msg.to);
        if !self.network.can_send(from, to) {
            return;
        }
        let now = self.now;
        let Some(node) = self.nodes.get_mut(&to).and_then(|n| n.node.as_mut()) else { return };
        debug!(target: "oar::sim", "{now} {from}->{to} {} {}: {:?}", msg.body.name(), msg.term, msg.body);
        node.handle_message(now, msg);
        self.drain(to);
    }

    fn sync(&mut self, id: NodeId, life: u64) {
        let now = self.now;
        let sim = self.nodes.get_mut(&id).expect("known node");
        if sim.life != life || sim.node.is_none() {
            return;
        }
        sim.sync_scheduled = false;
        if let Err(e) = sim.wal.as_mut().expect("an alive node has its log open").sync() {
            self.checker.fail("storage", format!("{id}: sync failed: {e}"));
            return;
        }
        let disk = self.disks.get_mut(&id).expect("disk");
        if let Some(last) = disk.sync() {
            sim.node.as_mut().expect("alive").handle_persisted(now, last);
        }
        // Everything is synced: a consistent copy of the log can be taken,
        // for a later fault to restore.
        if self.disk_faults && now >= sim.next_backup {
            sim.next_backup = now + Duration::from_millis(self.rng.range(100, 3000));
            let files = sim
                .fs
                .durable_paths()
                .into_iter()
                .filter(|p| is_log_file(p))
                .filter_map(|p| Some((p.clone(), sim.fs.durable_contents(&p)?)))
                .collect();
            sim.backup = Some(Backup { files, disk: disk.clone() });
        }
        self.drain(id);
    }

    /// Drains a node's outputs after an input, checking each against the
    /// safety properties.
    fn drain(&mut self, id: NodeId) {
        let now = self.now;
        let World { nodes, disks, checker, network, rng, events, event_seq, report, fates, steady, .. } =
            self;
        let sim = nodes.get_mut(&id).expect("known node");
        if sim.node.is_none() {
            return;
        }
        let mut take_due = Vec::new();
        let mut schedule = |after: Duration, event: Event| {
            *event_seq += 1;
            events.insert((now + after, *event_seq), event);
        };
        loop {
            let mut progressed = false;
            let node = sim.node.as_mut().expect("alive");
            while let Some(p) = node.poll_persist() {
                progressed = true;
                checker.on_write(node, &p.entries);
                sim.queued.push_back(p);
            }
            // Written in order, as the runtime's log writer does: a write
            // the disk has no room for waits, with every later one.
            while let Some(p) = sim.queued.front() {
                let wal = sim.wal.as_mut().expect("an alive node has its log open");
                let mut result = Ok(());
                if let Some(s) = &p.snapshot {
                    result = continue_snapshot(wal, s);
                }
                if result.is_ok() {
                    result = wal.write(&p.entries, p.hard_state);
                }
                match result {
                    Ok(()) => {}
                    Err(crate::storage::StorageError::OutOfSpace { .. }) => {
                        if !sim.disk_full {
                            debug!(target: "oar::sim", "{now} {id}'s disk is full");
                            sim.disk_full = true;
                            node.handle_disk_full(now, true);
                        }
                        if !sim.retry_scheduled {
                            sim.retry_scheduled = true;
                            schedule(Duration::from_millis(200), Event::RetryWrites(id, sim.life));
                        }
                        break;
                    }
                    Err(e) => {
                        checker.fail("storage", format!("{id}: write failed: {e}"));
                        break;
                    }
                }
                let p = sim.queued.pop_front().expect("front exists");
                let persist_id = p.id;
                let disk = disks.get_mut(&id).expect("disk");
                disk.write(p);
                // The one write a node may report before it is synced, as
                // the runtime's log writer does: a commit index, after
                // every earlier write is synced (or is such a write too).
                if disk.pending_only_commits() {
                    node.handle_persisted(now, persist_id);
                }
            }
            if sim.disk_full && sim.queued.is_empty() {
                sim.disk_full = false;
                node.handle_disk_full(now, false);
            }
            if disks[&id].has_pending() && !sim.sync_scheduled {
                sim.sync_scheduled = true;
                let latency = if now < sim.disk_hang_until {
                    sim.disk_hang_until.saturating_duration_since(now)
                        + Duration::from_millis(rng.range(1, 50))
                } else if now < sim.disk_slow_until {
                    Duration::from_millis(rng.range(50, 800))
                } else if *steady {
                    Duration::from_millis(1)
                } else {
                    Duration::from_micros(rng.range(50, 2000))
                };
                schedule(latency, Event::Sync(id, sim.life));
            }
            while let Some(msg) = node.poll_send() {
                progressed = true;
                let snapshot = sim.snapshot.as_ref().map_or(LogIndex(0), |s| s.meta.index);
                checker.on_send(node, &disks[&id], snapshot, &msg);
                report.messages += 1;
                if !network.can_send(msg.from, msg.to) {
                    continue;
                }
                network.fate(rng, fates);
                for &delay in fates.iter() {
                    schedule(delay, Event::Deliver(msg.clone()));
                }
            }
            // Commit first, so that what is applied next is known committed.
            checker.after_step(node, disks);
            while let Some(action) = node.poll_snapshot() {
                progressed = true;
                match action {
                    SnapshotAction::Take { .. } => take_due.push(id),
                    SnapshotAction::Send { to, meta } => {
                        // A newer snapshot stored meanwhile serves as well, as
                        // in the runtime.
                        let stored = sim.snapshot.as_ref().filter(|s| s.meta.index > meta.index);
                        let meta = stored.map_or(meta, |s| s.meta.clone());
                        let Some(snapshot) = held(checker, &sim.snapshot, &meta, "sends") else { continue };
                        // Snapshots are big: slower than a message, and lost
                        // like one.
                        let delay = Duration::from_millis(rng.range(5, 200));
                        if network.can_send(id, to) && !rng.chance(network.drop_percent, 100) {
                            schedule(
                                delay,
                                Event::SnapshotArrives { from: id, to, term: node.term(), snapshot },
                            );
                        } else {
                            schedule(delay, Event::SnapshotLost { from: id, to });
                        }
                    }
                    SnapshotAction::Install { meta } => sim.to_apply.push_back(ToApply::Install(meta)),
                }
            }
            while let Some(entry) = node.poll_apply() {
                progressed = true;
                sim.to_apply.push_back(ToApply::Entry(entry));
            }
            // A slow application gets to it later; a quick one at once.
            if now < sim.apply_slow_until {
                if !sim.to_apply.is_empty() && !sim.apply_scheduled {
                    sim.apply_scheduled = true;
                    schedule(Duration::from_millis(rng.range(5, 100)), Event::ApplyLater(id, sim.life));
                }
            } else {
                while let Some(item) = sim.to_apply.pop_front() {
                    sim.apply(id, checker, report, item);
                }
            }
            let node = sim.node.as_mut().expect("alive");
            while let Some(ready) = node.poll_read_ready() {
                progressed = true;
                debug!(target: "oar::sim", "{now} {id} read {} ready: {:?}", ready.ctx, ready.result);
                checker.on_read_ready(id, &ready, sim.app_applied, sim.app_digest);
            }
            while let Some(event) = node.poll_event() {
                debug!(target: "oar::sim", "{now} {id} event {event:?}");
            }
            if !progressed {
                break;
            }
        }
        // The loop's last pass changed nothing, so its `after_step` saw the
        // final state.
        sim.node.as_ref().expect("alive").check_invariants();
        let leaders = nodes.values().filter_map(|n| n.node.as_ref()).filter(|n| n.role() == Role::Leader);
        checker.check_leaders_hold_new_commits(leaders);
        if !take_due.is_empty() {
            self.take_snapshot(id);
            self.drain(id);
        }
    }
}
