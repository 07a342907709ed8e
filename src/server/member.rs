//! `OAR.MEMBER`: the cluster's membership through RESP.
//!
//! - `OAR.MEMBER ADD <id> <raft-addr>` adds a learner, `PROMOTE <id>` makes a
//!   learner a voter, `REMOVE <id>` removes a member, `REPLACE <learner>
//!   <voter>` does both in one joint change. Each answers `+OK` once
//!   the change is committed (a joint change, once the final configuration
//!   is), or an error: `-TRYAGAIN` on a node that does not lead (naming the
//!   leader if it knows it, as `send it to node <id> at <resp-addr>` when
//!   it knows where the leader serves clients) or while another change
//!   completes, `-ERR` for a
//!   change that makes no sense, `-TIMEOUT` when the outcome is unknown.
//! - `OAR.MEMBER LIST` answers an array with one line per member:
//!   `<id> <role> <raft-addr> resp=<resp-addr> state=<state> behind=<n>`.
//!   The role is `voter`, `learner`, or `voter-leaving`/`voter-joining`
//!   while a joint configuration is in force. `resp` is where the member
//!   serves clients, as it said when it last connected to the node asked
//!   (each node tells its peers its `--resp-addr` in the peer handshake);
//!   `-` if it has not. `state` is `leader` for the leader the node asked
//!   knows, `follower` for the others. `behind` is how many entries the
//!   member's log lacks of the leader's (the leader's last index less the
//!   member's match index): only the leader knows, so the other nodes
//!   answer `?`.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::core::{MembershipChangeError, Role, Status};
use crate::kv::{write_array_header, write_bulk, write_error, write_simple, MemberOp};
use crate::membership::MembershipChange;
use crate::runtime::{Handle, RequestError};
use crate::types::NodeId;

/// Runs `op` on `node` (blocking until a change completes) and returns the
/// RESP reply.
pub(super) fn answer(node: &Handle, op: MemberOp) -> Vec<u8> {
    let mut out = Vec::new();
    let change = match op {
        MemberOp::List => {
            match node.status() {
                Ok(status) => {
                    let lines = list_lines(&status, &node.client_addresses());
                    write_array_header(&mut out, lines.len());
                    for line in lines {
                        write_bulk(&mut out, line.as_bytes());
                    }
                }
                Err(e) => write_error(&mut out, &request_error(&e)),
            }
            return out;
        }
        MemberOp::Add { id, addr } => match addr.parse::<SocketAddr>() {
            Ok(addr) => MembershipChange::AddLearner { id: NodeId(id), address: addr.to_string() },
            Err(_) => {
                write_error(&mut out, &format!("ERR {addr:?} is not an address; give IP:PORT"));
                return out;
            }
        },
        MemberOp::Promote { id } => MembershipChange::Promote { id: NodeId(id) },
        MemberOp::Remove { id } => MembershipChange::Remove { id: NodeId(id) },
        MemberOp::Replace { promote, remove } if promote == remove => {
            MembershipChange::Readmit { id: NodeId(promote) }
        }
        MemberOp::Replace { promote, remove } => {
            MembershipChange::Replace { promote: NodeId(promote), remove: NodeId(remove) }
        }
    };
    match node.change_membership(change) {
        Ok(Ok(_)) => write_simple(&mut out, "OK"),
        Ok(Err(e)) => write_error(&mut out, &change_error(&e, &node.client_addresses())),
        Err(e) => write_error(&mut out, &request_error(&e)),
    }
    out
}

/// The lines of `OAR.MEMBER LIST` on a node whose status is `status` and
/// which knows where `resp` members serve clients.
pub(super) fn list_lines(status: &Status, resp: &BTreeMap<NodeId, String>) -> Vec<String> {
    let m = &status.membership;
    let leading = status.role == Role::Leader;
    m.members()
        .map(|id| {
            let role = match (m.voters.contains(&id), m.outgoing.contains(&id)) {
                (true, false) if m.is_joint() => "voter-joining",
                (true, _) => "voter",
                (false, true) => "voter-leaving",
                (false, false) => "learner",
            };
            let state = if status.leader == Some(id) { "leader" } else { "follower" };
            let behind = if !leading {
                "?".to_string()
            } else if id == status.id {
                "0".to_string()
            } else {
                status.peers.iter().find(|p| p.id == id).map_or("?".to_string(), |p| {
                    status.last_index.0.saturating_sub(p.match_index.0).to_string()
                })
            };
            format!(
                "{} {role} {} resp={} state={state} behind={behind}",
                id.0,
                m.address(id).unwrap_or("-"),
                resp.get(&id).map_or("-", String::as_str),
            )
        })
        .collect()
}

/// The error line for a change the core refused; a follower names the
/// leader, and where it serves clients if it knows (`resp`), for a client
/// to follow.
pub(super) fn change_error(e: &MembershipChangeError, resp: &BTreeMap<NodeId, String>) -> String {
    match e {
        MembershipChangeError::NotLeader { leader_hint: Some(id) } => match resp.get(id) {
            Some(addr) => format!("TRYAGAIN not the leader; send it to node {} at {addr}", id.0),
            None => format!("TRYAGAIN not the leader; send it to node {}", id.0),
        },
        MembershipChangeError::NotLeader { leader_hint: None } => "TRYAGAIN no leader".to_string(),
        MembershipChangeError::TransferInProgress { .. }
        | MembershipChangeError::NotReady
        | MembershipChangeError::InProgress
        | MembershipChangeError::Disk(_) => format!("TRYAGAIN {e}"),
        MembershipChangeError::Invalid(e) => format!("ERR {e}"),
        // It may well connect in a moment: a node started with the change.
        MembershipChangeError::NotHeard(_) => format!("TRYAGAIN {e}"),
        MembershipChangeError::AlreadyAdmitted(_) | MembershipChangeError::WouldLoseQuorum { .. } => {
            format!("ERR {e}")
        }
    }
}

/// The error line for a membership request the node could not answer:
/// `-TIMEOUT` when the change may have been appended, `-TRYAGAIN` when
/// nothing was and a retry may work, `-ERR` when nothing was and a retry
/// here will not.
pub(super) fn request_error(e: &RequestError) -> String {
    match e {
        RequestError::OutcomeUnknown { why } => {
            format!("TIMEOUT the change's outcome is unknown ({why}); check OAR.MEMBER LIST")
        }
        RequestError::NoLeader | RequestError::Busy | RequestError::Timeout | RequestError::Disk(_) => {
            format!("TRYAGAIN {e}")
        }
        RequestError::TooLarge { .. }
        | RequestError::Stopped(_)
        | RequestError::Removed
        | RequestError::Session { .. } => {
            format!("ERR {e}")
        }
    }
}
