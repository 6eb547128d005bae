//! Property tests: round trips through the record layer, name-value pairs, `Params`, whole
//! request streams as a server decodes them, and the response side of `Connection` under
//! every way of cutting a server's reply into records and reads.

use std::io::IoSlice;

use bytes::{Bytes, BytesMut};
use fcgi_proto::nv;
use fcgi_proto::record::{
    RecordDecoder, RecordHeader, RecordType, FLAG_KEEP_CONN, MAX_CONTENT_LEN, STREAM_CHUNK_LEN,
};
use fcgi_proto::{Config, Connection, Event, ParamError, Params, ProtocolStatus, RequestId, Role};
use proptest::prelude::*;
use proptest::sample::Index;

// ----- helpers -----

/// `len` pseudo-random bytes from `seed` (xorshift64*): cheap, non-periodic, and the
/// length still shrinks.
fn prng_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Random bytes whose length is drawn from `len`.
fn bytes_in(len: impl Strategy<Value = usize>) -> impl Strategy<Value = Vec<u8>> {
    (len, any::<u64>()).prop_map(|(len, seed)| prng_bytes(seed, len))
}

/// Cuts `total` bytes into pieces whose sizes cycle through `sizes` (each at least 1).
fn pieces(total: usize, sizes: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while at < total {
        let n = sizes
            .get(i % sizes.len().max(1))
            .copied()
            .unwrap_or(total)
            .max(1);
        let end = (at + n).min(total);
        out.push(at..end);
        at = end;
        i += 1;
    }
    out
}

/// Piece sizes at one of several scales, so both byte-by-byte and large reads occur
/// without making every case slow.
fn piece_sizes() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        1 => prop::collection::vec(1usize..=3, 1..8),
        2 => prop::collection::vec(1usize..=64, 1..8),
        3 => prop::collection::vec(1usize..=4096, 1..8),
        2 => prop::collection::vec(1usize..=80_000, 1..8),
    ]
}

/// One whole record as the decoder reports it: header and reassembled content.
type Decoded = (RecordHeader, Vec<u8>);

/// Decodes `wire` fed in the given pieces, reassembling each record's fragments, and
/// checks the fragment rules on the way.
fn decode_records(wire: &[u8], sizes: &[usize]) -> Vec<Decoded> {
    let mut decoder = RecordDecoder::new();
    let mut buf = BytesMut::new();
    let mut out: Vec<Decoded> = Vec::new();
    let mut open = false;
    for piece in pieces(wire.len(), sizes) {
        buf.extend_from_slice(&wire[piece]);
        while let Some(fragment) = decoder.decode(&mut buf).expect("valid records decode") {
            let header = fragment.header;
            let content_len = usize::from(header.content_length);
            if !header.record_type.is_stream() {
                assert!(fragment.last, "non-stream records come whole");
                assert_eq!(fragment.data.len(), content_len);
            } else if content_len == 0 {
                assert!(fragment.last && fragment.data.is_empty());
            } else {
                assert!(
                    !fragment.data.is_empty(),
                    "stream fragments are never empty"
                );
            }
            if open {
                let current = out.last_mut().expect("an open record");
                assert_eq!(
                    current.0, header,
                    "fragments of one record share its header"
                );
                current.1.extend_from_slice(&fragment.data);
            } else {
                out.push((header, fragment.data.to_vec()));
            }
            open = !fragment.last;
            if fragment.last {
                let current = out.last().expect("a record");
                assert_eq!(current.1.len(), content_len);
            }
        }
    }
    assert!(!open, "no record left open");
    assert!(buf.is_empty(), "nothing left undecoded");
    assert!(decoder.is_at_boundary());
    out
}

fn push_record(wire: &mut Vec<u8>, t: RecordType, id: u16, content: &[u8], padding: u8, fill: u8) {
    let mut header = RecordHeader::new(t, id, u16::try_from(content.len()).unwrap());
    header.padding_length = padding;
    wire.extend_from_slice(&header.encode());
    wire.extend_from_slice(content);
    wire.resize(wire.len() + usize::from(padding), fill);
}

