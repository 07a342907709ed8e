//! Reading frames and messages. Every function here is total: it returns a
//! value or a [`DecodeError`] for any input, and allocates only for counts it
//! has checked against the input's remaining bytes and a `MAX_*` limit.

use byteorder::{LittleEndian, ReadBytesExt};
use bytes::Bytes;

use super::error::DecodeError;
use super::reader::Reader;
use super::{
    Kind, APPEND_RESPONSE_ACCEPTED, APPEND_RESPONSE_REJECTED, COMMAND_HEADER_BYTES, ENTRY_HEADER_BYTES,
    ENTRY_KIND_BLANK, ENTRY_KIND_COMMAND, ENTRY_KIND_MEMBERSHIP, FRAME_LEN_BYTES, MAX_ENTRY_COUNT,
    MAX_FRAME_BYTES, READ_INDEX_NONE, READ_INDEX_SOME, RESERVED_KINDS,
};
use crate::message::{
    AppendEntries, AppendEntriesResponse, Heartbeat, HeartbeatResponse, Message, MessageBody, Propose,
    ReadIndex, ReadIndexResponse, RequestVote, RequestVoteResponse, SnapshotAck, SnapshotChunk,
    ENTRIES_BYTES_LIMIT,
};
use crate::types::DiskTrouble;
use crate::types::{Entry, EntryKind, Incarnation, LogIndex, NodeId, Term, ENTRY_OVERHEAD_BYTES};

/// Decodes the frame at the start of `buf`, returning the message and the
/// number of bytes the frame took (length prefix included). Bytes after the
/// frame are left alone: call again on the rest for the next frame.
///
/// Answers [`DecodeError::Incomplete`] when `buf` holds only part of a frame
/// whose length prefix is valid (or only part of the prefix), and
/// [`DecodeError::TooLarge`] for a prefix above [`MAX_FRAME_BYTES`] even when
/// the body has not arrived. Entry payloads of the message share `buf`'s
/// memory.
pub fn decode_frame(buf: &Bytes) -> Result<(Message, usize), DecodeError> {
    let Some(body_len) = peek_frame_len(buf)? else {
        return Err(DecodeError::Incomplete { needed: FRAME_LEN_BYTES.saturating_sub(buf.len()) });
    };
    // Cannot overflow: `body_len <= MAX_FRAME_BYTES`, which fits in a u32.
    let frame_len = FRAME_LEN_BYTES + body_len;
    let body = buf
        .get(FRAME_LEN_BYTES..frame_len)
        .ok_or(DecodeError::Incomplete { needed: frame_len.saturating_sub(buf.len()) })?;
    let message = decode_message(&buf.slice_ref(body))?;
    Ok((message, frame_len))
}

/// Reads the length prefix at the start of `buf`: `Ok(None)` while fewer
/// than [`FRAME_LEN_BYTES`] bytes are there, the number of bytes after the
/// prefix otherwise, or [`DecodeError::TooLarge`] when that is above
/// [`MAX_FRAME_BYTES`].
pub(crate) fn peek_frame_len(buf: &[u8]) -> Result<Option<usize>, DecodeError> {
    let Some(mut prefix) = buf.get(..FRAME_LEN_BYTES) else {
        return Ok(None);
    };
    let len = prefix.read_u32::<LittleEndian>().map_err(|_| DecodeError::Truncated { field: "frame.len" })?;
    usize::try_from(len).ok().filter(|&len| len <= MAX_FRAME_BYTES).map(Some).ok_or(DecodeError::TooLarge {
        field: "frame.len",
        len: u64::from(len),
        max: MAX_FRAME_BYTES as u64,
    })
}

