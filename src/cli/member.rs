//! `oar member`: list and change a running cluster's membership through any
//! node's RESP port (`OAR.MEMBER`).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use oar::NodeId;

use super::{parse_addr, parse_node_id};

/// List or change the members of a running cluster.
#[derive(clap::Args)]
pub struct MemberArgs {
    #[command(subcommand)]
    action: Action,
    /// The RESP address of a node to ask: any member; a change asked of a
    /// follower goes on to the leader it names.
    #[arg(long, global = true, value_parser = parse_addr, default_value = "127.0.0.1:7379")]
    via: SocketAddr,
    /// How long to retry while the cluster is busy with another change or
    /// electing a leader.
    #[arg(long, global = true, default_value = "10", value_name = "SECONDS")]
    retry_secs: u64,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Add a node as a learner; start it first with `oar serve --join`.
    Add {
        /// The new node's id.
        #[arg(value_parser = parse_node_id)]
        id: NodeId,
        /// Where it listens for peers (its --raft-addr).
        #[arg(value_parser = parse_addr)]
        raft_addr: SocketAddr,
    },
    /// Make a learner a voter (once it has caught up).
    Promote {
        /// The learner's id.
        #[arg(value_parser = parse_node_id)]
        id: NodeId,
    },
    /// Remove a member.
    Remove {
        /// The member's id.
        #[arg(value_parser = parse_node_id)]
        id: NodeId,
    },
    /// Promote a learner and remove a voter in one joint change: how a
    /// machine is replaced without shrinking the cluster meanwhile. With one
    /// id (or the same id twice), re-admit that voter as the disk it now
    /// answers from: how a node that lost its disk, restarted on an empty
    /// one and caught up, counts again.
    Replace {
        /// The learner that becomes a voter (or the voter to re-admit).
        #[arg(value_parser = parse_node_id)]
        learner: NodeId,
        /// The voter that leaves (the same id, or nothing, to re-admit).
        #[arg(value_parser = parse_node_id)]
        voter: Option<NodeId>,
    },
    /// Print the members, one a line: id, role, raft address, RESP address,
    /// whether it leads, and how many entries it is behind the leader
    /// (asked of the leader, which alone knows).
    List,
}

pub fn run(args: MemberArgs) -> Result<(), String> {
    let command: Vec<String> = match &args.action {
        Action::Add { id, raft_addr } => vec!["ADD".into(), id.0.to_string(), raft_addr.to_string()],
        Action::Promote { id } => vec!["PROMOTE".into(), id.0.to_string()],
        Action::Remove { id } => vec!["REMOVE".into(), id.0.to_string()],
        Action::Replace { learner, voter } => {
            vec!["REPLACE".into(), learner.0.to_string(), voter.unwrap_or(*learner).0.to_string()]
        }
        Action::List => vec!["LIST".into()],
    };
    let give_up = Instant::now() + Duration::from_secs(args.retry_secs);
    let mut via = args.via;
    // Each hop goes to the leader the last node named: a few at most, unless
    // leadership keeps moving.
    let mut hops_left = 8u32;
    loop {
        match ask(via, &command)? {
            Reply::Error(e) if e.starts_with("TRYAGAIN not the leader; send it to node ") => {
                match leader_resp_addr(&e) {
                    Some(leader) if hops_left > 0 => {
                        hops_left -= 1;
                        if leader != via {
                            eprintln!("{via} does not lead; asking the leader at {leader}");
                        }
                        via = leader;
                    }
                    Some(_) => return Err(format!("{via}: {e}; leadership keeps moving, try again")),
                    None => {
                        return Err(format!(
                            "{via}: {e}, whose RESP address it does not know yet; give it with --via"
                        ))
                    }
                }
            }
            Reply::Error(e) if e.starts_with("TRYAGAIN") && Instant::now() < give_up => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Reply::Error(e) => return Err(format!("{via}: {e}")),
            Reply::Lines(lines) => {
                // Only the leader knows how far behind each member is.
                if matches!(args.action, Action::List) && hops_left > 0 {
                    if let Some(leader) = leader_in_list(&lines).filter(|&leader| leader != via) {
                        hops_left -= 1;
                        via = leader;
                        continue;
                    }
                }
                for line in lines {
                    println!("{line}");
                }
                return Ok(());
            }
        }
    }
}

/// The leader's RESP address in a `TRYAGAIN not the leader; send it to
/// node <id> at <addr>` reply, if it says one.
fn leader_resp_addr(error: &str) -> Option<SocketAddr> {
    error.split_once(" at ").and_then(|(_, addr)| addr.trim().parse().ok())
}

/// The RESP address of the member an `OAR.MEMBER LIST` answer marks as
/// the leader, if it gives one.
fn leader_in_list(lines: &[String]) -> Option<SocketAddr> {
    let leader = lines.iter().find(|line| line.split(' ').any(|word| word == "state=leader"))?;
    leader.split(' ').find_map(|word| word.strip_prefix("resp=")).and_then(|addr| addr.parse().ok())
}

enum Reply {
    Error(String),
    Lines(Vec<String>),
}

/// Sends `OAR.MEMBER <args>` to `via` and reads the reply.
fn ask(via: SocketAddr, args: &[String]) -> Result<Reply, String> {
    let fail = |e: std::io::Error| format!("{via}: {e}");
    let mut stream = TcpStream::connect_timeout(&via, Duration::from_secs(5)).map_err(fail)?;
    // A change waits for its commit; the node answers within its own timeout.
    stream.set_read_timeout(Some(Duration::from_secs(30))).map_err(fail)?;
    let mut request = format!("*{}\r\n$10\r\nOAR.MEMBER\r\n", args.len() + 1);
    for a in args {
        request.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    stream.write_all(request.as_bytes()).map_err(fail)?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let mut read_line = |line: &mut String| -> Result<(), String> {
        line.clear();
        reader.read_line(line).map_err(fail)?;
        if !line.ends_with("\r\n") {
            return Err(format!("{via}: the connection closed mid-reply"));
        }
        line.truncate(line.len() - 2);
        Ok(())
    };
    read_line(&mut line)?;
    let (kind, rest) = line.split_at(line.len().min(1));
    match kind {
        "+" => Ok(Reply::Lines(vec![rest.to_string()])),
        "-" => Ok(Reply::Error(rest.to_string())),
        "*" => {
            let count: usize = rest.parse().map_err(|_| format!("{via}: bad reply {line:?}"))?;
            let mut lines = Vec::with_capacity(count.min(1024));
            for _ in 0..count {
                read_line(&mut line)?;
                if !line.starts_with('$') {
                    return Err(format!("{via}: bad reply {line:?}"));
                }
                read_line(&mut line)?;
                lines.push(line.clone());
            }
            Ok(Reply::Lines(lines))
        }
        _ => Err(format!("{via}: not a RESP reply: {line:?}; is this a node's --resp-addr?")),
    }
}
