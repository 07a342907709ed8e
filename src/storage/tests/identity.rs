//! A data directory's identity, the floor kept beside the log, and forcing
//! a new cluster from one survivor.

use super::*;
use crate::membership::Membership;
use crate::types::Incarnation;

fn identity(node: u64) -> Identity {
    Identity { node_id: NodeId(node), incarnation: Incarnation(0x1234 + node), cluster_id: "oar".into() }
}

#[test]
fn an_identity_reads_back_and_damage_to_it_is_an_error_never_a_guess() {
    let fs = SimFs::new();
    fs.create_dir_all(&dir()).unwrap();
    assert_eq!(read_identity(&fs, &dir()).unwrap(), None);
    write_identity(&fs, &dir(), &identity(1)).unwrap();
    assert_eq!(read_identity(&fs, &dir()).unwrap(), Some(identity(1)));
    let path = dir().join(IDENTITY_FILE);
    let len = fs.contents(&path).unwrap().len() as u64;
    for offset in 0..len {
        let damaged = SimFs::new();
        damaged.write_durable(&path, &fs.contents(&path).unwrap());
        damaged.flip_bits(&path, offset, 0x10);
        assert!(
            matches!(read_identity(&damaged, &dir()), Err(StorageError::Identity { .. })),
            "a flipped byte at {offset} went unnoticed"
        );
    }
}

#[test]
fn opening_an_identity_creates_it_once_and_refuses_another_nodes_or_a_log_without_one() {
    let fs = SimFs::new();
    fs.create_dir_all(&dir()).unwrap();
    let first = open_identity(&fs, &dir(), NodeId(2), "oar", false).unwrap();
    assert_ne!(first.incarnation, Incarnation::UNKNOWN);
    assert_eq!(open_identity(&fs, &dir(), NodeId(2), "oar", true).unwrap(), first, "kept, never redrawn");
    let other = open_identity(&fs, &dir(), NodeId(3), "oar", true).unwrap_err().to_string();
    assert!(other.contains("belongs to node 2"), "{other}");
    let cluster = open_identity(&fs, &dir(), NodeId(2), "prod", true).unwrap_err().to_string();
    assert!(cluster.contains("cluster \"oar\""), "{cluster}");

    let fresh = SimFs::new();
    fresh.create_dir_all(&dir()).unwrap();
    let missing = open_identity(&fresh, &dir(), NodeId(2), "oar", true).unwrap_err().to_string();
    assert!(missing.contains("no identity") && missing.contains("oar member replace"), "{missing}");
}

#[test]
fn the_floor_follows_the_synced_log_and_drops_before_a_truncation() {
    let fs = SimFs::new();
    let (mut wal, recovered) = open(&fs, small());
    assert_eq!(recovered.floor, Floor::default());
    wal.set_floor_step(1);
    wal.write(&entries(1..=5, 1), Some(hard_state(1, 1, 3))).unwrap();
    wal.sync().unwrap();
    assert_eq!(wal.floor(), Floor { index: LogIndex(5), index_term: Term(1), term: Term(1) });
    // A leader of term 2 replaces entries 4 and 5: the floor comes down to
    // 3 before they go, so that recovery never takes the truncation for a
    // loss.
    wal.write(&entries(4..=4, 2), Some(hard_state(2, 0, 3))).unwrap();
    assert_eq!((wal.floor().index, wal.floor().index_term), (LogIndex(3), Term(1)));
    wal.sync().unwrap();
    drop(wal);
    let (_, recovered) = open(&fs, small());
    assert_eq!(recovered.floor, Floor { index: LogIndex(4), index_term: Term(2), term: Term(2) });
}

