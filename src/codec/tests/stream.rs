//! Tests of [`FrameDecoder`]: any chunking of a stream gives what one-shot
//! decoding of the same bytes gives, bad prefixes fail early, and failure
//! is for good.

use std::io;

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;

use super::{append_entries, arb_message, encode, sample_messages};
use crate::codec::{
    decode_frame, encode_message, DecodeError, FrameDecoder, ENTRY_HEADER_BYTES, FRAME_LEN_BYTES,
    MAX_FRAME_BYTES,
};
use crate::message::{Message, MessageBody};
use crate::rng::Rng;
use crate::types::{EntryKind, Term};

/// What decoding a whole stream gives: the messages of its whole frames,
/// the error that stopped it if any, and how many bytes were left in an
/// incomplete last frame.
#[derive(Debug, PartialEq)]
struct StreamOutcome {
    messages: Vec<Message>,
    error: Option<DecodeError>,
    leftover_bytes: usize,
}

/// Decodes `stream` frame by frame with `decode_frame`.
fn decode_all_at_once(stream: &[u8]) -> StreamOutcome {
    let mut rest = Bytes::copy_from_slice(stream);
    let mut messages = Vec::new();
    loop {
        match decode_frame(&rest) {
            Ok((msg, consumed)) => {
                messages.push(msg);
                rest = rest.slice(consumed..);
            }
            Err(DecodeError::Incomplete { .. }) => {
                return StreamOutcome { messages, error: None, leftover_bytes: rest.len() }
            }
            Err(error) => return StreamOutcome { messages, error: Some(error), leftover_bytes: 0 },
        }
    }
}

/// Feeds `stream` to a `FrameDecoder` in pieces of the given sizes (cycling
/// through them), draining messages after every piece.
fn decode_in_chunks(stream: &[u8], chunk_sizes: &[usize]) -> StreamOutcome {
    let mut decoder = FrameDecoder::new();
    let mut messages = Vec::new();
    let mut rest = stream;
    let mut sizes = chunk_sizes.iter().map(|&size| size.max(1)).cycle();
    while !rest.is_empty() {
        let size = sizes.next().unwrap_or(1).min(rest.len());
        let (chunk, after) = rest.split_at(size);
        rest = after;
        decoder.extend(chunk);
        loop {
            match decoder.next_message() {
                Ok(Some(msg)) => messages.push(msg),
                Ok(None) => break,
                Err(error) => {
                    assert_eq!(decoder.next_message(), Err(error), "the error sticks");
                    return StreamOutcome { messages, error: Some(error), leftover_bytes: 0 };
                }
            }
        }
    }
    StreamOutcome { messages, error: None, leftover_bytes: decoder.buffered_len() }
}

fn concat(messages: &[Message]) -> Vec<u8> {
    let mut out = Vec::new();
    for msg in messages {
        encode_message(msg, &mut out);
    }
    out
}

