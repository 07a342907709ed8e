//! What a node does with client proposals: only the leader accepts them, and
//! it bounds both one command's size and the bytes it holds uncommitted.

use std::time::Duration;

use super::harness::Cluster;
use crate::core::{ProposeError, Role};
use crate::types::{Bytes, LogIndex, NodeId};

#[test]
fn proposal_beyond_uncommitted_bytes_max_is_refused_with_backpressure() {
    let mut c = Cluster::with_config(3, |cfg| {
        cfg.entry_bytes_max = 50;
        cfg.uncommitted_bytes_max = 100;
    });
    let leader = c.elect(Duration::from_secs(2)).0;
    c.deliver_all();
    assert_eq!(c.commit_of(leader), LogIndex(1), "the blank entry is committed and no longer counts");
    // 20 bytes of command plus 13 of overhead: three fit in 100, not four.
    for expected in 2..=4 {
        assert_eq!(c.propose(leader, &[7; 20]), Ok(LogIndex(expected)));
    }
    assert_eq!(c.propose(leader, &[7; 20]), Err(ProposeError::Backpressure));
    assert_eq!(c.propose(leader, &[]), Err(ProposeError::Backpressure), "even an empty command needs 13");
    assert_eq!(c.node(leader).last_index(), LogIndex(4), "nothing was appended");
    // Once they commit, there is room again.
    c.deliver_all();
    assert_eq!(c.commit_of(leader), LogIndex(4));
    assert_eq!(c.propose(leader, &[7; 20]), Ok(LogIndex(5)));
}

#[test]
fn proposal_on_a_follower_returns_not_leader_with_hint() {
    let mut c = Cluster::new(3);
    for id in 1..=3 {
        assert_eq!(c.propose(id, b"x"), Err(ProposeError::NotLeader { leader_hint: None }));
    }
    let leader = c.elect(Duration::from_secs(2));
    c.deliver_all();
    for id in (1..=3).filter(|&id| NodeId(id) != leader) {
        assert_eq!(c.propose(id, b"x"), Err(ProposeError::NotLeader { leader_hint: Some(leader) }));
        assert_eq!(c.node(id).last_index(), LogIndex(1));
    }
    // A candidate knows no leader.
    let follower = (1..=3).find(|&id| NodeId(id) != leader).unwrap();
    c.isolate(follower);
    let now = c.now;
    c.node_mut(follower).campaign(now);
    c.drain_all();
    assert_eq!(c.node(follower).role(), Role::PreCandidate);
    assert_eq!(c.propose(follower, b"x"), Err(ProposeError::NotLeader { leader_hint: None }));
}

#[test]
fn proposal_larger_than_entry_bytes_max_is_refused() {
    let mut c = Cluster::with_config(3, |cfg| cfg.entry_bytes_max = 50);
    let leader = c.elect(Duration::from_secs(2)).0;
    c.deliver_all();
    assert_eq!(c.propose(leader, &[1; 51]), Err(ProposeError::EntryTooLarge { bytes: 51, max: 50 }));
    assert_eq!(c.node(leader).last_index(), LogIndex(1));
    assert_eq!(c.propose(leader, &[1; 50]), Ok(LogIndex(2)));
    c.deliver_all();
    let applied = c.applied[&NodeId(1)].last().unwrap();
    assert_eq!((applied.index, &applied.data), (LogIndex(2), &Bytes::from(vec![1; 50])));
}
