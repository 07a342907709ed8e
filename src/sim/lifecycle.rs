//! A simulated node's life: crashes, disk faults, and restarts that
//! recover through the real storage code and are checked against what the
//! disk held.

use super::*;

impl World {
    /// A snapshot reaches `to` whole: its runtime stores it durably, tells
    /// the core it was received from the leader `from` of `term`, and tells
    /// the leader it arrived.
    pub(super) fn snapshot_arrives(
        &mut self,
        from: NodeId,
        to: NodeId,
        term: crate::types::Term,
        snapshot: Snapshot,
    ) {
        let now = self.now;
        let down = self.nodes.get(&to).is_none_or(|n| n.node.is_none());
        if down || !self.network.can_send(from, to) {
            if let Some(node) = self.nodes.get_mut(&from).and_then(|n| n.node.as_mut()) {
                node.handle_snapshot_failed(to);
                self.drain(from);
            }
            return;
        }
        let Some(sim) = self.nodes.get_mut(&to).filter(|n| n.node.is_some()) else { return };
        debug!(target: "oar::sim", "{now} snapshot {} {from}->{to} arrives", snapshot.meta.index);
        // As the store does: a snapshot older than the one stored (received
        // earlier, not installed since its leader's term was over) is
        // discarded, and the core is told of the stored one, which serves
        // as well (it too holds only committed entries).
        if sim.snapshot.as_ref().is_none_or(|s| s.meta.index < snapshot.meta.index) {
            sim.snapshot = Some(snapshot);
        }
        let meta = sim.snapshot.as_ref().expect("stored above").meta.clone();
        sim.node.as_mut().expect("alive").handle_snapshot_received(now, from, term, meta);
        self.drain(to);
        if let Some(node) = self.nodes.get_mut(&from).and_then(|n| n.node.as_mut()) {
            node.handle_snapshot_sent(to);
            self.drain(from);
        }
    }

    /// Node `id` writes a snapshot of its application's state, as its
    /// runtime would on `SnapshotAction::Take`, and compacts its log.
    pub(super) fn take_snapshot(&mut self, id: NodeId) {
        let World { nodes, checker, report, .. } = self;
        let sim = nodes.get_mut(&id).expect("known node");
        let Some(node) = sim.node.as_mut() else { return };
        let index = sim.app_applied;
        if index == LogIndex(0) {
            return;
        }
        if let Some(stored) = sim.snapshot.as_ref().filter(|s| s.meta.index >= index) {
            // One as new is stored already (received, though the core may
            // not have installed it): report that one, as the runtime does.
            node.handle_snapshot_taken(stored.meta.clone());
            let first = node.first_index();
            if let Err(e) = sim.wal.as_mut().expect("an alive node has its log open").compact_prefix(first) {
                checker.fail("storage", format!("{id}: compaction failed: {e}"));
            }
            return;
        }
        let Some(term) = node.term_at(index) else { return };
        let meta = SnapshotMeta { index, term, membership: node.membership_at(index).clone() };
        checker.on_snapshot(id, &meta, sim.app_digest);
        let sessions = sim.app_sessions.snapshot();
        sim.snapshot = Some(Snapshot { meta: meta.clone(), digest: sim.app_digest, sessions });
        report.snapshots_taken += 1;
        node.handle_snapshot_taken(meta);
        let first = node.first_index();
        if let Err(e) = sim.wal.as_mut().expect("an alive node has its log open").compact_prefix(first) {
            checker.fail("storage", format!("{id}: compaction failed: {e}"));
        }
    }

