//! Exactly-once client sessions (Raft thesis §6.3), without IO.
//!
//! A client that gets no answer cannot tell whether its command was applied;
//! retrying a non-idempotent command (an increment) may apply it twice. A
//! session fixes that: the client numbers its commands, the replicated
//! state keeps, per session, the highest number applied and its answer, and
//! a retry of that number gets the stored answer instead of a second apply.
//!
//! A client may keep several commands of one session in flight (the
//! runtime does, for the commands it sends again after a leader change):
//! each command also carries the number of the oldest command the client
//! still waits for, and the table keeps the answers from there on (a
//! window), so any of them can be retried; the answers below are dropped.
//!
//! Every command the state machine layer receives starts with a one-byte
//! [`Envelope`] tag: a plain command, the opening of a session, or a command
//! of a session. [`SessionTable::apply_entry`] reads the tag, keeps the
//! table, and calls the application's `apply` only for what must be applied.
//!
//! Sessions expire by **log time**: the largest proposer clock reading
//! (`proposer_time_ms`) any session entry in the log carried so far. It is
//! read from the log, so it is the same on every replica at the same index,
//! and expiry is deterministic. A session whose last use lies more than its
//! `ttl_ms` behind the log time is dropped; its commands are then refused
//! ([`SessionRefusal::Expired`]) without being applied.
//!
//! The table is part of the replicated state: it goes into snapshots
//! ([`SessionTable::encode`], [`SessionTable::decode`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::types::LogIndex;

#[cfg(test)]
mod tests;

/// Names a session: the log index of the entry that opened it, so that ids
/// are unique and the same on every replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(pub u64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "session {}", self.0)
    }
}

/// The tag of a plain command: the rest of the entry is the command.
pub const TAG_PLAIN: u8 = 0;
/// The tag of a session opening: `proposer_time_ms` and `ttl_ms` follow.
pub const TAG_OPEN: u8 = 1;
/// The tag of a session command whose client waits for no older command:
/// session, seq, `proposer_time_ms`, then the command.
pub const TAG_COMMAND: u8 = 2;
/// The tag of a session command sent with older ones in flight: session,
/// seq, `proposer_time_ms`, the oldest seq still unanswered, then the
/// command.
pub const TAG_WINDOW_COMMAND: u8 = 3;

/// The bytes of a session opening.
pub const OPEN_BYTES: usize = 1 + 8 + 8;
/// The bytes a session command adds in front of the command.
pub const COMMAND_HEADER_BYTES: usize = 1 + 8 + 8 + 8;
/// The bytes a session command with older ones in flight adds in front of
/// the command.
pub const WINDOW_COMMAND_HEADER_BYTES: usize = COMMAND_HEADER_BYTES + 8;

/// Sessions the table keeps at most; opening one more drops the session
/// closest to expiry first (deterministically: the table is the same on
/// every replica). Bounds the table's memory and its snapshot.
pub const SESSIONS_MAX: usize = 4096;

/// The largest answer the table keeps for a retry. A longer answer is
/// returned to the caller, but a retry of its command gets
/// [`SessionRefusal::AnswerNotKept`].
pub const ANSWER_BYTES_MAX: usize = 64 << 10;

/// The most answers a session keeps (its window): beyond, the oldest
/// answer is dropped, and a retry of its command is refused
/// ([`SessionRefusal::Stale`]). A client keeps at most this many commands
/// of one session in flight.
pub const WINDOW_ANSWERS_MAX: usize = 4096;

/// The most bytes of answers a session keeps: beyond, the oldest answers
/// are dropped as for [`WINDOW_ANSWERS_MAX`] (the newest is always kept).
pub const WINDOW_BYTES_MAX: usize = 256 << 10;

/// The largest encoded table: [`SESSIONS_MAX`] sessions, each with a full
/// window. A length prefix beyond it is refused before anything is read.
pub const TABLE_BYTES_MAX: u64 = (TABLE_HEADER_BYTES
    + SESSIONS_MAX
        * (SESSION_FIXED_BYTES
            + WINDOW_ANSWERS_MAX * ANSWER_FIXED_BYTES
            + WINDOW_BYTES_MAX
            + ANSWER_BYTES_MAX)
    + 4) as u64;

