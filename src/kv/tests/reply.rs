//! Tests of the reply encoder: the wire form of every kind of reply.

use std::borrow::Cow;

use bytes::BytesMut;

use crate::kv::{write_array_header, write_bulk, Reply};

#[test]
fn every_reply_kind_has_its_redis_wire_form() {
    let cases: Vec<(Reply, &[u8])> = vec![
        (Reply::OK, b"+OK\r\n"),
        (Reply::Simple(Cow::Borrowed("PONG")), b"+PONG\r\n"),
        (Reply::error("ERR syntax error"), b"-ERR syntax error\r\n"),
        (Reply::Integer(0), b":0\r\n"),
        (Reply::Integer(-42), b":-42\r\n"),
        (Reply::Integer(i64::MAX), b":9223372036854775807\r\n"),
        (Reply::Integer(i64::MIN), b":-9223372036854775808\r\n"),
        (Reply::bulk_from(b"a\r\nb"), b"$4\r\na\r\nb\r\n"),
        (Reply::bulk_from(b""), b"$0\r\n\r\n"),
        (Reply::NullBulk, b"$-1\r\n"),
        (Reply::NullArray, b"*-1\r\n"),
        (Reply::Array(vec![]), b"*0\r\n"),
        (
            Reply::Array(vec![Reply::Integer(1), Reply::NullBulk, Reply::Array(vec![Reply::bulk_from("x")])]),
            b"*3\r\n:1\r\n$-1\r\n*1\r\n$1\r\nx\r\n",
        ),
    ];
    for (reply, wire) in cases {
        assert_eq!(reply.to_vec(), wire, "{reply:?}");
        let mut buf = BytesMut::new();
        reply.encode(&mut buf);
        assert_eq!(&buf[..], wire);
    }
}

#[test]
fn line_breaks_in_status_and_error_lines_become_spaces() {
    assert_eq!(Reply::error("ERR unknown command 'a\r\nb\n'").to_vec(), b"-ERR unknown command 'a  b '\r\n");
    assert_eq!(Reply::Simple("x\ry".into()).to_vec(), b"+x y\r\n");
    assert!(Reply::error("ERR x").is_error() && !Reply::OK.is_error());
}

#[test]
fn streaming_writers_match_the_reply_encoder() {
    let mut out = Vec::new();
    write_array_header(&mut out, 2);
    write_bulk(&mut out, b"k");
    write_bulk(&mut out, b"v");
    assert_eq!(out, Reply::Array(vec![Reply::bulk_from("k"), Reply::bulk_from("v")]).to_vec());
}
