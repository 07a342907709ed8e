//! Tests of the request parser: multibulk and inline requests, pipelining,
//! any chunking giving what one-shot parsing gives, limits enforced from
//! headers, and failure for good after an error.

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;

use super::{args, multibulk};
use crate::kv::{parse_i64, Reply, RequestParser, RespError, RespLimits};

/// What parsing a whole stream gives: its whole requests, the error that
/// stopped it if any, and whether a request was left unfinished.
#[derive(Debug, PartialEq)]
struct Outcome {
    requests: Vec<Vec<Bytes>>,
    error: Option<RespError>,
    buffered_len: usize,
    in_request: bool,
}

fn drain(parser: &mut RequestParser, requests: &mut Vec<Vec<Bytes>>) -> Option<RespError> {
    loop {
        match parser.next_request() {
            Ok(Some(request)) => {
                assert!(!request.is_empty(), "a request always has a command name");
                requests.push(request);
            }
            Ok(None) => return None,
            Err(error) => return Some(error),
        }
    }
}

fn outcome(mut parser: RequestParser, requests: Vec<Vec<Bytes>>, error: Option<RespError>) -> Outcome {
    if let Some(error) = error {
        // Failure is for good, whatever comes after.
        parser.extend(b"*1\r\n$4\r\nPING\r\n");
        assert_eq!(parser.next_request(), Err(error));
        assert_eq!(parser.buffered_len(), 0);
    }
    Outcome { requests, error, buffered_len: parser.buffered_len(), in_request: parser.in_request() }
}

fn parse_at_once(limits: RespLimits, stream: &[u8]) -> Outcome {
    let mut parser = RequestParser::new(limits);
    let mut requests = Vec::new();
    parser.extend(stream);
    let error = drain(&mut parser, &mut requests);
    outcome(parser, requests, error)
}

/// Feeds `stream` in pieces of the given sizes (cycling), draining requests
/// after every piece.
fn parse_in_chunks(limits: RespLimits, stream: &[u8], sizes: &[usize]) -> Outcome {
    let mut parser = RequestParser::new(limits);
    let mut requests = Vec::new();
    let mut rest = stream;
    let mut sizes = sizes.iter().map(|&size| size.max(1)).cycle();
    while !rest.is_empty() {
        let (chunk, after) = rest.split_at(sizes.next().unwrap_or(1).min(rest.len()));
        rest = after;
        parser.extend(chunk);
        if let Some(error) = drain(&mut parser, &mut requests) {
            return outcome(parser, requests, Some(error));
        }
    }
    outcome(parser, requests, None)
}

fn requests_of(stream: &[u8]) -> Vec<Vec<Bytes>> {
    let outcome = parse_at_once(RespLimits::default(), stream);
    assert_eq!(outcome.error, None, "stream {:?}", String::from_utf8_lossy(stream));
    outcome.requests
}

fn error_of(limits: RespLimits, stream: &[u8]) -> RespError {
    let outcome = parse_at_once(limits, stream);
    outcome.error.unwrap_or_else(|| panic!("no error for {:?}: {outcome:?}", String::from_utf8_lossy(stream)))
}

fn small_limits() -> RespLimits {
    RespLimits { bulk_bytes_max: 8, args_max: 4, inline_bytes_max: 16, request_bytes_max: 12 }
}

/// A pipelined stream mixing every form: multibulk, inline, empty
/// requests, binary and empty arguments.
fn pipelined_stream() -> Vec<u8> {
    let mut stream = multibulk(&[b"SET", b"key", b"va\r\nlue"]);
    stream.extend_from_slice(b"PING\r\n");
    stream.extend_from_slice(b"*0\r\n*-1\r\n");
    stream.extend(multibulk(&[b"GET", b""]));
    stream.extend_from_slice(b"  \r\nset k \"a b\\x41\" 'c\\'d'\n");
    stream.extend(multibulk(&[b"MGET", b"a", b"\x00\xff"]));
    stream
}

fn pipelined_requests() -> Vec<Vec<Bytes>> {
    vec![
        args(&[b"SET", b"key", b"va\r\nlue"]),
        args(&[b"PING"]),
        args(&[b"GET", b""]),
        args(&[b"set", b"k", b"a bA", b"c'd"]),
        args(&[b"MGET", b"a", b"\x00\xff"]),
    ]
}