const TABLE_VERSION: u8 = 2;
const TABLE_HEADER_BYTES: usize = 1 + 8 + 4;
const SESSION_FIXED_BYTES: usize = 8 + 8 + 8 + 8 + 8 + 4;
const ANSWER_FIXED_BYTES: usize = 8 + 1 + 4;

/// What an entry's data says to the state machine layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Envelope<'a> {
    /// A command outside any session: applied every time it is committed.
    Plain(&'a [u8]),
    /// Opens a session whose id is this entry's index.
    Open {
        /// The proposer's wall clock when it proposed, in milliseconds.
        proposer_time_ms: u64,
        /// How long of log time the session lives unused.
        ttl_ms: u64,
    },
    /// A command of a session, applied once whatever the retries.
    Command {
        /// The session.
        session: SessionId,
        /// The command's number within the session, from 1.
        seq: u64,
        /// The oldest command of the session its client still waits for
        /// (`seq` itself when it waits for no other): the table drops the
        /// answers of older ones, and refuses their late copies.
        floor: u64,
        /// The proposer's wall clock when it proposed, in milliseconds.
        proposer_time_ms: u64,
        /// The command itself.
        command: &'a [u8],
    },
}

/// Why an entry's data is not an [`Envelope`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvelopeError {
    /// The data is empty: no tag.
    Empty,
    /// The tag is none of [`TAG_PLAIN`], [`TAG_OPEN`], [`TAG_COMMAND`]
    /// (a peer of a newer version, or a damaged log).
    UnknownTag(u8),
    /// The data is shorter than its tag requires.
    Short {
        /// The field that is cut.
        field: &'static str,
    },
    /// A session opening has bytes after its fields.
    Trailing {
        /// How many.
        bytes: usize,
    },
    /// A session command numbered 0; numbers start at 1.
    ZeroSeq,
    /// A session command whose oldest unanswered command is newer than
    /// itself, or numbered 0.
    Floor {
        /// The command's number.
        seq: u64,
        /// The oldest unanswered command it names.
        floor: u64,
    },
}

impl fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvelopeError::Empty => f.write_str("an empty command: no envelope tag"),
            EnvelopeError::UnknownTag(tag) => write!(f, "unknown envelope tag {tag}"),
            EnvelopeError::Short { field } => write!(f, "the envelope is cut in its {field}"),
            EnvelopeError::Trailing { bytes } => write!(f, "{bytes} bytes after a session opening"),
            EnvelopeError::ZeroSeq => f.write_str("a session command numbered 0"),
            EnvelopeError::Floor { seq, floor } => {
                write!(f, "session command {seq} waits for command {floor}, which is not older")
            }
        }
    }
}

impl std::error::Error for EnvelopeError {}

impl<'a> Envelope<'a> {
    /// Reads the envelope at the start of `data`. Total: any bytes give an
    /// envelope or a typed error.
    pub fn decode(data: &'a [u8]) -> Result<Envelope<'a>, EnvelopeError> {
        let (&tag, rest) = data.split_first().ok_or(EnvelopeError::Empty)?;
        let mut reader = Reader { rest };
        match tag {
            TAG_PLAIN => Ok(Envelope::Plain(rest)),
            TAG_OPEN => {
                let proposer_time_ms = reader.u64("proposer_time_ms").map_err(short)?;
                let ttl_ms = reader.u64("ttl_ms").map_err(short)?;
                if !reader.rest.is_empty() {
                    return Err(EnvelopeError::Trailing { bytes: reader.rest.len() });
                }
                Ok(Envelope::Open { proposer_time_ms, ttl_ms })
            }
            TAG_COMMAND | TAG_WINDOW_COMMAND => {
                let session = SessionId(reader.u64("session").map_err(short)?);
                let seq = reader.u64("seq").map_err(short)?;
                let proposer_time_ms = reader.u64("proposer_time_ms").map_err(short)?;
                let floor = match tag {
                    TAG_COMMAND => seq,
                    _ => reader.u64("floor").map_err(short)?,
                };
                if seq == 0 {
                    return Err(EnvelopeError::ZeroSeq);
                }
                if floor == 0 || floor > seq {
                    return Err(EnvelopeError::Floor { seq, floor });
                }
                Ok(Envelope::Command { session, seq, floor, proposer_time_ms, command: reader.rest })
            }
            other => Err(EnvelopeError::UnknownTag(other)),
        }
    }

    /// Appends the envelope and its command to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.encode_header(out);
        match *self {
            Envelope::Plain(command) | Envelope::Command { command, .. } => out.extend_from_slice(command),
            Envelope::Open { .. } => {}
        }
    }