    /// Starts a node from what its storage recovers, checking that recovery
    /// kept every synced write and invented nothing. A disk fault decided
    /// while the node was down strikes first.
    pub(super) fn restart(&mut self, id: NodeId) {
        let now = self.now;
        self.strike_disk(id);
        let sim = self.nodes.get_mut(&id).expect("known node");
        sim.life += 1;
        sim.sync_scheduled = false;
        sim.config.seed = self.opts.seed ^ (id.0 << 48) ^ (sim.life << 32);
        let identity = match read_identity(&sim.fs, std::path::Path::new(DATA_DIR)) {
            Ok(Some(identity)) => identity,
            other => {
                self.checker.fail("recovery", format!("{id}: no identity: {other:?}"));
                return;
            }
        };
        let (mut wal, mut recovered) = match Wal::open_with(sim.fs.clone(), DATA_DIR, self.wal_options) {
            Ok(opened) => opened,
            Err(e) if sim.rotten => {
                // As it must: the operator replaces the disk.
                info!(target: "oar::sim", "{now} {id} refuses its rotten log ({e}); its disk is replaced");
                sim.rotten = false;
                sim.disk_fault = Some(DiskFault::Wipe);
                self.report.rot_refused += 1;
                return self.restart(id);
            }
            Err(e) => {
                self.checker.fail("recovery", format!("{id}: the log does not open: {e}"));
                return;
            }
        };
        sim.rotten = false;
        // The floor beside the log follows it at every sync: recovery then
        // sees any loss of synced entries (the runtime raises it every
        // tenth of a second instead; see `core::identity`).
        wal.set_floor_step(1);
        // As the runtime's start does: hold the log to the floor kept beside
        // it, then continue the durable snapshot.
        let snapshot = sim.snapshot.as_ref().map(|s| s.meta.clone());
        let floor = wal.floor();
        let snapshot_at = snapshot.as_ref().map_or((LogIndex(0), Term(0)), |s| (s.index, s.term));
        debug!(target: "oar::sim", "{now} {id} recovers: log to {}, floor {floor:?}", wal.last_index());
        // (On a copy: the model checks what storage recovered, before.)
        let mut hard_state = recovered.hard_state;
        let repair_to =
            reconcile_floor(Path::new(DATA_DIR), floor, &mut hard_state, snapshot_at, |i| wal.term(i));
        if let Some(s) = &snapshot {
            if wal.term(s.index) != Some(s.term) {
                recovered.entries.clear();
            }
            recovered.entries.retain(|e| e.index > s.index);
            match continue_snapshot(&mut wal, s) {
                Ok(()) => {}
                // As the runtime's start does on a full disk: fail, and be
                // started again once there is room.
                Err(crate::storage::StorageError::OutOfSpace { .. }) => {
                    info!(target: "oar::sim", "{now} {id} cannot start on a full disk; retrying");
                    self.schedule(Duration::from_millis(500), Event::Restart(id));
                    return;
                }
                Err(e) => {
                    self.checker.fail("recovery", format!("{id}: continuing snapshot {}: {e}", s.index));
                    return;
                }
            }
            if repair_to > LogIndex(0) {
                if let Err(e) = wal.keep_floor(floor) {
                    self.checker.fail("recovery", format!("{id}: keeping the floor: {e}"));
                    return;
                }
            }
        } else if recovered.first_index != LogIndex(1) {
            let first = recovered.first_index;
            self.checker.fail("recovery", format!("{id}: the log starts at {first} without a snapshot"));
            return;
        }
        let base = snapshot.as_ref().map(|s| (s.index, s.term));
        let disk = self.disks.get_mut(&id).expect("disk");
        let lost = std::mem::take(&mut sim.lost_writes);
        if !disk.explains(&lost, base, recovered.hard_state, &recovered.entries) {
            self.checker.fail(
                "recovery",
                format!(
                    "{id}: recovered {} entries and {:?}, which is not the synced state ({} entries, {:?}) plus a prefix of the {} unsynced writes",
                    recovered.entries.len(),
                    recovered.hard_state,
                    disk.entries.len(),
                    disk.hard_state,
                    lost.len()
                ),
            );
            return;
        }
        disk.reset(recovered.hard_state, base.unwrap_or_default(), recovered.entries.clone());
        sim.wal = Some(wal);
        let state = RecoveredState {
            snapshot,
            hard_state,
            entries: recovered.entries,
            applied: sim.app_applied,
            incarnation: identity.incarnation,
            repair_to,
        };
        let mut node = match Node::with_membership(sim.config.clone(), Membership::default(), state, now) {
            Ok(node) => node,
            Err(e) => {
                self.checker.violation =
                    Some(Violation { property: "recovery", detail: format!("{id}: {e}") });
                return;
            }
        };
        // A node bootstraps when it starts empty: in runs where the first
        // nodes bootstrap together, always (they all write the same
        // configuration); otherwise only the first node, and only while
        // every other node is still empty (the runtime's rule).
        let empty = node.last_index() == LogIndex(0) && node.term() == Term(0);
        let alone = self.bootstrap_all || self.ids.iter().all(|&o| o == id || self.is_empty_node(o));
        let sim = self.nodes.get_mut(&id).expect("known node");
        if sim.bootstraps && empty && alone {
            if let Err(e) = node.bootstrap(now, self.bootstrap.clone()) {
                self.checker.fail("bootstrap", format!("{id} could not bootstrap: {e}"));
            }
        }
        sim.node = Some(node);
        info!(target: "oar::sim", "{now} {id} starts (life {}, incarnation {})", sim.life, identity.incarnation);
        self.checker.on_restart(id, sim.life);
        self.drain(id);
    }

    /// Whether node `id` has nothing yet: no term, no entry, durably or not.
    pub(super) fn is_empty_node(&self, id: NodeId) -> bool {
        let disk = &self.disks[&id];
        let running_empty = self.nodes[&id]
            .node
            .as_ref()
            .is_none_or(|n| n.term() == Term(0) && n.last_index() == LogIndex(0));
        running_empty && disk.entries.is_empty() && disk.hard_state.term == Term(0) && !disk.has_pending()
    }

