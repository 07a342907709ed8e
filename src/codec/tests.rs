//! Tests of the wire codec: round trips of every message kind, totality on
//! malformed input, limits enforced before allocation, and the streaming
//! decoder against one-shot decoding.

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;

use super::*;
use crate::message::{
    AppendEntries, AppendEntriesResponse, Heartbeat, HeartbeatResponse, Message, MessageBody, Propose,
    ReadIndex, ReadIndexResponse, RequestVote, RequestVoteResponse, ENTRIES_BYTES_LIMIT,
};
use crate::types::DiskTrouble;
use crate::types::{Entry, EntryKind, Incarnation, LogIndex, NodeId, Term, ENTRY_OVERHEAD_BYTES};

mod handshake;
mod stream;

// ---------------------------------------------------------------------------
// Helpers

/// Where the kind-specific body starts inside an encoded frame.
const BODY_OFFSET: usize = FRAME_HEADER_BYTES + MESSAGE_HEADER_BYTES;

fn encode(msg: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    encode_message(msg, &mut out);
    out
}

/// A frame's bytes after the length prefix, as `decode_message` takes them.
fn frame_body(frame: &[u8]) -> Bytes {
    Bytes::copy_from_slice(frame.get(FRAME_LEN_BYTES..).expect("a whole frame"))
}

/// Rewrites a frame's length prefix to match its current length.
fn fix_prefix(frame: &mut [u8]) {
    let len = u32::try_from(frame.len() - FRAME_LEN_BYTES).expect("test frames are small");
    frame[..FRAME_LEN_BYTES].copy_from_slice(&len.to_le_bytes());
}

fn message(body: MessageBody) -> Message {
    Message { from: NodeId(1), to: NodeId(2), term: Term(3), from_incarnation: Incarnation(4), body }
}

/// Entries numbered consecutively after `prev_log_index`.
fn entries_after(prev_log_index: LogIndex, items: Vec<(Term, EntryKind, Bytes)>) -> Vec<Entry> {
    let mut index = prev_log_index;
    items
        .into_iter()
        .map(|(term, kind, data)| {
            index = index.next();
            Entry { term, index, kind, data }
        })
        .collect()
}

fn append_entries(prev_log_index: u64, items: Vec<(Term, EntryKind, Bytes)>) -> Message {
    message(MessageBody::AppendEntries(AppendEntries {
        prev_log_index: LogIndex(prev_log_index),
        prev_log_term: Term(2),
        entries: entries_after(LogIndex(prev_log_index), items),
        leader_commit: LogIndex(5),
    }))
}

/// One message of every kind and variant.
fn sample_messages() -> Vec<Message> {
    vec![
        message(MessageBody::RequestVote(RequestVote {
            pre_vote: true,
            last_log_index: LogIndex(10),
            last_log_term: Term(2),
            leadership_transfer: false,
        })),
        message(MessageBody::RequestVoteResponse(RequestVoteResponse { pre_vote: false, granted: true })),
        append_entries(
            4,
            vec![
                (Term(3), EntryKind::Blank, Bytes::new()),
                (Term(3), EntryKind::Command, Bytes::from_static(b"hello")),
                (Term(3), EntryKind::Command, Bytes::new()),
            ],
        ),
        append_entries(9, vec![]),
        message(MessageBody::AppendEntriesResponse(AppendEntriesResponse::Accepted {
            match_index: LogIndex(7),
        })),
        message(MessageBody::AppendEntriesResponse(AppendEntriesResponse::Rejected {
            rejected_index: LogIndex(9),
            hint_index: LogIndex(6),
            hint_term: Term(2),
        })),
        message(MessageBody::Heartbeat(Heartbeat { commit: LogIndex(4), commit_term: Term(2), round: 9 })),
        message(MessageBody::HeartbeatResponse(HeartbeatResponse {
            round: 9,
            last_index: LogIndex(3),
            disk: None,
        })),
        message(MessageBody::TimeoutNow),
        message(MessageBody::ReadIndex(ReadIndex { request_id: 77 })),
        message(MessageBody::ReadIndexResponse(ReadIndexResponse {
            request_id: 77,
            index: Some(LogIndex(12)),
        })),
        message(MessageBody::ReadIndexResponse(ReadIndexResponse { request_id: 78, index: None })),
        message(MessageBody::Propose(Propose {
            commands: vec![Bytes::from_static(b"set x 1"), Bytes::new(), Bytes::from_static(b"del y")],
        })),
    ]
}

