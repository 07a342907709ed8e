//! A leader whose own disk is full or stalls stops taking writes and hands
//! leadership to a follower that can write; its memory stays bounded
//! meanwhile.

use std::time::Duration;

use super::harness::{established, Cluster};
use crate::core::{DiskTrouble, Event, ProposeError, Role};
use crate::types::NodeId;

fn followers(leader: u64) -> Vec<u64> {
    (1..=3).filter(|&id| id != leader).collect()
}

#[test]
fn a_leader_with_a_full_disk_refuses_writes_and_hands_leadership_over() {
    let (mut c, leader) = established(3, |_| {});
    let now = c.now;
    c.node_mut(leader).handle_disk_full(now, true);
    let refused = c.node_mut(leader).propose(now, "x".into());
    c.drain_all();
    assert_eq!(c.node(leader).disk_trouble(), Some(DiskTrouble::Full));
    assert!(c.events_of(leader).contains(&Event::DiskTroubleChanged { trouble: Some(DiskTrouble::Full) }));
    assert!(
        matches!(
            refused,
            Err(ProposeError::Disk(DiskTrouble::Full)) | Err(ProposeError::TransferInProgress { .. })
        ),
        "{refused:?}"
    );
    c.drain_all();
    let next = c.elect(Duration::from_secs(2));
    c.run_for(Duration::from_millis(500));
    let next = c.leader().unwrap_or(next);
    assert_ne!(next, NodeId(leader), "leadership moved to a node that can write");
    assert_eq!(c.node(leader).role(), Role::Follower);
    // Writes go on at the new leader; the old one still follows (its
    // disk takes nothing new, it says so, and it does not campaign).
    let index = c.propose(next.0, b"y").expect("the new leader takes writes");
    c.run_for(Duration::from_millis(300));
    let others = followers(leader);
    assert!(others.iter().all(|&id| c.commit_of(id) >= index));
    // Space is freed: the old leader takes writes again.
    let now = c.now;
    c.node_mut(leader).handle_disk_full(now, false);
    assert_eq!(c.node(leader).disk_trouble(), None);
    c.run_for(Duration::from_millis(500));
    assert!(c.commit_of(leader) >= index);
}

#[test]
fn a_leader_whose_disk_stalls_stops_leading_within_a_few_election_timeouts() {
    let (mut c, leader) = established(3, |cfg| cfg.persist_stall_timeout = Duration::from_millis(400));
    c.stall(leader);
    let stalled_at = c.now;
    c.propose(leader, b"x").expect("taken before the stall shows");
    let mut refused = None;
    for _ in 0..200 {
        c.run_for(Duration::from_millis(10));
        let now = c.now;
        if c.node(leader).role() != Role::Leader {
            break;
        }
        if let Err(e) = c.node_mut(leader).propose(now, "y".into()) {
            refused.get_or_insert(e);
        }
        c.drain_all();
    }
    let stepped_down_after = c.now.saturating_duration_since(stalled_at);
    assert_eq!(c.node(leader).role(), Role::Follower, "still leading after {stepped_down_after:?}");
    assert!(stepped_down_after < Duration::from_millis(400 + 3 * 300), "{stepped_down_after:?}");
    // Whatever it was asked between noticing and stepping down, it refused.
    if let Some(e) = refused {
        assert!(
            matches!(e, ProposeError::Disk(DiskTrouble::Stalled) | ProposeError::TransferInProgress { .. }),
            "{e:?}"
        );
    }
    assert_eq!(c.node(leader).disk_trouble(), Some(DiskTrouble::Stalled));
    let next = c.elect(Duration::from_secs(2));
    assert_ne!(next, NodeId(leader));
    let index = c.propose(next.0, b"z").expect("the new leader takes writes");
    c.run_for(Duration::from_millis(300));
    assert!(followers(leader).iter().all(|&id| c.commit_of(id) >= index));
    // The disk comes back: the stall is over.
    c.unstall(leader);
    assert_eq!(c.node(leader).disk_trouble(), None);
    c.run_for(Duration::from_millis(500));
    assert!(c.commit_of(leader) >= index);
}

#[test]
fn a_leader_behind_on_its_own_disk_takes_no_more_than_its_limit_in_memory() {
    // The stall is never called (the timeout is long): only the byte limit
    // holds the leader's backlog, while followers commit without it.
    let limit = 4 << 10;
    let (mut c, leader) = established(3, |cfg| {
        cfg.persist_stall_timeout = Duration::from_secs(3600);
        cfg.uncommitted_bytes_max = limit;
        cfg.entry_bytes_max = 512;
    });
    c.stall(leader);
    let mut taken = 0u64;
    let mut refused = false;
    for _ in 0..1000 {
        match c.propose(leader, &[0; 100]) {
            Ok(_) => taken += 1,
            Err(ProposeError::Backpressure) => {
                refused = true;
                break;
            }
            Err(e) => panic!("{e}"),
        }
        c.deliver_all();
    }
    assert!(refused, "the leader took {taken} proposals it cannot write");
    assert!(taken * 100 <= limit, "{taken} proposals of 100 bytes against a limit of {limit}");
    let others = followers(leader);
    assert!(
        others.iter().all(|&id| c.commit_of(id) > c.node(leader).persisted_index()),
        "followers committed"
    );
    Cluster::unstall(&mut c, leader);
    c.run_for(Duration::from_millis(200));
    c.propose(leader, b"after").expect("room again once the disk catches up");
}