    /// Applies the disk fault decided for `id` while it was down, if any.
    pub(super) fn strike_disk(&mut self, id: NodeId) {
        let sim = self.nodes.get_mut(&id).expect("known node");
        let Some(fault) = sim.disk_fault.take() else { return };
        let disk = self.disks.get_mut(&id).expect("disk");
        let now = self.now;
        match fault {
            DiskFault::Wipe => {
                let incarnation = Incarnation(self.rng.next_u64().max(1));
                info!(target: "oar::sim", "{now} {id}'s disk is replaced by an empty one (incarnation {incarnation})");
                sim.fs = SimFs::new();
                new_disk(&sim.fs, id, incarnation);
                sim.incarnation = incarnation;
                disk.lose_everything();
                sim.snapshot = None;
                sim.bootstraps = false;
                sim.backup = None;
                self.report.disk_wipes += 1;
            }
            DiskFault::Rot => {
                if let Some((path, at)) = rot_target(&sim.fs, &mut self.rng) {
                    let bit = 1 << self.rng.below(8);
                    info!(target: "oar::sim", "{now} {id}'s log rots: {} byte {at}", path.display());
                    sim.fs.flip_bits(&path, at as u64, bit);
                    sim.rotten = true;
                }
            }
            DiskFault::RestoreOldLog => {
                let Some(backup) = sim.backup.take() else { return };
                info!(target: "oar::sim", "{now} {id}'s log is set back to an older copy ({} entries)", backup.disk.entries.len());
                for path in sim.fs.durable_paths().into_iter().filter(|p| is_log_file(p)) {
                    sim.fs.remove_durable(&path);
                }
                for (path, bytes) in &backup.files {
                    sim.fs.write_durable(path, bytes);
                }
                disk.set_back_to(backup.disk);
                self.report.lost_tails += 1;
            }
        }
        // The application's state went with the disk, or is ahead of the
        // log now: it starts over from the snapshot.
        sim.app_applied = LogIndex(0);
        sim.app_digest = APP_DIGEST_START;
        sim.app_sessions = sessions::AppSessions::default();
        sim.lost_writes.clear();
    }

    pub(super) fn crash(&mut self, id: NodeId) {
        let sim = self.nodes.get_mut(&id).expect("known node");
        let Some(node) = sim.node.take() else { return };
        self.report.coverage.add(&node.coverage());
        sim.life += 1;
        sim.sync_scheduled = false;
        // Writes never written and work never applied die with the process.
        sim.queued.clear();
        sim.disk_full = false;
        sim.retry_scheduled = false;
        sim.to_apply.clear();
        sim.apply_scheduled = false;
        if !self.app_durable {
            sim.app_applied = LogIndex(0);
            sim.app_digest = APP_DIGEST_START;
            sim.app_sessions = sessions::AppSessions::default();
        }
        // The process dies first (its log and lock with it), then the power.
        sim.wal = None;
        sim.fs.crash(&mut self.rng);
        sim.lost_writes = self.disks.get_mut(&id).expect("disk").crash();
        self.report.crashes += 1;
        info!(target: "oar::sim", "{} {id} crashes with {} unsynced writes", self.now, sim.lost_writes.len());
        let downtime = Duration::from_millis(self.rng.range(10, 3000));
        self.schedule(downtime, Event::Restart(id));
    }
}

/// Makes `wal` continue the snapshot `s`: keep what follows it if the log
/// holds its last entry, else start the log over after it.
pub(super) fn continue_snapshot(
    wal: &mut Wal<SimFs>,
    s: &SnapshotMeta,
) -> Result<(), crate::storage::StorageError> {
    if wal.term(s.index) == Some(s.term) {
        wal.compact_prefix(s.index).map(drop)
    } else {
        wal.reset(s.index, s.term)
    }
}

/// Gives a new data directory on `fs` its identity: node `id`,
/// `incarnation`.
pub(super) fn new_disk(fs: &SimFs, id: NodeId, incarnation: Incarnation) {
    let dir = std::path::Path::new(DATA_DIR);
    fs.create_dir_all(dir).expect("the simulated disk has room");
    let identity = Identity { node_id: id, incarnation, cluster_id: "sim".to_string() };
    write_identity(fs, dir, &identity).expect("the simulated disk has room");
}

/// Whether `path` is part of the log (a segment, or one being made), as
/// opposed to the identity, the commit floor or the lock.
/// A byte inside a synced record of some log segment with a whole record
/// after it (so that no recovery may take the damage for a torn write).
fn rot_target(fs: &SimFs, rng: &mut Rng) -> Option<(std::path::PathBuf, usize)> {
    use crate::storage::format::{decode_record, SEGMENT_HEADER_BYTES};
    let mut candidates = Vec::new();
    for path in fs.durable_paths().into_iter().filter(|p| is_log_file(p)) {
        let Some(bytes) = fs.durable_contents(&path) else { continue };
        let mut offset = SEGMENT_HEADER_BYTES;
        let mut records = Vec::new();
        while let Some(Ok((_, len))) = bytes.get(offset..).map(decode_record) {
            records.push((offset, len));
            offset += len;
        }
        // Every record but the last has a whole one after it.
        records.pop();
        candidates.extend(records.into_iter().map(|r| (path.clone(), r)));
    }
    if candidates.is_empty() {
        return None;
    }
    let (path, (start, len)) = candidates.swap_remove(rng.below(candidates.len() as u64) as usize);
    Some((path, start + rng.below(len as u64) as usize))
}

pub(super) fn is_log_file(path: &std::path::Path) -> bool {
    path.parent() == Some(std::path::Path::new(DATA_DIR))
        && path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.contains(".wal"))
}