/// Everything a valid message must satisfy on the wire.
fn assert_round_trip(msg: &Message) {
    let frame = encode(msg);
    assert_eq!(frame.len(), encoded_len(msg));

    let buf = Bytes::from(frame.clone());
    let (decoded, consumed) = decode_frame(&buf).expect("a valid frame decodes");
    assert_eq!(consumed, frame.len());
    assert_eq!(&decoded, msg);
    assert_eq!(encode(&decoded), frame, "re-encoding gives the same bytes");
    assert_eq!(decode_message(&frame_body(&frame)).as_ref(), Ok(msg));

    // Zero-copy: payloads point into the input buffer.
    let input = buf.as_ptr_range();
    if let MessageBody::AppendEntries(append) = &decoded.body {
        for entry in append.entries.iter().filter(|e| !e.data.is_empty()) {
            assert!(input.contains(&entry.data.as_ptr()), "entry data was copied");
        }
    }
    if let MessageBody::Propose(propose) = &decoded.body {
        for command in propose.commands.iter().filter(|c| !c.is_empty()) {
            assert!(input.contains(&command.as_ptr()), "command data was copied");
        }
    }

    // Appending keeps what the buffer held.
    let mut out = b"xyz".to_vec();
    encode_message(msg, &mut out);
    assert_eq!(out.get(..3), Some(&b"xyz"[..]));
    assert_eq!(out.get(3..), Some(&frame[..]));
}

// ---------------------------------------------------------------------------
// Strategies

/// Any `u64`, with the edges drawn often.
fn arb_u64() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0), Just(1), Just(u64::MAX), any::<u64>()]
}

fn arb_message_with(body: impl Strategy<Value = MessageBody>) -> impl Strategy<Value = Message> {
    (arb_u64(), arb_u64(), arb_u64(), arb_u64(), body).prop_map(|(from, to, term, inc, body)| Message {
        from: NodeId(from),
        to: NodeId(to),
        term: Term(term),
        from_incarnation: Incarnation(inc),
        body,
    })
}

fn arb_request_vote() -> impl Strategy<Value = MessageBody> {
    (any::<bool>(), arb_u64(), arb_u64(), any::<bool>()).prop_map(|(pre_vote, index, term, transfer)| {
        MessageBody::RequestVote(RequestVote {
            pre_vote,
            last_log_index: LogIndex(index),
            last_log_term: Term(term),
            leadership_transfer: transfer,
        })
    })
}

fn arb_request_vote_response() -> impl Strategy<Value = MessageBody> {
    (any::<bool>(), any::<bool>()).prop_map(|(pre_vote, granted)| {
        MessageBody::RequestVoteResponse(RequestVoteResponse { pre_vote, granted })
    })
}

fn arb_entry_payload() -> impl Strategy<Value = (Term, EntryKind, Bytes)> {
    let blank = arb_u64().prop_map(|term| (Term(term), EntryKind::Blank, Bytes::new()));
    let command = (arb_u64(), vec(any::<u8>(), 0..48))
        .prop_map(|(term, data)| (Term(term), EntryKind::Command, Bytes::from(data)));
    prop_oneof![1 => blank, 3 => command]
}

/// An `AppendEntries` whose entry indexes are consistent and fit in `u64`.
fn arb_append_entries() -> impl Strategy<Value = MessageBody> {
    (vec(arb_entry_payload(), 0..8), arb_u64(), arb_u64(), arb_u64()).prop_map(
        |(items, prev_index, prev_term, commit)| {
            let count = u64::try_from(items.len()).expect("few entries");
            // Leave room for the entries' indexes, keeping the edge case.
            let prev_log_index = LogIndex(prev_index.min(u64::MAX - count));
            MessageBody::AppendEntries(AppendEntries {
                prev_log_index,
                prev_log_term: Term(prev_term),
                entries: entries_after(prev_log_index, items),
                leader_commit: LogIndex(commit),
            })
        },
    )
}