#[test]
fn pipelined_requests_come_out_in_order() {
    assert_eq!(requests_of(&pipelined_stream()), pipelined_requests());
}

#[test]
fn every_split_point_gives_the_same_requests() {
    let stream = pipelined_stream();
    let whole = parse_at_once(RespLimits::default(), &stream);
    assert_eq!(whole.requests, pipelined_requests());
    for at in 0..=stream.len() {
        let (first, second) = stream.split_at(at);
        let mut parser = RequestParser::default();
        let mut requests = Vec::new();
        parser.extend(first);
        assert_eq!(drain(&mut parser, &mut requests), None, "split at {at}");
        parser.extend(second);
        assert_eq!(drain(&mut parser, &mut requests), None, "split at {at}");
        assert_eq!(requests, whole.requests, "split at {at}");
        assert_eq!(parser.buffered_len(), 0);
        assert!(!parser.in_request());
    }
    assert_eq!(parse_in_chunks(RespLimits::default(), &stream, &[1]), whole);
}

#[test]
fn arguments_are_slices_of_the_receive_buffer() {
    let mut parser = RequestParser::default();
    parser.extend(b"*2\r\n$3\r\nfoo\r\n$3\r\nbar\r\nGET key\r\n");
    let request = parser.next_request().expect("valid").expect("whole");
    // `bar` starts 9 bytes after `foo` in the chunk: no copy was made.
    assert_eq!(request[1].as_ptr() as usize - request[0].as_ptr() as usize, 9);
    let inline = parser.next_request().expect("valid").expect("whole");
    assert_eq!(inline[1].as_ptr() as usize - inline[0].as_ptr() as usize, 4);
}

