use proptest::prelude::*;

use super::*;

/// A counter application: every command adds one; the answer is the count.
fn counting(count: &mut u64) -> impl FnOnce(&[u8]) -> Result<Vec<u8>, std::convert::Infallible> + '_ {
    move |_command| {
        *count += 1;
        Ok(count.to_le_bytes().to_vec())
    }
}

fn command(session: SessionId, seq: u64, time_ms: u64, body: &[u8]) -> Vec<u8> {
    window_command(session, seq, seq, time_ms, body)
}

/// Command `seq` sent while its client still waits for `floor` and on.
fn window_command(session: SessionId, seq: u64, floor: u64, time_ms: u64, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Envelope::Command { session, seq, floor, proposer_time_ms: time_ms, command: body }.encode(&mut out);
    out
}

fn open(time_ms: u64, ttl_ms: u64) -> Vec<u8> {
    let mut out = Vec::new();
    Envelope::Open { proposer_time_ms: time_ms, ttl_ms }.encode(&mut out);
    out
}

fn apply(table: &mut SessionTable, index: u64, data: &[u8], count: &mut u64) -> Reply {
    let reply = table.apply_entry(LogIndex(index), data, counting(count)).expect("a well-formed entry");
    table.check_invariants();
    reply
}

fn opened(table: &mut SessionTable, index: u64, time_ms: u64, ttl_ms: u64) -> SessionId {
    let mut count = 0;
    match apply(table, index, &open(time_ms, ttl_ms), &mut count) {
        Reply::Opened(id) => id,
        other => panic!("opening gave {other:?}"),
    }
}

#[test]
fn envelopes_round_trip_and_bad_ones_are_typed_errors() {
    let cases = [
        Envelope::Plain(b"set x"),
        Envelope::Plain(b""),
        Envelope::Open { proposer_time_ms: 7, ttl_ms: 60_000 },
        Envelope::Command { session: SessionId(3), seq: 9, floor: 9, proposer_time_ms: 11, command: b"incr" },
        Envelope::Command { session: SessionId(3), seq: 9, floor: 2, proposer_time_ms: 11, command: b"incr" },
    ];
    for envelope in cases {
        let mut bytes = Vec::new();
        envelope.encode(&mut bytes);
        assert_eq!(bytes.len(), envelope.encoded_len());
        assert_eq!(Envelope::decode(&bytes), Ok(envelope));
    }
    assert_eq!(Envelope::decode(b""), Err(EnvelopeError::Empty));
    assert_eq!(Envelope::decode(&[9, 1, 2]), Err(EnvelopeError::UnknownTag(9)));
    let open = open(1, 2);
    assert_eq!(Envelope::decode(&open[..OPEN_BYTES - 1]), Err(EnvelopeError::Short { field: "ttl_ms" }));
    let mut long = open.clone();
    long.push(0);
    assert_eq!(Envelope::decode(&long), Err(EnvelopeError::Trailing { bytes: 1 }));
    let cmd = command(SessionId(1), 1, 0, b"");
    assert_eq!(Envelope::decode(&cmd[..9]), Err(EnvelopeError::Short { field: "seq" }));
    let mut zero = cmd.clone();
    zero[9..17].copy_from_slice(&0u64.to_le_bytes());
    assert_eq!(Envelope::decode(&zero), Err(EnvelopeError::ZeroSeq));
    // A window command waits for an older command, never a newer one.
    let windowed = window_command(SessionId(1), 5, 4, 0, b"");
    assert_eq!(windowed[0], TAG_WINDOW_COMMAND);
    assert_eq!(Envelope::decode(&windowed[..32]), Err(EnvelopeError::Short { field: "floor" }));
    for floor in [0, 6] {
        let mut bad = windowed.clone();
        bad[25..33].copy_from_slice(&u64::to_le_bytes(floor));
        assert_eq!(Envelope::decode(&bad), Err(EnvelopeError::Floor { seq: 5, floor }));
    }
}