type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

fn decode_all_pairs(content: &[u8]) -> Pairs {
    nv::decode_pairs(content)
        .map(|p| {
            let (n, v) = p.expect("a PARAMS record parses completely on its own");
            (n.to_vec(), v.to_vec())
        })
        .collect()
}

// ----- (a) records -----

#[derive(Clone, Debug)]
struct Rec {
    record_type: u8,
    id: u16,
    content: Vec<u8>,
    padding: u8,
    fill: u8,
}

fn record_strategy() -> impl Strategy<Value = Rec> {
    let content = bytes_in(prop_oneof![
        6 => 0usize..=16,
        3 => 0usize..=2048,
        1 => 60_000usize..=MAX_CONTENT_LEN,
    ]);
    let record_type = prop_oneof![4 => 1u8..=11, 1 => any::<u8>()];
    (record_type, any::<u16>(), content, any::<u8>(), any::<u8>()).prop_map(
        |(record_type, id, content, padding, fill)| Rec {
            record_type,
            id,
            content,
            padding,
            fill,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Records encoded with `RecordHeader::encode` + content + padding come back out of
    /// `RecordDecoder` unchanged, however the byte stream is split.
    #[test]
    fn records_round_trip(
        records in prop::collection::vec(record_strategy(), 0..12),
        sizes in piece_sizes(),
    ) {
        let mut wire = Vec::new();
        for r in &records {
            push_record(&mut wire, RecordType(r.record_type), r.id, &r.content, r.padding, r.fill);
        }
        let decoded = decode_records(&wire, &sizes);
        prop_assert_eq!(decoded.len(), records.len());
        for (r, (header, content)) in records.iter().zip(&decoded) {
            prop_assert_eq!(header.record_type, RecordType(r.record_type));
            prop_assert_eq!(header.request_id, r.id);
            prop_assert_eq!(usize::from(header.content_length), r.content.len());
            prop_assert_eq!(header.padding_length, r.padding);
            prop_assert!(content == &r.content);
        }
    }
}

// ----- (b) name-value pairs -----

proptest! {
    /// `nv::encode_pair` then `nv::decode_pairs` is the identity, for lengths on both
    /// sides of the 1-byte / 4-byte boundary; every cut inside a pair is `Truncated`.
    #[test]
    fn nv_round_trip(
        pairs in prop::collection::vec(
            (prop::collection::vec(any::<u8>(), 0..300), prop::collection::vec(any::<u8>(), 0..300)),
            0..8,
        ),
        cut in any::<Index>(),
    ) {
        let mut wire = Vec::new();
        let mut boundaries = vec![0];
        for (n, v) in &pairs {
            nv::encode_pair(&mut wire, n, v).unwrap();
            prop_assert_eq!(wire.len() - boundaries.last().unwrap(), nv::encoded_len(n, v));
            boundaries.push(wire.len());
        }
        prop_assert_eq!(decode_all_pairs(&wire), pairs.clone());

        // A cut between pairs decodes the pairs before it; any other cut ends in an error.
        if !wire.is_empty() {
            let at = cut.index(wire.len() + 1);
            let result: Result<Vec<_>, _> = nv::decode_pairs(&wire[..at]).collect();
            match boundaries.iter().position(|&b| b == at) {
                Some(k) => {
                    let got: Pairs = result
                        .unwrap()
                        .into_iter()
                        .map(|(n, v)| (n.to_vec(), v.to_vec()))
                        .collect();
                    prop_assert_eq!(got, pairs[..k].to_vec());
                }
                None => prop_assert_eq!(result, Err(fcgi_proto::NvError::Truncated)),
            }
        }
    }
}

// ----- (c) Params -----

#[derive(Clone, Debug)]
enum Op {
    Insert(Vec<u8>, Vec<u8>),
    Remove(Vec<u8>),
}

const NAME_BYTES: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789abz!~:;?#";

/// Valid names from a small alphabet (so names repeat), `CONTENT_LENGTH` (which
/// `Params` keeps track of), or any printable ASCII but `=`.
fn name_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => prop::collection::vec(prop::sample::select(&b"ABC_"[..]), 1..4),
        1 => Just(b"CONTENT_LENGTH".to_vec()),
        1 => prop::collection::vec(
            prop::sample::select(NAME_BYTES),
            1..40,
        ),
        1 => prop::collection::vec((0x21u8..=0x7E).prop_filter("no '='", |&b| b != b'='), 1..40),
    ]
}

