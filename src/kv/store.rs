//! The replicated state machine: a map from keys to values.
//!
//! Every replica applies the same [`WriteOp`]s in log order through
//! [`Store::apply`], which is deterministic: the same operations on the
//! same map give the same map and the same replies on every node. Reads go
//! through [`Store::query`] once the replica has applied up to the read's
//! index. Replies follow Redis's for the same commands.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::command::{ReadOp, SetCondition, WriteOp};
use super::reply::Reply;
use super::resp::parse_i64;

/// The key-value map every replica holds.
///
/// A `BTreeMap` rather than a hash map: its order is the same on every node
/// and from one run to the next, which snapshots (and tests comparing
/// replicas) want; lookups cost `O(log n)` comparisons of short keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Store {
    map: BTreeMap<Bytes, Bytes>,
}

/// The error for `INCR` and friends on a value that is not a 64-bit
/// integer, as Redis words it.
const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
const OVERFLOW: &str = "ERR increment or decrement would overflow";

impl Store {
    /// An empty map.
    pub fn new() -> Store {
        Store::default()
    }

    /// Applies one committed write and returns the reply for the client
    /// that proposed it. Deterministic; never panics on any operation.
    pub fn apply(&mut self, op: WriteOp) -> Reply {
        match op {
            WriteOp::Set { key, value, condition, get } => self.set(key, value, condition, get),
            WriteOp::Del { keys } => {
                let removed = keys.iter().filter(|key| self.map.remove(key.as_ref()).is_some()).count();
                Reply::Integer(count_reply(removed))
            }
            WriteOp::IncrBy { key, delta } => self.incr_by(key, delta),
            WriteOp::MSet { pairs } => {
                for (key, value) in pairs {
                    self.map.insert(key, value);
                }
                Reply::OK
            }
        }
    }

    /// Answers a read from the map as it stands.
    pub fn query(&self, op: &ReadOp) -> Reply {
        match op {
            ReadOp::Get { key } => self.value_reply(key),
            ReadOp::Exists { keys } => Reply::Integer(count_reply(
                keys.iter().filter(|key| self.map.contains_key(key.as_ref())).count(),
            )),
            ReadOp::MGet { keys } => Reply::Array(keys.iter().map(|key| self.value_reply(key)).collect()),
            ReadOp::DbSize => Reply::Integer(count_reply(self.map.len())),
        }
    }

    /// The value of `key`, if any.
    pub fn get(&self, key: &[u8]) -> Option<&Bytes> {
        self.map.get(key)
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the map holds no key.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Every pair, in key order (for snapshots and for comparing replicas).
    pub fn iter(&self) -> impl Iterator<Item = (&Bytes, &Bytes)> {
        self.map.iter()
    }

    /// A store holding `map`, for the snapshot reader.
    pub(super) fn from_map(map: BTreeMap<Bytes, Bytes>) -> Store {
        Store { map }
    }

    fn value_reply(&self, key: &[u8]) -> Reply {
        self.map.get(key).map_or(Reply::NullBulk, |value| Reply::Bulk(value.clone()))
    }

    /// `SET` as in Redis 7: with `GET` the reply is the old value (or null)
    /// whether or not the condition held; without it, `OK` if the value was
    /// written and null if the condition failed.
    fn set(&mut self, key: Bytes, value: Bytes, condition: SetCondition, get: bool) -> Reply {
        let old = self.map.get(&key);
        let write = match condition {
            SetCondition::Always => true,
            SetCondition::IfAbsent => old.is_none(),
            SetCondition::IfPresent => old.is_some(),
        };
        let reply = match (get, old) {
            (true, Some(old)) => Reply::Bulk(old.clone()),
            (true, None) => Reply::NullBulk,
            (false, _) if write => Reply::OK,
            (false, _) => Reply::NullBulk,
        };
        if write {
            self.map.insert(key, value);
        }
        reply
    }

    /// `INCRBY`: a missing key counts as 0; the value must be a canonical
    /// 64-bit integer and the sum must not overflow, else the map is
    /// unchanged and the reply is an error.
    fn incr_by(&mut self, key: Bytes, delta: i64) -> Reply {
        let current = match self.map.get(&key) {
            None => 0,
            Some(value) => match parse_i64(value) {
                Some(current) => current,
                None => return Reply::error(NOT_INTEGER),
            },
        };
        let Some(new) = current.checked_add(delta) else {
            return Reply::error(OVERFLOW);
        };
        self.map.insert(key, Bytes::from(new.to_string()));
        Reply::Integer(new)
    }
}

/// A count as an integer reply. Counts are bounded by memory, far below
/// `i64::MAX`.
fn count_reply(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}
