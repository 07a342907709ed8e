//! What the simulated world does to the cluster: the faults it injects,
//! the client workload (proposals, reads, leadership transfers, membership
//! changes), the healing at the end of the fault phase, and the random
//! configuration of each run.

use std::time::Duration;

use ::log::{debug, info};

use super::{DiskFault, Event, World, MAX_ADDED_NODES, PROBE};
use crate::config::Config;
use crate::core::{ProposeError, Role};
use crate::membership::MembershipChange;
use crate::rng::Rng;
use crate::sim::network::Network;
use crate::types::{Bytes, NodeId};

impl World {
    fn random_node(&mut self) -> NodeId {
        self.ids[self.rng.below(self.ids.len() as u64) as usize]
    }

    /// Two random groups covering every node, the first nonempty.
    fn random_split(&mut self) -> (Vec<NodeId>, Vec<NodeId>) {
        let mut a = Vec::new();
        let mut b = Vec::new();
        for &id in &self.ids {
            if self.rng.chance(1, 2) {
                a.push(id);
            } else {
                b.push(id);
            }
        }
        if a.is_empty() {
            a.push(b.pop().expect("some node"));
        }
        (a, b)
    }

    pub(super) fn inject_fault(&mut self) {
        let now = self.now;
        let kinds = if self.disk_faults { 18 } else { 15 };
        match self.rng.below(kinds) {
            14 => self.cut_off_leader(),
            15 if self.rng.chance(1, 3) => self.disk_fault(DiskFault::Rot),
            15 => self.disk_fault(DiskFault::Wipe),
            16 => self.disk_fault(DiskFault::RestoreOldLog),
            17 => {
                // The disk fills up: writes that need room wait until it
                // is freed.
                let id = self.random_node();
                let sim = &self.nodes[&id];
                let used = sim.fs.used_bytes();
                sim.fs.set_capacity_bytes(Some(used));
                let until = Duration::from_millis(self.rng.range(300, 4000));
                info!(target: "oar::sim", "{now} {id}'s disk is full for {until:?}");
                self.report.disk_full_faults += 1;
                self.schedule(until, Event::DiskSpace(id));
            }
            10 => self.transfer_random(),
            11 | 12 => self.change_membership_random(),
            13 => {
                let id = self.random_node();
                self.take_snapshot(id);
                self.drain(id);
            }
            0 => {
                let id = self.random_node();
                self.crash(id);
            }
            1 => {
                let leader = self
                    .nodes
                    .iter()
                    .find(|(_, n)| n.node.as_ref().is_some_and(|n| n.role() == Role::Leader));
                if let Some((&id, _)) = leader {
                    self.crash(id);
                }
            }
            2 => {
                let (a, b) = self.random_split();
                info!(target: "oar::sim", "{now} partition {a:?} | {b:?}");
                self.network.split(&a, &b);
            }
            3 => {
                let (a, b) = self.random_split();
                info!(target: "oar::sim", "{now} one-way cut {a:?} -> {b:?}");
                self.network.cut_one_way(&a, &b);
            }
            4 => {
                let bridge = self.random_node();
                let others: Vec<NodeId> = self.ids.iter().copied().filter(|&id| id != bridge).collect();
                let half = others.len() / 2;
                info!(target: "oar::sim", "{now} bridge {bridge} between {:?} and {:?}", &others[..half], &others[half..]);
                self.network.cut.clear();
                self.network.split(&others[..half], &others[half..]);
            }
            5 => {
                let id = self.random_node();
                let others: Vec<NodeId> = self.ids.iter().copied().filter(|&o| o != id).collect();
                info!(target: "oar::sim", "{now} isolate {id}");
                self.network.split(&[id], &others);
            }
            6 | 7 => {
                info!(target: "oar::sim", "{now} network heals");
                self.network.cut.clear();
                self.fed = None;
            }
            8 => {
                self.network.drop_percent = self.rng.below(25);
                self.network.duplicate_percent = self.rng.below(10);
                self.network.long_delay_percent = self.rng.below(10);
                info!(
                    target: "oar::sim",
                    "{now} links: drop {}% duplicate {}% long delays {}%",
                    self.network.drop_percent,
                    self.network.duplicate_percent,
                    self.network.long_delay_percent
                );
            }
            _ => {
                let id = self.random_node();
                let sim = self.nodes.get_mut(&id).expect("known");
                match self.rng.below(4) {
                    0 => {
                        let until = now + Duration::from_millis(self.rng.range(1000, 5000));
                        info!(target: "oar::sim", "{now} disk of {id} hangs until {until}");
                        sim.disk_hang_until = until;
                        self.report.disk_hangs += 1;
                    }
                    1 => {
                        let until = now + Duration::from_millis(self.rng.range(200, 3000));
                        info!(target: "oar::sim", "{now} application of {id} slow until {until}");
                        sim.apply_slow_until = until;
                    }
                    _ => {
                        let until = now + Duration::from_millis(self.rng.range(100, 2000));
                        info!(target: "oar::sim", "{now} disk of {id} slow until {until}");
                        sim.disk_slow_until = until;
                    }
                }
            }
        }
    }

