//! oar: Raft consensus for synchronous Rust.
//!
//! The heart of the crate is [`Node`], a deterministic, sans-IO Raft state
//! machine: it consumes inputs (messages, the time, "these writes are durable")
//! and produces outputs (messages to send, writes to persist, entries to apply,
//! the next deadline). Around it:
//!
//! - [`codec`]: the wire format, with total decoders fit for fuzzing;
//! - [`sim`]: a deterministic cluster simulator with fault injection and a
//!   safety checker, driven by a seed;
//! - [`runtime`]: the core with threads, sockets and a disk behind a
//!   blocking [`Handle`](runtime::Handle);
//! - [`kv`]: the Redis-protocol key-value service (RESP codec, commands,
//!   the replicated map), without IO;
//! - [`server`]: that service over TCP on a runtime node, as `oar serve`
//!   runs it.
//!
//! See `DESIGN.md` in the repository for the architecture and its contracts.
#![deny(missing_docs)]
#![doc = ""]
#![doc = "## The README"]
#![doc = ""]
#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod codec;
pub mod config;
pub mod core;
pub mod kv;
pub mod membership;
pub mod message;
pub mod rng;
pub mod runtime;
pub mod server;
pub mod session;
pub mod sim;
pub mod storage;
pub mod types;

pub use crate::config::{Config, ConfigError};
pub use crate::core::{
    Admission, BootstrapError, Coverage, DiskTrouble, Event, MembershipChangeError, Node, PeerStatus,
    Persist, PersistId, ProgressState, ProposeError, Proposed, ReadError, ReadReady, RecoveredState,
    RecoveryError, Role, SnapshotAction, StartError, Status, TransferError,
};
pub use crate::membership::{Membership, MembershipChange, MembershipError, SnapshotMeta};
pub use crate::message::{Message, MessageBody};
pub use crate::runtime::Session;
pub use crate::session::SessionId;
pub use crate::types::{
    Bytes, Entry, EntryKind, HardState, Incarnation, Instant, LogIndex, NodeId, NodeIdError, Term,
};