fn arb_append_entries_response() -> impl Strategy<Value = MessageBody> {
    let accepted =
        arb_u64().prop_map(|index| AppendEntriesResponse::Accepted { match_index: LogIndex(index) });
    let rejected = (arb_u64(), arb_u64(), arb_u64()).prop_map(|(rejected, hint, term)| {
        AppendEntriesResponse::Rejected {
            rejected_index: LogIndex(rejected),
            hint_index: LogIndex(hint),
            hint_term: Term(term),
        }
    });
    prop_oneof![accepted, rejected].prop_map(MessageBody::AppendEntriesResponse)
}

fn arb_heartbeat() -> impl Strategy<Value = MessageBody> {
    (arb_u64(), arb_u64()).prop_map(|(commit, round)| {
        MessageBody::Heartbeat(Heartbeat { commit: LogIndex(commit), commit_term: Term(commit / 3), round })
    })
}

fn arb_heartbeat_response() -> impl Strategy<Value = MessageBody> {
    let disk = prop_oneof![Just(None), Just(Some(DiskTrouble::Full)), Just(Some(DiskTrouble::Stalled))];
    (arb_u64(), arb_u64(), disk).prop_map(|(round, last, disk)| {
        MessageBody::HeartbeatResponse(HeartbeatResponse { round, last_index: LogIndex(last), disk })
    })
}

fn arb_read_index() -> impl Strategy<Value = MessageBody> {
    arb_u64().prop_map(|request_id| MessageBody::ReadIndex(ReadIndex { request_id }))
}

fn arb_read_index_response() -> impl Strategy<Value = MessageBody> {
    (arb_u64(), proptest::option::of(arb_u64())).prop_map(|(request_id, index)| {
        MessageBody::ReadIndexResponse(ReadIndexResponse { request_id, index: index.map(LogIndex) })
    })
}

fn arb_propose() -> impl Strategy<Value = MessageBody> {
    vec(vec(any::<u8>(), 0..48), 0..8).prop_map(|commands| {
        MessageBody::Propose(Propose { commands: commands.into_iter().map(Bytes::from).collect() })
    })
}

fn arb_body() -> impl Strategy<Value = MessageBody> {
    prop_oneof![
        arb_request_vote(),
        arb_request_vote_response(),
        arb_append_entries(),
        arb_append_entries_response(),
        arb_heartbeat(),
        arb_heartbeat_response(),
        Just(MessageBody::TimeoutNow),
        arb_read_index(),
        arb_read_index_response(),
        arb_propose(),
    ]
}

fn arb_message() -> impl Strategy<Value = Message> {
    arb_message_with(arb_body())
}

// ---------------------------------------------------------------------------
// Round trips

