//! Flow control towards one follower: the inflight window (in messages and in
//! bytes), the size of one AppendEntries, and the Probe/Replicate states.

use std::time::Duration;

use super::harness::{entries_in, is_append, is_append_response, recovered, Cluster};
use crate::core::{PeerStatus, ProgressState};
use crate::types::{LogIndex, NodeId};

/// A 3-node cluster with an elected leader and every follower in Replicate.
fn established(tweak: impl Fn(&mut crate::Config)) -> (Cluster, u64, u64, u64) {
    let mut c = Cluster::with_config(3, tweak);
    let leader = c.elect(Duration::from_secs(2)).0;
    c.deliver_all();
    let followers: Vec<u64> = (1..=3).filter(|&id| id != leader).collect();
    (c, leader, followers[0], followers[1])
}

fn peer(c: &Cluster, leader: u64, id: u64) -> PeerStatus {
    c.node(leader).status().peers.into_iter().find(|p| p.id == NodeId(id)).expect("a peer of the leader")
}

/// The AppendEntries carrying entries that went to `to` since `mark`.
fn appends_with_entries(c: &Cluster, mark: usize, to: u64) -> usize {
    c.sent_since(mark, |m| m.to == NodeId(to) && !entries_in(m).is_empty()).len()
}

#[test]
fn inflight_message_window_bounds_appends_to_a_slow_follower() {
    let (mut c, leader, fast, slow) = established(|cfg| cfg.inflight_messages_max = 3);
    assert_eq!(peer(&c, leader, slow).state, ProgressState::Replicate);
    let mark = c.sent.len();
    let slow_answers = |m: &crate::Message| is_append_response(m) && m.from == NodeId(slow);
    let mut held = Vec::new();
    for _ in 0..10 {
        c.propose(leader, b"x").unwrap();
        held.extend(c.deliver_except(slow_answers));
    }
    assert_eq!(appends_with_entries(&c, mark, fast), 10);
    assert_eq!(appends_with_entries(&c, mark, slow), 3, "the window holds three messages");
    assert_eq!(peer(&c, leader, slow).inflight_messages, 3);
    assert_eq!(c.node(slow).last_index(), LogIndex(4));
    // The answers open the window again and the follower catches up.
    c.network.extend(held);
    c.deliver_all();
    assert_eq!(c.node(slow).last_index(), LogIndex(11));
    assert_eq!(peer(&c, leader, slow).match_index, LogIndex(11));
    assert_eq!(peer(&c, leader, slow).inflight_messages, 0);
}

#[test]
fn inflight_byte_window_bounds_appends_to_a_slow_follower() {
    let (mut c, leader, fast, slow) = established(|cfg| {
        cfg.entry_bytes_max = 50;
        cfg.message_bytes_max = 100;
        cfg.inflight_bytes_max = 100;
    });
    let mark = c.sent.len();
    let slow_answers = |m: &crate::Message| is_append_response(m) && m.from == NodeId(slow);
    let mut held = Vec::new();
    for _ in 0..10 {
        // 20 bytes of command: 33 counted per entry, one entry per message.
        c.propose(leader, &[0; 20]).unwrap();
        held.extend(c.deliver_except(slow_answers));
    }
    assert_eq!(appends_with_entries(&c, mark, fast), 10);
    // Sending stops once the window is full (33, 66, 99, then 132 >= 100);
    // the window overshoots its limit by less than one message.
    let p = peer(&c, leader, slow);
    assert_eq!(appends_with_entries(&c, mark, slow), 4);
    assert_eq!(p.inflight_bytes, 4 * 33);
    assert!(p.inflight_bytes < 100 + 100, "inflight_bytes {}", p.inflight_bytes);
    c.network.extend(held);
    c.deliver_all();
    assert_eq!(c.node(slow).last_index(), LogIndex(11));
    assert_eq!(peer(&c, leader, slow).inflight_bytes, 0);
}

#[test]
fn message_bytes_max_bounds_entries_per_append_entries() {
    let (mut c, leader, fast, slow) = established(|cfg| {
        cfg.entry_bytes_max = 50;
        cfg.message_bytes_max = 100;
    });
    let mark = c.sent.len();
    let now = c.now;
    // Ten proposals between two drains share the leader's next flush.
    for _ in 0..10 {
        c.node_mut(leader).propose(now, vec![0; 20].into()).unwrap();
    }
    c.deliver_all();
    for to in [fast, slow] {
        let sizes: Vec<(usize, u64)> = c
            .sent_since(mark, |m| m.to == NodeId(to) && !entries_in(m).is_empty())
            .iter()
            .map(|m| (entries_in(m).len(), entries_in(m).iter().map(|e| e.size_bytes()).sum()))
            .collect();
        // Three entries of 33 bytes fit in 100, a fourth does not.
        assert_eq!(sizes, vec![(3, 99), (3, 99), (3, 99), (1, 33)], "to {to}");
        assert_eq!(c.node(to).last_index(), LogIndex(11));
    }
    // A single entry always travels, however close to the limit.
    let mark = c.sent.len();
    c.propose(leader, &[0; 50]).unwrap();
    c.deliver_all();
    let appends = c.sent_since(mark, |m| m.to == NodeId(fast) && !entries_in(m).is_empty());
    assert_eq!(appends.len(), 1);
    assert_eq!(entries_in(appends[0])[0].size_bytes(), 63);
}

