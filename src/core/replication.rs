//! Log replication and commitment: Raft §5.3–§5.4, with pipelining, flow
//! control and fast backtracking.

use ::log::{debug, warn};

use super::log::AppendError;
use super::progress::ProgressState;
use super::{Node, Role};
use crate::message::{AppendEntries, AppendEntriesResponse, Heartbeat, HeartbeatResponse, MessageBody};
use crate::types::{Entry, Incarnation, Instant, LogIndex, NodeId, Term};

impl Node {
    /// Appends an entry this leader created and schedules its replication.
    pub(super) fn append_as_leader(&mut self, entry: Entry) -> LogIndex {
        debug_assert_eq!(self.role, Role::Leader);
        let index = entry.index;
        self.uncommitted_bytes += entry.size_bytes();
        self.unpersisted_bytes += entry.size_bytes();
        self.log.append(entry);
        self.replication_pending = true;
        index
    }

    /// Follows a leader that acknowledged our term: it is alive, so do not
    /// start an election, and refuse votes for a while.
    pub(super) fn heard_from_leader(&mut self, now: Instant, leader: NodeId) {
        if self.role != Role::Follower {
            self.become_follower(now, self.term, Some(leader));
        } else {
            self.set_leader(Some(leader));
            self.extend_vote_lease(now);
            self.reset_election_deadline(now);
        }
    }

    pub(super) fn on_append_entries(&mut self, now: Instant, from: NodeId, req: AppendEntries) {
        if self.role == Role::Leader {
            debug!(
                "{} {}: AppendEntries from {} in our own term: impossible, dropped",
                self.id(),
                self.term,
                from
            );
            return;
        }
        self.heard_from_leader(now, from);
        let result = self.log.try_append(req.prev_log_index, req.prev_log_term, &req.entries);
        match result {
            Ok(last_new) => {
                self.track_appended(now, &req.entries);
                // Raft Figure 2: commit up to the last entry this message
                // vouches for, never beyond.
                // Beyond what this message vouches for, entries of earlier
                // terms: a suffix the leader may not have.
                if req.leader_commit > last_new
                    && self.log.last_index() > last_new
                    && self.log.last_term() < self.term
                {
                    self.coverage.follower_commit_capped += 1;
                }
                if self.log.commit_to(req.leader_commit.min(last_new)) {
                    self.commit_changed();
                }
                self.matched_leader_to(last_new);
                let needed = self.write_covering(last_new);
                #[cfg(test)]
                let needed = if self.config.bugs.ack_before_persist { super::PersistId(0) } else { needed };
                let body = AppendEntriesResponse::Accepted { match_index: last_new };
                self.send_after(needed, from, MessageBody::AppendEntriesResponse(body));
            }
            Err(AppendError::Mismatch) => {
                let (hint_index, hint_term) =
                    self.log.find_conflict_by_term(req.prev_log_index, req.prev_log_term);
                debug!(
                    "{} {}: rejected AppendEntries from {} at {}; hint {} {}",
                    self.id(),
                    self.term,
                    from,
                    req.prev_log_index,
                    hint_index,
                    hint_term
                );
                let body = AppendEntriesResponse::Rejected {
                    rejected_index: req.prev_log_index,
                    hint_index,
                    hint_term,
                };
                self.send(from, MessageBody::AppendEntriesResponse(body));
            }
            Err(AppendError::ConflictsWithCommitted(at)) => {
                // The leader of this term lacks an entry this node knows is
                // committed: acknowledged writes were lost (a majority lost
                // their disks, or were counted when they should not have
                // been), or this node's storage is not what it claims. No
                // answer this node could give would mend that; going on
                // would only hang its readers. Stop, and say why.
                let reason = format!(
                    "leader {from} of {} sent entries that contradict committed entry {at} of this node's \
                     log: the cluster has lost acknowledged writes, or this data directory is not the \
                     one this node acknowledged them from. Stopped to keep the committed history; \
                     compare the logs before restarting anything (see README, \"Lost disks\")",
                    self.term
                );
                self.halt(now, reason);
            }
        }
    }