proptest! {
    #[test]
    fn round_trip_request_vote(msg in arb_message_with(arb_request_vote())) {
        assert_round_trip(&msg);
    }

    #[test]
    fn round_trip_request_vote_response(msg in arb_message_with(arb_request_vote_response())) {
        assert_round_trip(&msg);
    }

    #[test]
    fn round_trip_append_entries(msg in arb_message_with(arb_append_entries())) {
        assert_round_trip(&msg);
    }

    #[test]
    fn round_trip_append_entries_response(
        msg in arb_message_with(arb_append_entries_response()),
    ) {
        assert_round_trip(&msg);
    }

    #[test]
    fn round_trip_heartbeat(msg in arb_message_with(arb_heartbeat())) {
        assert_round_trip(&msg);
    }

    #[test]
    fn round_trip_heartbeat_response(msg in arb_message_with(arb_heartbeat_response())) {
        assert_round_trip(&msg);
    }

    #[test]
    fn round_trip_timeout_now(msg in arb_message_with(Just(MessageBody::TimeoutNow))) {
        assert_round_trip(&msg);
    }

    #[test]
    fn round_trip_read_index(msg in arb_message_with(arb_read_index())) {
        assert_round_trip(&msg);
    }

    #[test]
    fn round_trip_read_index_response(msg in arb_message_with(arb_read_index_response())) {
        assert_round_trip(&msg);
    }

    #[test]
    fn round_trip_propose(msg in arb_message_with(arb_propose())) {
        assert_round_trip(&msg);
    }

    /// Cutting a frame anywhere asks for exactly the missing bytes, and
    /// cutting its body anywhere (with a matching prefix) is `Truncated`.
    #[test]
    fn every_truncation_is_reported(msg in arb_message()) {
        let frame = encode(&msg);
        for cut in 0..frame.len() {
            let partial = Bytes::copy_from_slice(&frame[..cut]);
            let needed = if cut < FRAME_LEN_BYTES {
                FRAME_LEN_BYTES - cut
            } else {
                frame.len() - cut
            };
            prop_assert_eq!(decode_frame(&partial), Err(DecodeError::Incomplete { needed }));
        }
        for cut in FRAME_LEN_BYTES..frame.len() {
            let mut short = frame[..cut].to_vec();
            fix_prefix(&mut short);
            let result = decode_frame(&Bytes::from(short));
            prop_assert!(
                matches!(result, Err(DecodeError::Truncated { .. })),
                "cut at {}: {:?}", cut, result
            );
        }
    }

    /// Whatever a valid frame is mutated into, decoding does not panic, and
    /// whatever decodes re-encodes to exactly the bytes consumed.
    #[test]
    fn mutated_frames_decode_canonically_or_fail(
        msg in arb_message(),
        position in any::<prop::sample::Index>(),
        value in any::<u8>(),
    ) {
        let mut frame = encode(&msg);
        let at = position.index(frame.len());
        frame[at] = value;
        assert_decodes_canonically_or_fails(&frame);
    }

    #[test]
    fn arbitrary_bytes_decode_canonically_or_fail(bytes in vec(any::<u8>(), 0..128)) {
        assert_decodes_canonically_or_fails(&bytes);
        // Also as a frame body, behind a matching prefix.
        let mut frame = vec![0; FRAME_LEN_BYTES];
        frame.extend_from_slice(&bytes);
        fix_prefix(&mut frame);
        assert_decodes_canonically_or_fails(&frame);
    }

}

/// Decodes `bytes` as a frame stream and as a frame body; anything accepted
/// must re-encode to exactly the bytes it was decoded from.
fn assert_decodes_canonically_or_fails(bytes: &[u8]) {
    let buf = Bytes::copy_from_slice(bytes);
    if let Ok((msg, consumed)) = decode_frame(&buf) {
        assert_eq!(encode(&msg), &bytes[..consumed]);
    }
    if let Ok(msg) = decode_message(&buf) {
        assert_eq!(encode(&msg).get(FRAME_LEN_BYTES..), Some(bytes));
    }
}

#[test]
fn sample_messages_round_trip() {
    for msg in sample_messages() {
        assert_round_trip(&msg);
    }
}

