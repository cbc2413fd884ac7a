use super::*;
use proptest::prelude::*;

fn p(s: &str) -> Uri<'_> {
    Uri::parse(s.as_bytes()).unwrap_or_else(|e| panic!("{s:?}: {e:?}"))
}

fn err(s: &str) -> UriError {
    match Uri::parse(s.as_bytes()) {
        Ok(u) => panic!("{s:?} parsed as {u:?}"),
        Err(e) => e,
    }
}

fn b(s: &str) -> Option<&[u8]> {
    Some(s.as_bytes())
}

fn equiv(a: &str, c: &str) -> bool {
    let (x, y) = (p(a), p(c));
    assert_eq!(x.equivalent(&y), y.equivalent(&x), "asymmetric: {a} / {c}");
    x.equivalent(&y)
}

fn written(u: &Uri<'_>) -> String {
    let mut out = Vec::new();
    u.write_to(&mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn components_of_a_typical_uri() {
    let u = p("sip:alice:secret@atlanta.example.com:5070;transport=tcp;lr?subject=hi&x=");
    assert_eq!(u.scheme, Scheme::Sip);
    assert_eq!(u.user, b("alice"));
    assert_eq!(u.password, b("secret"));
    assert_eq!(u.host, Host::Name(b"atlanta.example.com"));
    assert_eq!(u.port, Some(5070));
    assert_eq!(u.params.as_bytes(), b";transport=tcp;lr");
    assert_eq!(u.headers, b("subject=hi&x="));
    assert_eq!(u.transport(), b("tcp"));
    assert!(u.lr());
    assert_eq!(u.param("LR"), Some(None));
    assert_eq!(u.param("nope"), None);
    assert_eq!(u.maddr(), None);
    assert_eq!(u.port_or_default(), 5070);
}

#[test]
fn scheme_is_case_insensitive_and_default_ports_follow_it() {
    assert_eq!(p("SIP:alice@x").scheme, Scheme::Sip);
    let u = p("sIpS:x");
    assert_eq!(
        (u.scheme, u.default_port(), u.port_or_default()),
        (Scheme::Sips, 5061, 5061)
    );
    assert_eq!(p("sip:x").default_port(), 5060);
    assert_eq!(p("TEL:+1").scheme, Scheme::Tel);
}

#[test]
fn foreign_schemes_are_unsupported_not_malformed() {
    for s in [
        "nobodyKnowsThisScheme:totallyopaquecontent",
        "soap.beep://192.0.2.103:3002",
        "mailto:",
        "http://",
    ] {
        assert_eq!(err(s), UriError::UnsupportedScheme, "{s}");
    }
    assert_eq!(err("http://a b"), UriError::Malformed);
    assert_eq!(scheme_of(b"soap.beep://x"), Some(&b"soap.beep"[..]));
    assert_eq!(scheme_of(b"SIP:x"), Some(&b"SIP"[..]));
    for s in [
        "",
        ":x",
        "1ab:x",
        "<sip:x>",
        "sip",
        "s p:x",
        "alice@atlanta.com",
    ] {
        assert_eq!(scheme_of(s.as_bytes()), None, "{s}");
    }
    assert_eq!(Error::from(UriError::UnsupportedScheme).status(), 416);
    assert_eq!(Error::from(UriError::Malformed), Error::BadRequestUri);
}

#[test]
fn garbage_is_malformed() {
    for s in [
        "",
        "sip",
        "sip:",
        "alice@atlanta.com",
        "<sip:user@example.com>",
        "sip:alice@atlanta.com ",
        " sip:alice@atlanta.com",
        "sip:al ice@atlanta.com",
        "sip:alice@atlanta.com\r\n",
        "sip:alice@atlanta.com;\ttransport=tcp",
        "sip:alice@atlanta.com ;lr",
        "sip:@atlanta.com",
        "sip::pw@atlanta.com",
        "sip:alice@",
        "sip:alice@:5060",
        "sip:a@b@c",
        "sip:a@b/c",
        "sip:a:b:c@x",
        "sip:a%4@x",
        "sip:a%zz@x",
        "sip:x%41",
        "sip:a..b",
        "sip:.a",
        "sip:a\"b@x",
        "sip:a<b@x",
        "sip:caf\u{e9}@x",
    ] {
        assert_eq!(err(s), UriError::Malformed, "{s:?}");
    }
}

#[test]
fn userinfo_split_and_escapes() {
    // The first '@' ends userinfo; the first ':' in it starts the password.
    let u = p("sip:user;par=u%40example.net@example.com");
    assert_eq!((u.user, u.password), (b("user;par=u%40example.net"), None));
    assert_eq!(u.user_decoded().unwrap(), &b"user;par=u@example.net"[..]);
    assert_eq!(p("sip:u:@x").password, b(""));
    // '?' is a user character; with an '@' after it there are no headers.
    let u = p("sip:host?x=y@example.com");
    assert_eq!(
        (u.user, u.host, u.headers),
        (b("host?x=y"), Host::Name(b"example.com"), None)
    );
    assert_eq!(err("sip:alice:p%zz@x"), UriError::Malformed);
    assert_eq!(err("sip:alice:p;w@x"), UriError::Malformed);
    // No '%': the decoded user borrows the input.
    assert!(matches!(
        p("sip:alice@x").user_decoded(),
        Some(Cow::Borrowed(b"alice"))
    ));
    assert_eq!(p("sip:x").user_decoded(), None);
    // Decoded exactly once (RFC 4475 §3.1.1.3).
    assert_eq!(
        p("sip:value%2541@x").user_decoded().unwrap(),
        &b"value%41"[..]
    );
    assert_eq!(&*percent_decode(b"100%"), b"100%");
    assert_eq!(&*percent_decode(b"%4a%4A"), b"JJ");
}

#[test]
fn rfc4475_uris() {
    let u = p("sip:vivekg@chair-dnrc.example.com;unknownparam");
    assert_eq!(u.param("unknownparam"), Some(None));
    assert_eq!(u.host, Host::Name(b"chair-dnrc.example.com"));

    // §3.1.1.3: an escaped "sips:user@example.com" is a user, not a scheme.
    let u = p("sip:sips%3Auser%40example.com@example.net");
    assert_eq!(
        (u.scheme, u.user),
        (Scheme::Sip, b("sips%3Auser%40example.com"))
    );
    assert_eq!(u.user_decoded().unwrap(), &b"sips:user@example.com"[..]);
    assert_eq!(u.host, Host::Name(b"example.net"));

    // §3.1.1.4: %00 decodes to NUL without truncating.
    let u = p("sip:null-%00-null@example.com");
    assert_eq!(u.user_decoded().unwrap(), &b"null-\0-null"[..]);

    let u = p("sip:%61lice@atlanta.com");
    assert_eq!(
        (u.user, u.user_decoded().unwrap()),
        (b("%61lice"), Cow::Borrowed(&b"alice"[..]))
    );

    // §3.1.1.2: '?', ';' and ':' in userinfo; the password starts at the
    // first ':' and the '?' before the '@' is not a headers delimiter.
    let u = p("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com");
    assert_eq!(
        u.user,
        b("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    assert_eq!(u.password, b("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"));
    assert_eq!(
        (u.host, u.port, u.headers),
        (Host::Name(b"example.com"), None, None)
    );
    assert!(u.params.is_empty());

    let u = p("sip:user@example.com?Route=%3Csip:example.com%3E");
    assert_eq!(u.headers, b("Route=%3Csip:example.com%3E"));
    assert!(u.params.is_empty());
}

#[test]
fn hosts_and_ports() {
    assert_eq!(
        p("sip:192.0.2.1").host,
        Host::V4(Ipv4Addr::new(192, 0, 2, 1))
    );
    assert_eq!(
        p("sip:010.0.0.255:0").host,
        Host::V4(Ipv4Addr::new(10, 0, 0, 255))
    );
    assert_eq!(p("sip:x:65535").port, Some(65535));
    assert_eq!(p("sip:x:00005060").port, Some(5060));
    assert_eq!(
        p("sip:my_host.example.com.").host,
        Host::Name(b"my_host.example.com.")
    );
    assert_eq!(p("sip:1.2.3.4a").host, Host::Name(b"1.2.3.4a"));
    for s in [
        "sip:1.2.3.999",
        "sip:1.2.3",
        "sip:1.2.3.4.5",
        "sip:1.2..4",
        "sip:0001.2.3.4",
    ] {
        assert_eq!(err(s), UriError::Malformed, "{s}");
    }
    for s in [
        "sip:x:",
        "sip:x:65536",
        "sip:x:5o60",
        "sip:x:-1",
        "sip:x:99999999999",
        "sip:x:5060:5061",
    ] {
        assert_eq!(err(s), UriError::Malformed, "{s}");
    }
}

#[test]
fn ipv6_references_rfc5118() {
    let a: Ipv6Addr = "2001:db8::10".parse().unwrap();
    let u = p("sip:[2001:db8::10]");
    assert_eq!((u.host, u.port), (Host::V6(b"2001:db8::10", a), None));
    let u = p("sip:[2001:db8::10]:5070");
    assert_eq!((u.host, u.port), (Host::V6(b"2001:db8::10", a), Some(5070)));
    // §4.3: the ":5070" is inside the brackets, so it is address, not port.
    let u = p("sip:[2001:db8::10:5070]");
    assert_eq!(
        (u.host, u.port),
        (
            Host::V6(b"2001:db8::10:5070", "2001:db8::10:5070".parse().unwrap()),
            None
        )
    );
    // §4.10: three colons are tolerated and name the same address.
    let u = p("sip:[2001:db8:::192.0.2.1]");
    let two = p("sip:[2001:db8::192.0.2.1]");
    assert_eq!(
        u.host,
        Host::V6(
            b"2001:db8:::192.0.2.1",
            "2001:db8::c000:201".parse().unwrap()
        )
    );
    assert!(u.equivalent(&two));
    assert_eq!(written(&u), "sip:[2001:db8:::192.0.2.1]");
    let u = p("sip:alice@[::ffff:192.0.2.10];maddr=[2001:db8::1]");
    assert_eq!(
        u.host,
        Host::V6(
            b"::ffff:192.0.2.10",
            Ipv4Addr::new(192, 0, 2, 10).to_ipv6_mapped()
        )
    );
    assert_eq!(u.maddr(), b("[2001:db8::1]"));
    assert!(p("sip:[2001:DB8::10]").equivalent(&p("sip:[2001:db8:0::10]")));
    // §4.2: an IPv6 address needs its brackets.
    for s in [
        "sip:2001:db8::10",
        "sip:[2001:db8::10",
        "sip:[2001:db8::10]x",
        "sip:[2001:db8::10]:",
        "sip:[]",
        "sip:[2001:db8::1::2]",
        "sip:[2001:db8::::1]",
        "sip:[fe80::1%25eth0]",
        "sip:[1:2:3:4:5:6:7:8:9:10:11:12:13:14:15:16:17:18:19:20:21:22:23:24:25]",
    ] {
        assert_eq!(err(s), UriError::Malformed, "{s}");
    }
}

#[test]
fn uri_parameters() {
    let u = p("sip:x;transport=TLS;maddr=239.255.255.1;ttl=15;user=phone;method=INVITE;lr;gr=urn:uuid:f81d;%61=%62");
    assert_eq!(u.transport(), b("TLS"));
    assert_eq!(u.maddr(), b("239.255.255.1"));
    assert_eq!(u.user_param(), b("phone"));
    assert_eq!(u.param("gr"), Some(b("urn:uuid:f81d")));
    assert_eq!(u.param("%61"), Some(b("%62")));
    assert!(u.lr());
    for s in [
        "sip:x;;lr",
        "sip:x;",
        "sip:x;a=",
        "sip:x;=a",
        "sip:x;a=b=c",
        "sip:x;a\"b",
        "sip:x;a=\"b\"",
        "sip:x;a=b@c@d",
    ] {
        assert_eq!(err(s), UriError::Malformed, "{s}");
    }
}

#[test]
fn headers_component() {
    let u = p("sip:x?a=&b=c%20d&to=sip:bob%40biloxi.com");
    assert_eq!(u.headers, b("a=&b=c%20d&to=sip:bob%40biloxi.com"));
    for s in [
        "sip:x?",
        "sip:x?a",
        "sip:x?=b",
        "sip:x?a=b&",
        "sip:x?a=b&&c=d",
        "sip:x?a=b=c",
        "sip:x?a=<b>",
        "sip:x?a=b c",
    ] {
        assert_eq!(err(s), UriError::Malformed, "{s}");
    }
}

#[test]
fn tel_uris_rfc3966() {
    let u = p("tel:+1-201-555-0123;phone-context=x");
    assert_eq!(
        (u.scheme, u.user, u.password),
        (Scheme::Tel, b("+1-201-555-0123"), None)
    );
    assert_eq!((u.host, u.port, u.headers), (Host::None, None, None));
    assert_eq!(u.param("phone-context"), Some(b("x")));
    let u = p("tel:7042;phone-context=example.com;ext=1-23");
    assert_eq!((u.user, u.param("ext")), (b("7042"), Some(b("1-23"))));
    assert_eq!(p("tel:*69#;isub=%41").user, b("*69#"));
    for s in [
        "tel:",
        "tel:+",
        "tel:+-",
        "tel:+1a",
        "tel:--",
        "tel:+1?x=y",
        "tel:+1;a=b?x=y",
        "tel:1@x",
        "tel:+1;",
        "tel:+1 2",
    ] {
        assert_eq!(err(s), UriError::Malformed, "{s}");
    }
    assert!(equiv("tel:+1-201-555-0123", "tel:+1(201)555.0123"));
    assert!(equiv(
        "tel:7042;phone-context=EXAMPLE.com",
        "tel:70-42;phone-context=example.com"
    ));
    assert!(equiv(
        "tel:7042;ext=12;phone-context=+1-201",
        "tel:7042;phone-context=+1.201;ext=1-2"
    ));
    assert!(equiv("tel:abc;phone-context=x", "tel:ABC;phone-context=x"));
    assert!(!equiv("tel:+7042", "tel:7042"));
    assert!(!equiv("tel:+1-201", "tel:+1-202"));
    assert!(!equiv(
        "tel:7042;phone-context=a.com",
        "tel:7042;phone-context=ac.om"
    ));
    assert!(!equiv("tel:+1;ext=1", "tel:+1"));
    assert!(!equiv("tel:+1", "sip:+1@x"));
}

#[test]
fn rfc3261_equivalent_sets() {
    assert!(equiv(
        "sip:%61lice@atlanta.com;transport=TCP",
        "sip:alice@AtLanTa.CoM;Transport=tcp"
    ));
    assert!(equiv(
        "sip:carol@chicago.com",
        "sip:carol@chicago.com;newparam=5"
    ));
    assert!(equiv(
        "sip:carol@chicago.com",
        "sip:carol@chicago.com;security=on"
    ));
    assert!(equiv(
        "sip:carol@chicago.com;newparam=5",
        "sip:carol@chicago.com;security=on"
    ));
    assert!(equiv(
        "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
        "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"
    ));
    assert!(equiv(
        "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
        "sip:alice@atlanta.com?priority=urgent&subject=project%20x"
    ));
}

#[test]
fn rfc3261_non_equivalent_sets() {
    for (a, c) in [
        (
            "SIP:ALICE@AtLanTa.CoM;Transport=udp",
            "sip:alice@AtLanTa.CoM;Transport=UDP",
        ),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
        (
            "sip:bob@biloxi.com",
            "sip:bob@biloxi.com:6000;transport=tcp",
        ),
        (
            "sip:carol@chicago.com",
            "sip:carol@chicago.com?Subject=next%20meeting",
        ),
        ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
        (
            "sip:carol@chicago.com;security=on",
            "sip:carol@chicago.com;security=off",
        ),
    ] {
        assert!(!equiv(a, c), "{a} / {c}");
    }
    // ... while equality is not transitive:
    assert!(equiv(
        "sip:carol@chicago.com",
        "sip:carol@chicago.com;security=off"
    ));
}

#[test]
fn more_equivalence_rules() {
    assert!(!equiv("sip:alice@x", "sips:alice@x"));
    assert!(!equiv("sip:alice@x", "sip:x"));
    assert!(!equiv("sip:alice:a@x", "sip:alice@x"));
    assert!(equiv("sip:alice:%61@x", "sip:alice:a@x"));
    assert!(!equiv("sip:alice:A@x", "sip:alice:a@x"));
    // Every one of user, ttl, method, maddr, transport counts even if one-sided.
    for n in [
        "user=phone",
        "ttl=1",
        "method=INVITE",
        "maddr=1.2.3.4",
        "transport=udp",
    ] {
        assert!(!equiv("sip:x", &format!("sip:x;{n}")), "{n}");
        assert!(
            equiv(
                &format!("sip:x;{n}"),
                &format!("sip:X;{}", n.to_uppercase())
            ),
            "{n}"
        );
    }
    assert!(equiv("sip:x;transport=%74cp", "sip:x;TRANSPORT=TCP"));
    assert!(equiv("sip:x;%6Cr", "sip:x;lr"));
    assert!(!equiv("sip:x;lr", "sip:x;lr=on"));
    assert!(!equiv("sip:x;user=phone", "sip:x;user"));
    assert!(!equiv("sip:1.2.3.4", "sip:[::ffff:1.2.3.4]"));
    assert!(equiv("sip:192.0.2.1", "sip:192.000.2.001"));
    // Headers: names ignore case (and compact forms), values do not.
    assert!(equiv("sip:x?Subject=a", "sip:x?subject=%61"));
    assert!(equiv("sip:x?s=a", "sip:x?Subject=a"));
    assert!(!equiv("sip:x?subject=a", "sip:x?subject=A"));
    assert!(!equiv("sip:x?a=1&b=2", "sip:x?a=1"));
    assert!(!equiv("sip:x?a=1&a=1", "sip:x?a=1&b=1"));
    // Only the first occurrence of a repeated parameter counts, so a URI is
    // always equivalent to itself (found by proptest).
    assert!(equiv("sip:x;a;A=1", "sip:x;a;A=1"));
    assert!(equiv("sip:x;a;A=1", "sip:x;a;a=2"));
}

#[test]
fn write_to_and_display_are_canonical() {
    let u = p("SIP:alice:pw@AtLanTa.CoM:05060;Transport=tcp?a=%3C");
    assert_eq!(
        written(&u),
        "sip:alice:pw@AtLanTa.CoM:5060;Transport=tcp?a=%3C"
    );
    assert_eq!(u.to_string(), written(&u));
    assert_eq!(written(&p("sip:010.0.0.1")), "sip:10.0.0.1");
    assert_eq!(written(&p("TEL:+1-2;ext=3")), "tel:+1-2;ext=3");
    // A hand-built IPv6 host without text is written from the address.
    let hand = Uri {
        host: Host::V6(b"", Ipv6Addr::LOCALHOST),
        ..p("sips:x")
    };
    assert_eq!(hand.to_string(), "sips:[::1]");
}

// ---- property tests ----

const ALNUM: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

fn from_set(extra: &'static str, min: usize, max: usize) -> impl Strategy<Value = String> {
    let chars: Vec<char> = ALNUM.chars().chain(extra.chars()).collect();
    let unit = prop_oneof![
        6 => proptest::sample::select(chars).prop_map(String::from),
        1 => (any::<u8>(), any::<bool>()).prop_map(|(b, up)| if up { format!("%{b:02X}") } else { format!("%{b:02x}") }),
    ];
    proptest::collection::vec(unit, min..max).prop_map(|v| v.concat())
}

#[derive(Debug, Clone)]
enum GenHost {
    Name(String),
    V4(Ipv4Addr),
    V6(String, Ipv6Addr),
}

fn gen_host() -> impl Strategy<Value = GenHost> {
    prop_oneof![
        ("([a-z0-9][a-zA-Z0-9_-]{0,8}\\.){0,3}[a-zA-Z][a-zA-Z0-9-]{0,8}\\.?")
            .prop_map(GenHost::Name),
        any::<[u8; 4]>().prop_map(|o| GenHost::V4(Ipv4Addr::from(o))),
        any::<[u16; 8]>().prop_map(|s| {
            let a = Ipv6Addr::from(s);
            GenHost::V6(a.to_string(), a)
        }),
        any::<[u8; 4]>().prop_map(|o| {
            let a = Ipv4Addr::from(o).to_ipv6_mapped();
            GenHost::V6(a.to_string(), a)
        }),
    ]
}

/// `;name[=value]` text with names and values lex::Params can represent.
fn gen_params(tel: bool) -> impl Strategy<Value = String> {
    let name = if tel {
        "[a-zA-Z][a-zA-Z0-9-]{0,6}".boxed()
    } else {
        from_set("-.!*_+~'", 1, 6).boxed()
    };
    let value = prop_oneof![
        3 => from_set("-.!*_+~':", 1, 8),
        1 => any::<[u16; 8]>().prop_map(|s| format!("[{}]", Ipv6Addr::from(s))),
    ];
    let param = (name, proptest::option::of(value)).prop_map(|(n, v)| match v {
        Some(v) => format!(";{n}={v}"),
        None => format!(";{n}"),
    });
    proptest::collection::vec(param, 0..4).prop_map(|v| v.concat())
}

fn gen_headers() -> impl Strategy<Value = Option<String>> {
    let hnv = "-_.!~*'()[]/?:+$";
    let header = (from_set(hnv, 1, 6), from_set(hnv, 0, 6)).prop_map(|(n, v)| format!("{n}={v}"));
    proptest::option::of(proptest::collection::vec(header, 1..4).prop_map(|v| v.join("&")))
}

#[derive(Debug, Clone)]
struct GenSip {
    scheme: &'static str,
    user: Option<(String, Option<String>)>,
    host: GenHost,
    port: Option<u16>,
    params: String,
    headers: Option<String>,
}

impl GenSip {
    fn text(&self) -> String {
        let mut s = format!("{}:", self.scheme);
        if let Some((user, password)) = &self.user {
            s += user;
            if let Some(pw) = password {
                s = s + ":" + pw;
            }
            s += "@";
        }
        match &self.host {
            GenHost::Name(n) => s += n,
            GenHost::V4(a) => s += &a.to_string(),
            GenHost::V6(t, _) => s += &format!("[{t}]"),
        }
        if let Some(port) = self.port {
            s += &format!(":{port}");
        }
        s += &self.params;
        if let Some(h) = &self.headers {
            s = s + "?" + h;
        }
        s
    }
}

fn gen_sip() -> impl Strategy<Value = GenSip> {
    let user = (
        from_set("-_.!~*'()&=+$,;?/", 1, 10),
        proptest::option::of(from_set("-_.!~*'()&=+$,", 0, 8)),
    );
    (
        proptest::sample::select(vec!["sip", "sips", "SIP", "Sips"]),
        proptest::option::of(user),
        gen_host(),
        proptest::option::of(any::<u16>()),
        gen_params(false),
        gen_headers(),
    )
        .prop_map(|(scheme, user, host, port, params, headers)| GenSip {
            scheme,
            user,
            host,
            port,
            params,
            headers,
        })
}

fn gen_tel() -> impl Strategy<Value = (String, String)> {
    let number = prop_oneof![
        "\\+[0-9().-]{0,6}[0-9][0-9().-]{0,6}",
        "[0-9a-fA-F*#().-]{0,6}[0-9a-fA-F*#][0-9a-fA-F*#().-]{0,6}"
    ];
    (number, gen_params(true))
}

/// Every byte of the decoded user re-escaped: must stay equivalent.
fn escape_all(s: &str) -> String {
    percent_decode(s.as_bytes())
        .iter()
        .map(|b| format!("%{b:02x}"))
        .collect()
}

fn round_trips(u: &Uri<'_>) -> Result<(), TestCaseError> {
    let text = written(u);
    let again = Uri::parse(text.as_bytes());
    prop_assert_eq!(again, Ok(*u), "{}", text);
    prop_assert!(u.equivalent(u));
    Ok(())
}

proptest! {
    // Failures are kept next to this file (uri_tests.proptest-regressions)
    // rather than in a top-level folder.
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]
    #[test]
    fn generated_sip_uris_parse_to_their_components(g in gen_sip()) {
        let text = g.text();
        let u = Uri::parse(text.as_bytes());
        prop_assert!(u.is_ok(), "{} -> {:?}", text, u);
        let u = u.unwrap();
        let scheme = if g.scheme.eq_ignore_ascii_case("sips") { Scheme::Sips } else { Scheme::Sip };
        prop_assert_eq!(u.scheme, scheme);
        prop_assert_eq!(u.user, g.user.as_ref().map(|(n, _)| n.as_bytes()));
        prop_assert_eq!(u.password, g.user.as_ref().and_then(|(_, pw)| pw.as_deref()).map(str::as_bytes));
        let host = match &g.host {
            GenHost::Name(n) => Host::Name(n.as_bytes()),
            GenHost::V4(a) => Host::V4(*a),
            GenHost::V6(t, a) => Host::V6(t.as_bytes(), *a),
        };
        prop_assert_eq!(u.host, host);
        prop_assert_eq!(u.port, g.port);
        prop_assert_eq!(u.params.as_bytes(), g.params.as_bytes());
        prop_assert_eq!(u.headers, g.headers.as_deref().map(str::as_bytes));
        round_trips(&u)?;
    }

    #[test]
    fn equivalence_survives_escaping_and_case(g in gen_sip()) {
        let text = g.text();
        let u = Uri::parse(text.as_bytes()).unwrap();
        // Escape the whole user, upper-case the host and the parameters.
        let mut alt = g.clone();
        alt.scheme = if u.scheme == Scheme::Sips { "SIPS" } else { "sip" };
        alt.user = g.user.as_ref().map(|(n, pw)| (escape_all(n), pw.clone()));
        if let GenHost::Name(n) = &g.host {
            alt.host = GenHost::Name(n.to_ascii_uppercase());
        }
        alt.params = g.params.to_ascii_uppercase();
        let alt_text = alt.text();
        let v = Uri::parse(alt_text.as_bytes()).unwrap();
        prop_assert!(u.equivalent(&v) && v.equivalent(&u), "{} / {}", text, alt_text);
        // A different port is never equivalent.
        let mut other = g.clone();
        other.port = Some(g.port.map_or(5060, |p| p.wrapping_add(1)));
        let other_text = other.text();
        prop_assert!(!u.equivalent(&Uri::parse(other_text.as_bytes()).unwrap()));
    }

    #[test]
    fn generated_tel_uris_parse_to_their_components((number, params) in gen_tel()) {
        let text = format!("tel:{number}{params}");
        let u = Uri::parse(text.as_bytes());
        prop_assert!(u.is_ok(), "{} -> {:?}", text, u);
        let u = u.unwrap();
        prop_assert_eq!(u.scheme, Scheme::Tel);
        prop_assert_eq!(u.user, Some(number.as_bytes()));
        prop_assert_eq!((u.host, u.port, u.headers, u.password), (Host::None, None, None, None));
        prop_assert_eq!(u.params.as_bytes(), params.as_bytes());
        round_trips(&u)?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(s in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(u) = Uri::parse(&s) {
            round_trips(&u)?;
        }
    }

    #[test]
    fn near_miss_uris_never_panic(
        scheme in proptest::sample::select(vec!["sip:", "sips:", "tel:", "x:", ""]),
        body in "[a-f0-9@:;=?&%.\\[\\]+#*() -]{0,40}",
    ) {
        let text = format!("{scheme}{body}");
        if let Ok(u) = Uri::parse(text.as_bytes()) {
            round_trips(&u)?;
            let _ = u.user_decoded();
        }
    }
}
