//! A simulated network: per-link reachability (so partitions can be
//! symmetric, one-way, or bridged through one node), and per-message loss,
//! duplication and delay (which reorders).

use std::collections::BTreeSet;
use std::time::Duration;

use crate::rng::Rng;
use crate::types::NodeId;

/// How messages fare on the wire.
#[derive(Clone, Debug)]
pub(crate) struct Network {
    /// Directed links that drop everything: (from, to).
    pub(crate) cut: BTreeSet<(NodeId, NodeId)>,
    /// Per-message loss probability, in percent.
    pub(crate) drop_percent: u64,
    /// Per-message duplication probability, in percent.
    pub(crate) duplicate_percent: u64,
    /// Usual one-way delay range.
    pub(crate) delay_min: Duration,
    pub(crate) delay_max: Duration,
    /// Probability, in percent, that a message is held much longer, which
    /// reorders it behind later ones.
    pub(crate) long_delay_percent: u64,
}

impl Network {
    /// A network that loses nothing; `steady`: every message takes the
    /// same time.
    pub(crate) fn healthy(steady: bool) -> Network {
        Network {
            cut: BTreeSet::new(),
            drop_percent: 0,
            duplicate_percent: 0,
            delay_min: if steady { Duration::from_millis(1) } else { Duration::from_micros(100) },
            delay_max: if steady { Duration::from_millis(1) } else { Duration::from_millis(3) },
            long_delay_percent: 0,
        }
    }

    pub(crate) fn can_send(&self, from: NodeId, to: NodeId) -> bool {
        !self.cut.contains(&(from, to))
    }

    /// The delays of the copies of one message that arrive (none if lost).
    pub(crate) fn fate(&self, rng: &mut Rng, out: &mut Vec<Duration>) {
        out.clear();
        if rng.chance(self.drop_percent, 100) {
            return;
        }
        let copies = if rng.chance(self.duplicate_percent, 100) { 2 } else { 1 };
        for _ in 0..copies {
            let mut nanos = rng.range(self.delay_min.as_nanos() as u64, self.delay_max.as_nanos() as u64 + 1);
            if rng.chance(self.long_delay_percent, 100) {
                nanos += rng.range(50_000_000, 1_000_000_000);
            }
            out.push(Duration::from_nanos(nanos));
        }
    }

    /// Cuts every link between the two groups, both ways.
    pub(crate) fn split(&mut self, a: &[NodeId], b: &[NodeId]) {
        for &x in a {
            for &y in b {
                self.cut.insert((x, y));
                self.cut.insert((y, x));
            }
        }
    }

    /// Cuts the links from every node of `from` to every node of `to` only.
    pub(crate) fn cut_one_way(&mut self, from: &[NodeId], to: &[NodeId]) {
        for &x in from {
            for &y in to {
                self.cut.insert((x, y));
            }
        }
    }
}
