//! A model check of the log on the simulated file system: random sequences
//! of writes, syncs, compactions, clean reopens and crashes. After every
//! crash the recovered log must be what the synced writes left plus a
//! prefix of the unsynced ones (the first lost write possibly torn between
//! its entries), never a hard state ahead of its entries, never a mix.
//!
//! A failure prints the minimal sequence of operations, which proptest
//! also saves under `proptest-regressions/` and replays first on the next
//! run; `PROPTEST_CASES=5000 cargo test --test integration storage_model`
//! searches longer.

use std::path::PathBuf;

use oar::rng::Rng;
use oar::storage::{RecoveredLog, SimFs, Wal, WalOptions};
use oar::{Bytes, Entry, EntryKind, HardState, LogIndex, NodeId, Term};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    /// Append `count` entries starting `back` places before the end (0 =
    /// right after the last entry; more = replace a suffix), optionally with
    /// a new hard state in the same write.
    Write {
        back: u16,
        count: u8,
        term_step: u8,
        data_bytes: u8,
        hard_state: Option<(u8, u8)>,
    },
    SetHardState {
        term_step: u8,
        vote: u8,
    },
    Sync,
    /// Compact below the index `fraction`/256 of the way through the log.
    Compact {
        fraction: u8,
    },
    Read {
        from: u16,
        count: u8,
    },
    Reopen,
    Crash {
        seed: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u16..40, 1u8..6, 0u8..2, 0u8..90, proptest::option::of((0u8..2, 0u8..4))).prop_map(
            |(back, count, term_step, data_bytes, hard_state)| {
                // Mostly append at the end; sometimes reach back.
                let back = if back < 28 { 0 } else { back - 27 };
                Op::Write { back, count, term_step, data_bytes, hard_state }
            }
        ),
        2 => (0u8..2, 0u8..4).prop_map(|(term_step, vote)| Op::SetHardState { term_step, vote }),
        3 => Just(Op::Sync),
        1 => any::<u8>().prop_map(|fraction| Op::Compact { fraction }),
        1 => (0u16..200, 1u8..20).prop_map(|(from, count)| Op::Read { from, count }),
        1 => Just(Op::Reopen),
        2 => any::<u64>().prop_map(|seed| Op::Crash { seed }),
    ]
}

/// A log as the model sees it: every entry from index 1 (compaction only
/// moves `first_index`; the entries below it never change again).
#[derive(Clone, Debug, PartialEq)]
struct State {
    entries: Vec<Entry>,
    hard_state: HardState,
}

impl State {
    fn last(&self) -> u64 {
        self.entries.len() as u64
    }

    fn term(&self, index: u64) -> Term {
        if index == 0 {
            Term(0)
        } else {
            self.entries[index as usize - 1].term
        }
    }

    fn apply(&mut self, write: &Write) {
        if let Some(first) = write.entries.first() {
            self.entries.truncate(first.index.0 as usize - 1);
            self.entries.extend(write.entries.iter().cloned());
        }
        if let Some(hs) = write.hard_state {
            self.hard_state = hs;
        }
    }
}

#[derive(Clone, Debug)]
struct Write {
    entries: Vec<Entry>,
    hard_state: Option<HardState>,
}

struct Harness {
    fs: SimFs,
    wal: Option<Wal<SimFs>>,
    options: WalOptions,
    /// What the log holds now, synced or not.
    current: State,
    /// What the last sync made durable.
    durable: State,
    /// Writes since then, in order.
    unsynced: Vec<Write>,
    first_index: u64,
}

fn dir() -> PathBuf {
    PathBuf::from("/node")
}

impl Harness {
    fn new(segment_size_bytes: u64) -> Harness {
        let fs = SimFs::new();
        let options = WalOptions { segment_size_bytes };
        let (wal, recovered) = Wal::open_with(fs.clone(), dir(), options).expect("open a new log");
        assert!(recovered.entries.is_empty());
        let empty = State { entries: Vec::new(), hard_state: HardState::default() };
        Harness {
            fs,
            wal: Some(wal),
            options,
            current: empty.clone(),
            durable: empty,
            unsynced: Vec::new(),
            first_index: 1,
        }
    }

    fn wal(&mut self) -> &mut Wal<SimFs> {
        self.wal.as_mut().expect("open")
    }

    fn write(&mut self, write: Write) {
        self.wal().write(&write.entries, write.hard_state).expect("write");
        self.current.apply(&write);
        self.unsynced.push(write);
    }

    fn sync(&mut self) {
        self.wal().sync().expect("sync");
        self.durable = self.current.clone();
        self.unsynced.clear();
    }

    fn reopen(&mut self) -> RecoveredLog {
        self.wal = None;
        let (wal, recovered) = Wal::open_with(self.fs.clone(), dir(), self.options).expect("reopen");
        wal.check_invariants();
        self.wal = Some(wal);
        recovered
    }