    /// Writes the envelope without its command: [`header_len`](Envelope::header_len)
    /// bytes, which the command follows.
    pub fn encode_header(&self, out: &mut impl bytes::BufMut) {
        match *self {
            Envelope::Plain(_) => out.put_u8(TAG_PLAIN),
            Envelope::Open { proposer_time_ms, ttl_ms } => {
                out.put_u8(TAG_OPEN);
                out.put_u64_le(proposer_time_ms);
                out.put_u64_le(ttl_ms);
            }
            Envelope::Command { session, seq, floor, proposer_time_ms, .. } => {
                assert!(0 < floor && floor <= seq, "session command {seq} waits for {floor}");
                out.put_u8(if floor == seq { TAG_COMMAND } else { TAG_WINDOW_COMMAND });
                out.put_u64_le(session.0);
                out.put_u64_le(seq);
                out.put_u64_le(proposer_time_ms);
                if floor != seq {
                    out.put_u64_le(floor);
                }
            }
        }
    }

    /// The bytes [`encode_header`](Envelope::encode_header) writes.
    pub fn header_len(&self) -> usize {
        match *self {
            Envelope::Plain(_) => 1,
            Envelope::Open { .. } => OPEN_BYTES,
            Envelope::Command { seq, floor, .. } if seq == floor => COMMAND_HEADER_BYTES,
            Envelope::Command { .. } => WINDOW_COMMAND_HEADER_BYTES,
        }
    }

    /// The bytes [`encode`](Envelope::encode) writes.
    pub fn encoded_len(&self) -> usize {
        match self {
            Envelope::Plain(command) | Envelope::Command { command, .. } => self.header_len() + command.len(),
            Envelope::Open { .. } => OPEN_BYTES,
        }
    }
}

fn short(field: &'static str) -> EnvelopeError {
    EnvelopeError::Short { field }
}

/// Why a session command was not applied. In every case this entry changed
/// nothing in the application's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionRefusal {
    /// The session is unknown: it expired (unused for longer than its ttl
    /// of log time, or dropped for a newer one when [`SESSIONS_MAX`] were
    /// open), or it never existed. Open a new session; the command's
    /// outcome under the old one is unknown unless it was answered.
    Expired,
    /// A command older than the oldest one the session's client still
    /// waits for (the last command's `floor`, or older than the window
    /// kept): its client no longer waits for it. If an earlier copy was
    /// applied, it was applied once; this copy is not applied.
    Stale {
        /// The oldest command whose answer the session still keeps.
        floor: u64,
    },
    /// A retry of the last command applied, whose answer exceeded
    /// [`ANSWER_BYTES_MAX`] and was not kept. The command was applied,
    /// once.
    AnswerNotKept,
}

impl fmt::Display for SessionRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionRefusal::Expired => {
                f.write_str("the session expired or never existed, and nothing was applied; open a new one")
            }
            SessionRefusal::Stale { floor } => write!(
                f,
                "older than command {floor}, the oldest the session still answers; not applied again"
            ),
            SessionRefusal::AnswerNotKept => {
                f.write_str("the command was applied once, and its answer was too large to keep for a retry")
            }
        }
    }
}

/// What [`SessionTable::admit`] decides for a session command.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission<'a> {
    /// A new command: apply it, then [`record`](SessionTable::record) its
    /// answer.
    Apply,
    /// A retry of a command applied: answer this, apply nothing.
    Retry(&'a [u8]),
    /// Apply nothing, answer the refusal.
    Refused(SessionRefusal),
}

/// What [`SessionTable::apply_entry`] did with an entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The answer for the proposer: the application's (a plain command, a
    /// new session command) or the one kept (a retry).
    Answer(Vec<u8>),
    /// A session was opened.
    Opened(SessionId),
    /// A session command was refused; nothing was applied.
    Refused {
        /// The session named.
        session: SessionId,
        /// Why.
        refusal: SessionRefusal,
    },
}

