//! The Raft core (in progress).