#[test]
fn a_window_answers_each_command_in_flight_once_in_any_order() {
    let mut table = SessionTable::new();
    let mut count = 0;
    let s = opened(&mut table, 1, 0, 60_000);
    // Commands 1 to 4 in flight; 3 commits first, then 1, then copies.
    let third = apply(&mut table, 2, &window_command(s, 3, 1, 10, b""), &mut count);
    let first = apply(&mut table, 3, &window_command(s, 1, 1, 10, b""), &mut count);
    assert_eq!((third.clone(), first.clone()), (answer(1), answer(2)));
    assert_eq!(apply(&mut table, 4, &window_command(s, 3, 1, 20, b""), &mut count), third);
    assert_eq!(apply(&mut table, 5, &window_command(s, 1, 1, 20, b""), &mut count), first);
    let second = apply(&mut table, 6, &window_command(s, 2, 1, 20, b""), &mut count);
    assert_eq!(second, answer(3));
    assert_eq!(count, 3, "three commands, each applied once");
    // The client has 1 to 3 answered and waits for 4: older answers go,
    // and a late copy of one of them is refused, not applied again.
    let fourth = apply(&mut table, 7, &window_command(s, 5, 4, 30, b""), &mut count);
    assert_eq!(fourth, answer(4));
    let late = apply(&mut table, 8, &window_command(s, 2, 1, 30, b""), &mut count);
    assert_eq!(late, Reply::Refused { session: s, refusal: SessionRefusal::Stale { floor: 4 } });
    assert_eq!(apply(&mut table, 9, &window_command(s, 4, 4, 30, b""), &mut count), answer(5));
    assert_eq!(count, 5);
}

fn answer(count: u64) -> Reply {
    Reply::Answer(count.to_le_bytes().to_vec())
}

#[test]
fn a_window_keeps_a_bounded_number_of_answers_and_bytes() {
    let mut table = SessionTable::new();
    let mut count = 0;
    let s = opened(&mut table, 1, 0, 60_000);
    let n = WINDOW_ANSWERS_MAX as u64 + 1;
    for seq in 1..=n {
        apply(&mut table, seq + 1, &window_command(s, seq, 1, 0, b""), &mut count);
    }
    // The oldest answer went: its retry is refused, the next is answered.
    let oldest = apply(&mut table, n + 2, &window_command(s, 1, 1, 0, b""), &mut count);
    assert_eq!(oldest, Reply::Refused { session: s, refusal: SessionRefusal::Stale { floor: 2 } });
    assert_eq!(apply(&mut table, n + 3, &window_command(s, 2, 1, 0, b""), &mut count), answer(2));
    assert_eq!(count, n);
    // Large answers: the window holds what fits in its bytes.
    let big = vec![7; ANSWER_BYTES_MAX];
    let mut index = n + 4;
    for seq in n + 1..n + 10 {
        table
            .apply_entry(LogIndex(index), &window_command(s, seq, 2, 0, b""), |_| Ok::<_, ()>(big.clone()))
            .expect("applied");
        index += 1;
        table.check_invariants();
    }
    let kept = (WINDOW_BYTES_MAX / ANSWER_BYTES_MAX) as u64;
    let gone = apply(&mut table, index, &window_command(s, n + 9 - kept, 2, 0, b""), &mut count);
    assert_eq!(gone, Reply::Refused { session: s, refusal: SessionRefusal::Stale { floor: n + 10 - kept } });
    let newest = table.apply_entry(LogIndex(index + 1), &window_command(s, n + 9, 2, 0, b""), |_| {
        Err::<Vec<u8>, _>("a retry must not apply")
    });
    assert_eq!(newest.expect("answered"), Reply::Answer(big));
}

#[test]
fn a_retry_gets_the_first_answer_and_applies_nothing() {
    let mut table = SessionTable::new();
    let mut count = 0;
    let s = opened(&mut table, 5, 1_000, 60_000);
    assert_eq!(s, SessionId(5), "a session is named by its entry's index");
    let first = apply(&mut table, 6, &command(s, 1, 1_001, b"+1"), &mut count);
    assert_eq!(first, Reply::Answer(1u64.to_le_bytes().to_vec()));
    for index in 7..10 {
        let retry = apply(&mut table, index, &command(s, 1, 1_002, b"+1"), &mut count);
        assert_eq!(retry, first, "a retry answers as the first time");
    }
    assert_eq!(count, 1, "applied once");
    let second = apply(&mut table, 10, &command(s, 2, 1_003, b"+1"), &mut count);
    assert_eq!(second, Reply::Answer(2u64.to_le_bytes().to_vec()));
    assert_eq!(count, 2);
    assert_eq!(table.applied_seq(s), Some(2));
}

