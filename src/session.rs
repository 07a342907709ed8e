//! Exactly-once client sessions (Raft thesis §6.3), without IO.
//!
//! A client that gets no answer cannot tell whether its command was applied;
//! retrying a non-idempotent command (an increment) may apply it twice. A
//! session fixes that: the client numbers its commands, the replicated
//! state keeps, per session, the highest number applied and its answer, and
//! a retry of that number gets the stored answer instead of a second apply.
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
/// The tag of a session command: session, seq, `proposer_time_ms`, then the
/// command.
pub const TAG_COMMAND: u8 = 2;

/// The bytes of a session opening.
pub const OPEN_BYTES: usize = 1 + 8 + 8;
/// The bytes a session command adds in front of the command.
pub const COMMAND_HEADER_BYTES: usize = 1 + 8 + 8 + 8;

/// Sessions the table keeps at most; opening one more drops the session
/// closest to expiry first (deterministically: the table is the same on
/// every replica). Bounds the table's memory and its snapshot.
pub const SESSIONS_MAX: usize = 4096;

/// The largest answer the table keeps for a retry. A longer answer is
/// returned to the caller, but a retry of its command gets
/// [`SessionRefusal::AnswerNotKept`].
pub const ANSWER_BYTES_MAX: usize = 64 << 10;

/// The largest encoded table: [`SESSIONS_MAX`] sessions, each with an
/// answer of [`ANSWER_BYTES_MAX`]. A length prefix beyond it is refused
/// before anything is read.
pub const TABLE_BYTES_MAX: u64 =
    (TABLE_HEADER_BYTES + SESSIONS_MAX * (SESSION_FIXED_BYTES + ANSWER_BYTES_MAX) + 4) as u64;

const TABLE_VERSION: u8 = 1;
const TABLE_HEADER_BYTES: usize = 1 + 8 + 4;
const SESSION_FIXED_BYTES: usize = 8 + 8 + 8 + 8 + 1 + 4;

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
}