/// Decodes one message from `frame_body`: the bytes of a frame after its
/// length prefix (kind, message header and body), exactly as many as the
/// prefix announced. Bytes left over after the message are an error.
///
/// Entry payloads are slices of `frame_body`, not copies; they keep its
/// memory alive as long as the entries live.
pub fn decode_message(frame_body: &Bytes) -> Result<Message, DecodeError> {
    let mut r = Reader::new(frame_body);
    let tag = r.u8("message.kind")?;
    if RESERVED_KINDS.contains(&tag) {
        return Err(DecodeError::ReservedKind { value: tag });
    }
    let kind = Kind::from_tag(tag).ok_or(DecodeError::BadTag { field: "message.kind", value: tag })?;
    let from = NodeId(r.u64("message.from")?);
    let to = NodeId(r.u64("message.to")?);
    let term = Term(r.u64("message.term")?);
    let from_incarnation = Incarnation(r.u64("message.from_incarnation")?);
    let body = match kind {
        Kind::RequestVote => MessageBody::RequestVote(read_request_vote(&mut r)?),
        Kind::RequestVoteResponse => MessageBody::RequestVoteResponse(read_request_vote_response(&mut r)?),
        Kind::AppendEntries => MessageBody::AppendEntries(read_append_entries(&mut r)?),
        Kind::AppendEntriesResponse => {
            MessageBody::AppendEntriesResponse(read_append_entries_response(&mut r)?)
        }
        Kind::Heartbeat => {
            let commit = LogIndex(r.u64("heartbeat.commit")?);
            let commit_term = Term(r.u64("heartbeat.commit_term")?);
            let round = r.u64("heartbeat.round")?;
            MessageBody::Heartbeat(Heartbeat { commit, commit_term, round })
        }
        Kind::HeartbeatResponse => {
            let round = r.u64("heartbeat_response.round")?;
            let last_index = LogIndex(r.u64("heartbeat_response.last_index")?);
            let disk = match r.u8("heartbeat_response.disk")? {
                0 => None,
                1 => Some(DiskTrouble::Full),
                2 => Some(DiskTrouble::Stalled),
                value => return Err(DecodeError::BadTag { field: "heartbeat_response.disk", value }),
            };
            MessageBody::HeartbeatResponse(HeartbeatResponse { round, last_index, disk })
        }
        Kind::TimeoutNow => MessageBody::TimeoutNow,
        Kind::ReadIndex => MessageBody::ReadIndex(ReadIndex { request_id: r.u64("read_index.request_id")? }),
        Kind::ReadIndexResponse => MessageBody::ReadIndexResponse(read_read_index_response(&mut r)?),
        Kind::Propose => MessageBody::Propose(read_propose(&mut r)?),
        Kind::SnapshotChunk => {
            let index = LogIndex(r.u64("snapshot_chunk.index")?);
            let snapshot_term = Term(r.u64("snapshot_chunk.snapshot_term")?);
            let offset = r.u64("snapshot_chunk.offset")?;
            let total_bytes = r.u64("snapshot_chunk.total_bytes")?;
            let len = r.u32("snapshot_chunk.len")?;
            let data = r.bytes(len as usize, "snapshot_chunk.data")?;
            if offset.checked_add(u64::from(len)).is_none_or(|end| end > total_bytes) {
                return Err(DecodeError::Invalid {
                    field: "snapshot_chunk.offset",
                    reason: "the chunk ends beyond the file",
                });
            }
            MessageBody::SnapshotChunk(SnapshotChunk { index, snapshot_term, offset, total_bytes, data })
        }
        Kind::SnapshotAck => MessageBody::SnapshotAck(SnapshotAck {
            index: LogIndex(r.u64("snapshot_ack.index")?),
            snapshot_term: Term(r.u64("snapshot_ack.snapshot_term")?),
            received: r.u64("snapshot_ack.received")?,
            failed: r.bool("snapshot_ack.failed")?,
        }),
    };
    r.finish()?;
    Ok(Message { from, to, term, from_incarnation, body })
}

fn read_request_vote(r: &mut Reader<'_>) -> Result<RequestVote, DecodeError> {
    let pre_vote = r.bool("request_vote.pre_vote")?;
    let last_log_index = LogIndex(r.u64("request_vote.last_log_index")?);
    let last_log_term = Term(r.u64("request_vote.last_log_term")?);
    let leadership_transfer = r.bool("request_vote.leadership_transfer")?;
    Ok(RequestVote { pre_vote, last_log_index, last_log_term, leadership_transfer })
}

fn read_request_vote_response(r: &mut Reader<'_>) -> Result<RequestVoteResponse, DecodeError> {
    let pre_vote = r.bool("request_vote_response.pre_vote")?;
    let granted = r.bool("request_vote_response.granted")?;
    Ok(RequestVoteResponse { pre_vote, granted })
}

