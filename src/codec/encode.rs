//! Writing messages as frames.

use byteorder::{LittleEndian, WriteBytesExt};

use super::{
    Kind, APPEND_ENTRIES_FIXED_BYTES, APPEND_RESPONSE_ACCEPTED, APPEND_RESPONSE_REJECTED,
    COMMAND_HEADER_BYTES, ENTRY_HEADER_BYTES, ENTRY_KIND_BLANK, ENTRY_KIND_COMMAND, ENTRY_KIND_MEMBERSHIP,
    FRAME_KIND_BYTES, FRAME_LEN_BYTES, MAX_FRAME_BYTES, MESSAGE_HEADER_BYTES, PROPOSE_FIXED_BYTES,
    READ_INDEX_NONE, READ_INDEX_SOME,
};
use crate::message::{
    AppendEntries, AppendEntriesResponse, Message, MessageBody, Propose, ENTRIES_BYTES_LIMIT,
};
use crate::types::DiskTrouble;
use crate::types::{Entry, EntryKind, ENTRY_OVERHEAD_BYTES};

/// The number of bytes [`encode_message`] appends for `msg`: the whole frame,
/// length prefix included.
pub fn encoded_len(msg: &Message) -> usize {
    FRAME_LEN_BYTES.saturating_add(frame_body_len(msg))
}

/// Appends `msg` to `out` as one whole frame, length prefix included, ready
/// to be written to a peer. Reserves the exact space first, so `out` grows
/// at most once.
///
/// # Panics
///
/// If `msg` is not a message the core may send, which is a bug in the
/// caller: an `AppendEntries` whose entries are not numbered consecutively
/// from `prev_log_index + 1`, that carry more than [`ENTRIES_BYTES_LIMIT`]
/// bytes (as counted by [`Entry::size_bytes`]), or that include a
/// [`EntryKind::Blank`] entry with data. Such a message would decode to
/// something else, or not at all, on the other side.
pub fn encode_message(msg: &Message, out: &mut Vec<u8>) {
    match &msg.body {
        MessageBody::AppendEntries(append) => check_entries(append),
        MessageBody::Propose(propose) => check_commands(propose),
        _ => {}
    }
    let body_len = frame_body_len(msg);
    assert!(body_len <= MAX_FRAME_BYTES, "frame of {body_len} bytes is above MAX_FRAME_BYTES");
    let body_len_u32 = u32::try_from(body_len).expect("MAX_FRAME_BYTES fits in u32");

    out.reserve(FRAME_LEN_BYTES + body_len);
    let start_len = out.len();
    let mut w = Writer(out);
    w.u32(body_len_u32);
    w.u8(Kind::of(&msg.body).tag());
    w.u64(msg.from.0);
    w.u64(msg.to.0);
    w.u64(msg.term.0);
    w.u64(msg.from_incarnation.0);
    match &msg.body {
        MessageBody::RequestVote(request) => {
            w.bool(request.pre_vote);
            w.u64(request.last_log_index.0);
            w.u64(request.last_log_term.0);
            w.bool(request.leadership_transfer);
        }
        MessageBody::RequestVoteResponse(response) => {
            w.bool(response.pre_vote);
            w.bool(response.granted);
        }
        MessageBody::AppendEntries(append) => {
            w.u64(append.prev_log_index.0);
            w.u64(append.prev_log_term.0);
            w.u64(append.leader_commit.0);
            let count =
                u32::try_from(append.entries.len()).expect("entry count is bounded by ENTRIES_BYTES_LIMIT");
            w.u32(count);
            for entry in &append.entries {
                write_entry(&mut w, entry);
            }
        }
        MessageBody::AppendEntriesResponse(AppendEntriesResponse::Accepted { match_index }) => {
            w.u8(APPEND_RESPONSE_ACCEPTED);
            w.u64(match_index.0);
        }
        MessageBody::AppendEntriesResponse(AppendEntriesResponse::Rejected {
            rejected_index,
            hint_index,
            hint_term,
        }) => {
            w.u8(APPEND_RESPONSE_REJECTED);
            w.u64(rejected_index.0);
            w.u64(hint_index.0);
            w.u64(hint_term.0);
        }
        MessageBody::Heartbeat(heartbeat) => {
            w.u64(heartbeat.commit.0);
            w.u64(heartbeat.commit_term.0);
            w.u64(heartbeat.round);
        }
        MessageBody::HeartbeatResponse(response) => {
            w.u64(response.round);
            w.u64(response.last_index.0);
            w.u8(match response.disk {
                None => 0,
                Some(DiskTrouble::Full) => 1,
                Some(DiskTrouble::Stalled) => 2,
            });
        }
        MessageBody::TimeoutNow => {}
        MessageBody::ReadIndex(request) => w.u64(request.request_id),
        MessageBody::ReadIndexResponse(response) => {
            w.u64(response.request_id);
            match response.index {
                None => w.u8(READ_INDEX_NONE),
                Some(index) => {
                    w.u8(READ_INDEX_SOME);
                    w.u64(index.0);
                }
            }
        }
        MessageBody::Propose(propose) => {
            let count = u32::try_from(propose.commands.len())
                .expect("command count is bounded by ENTRIES_BYTES_LIMIT");
            w.u32(count);
            for command in &propose.commands {
                let len =
                    u32::try_from(command.len()).expect("command length is bounded by ENTRIES_BYTES_LIMIT");
                w.u32(len);
                w.0.extend_from_slice(command);
            }
        }
        MessageBody::SnapshotChunk(chunk) => {
            w.u64(chunk.index.0);
            w.u64(chunk.snapshot_term.0);
            w.u64(chunk.offset);
            w.u64(chunk.total_bytes);
            w.u32(u32::try_from(chunk.data.len()).expect("a chunk fits in a frame"));
            w.0.extend_from_slice(&chunk.data);
        }
        MessageBody::SnapshotAck(ack) => {
            w.u64(ack.index.0);
            w.u64(ack.snapshot_term.0);
            w.u64(ack.received);
            w.bool(ack.failed);
        }
    }
    debug_assert_eq!(out.len() - start_len, FRAME_LEN_BYTES + body_len);
}

