//! Tests of the state machine against Redis's behaviour for the same
//! commands, each case written as the requests a client sends and the
//! replies redis-server gives.

use proptest::collection::vec;
use proptest::prelude::*;

use super::{args, payload};
use crate::kv::tests::entry::arb_write_op;
use crate::kv::{decode_read, decode_write, encode_read, Command, Reply, Store};

/// Runs one request against `store` the way a cluster would (writes and
/// reads through their payload encodings) and returns the reply's wire form
/// as text.
fn run(store: &mut Store, words: &[&[u8]]) -> String {
    let reply = match Command::parse(args(words)) {
        Ok(Command::Write(op)) => {
            let decoded = decode_write(&payload(&op)).expect("an encoded write decodes");
            store.apply(decoded)
        }
        Ok(Command::Read(op)) => {
            let decoded = decode_read(&encode_read(&op)).expect("an encoded read decodes");
            store.query(&decoded)
        }
        Ok(Command::Local(op)) => panic!("not a state machine command: {op:?}"),
        Ok(Command::Member(op)) => panic!("not a state machine command: {op:?}"),
        Err(error) => error.reply(),
    };
    String::from_utf8_lossy(&reply.to_vec()).into_owned()
}

/// Runs a session of `(request, expected reply)` steps on a fresh store.
fn session(steps: &[(&[&[u8]], &str)]) {
    let mut store = Store::new();
    for (n, &(words, want)) in steps.iter().enumerate() {
        let words_text: Vec<_> = words.iter().map(|w| String::from_utf8_lossy(w)).collect();
        assert_eq!(run(&mut store, words), want, "step {n}: {words_text:?}");
    }
}

const OK: &str = "+OK\r\n";
const NIL: &str = "$-1\r\n";
const NOT_INTEGER: &str = "-ERR value is not an integer or out of range\r\n";
const OVERFLOW: &str = "-ERR increment or decrement would overflow\r\n";

#[test]
fn set_and_get() {
    session(&[
        (&[b"GET", b"k"], NIL),
        (&[b"SET", b"k", b"v1"], OK),
        (&[b"GET", b"k"], "$2\r\nv1\r\n"),
        (&[b"SET", b"k", b""], OK),
        (&[b"GET", b"k"], "$0\r\n\r\n"),
        (&[b"SET", b"\x00\xff", b"\r\n"], OK),
        (&[b"GET", b"\x00\xff"], "$2\r\n\r\n\r\n"),
    ]);
}

#[test]
fn set_nx_writes_only_a_missing_key() {
    session(&[
        (&[b"SET", b"k", b"a", b"NX"], OK),
        (&[b"SET", b"k", b"b", b"NX"], NIL),
        (&[b"GET", b"k"], "$1\r\na\r\n"),
    ]);
}

#[test]
fn set_xx_writes_only_an_existing_key() {
    session(&[
        (&[b"SET", b"k", b"a", b"XX"], NIL),
        (&[b"EXISTS", b"k"], ":0\r\n"),
        (&[b"SET", b"k", b"a"], OK),
        (&[b"SET", b"k", b"b", b"XX"], OK),
        (&[b"GET", b"k"], "$1\r\nb\r\n"),
    ]);
}

#[test]
fn set_get_replies_the_old_value_whether_or_not_it_writes() {
    session(&[
        (&[b"SET", b"k", b"a", b"GET"], NIL),
        (&[b"SET", b"k", b"b", b"GET"], "$1\r\na\r\n"),
        (&[b"GET", b"k"], "$1\r\nb\r\n"),
        // NX GET on an existing key: the old value, and no write (Redis 7).
        (&[b"SET", b"k", b"c", b"NX", b"GET"], "$1\r\nb\r\n"),
        (&[b"GET", b"k"], "$1\r\nb\r\n"),
        // XX GET on a missing key: nil, and no write.
        (&[b"SET", b"m", b"c", b"XX", b"GET"], NIL),
        (&[b"EXISTS", b"m"], ":0\r\n"),
        (&[b"SET", b"k", b"d", b"XX", b"GET"], "$1\r\nb\r\n"),
        (&[b"GET", b"k"], "$1\r\nd\r\n"),
        (&[b"SET", b"n", b"e", b"GET", b"NX"], NIL),
        (&[b"GET", b"n"], "$1\r\ne\r\n"),
    ]);
}

#[test]
fn del_counts_keys_removed_and_a_repeat_once() {
    session(&[
        (&[b"MSET", b"a", b"1", b"b", b"2"], OK),
        (&[b"DEL", b"a", b"a", b"missing"], ":1\r\n"),
        (&[b"DEL", b"a"], ":0\r\n"),
        (&[b"DEL", b"b", b"c"], ":1\r\n"),
        (&[b"DBSIZE"], ":0\r\n"),
    ]);
}

