//! How a node runs: the runtime's settings around the core's.

use std::time::Duration;

use super::{Peer, StartError};
use crate::codec::{ADDRESS_BYTES_MAX, CLUSTER_ID_BYTES_MAX};
use crate::config::{Config, ConfigError};
use crate::storage::{SnapshotOptions, WalOptions};
use crate::types::NodeId;

/// How a node runs: the core's [`Config`] plus the runtime's own settings.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// The consensus settings; `raft.id` is this node.
    pub raft: Config,
    /// Names the cluster; peers with another name are refused. 1 to 255
    /// bytes of UTF-8.
    pub cluster_id: String,
    /// Where this node serves its own clients (for `oar serve`, its RESP
    /// address), told to every peer it dials, so that any node can tell a
    /// client where the others serve, the leader above all (see
    /// [`Handle::client_addresses`](super::Handle::client_addresses)). Empty: not said. At most 255 bytes.
    pub client_addr: String,
    /// How long [`Handle::propose`](super::Handle::propose) and [`Handle::read`](super::Handle::read) wait for an answer.
    pub request_timeout: Duration,
    /// How long a session opened here ([`Handle::open_session`](super::Handle::open_session)) lives
    /// unused, in log time (the proposers' clocks as the log carries
    /// them). It is written into the session's opening entry, so every
    /// node expires the session alike whatever its own setting.
    pub session_ttl: Duration,
    /// How long [`Session::propose`](super::Session::propose) (and [`Handle::open_session`](super::Handle::open_session)) keep
    /// retrying a command whose outcome is unknown, or that found no
    /// leader, before they return the error.
    pub session_retry_for: Duration,
    /// Bytes queued for one peer's connection beyond which messages to it
    /// are dropped and the core told it is unreachable.
    pub peer_queue_bytes_max: usize,
    /// The first delay before redialing a peer; it doubles per failure.
    pub reconnect_delay_min: Duration,
    /// The longest delay between dials.
    pub reconnect_delay_max: Duration,
    /// How long a dial may take before it is abandoned and retried.
    pub connect_timeout: Duration,
    /// Committed entries handed to the apply thread and not yet applied,
    /// beyond which the event loop stops handing out more.
    pub apply_backlog_max: usize,
    /// How the log lays out its files.
    pub wal: WalOptions,
    /// How snapshots are stored and received.
    pub snapshots: SnapshotOptions,
    /// Start as a node that is not yet a member: it waits for a leader to
    /// add it (`add_learner`); `peers` only tell it where nodes listen.
    /// That is also what a node with an empty data directory does without
    /// [`bootstrap`](RuntimeConfig::bootstrap); `join` only says so
    /// explicitly, and refuses `bootstrap`.
    pub join: bool,
    /// Bootstrap a new cluster whose voters are `peers`, if this node's data
    /// directory is empty; ignored once it holds anything. Give it to every
    /// initial node, with the same `peers`: the one with the lowest id
    /// writes the first configuration once all have connected and said
    /// they are new (see the `bootstrap` module). Leaving it set on later
    /// starts is harmless: a node that lost its disk and comes back with it
    /// finds its peers in a cluster already and waits to be re-admitted
    /// instead of forming a second cluster.
    pub bootstrap: bool,
    /// The peers are exactly the cluster's voters, now and always (a
    /// cluster of fixed shape, as `oar cluster` runs one): a data directory
    /// whose configuration lists this node with other voters is refused at
    /// start ([`StartError::PeersDiffer`]), instead of running a cluster of
    /// another shape than the one asked for (`--nodes 5` on directories
    /// made with 3). Leave it unset for a cluster whose membership changes.
    pub peers_are_voters: bool,
    /// The largest piece a snapshot is sent in.
    pub snapshot_chunk_bytes_max: usize,
    /// Chunks sent to one follower and not yet acknowledged.
    pub snapshot_chunks_in_flight: usize,
    /// A snapshot transfer that makes no progress for this long is
    /// abandoned (and later retried).
    pub snapshot_stall_timeout: Duration,
}