    pub(super) fn on_heartbeat(&mut self, now: Instant, from: NodeId, hb: Heartbeat) {
        if self.role == Role::Leader {
            debug!(
                "{} {}: Heartbeat from {} in our own term: impossible, dropped",
                self.id(),
                self.term,
                from
            );
            return;
        }
        self.heard_from_leader(now, from);
        // The leader names an index this node acknowledged (in this term,
        // from this incarnation) and the term of the entry there: if the log
        // holds that entry, it matches the leader's up to it (Log Matching),
        // so it may commit that far without an append's log check.
        let held = self.log.term(hb.commit);
        if held == Some(hb.commit_term) {
            if self.log.commit_to(hb.commit) {
                self.commit_changed();
            }
            self.matched_leader_to(hb.commit);
        } else if hb.commit >= self.log.first_index() && hb.commit > self.repair_to {
            // Not held, and not under a snapshot: the log lost entries this
            // node acknowledged (a disk that lied about a sync, a log set
            // back to an older copy). They may have been committed on the
            // strength of that acknowledgement: vote for no one until the
            // leader has given them back.
            warn!(
                "{} {}: leader {} knows this node acknowledged entry {} of term {}, but its log holds {}: \
                 entries were lost (a disk that lied about a sync, or a log restored from an older copy); \
                 not voting until they are restored",
                self.id(),
                self.term,
                from,
                hb.commit,
                hb.commit_term.0,
                match held {
                    Some(t) => format!("term {} there", t.0),
                    None => format!("nothing after {}", self.log.last_index()),
                }
            );
            self.repair_to = hb.commit;
            self.repair_write = None;
        }
        let body = HeartbeatResponse {
            round: hb.round,
            last_index: self.log.last_index(),
            disk: self.disk_trouble(),
        };
        self.send(from, MessageBody::HeartbeatResponse(body));
    }

    pub(super) fn on_heartbeat_response(&mut self, now: Instant, from: NodeId, resp: HeartbeatResponse) {
        if self.role != Role::Leader {
            return;
        }
        let round = resp.round;
        if round > self.reads.round {
            debug!("{} {}: {} answered round {} not yet started; dropped", self.id(), self.term, from, round);
            return;
        }
        let last = self.log.last_index();
        let (me, term) = (self.id(), self.term);
        let Some(p) = self.peer_mut(from) else { return };
        // The follower answered a heartbeat sent after it acknowledged
        // `match_index`: a log that ends below it now lost what it
        // acknowledged (a disk that lied about a sync, a log restored from
        // an older copy). Stale answers cannot fool this, unlike a rejection
        // (an old one, overtaken on the way, looks the same).
        if round > p.match_round && resp.last_index < p.match_index {
            warn!(
                "{me} {term}: {from}'s log ends at {}, though it acknowledged up to {}: it lost entries (a \
                 disk that lied about a sync, or a log restored from an older copy); no longer counting \
                 those acknowledgements, and repairing its log",
                resp.last_index, p.match_index
            );
            p.lost_entries(resp.last_index);
        }
        let lagging = p.match_index < last;
        p.on_heartbeat_response(lagging);
        p.acked_round = p.acked_round.max(round);
        p.disk = resp.disk;
        self.replication_pending |= lagging;
        self.check_read_quorum(now);
        if self.transfer.is_some_and(|t| t.to == from) {
            self.maybe_send_timeout_now();
        }
    }

    pub(super) fn on_append_response(&mut self, now: Instant, from: NodeId, resp: AppendEntriesResponse) {
        if self.role != Role::Leader {
            debug!("{} {}: AppendEntriesResponse from {} but not leader", self.id(), self.term, from);
            return;
        }
        let last = self.log.last_index();
        match resp {
            AppendEntriesResponse::Accepted { match_index } => {
                if match_index > last {
                    debug!(
                        "{} {}: {} acknowledged {} beyond our log; dropped",
                        self.id(),
                        self.term,
                        from,
                        match_index
                    );
                    return;
                }
                let round = self.reads.round;
                let Some(p) = self.peer_mut(from) else { return };
                if p.on_accepted(match_index, round) {
                    self.maybe_commit(now);
                    if self.transfer.is_some_and(|t| t.to == from) {
                        self.maybe_send_timeout_now();
                    }
                }
                self.replication_pending = true;
            }
            AppendEntriesResponse::Rejected { rejected_index, hint_index, hint_term } => {
                if rejected_index > last || hint_index > rejected_index || hint_term > self.term {
                    debug!("{} {}: impossible rejection from {}; dropped", self.id(), self.term, from);
                    return;
                }
                // The follower's hint names the last place its log could
                // match; find the last place ours could match it too.
                let (probe_from, _) = self.log.find_conflict_by_term(hint_index, hint_term);
                let Some(p) = self.peer_mut(from) else { return };
                if p.on_rejected(rejected_index, probe_from.next()) {
                    self.replication_pending = true;
                }
            }
        }
    }

