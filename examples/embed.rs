//! Embedding oar in a plain `fn main`: a replicated counter on three nodes
//! in one process, on loopback. Run with `cargo run --example embed`.

use oar::runtime::{Peer, Runtime, RuntimeConfig, StateMachine};
use oar::{LogIndex, NodeId};

/// The replicated state: a counter. Commands are amounts to add.
#[derive(Default)]
struct Counter(u64);

impl StateMachine for Counter {
    fn apply(&mut self, _index: LogIndex, command: &[u8]) -> Result<Vec<u8>, String> {
        let amount: [u8; 8] = command.try_into().map_err(|_| "a command is 8 bytes".to_string())?;
        self.0 += u64::from_le_bytes(amount);
        Ok(self.0.to_le_bytes().to_vec())
    }

    fn query(&self, _query: &[u8]) -> Vec<u8> {
        self.0.to_le_bytes().to_vec()
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::init();
    let peers: Vec<Peer> = (1..=3)
        .map(|id| Peer { id: NodeId(id), addr: format!("127.0.0.1:{}", 7100 + id).parse().unwrap() })
        .collect();
    let dir = std::env::temp_dir().join(format!("oar-embed-{}", std::process::id()));
    let nodes = peers
        .iter()
        .map(|p| {
            Runtime::start(RuntimeConfig::new(p.id), dir.join(p.id.to_string()), &peers, Counter::default())
        })
        .collect::<Result<Vec<_>, _>>()?;
    for amount in 1..=10u64 {
        // Any node takes proposals: followers forward them to the leader.
        // Until a leader is elected, NoLeader says to retry.
        let via = &nodes[amount as usize % 3];
        let total = loop {
            match via.propose(&amount.to_le_bytes()) {
                Ok(total) => break total,
                Err(oar::runtime::RequestError::NoLeader) => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                Err(e) => return Err(e.into()),
            }
        };
        println!(
            "added {amount} through node {}: total {}",
            via.id(),
            u64::from_le_bytes(total.try_into().unwrap())
        );
    }
    let total = nodes[0].read(b"")?; // linearizable: sees every write above
    println!("node 1 reads {}", u64::from_le_bytes(total.try_into().unwrap()));
    nodes.iter().for_each(|n| n.shutdown());
    std::fs::remove_dir_all(dir)?;
    Ok(())
}