/// Why [`SessionTable::apply_entry`] could not apply an entry.
#[derive(Debug)]
pub enum ApplyError<E> {
    /// The entry's data is not an envelope.
    Envelope(EnvelopeError),
    /// The application refused the command.
    StateMachine(E),
}

/// What the table keeps of a session.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SessionState {
    ttl_ms: u64,
    /// Log time of the last command or retry; at most the table's log time.
    last_used_ms: u64,
    /// The highest seq applied; 0 before the first.
    applied_seq: u64,
    /// The oldest command the client still waits for, as its commands
    /// said (or as the window's bounds forced): older copies are refused.
    floor: u64,
    /// The answers of the commands applied from `floor` on, by seq.
    answers: BTreeMap<u64, Kept>,
    /// The bytes of the answers in `answers`.
    answer_bytes: usize,
}

impl SessionState {
    /// The log time past which the session is expired.
    fn expires_ms(&self) -> u64 {
        self.last_used_ms.saturating_add(self.ttl_ms)
    }

    /// Drops the answers below `floor`, which no client waits for.
    fn raise_floor(&mut self, floor: u64) {
        if floor <= self.floor {
            return;
        }
        self.floor = floor;
        while let Some(entry) = self.answers.first_entry() {
            if *entry.key() >= floor {
                break;
            }
            self.answer_bytes -= entry.remove().len();
        }
    }