/// Pins the layout, so that an accidental change of the wire format fails
/// a test rather than a mixed-version cluster.
#[test]
fn layout_is_as_documented() {
    let msg = append_entries(4, vec![(Term(3), EntryKind::Command, Bytes::from_static(b"hi"))]);
    let mut expected = Vec::new();
    expected.extend_from_slice(&(1u32 + 32 + 28 + 13 + 2).to_le_bytes()); // len
    expected.push(3); // kind: AppendEntries
    expected.extend_from_slice(&1u64.to_le_bytes()); // from
    expected.extend_from_slice(&2u64.to_le_bytes()); // to
    expected.extend_from_slice(&3u64.to_le_bytes()); // term
    expected.extend_from_slice(&4u64.to_le_bytes()); // from_incarnation
    expected.extend_from_slice(&4u64.to_le_bytes()); // prev_log_index
    expected.extend_from_slice(&2u64.to_le_bytes()); // prev_log_term
    expected.extend_from_slice(&5u64.to_le_bytes()); // leader_commit
    expected.extend_from_slice(&1u32.to_le_bytes()); // entry_count
    expected.extend_from_slice(&3u64.to_le_bytes()); // entry.term
    expected.push(1); // entry.kind: Command
    expected.extend_from_slice(&2u32.to_le_bytes()); // entry.len
    expected.extend_from_slice(b"hi"); // entry.data
    assert_eq!(encode(&msg), expected);

    let rejected = message(MessageBody::AppendEntriesResponse(AppendEntriesResponse::Rejected {
        rejected_index: LogIndex(9),
        hint_index: LogIndex(6),
        hint_term: Term(2),
    }));
    let frame = encode(&rejected);
    assert_eq!(frame.get(4), Some(&4), "kind: AppendEntriesResponse");
    assert_eq!(frame.get(BODY_OFFSET), Some(&1), "tag: Rejected");
    assert_eq!(frame.len(), BODY_OFFSET + 25);
}

// ---------------------------------------------------------------------------
// Malformed input

#[test]
fn trailing_bytes_are_rejected() {
    for msg in sample_messages() {
        let frame = encode(&msg);
        for extra in 1..4 {
            let mut long = frame.clone();
            long.extend(std::iter::repeat_n(0, extra));
            fix_prefix(&mut long);
            assert_eq!(
                decode_frame(&Bytes::from(long.clone())),
                Err(DecodeError::TrailingBytes { count: extra }),
                "{msg:?}"
            );
            assert_eq!(decode_message(&frame_body(&long)), Err(DecodeError::TrailingBytes { count: extra }));
        }
        // Bytes after a whole frame are the next frame's business.
        let mut two = frame.clone();
        two.extend_from_slice(&[0xff; 3]);
        assert_eq!(decode_frame(&Bytes::from(two)), Ok((msg, frame.len())));
    }
}

#[test]
fn huge_length_prefixes_are_rejected_before_the_body_arrives() {
    for len in [u32::MAX, u32::try_from(MAX_FRAME_BYTES + 1).expect("fits")] {
        let prefix = Bytes::copy_from_slice(&len.to_le_bytes());
        assert_eq!(
            decode_frame(&prefix),
            Err(DecodeError::TooLarge {
                field: "frame.len",
                len: u64::from(len),
                max: MAX_FRAME_BYTES as u64,
            })
        );
    }
    // The largest allowed prefix just waits for its body.
    let at_max = Bytes::copy_from_slice(&u32::try_from(MAX_FRAME_BYTES).expect("fits").to_le_bytes());
    assert_eq!(decode_frame(&at_max), Err(DecodeError::Incomplete { needed: MAX_FRAME_BYTES }));
}

/// Builds the body of an `AppendEntries` (after the message header) from
/// raw fields, to say things an encoder never would.
fn raw_append_entries(prev_log_index: u64, entry_count: u32, entries: &[u8]) -> Bytes {
    let mut frame = encode(&append_entries(0, vec![]));
    frame.truncate(BODY_OFFSET);
    frame.extend_from_slice(&prev_log_index.to_le_bytes());
    frame.extend_from_slice(&2u64.to_le_bytes());
    frame.extend_from_slice(&5u64.to_le_bytes());
    frame.extend_from_slice(&entry_count.to_le_bytes());
    frame.extend_from_slice(entries);
    frame_body(&frame)
}

fn raw_entry(kind: u8, len: u32, data: &[u8]) -> Vec<u8> {
    let mut entry = 7u64.to_le_bytes().to_vec();
    entry.push(kind);
    entry.extend_from_slice(&len.to_le_bytes());
    entry.extend_from_slice(data);
    entry
}

