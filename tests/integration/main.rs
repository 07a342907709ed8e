//! The integration tests, in one test binary: one module per scenario file.
//! One binary is linked once, against the library and every dev-dependency,
//! where a file per binary under `tests/` costs a link each; keep new
//! scenarios here as modules (`tidy::the_integration_tests_stay_one_binary`
//! checks it).
//!
//! The modules that run the `oar` command need the binary, so they build
//! with the `cli` feature only (the default); the rest test the library as
//! an embedder gets it (`cargo test --no-default-features`).

mod support;

#[cfg(feature = "cli")]
mod bad_input;
#[cfg(feature = "cli")]
mod cli_errors;
#[cfg(feature = "cli")]
mod cluster_command;
#[cfg(feature = "cli")]
mod disk_faults;
#[cfg(feature = "cli")]
mod disk_full;
#[cfg(feature = "cli")]
mod membership_processes;
#[cfg(feature = "cli")]
mod redis_tools;
#[cfg(feature = "cli")]
mod serve_processes;

mod redis_client;
mod runtime_cluster;
mod server_pipeline;
mod sessions;
mod storage_crash;
mod storage_model;
mod tidy;