    /// Keeps the window within [`WINDOW_ANSWERS_MAX`] and
    /// [`WINDOW_BYTES_MAX`], dropping the oldest answers first.
    fn bound_window(&mut self) {
        while self.answers.len() > WINDOW_ANSWERS_MAX
            || (self.answer_bytes > WINDOW_BYTES_MAX && self.answers.len() > 1)
        {
            let Some((&oldest, _)) = self.answers.first_key_value() else { break };
            self.raise_floor(oldest + 1);
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kept {
    Answer(Vec<u8>),
    TooLarge,
}

impl Kept {
    fn len(&self) -> usize {
        match self {
            Kept::Answer(answer) => answer.len(),
            Kept::TooLarge => 0,
        }
    }
}

/// The sessions of the replicated state: per session the commands applied
/// and the answers its client may still ask for again. Every replica holds the same table at the same
/// index; the runtime keeps it next to the application's state machine
/// and in its snapshots.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionTable {
    /// The largest `proposer_time_ms` seen in the log; never decreases.
    log_time_ms: u64,
    sessions: BTreeMap<SessionId, SessionState>,
    /// Every session by `(expires_ms, id)`: the same sessions as
    /// `sessions`, for expiry in order without a scan.
    by_expiry: BTreeSet<(u64, SessionId)>,
}

impl SessionTable {
    /// An empty table, as the replicated state starts.
    pub fn new() -> SessionTable {
        SessionTable::default()
    }

    /// The log time: the largest proposer clock reading seen in the log.
    pub fn log_time_ms(&self) -> u64 {
        self.log_time_ms
    }

    /// Open sessions.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// The highest seq `session` applied (0 before its first command), or
    /// `None` if it is not open.
    pub fn applied_seq(&self, session: SessionId) -> Option<u64> {
        self.sessions.get(&session).map(|s| s.applied_seq)
    }

    /// Applies the committed entry at `index` whose data is `data`:
    /// a plain command goes to `apply`; a session opening enters the
    /// table; a session command goes to `apply` only if new, and its answer
    /// is kept. Call it for every command entry, in log order.
    pub fn apply_entry<E>(
        &mut self,
        index: LogIndex,
        data: &[u8],
        apply: impl FnOnce(&[u8]) -> Result<Vec<u8>, E>,
    ) -> Result<Reply, ApplyError<E>> {
        match Envelope::decode(data).map_err(ApplyError::Envelope)? {
            Envelope::Plain(command) => apply(command).map(Reply::Answer).map_err(ApplyError::StateMachine),
            Envelope::Open { proposer_time_ms, ttl_ms } => {
                Ok(Reply::Opened(self.open(index, proposer_time_ms, ttl_ms)))
            }
            Envelope::Command { session, seq, floor, proposer_time_ms, command } => {
                match self.admit(session, seq, floor, proposer_time_ms) {
                    Admission::Apply => {}
                    Admission::Retry(answer) => return Ok(Reply::Answer(answer.to_vec())),
                    Admission::Refused(refusal) => return Ok(Reply::Refused { session, refusal }),
                }
                let answer = apply(command).map_err(ApplyError::StateMachine)?;
                self.record(session, seq, &answer);
                Ok(Reply::Answer(answer))
            }
        }
    }

    /// Opens the session of the entry at `index`, proposed at
    /// `proposer_time_ms`, living `ttl_ms` of log time unused.
    pub fn open(&mut self, index: LogIndex, proposer_time_ms: u64, ttl_ms: u64) -> SessionId {
        self.advance(proposer_time_ms);
        let id = SessionId(index.0);
        self.remove(id);
        while self.sessions.len() >= SESSIONS_MAX {
            let Some(&(_, oldest)) = self.by_expiry.first() else { break };
            self.remove(oldest);
        }
        let state = SessionState {
            ttl_ms,
            last_used_ms: self.log_time_ms,
            applied_seq: 0,
            floor: 1,
            answers: BTreeMap::new(),
            answer_bytes: 0,
        };
        self.insert(id, state);
        id
    }

    /// Decides what to do with command `seq` of `session`, whose client
    /// waits for nothing older than `floor`, proposed at
    /// `proposer_time_ms`: advances the log time (expiring what it must),
    /// marks the session used and drops the answers below `floor`.
    pub fn admit(
        &mut self,
        session: SessionId,
        seq: u64,
        floor: u64,
        proposer_time_ms: u64,
    ) -> Admission<'_> {
        self.advance(proposer_time_ms);
        let Some(mut state) = self.remove(session) else {
            return Admission::Refused(SessionRefusal::Expired);
        };
        state.last_used_ms = self.log_time_ms;
        state.raise_floor(floor.min(seq));
        self.insert(session, state);
        let Some(state) = self.sessions.get(&session) else {
            unreachable!("{session} was just inserted");
        };
        if seq < state.floor {
            return Admission::Refused(SessionRefusal::Stale { floor: state.floor });
        }
        match state.answers.get(&seq) {
            None => Admission::Apply,
            Some(Kept::Answer(answer)) => Admission::Retry(answer),
            Some(Kept::TooLarge) => Admission::Refused(SessionRefusal::AnswerNotKept),
        }
    }

    /// Records that command `seq` of `session` was applied with `answer`.
    /// Call it after [`admit`](SessionTable::admit) said
    /// [`Admission::Apply`] and the command was applied.
    pub fn record(&mut self, session: SessionId, seq: u64, answer: &[u8]) {
        let state = self.sessions.get_mut(&session);
        let Some(state) = state else { panic!("{session} recorded without being admitted") };
        assert!(seq >= state.floor, "{session}: seq {seq} recorded below the floor {}", state.floor);
        let kept =
            if answer.len() <= ANSWER_BYTES_MAX { Kept::Answer(answer.to_vec()) } else { Kept::TooLarge };
        state.answer_bytes += kept.len();
        let replaced = state.answers.insert(seq, kept);
        assert!(replaced.is_none(), "{session}: seq {seq} recorded twice");
        state.applied_seq = state.applied_seq.max(seq);
        state.bound_window();
    }

    /// Moves log time to `proposer_time_ms` if later, and drops the
    /// sessions that expired by then.
    fn advance(&mut self, proposer_time_ms: u64) {
        self.log_time_ms = self.log_time_ms.max(proposer_time_ms);
        while let Some(&(expires_ms, id)) = self.by_expiry.first() {
            if expires_ms >= self.log_time_ms {
                break;
            }
            self.remove(id);
        }
    }

    fn insert(&mut self, id: SessionId, state: SessionState) {
        self.by_expiry.insert((state.expires_ms(), id));
        let replaced = self.sessions.insert(id, state);
        assert!(replaced.is_none(), "{id} inserted twice");
    }

    fn remove(&mut self, id: SessionId) -> Option<SessionState> {
        let state = self.sessions.remove(&id)?;
        let indexed = self.by_expiry.remove(&(state.expires_ms(), id));
        assert!(indexed, "{id} missing from the expiry index");
        Some(state)
    }

    /// Checks the table's invariants; O(n), for tests and the simulator.
    pub fn check_invariants(&self) {
        assert_eq!(self.sessions.len(), self.by_expiry.len());
        assert!(self.sessions.len() <= SESSIONS_MAX);
        for (id, state) in &self.sessions {
            assert!(self.by_expiry.contains(&(state.expires_ms(), *id)));
            assert!(state.last_used_ms <= self.log_time_ms);
            assert!(state.expires_ms() >= self.log_time_ms, "{id} should have expired");
            assert!(state.floor >= 1);
            assert!(state.answers.len() <= WINDOW_ANSWERS_MAX);
            assert_eq!(state.answer_bytes, state.answers.values().map(Kept::len).sum::<usize>());
            assert!(state.answer_bytes <= WINDOW_BYTES_MAX || state.answers.len() == 1);
            assert!(state.answers.keys().all(|&seq| state.floor <= seq && seq <= state.applied_seq));
            if state.applied_seq == 0 {
                assert!(state.answers.is_empty());
            }
        }
    }

    /// Appends the table to `out`, as [`decode`](SessionTable::decode)
    /// reads it: version, log time, sessions in id order, CRC-32C.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.push(TABLE_VERSION);
        out.extend_from_slice(&self.log_time_ms.to_le_bytes());
        out.extend_from_slice(&(self.sessions.len() as u32).to_le_bytes());
        for (id, state) in &self.sessions {
            out.extend_from_slice(&id.0.to_le_bytes());
            out.extend_from_slice(&state.ttl_ms.to_le_bytes());
            out.extend_from_slice(&state.last_used_ms.to_le_bytes());
            out.extend_from_slice(&state.applied_seq.to_le_bytes());
            out.extend_from_slice(&state.floor.to_le_bytes());
            out.extend_from_slice(&(state.answers.len() as u32).to_le_bytes());
            for (seq, kept) in &state.answers {
                out.extend_from_slice(&seq.to_le_bytes());
                match kept {
                    Kept::Answer(answer) => {
                        out.push(1);
                        out.extend_from_slice(&(answer.len() as u32).to_le_bytes());
                        out.extend_from_slice(answer);
                    }
                    Kept::TooLarge => out.push(2),
                }
            }
        }
        let crc = crc32c::crc32c(&out[start..]);
        out.extend_from_slice(&crc.to_le_bytes());
        debug_assert!((out.len() - start) as u64 <= TABLE_BYTES_MAX);
    }

