//! Proposals sent again after a leader change, applied once however many
//! copies commit.
//!
//! A proposal appended by a leader that then loses its leadership, or
//! forwarded to a leader that dies, may never commit; its caller would wait
//! for the request timeout and learn only that the outcome is unknown. The
//! event loop sends such a proposal again as soon as it learns of a new
//! leader (and again after a silence, for a message lost on the way), until
//! it sees the proposal committed or the caller's timeout passes.
//!
//! Sent twice, a plain command may commit twice. So the event loop wraps
//! plain commands in a session of the node's own (opened when a leader is
//! first known, and again if it expires) with many commands in flight: a
//! window (see [`crate::session`]). Every copy of a command carries the
//! same session and number; the replicated session table applies the first
//! copy to commit and answers the others with its answer. A command of a
//! caller's own [`Session`](super::Session) is sent again as it is: its
//! session already makes copies harmless. A session opening is sent again
//! only for the node's own session (a copy opens a spare session, which
//! expires unused).

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{BufMut, Bytes};
use log::debug;

use super::{open_envelope, wall_clock_ms, REQUEST_ENVELOPE_BYTES};
use crate::core::{Node, ProposeError, Proposed};
use crate::session::{
    Envelope, SessionId, TAG_COMMAND, TAG_PLAIN, TAG_WINDOW_COMMAND, WINDOW_ANSWERS_MAX,
    WINDOW_COMMAND_HEADER_BYTES,
};
use crate::types::{Entry, EntryKind, Instant, NodeId, Term};

/// The room a plain proposal leaves in front of its request envelope, so
/// that the event loop can put it in the node's session without a copy.
pub(crate) const ROOM: usize = WINDOW_COMMAND_HEADER_BYTES - 1;

/// How often commands in flight are looked over: for a silence too long,
/// and for callers that gave up.
const SCAN_EVERY: Duration = Duration::from_millis(100);

/// A proposal as a caller hands it to the event loop: a request envelope
/// (proposer, request id) and a session envelope, then the command.
pub(crate) enum Proposal {
    /// A plain command, after [`ROOM`] bytes of room.
    Plain(Vec<u8>),
    /// A caller's session opening or session command, ready to send.
    Ready(Bytes),
}

/// Which term and leader a copy was sent under: a copy sent to a leader
/// since deposed is sent again.
type View = (Term, Option<NodeId>);

/// The node's own session.
enum NodeSession {
    /// None: plain commands go out plain (and are not sent again).
    Closed,
    /// An opening was sent as `data`; its entry's index names the session.
    Opening {
        request_id: u64,
        data: Bytes,
        sent: Instant,
    },
    Open(SessionId),
}

/// A proposal that may still be lost: sent, not yet seen committed.
struct InFlight {
    data: Bytes,
    /// Its number in the node's session, if it was put in it.
    seq: Option<u64>,
    sent: Instant,
    view: View,
    /// When its caller stops waiting: no copy is sent after that.
    give_up: Instant,
}

/// Tracks what this node proposed until it is seen committed, and sends it
/// again when it may have been lost.
pub(crate) struct Resender {
    id: NodeId,
    session: NodeSession,
    /// The last number taken in the node's session.
    seq: u64,
    /// By request id.
    in_flight: BTreeMap<u64, InFlight>,
    /// The numbers in flight in the node's session, with their request
    /// ids: the first is the oldest the node still waits for.
    seqs: BTreeMap<u64, u64>,
    view: View,
    next_scan: Instant,
    resend_after: Duration,
    give_up_after: Duration,
    session_ttl_ms: u64,
    /// Copies sent, over the node's life.
    pub(crate) resent: u64,
}

impl Resender {
    /// A resender for node `id`, whose callers wait `request_timeout`.
    pub(crate) fn new(id: NodeId, request_timeout: Duration, session_ttl: Duration) -> Resender {
        Resender {
            id,
            session: NodeSession::Closed,
            seq: 0,
            in_flight: BTreeMap::new(),
            seqs: BTreeMap::new(),
            view: (Term(0), None),
            next_scan: Instant::ZERO,
            // Long enough that a busy leader's commit does not count as
            // lost; short enough to be well within the caller's wait.
            resend_after: request_timeout / 4,
            // A little after the apply thread answers "outcome unknown", so
            // that no copy is refused while its caller still waits.
            give_up_after: request_timeout + Duration::from_secs(1),
            session_ttl_ms: u64::try_from(session_ttl.as_millis()).unwrap_or(u64::MAX),
            resent: 0,
        }
    }

    /// Proposes `proposal` (request `request_id`) to `node`, in the node's
    /// session if it is plain and the session is open, and keeps it until
    /// it is seen committed.
    pub(crate) fn propose(
        &mut self,
        node: &mut Node,
        now: Instant,
        request_id: u64,
        proposal: Proposal,
        entry_bytes_max: u64,
    ) -> Result<Proposed, ProposeError> {
        let (data, seq) = match proposal {
            Proposal::Plain(buf) => self.seal(request_id, buf, entry_bytes_max),
            Proposal::Ready(data) => (data, None),
        };
        let proposed = node.propose(now, data.clone())?;
        // A caller's session opening is not sent again: a copy would open
        // a second session for one caller.
        let resendable = seq.is_some()
            || matches!(data.get(REQUEST_ENVELOPE_BYTES), Some(&(TAG_COMMAND | TAG_WINDOW_COMMAND)));
        if resendable {
            if let Some(seq) = seq {
                self.seqs.insert(seq, request_id);
            }
            let copy = InFlight { data, seq, sent: now, view: view(node), give_up: now + self.give_up_after };
            self.in_flight.insert(request_id, copy);
        }
        Ok(proposed)
    }

