//! `oar force-new-cluster`: recover from a lost quorum.

use std::net::SocketAddr;
use std::path::PathBuf;

use oar::storage::{force_new_cluster, WalOptions};
use oar::NodeId;

use super::{parse_addr, parse_node_id};

/// Make one stopped node the only voter of its cluster, keeping every entry
/// its log holds. Only for when a majority of the voters is gone for good;
/// never start the lost machines again with their old data directories.
#[derive(clap::Args)]
pub struct ForceArgs {
    /// The surviving node's id.
    #[arg(long, value_parser = parse_node_id)]
    id: NodeId,
    /// Its data directory (the node must be stopped).
    #[arg(long)]
    data_dir: PathBuf,
    /// Where it listens for peers (`oar serve --raft-addr`).
    #[arg(long, value_parser = parse_addr)]
    raft_addr: SocketAddr,
    /// Required: you have read README "Lost quorum" and the other voters'
    /// data directories will never be started again.
    #[arg(long)]
    yes_the_other_voters_are_gone: bool,
}

pub fn run(args: ForceArgs) -> Result<(), String> {
    super::init_logging("info");
    if !args.yes_the_other_voters_are_gone {
        return Err("this makes node the only voter of its cluster and may commit entries that were never \
                    committed; if a majority of the voters is gone for good, read README \"Lost quorum\" and \
                    add --yes-the-other-voters-are-gone"
            .into());
    }
    let id = args.id;
    let forced = force_new_cluster(&args.data_dir, id, &args.raft_addr.to_string(), WalOptions::default())
        .map_err(|e| e.to_string())?;
    println!("node {} is now the only voter of its cluster (it was: {}).", id.0, forced.previous);
    if forced.last_index > forced.known_commit {
        println!(
            "entries {} to {} were not known to be committed: they may never have been acknowledged to a \
             client, and are committed now.",
            forced.known_commit.0 + 1,
            forced.last_index.0
        );
    } else {
        println!("every entry it holds ({}) was known to be committed.", forced.last_index.0);
    }
    println!(
        "next: start it with its usual `oar serve` command line; start new machines on empty directories \
         with --join and add them (oar member add, then promote). Never start the lost voters' old data \
         directories again."
    );
    Ok(())
}