#[test]
fn exists_counts_a_repeated_key_each_time() {
    session(&[
        (&[b"SET", b"a", b"1"], OK),
        (&[b"EXISTS", b"a", b"a", b"b"], ":2\r\n"),
        (&[b"EXISTS", b"b"], ":0\r\n"),
    ]);
}

#[test]
fn incr_counts_from_zero_and_keeps_a_decimal_string() {
    session(&[
        (&[b"INCR", b"n"], ":1\r\n"),
        (&[b"INCRBY", b"n", b"41"], ":42\r\n"),
        (&[b"GET", b"n"], "$2\r\n42\r\n"),
        (&[b"DECR", b"n"], ":41\r\n"),
        (&[b"INCRBY", b"n", b"-50"], ":-9\r\n"),
        (&[b"GET", b"n"], "$2\r\n-9\r\n"),
        (&[b"DECR", b"m"], ":-1\r\n"),
    ]);
}

#[test]
fn incr_on_a_non_integer_fails_and_leaves_the_value() {
    for value in [&b"abc"[..], b"", b" 1", b"1 ", b"+1", b"01", b"-0", b"1.5", b"99999999999999999999"] {
        let mut store = Store::new();
        assert_eq!(run(&mut store, &[b"SET", b"k", value]), OK);
        assert_eq!(run(&mut store, &[b"INCR", b"k"]), NOT_INTEGER, "{value:?}");
        assert_eq!(run(&mut store, &[b"DECR", b"k"]), NOT_INTEGER);
        assert_eq!(run(&mut store, &[b"INCRBY", b"k", b"2"]), NOT_INTEGER);
        assert_eq!(store.get(b"k").map(|v| v.to_vec()), Some(value.to_vec()));
    }
    session(&[(&[b"INCRBY", b"k", b"x"], NOT_INTEGER), (&[b"EXISTS", b"k"], ":0\r\n")]);
}

#[test]
fn incr_overflow_fails_and_leaves_the_value() {
    session(&[
        (&[b"SET", b"k", b"9223372036854775806"], OK),
        (&[b"INCR", b"k"], ":9223372036854775807\r\n"),
        (&[b"INCR", b"k"], OVERFLOW),
        (&[b"INCRBY", b"k", b"-9223372036854775808"], ":-1\r\n"),
        (&[b"SET", b"k", b"-9223372036854775808"], OK),
        (&[b"DECR", b"k"], OVERFLOW),
        (&[b"INCRBY", b"k", b"-1"], OVERFLOW),
        (&[b"GET", b"k"], "$20\r\n-9223372036854775808\r\n"),
        (&[b"INCRBY", b"k", b"9223372036854775807"], ":-1\r\n"),
    ]);
}

#[test]
fn mset_applies_in_order_and_mget_keeps_positions() {
    session(&[
        (&[b"MSET", b"a", b"1", b"b", b"2", b"a", b"3"], OK),
        (&[b"MGET", b"a", b"missing", b"b", b"a"], "*4\r\n$1\r\n3\r\n$-1\r\n$1\r\n2\r\n$1\r\n3\r\n"),
        (&[b"DBSIZE"], ":2\r\n"),
        (&[b"MSET", b"a"], "-ERR wrong number of arguments for 'mset' command\r\n"),
    ]);
}

#[test]
fn the_store_exposes_its_pairs_in_key_order() {
    let mut store = Store::new();
    assert!(store.is_empty());
    run(&mut store, &[b"MSET", b"b", b"2", b"a", b"1", b"c", b"3"]);
    let keys: Vec<_> = store.iter().map(|(k, _)| k.to_vec()).collect();
    assert_eq!(keys, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    assert_eq!(store.len(), 3);
}

proptest! {
    /// A follower applying decoded log entries ends with the same map, and
    /// computes the same replies, as the leader applying the operations
    /// directly: apply is deterministic and the encoding loses nothing.
    #[test]
    fn replicas_applying_decoded_entries_agree(ops in vec(arb_write_op(), 0..40)) {
        let mut direct = Store::new();
        let mut replica = Store::new();
        for op in ops {
            let decoded = decode_write(&payload(&op)).expect("an encoded write decodes");
            let reply = replica.apply(decoded);
            prop_assert_eq!(direct.apply(op), reply);
        }
        prop_assert_eq!(direct, replica);
    }
}

#[test]
fn replies_of_writes_are_plain_redis_replies() {
    let mut store = Store::new();
    let op = match Command::parse(args(&[b"SET", b"k", b"v"])) {
        Ok(Command::Write(op)) => op,
        other => panic!("{other:?}"),
    };
    assert_eq!(store.apply(op), Reply::OK);
}