    /// Reads a table as [`encode`](SessionTable::encode) wrote it. Total:
    /// any bytes give a table, or a typed error naming what is wrong;
    /// nothing is allocated beyond what the bytes hold. Only canonical
    /// encodings are accepted, so a table read encodes to the same bytes.
    pub fn decode(bytes: &[u8]) -> Result<SessionTable, TableError> {
        let mut reader = Reader { rest: bytes };
        let version = reader.u8("version")?;
        if version != TABLE_VERSION {
            return Err(TableError::Version(version));
        }
        let log_time_ms = reader.u64_field("log_time_ms")?;
        let count = reader.u32("session count")? as usize;
        if count > SESSIONS_MAX {
            return Err(TableError::TooManySessions { count });
        }
        let mut table = SessionTable { log_time_ms, ..SessionTable::default() };
        let mut previous: Option<SessionId> = None;
        for _ in 0..count {
            let id = SessionId(reader.u64_field("session id")?);
            let ttl_ms = reader.u64_field("ttl_ms")?;
            let last_used_ms = reader.u64_field("last_used_ms")?;
            let applied_seq = reader.u64_field("applied_seq")?;
            let floor = reader.u64_field("floor")?;
            let count = reader.u32("answer count")? as usize;
            let invalid = |what| TableError::Invalid { session: id, what };
            if count > WINDOW_ANSWERS_MAX {
                return Err(invalid("more answers than a window keeps"));
            }
            if floor == 0 {
                return Err(invalid("a floor of 0"));
            }
            let mut state = SessionState {
                ttl_ms,
                last_used_ms,
                applied_seq,
                floor,
                answers: BTreeMap::new(),
                answer_bytes: 0,
            };
            for _ in 0..count {
                let seq = reader.u64_field("answer seq")?;
                let kept = match reader.u8("answer kind")? {
                    1 => {
                        let len = reader.u32("answer length")? as usize;
                        if len > ANSWER_BYTES_MAX {
                            return Err(invalid("an answer longer than kept"));
                        }
                        Kept::Answer(reader.take(len, "answer")?.to_vec())
                    }
                    2 => Kept::TooLarge,
                    _ => return Err(invalid("an unknown answer kind")),
                };
                if seq < floor
                    || seq > applied_seq
                    || state.answers.last_key_value().is_some_and(|(&s, _)| s >= seq)
                {
                    return Err(invalid("an answer outside its window, or out of order"));
                }
                state.answer_bytes += kept.len();
                state.answers.insert(seq, kept);
            }
            if state.answer_bytes > WINDOW_BYTES_MAX && state.answers.len() > 1 {
                return Err(invalid("more answer bytes than a window keeps"));
            }
            if previous.is_some_and(|p| p >= id) {
                return Err(invalid("sessions out of order"));
            }
            previous = Some(id);
            if last_used_ms > log_time_ms || state.expires_ms() < log_time_ms {
                return Err(TableError::Invalid { session: id, what: "a use outside its lifetime" });
            }
            table.insert(id, state);
        }
        let body = bytes.len() - reader.rest.len();
        let stored = reader.u32("checksum")?;
        if !reader.rest.is_empty() {
            return Err(TableError::Trailing { bytes: reader.rest.len() });
        }
        let computed = bytes.get(..body).map(crc32c::crc32c);
        if computed != Some(stored) {
            return Err(TableError::Checksum);
        }
        Ok(table)
    }
}