#[test]
fn an_older_seq_is_stale_and_a_plain_command_always_applies() {
    let mut table = SessionTable::new();
    let mut count = 0;
    let s = opened(&mut table, 1, 0, 60_000);
    apply(&mut table, 2, &command(s, 1, 0, b""), &mut count);
    apply(&mut table, 3, &command(s, 4, 0, b""), &mut count);
    let stale = apply(&mut table, 4, &command(s, 3, 0, b""), &mut count);
    assert_eq!(stale, Reply::Refused { session: s, refusal: SessionRefusal::Stale { floor: 4 } });
    assert_eq!(count, 2, "a stale command is not applied");
    let mut plain = Vec::new();
    Envelope::Plain(b"x").encode(&mut plain);
    apply(&mut table, 5, &plain, &mut count);
    apply(&mut table, 6, &plain, &mut count);
    assert_eq!(count, 4, "plain commands are not deduplicated");
}

#[test]
fn an_unknown_session_is_refused_and_nothing_applied() {
    let mut table = SessionTable::new();
    let mut count = 0;
    let reply = apply(&mut table, 1, &command(SessionId(99), 1, 0, b""), &mut count);
    assert_eq!(reply, Reply::Refused { session: SessionId(99), refusal: SessionRefusal::Expired });
    assert_eq!(count, 0);
}

#[test]
fn sessions_expire_by_log_time_not_by_entries() {
    let mut table = SessionTable::new();
    let mut count = 0;
    let a = opened(&mut table, 1, 10_000, 1_000);
    let b = opened(&mut table, 2, 10_000, 5_000);
    // Log time 10_900: both alive; `a` is used and lives on to 11_900.
    apply(&mut table, 3, &command(a, 1, 10_900, b""), &mut count);
    // A proposer with a slower clock does not move log time back.
    apply(&mut table, 4, &command(b, 1, 3, b""), &mut count);
    assert_eq!(table.log_time_ms(), 10_900);
    // At 11_900 exactly, `a` is still alive (unused for ttl, not more).
    apply(&mut table, 5, &command(b, 2, 11_900, b""), &mut count);
    assert_eq!(table.applied_seq(a), Some(1));
    // One millisecond later it is gone, on every replica at this index.
    apply(&mut table, 6, &command(b, 3, 11_901, b""), &mut count);
    assert_eq!(table.applied_seq(a), None);
    let refused = apply(&mut table, 7, &command(a, 1, 11_901, b""), &mut count);
    assert_eq!(refused, Reply::Refused { session: a, refusal: SessionRefusal::Expired });
    assert_eq!(count, 4);
    // `b`, last used at 11_901, lives to 16_901.
    opened(&mut table, 8, 16_901, 1);
    assert_eq!(table.applied_seq(b), Some(3));
    opened(&mut table, 9, 16_902, 1);
    assert_eq!(table.applied_seq(b), None);
}

#[test]
fn a_full_table_drops_the_session_closest_to_expiry() {
    let mut table = SessionTable::new();
    for k in 0..SESSIONS_MAX as u64 {
        table.open(LogIndex(k + 1), 0, 1_000 + k);
    }
    table.check_invariants();
    let newest = table.open(LogIndex(SESSIONS_MAX as u64 + 1), 0, 1);
    table.check_invariants();
    assert_eq!(table.len(), SESSIONS_MAX);
    assert_eq!(table.applied_seq(SessionId(1)), None, "the one with the shortest life left went");
    assert_eq!(table.applied_seq(newest), Some(0));
}

#[test]
fn a_long_answer_is_returned_but_not_kept() {
    let mut table = SessionTable::new();
    let s = opened(&mut table, 1, 0, 1_000);
    let long = vec![7; ANSWER_BYTES_MAX + 1];
    let reply = table.apply_entry(LogIndex(2), &command(s, 1, 0, b""), |_| Ok::<_, ()>(long.clone()));
    assert_eq!(reply.expect("applied"), Reply::Answer(long));
    let retry = table.apply_entry(LogIndex(3), &command(s, 1, 0, b""), |_| -> Result<Vec<u8>, ()> {
        panic!("a retry must not apply")
    });
    assert_eq!(
        retry.expect("refused"),
        Reply::Refused { session: s, refusal: SessionRefusal::AnswerNotKept }
    );
}

