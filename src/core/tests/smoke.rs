use std::time::Duration;

use super::harness::Cluster;
use crate::types::{Bytes, LogIndex};

#[test]
fn three_nodes_elect_and_commit() {
    let mut c = Cluster::new(3);
    let leader = c.elect(Duration::from_secs(5));
    let now = c.now;
    let index =
        c.nodes.get_mut(&leader).unwrap().propose(now, Bytes::from_static(b"x")).unwrap().index().unwrap();
    c.run_for(Duration::from_millis(200));
    for id in 1..=3 {
        assert!(c.commit_of(id) >= index, "node {id} commit {:?}", c.commit_of(id));
        assert_eq!(c.applied[&crate::NodeId(id)].last().unwrap().index, index);
    }
    assert_eq!(index, LogIndex(2));
}

#[test]
fn single_node_elects_itself() {
    let mut c = Cluster::new(1);
    let leader = c.elect(Duration::from_secs(1));
    assert_eq!(leader.0, 1);
    c.deliver_all();
    assert_eq!(c.commit_of(1), LogIndex(1));
}