    /// Crashes a random voter and has its disk fail while it is down, if
    /// the cluster can afford it: Raft survives a minority of voters
    /// without their storage, no more. A voter counts as without it from
    /// the fault until it is re-admitted (a wiped disk) or its log is
    /// repaired (a log set back).
    fn disk_fault(&mut self, fault: DiskFault) {
        let now = self.now;
        let Some(leader) = self.newest_leader() else { return };
        let leader_node = self.nodes[&leader].node.as_ref().expect("a leader is alive");
        // Before its configuration is committed, a cluster may be held by
        // one node alone (the bootstrapping one, at first): losing that disk
        // loses the cluster, and only an operator bootstrapping it again
        // could bring it back, which no fault here models.
        if !leader_node.membership_committed() {
            return;
        }
        let m = leader_node.membership().clone();
        if m.is_joint() {
            return;
        }
        // Without its storage: from the fault until the disk holds again
        // what it lost, and the configuration admits its new incarnation.
        let faulted = m.voters.iter().filter(|&&id| self.without_storage(id, &m)).count();
        if faulted + 1 > (m.voters.len() - 1) / 2 {
            return;
        }
        let voters: Vec<NodeId> = m.voters.iter().copied().collect();
        let id = voters[self.rng.below(voters.len() as u64) as usize];
        if fault == DiskFault::RestoreOldLog && self.nodes[&id].backup.is_none() {
            return;
        }
        info!(target: "oar::sim", "{now} {id} will lose its disk: {fault:?}");
        self.crash(id);
        self.nodes.get_mut(&id).expect("known").disk_fault = Some(fault);
    }

    /// Whether voter `id` of `m` is without its storage: from a disk fault
    /// until the disk holds again what it lost and `m` admits its new
    /// incarnation.
    fn without_storage(&self, id: NodeId, m: &crate::membership::Membership) -> bool {
        let n = &self.nodes[&id];
        let admitted = m.incarnation(id);
        n.disk_fault.is_some()
            || self.disks[&id].has_ghost()
            || (admitted != crate::types::Incarnation::UNKNOWN && admitted != n.incarnation)
    }