#[test]
fn recovery_tells_a_log_set_back_to_an_older_copy() {
    let fs = SimFs::new();
    let (mut wal, _) = open(&fs, small());
    wal.set_floor_step(1);
    wal.write(&entries(1..=3, 1), Some(hard_state(1, 1, 2))).unwrap();
    wal.sync().unwrap();
    let older: Vec<(std::path::PathBuf, Vec<u8>)> = fs
        .durable_paths()
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".wal"))
        .map(|p| (p.clone(), fs.durable_contents(&p).unwrap()))
        .collect();
    wal.write(&entries(4..=8, 2), Some(hard_state(2, 2, 7))).unwrap();
    wal.sync().unwrap();
    drop(wal);
    // The log, and only the log, is restored from the older copy.
    for path in fs.durable_paths().into_iter().filter(|p| p.to_string_lossy().contains(".wal")) {
        fs.remove_durable(&path);
    }
    for (path, bytes) in &older {
        fs.write_durable(path, bytes);
    }
    let (wal, mut recovered) = open(&fs, small());
    assert_eq!(wal.last_index(), LogIndex(3));
    let repair_to =
        reconcile_floor(&dir(), recovered.floor, &mut recovered.hard_state, (LogIndex(0), Term(0)), |i| {
            wal.term(i)
        });
    assert_eq!(repair_to, LogIndex(8), "it held entry 8 and no longer does");
    assert_eq!(
        (recovered.hard_state.term, recovered.hard_state.vote),
        (Term(3), None),
        "term 2, and maybe a vote in it, were lost: start after it, having voted in none"
    );
    // An honest log passes.
    let (mut hs, floor) =
        (hard_state(2, 2, 7), Floor { index: LogIndex(3), index_term: Term(1), term: Term(2) });
    assert_eq!(reconcile_floor(&dir(), floor, &mut hs, (LogIndex(0), Term(0)), |i| wal.term(i)), LogIndex(0));
    assert_eq!(hs, hard_state(2, 2, 7));
}

#[test]
fn a_snapshot_whose_term_the_hard_state_lost_starts_the_node_in_the_next_term() {
    // A follower learned of term 4 and was sent a snapshot of it; the
    // snapshot file was fsynced, the hard state recording term 4 was not
    // when the power went. The node must not start (or refuse to start) as
    // if term 4 never happened.
    let fs = SimFs::new();
    let (mut wal, _) = open(&fs, small());
    wal.write(&entries(1..=3, 1), Some(hard_state(1, 1, 2))).unwrap();
    wal.sync().unwrap();
    let mut hs = wal.hard_state();
    let repair_to = reconcile_floor(&dir(), wal.floor(), &mut hs, (LogIndex(9), Term(4)), |i| wal.term(i));
    assert_eq!(repair_to, LogIndex(0), "no synced entry was lost");
    assert_eq!((hs.term, hs.vote), (Term(5), None), "after the snapshot's term, having voted in none");
    // A hard state at or past the snapshot's term is kept as it is.
    let mut hs = hard_state(4, 2, 2);
    reconcile_floor(&dir(), wal.floor(), &mut hs, (LogIndex(9), Term(4)), |i| wal.term(i));
    assert_eq!(hs, hard_state(4, 2, 2));
}

#[test]
fn forcing_a_new_cluster_keeps_the_log_and_leaves_one_voter() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("n2");
    {
        let (mut wal, _store, _) =
            open_node(&path, WalOptions::default(), SnapshotOptions::default()).unwrap();
        let three = Membership::with_identified_voters([1, 2, 3].map(|i| (NodeId(i), Incarnation(i))));
        let config = Entry {
            index: LogIndex(1),
            term: Term(1),
            kind: EntryKind::Membership,
            data: Bytes::from(three.to_bytes()),
        };
        wal.write(&[config], None).unwrap();
        wal.write(&entries(2..=6, 4), Some(hard_state(5, 2, 4))).unwrap();
        wal.sync().unwrap();
    }
    write_identity(&RealFs, &path, &identity(2)).unwrap();
    let refused = force_new_cluster(&path, NodeId(3), "127.0.0.1:7002", WalOptions::default());
    assert!(refused.unwrap_err().to_string().contains("belongs to node 2"));

    let forced = force_new_cluster(&path, NodeId(2), "127.0.0.1:7002", WalOptions::default()).unwrap();
    assert_eq!((forced.last_index, forced.known_commit), (LogIndex(6), LogIndex(4)));
    assert_eq!((forced.config_index, forced.term), (LogIndex(7), Term(6)));
    assert_eq!(forced.previous.voters.len(), 3);
    let (_, _, state) = open_node(&path, WalOptions::default(), SnapshotOptions::default()).unwrap();
    assert_eq!(state.entries.len(), 7, "every entry kept, and the configuration after them");
    let last = state.entries.last().unwrap();
    let m = Membership::decode(&last.data).unwrap();
    assert_eq!(m.voters.iter().copied().collect::<Vec<_>>(), vec![NodeId(2)]);
    assert_eq!(m.incarnation(NodeId(2)), identity(2).incarnation, "admitted as its own disk");
    assert_eq!(state.hard_state.term, Term(6));
}