fn sample_table() -> SessionTable {
    let mut table = SessionTable::new();
    let mut count = 0;
    let a = opened(&mut table, 3, 500, 10_000);
    opened(&mut table, 4, 600, 20_000);
    let c = opened(&mut table, 8, 700, 30_000);
    apply(&mut table, 9, &command(a, 1, 800, b""), &mut count);
    apply(&mut table, 10, &command(c, 7, 900, b""), &mut count);
    let long = vec![1; ANSWER_BYTES_MAX + 1];
    table.apply_entry(LogIndex(11), &command(c, 8, 950, b""), |_| Ok::<_, ()>(long)).expect("applied");
    // A window with three answers, one of them dropped by the floor.
    let w = opened(&mut table, 12, 960, 40_000);
    for (index, seq) in [(13, 2), (14, 1), (15, 3)] {
        apply(&mut table, index, &window_command(w, seq, 1, 970, b""), &mut count);
    }
    apply(&mut table, 16, &window_command(w, 5, 2, 980, b""), &mut count);
    table
}

#[test]
fn a_table_survives_a_snapshot_round_trip() {
    let table = sample_table();
    let mut bytes = Vec::new();
    table.encode(&mut bytes);
    assert!(bytes.len() as u64 <= TABLE_BYTES_MAX);
    let read = SessionTable::decode(&bytes).expect("a table written reads");
    read.check_invariants();
    assert_eq!(read, table);
    let mut again = Vec::new();
    read.encode(&mut again);
    assert_eq!(again, bytes);
    // The table read goes on exactly as the one written would.
    let (mut left, mut right) = (table, read);
    let (mut n, mut m) = (0, 0);
    let retry = command(SessionId(3), 1, 1_000, b"");
    assert_eq!(apply(&mut left, 12, &retry, &mut n), apply(&mut right, 12, &retry, &mut m));
    assert_eq!((n, m), (0, 0));
    let empty = SessionTable::new();
    let mut bytes = Vec::new();
    empty.encode(&mut bytes);
    assert_eq!(SessionTable::decode(&bytes), Ok(empty));
}

#[test]
fn every_cut_or_flipped_byte_of_a_table_is_a_typed_error() {
    let mut bytes = Vec::new();
    sample_table().encode(&mut bytes);
    for len in 0..bytes.len() {
        assert!(SessionTable::decode(&bytes[..len]).is_err(), "a prefix of {len} bytes was accepted");
    }
    for at in 0..bytes.len() {
        for bit in 0..8 {
            let mut damaged = bytes.clone();
            damaged[at] ^= 1 << bit;
            assert!(SessionTable::decode(&damaged).is_err(), "a flip at byte {at} bit {bit} was accepted");
        }
    }
    let mut long = bytes.clone();
    long.push(0);
    assert_eq!(SessionTable::decode(&long), Err(TableError::Trailing { bytes: 1 }));
}

#[test]
fn a_table_claiming_too_many_sessions_is_refused_before_reading_them() {
    let mut bytes = vec![TABLE_VERSION];
    bytes.extend_from_slice(&0u64.to_le_bytes());
    bytes.extend_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(SessionTable::decode(&bytes), Err(TableError::TooManySessions { count: u32::MAX as usize }));
}