/// Why bytes are not a [`SessionTable`] (from a snapshot: a damaged file, or
/// one written by another version).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TableError {
    /// The bytes end inside `field`.
    Short {
        /// The field that is cut.
        field: &'static str,
    },
    /// A table version this build does not read.
    Version(u8),
    /// More sessions than [`SESSIONS_MAX`].
    TooManySessions {
        /// How many the bytes claim.
        count: usize,
    },
    /// A session's fields contradict each other or the table.
    Invalid {
        /// The session.
        session: SessionId,
        /// What is wrong.
        what: &'static str,
    },
    /// Bytes after the checksum.
    Trailing {
        /// How many.
        bytes: usize,
    },
    /// The checksum does not match: the bytes are damaged.
    Checksum,
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TableError::Short { field } => write!(f, "the session table is cut in its {field}"),
            TableError::Version(v) => {
                write!(f, "session table version {v}; this build reads {TABLE_VERSION}")
            }
            TableError::TooManySessions { count } => {
                write!(f, "the session table claims {count} sessions; at most {SESSIONS_MAX} are kept")
            }
            TableError::Invalid { session, what } => write!(f, "the session table has {what} in {session}"),
            TableError::Trailing { bytes } => write!(f, "{bytes} bytes after the session table"),
            TableError::Checksum => f.write_str("the session table's checksum does not match: it is damaged"),
        }
    }
}

impl std::error::Error for TableError {}

/// Takes fields off the front of a byte slice, each take checked.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize, field: &'static str) -> Result<&'a [u8], TableError> {
        let (taken, rest) = self.rest.split_at_checked(len).ok_or(TableError::Short { field })?;
        self.rest = rest;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], &'static str> {
        let (taken, rest) = self.rest.split_first_chunk::<N>().ok_or(field)?;
        self.rest = rest;
        Ok(*taken)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, TableError> {
        self.array::<1>(field).map(|[b]| b).map_err(|field| TableError::Short { field })
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, TableError> {
        self.array::<4>(field).map(u32::from_le_bytes).map_err(|field| TableError::Short { field })
    }

    /// For the envelope, whose errors are its own: the field name only.
    fn u64(&mut self, field: &'static str) -> Result<u64, &'static str> {
        self.array::<8>(field).map(u64::from_le_bytes)
    }

    fn u64_field(&mut self, field: &'static str) -> Result<u64, TableError> {
        self.u64(field).map_err(|field| TableError::Short { field })
    }
}