/// Valid values: any byte but NUL, CR and LF.
fn value_strategy(len: impl Strategy<Value = usize>) -> impl Strategy<Value = Vec<u8>> {
    bytes_in(len).prop_map(|mut v| {
        for b in &mut v {
            if matches!(*b, 0 | b'\r' | b'\n') {
                *b = b'x';
            }
        }
        v
    })
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (name_strategy(), value_strategy(prop_oneof![0usize..=8, 0usize..=300]))
            .prop_map(|(n, v)| Op::Insert(n, v)),
        1 => name_strategy().prop_map(Op::Remove),
    ]
}

proptest! {
    /// `Params` behaves like an ordered map: first-insertion order, last value wins,
    /// removal forgets the position; invalid names and values are refused and change
    /// nothing.
    #[test]
    fn params_model(
        ops in prop::collection::vec(op_strategy(), 0..40),
        bad_name in prop::collection::vec(any::<u8>(), 0..10),
        bad_value in value_strategy(0usize..20),
        bad_at in any::<Index>(),
        bad_byte in prop::sample::select(&[0u8, b'\r', b'\n'][..]),
    ) {
        let mut params = Params::new();
        let mut model: Pairs = Vec::new();
        for op in &ops {
            match op {
                Op::Insert(n, v) => {
                    params.insert(n, v).unwrap();
                    match model.iter_mut().find(|(mn, _)| mn == n) {
                        Some(entry) => entry.1.clone_from(v),
                        None => model.push((n.clone(), v.clone())),
                    }
                }
                Op::Remove(n) => {
                    let was = model.iter().position(|(mn, _)| mn == n);
                    prop_assert_eq!(params.remove(n), was.is_some());
                    if let Some(i) = was {
                        model.remove(i);
                    }
                }
            }
            let got: Pairs = params.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect();
            prop_assert_eq!(&got, &model);
            let content_length = model.iter().find(|(n, _)| n == b"CONTENT_LENGTH");
            prop_assert_eq!(params.get("CONTENT_LENGTH"), content_length.map(|(_, v)| &v[..]));
        }
        prop_assert_eq!(params.len(), model.len());
        prop_assert_eq!(params.is_empty(), model.is_empty());
        for (n, v) in &model {
            prop_assert_eq!(params.get(n), Some(&v[..]));
            prop_assert!(params.contains(n));
        }
        let encoded: usize = model.iter().map(|(n, v)| nv::encoded_len(n, v)).sum();
        prop_assert_eq!(params.encoded_len(), encoded);

        // Invalid input is an error and leaves the set as it was.
        let before = params.clone();
        let name_ok = !bad_name.is_empty()
            && bad_name.iter().all(|&b| (0x21..=0x7E).contains(&b) && b != b'=');
        let result = params.insert(&bad_name, b"v");
        prop_assert_eq!(result.is_ok(), name_ok);
        if !name_ok {
            prop_assert_eq!(&params, &before);
        }
        let before = params.clone();
        let mut value = bad_value;
        let at = bad_at.index(value.len() + 1);
        value.insert(at, bad_byte);
        prop_assert!(matches!(
            params.insert("NAME", &value),
            Err(ParamError::InvalidValue(_))
        ));
        prop_assert_eq!(&params, &before);
    }
}

// ----- (d) whole request streams -----

