//! A `FrameDecoder` fed a stream in arbitrary pieces yields the same
//! messages, and fails at the same place with the same error, as decoding
//! the whole stream frame by frame with `decode_frame`.
//!
//! Input layout: byte 0 holds the number of chunk sizes (low 4 bits, plus
//! one) and whether to feed through `read_from` instead of `extend` (bit 7);
//! then one byte per chunk size (plus one); the rest is the stream.
#![no_main]

use std::io;

use libfuzzer_sys::fuzz_target;
use oar::codec::{decode_frame, DecodeError, FrameDecoder};
use oar::{Bytes, Message};

#[derive(Debug, PartialEq)]
struct Outcome {
    messages: Vec<Message>,
    error: Option<DecodeError>,
    leftover_bytes: usize,
}

fn one_shot(stream: &[u8]) -> Outcome {
    let mut rest = Bytes::copy_from_slice(stream);
    let mut messages = Vec::new();
    loop {
        match decode_frame(&rest) {
            Ok((msg, consumed)) => {
                assert!(consumed > 0 && consumed <= rest.len());
                messages.push(msg);
                rest = rest.slice(consumed..);
            }
            Err(DecodeError::Incomplete { needed }) => {
                assert!(needed > 0);
                let leftover_bytes = rest.len();
                return Outcome {
                    messages,
                    error: None,
                    leftover_bytes,
                };
            }
            Err(error) => {
                return Outcome {
                    messages,
                    error: Some(error),
                    leftover_bytes: 0,
                }
            }
        }
    }
}

/// A source that hands out the stream in the chosen piece sizes.
struct Pieces<'a> {
    rest: &'a [u8],
    sizes: std::iter::Cycle<std::slice::Iter<'a, u8>>,
}

impl Pieces<'_> {
    fn next_piece(&mut self, max: usize) -> &[u8] {
        let size = self.sizes.next().map_or(1, |&s| usize::from(s) + 1);
        let (piece, rest) = self.rest.split_at(size.min(max).min(self.rest.len()));
        self.rest = rest;
        piece
    }
}

impl io::Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let piece = self.next_piece(buf.len());
        let n = piece.len();
        buf[..n].copy_from_slice(piece);
        Ok(n)
    }
}

fn streamed(stream: &[u8], sizes: &[u8], use_read_from: bool) -> Outcome {
    let mut source = Pieces {
        rest: stream,
        sizes: sizes.iter().cycle(),
    };
    let mut decoder = FrameDecoder::new();
    let mut messages = Vec::new();
    while !source.rest.is_empty() {
        if use_read_from {
            let read = decoder.read_from(&mut source).expect("Pieces never fails");
            assert!(read > 0);
        } else {
            let piece = source.next_piece(usize::MAX);
            decoder.extend(piece);
        }
        loop {
            match decoder.next_message() {
                Ok(Some(msg)) => messages.push(msg),
                Ok(None) => break,
                Err(error) => {
                    // Failure is for good, whatever comes after.
                    decoder.extend(source.rest);
                    assert_eq!(decoder.next_message(), Err(error));
                    assert_eq!(decoder.buffered_len(), 0);
                    return Outcome {
                        messages,
                        error: Some(error),
                        leftover_bytes: 0,
                    };
                }
            }
        }
    }
    Outcome {
        messages,
        error: None,
        leftover_bytes: decoder.buffered_len(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let size_count = usize::from(control & 0x0f) + 1;
    let use_read_from = control & 0x80 != 0;
    let Some((sizes, stream)) = rest.split_at_checked(size_count) else {
        return;
    };
    assert_eq!(streamed(stream, sizes, use_read_from), one_shot(stream));
});
