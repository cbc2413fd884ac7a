//! Property tests over whole messages: a generated message model, rendered
//! in a random style (compact or long names, any case, LWS around ':',
//! folded lines, comma-joined Vias), parses back to the same model; an
//! unedited message re-serializes byte-exact; and a random edit list's output
//! re-parses to the intended message with every untouched field byte-exact.

use bytes::Bytes;
use proptest::prelude::*;
use siphon::sip::{Edits, Framing, HeaderName, Limits, Message};

#[derive(Debug, Clone)]
struct Model {
    method: &'static str,
    ruri: String,
    vias: Vec<(String, String)>, // host, branch
    from_tag: String,
    to_tag: Option<String>,
    call_id: String,
    cseq: u32,
    max_forwards: Option<u8>,
    routes: Vec<String>,
    extra: Vec<(String, String)>,
    body: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Style {
    compact: bool,
    upper: bool,
    ws_before_colon: bool,
    fold_via: bool,
    join_vias: bool,
    content_length: bool,
}

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9.!%*_+`'~-]{0,15}"
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9-]{0,10}){0,3}",
        (0u8..=255, 0u8..=255, 0u8..=255, 1u8..=254)
            .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
        (any::<u16>(), any::<u16>()).prop_map(|(a, b)| format!("[2001:db8::{a:x}:{b:x}]")),
    ]
}

fn model() -> impl Strategy<Value = Model> {
    (
        prop::sample::select(vec![
            "INVITE",
            "OPTIONS",
            "REGISTER",
            "BYE",
            "MESSAGE",
            "SUBSCRIBE",
        ]),
        ("[a-z][a-z0-9]{0,8}", host(), prop::option::of(1u16..)),
        prop::collection::vec((host(), "[a-zA-Z0-9]{1,16}"), 1..5),
        (
            token(),
            prop::option::of(token()),
            "[A-Za-z0-9@.-]{1,32}",
            // RFC 3261 §8.1.1.5: a CSeq number is below 2^31.
            0u32..1 << 31,
            prop::option::of(any::<u8>()),
        ),
        prop::collection::vec(host(), 0..3),
        prop::collection::vec(("X-[A-Za-z][A-Za-z0-9-]{0,10}", "[ -~]{0,30}"), 0..4),
        prop::collection::vec(any::<u8>(), 0..200),
    )
        .prop_map(
            |(
                method,
                (user, h, port),
                vias,
                (from_tag, to_tag, call_id, cseq, mf),
                routes,
                extra,
                body,
            )| Model {
                method,
                ruri: match port {
                    Some(p) => format!("sip:{user}@{h}:{p}"),
                    None => format!("sip:{user}@{h}"),
                },
                vias: vias
                    .into_iter()
                    .map(|(h, b)| (h, format!("z9hG4bK{b}")))
                    .collect(),
                from_tag,
                to_tag,
                call_id,
                cseq,
                max_forwards: mf,
                routes,
                extra: extra
                    .into_iter()
                    .map(|(n, v)| (n, v.trim().to_string()))
                    .collect(),
                body,
            },
        )
}

fn style() -> impl Strategy<Value = Style> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(compact, upper, ws_before_colon, fold_via, join_vias, content_length)| Style {
                compact,
                upper,
                ws_before_colon,
                fold_via,
                join_vias,
                content_length,
            },
        )
}

fn render(m: &Model, s: &Style) -> Vec<u8> {
    let name = |long: &str, short: &str| -> String {
        let n = if s.compact && !short.is_empty() {
            short.to_string()
        } else {
            long.to_string()
        };
        let n = if s.upper { n.to_uppercase() } else { n };
        if s.ws_before_colon {
            format!("{n} ")
        } else {
            n
        }
    };
    let mut out = format!("{} {} SIP/2.0\r\n", m.method, m.ruri);
    let via_values: Vec<String> = m
        .vias
        .iter()
        .map(|(h, b)| {
            if s.fold_via {
                format!("SIP/2.0/UDP\r\n {h};branch={b}")
            } else {
                format!("SIP/2.0/UDP {h};branch={b}")
            }
        })
        .collect();
    if s.join_vias {
        out += &format!("{}: {}\r\n", name("Via", "v"), via_values.join(" , "));
    } else {
        for v in &via_values {
            out += &format!("{}: {v}\r\n", name("Via", "v"));
        }
    }
    out += &format!(
        "{}: <sip:alice@example.com>;tag={}\r\n",
        name("From", "f"),
        m.from_tag
    );
    match &m.to_tag {
        Some(t) => out += &format!("{}: Bob <sip:bob@example.com>;tag={t}\r\n", name("To", "t")),
        None => out += &format!("{}: sip:bob@example.com\r\n", name("To", "t")),
    }
    out += &format!("{}: {}\r\n", name("Call-ID", "i"), m.call_id);
    out += &format!("{}: {} {}\r\n", name("CSeq", ""), m.cseq, m.method);
    if let Some(mf) = m.max_forwards {
        out += &format!("{}: {mf}\r\n", name("Max-Forwards", ""));
    }
    for r in &m.routes {
        out += &format!("{}: <sip:{r};lr>\r\n", name("Route", ""));
    }
    for (n, v) in &m.extra {
        out += &format!("{n}: {v}\r\n");
    }
    if s.content_length {
        out += &format!("{}: {}\r\n", name("Content-Length", "l"), m.body.len());
    }
    out += "\r\n";
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&m.body);
    bytes
}

fn parse(b: &[u8]) -> Message {
    Message::parse(
        Bytes::copy_from_slice(b),
        Framing::Datagram,
        &Limits::default(),
    )
    .unwrap_or_else(|e| panic!("{e:?}: {}", String::from_utf8_lossy(b)))
}

fn check(msg: &Message, m: &Model) {
    assert_eq!(msg.method_bytes(), m.method.as_bytes());
    assert_eq!(msg.request_uri_bytes().unwrap(), m.ruri.as_bytes());
    msg.validate().unwrap();
    let vias: Vec<(Vec<u8>, Vec<u8>)> = msg
        .vias()
        .map(|v| {
            let v = v.unwrap();
            (v.host.to_vec(), v.branch().unwrap().to_vec())
        })
        .collect();
    let want: Vec<(Vec<u8>, Vec<u8>)> = m
        .vias
        .iter()
        .map(|(h, b)| (h.as_bytes().to_vec(), b.as_bytes().to_vec()))
        .collect();
    assert_eq!(vias, want);
    assert_eq!(msg.from().unwrap().tag(), Some(m.from_tag.as_bytes()));
    assert_eq!(
        msg.to().unwrap().tag(),
        m.to_tag.as_deref().map(str::as_bytes)
    );
    assert_eq!(msg.call_id(), m.call_id.as_bytes());
    assert_eq!(msg.cseq().unwrap().seq, m.cseq);
    assert_eq!(msg.max_forwards(), Ok(m.max_forwards));
    let routes: Vec<Vec<u8>> = msg.routes().map(|r| r.unwrap().uri.to_vec()).collect();
    let want: Vec<Vec<u8>> = m
        .routes
        .iter()
        .map(|r| format!("sip:{r};lr").into_bytes())
        .collect();
    assert_eq!(routes, want);
    let extra: Vec<(&[u8], &[u8])> = msg
        .headers()
        .filter(|h| h.name == HeaderName::Other)
        .map(|h| (h.name_bytes, h.value))
        .collect();
    let want: Vec<(&[u8], &[u8])> = m
        .extra
        .iter()
        .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
        .collect();
    assert_eq!(extra, want);
    if let Some((n, v)) = m.extra.first() {
        assert_eq!(msg.header_by_name(n), Some(v.as_bytes()));
    }
    assert_eq!(msg.body(), &m.body[..]);
}

proptest! {
    // 512 cases by default; PROPTEST_CASES raises it for a long soak.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512)
    ))]

    #[test]
    fn rendered_messages_parse_back(m in model(), s in style()) {
        let text = render(&m, &s);
        let msg = parse(&text);
        check(&msg, &m);
        // Serializing with no edits is the identity, and parses equal.
        let mut out = Vec::new();
        Edits::new().apply(&msg, &mut out);
        prop_assert_eq!(&out[..], &text[..]);
        check(&parse(&out), &m);
    }

    #[test]
    fn edits_reparse_to_the_intended_message(
        m in model(),
        s in style(),
        ops in (any::<bool>(), any::<bool>(), prop::option::of(0u8..=70), any::<bool>(), any::<bool>(), any::<bool>()),
    ) {
        let (add_via, pop_via, set_mf, pop_route, add_rr, new_ruri) = ops;
        let text = render(&m, &s);
        let msg = parse(&text);
        let mut e = Edits::new();
        let mut want = m.clone();
        if pop_via && (want.vias.len() > 1 || add_via) {
            e.remove_top_via(&msg).unwrap();
            want.vias.remove(0);
        }
        if add_via {
            e.insert_via(&msg, b"SIP/2.0/UDP proxy.example.net;branch=z9hG4bKproxy");
            want.vias.insert(0, ("proxy.example.net".into(), "z9hG4bKproxy".into()));
        }
        if let Some(n) = set_mf {
            e.set_max_forwards(&msg, n);
            want.max_forwards = Some(n);
        }
        if pop_route && !want.routes.is_empty() {
            e.remove_first_route(&msg).unwrap();
            want.routes.remove(0);
        }
        if add_rr {
            e.insert_record_route(&msg, b"<sip:proxy.example.net;lr>");
        }
        if new_ruri {
            e.set_request_uri(&msg, b"sip:target@192.0.2.99:5080");
            want.ruri = "sip:target@192.0.2.99:5080".into();
        }
        let mut out = Vec::new();
        e.apply(&msg, &mut out);
        let f = parse(&out);
        check(&f, &want);
        prop_assert_eq!(f.method(), msg.method());
        if add_rr {
            let top = f.record_routes().next().unwrap().unwrap();
            prop_assert_eq!(top.uri, &b"sip:proxy.example.net;lr"[..]);
        }
        // Fields we did not touch are byte-exact and in order.
        let untouched = |msg: &Message| -> Vec<Vec<u8>> {
            msg.fields()
                .iter()
                .filter(|h| !matches!(h.name, HeaderName::Via | HeaderName::MaxForwards | HeaderName::Route | HeaderName::RecordRoute))
                .map(|h| msg.slice(h.line).to_vec())
                .collect()
        };
        prop_assert_eq!(untouched(&f), untouched(&msg));
    }
}