#[test]
fn inline_requests_split_like_redis() {
    let cases: &[(&[u8], &[&[u8]])] = &[
        (b"PING\r\n", &[b"PING"]),
        (b"PING\n", &[b"PING"]),
        (b"  set  k\tv  \r\n", &[b"set", b"k", b"v"]),
        (b"echo \"a\\n\\r\\t\\b\\a\\\\\\\"\\x7a\\xZZ\"\n", &[b"echo", b"a\n\r\t\x08\x07\\\"zxZZ"]),
        (b"echo 'it''s'\n", &[]),
        (b"echo 'it\\'s' \"\"\n", &[b"echo", b"it's", b""]),
        (b"echo a\"b c\"d\n", &[]),
        (b"echo a\"b c\" d\n", &[b"echo", b"ab c", b"d"]),
        (b"echo '\\n'\n", &[b"echo", b"\\n"]),
    ];
    for &(line, want) in cases {
        let outcome = parse_at_once(RespLimits::default(), line);
        if want.is_empty() {
            assert_eq!(
                outcome.error,
                Some(RespError::UnbalancedQuotes),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        } else {
            assert_eq!(outcome.requests, vec![args(want)], "{:?}", String::from_utf8_lossy(line));
        }
    }
}

#[test]
fn blank_lines_and_empty_multibulks_are_skipped() {
    assert_eq!(requests_of(b"\r\n\n   \r\n*0\r\n*-1\r\nPING\r\n"), vec![args(&[b"PING"])]);
    assert_eq!(requests_of(b"\r\n*0\r\n"), Vec::<Vec<Bytes>>::new());
}

#[test]
fn unterminated_quotes_fail() {
    for line in [&b"echo \"abc\r\n"[..], b"echo 'abc\n", b"echo \"abc\\\"\n", b"echo \"a\"b\n"] {
        assert_eq!(error_of(RespLimits::default(), line), RespError::UnbalancedQuotes);
    }
}

#[test]
fn incomplete_requests_wait_for_more() {
    for stream in [&b"*2\r\n$3\r\nfoo\r\n$3\r\nba"[..], b"*2\r\n$3\r\nfoo\r\n$3", b"*2\r\n", b"*1", b"PIN"] {
        let outcome = parse_at_once(RespLimits::default(), stream);
        assert_eq!((outcome.requests.len(), outcome.error), (0, None));
        assert!(outcome.buffered_len > 0 || outcome.in_request);
    }
}

#[test]
fn malformed_lengths_are_rejected() {
    use RespError::*;
    let cases: &[(&[u8], RespError)] = &[
        (b"*-2\r\n", InvalidMultibulkLength),
        (b"*abc\r\n", InvalidMultibulkLength),
        (b"*+1\r\n", InvalidMultibulkLength),
        (b"*01\r\n", InvalidMultibulkLength),
        (b"*-0\r\n", InvalidMultibulkLength),
        (b"*\r\n", InvalidMultibulkLength),
        (b"*1\n", InvalidMultibulkLength),
        (b"*1 \r\n", InvalidMultibulkLength),
        (b"*99999999999999999999\r\n", InvalidMultibulkLength),
        (b"*12345678901234567890123", InvalidMultibulkLength),
        (b"*1\r\n$-1\r\n", InvalidBulkLength),
        (b"*1\r\n$-5\r\n", InvalidBulkLength),
        (b"*1\r\n$x\r\n", InvalidBulkLength),
        (b"*1\r\n$3\rx\nfoo\r\n", InvalidBulkLength),
        (b"*1\r\n$1234567890123456789012", InvalidBulkLength),
        (b"*1\r\n:5\r\n", ExpectedBulk { found: b':' }),
        (b"*2\r\n$1\r\na\r\nPING\r\n", ExpectedBulk { found: b'P' }),
        (b"*1\r\n$3\r\nfoox\r\n", BulkNotTerminated),
        (b"*1\r\n$3\r\nfoo\n\r", BulkNotTerminated),
        (b"*1048577\r\n", TooManyArgs { count: 1_048_577, max: 1 << 20 }),
        (b"*1\r\n$536870913\r\n", BulkTooLarge { len: 536_870_913, max: 512 << 20 }),
    ];
    for &(stream, want) in cases {
        assert_eq!(error_of(RespLimits::default(), stream), want, "{:?}", String::from_utf8_lossy(stream));
        // The same, whatever the chunking.
        assert_eq!(parse_in_chunks(RespLimits::default(), stream, &[1]).error, Some(want));
    }
}

#[test]
fn limits_are_enforced_from_headers_before_the_body_arrives() {
    use RespError::*;
    let limits = small_limits();
    assert_eq!(error_of(limits, b"*5\r\n"), TooManyArgs { count: 5, max: 4 });
    assert_eq!(error_of(limits, b"*1\r\n$9\r\n"), BulkTooLarge { len: 9, max: 8 });
    assert_eq!(error_of(limits, b"*2\r\n$8\r\n12345678\r\n$5\r\n"), RequestTooLarge { len: 13, max: 12 });
    assert_eq!(error_of(limits, b"0123456789abcdef"), InlineTooLong { max: 16 });
    assert_eq!(error_of(limits, b"0123456789abcdef\nPING\r\n"), InlineTooLong { max: 16 });
    // Exactly at the limits is fine.
    assert_eq!(parse_at_once(limits, b"0123456789abcde\n").requests, vec![args(&[b"0123456789abcde"])]);
    let at_limit = multibulk(&[b"12345678", b"1234"]);
    assert_eq!(parse_at_once(limits, &at_limit).requests, vec![args(&[b"12345678", b"1234"])]);
    // Without a body the huge default-limit claims buffer nothing.
    let mut parser = RequestParser::default();
    parser.extend(b"*1\r\n$536870912\r\n");
    assert_eq!(parser.next_request(), Ok(None));
    assert_eq!(parser.buffered_len(), 0);
}

#[test]
fn a_failed_parser_drops_input_and_repeats_its_error() {
    let mut parser = RequestParser::default();
    parser.extend(b"PING\r\n*x\r\n");
    assert_eq!(parser.next_request(), Ok(Some(args(&[b"PING"]))));
    assert_eq!(parser.next_request(), Err(RespError::InvalidMultibulkLength));
    parser.extend(b"PING\r\n");
    let mut source: &[u8] = b"PING\r\n";
    assert_eq!(parser.read_from(&mut source).expect("slices read"), 6);
    assert_eq!(parser.buffered_len(), 0);
    assert_eq!(parser.next_request(), Err(RespError::InvalidMultibulkLength));
}

#[test]
fn protocol_errors_reply_err_protocol_error() {
    let reply = RespError::InvalidBulkLength.reply();
    assert_eq!(reply, Reply::error("ERR protocol error: invalid bulk length"));
    assert!(reply.to_vec().starts_with(b"-ERR protocol error"));
    let reply = RespError::ExpectedBulk { found: b'\n' }.reply().to_vec();
    assert_eq!(reply, b"-ERR protocol error: expected '$', got '\\n'\r\n");
}

#[test]
fn read_from_feeds_the_parser() {
    let stream = pipelined_stream();
    let mut source: &[u8] = &stream;
    let mut parser = RequestParser::default();
    let mut requests = Vec::new();
    loop {
        let read = parser.read_from(&mut source).expect("slices read");
        assert_eq!(drain(&mut parser, &mut requests), None);
        if read == 0 {
            break;
        }
    }
    assert_eq!(requests, pipelined_requests());
    assert_eq!(parser.buffered_len(), 0);
}

#[test]
fn integers_parse_like_redis_string2ll() {
    let good: &[(&[u8], i64)] = &[
        (b"0", 0),
        (b"7", 7),
        (b"-7", -7),
        (b"9223372036854775807", i64::MAX),
        (b"-9223372036854775808", i64::MIN),
    ];
    for &(text, want) in good {
        assert_eq!(parse_i64(text), Some(want));
    }
    let bad: &[&[u8]] = &[
        b"",
        b"-",
        b"+1",
        b"01",
        b"-0",
        b"00",
        b" 1",
        b"1 ",
        b"1a",
        b"9223372036854775808",
        b"-9223372036854775809",
    ];
    for &text in bad {
        assert_eq!(parse_i64(text), None, "{:?}", String::from_utf8_lossy(text));
    }
}

/// Streams that look like RESP often enough to get past the first byte:
/// fragments of valid requests and of the usual mistakes, glued at random.
fn arb_resp_like_stream() -> impl Strategy<Value = Vec<u8>> {
    let fragment = prop_oneof![
        Just(b"*".to_vec()),
        Just(b"$".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"-1".to_vec()),
        Just(b" \"".to_vec()),
        Just(b"'".to_vec()),
        Just(b"\\x4".to_vec()),
        (0u8..12).prop_map(|n| n.to_string().into_bytes()),
        vec(any::<u8>(), 0..6),
        vec(vec(any::<u8>(), 0..10), 1..4).prop_map(|words| {
            let words: Vec<&[u8]> = words.iter().map(Vec::as_slice).collect();
            multibulk(&words)
        }),
    ];
    vec(fragment, 0..24).prop_map(|pieces| pieces.concat())
}

proptest! {
    #[test]
    fn any_chunking_of_any_bytes_parses_as_one_shot(
        stream in prop_oneof![vec(any::<u8>(), 0..256), arb_resp_like_stream()],
        sizes in vec(1usize..12, 1..8),
        small in any::<bool>(),
    ) {
        let limits = if small { small_limits() } else { RespLimits::default() };
        let whole = parse_at_once(limits, &stream);
        prop_assert_eq!(parse_in_chunks(limits, &stream, &sizes), whole);
    }

    #[test]
    fn multibulk_requests_round_trip(
        requests in vec(vec(vec(any::<u8>(), 0..20), 1..6), 0..6),
        sizes in vec(1usize..40, 1..6),
    ) {
        let mut stream = Vec::new();
        for request in &requests {
            let words: Vec<&[u8]> = request.iter().map(Vec::as_slice).collect();
            stream.extend(multibulk(&words));
        }
        let outcome = parse_in_chunks(RespLimits::default(), &stream, &sizes);
        prop_assert_eq!(outcome.error, None);
        let got: Vec<Vec<Vec<u8>>> =
            outcome.requests.iter().map(|r| r.iter().map(|a| a.to_vec()).collect()).collect();
        prop_assert_eq!(got, requests);
    }
}