fn read_append_entries(r: &mut Reader<'_>) -> Result<AppendEntries, DecodeError> {
    let prev_log_index = LogIndex(r.u64("append_entries.prev_log_index")?);
    let prev_log_term = Term(r.u64("append_entries.prev_log_term")?);
    let leader_commit = LogIndex(r.u64("append_entries.leader_commit")?);
    let count = r.u32("append_entries.entry_count")?;

    // Bound the count three ways before allocating for it: by the protocol
    // limit, by the bytes that remain (each entry takes at least its
    // header), and by the index space.
    let count_usize = usize::try_from(count).ok().filter(|&count| count <= MAX_ENTRY_COUNT).ok_or(
        DecodeError::TooLarge {
            field: "append_entries.entry_count",
            len: u64::from(count),
            max: MAX_ENTRY_COUNT as u64,
        },
    )?;
    if count_usize > r.remaining() / ENTRY_HEADER_BYTES {
        return Err(DecodeError::Truncated { field: "append_entries.entries" });
    }
    if prev_log_index.0.checked_add(u64::from(count)).is_none() {
        return Err(DecodeError::Invalid {
            field: "append_entries.prev_log_index",
            reason: "the entries' indexes would go past u64::MAX",
        });
    }

    let mut entries = Vec::with_capacity(count_usize);
    // Invariant: the sum of `size_bytes` of `entries`, at most
    // ENTRIES_BYTES_LIMIT.
    let mut entries_bytes: u64 = 0;
    let mut index = prev_log_index;
    for _ in 0..count {
        // Cannot overflow: checked against `count` above.
        index = index.next();
        let term = Term(r.u64("entry.term")?);
        let kind_tag = r.u8("entry.kind")?;
        let kind = match kind_tag {
            ENTRY_KIND_BLANK => EntryKind::Blank,
            ENTRY_KIND_COMMAND => EntryKind::Command,
            ENTRY_KIND_MEMBERSHIP => EntryKind::Membership,
            value => return Err(DecodeError::BadTag { field: "entry.kind", value }),
        };
        let len = r.u32("entry.len")?;
        if kind == EntryKind::Blank && len != 0 {
            return Err(DecodeError::Invalid { field: "entry.len", reason: "a blank entry carries no data" });
        }
        let len = count_against_limit(&mut entries_bytes, len, "append_entries.entries", "entry.len")?;
        let data = r.bytes(len, "entry.data")?;
        entries.push(Entry { term, index, kind, data });
    }
    Ok(AppendEntries { prev_log_index, prev_log_term, entries, leader_commit })
}

fn read_append_entries_response(r: &mut Reader<'_>) -> Result<AppendEntriesResponse, DecodeError> {
    match r.u8("append_entries_response.tag")? {
        APPEND_RESPONSE_ACCEPTED => Ok(AppendEntriesResponse::Accepted {
            match_index: LogIndex(r.u64("append_entries_response.match_index")?),
        }),
        APPEND_RESPONSE_REJECTED => {
            let rejected_index = LogIndex(r.u64("append_entries_response.rejected_index")?);
            let hint_index = LogIndex(r.u64("append_entries_response.hint_index")?);
            let hint_term = Term(r.u64("append_entries_response.hint_term")?);
            Ok(AppendEntriesResponse::Rejected { rejected_index, hint_index, hint_term })
        }
        value => Err(DecodeError::BadTag { field: "append_entries_response.tag", value }),
    }
}

fn read_read_index_response(r: &mut Reader<'_>) -> Result<ReadIndexResponse, DecodeError> {
    let request_id = r.u64("read_index_response.request_id")?;
    let index = match r.u8("read_index_response.tag")? {
        READ_INDEX_NONE => None,
        READ_INDEX_SOME => Some(LogIndex(r.u64("read_index_response.index")?)),
        value => return Err(DecodeError::BadTag { field: "read_index_response.tag", value }),
    };
    Ok(ReadIndexResponse { request_id, index })
}

fn read_propose(r: &mut Reader<'_>) -> Result<Propose, DecodeError> {
    let count = r.u32("propose.command_count")?;
    // Bound the count by the protocol limit and by the bytes that remain
    // (each command takes at least its length field) before allocating.
    let count =
        usize::try_from(count).ok().filter(|&c| c <= MAX_ENTRY_COUNT).ok_or(DecodeError::TooLarge {
            field: "propose.command_count",
            len: u64::from(count),
            max: MAX_ENTRY_COUNT as u64,
        })?;
    if count > r.remaining() / COMMAND_HEADER_BYTES {
        return Err(DecodeError::Truncated { field: "propose.commands" });
    }
    let mut commands = Vec::with_capacity(count);
    let mut commands_bytes: u64 = 0;
    for _ in 0..count {
        let len = r.u32("command.len")?;
        let len = count_against_limit(&mut commands_bytes, len, "propose.commands", "command.len")?;
        commands.push(r.bytes(len, "command.data")?);
    }
    Ok(Propose { commands })
}

/// Adds a payload of `len` bytes (plus the per-entry overhead) to `total`,
/// refusing totals above [`ENTRIES_BYTES_LIMIT`] before anything is read or
/// allocated for it; returns `len` as a `usize`.
fn count_against_limit(
    total: &mut u64,
    len: u32,
    total_field: &'static str,
    len_field: &'static str,
) -> Result<usize, DecodeError> {
    // No overflow: the total stays at most ENTRIES_BYTES_LIMIT (far below
    // u64::MAX / 2) before each addition of at most 2^32 + overhead.
    *total += ENTRY_OVERHEAD_BYTES + u64::from(len);
    if *total > ENTRIES_BYTES_LIMIT {
        return Err(DecodeError::TooLarge { field: total_field, len: *total, max: ENTRIES_BYTES_LIMIT });
    }
    usize::try_from(len).map_err(|_| DecodeError::TooLarge {
        field: len_field,
        len: u64::from(len),
        max: usize::MAX as u64,
    })
}
