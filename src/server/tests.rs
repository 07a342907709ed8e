//! The RESP lines the server answers for the runtime's errors and for
//! `OAR.MEMBER`.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::connection::error_reply;
use super::member::{change_error, list_lines, request_error};
use crate::core::{Admission, DiskTrouble, MembershipChangeError, PeerStatus, ProgressState, Role, Status};
use crate::membership::{Membership, MembershipChange};
use crate::runtime::{RequestError, StopReason, Unanswered};
use crate::types::{Incarnation, LogIndex, NodeId, Term};

/// Only `-TIMEOUT` leaves a write's outcome open, and every error that
/// may hide an appended write answers it (README, "Replies").
#[test]
fn a_write_hears_timeout_exactly_when_its_outcome_is_unknown() {
    let stopped = StopReason::Storage(Arc::new(crate::storage::StorageError::Io {
        op: "fsync",
        path: "log".into(),
        source: std::io::Error::other("EIO"),
    }));
    let cases = [
        (RequestError::NoLeader, "TRYAGAIN no leader"),
        (RequestError::Busy, "TRYAGAIN the leader is busy"),
        (RequestError::TooLarge { bytes: 9, max: 8 }, "ERR command of 9 bytes exceeds the entry limit of 8"),
        (RequestError::Removed, "ERR this node was removed from the cluster; nothing was done"),
        (RequestError::Stopped(stopped.clone()), "ERR the node stopped; nothing was done: the log failed"),
        (RequestError::Disk(DiskTrouble::Full), "ERR the disk is full"),
        (RequestError::Disk(DiskTrouble::Stalled), "TRYAGAIN the disk is stalled"),
        (RequestError::OutcomeUnknown { why: Unanswered::Timeout }, "TIMEOUT outcome unknown: no answer"),
        (
            RequestError::OutcomeUnknown { why: Unanswered::Stopped(stopped) },
            "TIMEOUT outcome unknown: the node stopped: the log failed",
        ),
    ];
    for (error, want) in cases {
        let line = error_reply(&error, true);
        assert!(line.starts_with(want), "{error:?} answers {line:?}, not {want:?}...");
        assert_eq!(line.starts_with("TIMEOUT"), error.may_have_been_appended(), "{error:?}");
    }
    // A read that was not confirmed in time changed nothing.
    assert!(error_reply(&RequestError::Timeout, false).starts_with("TRYAGAIN"));
}

#[test]
fn a_membership_change_of_unknown_outcome_says_so_and_refusals_say_retry_or_not() {
    let unknown = request_error(&RequestError::OutcomeUnknown { why: Unanswered::Timeout });
    assert!(unknown.starts_with("TIMEOUT the change's outcome is unknown"), "{unknown}");
    assert!(request_error(&RequestError::Removed).starts_with("ERR this node was removed"));
    assert!(request_error(&RequestError::Disk(DiskTrouble::Stalled)).starts_with("TRYAGAIN"));
    assert!(request_error(&RequestError::Stopped(StopReason::Shutdown)).starts_with("ERR"));
}

/// A follower names the leader, and where it serves clients when it knows,
/// so that `oar member` can follow.
#[test]
fn not_the_leader_names_the_leaders_resp_address_when_known() {
    let not_leader = MembershipChangeError::NotLeader { leader_hint: Some(NodeId(3)) };
    let mut resp = BTreeMap::new();
    assert_eq!(change_error(&not_leader, &resp), "TRYAGAIN not the leader; send it to node 3");
    resp.insert(NodeId(3), "127.0.0.1:7381".to_string());
    assert_eq!(
        change_error(&not_leader, &resp),
        "TRYAGAIN not the leader; send it to node 3 at 127.0.0.1:7381"
    );
}

fn status(id: u64, role: Role, leader: Option<u64>) -> Status {
    let membership = Membership::with_voters([NodeId(1), NodeId(2)])
        .apply(&MembershipChange::AddLearner { id: NodeId(3), address: "127.0.0.1:7003".into() })
        .expect("add a learner");
    let peer = |id: u64, match_index: u64| PeerStatus {
        id: NodeId(id),
        match_index: LogIndex(match_index),
        next_index: LogIndex(match_index + 1),
        state: ProgressState::Replicate,
        inflight_messages: 0,
        inflight_bytes: 0,
        last_heard: None,
        incarnation: Incarnation(id),
        counted: true,
    };
    Status {
        id: NodeId(id),
        role,
        term: Term(2),
        leader: leader.map(NodeId),
        commit: LogIndex(10),
        applied: LogIndex(10),
        last_index: LogIndex(12),
        persisted: LogIndex(12),
        first_index: LogIndex(1),
        snapshot_index: LogIndex(0),
        membership,
        incarnation: Incarnation(id),
        admission: Admission::Voter,
        repair_to: LogIndex(0),
        halted: None,
        disk: None,
        peers: if role == Role::Leader { vec![peer(2, 12), peer(3, 5)] } else { Vec::new() },
    }
}

#[test]
fn member_list_shows_the_leader_resp_addresses_and_how_far_behind_each_is() {
    let resp: BTreeMap<NodeId, String> =
        [(NodeId(1), "127.0.0.1:7379".to_string()), (NodeId(3), "127.0.0.1:7381".to_string())].into();
    assert_eq!(
        list_lines(&status(1, Role::Leader, Some(1)), &resp),
        [
            "1 voter - resp=127.0.0.1:7379 state=leader behind=0",
            "2 voter - resp=- state=follower behind=0",
            "3 learner 127.0.0.1:7003 resp=127.0.0.1:7381 state=follower behind=7",
        ]
    );
    // A follower knows who leads, not how far behind anyone is.
    assert_eq!(
        list_lines(&status(2, Role::Follower, Some(1)), &resp),
        [
            "1 voter - resp=127.0.0.1:7379 state=leader behind=?",
            "2 voter - resp=- state=follower behind=?",
            "3 learner 127.0.0.1:7003 resp=127.0.0.1:7381 state=follower behind=?",
        ]
    );
}
