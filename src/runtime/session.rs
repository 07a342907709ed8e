//! The client side of exactly-once sessions: a [`Session`] numbers its
//! commands and retries each under the same number until it gets an
//! answer, and the replicated [`SessionTable`](crate::session::SessionTable)
//! applies each number once.

use std::time::{Duration, Instant, SystemTime};

use super::{Handle, RequestError, Unanswered};
use crate::session::{Envelope, SessionId};

/// The first pause between retries; it doubles up to [`RETRY_DELAY_MAX`].
const RETRY_DELAY_MIN: Duration = Duration::from_millis(10);
const RETRY_DELAY_MAX: Duration = Duration::from_millis(500);

/// A client session (Raft thesis §6.3): its commands are applied exactly
/// once, even when the caller could not tell whether an attempt went
/// through and the session sent it again.
///
/// Open one with [`Handle::open_session`], then call
/// [`propose`](Session::propose) for each command, one at a time (it takes
/// `&mut self`). Each command gets the next sequence number; while its
/// outcome is unknown (a leader died, a timeout) or no leader is known,
/// `propose` sends it again with the same number, for up to
/// [`retry_for`](Session::set_retry_for). The cluster keeps, per session,
/// the last number applied and its answer, and answers a retry with that
/// answer instead of applying the command a second time.
///
/// A session unused for its ttl
/// ([`RuntimeConfig::session_ttl`](super::RuntimeConfig::session_ttl)) of
/// log time expires, on every node alike; its commands then fail with
/// [`RequestError::Session`] and apply nothing: open a new session.
///
/// ```no_run
/// # fn count(handle: &oar::runtime::Handle) -> Result<(), oar::runtime::RequestError> {
/// let mut session = handle.open_session()?;
/// // Applied once, even if the leader dies while it is in flight.
/// let answer = session.propose(b"incr visits")?;
/// # let _ = answer;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Session {
    handle: Handle,
    id: SessionId,
    /// The last sequence number taken; the next command gets one more.
    seq: u64,
    retry_for: Duration,
    /// Attempts beyond the first of each command, over the session's life.
    retries: u64,
}

impl Handle {
    /// Opens a [`Session`] through this node, whose commands are applied
    /// exactly once. Blocks until the opening is applied; retries while no
    /// leader is known or the outcome is unknown, for up to
    /// [`RuntimeConfig::session_retry_for`](super::RuntimeConfig::session_retry_for)
    /// (a retried opening may leave an unused session behind; it expires).
    pub fn open_session(&self) -> Result<Session, RequestError> {
        let ttl_ms = u64::try_from(self.shared.session_ttl.as_millis()).unwrap_or(u64::MAX);
        let retry_for = self.shared.session_retry_for;
        let answer = retry(retry_for, &mut 0, || {
            self.propose_envelope_wait(Envelope::Open { proposer_time_ms: wall_clock_ms(), ttl_ms })
        })?;
        let id = <[u8; 8]>::try_from(answer.as_slice())
            .expect("the apply thread answers a session opening with the session's id");
        Ok(Session {
            handle: self.clone(),
            id: SessionId(u64::from_le_bytes(id)),
            seq: 0,
            retry_for,
            retries: 0,
        })
    }
}

impl Session {
    /// The session's id: the log index of the entry that opened it.
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// How many times [`propose`](Session::propose) sent a command again
    /// (the attempts beyond the first of each), since the session opened.
    pub fn retries(&self) -> u64 {
        self.retries
    }

    /// How long [`propose`](Session::propose) keeps retrying one command;
    /// [`RuntimeConfig::session_retry_for`](super::RuntimeConfig::session_retry_for)
    /// unless set.
    pub fn set_retry_for(&mut self, retry_for: Duration) {
        self.retry_for = retry_for;
    }

    /// Proposes `command` under the next sequence number and blocks until
    /// it is applied, returning the state machine's answer: the one it gave
    /// the first time the command was applied, however many attempts it
    /// took.
    ///
    /// Retries with the same number while the outcome is unknown
    /// ([`RequestError::OutcomeUnknown`] from a timeout) or nothing was
    /// appended and a retry may work ([`RequestError::NoLeader`],
    /// [`Busy`](RequestError::Busy), [`Disk`](RequestError::Disk)),
    /// until the retry deadline. An error returned after an attempt whose
    /// outcome was unknown is [`RequestError::OutcomeUnknown`]: that
    /// attempt may still have been applied (once).
    pub fn propose(&mut self, command: &[u8]) -> Result<Vec<u8>, RequestError> {
        self.seq += 1;
        let (session, seq) = (self.id, self.seq);
        retry(self.retry_for, &mut self.retries, || {
            let envelope =
                Envelope::Command { session, seq, floor: seq, proposer_time_ms: wall_clock_ms(), command };
            self.handle.propose_envelope_wait(envelope)
        })
    }
}

/// Calls `attempt` until it answers, fails for good, or `retry_for` is
/// spent; an error after an attempt that may have been appended says the
/// outcome is unknown.
fn retry(
    retry_for: Duration,
    retries: &mut u64,
    mut attempt: impl FnMut() -> Result<Vec<u8>, RequestError>,
) -> Result<Vec<u8>, RequestError> {
    let give_up = Instant::now() + retry_for;
    let mut delay = RETRY_DELAY_MIN;
    let mut unknown: Option<Unanswered> = None;
    loop {
        let error = match attempt() {
            Ok(answer) => return Ok(answer),
            Err(error) => error,
        };
        let retryable = matches!(
            error,
            RequestError::NoLeader
                | RequestError::Busy
                | RequestError::Disk(_)
                | RequestError::OutcomeUnknown { why: Unanswered::Timeout }
        );
        if let RequestError::OutcomeUnknown { why } = &error {
            unknown = Some(why.clone());
        }
        if !retryable || Instant::now() + delay >= give_up {
            return Err(match (unknown, error) {
                // Applied once, its answer lost: say so, not "unknown".
                (
                    _,
                    e @ RequestError::Session {
                        refusal: crate::session::SessionRefusal::AnswerNotKept, ..
                    },
                ) => e,
                (Some(why), e) if !e.may_have_been_appended() => RequestError::OutcomeUnknown { why },
                (_, e) => e,
            });
        }
        std::thread::sleep(delay);
        *retries += 1;
        delay = (delay * 2).min(RETRY_DELAY_MAX);
    }
}

/// This node's wall clock in milliseconds: the time a session entry
/// carries, from which the log time that expires sessions is made.
pub(crate) fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
