//! Unit tests of the core, driving nodes with messages and virtual time.
//!
//! `harness` holds the test cluster; each other module checks one part of
//! the Raft paper or of the behaviours, with tests named after them.

mod commitment;
mod disk;
mod disk_trouble;
mod durability;
mod election;
mod fixtures;
mod flow_control;
mod forwarding;
mod hardening;
mod harness;
mod identity;
mod input_validation;
mod log_matching;
mod membership;
mod prevote_checkquorum;
mod proposals;
mod reads;
mod smoke;
mod snapshot;
mod transfer;