    /// Every state a crash may leave: the durable state plus a prefix of
    /// the unsynced writes, the first lost one possibly torn.
    fn crash_outcomes(&self) -> Vec<State> {
        let mut outcomes = Vec::new();
        let mut state = self.durable.clone();
        for write in &self.unsynced {
            outcomes.push(state.clone());
            if let Some(first) = write.entries.first() {
                let from = first.index.0;
                // A truncation across segments may cut the old log at any
                // segment boundary at or after the truncation point.
                for keep in from - 1..=state.last() {
                    let mut cut = state.clone();
                    cut.entries.truncate(keep as usize);
                    outcomes.push(cut);
                }
                for n in 0..=write.entries.len() {
                    let mut torn = state.clone();
                    torn.apply(&Write { entries: write.entries[..n].to_vec(), hard_state: None });
                    outcomes.push(torn);
                }
            }
            state.apply(write);
        }
        outcomes.push(state);
        outcomes
    }

    fn check_recovered(&self, recovered: &RecoveredLog, outcomes: &[State]) -> Result<State, TestCaseError> {
        prop_assert_eq!(recovered.first_index, LogIndex(self.first_index));
        let matching = outcomes.iter().find(|state| {
            state.hard_state == recovered.hard_state
                && state.last() + 1 >= self.first_index
                && state.entries[(self.first_index - 1) as usize..] == recovered.entries[..]
                && state.term(self.first_index - 1) == recovered.prev_term
        });
        let Some(state) = matching else {
            return Err(TestCaseError::fail(format!(
                "recovered {} entries [{}..] with {:?}, matching no allowed outcome; \
                 durable had {} entries, {} unsynced writes",
                recovered.entries.len(),
                recovered.first_index.0,
                recovered.hard_state,
                self.durable.last(),
                self.unsynced.len()
            )));
        };
        Ok(state.clone())
    }

    fn check_reads(&mut self) -> Result<(), TestCaseError> {
        let first = self.first_index;
        let last = self.current.last();
        let wal = self.wal.as_ref().expect("open");
        prop_assert_eq!(wal.first_index(), LogIndex(first));
        prop_assert_eq!(wal.last_index(), LogIndex(last));
        prop_assert_eq!(wal.hard_state(), self.current.hard_state);
        let read = wal.read(LogIndex(first)..LogIndex(last + 1)).expect("read");
        prop_assert_eq!(&read[..], &self.current.entries[(first - 1) as usize..]);
        wal.check_invariants();
        Ok(())
    }
}

fn run(segment_size_bytes: u64, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut h = Harness::new(segment_size_bytes);
    for op in ops {
        match op {
            Op::Write { back, count, term_step, data_bytes, hard_state } => {
                let last = h.current.last();
                // Valid start points: first_index ..= last + 1.
                let span = last + 2 - h.first_index;
                let from = last + 1 - u64::from(back) % span;
                let term =
                    Term(h.current.term(from - 1).0.max(h.current.hard_state.term.0) + u64::from(term_step));
                let entries = (from..from + u64::from(count))
                    .map(|index| Entry {
                        index: LogIndex(index),
                        term,
                        kind: if data_bytes == 0 { EntryKind::Blank } else { EntryKind::Command },
                        data: Bytes::from(vec![index as u8; usize::from(data_bytes)]),
                    })
                    .collect();
                let hard_state = hard_state.map(|(step, vote)| HardState {
                    term: Term(term.0 + u64::from(step)),
                    vote: (vote != 0).then_some(NodeId(u64::from(vote))),
                    commit: LogIndex(from - 1),
                });
                h.write(Write { entries, hard_state });
            }
            Op::SetHardState { term_step, vote } => {
                let hs = HardState {
                    term: Term(h.current.hard_state.term.0 + u64::from(term_step)),
                    vote: (vote != 0).then_some(NodeId(u64::from(vote))),
                    commit: h.current.hard_state.commit,
                };
                h.write(Write { entries: Vec::new(), hard_state: Some(hs) });
            }
            Op::Sync => h.sync(),
            Op::Compact { fraction } => {
                let below =
                    h.first_index + (h.current.last() + 1 - h.first_index) * u64::from(fraction) / 256;
                let first = h.wal().compact_prefix(LogIndex(below)).expect("compact").0;
                prop_assert!(first >= h.first_index && first <= below.max(h.first_index));
                h.first_index = first;
            }
            Op::Read { from, count } => {
                let last = h.current.last();
                let start = h.first_index + u64::from(from) % (last + 2 - h.first_index);
                let end = (start + u64::from(count)).min(last + 1);
                let read = h.wal.as_ref().expect("open").read(LogIndex(start)..LogIndex(end)).expect("read");
                prop_assert_eq!(&read[..], &h.current.entries[(start - 1) as usize..(end - 1) as usize]);
            }
            Op::Reopen => {
                // A clean close loses nothing: writes reached the file.
                let recovered = h.reopen();
                let state = h.check_recovered(&recovered, std::slice::from_ref(&h.current))?;
                prop_assert!(recovered.torn_tail.is_none());
                h.current = state.clone();
                h.durable = state;
                h.unsynced.clear();
            }
            Op::Crash { seed } => {
                let outcomes = h.crash_outcomes();
                h.fs.crash(&mut Rng::new(seed));
                let recovered = h.reopen();
                let state = h.check_recovered(&recovered, &outcomes)?;
                h.current = state.clone();
                h.durable = state;
                h.unsynced.clear();
            }
        }
        h.check_reads()?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn after_any_crash_the_log_is_the_synced_model_plus_a_prefix_of_the_rest(
        segment_size_bytes in prop_oneof![Just(256u64), Just(700), Just(4096)],
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        run(segment_size_bytes, ops)?;
    }
}
