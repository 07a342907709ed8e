//! `OAR.MEMBER`: the cluster's membership through RESP.
//!
//! - `OAR.MEMBER ADD <id> <raft-addr>` adds a learner, `PROMOTE <id>` makes a
//!   learner a voter, `REMOVE <id>` removes a member, `REPLACE <learner>
//!   <voter>` does both in one joint change. Each answers `+OK` once
//!   the change is committed (a joint change, once the final configuration
//!   is), or an error: `-TRYAGAIN` on a node that does not lead (naming the
//!   leader if it knows it) or while another change completes, `-ERR` for a
//!   change that makes no sense, `-TIMEOUT` when the outcome is unknown.
//! - `OAR.MEMBER LIST` answers an array with one line per member:
//!   `<id> <role> <raft-addr>`, the role being `voter`, `learner`, or
//!   `voter-leaving`/`voter-joining` while a joint configuration is in
//!   force.

use std::net::SocketAddr;

use crate::core::MembershipChangeError;
use crate::kv::{write_array_header, write_bulk, write_error, write_simple, MemberOp};
use crate::membership::{Membership, MembershipChange};
use crate::runtime::{Handle, RequestError};
use crate::types::NodeId;

/// Runs `op` on `node` (blocking until a change completes) and returns the
/// RESP reply.
pub(super) fn answer(node: &Handle, op: MemberOp) -> Vec<u8> {
    let mut out = Vec::new();
    let change = match op {
        MemberOp::List => {
            match node.membership() {
                Ok(m) => write_list(&mut out, &m),
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
        Ok(Err(e)) => write_error(&mut out, &change_error(&e)),
        Err(e) => write_error(&mut out, &request_error(&e)),
    }
    out
}

fn write_list(out: &mut Vec<u8>, m: &Membership) {
    let members: Vec<NodeId> = m.members().collect();
    write_array_header(out, members.len());
    for id in members {
        let role = match (m.voters.contains(&id), m.outgoing.contains(&id)) {
            (true, false) if m.is_joint() => "voter-joining",
            (true, _) => "voter",
            (false, true) => "voter-leaving",
            (false, false) => "learner",
        };
        let line = format!("{} {role} {}", id.0, m.address(id).unwrap_or("-"));
        write_bulk(out, line.as_bytes());
    }
}

fn change_error(e: &MembershipChangeError) -> String {
    match e {
        MembershipChangeError::NotLeader { leader_hint: Some(id) } => {
            format!("TRYAGAIN not the leader; send it to node {}", id.0)
        }
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

fn request_error(e: &RequestError) -> String {
    match e {
        RequestError::Timeout => "TIMEOUT the change's outcome is unknown; check OAR.MEMBER LIST".to_string(),
        RequestError::NoLeader | RequestError::Busy | RequestError::Disk(_) => format!("TRYAGAIN {e}"),
        RequestError::TooLarge { .. } | RequestError::Stopped(_) => format!("ERR {e}"),
    }
}