#[test]
fn huge_counts_and_lengths_are_rejected_without_allocating() {
    // Were any of these allocated for, the test would abort on memory.
    assert_eq!(
        decode_message(&raw_append_entries(0, u32::MAX, &[])),
        Err(DecodeError::TooLarge {
            field: "append_entries.entry_count",
            len: u64::from(u32::MAX),
            max: MAX_ENTRY_COUNT as u64,
        })
    );
    let max_count = u32::try_from(MAX_ENTRY_COUNT).expect("fits");
    assert_eq!(
        decode_message(&raw_append_entries(0, max_count, &raw_entry(1, 0, &[]))),
        Err(DecodeError::Truncated { field: "append_entries.entries" })
    );
    assert_eq!(
        decode_message(&raw_append_entries(0, 1, &raw_entry(1, u32::MAX, b"abc"))),
        Err(DecodeError::TooLarge {
            field: "append_entries.entries",
            len: ENTRY_OVERHEAD_BYTES + u64::from(u32::MAX),
            max: ENTRIES_BYTES_LIMIT,
        })
    );
    // One byte over the limit is refused before the data is looked at.
    let over = u32::try_from(ENTRIES_BYTES_LIMIT - ENTRY_OVERHEAD_BYTES + 1).expect("fits");
    assert!(matches!(
        decode_message(&raw_append_entries(0, 1, &raw_entry(1, over, &[]))),
        Err(DecodeError::TooLarge { field: "append_entries.entries", .. })
    ));
    // A length within the limit but past the end of the frame.
    assert_eq!(
        decode_message(&raw_append_entries(0, 1, &raw_entry(1, 10, b"abc"))),
        Err(DecodeError::Truncated { field: "entry.data" })
    );
}

#[test]
fn entries_at_the_byte_limit_fill_the_largest_frame() {
    let data_len = usize::try_from(ENTRIES_BYTES_LIMIT - ENTRY_OVERHEAD_BYTES).expect("fits in usize");
    let data = Bytes::from(vec![0xab; data_len]);
    let msg = append_entries(0, vec![(Term(1), EntryKind::Command, data)]);
    let frame = encode(&msg);
    assert_eq!(frame.len(), FRAME_LEN_BYTES + MAX_FRAME_BYTES, "MAX_FRAME_BYTES is tight");
    let buf = Bytes::from(frame);
    assert_eq!(decode_frame(&buf), Ok((msg, buf.len())));

    // One more (empty) entry is one entry overhead too many.
    let mut entries = raw_entry(1, u32::try_from(data_len).expect("fits"), &buf[buf.len() - data_len..]);
    entries.extend_from_slice(&raw_entry(0, 0, &[]));
    assert_eq!(
        decode_message(&raw_append_entries(0, 2, &entries)),
        Err(DecodeError::TooLarge {
            field: "append_entries.entries",
            len: ENTRIES_BYTES_LIMIT + ENTRY_OVERHEAD_BYTES,
            max: ENTRIES_BYTES_LIMIT,
        })
    );
}

#[test]
fn unknown_tags_and_non_canonical_booleans_are_rejected() {
    for kind in [0, 14, 0xff] {
        let mut frame = encode(&message(MessageBody::TimeoutNow));
        frame[FRAME_LEN_BYTES] = kind;
        assert_eq!(
            decode_frame(&Bytes::from(frame)),
            Err(DecodeError::BadTag { field: "message.kind", value: kind })
        );
        // The tag is judged before the header, even if that is missing.
        assert_eq!(
            decode_message(&Bytes::copy_from_slice(&[kind])),
            Err(DecodeError::BadTag { field: "message.kind", value: kind })
        );
    }

    // (message, offset of the byte in the frame, field it holds)
    let samples = sample_messages();
    let cases = [
        (&samples[0], BODY_OFFSET, "request_vote.pre_vote"),
        (&samples[1], BODY_OFFSET, "request_vote_response.pre_vote"),
        (&samples[1], BODY_OFFSET + 1, "request_vote_response.granted"),
        (&samples[2], BODY_OFFSET + APPEND_ENTRIES_FIXED_BYTES + 8, "entry.kind"),
        (&samples[4], BODY_OFFSET, "append_entries_response.tag"),
        (&samples[5], BODY_OFFSET, "append_entries_response.tag"),
    ];
    for (msg, offset, field) in cases {
        for value in [3, 0x80, 0xff] {
            let mut frame = encode(msg);
            frame[offset] = value;
            assert_eq!(
                decode_frame(&Bytes::from(frame)),
                Err(DecodeError::BadTag { field, value }),
                "{field}"
            );
        }
    }
}

