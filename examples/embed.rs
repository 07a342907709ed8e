//! Embedding oar in a plain `fn main`: a replicated counter on three nodes
//! in one process, on loopback. Run with `cargo run --example embed`.

use std::time::Duration;

use oar::runtime::{Peer, RequestError, Runtime, RuntimeConfig, StateMachine};
use oar::{LogIndex, NodeId};

/// The replicated state: a counter. A command is an amount to add.
#[derive(Default)]
struct Counter(u64);

impl StateMachine for Counter {
    /// What stops a node: a command or a snapshot that is not 8 bytes.
    type Error = std::io::Error;

    fn apply(&mut self, _index: LogIndex, command: &[u8]) -> Result<Vec<u8>, std::io::Error> {
        let amount = command.try_into().map_err(|_| std::io::Error::other("a command is 8 bytes"))?;
        self.0 += u64::from_le_bytes(amount);
        Ok(self.0.to_le_bytes().to_vec())
    }

    fn query(&self, _query: &[u8]) -> Vec<u8> {
        self.0.to_le_bytes().to_vec()
    }

    /// The counter is the whole state: 8 bytes.
    fn snapshot(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        out.write_all(&self.0.to_le_bytes())
    }

    fn restore(&mut self, input: &mut dyn std::io::Read) -> Result<(), std::io::Error> {
        let mut bytes = [0; 8];
        input.read_exact(&mut bytes)?;
        self.0 = u64::from_le_bytes(bytes);
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::init();
    let dir = std::env::temp_dir().join(format!("oar-embed-{}", std::process::id()));
    let peers: Vec<Peer> =
        (1..=3).map(|id| Peer { id: NodeId(id), addr: ([127, 0, 0, 1], 7100 + id as u16).into() }).collect();
    let nodes = peers
        .iter()
        .map(|p| {
            // A new cluster is bootstrapped explicitly; on later starts the
            // flag is harmless (a node with data just resumes).
            let mut config = RuntimeConfig::new(p.id);
            config.bootstrap = true;
            Runtime::start(config, dir.join(p.id.to_string()), &peers, Counter::default())
        })
        .collect::<Result<Vec<_>, _>>()?;
    for amount in 1..=10u64 {
        // Any node takes proposals (followers forward them to the leader);
        // until a leader is elected, `NoLeader` says to retry.
        let node = &nodes[amount as usize % 3];
        let total = loop {
            match node.propose(&amount.to_le_bytes()) {
                Err(RequestError::NoLeader) => std::thread::sleep(Duration::from_millis(20)),
                result => break result?,
            }
        };
        println!(
            "added {amount} through {}: total {}",
            node.id(),
            u64::from_le_bytes(total.try_into().unwrap())
        );
    }
    let total = nodes[0].read(b"")?; // linearizable: sees every write above
    println!("{} reads {}", nodes[0].id(), u64::from_le_bytes(total.try_into().unwrap()));
    nodes.iter().for_each(|node| node.shutdown());
    Ok(std::fs::remove_dir_all(dir)?)
}
