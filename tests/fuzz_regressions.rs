//! Every input a fuzz target ever failed on, replayed through the same
//! harness (`siphon::testkit::fuzz`). Inputs live in
//! `tests/fuzz_regressions/<target>/`, named after what they found.
//!
//! - `edit/too-many-headers-after-edits`: a message at exactly the header
//!   limit; the edits add fields, so the output only parses with room for
//!   them (the harness was wrong to re-parse with the input's limit).
//! - `proxy/reply-to-request-without-from`: RFC 4475 insuf.dat; the 400
//!   the proxy answers cannot carry the From, To and Call-ID the request
//!   lacks (the harness was wrong to require every reply to parse).
//! - `proxy/reply-copies-bad-cseq`: RFC 4475 scalar02.dat; the 400 copies
//!   the request's overflowing CSeq, as RFC 3261 §8.2.6 says to.
//! - `proxy/reply-copies-bad-cseq-after-a-bad-line`: the same, with a
//!   malformed header line first: the harness must compare the copied
//!   header, not the first error of each message.
//! - `proxy/reply-to-repeated-cseq`: RFC 4475 multi01.dat; the 400 copied
//!   every CSeq, Call-ID, From and To, so it repeated them too. A real fix:
//!   single-instance headers are now copied once.
//! - `proxy/udp-without-content-length-moved-to-tcp`: a real defect: a UDP
//!   request without Content-Length (legal there) over `udp_max_size` was
//!   forwarded over TCP still without it, so the next hop could not frame
//!   it. Content-Length is now added for stream transports.
//! - `stateful/invite-ring-cancel-487`: a seed script (INVITE, 180, CANCEL,
//!   487, an hour passes).
//! - `stateful/late-provisional-after-branch-timeout`: a real defect (found
//!   by `stateful_scripts` below): a leg that timed out and then rang was
//!   left in Proceeding with no timer, so its context never ended. Such a
//!   leg is now cancelled.
//! - `stateful/reply-to-raw-bytes-copies-their-faults`: a 400 to broken raw
//!   bytes goes to the Via's sent-by port and copies the request's faults
//!   (§8.2.6); the harness only allowed it towards the source port.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_regressions")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            continue;
        }
        let data = std::fs::read(&path).unwrap();
        run(&data);
        n += 1;
    }
    n
}

#[test]
fn parse_regressions() {
    replay("parse", siphon::testkit::fuzz::parse);
}

#[test]
fn uri_regressions() {
    replay("uri", siphon::testkit::fuzz::uri);
}

#[test]
fn stateful_regressions() {
    replay("stateful", siphon::testkit::fuzz::stateful);
}

#[test]
fn proxy_regressions() {
    assert!(replay("proxy", siphon::testkit::fuzz::proxy) >= 1);
}

#[test]
fn edit_regressions() {
    assert!(replay("edit", siphon::testkit::fuzz::edit) >= 1);
}

/// The kept input really sits at the limit: the unedited message parses
/// with the default limit and the edited one needs more room.
#[test]
fn the_edit_regression_is_at_the_header_limit() {
    use bytes::Bytes;
    use siphon::sip::{Edits, Framing, Limits, Message};
    let data = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fuzz_regressions/edit/too-many-headers-after-edits"),
    )
    .unwrap();
    let m = Message::parse(
        Bytes::copy_from_slice(&data[1..]),
        Framing::Datagram,
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(m.fields().len(), Limits::default().max_headers);
    let mut e = Edits::new();
    e.add_header(&m, "X-Fuzz", b"1");
    let mut out = Vec::new();
    e.apply(&m, &mut out);
    let err = Message::parse(Bytes::from(out), Framing::Datagram, &Limits::default()).unwrap_err();
    assert_eq!(err.error(), siphon::sip::Error::TooManyHeaders);
}

/// The stateful target's scripts, generated here so that `cargo test`
/// covers it without cargo-fuzz: a fixed pseudo-random sequence of
/// operations (calls, answers of every class, CANCELs, ACKs, time jumps,
/// raw corpus messages), each script checked for panics, unparsable
/// output and leaked transactions.
#[test]
fn stateful_scripts() {
    let corpus: Vec<Vec<u8>> = [
        "tests/corpus/rfc4475/wsinv.dat",
        "benches/messages/invite.sip",
    ]
    .iter()
    .map(|p| std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(p)).unwrap())
    .collect();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..3000 {
        let mut script = Vec::new();
        for _ in 0..(next() % 24) {
            let r = next();
            match r % 4 {
                0 => {
                    let m = &corpus[(r >> 8) as usize % corpus.len()];
                    script.extend_from_slice(&[0, m.len().min(255) as u8]);
                    script.extend_from_slice(&m[..m.len().min(255)]);
                }
                op => script.extend_from_slice(&[op as u8, 2, (r >> 8) as u8, (r >> 16) as u8]),
            }
        }
        if std::panic::catch_unwind(|| siphon::testkit::fuzz::stateful(&script)).is_err() {
            std::fs::write("/tmp/failing-script", &script).unwrap();
            panic!("script failed: /tmp/failing-script");
        }
    }
}