    /// Advances the commit index to the highest entry of this term stored
    /// durably on a quorum (Raft §5.4.2: earlier terms' entries commit only
    /// beneath one of the current term).
    pub(super) fn maybe_commit(&mut self, now: Instant) {
        if self.role != Role::Leader {
            return;
        }
        let (me, mine) = (self.id(), self.incarnation);
        let persisted = self.log.persisted();
        let mut scratch = std::mem::take(&mut self.scratch_indexes);
        let peers = &self.peers;
        let index_of = |id: NodeId, admitted: Incarnation| {
            if id == me {
                return if self.admits(admitted, mine) { persisted } else { LogIndex(0) };
            }
            peers
                .iter()
                .find(|p| p.id == id && self.admits(admitted, p.incarnation))
                .map_or(LogIndex(0), |p| p.match_index)
        };
        let quorum_index = self.voters.committed_index(&mut scratch, index_of);
        let held_by_outgoing = self.voters.outgoing_holds_back(&mut scratch, index_of);
        self.scratch_indexes = scratch;
        if held_by_outgoing {
            self.coverage.joint_commit_held_by_outgoing += 1;
        }
        let commit = self.log.commit();
        if quorum_index <= commit {
            return;
        }
        let of_this_term = self.log.term(quorum_index) == Some(self.term);
        if !of_this_term {
            self.coverage.commit_held_for_earlier_term += 1;
        }
        #[cfg(test)]
        let of_this_term = of_this_term || self.config.bugs.commit_old_terms_by_counting;
        if !of_this_term {
            return;
        }
        let mut index = commit.next();
        while index <= quorum_index {
            let e = self.log.entry(index).expect("committed entries are in the log");
            if e.term == self.term {
                self.uncommitted_bytes = self.uncommitted_bytes.saturating_sub(e.size_bytes());
            }
            index = index.next();
        }
        self.log.commit_to(quorum_index);
        self.commit_changed();
        self.replication_pending = true;
        self.on_commit_for_reads(now);
        self.after_commit_for_membership(now);
    }

    /// Sends every follower what it is missing, as far as its flow control
    /// allows.
    pub(super) fn flush_replication(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        for k in 0..self.peers.len() {
            self.replicate_to(k);
        }
    }

    fn replicate_to(&mut self, k: usize) {
        let last = self.log.last_index();
        let commit = self.log.commit();
        loop {
            let p = &self.peers[k];
            // The entries it needs were compacted away: snapshot instead,
            // but not while a probe is outstanding, nor after a failed
            // transfer until the follower answers a heartbeat (both leave
            // `probe_sent` set): an unreachable follower would otherwise be
            // sent the snapshot again at every flush.
            if p.state != ProgressState::Snapshot && p.next_index < self.log.first_index() {
                if !(p.state == ProgressState::Probe && p.probe_sent) {
                    self.send_snapshot(k);
                }
                return;
            }
            if p.is_paused() {
                // An empty append at `next_index - 1` takes no window slot:
                // it checks the follower's log and carries the commit.
                if p.state == ProgressState::Replicate && p.resend {
                    self.send_append(k, false);
                }
                return;
            }
            let has_entries = p.next_index <= last;
            let must_probe = p.state == ProgressState::Probe;
            let commit_news = p.commit_sent < commit;
            if !has_entries && !must_probe && !commit_news && !p.resend {
                return;
            }
            self.send_append(k, true);
            if must_probe || !has_entries {
                return;
            }
        }
    }

    /// Sends follower `k` an AppendEntries after its `next_index - 1`,
    /// carrying up to `message_bytes_max` of entries if `with_entries`.
    fn send_append(&mut self, k: usize, with_entries: bool) {
        let commit = self.log.commit();
        let p = &self.peers[k];
        let (to, next) = (p.id, p.next_index);
        let prev_log_index = next.prev();
        let prev_log_term = self.log.term(prev_log_index).expect("next_index is within the log");
        let mut entries = Vec::new();
        let bytes = if with_entries {
            self.log.entries_from(next, self.config.message_bytes_max, &mut entries)
        } else {
            0
        };
        let p = &mut self.peers[k];
        p.on_entries_sent(prev_log_index.plus(entries.len() as u64), bytes);
        p.commit_sent = commit;
        p.resend = false;
        let req = AppendEntries { prev_log_index, prev_log_term, entries, leader_commit: commit };
        self.send(to, MessageBody::AppendEntries(req));
    }

    /// Heartbeats of confirmation round `round` to every follower.
    pub(super) fn broadcast_heartbeats(&mut self, round: u64) {
        let commit = self.log.commit();
        for k in 0..self.peers.len() {
            let p = &self.peers[k];
            // Below our compacted prefix the term is gone: vouch for nothing
            // (the follower is sent the snapshot anyway).
            let vouched = commit.min(p.match_index);
            let (commit, commit_term) =
                self.log.term(vouched).map_or((LogIndex(0), Term(0)), |term| (vouched, term));
            let (to, hb) = (p.id, Heartbeat { commit, commit_term, round });
            self.send(to, MessageBody::Heartbeat(hb));
        }
    }
}