/// The seed of the randomised tests that are not proptests:
/// `OAR_CODEC_SEED` if set, else a fixed one. Printed, so that a failure
/// can be replayed.
fn test_seed() -> u64 {
    let seed = std::env::var("OAR_CODEC_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x0a12_c0de);
    eprintln!("seed {seed}; replay with OAR_CODEC_SEED={seed} cargo test --lib codec");
    seed
}

proptest! {
    /// The streaming decoder gives what one-shot decoding gives, for any
    /// chunking, including streams with a corrupted byte or a cut tail.
    #[test]
    fn stream_matches_one_shot(
        messages in vec(arb_message(), 0..6),
        chunk_sizes in vec(1..64usize, 1..16),
        corruption in proptest::option::of((any::<prop::sample::Index>(), any::<u8>())),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut stream = concat(&messages);
        if let (Some((position, value)), false) = (corruption, stream.is_empty()) {
            let at = position.index(stream.len());
            stream[at] = value;
        }
        let expected = decode_all_at_once(&stream);
        if corruption.is_none() {
            prop_assert_eq!(&expected.messages, &messages);
        }
        prop_assert_eq!(decode_in_chunks(&stream, &chunk_sizes), expected);
        let cut = cut.index(stream.len() + 1);
        let truncated = &stream[..cut];
        prop_assert_eq!(decode_in_chunks(truncated, &chunk_sizes), decode_all_at_once(truncated));
    }
}

#[test]
fn stream_fed_one_byte_at_a_time_matches_one_shot() {
    let messages = sample_messages();
    let stream = concat(&messages);
    let outcome = decode_in_chunks(&stream, &[1]);
    assert_eq!(outcome, decode_all_at_once(&stream));
    assert_eq!(outcome.messages, messages);
    assert_eq!(outcome.leftover_bytes, 0);
}

#[test]
fn stream_in_random_chunks_matches_one_shot() {
    let mut rng = Rng::new(test_seed());
    let samples = sample_messages();
    let sample_count = u64::try_from(samples.len()).expect("few samples");
    for round in 0..500 {
        let messages: Vec<Message> = (0..rng.below(12))
            .filter_map(|_| {
                let pick = usize::try_from(rng.below(sample_count)).ok()?;
                samples.get(pick).cloned()
            })
            .collect();
        let mut stream = concat(&messages);
        let stream_len = u64::try_from(stream.len()).expect("small stream");
        // Sometimes corrupt a byte or cut the tail, to move errors around.
        if !stream.is_empty() && rng.chance(1, 3) {
            let at = usize::try_from(rng.below(stream_len)).expect("small");
            stream[at] = u8::try_from(rng.below(256)).expect("a byte");
        }
        if rng.chance(1, 3) {
            let keep = usize::try_from(rng.below(stream_len + 1)).expect("small");
            stream.truncate(keep);
        }
        let chunk_sizes: Vec<usize> =
            (0..1 + rng.below(8)).map(|_| usize::try_from(1 + rng.below(80)).expect("small")).collect();
        assert_eq!(
            decode_in_chunks(&stream, &chunk_sizes),
            decode_all_at_once(&stream),
            "round {round}, chunks {chunk_sizes:?}"
        );
    }
}

#[test]
fn streamed_payloads_are_slices_of_the_read_buffer() {
    let msg = append_entries(
        0,
        vec![
            (Term(1), EntryKind::Command, Bytes::from_static(b"abc")),
            (Term(1), EntryKind::Command, Bytes::from_static(b"defg")),
        ],
    );
    let mut decoder = FrameDecoder::new();
    decoder.extend(&encode(&msg));
    let decoded = decoder.next_message().expect("valid").expect("whole");
    let MessageBody::AppendEntries(append) = decoded.body else {
        panic!("not AppendEntries: {decoded:?}");
    };
    let [first, second] = &append.entries[..] else {
        panic!("two entries expected");
    };
    // Adjacent in one buffer, one entry header apart: nothing was copied.
    let gap = second.data.as_ptr() as usize - first.data.as_ptr() as usize;
    assert_eq!(gap, first.data.len() + ENTRY_HEADER_BYTES);
}

#[test]
fn stream_rejects_a_huge_prefix_on_its_fourth_byte() {
    for len in [u32::MAX, u32::try_from(MAX_FRAME_BYTES + 1).expect("fits")] {
        let prefix = len.to_le_bytes();
        let mut decoder = FrameDecoder::new();
        for byte in &prefix[..3] {
            decoder.extend(&[*byte]);
            assert_eq!(decoder.next_message(), Ok(None));
        }
        // The rest of the chunk is dropped, not buffered.
        decoder.extend(&[prefix[3], 1, 2, 3, 4, 5]);
        assert_eq!(decoder.buffered_len(), 0);
        assert_eq!(
            decoder.next_message(),
            Err(DecodeError::TooLarge {
                field: "frame.len",
                len: u64::from(len),
                max: MAX_FRAME_BYTES as u64,
            })
        );
    }
}

#[test]
fn a_failed_stream_stays_failed() {
    let samples = sample_messages();
    let good = encode(&samples[0]);
    let mut bad = encode(&samples[6]);
    bad[FRAME_LEN_BYTES] = 0x7f;
    let mut decoder = FrameDecoder::new();
    decoder.extend(&good);
    decoder.extend(&bad);
    decoder.extend(&good);
    assert_eq!(decoder.next_message(), Ok(Some(samples[0].clone())));
    let error = DecodeError::BadTag { field: "message.kind", value: 0x7f };
    assert_eq!(decoder.next_message(), Err(error));
    assert_eq!(decoder.buffered_len(), 0);
    decoder.extend(&good);
    assert_eq!(decoder.next_message(), Err(error));
    assert_eq!(decoder.read_from(&mut &good[..]).ok(), Some(good.len()));
    assert_eq!(decoder.buffered_len(), 0);
    assert_eq!(decoder.next_message(), Err(error));
}

/// A reader that hands out at most `piece` bytes per call, like a socket.
struct Trickle<'a> {
    rest: &'a [u8],
    piece: usize,
}

impl io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.piece.min(buf.len()).min(self.rest.len());
        let (head, tail) = self.rest.split_at(n);
        buf[..n].copy_from_slice(head);
        self.rest = tail;
        Ok(n)
    }
}

#[test]
fn reading_from_a_source_matches_one_shot() {
    let messages = sample_messages();
    let stream = concat(&messages);
    for piece in [1, 3, 7, 1000] {
        let mut source = Trickle { rest: &stream, piece };
        let mut decoder = FrameDecoder::new();
        let mut decoded = Vec::new();
        while decoder.read_from(&mut source).expect("reads") > 0 {
            while let Some(msg) = decoder.next_message().expect("valid stream") {
                decoded.push(msg);
            }
        }
        assert_eq!(decoded, messages, "piece {piece}");
        assert_eq!(decoder.buffered_len(), 0);
    }

    // A bad prefix read from a source fails the decoder at once.
    let mut decoder = FrameDecoder::new();
    let mut source: &[u8] = &[0xff, 0xff, 0xff, 0xff, 1, 2, 3];
    assert_eq!(decoder.read_from(&mut source).ok(), Some(7));
    assert_eq!(decoder.buffered_len(), 0);
    assert!(matches!(decoder.next_message(), Err(DecodeError::TooLarge { .. })));
}
