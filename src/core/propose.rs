//! Commands: proposed on a leader, or forwarded by a follower to the
//! leader it knows, in batches.

use ::log::debug;

use super::api::{ProposeError, Proposed};
use super::{Node, Role};
use crate::message::{MessageBody, Propose};
use crate::types::{Bytes, Entry, EntryKind, Instant, LogIndex, NodeId, ENTRY_OVERHEAD_BYTES};

impl Node {
    /// Proposes a command. A leader appends it to its log (see
    /// [`Proposed`]); a follower with
    /// [`forward_proposals`](crate::Config::forward_proposals) sends it to the
    /// leader it knows. Either way the command is committed once
    /// [`poll_apply`](Node::poll_apply) hands it out, and a leader that loses
    /// its term may lose it: the caller learns the outcome from what is
    /// applied, so commands should carry the caller's own request id.
    pub fn propose(&mut self, _now: Instant, data: Bytes) -> Result<Proposed, ProposeError> {
        let bytes = data.len() as u64;
        if bytes > self.config.entry_bytes_max {
            return Err(ProposeError::EntryTooLarge { bytes, max: self.config.entry_bytes_max });
        }
        match (self.role, self.leader) {
            (Role::Leader, _) => self.propose_as_leader(data).map(|index| Proposed::Appended { index }),
            (Role::Follower, Some(leader)) if self.config.forward_proposals => {
                let size = bytes + ENTRY_OVERHEAD_BYTES;
                if self.forward_bytes + size > self.config.uncommitted_bytes_max {
                    return Err(ProposeError::Backpressure);
                }
                self.forward_bytes += size;
                self.forward_queue.push(data);
                Ok(Proposed::Forwarded { to: leader })
            }
            _ => Err(ProposeError::NotLeader { leader_hint: self.leader }),
        }
    }

    fn propose_as_leader(&mut self, data: Bytes) -> Result<LogIndex, ProposeError> {
        if let Some(trouble) = self.disk_trouble() {
            return Err(ProposeError::Disk(trouble));
        }
        if let Some(t) = self.transfer {
            return Err(ProposeError::TransferInProgress { to: t.to });
        }
        let entry =
            Entry { term: self.term, index: self.log.last_index().next(), kind: EntryKind::Command, data };
        let size = entry.size_bytes();
        // Followers may commit what this leader has not written yet: its own
        // backlog is bounded apart from what is uncommitted.
        if self.uncommitted_bytes + size > self.config.uncommitted_bytes_max
            || self.unpersisted_bytes + size > self.config.uncommitted_bytes_max
        {
            return Err(ProposeError::Backpressure);
        }
        Ok(self.append_as_leader(entry))
    }

    /// Commands a follower forwarded: appended like local proposals, or
    /// dropped (the proposer learns the outcome from what is applied).
    pub(super) fn on_propose(&mut self, _now: Instant, from: NodeId, p: Propose) {
        if self.role != Role::Leader {
            debug!(
                "{} {}: dropped {} commands forwarded by {}: not leader",
                self.id(),
                self.term,
                p.commands.len(),
                from
            );
            return;
        }
        for data in p.commands {
            let bytes = data.len() as u64;
            if bytes > self.config.entry_bytes_max {
                debug!(
                    "{} {}: dropped a forwarded command of {} bytes from {}",
                    self.id(),
                    self.term,
                    bytes,
                    from
                );
                continue;
            }
            if let Err(e) = self.propose_as_leader(data) {
                debug!("{} {}: dropped a forwarded command from {}: {}", self.id(), self.term, from, e);
            }
        }
    }

    /// Sends the commands queued for the leader, batched into messages of at
    /// most `message_bytes_max`.
    pub(super) fn flush_forwarded(&mut self) {
        let queue = std::mem::take(&mut self.forward_queue);
        self.forward_bytes = 0;
        let Some(leader) = self.leader.filter(|_| self.role == Role::Follower) else {
            debug!("{} {}: dropped {} commands to forward: no leader", self.id(), self.term, queue.len());
            return;
        };
        let mut commands = Vec::new();
        let mut bytes = 0;
        for data in queue {
            let size = data.len() as u64 + ENTRY_OVERHEAD_BYTES;
            if !commands.is_empty() && bytes + size > self.config.message_bytes_max {
                self.send(leader, MessageBody::Propose(Propose { commands: std::mem::take(&mut commands) }));
                bytes = 0;
            }
            bytes += size;
            commands.push(data);
        }
        if !commands.is_empty() {
            self.send(leader, MessageBody::Propose(Propose { commands }));
        }
    }
}
