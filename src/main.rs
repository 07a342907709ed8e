//! The `oar` command.

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// oar: Raft consensus for synchronous Rust.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a local cluster (3 nodes by default), each node an `oar serve`
    /// process, and serve RESP until Ctrl-C.
    Cluster(cli::cluster::ClusterArgs),
    /// Serve one node of a replicated key-value map over the Redis protocol.
    Serve(cli::serve::ServeArgs),
    /// Benchmark a local cluster with concurrent Redis clients.
    Bench(cli::bench::BenchArgs),
    /// Run the deterministic cluster simulator: faults, then a liveness check.
    Sim(cli::sim::SimArgs),
    /// List or change a running cluster's members through a node's RESP port.
    Member(cli::member::MemberArgs),
    /// Recover from a lost quorum: make one stopped node the only voter of
    /// its cluster, keeping its whole log. Read README "Lost quorum" first.
    ForceNewCluster(cli::force::ForceArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Cluster(args) => cli::cluster::run(args),
        Command::Serve(args) => cli::serve::run(args),
        Command::Bench(args) => cli::bench::run(args),
        Command::Member(args) => cli::member::run(args),
        Command::ForceNewCluster(args) => cli::force::run(args),
        Command::Sim(args) => return cli::sim::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("oar: {e}");
            ExitCode::FAILURE
        }
    }
}