fn big_params_strategy() -> impl Strategy<Value = Pairs> {
    let name = prop::collection::vec(prop::sample::select(NAME_BYTES), 1..40);
    let pair =
        (name, any::<u8>(), 0usize..3000, any::<u64>()).prop_map(|(name, kind, slack, seed)| {
            // Mostly small values; some of about one record, up to exactly one full record
            // (1 + 4 + name + value = 65535).
            let max_value = MAX_CONTENT_LEN - 5 - name.len();
            let len = match kind % 10 {
                0 => max_value - slack.min(3) * (slack % 2),
                1 => max_value - slack,
                2 => 20_000 + slack,
                3..=5 => 100 + slack % 200,
                _ => slack % 40,
            };
            let mut value = prng_bytes(seed, len);
            for b in &mut value {
                if matches!(*b, 0 | b'\r' | b'\n') {
                    *b = b'y';
                }
            }
            (name, value)
        });
    prop::collection::vec(pair, 0..24)
}

/// Writes out everything the connection queued, in vectored writes of a random number of
/// slices that each take a random number of bytes (so partial consumption happens).
fn drain_transmit(conn: &mut Connection, wire: &mut Vec<u8>, limits: &[usize], step: &mut usize) {
    while conn.transmit_len() > 0 {
        let limit = limits[*step % limits.len()].max(1);
        let slots = 1 + (*step % 5);
        *step += 1;
        let mut slices = [IoSlice::new(&[]); 5];
        let n = conn.transmit(&mut slices[..slots]);
        assert!(n >= 1, "output queued means at least one slice");
        let mut written = 0;
        for s in &slices[..n] {
            let take = s.len().min(limit - written);
            wire.extend_from_slice(&s[..take]);
            written += take;
            if written == limit {
                break;
            }
        }
        assert!(written > 0);
        conn.consume_transmit(written);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// A request driven through `Connection` decodes on the server side into exactly
    /// BEGIN_REQUEST, the params in order (each PARAMS record whole pairs, within 65535
    /// bytes), the body as STDIN, and the empty STDIN.
    #[test]
    fn request_stream_as_a_server_sees_it(
        pairs in big_params_strategy(),
        body in bytes_in(prop_oneof![
            2 => Just(0usize),
            3 => 0usize..=300,
            3 => 0usize..=200 * 1024,
        ]),
        declare_empty in any::<bool>(),
        stdin_sizes in piece_sizes(),
        write_limits in prop::collection::vec(
            prop_oneof![1usize..=16, 1usize..=10_000, 1usize..=300_000], 1..8),
        server_reads in piece_sizes(),
        keep_conn in any::<bool>(),
    ) {
        let mut params = Params::new();
        for (n, v) in &pairs {
            params.insert(n, v).unwrap();
        }
        if !body.is_empty() || declare_empty {
            params.insert("CONTENT_LENGTH", body.len().to_string()).unwrap();
        }
        let expected_pairs: Pairs = params.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect();

        let mut config = Config::default();
        config.keep_conn = keep_conn;
        let mut conn = Connection::new(config);
        let mut wire = Vec::new();
        let mut step = 0;
        let id = conn.start_request(&params).unwrap();
        drain_transmit(&mut conn, &mut wire, &write_limits, &mut step);
        let body = Bytes::from(body);
        for piece in pieces(body.len(), &stdin_sizes) {
            conn.send_stdin(id, body.slice(piece)).unwrap();
            if step % 3 == 0 {
                drain_transmit(&mut conn, &mut wire, &write_limits, &mut step);
            } else {
                step += 1;
            }
        }
        conn.finish_stdin(id).unwrap();
        drain_transmit(&mut conn, &mut wire, &write_limits, &mut step);
        prop_assert_eq!(conn.transmit_len(), 0);

        let records = decode_records(&wire, &server_reads);
        let rid = id.get();
        for (h, _) in &records {
            prop_assert_eq!(h.request_id, rid);
            prop_assert_eq!(h.padding_length, 0);
        }
        let (begin, rest) = records.split_first().expect("BEGIN_REQUEST");
        prop_assert_eq!(begin.0.record_type, RecordType::BEGIN_REQUEST);
        let flags = if keep_conn { FLAG_KEEP_CONN } else { 0 };
        let role = Role::RESPONDER.0.to_be_bytes();
        prop_assert_eq!(&begin.1[..], &[role[0], role[1], flags, 0, 0, 0, 0, 0][..]);

        let params_end = rest
            .iter()
            .position(|(h, c)| h.record_type == RecordType::PARAMS && c.is_empty())
            .expect("the empty PARAMS record");
        let mut got_pairs = Vec::new();
        for (h, c) in &rest[..params_end] {
            prop_assert_eq!(h.record_type, RecordType::PARAMS);
            prop_assert!(!c.is_empty() && c.len() <= MAX_CONTENT_LEN);
            got_pairs.extend(decode_all_pairs(c));
        }
        prop_assert_eq!(got_pairs, expected_pairs);

        let stdin = &rest[params_end + 1..];
        let (last, data) = stdin.split_last().expect("the empty STDIN record");
        prop_assert_eq!(last.0.record_type, RecordType::STDIN);
        prop_assert!(last.1.is_empty(), "the STDIN terminator is last");
        let mut got_body = Vec::with_capacity(body.len());
        for (h, c) in data {
            prop_assert_eq!(h.record_type, RecordType::STDIN);
            prop_assert!(!c.is_empty() && c.len() <= STREAM_CHUNK_LEN);
            got_body.extend_from_slice(c);
        }
        prop_assert!(got_body == body, "STDIN carries the body");
    }
}

// ----- (e) the response side -----

#[derive(Clone, Debug)]
struct Reply {
    /// The STDOUT stream: head then body.
    stdout: Vec<u8>,
    body_len: usize,
    status: u16,
    reason: Option<String>,
    status_given: bool,
    headers: Pairs,
}

const TOKEN_BYTES: &[u8] =
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~";

fn random_case(s: &str, mask: u32) -> Vec<u8> {
    s.bytes()
        .enumerate()
        .map(|(i, b)| {
            if mask >> (i % 32) & 1 == 1 {
                b.to_ascii_uppercase()
            } else {
                b.to_ascii_lowercase()
            }
        })
        .collect()
}

/// A header line's parts: name, whitespace before the value, the value, whitespace after.
type Line = (Vec<u8>, &'static str, Vec<u8>, &'static str);

fn header_line() -> impl Strategy<Value = Line> {
    let value = prop::collection::vec(
        prop_oneof![
            8 => 0x21u8..=0x7E,
            1 => Just(b' '),
            1 => Just(b'\t'),
            1 => 0x80u8..=0xFF,
        ],
        0..60,
    )
    .prop_map(|v| {
        // The parser trims the value: keep the generated one already trimmed.
        let start = v
            .iter()
            .position(|&b| b != b' ' && b != b'\t')
            .unwrap_or(v.len());
        let end = v
            .iter()
            .rposition(|&b| b != b' ' && b != b'\t')
            .map_or(start, |i| i + 1);
        v[start..end].to_vec()
    });
    let name = prop_oneof![
        3 => prop::collection::vec(prop::sample::select(TOKEN_BYTES), 1..24)
            .prop_filter("special names are generated on purpose", |n| {
                !["status", "content-length", "transfer-encoding", "location"]
                    .iter()
                    .any(|s| n.eq_ignore_ascii_case(s.as_bytes()))
            }),
        2 => any::<u32>().prop_map(|m| random_case("Set-Cookie", m)),
        1 => Just(b"X-Powered-By".to_vec()),
        1 => Just(b"Content-type".to_vec()),
    ];
    let ws = prop::sample::select(&["", " ", "  ", "\t", " \t"][..]);
    (name, ws.clone(), value, ws)
}

fn reply_strategy() -> impl Strategy<Value = Reply> {
    let status = (
        100u16..=999,
        prop::option::of(
            prop::collection::vec(prop_oneof![5 => b'a'..=b'z', 1 => Just(b' ')], 0..20)
                .prop_map(|v| format!("R{}x", String::from_utf8(v).unwrap())),
        ),
        any::<u32>(),
        any::<Index>(),
    );
    let location = prop::option::of((
        prop::sample::select(&["/local/path", "https://example.com/x?y=1", "//host/z"][..]),
        any::<u32>(),
        any::<Index>(),
    ));
    let content_length = prop::option::of((0u64..100_000, any::<Index>()));
    (
        prop::collection::vec(header_line(), 0..16),
        prop::option::of(status),
        location,
        content_length,
        prop::collection::vec(any::<bool>(), 1..8),
        bytes_in(prop_oneof![
            2 => Just(0usize),
            4 => 0usize..=200,
            3 => 0usize..=100_000,
        ]),
    )
        .prop_map(|(lines, status, location, content_length, crlf, body)| {
            let mut lines: Vec<Line> = lines;
            let mut headers: Pairs = lines.iter().map(|l| (l.0.clone(), l.2.clone())).collect();
            if let Some((loc, mask, at)) = location {
                let i = at.index(lines.len() + 1);
                let name = random_case("Location", mask);
                lines.insert(i, (name.clone(), " ", loc.as_bytes().to_vec(), ""));
                headers.insert(i, (name, loc.as_bytes().to_vec()));
            }
            if let Some((n, at)) = content_length {
                let i = at.index(lines.len() + 1);
                let v = n.to_string().into_bytes();
                lines.insert(i, (b"Content-Length".to_vec(), " ", v.clone(), ""));
                headers.insert(i, (b"Content-Length".to_vec(), v));
            }
            let (code, reason, status_given) = match &status {
                Some((code, reason, mask, at)) => {
                    let mut v = code.to_string().into_bytes();
                    if let Some(r) = reason {
                        v.push(b' ');
                        v.extend_from_slice(r.as_bytes());
                    }
                    let i = at.index(lines.len() + 1);
                    lines.insert(i, (random_case("Status", *mask), " ", v, ""));
                    (*code, reason.clone(), true)
                }
                None if location.is_some() => (302, None, false),
                None => (200, None, false),
            };
            let mut stdout = Vec::new();
            for (k, (name, before, value, after)) in lines.iter().enumerate() {
                stdout.extend_from_slice(name);
                stdout.push(b':');
                stdout.extend_from_slice(before.as_bytes());
                stdout.extend_from_slice(value);
                stdout.extend_from_slice(after.as_bytes());
                let eol: &[u8] = if crlf[k % crlf.len()] { b"\r\n" } else { b"\n" };
                stdout.extend_from_slice(eol);
            }
            let eol: &[u8] = if crlf[lines.len() % crlf.len()] {
                b"\r\n"
            } else {
                b"\n"
            };
            stdout.extend_from_slice(eol);
            let body_len = body.len();
            stdout.extend_from_slice(&body);
            Reply {
                stdout,
                body_len,
                status: code,
                reason,
                status_given,
                headers,
            }
        })
}

/// How the reply is framed: STDOUT record sizes, paddings, STDERR records and where they
/// go, which terminators are sent, the END_REQUEST body.
#[derive(Clone, Debug)]
struct Framing {
    record_sizes: Vec<usize>,
    paddings: Vec<u8>,
    stderr: Vec<(Index, Vec<u8>)>,
    stdout_end: bool,
    stderr_end: bool,
    app_status: u32,
    reserved: [u8; 3],
}

fn framing_strategy() -> impl Strategy<Value = Framing> {
    (
        prop_oneof![
            1 => prop::collection::vec(1usize..=5, 1..6),
            2 => prop::collection::vec(1usize..=500, 1..6),
            2 => prop::collection::vec(1usize..=MAX_CONTENT_LEN, 1..6),
            1 => Just(vec![STREAM_CHUNK_LEN]),
        ],
        prop::collection::vec(any::<u8>(), 1..6),
        prop::collection::vec(
            (
                any::<Index>(),
                bytes_in(prop_oneof![3 => 1usize..=100, 1 => 1usize..=30_000]),
            ),
            0..8,
        ),
        any::<bool>(),
        any::<bool>(),
        any::<u32>(),
        any::<[u8; 3]>(),
    )
        .prop_map(
            |(record_sizes, paddings, stderr, stdout_end, stderr_end, app_status, reserved)| {
                Framing {
                    record_sizes,
                    paddings,
                    stderr,
                    stdout_end,
                    stderr_end,
                    app_status,
                    reserved,
                }
            },
        )
}

/// The server's bytes for `reply` framed as `framing`, and the STDERR bytes in wire order.
fn frame(reply: &Reply, framing: &Framing, id: u16) -> (Vec<u8>, Vec<u8>) {
    let chunks = pieces(reply.stdout.len(), &framing.record_sizes);
    let mut stderr: Vec<(usize, &[u8])> = framing
        .stderr
        .iter()
        .map(|(at, data)| (at.index(chunks.len() + 1), &data[..]))
        .collect();
    stderr.sort_by_key(|(at, _)| *at);
    let mut wire = Vec::new();
    let mut stderr_all = Vec::new();
    let mut p = 0;
    let mut padding = || {
        p += 1;
        framing.paddings[p % framing.paddings.len()]
    };
    let mut next_stderr = stderr.iter().peekable();
    for k in 0..=chunks.len() {
        while let Some((_, data)) = next_stderr.next_if(|(at, _)| *at == k) {
            push_record(&mut wire, RecordType::STDERR, id, data, padding(), 0xEE);
            stderr_all.extend_from_slice(data);
        }
        if let Some(chunk) = chunks.get(k) {
            let pad = padding();
            push_record(
                &mut wire,
                RecordType::STDOUT,
                id,
                &reply.stdout[chunk.clone()],
                pad,
                0xDD,
            );
        }
    }
    if framing.stdout_end {
        push_record(&mut wire, RecordType::STDOUT, id, b"", padding(), 0);
    }
    if framing.stderr_end {
        push_record(&mut wire, RecordType::STDERR, id, b"", padding(), 0);
    }
    let mut end = framing.app_status.to_be_bytes().to_vec();
    end.push(ProtocolStatus::REQUEST_COMPLETE.0);
    end.extend_from_slice(&framing.reserved);
    push_record(&mut wire, RecordType::END_REQUEST, id, &end, padding(), 0);
    (wire, stderr_all)
}

/// An event with its bytes merged: consecutive `Body` and consecutive `Stderr` events are
/// joined, since how bytes are grouped into events depends on the reads.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    Head(fcgi_proto::ResponseHead),
    Body(Vec<u8>),
    Stderr(Vec<u8>),
    End(u32, ProtocolStatus, u64),
}