impl fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvelopeError::Empty => f.write_str("an empty command: no envelope tag"),
            EnvelopeError::UnknownTag(tag) => write!(f, "unknown envelope tag {tag}"),
            EnvelopeError::Short { field } => write!(f, "the envelope is cut in its {field}"),
            EnvelopeError::Trailing { bytes } => write!(f, "{bytes} bytes after a session opening"),
            EnvelopeError::ZeroSeq => f.write_str("a session command numbered 0"),
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
            TAG_COMMAND => {
                let session = SessionId(reader.u64("session").map_err(short)?);
                let seq = reader.u64("seq").map_err(short)?;
                let proposer_time_ms = reader.u64("proposer_time_ms").map_err(short)?;
                if seq == 0 {
                    return Err(EnvelopeError::ZeroSeq);
                }
                Ok(Envelope::Command { session, seq, proposer_time_ms, command: reader.rest })
            }
            other => Err(EnvelopeError::UnknownTag(other)),
        }
    }

    /// Appends the envelope (and, for a command, the command) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match *self {
            Envelope::Plain(command) => {
                out.push(TAG_PLAIN);
                out.extend_from_slice(command);
            }
            Envelope::Open { proposer_time_ms, ttl_ms } => {
                out.push(TAG_OPEN);
                out.extend_from_slice(&proposer_time_ms.to_le_bytes());
                out.extend_from_slice(&ttl_ms.to_le_bytes());
            }
            Envelope::Command { session, seq, proposer_time_ms, command } => {
                assert!(seq > 0, "session commands are numbered from 1");
                out.push(TAG_COMMAND);
                out.extend_from_slice(&session.0.to_le_bytes());
                out.extend_from_slice(&seq.to_le_bytes());
                out.extend_from_slice(&proposer_time_ms.to_le_bytes());
                out.extend_from_slice(command);
            }
        }
    }

    /// The bytes [`encode`](Envelope::encode) appends.
    pub fn encoded_len(&self) -> usize {
        match self {
            Envelope::Plain(command) => 1 + command.len(),
            Envelope::Open { .. } => OPEN_BYTES,
            Envelope::Command { command, .. } => COMMAND_HEADER_BYTES + command.len(),
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
    /// A command older than the last one the session applied: its answer is
    /// no longer kept. Only one command per session may be outstanding.
    Stale {
        /// The highest number the session applied.
        applied_seq: u64,
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
            SessionRefusal::Stale { applied_seq } => write!(
                f,
                "older than command {applied_seq}, the last the session applied; nothing was applied"
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
    /// A retry of the last command applied: answer this, apply nothing.
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
    /// The answer of `applied_seq`; `None` while `applied_seq == 0`.
    answer: Option<Kept>,
}

impl SessionState {
    /// The log time past which the session is expired.
    fn expires_ms(&self) -> u64 {
        self.last_used_ms.saturating_add(self.ttl_ms)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kept {
    Answer(Vec<u8>),
    TooLarge,
}

/// The sessions of the replicated state: per session the last command
/// applied and its answer. Every replica holds the same table at the same
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
            Envelope::Command { session, seq, proposer_time_ms, command } => {
                match self.admit(session, seq, proposer_time_ms) {
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
        let state = SessionState { ttl_ms, last_used_ms: self.log_time_ms, applied_seq: 0, answer: None };
        self.insert(id, state);
        id
    }

    /// Decides what to do with command `seq` of `session`, proposed at
    /// `proposer_time_ms`: advances the log time (expiring what it must)
    /// and marks the session used.
    pub fn admit(&mut self, session: SessionId, seq: u64, proposer_time_ms: u64) -> Admission<'_> {
        self.advance(proposer_time_ms);
        let Some(mut state) = self.remove(session) else {
            return Admission::Refused(SessionRefusal::Expired);
        };
        state.last_used_ms = self.log_time_ms;
        self.insert(session, state);
        let Some(state) = self.sessions.get(&session) else {
            unreachable!("{session} was just inserted");
        };
        if seq > state.applied_seq {
            return Admission::Apply;
        }
        if seq < state.applied_seq {
            return Admission::Refused(SessionRefusal::Stale { applied_seq: state.applied_seq });
        }
        match &state.answer {
            Some(Kept::Answer(answer)) => Admission::Retry(answer),
            Some(Kept::TooLarge) => Admission::Refused(SessionRefusal::AnswerNotKept),
            None => unreachable!("seq 0 is never admitted and applied_seq > 0 has an answer"),
        }
    }

    /// Records that command `seq` of `session` was applied with `answer`.
    /// Call it after [`admit`](SessionTable::admit) said
    /// [`Admission::Apply`] and the command was applied.
    pub fn record(&mut self, session: SessionId, seq: u64, answer: &[u8]) {
        let state = self.sessions.get_mut(&session);
        let Some(state) = state else { panic!("{session} recorded without being admitted") };
        assert!(seq > state.applied_seq, "{session}: seq {seq} recorded after {}", state.applied_seq);
        state.applied_seq = seq;
        state.answer = Some(if answer.len() <= ANSWER_BYTES_MAX {
            Kept::Answer(answer.to_vec())
        } else {
            Kept::TooLarge
        });
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
            assert_eq!(state.applied_seq == 0, state.answer.is_none());
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
            match &state.answer {
                None => out.push(0),
                Some(Kept::Answer(answer)) => {
                    out.push(1);
                    out.extend_from_slice(&(answer.len() as u32).to_le_bytes());
                    out.extend_from_slice(answer);
                }
                Some(Kept::TooLarge) => out.push(2),
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
            let answer = match reader.u8("answer kind")? {
                0 => None,
                1 => {
                    let len = reader.u32("answer length")? as usize;
                    if len > ANSWER_BYTES_MAX {
                        return Err(TableError::Invalid { session: id, what: "an answer longer than kept" });
                    }
                    Some(Kept::Answer(reader.take(len, "answer")?.to_vec()))
                }
                2 => Some(Kept::TooLarge),
                _ => return Err(TableError::Invalid { session: id, what: "an unknown answer kind" }),
            };
            if previous.is_some_and(|p| p >= id) {
                return Err(TableError::Invalid { session: id, what: "sessions out of order" });
            }
            previous = Some(id);
            let state = SessionState { ttl_ms, last_used_ms, applied_seq, answer };
            if (applied_seq == 0) != state.answer.is_none() {
                return Err(TableError::Invalid {
                    session: id,
                    what: "an answer without a command, or none",
                });
            }
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