#[test]
fn probe_state_sends_one_append_entries_at_a_time() {
    // A leader with ten entries the followers lack: it starts in Probe.
    let states = vec![recovered(1, &[1; 10]), recovered(1, &[]), recovered(1, &[])];
    let mut c = Cluster::from_states(states, |_| {});
    let now = c.now;
    c.node_mut(1).campaign(now);
    let slow_answers = |m: &crate::Message| is_append_response(m) && m.from == NodeId(3);
    let mut held = c.deliver_except(slow_answers);
    assert_eq!(c.node(1).term(), crate::Term(2));
    assert_eq!(peer(&c, 1, 2).state, ProgressState::Replicate);
    assert_eq!(peer(&c, 1, 3).state, ProgressState::Probe);
    assert_eq!(c.sent_since(0, |m| m.to == NodeId(3) && is_append(m)).len(), 1);
    // New proposals do not send more to a follower being probed.
    for _ in 0..5 {
        c.propose(1, b"x").unwrap();
        held.extend(c.deliver_except(slow_answers));
    }
    assert_eq!(c.sent_since(0, |m| m.to == NodeId(3) && is_append(m)).len(), 1);
    assert_eq!(peer(&c, 1, 3).inflight_messages, 0);
    // Each answer allows exactly one more probe until the logs match.
    assert_eq!(held.len(), 1, "{held:?}");
    c.network.extend(held);
    c.deliver_one();
    let held = c.deliver_except(slow_answers);
    assert_eq!(c.sent_since(0, |m| m.to == NodeId(3) && is_append(m)).len(), 2);
    assert_eq!(peer(&c, 1, 3).state, ProgressState::Probe);
    c.network.extend(held);
    c.deliver_all();
    assert_eq!(peer(&c, 1, 3).state, ProgressState::Replicate);
    assert_eq!(c.node(3).last_index(), LogIndex(16));
    assert_eq!(peer(&c, 1, 3).match_index, LogIndex(16));
}

#[test]
fn unreachable_follower_falls_back_to_probe() {
    let (mut c, leader, _, slow) = established(|_| {});
    assert_eq!(peer(&c, leader, slow).state, ProgressState::Replicate);
    c.node_mut(leader).handle_unreachable(NodeId(slow));
    assert_eq!(peer(&c, leader, slow).state, ProgressState::Probe);
    let mark = c.sent.len();
    let slow_answers = |m: &crate::Message| is_append_response(m) && m.from == NodeId(slow);
    for _ in 0..3 {
        c.propose(leader, b"x").unwrap();
        c.deliver_except(slow_answers);
    }
    assert_eq!(c.sent_since(mark, |m| m.to == NodeId(slow) && is_append(m)).len(), 1);
}

#[test]
fn lost_append_entries_is_sent_again_while_the_leader_is_idle() {
    // Raft Figure 2: "If followers crash or run slowly, or if network packets
    // are lost, the leader retries AppendEntries RPCs indefinitely."
    let (mut c, leader, f1, f2) = established(|_| {});
    let index = c.propose(leader, b"x").unwrap();
    let lost = c.deliver_except(is_append);
    assert_eq!(lost.len(), 2, "{lost:?}");
    // No new proposal: only heartbeats and timers can bring the entry back.
    c.run_for(Duration::from_secs(2));
    assert_eq!(c.node(f1).last_index(), index);
    assert_eq!(c.node(f2).last_index(), index);
    assert_eq!(c.commit_of(leader), index);
}

#[test]
fn inflight_window_holds_for_a_live_follower_with_a_slow_disk() {
    let (mut c, leader, _, slow) = established(|cfg| cfg.inflight_messages_max = 3);
    // The follower answers heartbeats at once but acknowledges nothing.
    c.stall(slow);
    let mark = c.sent.len();
    for _ in 0..40 {
        c.propose(leader, b"x").unwrap();
        c.run_for(Duration::from_millis(25));
    }
    let sent = appends_with_entries(&c, mark, slow);
    assert!(sent <= 3, "{sent} AppendEntries outstanding to {slow}; the window is 3");
    // Once the disk catches up, so does the follower.
    c.unstall(slow);
    c.run_for(Duration::from_millis(200));
    assert_eq!(peer(&c, leader, slow).match_index, c.node(leader).last_index());
}