proptest! {
    /// Any interleaving of first tries, retries of the last command, and
    /// duplicates of older ones applies each seq exactly once, in order,
    /// and every retry of the last seq gets that seq's answer.
    #[test]
    fn any_interleaving_of_duplicates_applies_each_seq_once(
        steps in proptest::collection::vec((0u8..4, 0u64..4, 0u64..50), 1..200),
    ) {
        let mut table = SessionTable::new();
        let s = table.open(LogIndex(1), 0, u64::MAX);
        let mut applied: Vec<u64> = Vec::new();
        let mut answers: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        let mut next_seq: u64 = 1;
        let mut time_ms = 0;
        for (index, (kind, back, dt)) in steps.into_iter().enumerate() {
            time_ms += dt;
            // New command, retry of the last, or a duplicate `back` older.
            let seq = match kind {
                0 | 1 => { next_seq += 1; next_seq - 1 }
                _ => next_seq.saturating_sub(1 + back).max(1),
            };
            let data = command(s, seq, time_ms, &seq.to_le_bytes());
            let reply = table
                .apply_entry(LogIndex(index as u64 + 2), &data, |c| -> Result<Vec<u8>, ()> {
                    let seq = u64::from_le_bytes(c.try_into().expect("8 bytes"));
                    applied.push(seq);
                    Ok(format!("answer {seq} at {index}").into_bytes())
                })
                .expect("well-formed");
            table.check_invariants();
            let last = *applied.last().unwrap_or(&0);
            match reply {
                Reply::Answer(answer) => {
                    let first = answers.entry(seq).or_insert_with(|| answer.clone());
                    prop_assert_eq!(&*first, &answer, "seq {} answered differently", seq);
                    prop_assert_eq!(seq, last);
                }
                Reply::Refused { refusal: SessionRefusal::Stale { floor }, .. } => {
                    prop_assert!(seq < floor);
                    prop_assert_eq!(floor, last);
                }
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
        let mut sorted = applied.clone();
        sorted.dedup();
        prop_assert_eq!(&sorted, &applied, "a seq applied twice");
        prop_assert!(applied.windows(2).all(|w| w[0] < w[1]), "applied out of order: {:?}", applied);
    }
}

proptest! {
    /// A client with up to 8 commands in flight, whose copies commit in
    /// any order and any number of times, and which moves its floor to
    /// the oldest command not yet answered: each command is applied at
    /// most once, every copy of an answered command gets the first answer,
    /// and a copy is refused only once its client stopped waiting for it.
    #[test]
    fn a_window_applies_each_command_once_whatever_the_copies(
        steps in proptest::collection::vec((0u8..3, 0usize..8), 1..300),
    ) {
        let mut table = SessionTable::new();
        let s = table.open(LogIndex(1), 0, u64::MAX);
        let mut in_flight: BTreeSet<u64> = BTreeSet::new();
        let mut answers: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        let mut applied: BTreeSet<u64> = BTreeSet::new();
        let mut next_seq = 1;
        for (index, (kind, pick)) in steps.into_iter().enumerate() {
            if kind == 0 && in_flight.len() < 8 {
                in_flight.insert(next_seq);
                next_seq += 1;
            }
            // A copy of a command in flight, or (kind 2) of any sent so far.
            let seq = match kind {
                2 if next_seq > 1 => 1 + pick as u64 % (next_seq - 1),
                _ => match in_flight.iter().nth(pick % in_flight.len().max(1)) {
                    Some(&seq) => seq,
                    None => continue,
                },
            };
            let floor = in_flight.first().copied().unwrap_or(next_seq).min(seq);
            let data = window_command(s, seq, floor, 0, &seq.to_le_bytes());
            let reply = table
                .apply_entry(LogIndex(index as u64 + 2), &data, |c: &[u8]| -> Result<Vec<u8>, u64> {
                    let seq = u64::from_le_bytes(c.try_into().expect("8 bytes"));
                    if !applied.insert(seq) {
                        return Err(seq);
                    }
                    Ok(format!("answer {seq} at {index}").into_bytes())
                });
            let reply = match reply {
                Ok(reply) => reply,
                Err(ApplyError::StateMachine(seq)) => return Err(TestCaseError::fail(format!("seq {seq} applied twice"))),
                Err(e) => return Err(TestCaseError::fail(format!("{e:?}"))),
            };
            table.check_invariants();
            match reply {
                Reply::Answer(answer) => {
                    let first = answers.entry(seq).or_insert_with(|| answer.clone());
                    prop_assert_eq!(&*first, &answer, "seq {} answered differently", seq);
                    in_flight.remove(&seq);
                }
                Reply::Refused { refusal: SessionRefusal::Stale { .. }, .. } => {
                    prop_assert!(!in_flight.contains(&seq), "seq {} refused while awaited", seq);
                }
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
    }
}