fn record_event(seen: &mut Vec<Seen>, id: RequestId, event: Event) {
    match event {
        Event::Head { id: i, head } => {
            assert_eq!(i, id);
            seen.push(Seen::Head(head));
        }
        Event::Body { id: i, data } => {
            assert_eq!(i, id);
            assert!(!data.is_empty(), "Body events are never empty");
            match seen.last_mut() {
                Some(Seen::Body(b)) => b.extend_from_slice(&data),
                _ => seen.push(Seen::Body(data.to_vec())),
            }
        }
        Event::Stderr { id: i, data } => {
            assert_eq!(i, id);
            assert!(!data.is_empty(), "Stderr events are never empty");
            match seen.last_mut() {
                Some(Seen::Stderr(b)) => b.extend_from_slice(&data),
                _ => seen.push(Seen::Stderr(data.to_vec())),
            }
        }
        Event::End { id: i, end } => {
            assert_eq!(i, id);
            seen.push(Seen::End(
                end.app_status,
                end.protocol_status,
                end.stderr_dropped,
            ));
        }
        other => panic!("unexpected event {other:?}"),
    }
}

/// Feeds `wire` to a fresh connection with a started request, in reads of the given sizes,
/// alternating `receive` and `input_buffer`/`input_written` as `how` says; drains events
/// after every read.
fn run_reply(wire: &[u8], reads: &[usize], how: &[bool]) -> Vec<Seen> {
    let mut conn = Connection::new(Config::default());
    let params = Params::new();
    let id = conn.start_request(&params).unwrap();
    conn.finish_stdin(id).unwrap();
    let queued = conn.transmit_len();
    conn.consume_transmit(queued);
    let mut seen = Vec::new();
    let mut at = 0;
    let mut k = 0;
    while at < wire.len() {
        let n = reads[k % reads.len()].max(1).min(wire.len() - at);
        if how[k % how.len()] {
            conn.receive(&wire[at..at + n]).unwrap();
            at += n;
        } else {
            let room = conn.input_buffer();
            let n = n.min(room.len());
            room[..n].copy_from_slice(&wire[at..at + n]);
            conn.input_written(n).unwrap();
            at += n;
        }
        k += 1;
        while let Some(event) = conn.poll_event() {
            record_event(&mut seen, id, event);
        }
    }
    assert_eq!(conn.in_flight(), 0);
    assert!(
        conn.is_reusable(),
        "the connection is reusable after END_REQUEST"
    );
    seen
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    /// However STDOUT is cut into records, STDERR interleaved and the bytes cut into
    /// reads, the client sees the same head, body, stderr and end; for one framing the
    /// merged event sequence does not depend on the reads at all.
    #[test]
    fn response_independent_of_framing_and_reads(
        reply in reply_strategy(),
        framing in framing_strategy(),
        reads in piece_sizes(),
        how in prop::collection::vec(any::<bool>(), 1..4),
    ) {
        // The first request on a fresh connection gets id 1.
        let (wire, stderr_all) = frame(&reply, &framing, 1);
        let seen = run_reply(&wire, &reads, &how);

        // For this framing, a single read gives the same sequence.
        let whole = run_reply(&wire, &[wire.len()], &[true]);
        prop_assert_eq!(&seen, &whole);

        // Against the model.
        let mut heads = Vec::new();
        let mut body = Vec::new();
        let mut stderr = Vec::new();
        let mut end = None;
        for (k, s) in seen.iter().enumerate() {
            match s {
                Seen::Head(h) => heads.push(h.clone()),
                Seen::Body(b) => {
                    prop_assert_eq!(heads.len(), 1, "body only after the head");
                    body.extend_from_slice(b);
                }
                Seen::Stderr(e) => stderr.extend_from_slice(e),
                Seen::End(app, status, dropped) => {
                    prop_assert_eq!(k, seen.len() - 1, "End is the last event");
                    end = Some((*app, *status, *dropped));
                }
            }
        }
        prop_assert_eq!(heads.len(), 1);
        let head = &heads[0];
        prop_assert_eq!(head.status(), reply.status);
        prop_assert_eq!(head.reason(), reply.reason.as_deref());
        prop_assert_eq!(head.has_status_header(), reply.status_given);
        let got_headers: Pairs = head
            .headers()
            .map(|h| (h.name().as_bytes().to_vec(), h.value().to_vec()))
            .collect();
        prop_assert_eq!(got_headers, reply.headers.clone());
        prop_assert!(body[..] == reply.stdout[reply.stdout.len() - reply.body_len..], "body");
        let max_stderr = Config::default().max_stderr_bytes;
        let kept = stderr_all.len().min(max_stderr);
        prop_assert!(stderr[..] == stderr_all[..kept], "stderr");
        prop_assert_eq!(
            end,
            Some((
                framing.app_status,
                ProtocolStatus::REQUEST_COMPLETE,
                (stderr_all.len() - kept) as u64,
            ))
        );
    }
}
