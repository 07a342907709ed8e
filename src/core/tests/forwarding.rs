//! Proposals on a follower: with `forward_proposals` they go to the leader,
//! batched per drain; without it, or without a known leader, they are
//! refused with a hint.

use std::time::Duration;

use super::harness::{established, Cluster};
use crate::core::{ProposeError, Proposed, Role};
use crate::message::{Message, MessageBody, Propose};
use crate::types::{Bytes, EntryKind, LogIndex, NodeId};

fn forwarding(cfg: &mut crate::Config) {
    cfg.forward_proposals = true;
}

fn follower_of(leader: u64) -> u64 {
    if leader == 1 {
        2
    } else {
        1
    }
}

fn proposes_since(c: &Cluster, mark: usize) -> Vec<&Message> {
    c.sent_since(mark, |m| matches!(m.body, MessageBody::Propose(_)))
}

fn propose_at(c: &mut Cluster, id: u64, data: &'static [u8]) -> Result<Proposed, ProposeError> {
    let now = c.now;
    c.node_mut(id).propose(now, Bytes::from_static(data))
}

#[test]
fn follower_forwards_proposals_to_the_leader() {
    let (mut c, leader) = established(3, forwarding);
    let f = follower_of(leader);
    let mark = c.sent.len();
    assert_eq!(propose_at(&mut c, f, b"hello"), Ok(Proposed::Forwarded { to: NodeId(leader) }));
    assert_eq!(c.node(f).last_index(), LogIndex(1), "nothing appended on the follower");
    c.drain(NodeId(f));
    let sent = proposes_since(&c, mark);
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].from, sent[0].to), (NodeId(f), NodeId(leader)));
    assert_eq!(sent[0].body, MessageBody::Propose(Propose { commands: vec![Bytes::from_static(b"hello")] }));

    c.deliver_all();
    let e = c.node(leader).entry(LogIndex(2)).expect("appended on the leader");
    assert_eq!((e.kind, &e.data[..], e.term), (EntryKind::Command, &b"hello"[..], c.node(leader).term()));
    for id in 1..=3 {
        let applied = c.applied[&NodeId(id)].last().unwrap();
        assert_eq!((applied.index, &applied.data[..]), (LogIndex(2), &b"hello"[..]), "node {id}");
    }
}

#[test]
fn forwarded_proposals_between_drains_share_one_message() {
    let (mut c, leader) = established(3, forwarding);
    let f = follower_of(leader);
    let mark = c.sent.len();
    let commands: [&'static [u8]; 3] = [b"a", b"b", b"c"];
    for cmd in commands {
        assert_eq!(propose_at(&mut c, f, cmd), Ok(Proposed::Forwarded { to: NodeId(leader) }));
    }
    c.drain(NodeId(f));
    let sent = proposes_since(&c, mark);
    assert_eq!(sent.len(), 1, "one message for three proposals");
    let expected = commands.iter().map(|&d| Bytes::from_static(d)).collect();
    assert_eq!(sent[0].body, MessageBody::Propose(Propose { commands: expected }));

    // The next proposal, after the drain, travels on its own.
    assert!(propose_at(&mut c, f, b"d").is_ok());
    c.drain(NodeId(f));
    let sent = proposes_since(&c, mark);
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].body, MessageBody::Propose(Propose { commands: vec![Bytes::from_static(b"d")] }));

    c.deliver_all();
    let log: Vec<&[u8]> = (2..=5).map(|i| &c.node(leader).entry(LogIndex(i)).unwrap().data[..]).collect();
    assert_eq!(log, vec![&b"a"[..], b"b", b"c", b"d"], "appended in the order proposed");
    assert_eq!(c.commit_of(f), LogIndex(5));
}