    pub(super) fn heal(&mut self) {
        info!(target: "oar::sim", "{} fault phase over: healing everything", self.now);
        self.healed = true;
        self.network = Network::healthy(self.steady);
        self.fed = None;
        let now = self.now;
        for sim in self.nodes.values_mut() {
            sim.disk_slow_until = now;
            sim.disk_hang_until = now;
            sim.apply_slow_until = now;
            sim.fs.set_capacity_bytes(None);
        }
        // What waited for room or for a slow application goes on.
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.drain(id);
        }
        let crashed: Vec<NodeId> =
            self.nodes.iter().filter(|(_, n)| n.node.is_none()).map(|(&id, _)| id).collect();
        for id in crashed {
            self.restart(id);
        }
        for sim in self.nodes.values_mut() {
            sim.probe_applied = false;
        }
        self.schedule(Duration::ZERO, Event::LivenessProbe);
    }

    /// Cuts the leader off with a minority of the nodes, and sends it most
    /// proposals until the network heals: it (and its minority) builds a
    /// long suffix the majority's next leader will not have, which it must
    /// discard when it rejoins, never commit.
    fn cut_off_leader(&mut self) {
        let Some(leader) = self.newest_leader() else { return };
        let mut others: Vec<NodeId> = self.ids.iter().copied().filter(|&id| id != leader).collect();
        let keep = (self.ids.len() - 1) / 2;
        let mut minority = vec![leader];
        for _ in 0..keep.saturating_sub(1) {
            let k = self.rng.below(others.len() as u64) as usize;
            minority.push(others.swap_remove(k));
        }
        info!(target: "oar::sim", "{} cut off the leader with {minority:?} and feed it proposals", self.now);
        self.network.cut.clear();
        self.network.split(&minority, &others);
        self.fed = Some(leader);
    }

    pub(super) fn propose_random(&mut self) {
        let id = match self.fed {
            Some(fed) if self.rng.chance(3, 4) => fed,
            _ => self.random_node(),
        };
        self.next_payload += 1;
        let mut data = self.next_payload.to_le_bytes().to_vec();
        let extra = if self.rng.chance(1, 100) { self.rng.range(2000, 8000) } else { self.rng.below(48) };
        data.extend((0..extra).map(|_| self.rng.below(256) as u8));
        self.propose_at(id, Bytes::from(data), true);
    }

    pub(super) fn read_random(&mut self) {
        let id = self.random_node();
        let now = self.now;
        let Some(node) = self.nodes.get_mut(&id).and_then(|n| n.node.as_mut()) else { return };
        self.next_read += 1;
        let ctx = self.next_read;
        self.checker.on_read_invoked(id, ctx);
        match node.read_index(now, ctx) {
            Ok(()) => self.drain(id),
            Err(e) => {
                self.checker.on_read_refused(id, ctx);
                debug!(target: "oar::sim", "{now} {id} refused read {ctx}: {e}");
            }
        }
    }

    fn transfer_random(&mut self) {
        let now = self.now;
        let to = self.random_node();
        let leader = self
            .nodes
            .iter_mut()
            .filter_map(|(&id, n)| Some((id, n.node.as_mut()?)))
            .find(|(_, n)| n.role() == Role::Leader);
        let Some((id, node)) = leader else { return };
        match node.transfer_leadership(now, to) {
            Ok(()) => {
                info!(target: "oar::sim", "{now} {id} transfers leadership to {to}");
                self.report.transfers += 1;
                self.drain(id);
            }
            Err(e) => debug!(target: "oar::sim", "{now} {id} refused to transfer to {to}: {e}"),
        }
    }

    /// Has the leader of the highest term add a node (a new one, started
    /// empty and waiting to be added), promote a learner, remove a member, or
    /// replace a voter by a learner.
    fn change_membership_random(&mut self) {
        let now = self.now;
        let Some(leader) = self.newest_leader() else { return };
        let m = self.nodes[&leader].node.as_ref().expect("a leader is alive").membership().clone();
        let pick = |rng: &mut Rng, set: &std::collections::BTreeSet<NodeId>| {
            let v: Vec<NodeId> = set.iter().copied().collect();
            (!v.is_empty()).then(|| v[rng.below(v.len() as u64) as usize])
        };
        if self.rng.chance(2, 3) && self.readmit_refused() {
            return;
        }
        let change = match self.rng.below(4) {
            0 => {
                if self.ids.len() >= self.opts.nodes + MAX_ADDED_NODES {
                    return;
                }
                let id = NodeId(self.ids.iter().map(|id| id.0).max().unwrap_or(0) + 1);
                let incarnation = crate::types::Incarnation(self.rng.next_u64().max(1));
                self.add_node(id, incarnation, false);
                MembershipChange::AddLearner { id, address: format!("sim-{id}") }
            }
            1 => match pick(&mut self.rng, &m.learners) {
                Some(id) => MembershipChange::Promote { id },
                None => return,
            },
            2 => {
                let id = if m.voters.len() > 2 && self.rng.chance(2, 3) {
                    pick(&mut self.rng, &m.voters)
                } else {
                    pick(&mut self.rng, &m.learners)
                };
                match id {
                    Some(id) => MembershipChange::Remove { id },
                    None => return,
                }
            }
            _ => match (pick(&mut self.rng, &m.learners), pick(&mut self.rng, &m.voters)) {
                (Some(promote), Some(remove)) => MembershipChange::Replace { promote, remove },
                _ => return,
            },
        };
        // As a careful operator: no change whose new voters' majority
        // includes one without its storage (the leader's own check can be
        // fooled by a voter that died a moment ago), for Raft could never
        // commit it.
        if let Ok(next) = m.apply(&change) {
            let healthy = next.voters.iter().filter(|&&id| !self.without_storage(id, &m)).count();
            if healthy < next.voters.len() / 2 + 1 {
                return;
            }
        }
        let Some(node) = self.nodes.get_mut(&leader).and_then(|n| n.node.as_mut()) else { return };
        match node.change_membership(now, change.clone()) {
            Ok(index) => {
                info!(target: "oar::sim", "{now} {leader} changes membership at {index}: {change:?}");
                self.report.membership_changes += 1;
                self.drain(leader);
            }
            Err(e) => debug!(target: "oar::sim", "{now} {leader} refused {change:?}: {e}"),
        }
    }

    /// Has the newest leader re-admit a voter that lost its disk and
    /// answers from its new one, once it has caught up, as an operator
    /// would. Returns whether it tried.
    pub(super) fn readmit_refused(&mut self) -> bool {
        let now = self.now;
        let Some(leader) = self.newest_leader() else { return false };
        let node = self.nodes[&leader].node.as_ref().expect("a leader is alive");
        let (m, status) = (node.membership().clone(), node.status());
        let refused = status.peers.iter().find(|p| {
            m.voters.contains(&p.id)
                && !p.counted
                && p.incarnation != crate::types::Incarnation::UNKNOWN
                && p.match_index >= status.commit
        });
        let Some(id) = refused.map(|p| p.id) else { return false };
        let change = MembershipChange::Readmit { id };
        let node = self.nodes.get_mut(&leader).and_then(|n| n.node.as_mut()).expect("a leader is alive");
        match node.change_membership(now, change.clone()) {
            Ok(index) => {
                info!(target: "oar::sim", "{now} {leader} re-admits {id} at {index}");
                self.report.membership_changes += 1;
                self.report.readmissions += 1;
                self.drain(leader);
            }
            Err(e) => debug!(target: "oar::sim", "{now} {leader} refused {change:?}: {e}"),
        }
        true
    }

    /// The leader of the highest term, if any node leads.
    pub(super) fn newest_leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter_map(|(&id, n)| Some((n.node.as_ref()?, id)))
            .filter(|(n, _)| n.role() == Role::Leader)
            .max_by_key(|(n, _)| n.term())
            .map(|(_, id)| id)
    }

    pub(super) fn propose_probe(&mut self) {
        if let Some(id) = self.newest_leader() {
            self.propose_at(id, Bytes::from_static(PROBE), false);
        }
    }

    pub(super) fn propose_at(&mut self, id: NodeId, data: Bytes, follow_hint: bool) {
        let now = self.now;
        let Some(node) = self.nodes.get_mut(&id).and_then(|n| n.node.as_mut()) else { return };
        match node.propose(now, data.clone()) {
            Ok(proposed) => {
                self.report.proposals_accepted += 1;
                debug!(target: "oar::sim", "{now} {id} took a proposal: {proposed:?}");
                self.drain(id);
            }
            Err(ProposeError::NotLeader { leader_hint: Some(hint) }) if follow_hint && hint != id => {
                self.propose_at(hint, data, false);
            }
            Err(e) => debug!(target: "oar::sim", "{now} {id} refused a proposal: {e}"),
        }
    }
}