/// Bytes of a frame after its length prefix.
fn frame_body_len(msg: &Message) -> usize {
    let body = match &msg.body {
        MessageBody::RequestVote(_) => 1 + 8 + 8 + 1,
        MessageBody::RequestVoteResponse(_) => 1 + 1,
        MessageBody::AppendEntries(append) => {
            append.entries.iter().fold(APPEND_ENTRIES_FIXED_BYTES, |sum, entry| {
                sum.saturating_add(ENTRY_HEADER_BYTES.saturating_add(entry.data.len()))
            })
        }
        MessageBody::AppendEntriesResponse(AppendEntriesResponse::Accepted { .. }) => 1 + 8,
        MessageBody::AppendEntriesResponse(AppendEntriesResponse::Rejected { .. }) => 1 + 8 + 8 + 8,
        MessageBody::Heartbeat(_) => 8 + 8 + 8,
        MessageBody::HeartbeatResponse(_) => 8 + 8 + 1,
        MessageBody::TimeoutNow => 0,
        MessageBody::ReadIndex(_) => 8,
        MessageBody::ReadIndexResponse(r) => 8 + 1 + if r.index.is_some() { 8 } else { 0 },
        MessageBody::Propose(propose) => propose.commands.iter().fold(PROPOSE_FIXED_BYTES, |sum, command| {
            sum.saturating_add(COMMAND_HEADER_BYTES.saturating_add(command.len()))
        }),
        MessageBody::SnapshotChunk(chunk) => 8 + 8 + 8 + 8 + 4 + chunk.data.len(),
        MessageBody::SnapshotAck(_) => 8 + 8 + 8 + 1,
    };
    (FRAME_KIND_BYTES + MESSAGE_HEADER_BYTES).saturating_add(body)
}

/// Asserts what the wire cannot represent: the indexes are implicit, blank
/// entries have no data, and the entries fit [`ENTRIES_BYTES_LIMIT`].
fn check_entries(append: &AppendEntries) {
    let mut index = append.prev_log_index;
    let mut entries_bytes: u64 = 0;
    for entry in &append.entries {
        index = index.next();
        assert_eq!(entry.index, index, "AppendEntries entries must be consecutive from prev_log_index + 1");
        assert!(entry.kind != EntryKind::Blank || entry.data.is_empty(), "a blank entry must carry no data");
        entries_bytes = entries_bytes.saturating_add(entry.size_bytes());
    }
    assert!(
        entries_bytes <= ENTRIES_BYTES_LIMIT,
        "AppendEntries carries {entries_bytes} entry bytes, above ENTRIES_BYTES_LIMIT"
    );
}

/// Asserts that forwarded commands fit [`ENTRIES_BYTES_LIMIT`], counted as
/// entries would be.
fn check_commands(propose: &Propose) {
    let bytes = propose
        .commands
        .iter()
        .fold(0u64, |sum, command| sum.saturating_add(command.len() as u64 + ENTRY_OVERHEAD_BYTES));
    assert!(bytes <= ENTRIES_BYTES_LIMIT, "Propose carries {bytes} command bytes, above ENTRIES_BYTES_LIMIT");
}

/// Writes one entry; its index is implicit.
fn write_entry(w: &mut Writer<'_>, entry: &Entry) {
    w.u64(entry.term.0);
    w.u8(match entry.kind {
        EntryKind::Blank => ENTRY_KIND_BLANK,
        EntryKind::Command => ENTRY_KIND_COMMAND,
        EntryKind::Membership => ENTRY_KIND_MEMBERSHIP,
    });
    let len = u32::try_from(entry.data.len()).expect("entry length is bounded by ENTRIES_BYTES_LIMIT");
    w.u32(len);
    w.0.extend_from_slice(&entry.data);
}

/// Little-endian writes onto a `Vec<u8>`.
struct Writer<'a>(&'a mut Vec<u8>);

// `io::Write for Vec<u8>` never returns an error (running out of memory
// aborts instead), so the `expect`s below cannot fire.
impl Writer<'_> {
    fn u8(&mut self, value: u8) {
        self.0.write_u8(value).expect("writing to a Vec cannot fail");
    }

    fn bool(&mut self, value: bool) {
        self.u8(u8::from(value));
    }

    fn u32(&mut self, value: u32) {
        self.0.write_u32::<LittleEndian>(value).expect("writing to a Vec cannot fail");
    }

    fn u64(&mut self, value: u64) {
        self.0.write_u64::<LittleEndian>(value).expect("writing to a Vec cannot fail");
    }
}