#[test]
fn forwarded_proposals_are_split_at_message_bytes_max() {
    let (mut c, leader) = established(3, |cfg| {
        cfg.forward_proposals = true;
        cfg.entry_bytes_max = 50;
        cfg.message_bytes_max = 100;
        cfg.inflight_bytes_max = 1000;
    });
    let f = follower_of(leader);
    let mark = c.sent.len();
    // 30 bytes plus 13 of framing: two fit in 100 bytes, not three.
    for _ in 0..5 {
        propose_at(&mut c, f, &[9; 30]).unwrap();
    }
    c.drain(NodeId(f));
    let sizes: Vec<usize> = proposes_since(&c, mark)
        .iter()
        .map(|m| match &m.body {
            MessageBody::Propose(p) => p.commands.len(),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(sizes, vec![2, 2, 1]);
    c.deliver_all();
    assert_eq!(c.commit_of(leader), LogIndex(6));
}

#[test]
fn follower_without_a_leader_refuses_with_not_leader() {
    let mut c = Cluster::with_config(3, forwarding);
    for id in 1..=3 {
        assert_eq!(propose_at(&mut c, id, b"x"), Err(ProposeError::NotLeader { leader_hint: None }));
    }
    c.drain_all();
    assert!(c.sent.is_empty());

    // A follower that lost its leader (here: campaigning) refuses too.
    let leader = c.elect(Duration::from_secs(2)).0;
    c.deliver_all();
    let f = follower_of(leader);
    c.isolate(f);
    let now = c.now;
    c.node_mut(f).campaign(now);
    c.drain_all();
    assert_eq!(c.node(f).role(), Role::PreCandidate);
    let mark = c.sent.len();
    assert_eq!(propose_at(&mut c, f, b"x"), Err(ProposeError::NotLeader { leader_hint: None }));
    c.drain(NodeId(f));
    assert!(proposes_since(&c, mark).is_empty());
}

#[test]
fn forwarding_off_refuses_with_not_leader_hint() {
    let (mut c, leader) = established(3, |cfg| cfg.forward_proposals = false);
    let f = follower_of(leader);
    let mark = c.sent.len();
    assert_eq!(
        propose_at(&mut c, f, b"x"),
        Err(ProposeError::NotLeader { leader_hint: Some(NodeId(leader)) })
    );
    c.drain_all();
    assert!(proposes_since(&c, mark).is_empty());
    c.deliver_all();
    assert_eq!(c.node(leader).last_index(), LogIndex(1));
}

#[test]
fn oversized_forwarded_command_is_refused_at_the_follower() {
    let (mut c, leader) = established(3, |cfg| {
        cfg.forward_proposals = true;
        cfg.entry_bytes_max = 50;
    });
    let f = follower_of(leader);
    let mark = c.sent.len();
    assert_eq!(propose_at(&mut c, f, &[1; 51]), Err(ProposeError::EntryTooLarge { bytes: 51, max: 50 }));
    c.drain(NodeId(f));
    assert!(proposes_since(&c, mark).is_empty(), "never sent");
    assert_eq!(propose_at(&mut c, f, &[1; 50]), Ok(Proposed::Forwarded { to: NodeId(leader) }));
    c.deliver_all();
    assert_eq!(c.node(leader).entry(LogIndex(2)).map(|e| e.data.len()), Some(50));
}

#[test]
fn forwarded_proposals_beyond_uncommitted_bytes_max_get_backpressure() {
    let (mut c, leader) = established(3, |cfg| {
        cfg.forward_proposals = true;
        cfg.entry_bytes_max = 50;
        cfg.uncommitted_bytes_max = 100;
    });
    let f = follower_of(leader);
    // 20 bytes plus 13: three queue up in 100, not four.
    for _ in 0..3 {
        assert!(propose_at(&mut c, f, &[3; 20]).is_ok());
    }
    assert_eq!(propose_at(&mut c, f, &[3; 20]), Err(ProposeError::Backpressure));
    // The queue empties at the drain.
    c.drain(NodeId(f));
    assert!(propose_at(&mut c, f, &[3; 20]).is_ok());
    // The leader, holding the first three uncommitted when the fourth
    // arrives, drops it: `Forwarded` promised nothing.
    c.deliver_all();
    assert_eq!(c.commit_of(leader), LogIndex(4));
    assert_eq!(c.node(leader).last_index(), LogIndex(4));
    assert!(propose_at(&mut c, f, &[3; 20]).is_ok());
    c.deliver_all();
    assert_eq!(c.commit_of(leader), LogIndex(5));
}
