//! Unit tests of the core, driving nodes with messages and virtual time.
//!
//! `harness` holds the test cluster; each other module checks one part of
//! the Raft paper or of the behaviours, with tests named after them.

mod harness;
mod smoke;