    /// Puts a plain proposal in the node's session, if open, with room in
    /// the window and in the entry; else leaves it plain.
    fn seal(&mut self, request_id: u64, mut buf: Vec<u8>, entry_bytes_max: u64) -> (Bytes, Option<u64>) {
        let command_at = ROOM + REQUEST_ENVELOPE_BYTES + 1;
        debug_assert_eq!(buf.get(command_at - 1), Some(&TAG_PLAIN));
        let fits = (buf.len() - ROOM + WINDOW_COMMAND_HEADER_BYTES - 1) as u64 <= entry_bytes_max;
        let NodeSession::Open(session) = self.session else {
            return (Bytes::from(buf).slice(ROOM..), None);
        };
        if !fits || self.seqs.len() >= WINDOW_ANSWERS_MAX {
            return (Bytes::from(buf).slice(ROOM..), None);
        }
        self.seq += 1;
        let seq = self.seq;
        let floor = self.seqs.first_key_value().map_or(seq, |(&oldest, _)| oldest);
        let envelope =
            Envelope::Command { session, seq, floor, proposer_time_ms: wall_clock_ms(), command: &[] };
        let start = command_at - REQUEST_ENVELOPE_BYTES - envelope.header_len();
        let mut header = &mut buf[start..command_at];
        header.put_u64_le(self.id.0);
        header.put_u64_le(request_id);
        envelope.encode_header(&mut header);
        debug_assert!(header.is_empty());
        (Bytes::from(buf).slice(start..), Some(seq))
    }

    /// Notes a committed entry: a proposal of this node's committed needs
    /// no other copy, and an opening of its session names the session.
    pub(crate) fn committed(&mut self, entry: &Entry) {
        if entry.kind != EntryKind::Command {
            return;
        }
        let Some((proposer, request_id, _)) = open_envelope(&entry.data) else { return };
        if proposer != self.id {
            return;
        }
        if matches!(self.session, NodeSession::Opening { request_id: r, .. } if r == request_id) {
            debug!("{}: its own session is {}", self.id, entry.index);
            self.session = NodeSession::Open(SessionId(entry.index.0));
            return;
        }
        if let Some(seq) = self.in_flight.remove(&request_id).and_then(|f| f.seq) {
            self.seqs.remove(&seq);
        }
    }

    /// The node's session expired (or was dropped for newer ones): open
    /// another.
    pub(crate) fn session_lost(&mut self, session: SessionId) {
        if matches!(self.session, NodeSession::Open(s) if s == session) {
            debug!("{}: its own {session} expired; opening another", self.id);
            self.session = NodeSession::Closed;
        }
    }

    /// Sends again what may have been lost: everything in flight when the
    /// node learns of a new leader, a copy unanswered for a while at the
    /// periodic scan; opens the node's session once a leader is known.
    /// `request_id` numbers an opening.
    pub(crate) fn poll(&mut self, node: &mut Node, now: Instant, request_id: impl FnOnce() -> u64) {
        let current = view(node);
        let changed = current != self.view;
        self.view = current;
        if !changed && now < self.next_scan {
            return;
        }
        if !changed {
            self.next_scan = now + SCAN_EVERY;
            self.give_up(now);
        }
        if current.1.is_none() {
            return;
        }
        self.open_session(node, now, request_id);
        let resend_after = self.resend_after;
        for copy in self.in_flight.values_mut() {
            if copy.view == current && now < copy.sent + resend_after {
                continue;
            }
            if node.propose(now, copy.data.clone()).is_ok() {
                copy.sent = now;
                copy.view = current;
                self.resent += 1;
            }
        }
    }

    /// Forgets the copies whose callers stopped waiting: no more copies,
    /// and the window moves past them (a copy still on its way is then
    /// refused, not applied).
    fn give_up(&mut self, now: Instant) {
        let seqs = &mut self.seqs;
        self.in_flight.retain(|_, copy| {
            let keep = now < copy.give_up;
            if let (false, Some(seq)) = (keep, copy.seq) {
                seqs.remove(&seq);
            }
            keep
        });
    }

    fn open_session(&mut self, node: &mut Node, now: Instant, request_id: impl FnOnce() -> u64) {
        let data = match &self.session {
            NodeSession::Open(_) => return,
            NodeSession::Opening { sent, .. } if now < *sent + self.resend_after => return,
            NodeSession::Opening { request_id, data, .. } => {
                debug!(
                    "{}: its session opening {request_id} is not committed yet; sending it again",
                    self.id
                );
                data.clone()
            }
            NodeSession::Closed => {
                let envelope =
                    Envelope::Open { proposer_time_ms: wall_clock_ms(), ttl_ms: self.session_ttl_ms };
                let mut data = Vec::with_capacity(REQUEST_ENVELOPE_BYTES + envelope.encoded_len());
                data.put_u64_le(self.id.0);
                data.put_u64_le(request_id());
                envelope.encode(&mut data);
                Bytes::from(data)
            }
        };
        let Some((_, request_id, _)) = open_envelope(&data) else { unreachable!("an envelope just made") };
        if node.propose(now, data.clone()).is_ok() {
            self.session = NodeSession::Opening { request_id, data, sent: now };
        }
    }

    /// When [`poll`](Resender::poll) has work to do next, if at all.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let idle = self.in_flight.is_empty() && matches!(self.session, NodeSession::Open(_));
        (!idle).then_some(self.next_scan)
    }
}

fn view(node: &Node) -> View {
    (node.term(), node.leader())
}