/// Kind 11 once carried `InstallSnapshot`: the receiver's core took it as
/// a snapshot received whole and stored, reset its log to it and
/// acknowledged entries it did not hold. Only the receiver's own runtime can
/// know a snapshot arrived, so the kind is reserved: refused with its own
/// error, whatever follows it, by every decoder.
#[test]
fn kind_11_formerly_install_snapshot_is_refused_as_reserved() {
    // The layout kind 11 had: `index u64`, `term u64`, `membership_len u32`,
    // membership.
    let membership = crate::membership::Membership::with_voters([1, 2, 3].map(NodeId)).to_bytes();
    let mut frame = encode(&message(MessageBody::TimeoutNow));
    frame[FRAME_LEN_BYTES] = 11;
    frame.extend_from_slice(&7u64.to_le_bytes());
    frame.extend_from_slice(&3u64.to_le_bytes());
    frame.extend_from_slice(&(membership.len() as u32).to_le_bytes());
    frame.extend_from_slice(&membership);
    fix_prefix(&mut frame);
    let refused = DecodeError::ReservedKind { value: 11 };
    assert_eq!(decode_frame(&Bytes::from(frame.clone())).map(|(m, _)| m), Err(refused));
    assert_eq!(decode_message(&frame_body(&frame)), Err(refused));
    // The kind is judged before anything else.
    assert_eq!(decode_message(&Bytes::from_static(&[11])), Err(refused));
    let mut stream = FrameDecoder::new();
    stream.extend(&frame);
    assert_eq!(stream.next_message(), Err(refused));
    assert!(refused.to_string().contains("kind 11 is reserved"), "{refused}");
}

#[test]
fn impossible_entries_are_invalid() {
    // The last entry's index would be u64::MAX + 1.
    assert_eq!(
        decode_message(&raw_append_entries(u64::MAX, 1, &raw_entry(1, 0, &[]))),
        Err(DecodeError::Invalid {
            field: "append_entries.prev_log_index",
            reason: "the entries' indexes would go past u64::MAX",
        })
    );
    // ... while u64::MAX itself is a fine index.
    let last = append_entries(u64::MAX - 1, vec![(Term(1), EntryKind::Blank, Bytes::new())]);
    assert_round_trip(&last);

    // A blank entry with data.
    assert_eq!(
        decode_message(&raw_append_entries(0, 1, &raw_entry(0, 1, b"x"))),
        Err(DecodeError::Invalid { field: "entry.len", reason: "a blank entry carries no data" })
    );

    // Node id 0 ("nobody") is for the core to judge, not the codec.
    let mut nobody = message(MessageBody::TimeoutNow);
    nobody.from = NodeId(0);
    nobody.to = NodeId(0);
    assert_round_trip(&nobody);
}

#[test]
fn short_inputs_name_the_field_they_end_in() {
    let frame = encode(&sample_messages()[0]);
    let cases = [
        (0, "message.kind"),
        (1, "message.from"),
        (12, "message.to"),
        (17, "message.term"),
        (25, "message.from_incarnation"),
        (33, "request_vote.pre_vote"),
        (34, "request_vote.last_log_index"),
        (48, "request_vote.last_log_term"),
    ];
    let body = frame_body(&frame);
    for (len, field) in cases {
        assert_eq!(decode_message(&body.slice(..len)), Err(DecodeError::Truncated { field }), "{len}");
    }
}