impl RuntimeConfig {
    /// Defaults for node `id` on a local network.
    pub fn new(id: NodeId) -> RuntimeConfig {
        RuntimeConfig {
            raft: Config::new(id),
            cluster_id: "oar".to_string(),
            client_addr: String::new(),
            request_timeout: Duration::from_secs(5),
            session_ttl: Duration::from_secs(3600),
            session_retry_for: Duration::from_secs(30),
            peer_queue_bytes_max: 64 << 20,
            reconnect_delay_min: Duration::from_millis(20),
            reconnect_delay_max: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(2),
            apply_backlog_max: 1 << 16,
            wal: WalOptions::default(),
            snapshots: SnapshotOptions::default(),
            join: false,
            bootstrap: false,
            peers_are_voters: false,
            snapshot_chunk_bytes_max: 256 << 10,
            snapshot_chunks_in_flight: 8,
            snapshot_stall_timeout: Duration::from_secs(10),
        }
    }

    pub(super) fn validate(&self, peers: &[Peer]) -> Result<(), StartError> {
        let fail =
            |field: &'static str, reason: String| Err(StartError::Config(ConfigError { field, reason }));
        self.raft.validate().map_err(StartError::Config)?;
        if !(1..=CLUSTER_ID_BYTES_MAX).contains(&self.cluster_id.len()) {
            return fail(
                "cluster_id",
                format!(
                    "{:?} has {} bytes; give it 1 to {CLUSTER_ID_BYTES_MAX}",
                    self.cluster_id,
                    self.cluster_id.len()
                ),
            );
        }
        if self.client_addr.len() > ADDRESS_BYTES_MAX {
            return fail(
                "client_addr",
                format!("{:?} is longer than {ADDRESS_BYTES_MAX} bytes", self.client_addr),
            );
        }
        if self.session_ttl.is_zero() {
            return fail("session_ttl", "zero; a session would expire at once".into());
        }
        if self.request_timeout.is_zero() {
            return fail("request_timeout", "zero; give callers time to be answered".into());
        }
        if (self.peer_queue_bytes_max as u64) < self.raft.message_bytes_max * 2 {
            return fail(
                "peer_queue_bytes_max",
                format!(
                    "{} must hold at least two messages of message_bytes_max {}",
                    self.peer_queue_bytes_max, self.raft.message_bytes_max
                ),
            );
        }
        if self.reconnect_delay_min.is_zero() || self.reconnect_delay_min > self.reconnect_delay_max {
            return fail(
                "reconnect_delay_min",
                "must satisfy 0 < reconnect_delay_min <= reconnect_delay_max".into(),
            );
        }
        if self.connect_timeout.is_zero() {
            return fail("connect_timeout", "zero; a dial needs time to complete".into());
        }
        if self.apply_backlog_max == 0 {
            return fail("apply_backlog_max", "zero; the state machine would never be fed".into());
        }
        if self.snapshot_chunk_bytes_max == 0
            || (self.snapshot_chunk_bytes_max * self.snapshot_chunks_in_flight.max(1)) as u64
                > self.peer_queue_bytes_max as u64 / 2
        {
            return fail(
                "snapshot_chunk_bytes_max",
                format!(
                    "{} times snapshot_chunks_in_flight {} must be positive and fit in half of peer_queue_bytes_max {}",
                    self.snapshot_chunk_bytes_max, self.snapshot_chunks_in_flight, self.peer_queue_bytes_max
                ),
            );
        }
        if self.snapshot_chunks_in_flight == 0 {
            return fail("snapshot_chunks_in_flight", "zero; a snapshot could never be sent".into());
        }
        if self.snapshot_stall_timeout.is_zero() {
            return fail("snapshot_stall_timeout", "zero; a transfer needs time".into());
        }
        if self.join && self.bootstrap {
            return fail(
                "join",
                "join and bootstrap are both set; a node either waits to be added or bootstraps a new cluster"
                    .into(),
            );
        }
        let mut ids: Vec<NodeId> = peers.iter().map(|p| p.id).collect();
        ids.sort_unstable();
        if let Some(pair) = ids.windows(2).find(|w| w[0] == w[1]) {
            return fail("peers", format!("node {} is listed twice among the peers", pair[0]));
        }
        if ids.contains(&NodeId(0)) {
            return fail("peers", "node id 0 is reserved; number nodes from 1".into());
        }
        if !ids.contains(&self.raft.id) {
            return fail(
                "peers",
                format!(
                    "this node ({}) is not among the peers; list it with the address it listens on",
                    self.raft.id
                ),
            );
        }
        Ok(())
    }
}