/// A node configuration drawn for one run: the defaults most of the time,
/// with features off and tight limits some of the time.
pub(super) fn random_config(rng: &mut Rng) -> Config {
    let mut c = Config::new(NodeId(1));
    c.pre_vote = rng.chance(3, 4);
    c.check_quorum = rng.chance(3, 4);
    c.lease_reads = c.check_quorum && rng.chance(1, 3);
    c.forward_proposals = rng.chance(3, 4);
    if rng.chance(1, 4) {
        c.pending_reads_max = rng.range(1, 8) as usize;
    }
    if rng.chance(1, 4) {
        c.inflight_messages_max = rng.range(1, 5) as usize;
    }
    match rng.below(8) {
        0 | 1 => {
            c.message_bytes_max = 16 << 10;
            c.entry_bytes_max = 8 << 10;
            c.inflight_bytes_max = rng.range(16 << 10, 128 << 10);
            c.uncommitted_bytes_max = rng.range(8 << 10, 256 << 10);
        }
        2 => {
            // Messages of one or two entries: a new leader's entries of
            // earlier terms reach followers before its own, and a message
            // vouches for less than a follower's stale suffix holds.
            c.message_bytes_max = rng.range(96, 161);
            c.entry_bytes_max = c.message_bytes_max - crate::types::ENTRY_OVERHEAD_BYTES;
            c.inflight_bytes_max = rng.range(c.message_bytes_max, 4 << 10);
            c.uncommitted_bytes_max = rng.range(16 << 10, 128 << 10);
        }
        _ => {}
    }
    // Snapshot often, compact close, so that followers fall behind the log.
    c.snapshot_entries = [0, 10, 40, 200][rng.below(4) as usize];
    c.snapshot_bytes = if rng.chance(1, 4) { rng.range(1 << 10, 64 << 10) } else { 0 };
    c.compaction_margin = [0, 2, 10, 100][rng.below(4) as usize];
    c.persist_stall_timeout = Duration::from_millis([300, 1000][rng.below(2) as usize]);
    debug_assert!(c.validate().is_ok());
    c
}