#[test]
#[should_panic(expected = "consecutive")]
fn encoding_inconsistent_indexes_panics() {
    let mut msg = append_entries(4, vec![(Term(1), EntryKind::Blank, Bytes::new())]);
    if let MessageBody::AppendEntries(append) = &mut msg.body {
        append.entries[0].index = LogIndex(9);
    }
    encode(&msg);
}

#[test]
#[should_panic(expected = "blank entry")]
fn encoding_a_blank_entry_with_data_panics() {
    encode(&append_entries(0, vec![(Term(1), EntryKind::Blank, Bytes::from_static(b"x"))]));
}

#[test]
#[should_panic(expected = "ENTRIES_BYTES_LIMIT")]
fn encoding_more_than_the_entry_byte_limit_panics() {
    // Shared payloads: 65 entries of 1 MiB cost 1 MiB of memory.
    let payload = Bytes::from(vec![0; 1 << 20]);
    let items = (0..65).map(|_| (Term(1), EntryKind::Command, payload.clone())).collect();
    encode(&append_entries(0, items));
}

#[test]
fn errors_say_what_is_wrong() {
    let errors = [
        (DecodeError::Incomplete { needed: 3 }, "3 more bytes"),
        (DecodeError::Truncated { field: "entry.data" }, "entry.data"),
        (
            DecodeError::TooLarge { field: "frame.len", len: 9, max: 8 },
            "frame.len` is 9, above the limit of 8",
        ),
        (DecodeError::BadTag { field: "entry.kind", value: 2 }, "entry.kind` has unknown value 2"),
        (DecodeError::TrailingBytes { count: 2 }, "2 unexpected bytes"),
        (
            DecodeError::Invalid { field: "entry.len", reason: "a blank entry carries no data" },
            "invalid `entry.len`: a blank entry carries no data",
        ),
    ];
    for (error, text) in errors {
        let shown = error.to_string();
        assert!(shown.contains(text), "{shown:?} lacks {text:?}");
    }
}

/// A `Propose` body after the message header: count, then raw bytes.
fn raw_propose(count: u32, commands: &[u8]) -> Bytes {
    let mut frame = encode(&message(MessageBody::Propose(Propose { commands: vec![] })));
    frame.truncate(BODY_OFFSET);
    frame.extend_from_slice(&count.to_le_bytes());
    frame.extend_from_slice(commands);
    frame_body(&frame)
}

#[test]
fn forwarded_commands_are_bounded_like_entries() {
    // A count no input could hold is refused before allocating.
    assert_eq!(
        decode_message(&raw_propose(u32::MAX, &[])),
        Err(DecodeError::TooLarge {
            field: "propose.command_count",
            len: u64::from(u32::MAX),
            max: MAX_ENTRY_COUNT as u64
        })
    );
    assert_eq!(
        decode_message(&raw_propose(3, &[0; 8])),
        Err(DecodeError::Truncated { field: "propose.commands" })
    );
    // A command length beyond the byte limit is refused before reading it.
    let huge = u32::try_from(ENTRIES_BYTES_LIMIT).expect("fits");
    assert_eq!(
        decode_message(&raw_propose(1, &huge.to_le_bytes())),
        Err(DecodeError::TooLarge {
            field: "propose.commands",
            len: ENTRIES_BYTES_LIMIT + ENTRY_OVERHEAD_BYTES,
            max: ENTRIES_BYTES_LIMIT,
        })
    );
    // A length longer than what remains is a truncation, naming the data.
    let mut short = 10u32.to_le_bytes().to_vec();
    short.extend_from_slice(b"abc");
    assert_eq!(
        decode_message(&raw_propose(1, &short)),
        Err(DecodeError::Truncated { field: "command.data" })
    );
}

#[test]
fn read_index_response_tags_are_canonical() {
    let mut frame =
        encode(&message(MessageBody::ReadIndexResponse(ReadIndexResponse { request_id: 1, index: None })));
    let tag_at = frame.len() - 1;
    frame[tag_at] = 2;
    assert_eq!(
        decode_frame(&Bytes::from(frame)),
        Err(DecodeError::BadTag { field: "read_index_response.tag", value: 2 })
    );
}
