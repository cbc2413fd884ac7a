//! Whole-module tests: RFC vectors, challenge → response → verdict round
//! trips, every verdict, and hostile input.

use proptest::prelude::*;

use super::digest::{self, QopAuth};
use super::*;

const REALM: &str = "siphon.test";
const SECRET: [u8; 32] = [42; 32];
const NOW: u64 = 1_700_000_000;
const LIFETIME: u64 = 300;
const URI: &str = "sip:siphon.test";

fn users() -> Users {
    let mut u = Users::new();
    u.insert("alice".into(), Credential::password("wonderland"));
    u.insert(
        "bob".into(),
        Credential::ha1(
            Some(ha1_hex(Algorithm::Md5, "bob", REALM, "builder")),
            Some(ha1_hex(Algorithm::Sha256, "bob", REALM, "builder").to_uppercase()),
        ),
    );
    u.insert(
        "carol".into(),
        Credential::ha1(Some(ha1_hex(Algorithm::Md5, "carol", REALM, "c")), None),
    );
    u.insert("a\"b\\c".into(), Credential::password("quoted"));
    u
}

fn auth() -> Auth {
    Auth::new(REALM.into(), SECRET, LIFETIME, users(), 1000)
}

/// The challenge for `alg` from `a`, issued at `at`.
fn challenge(a: &Auth, alg: Algorithm, at: u64) -> String {
    let [sha, md5]: [String; 2] = a.challenges(at, false).try_into().unwrap();
    match alg {
        Algorithm::Sha256 => sha,
        Algorithm::Md5 => md5,
    }
}

/// A client's answer to `ch` for REGISTER to [`URI`].
fn answer(ch: &str, user: &str, password: &str, nc: u32) -> String {
    client_response(ch, user, password, "REGISTER", URI, "0a4f113b", nc).unwrap()
}

fn verify(a: &Auth, header: &str, now: u64) -> Verdict {
    a.verify(header.as_bytes(), b"REGISTER", URI.as_bytes(), now)
}

fn ok(user: &str) -> Verdict {
    Verdict::Ok {
        username: user.into(),
    }
}

const BOTH: [Algorithm; 2] = [Algorithm::Md5, Algorithm::Sha256];

// RFC 7616 §3.9.1: the nonce is not one of ours, so the response function
// is checked directly.
#[test]
fn rfc7616_examples() {
    let nonce = b"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    let qop = QopAuth {
        nc: b"00000001",
        cnonce: b"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    };
    let cases = [
        (Algorithm::Md5, "8ca523f5e9506fed4657c9700eebdbec"),
        (
            Algorithm::Sha256,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
        ),
    ];
    for (alg, expected) in cases {
        let ha1 = digest::ha1(alg, b"Mufasa", b"http-auth@example.org", b"Circle of Life");
        let r = digest::response(alg, &ha1, nonce, Some(qop), b"GET", b"/dir/index.html");
        assert_eq!(r.as_str(), expected, "{alg:?}");
    }
}

// RFC 2617 §3.5.
#[test]
fn rfc2617_example() {
    let alg = Algorithm::Md5;
    let ha1 = digest::ha1(alg, b"Mufasa", b"testrealm@host.com", b"Circle Of Life");
    assert_eq!(ha1.as_str(), "939e7578ed9e3c518a452acee763bce9");
    let qop = QopAuth {
        nc: b"00000001",
        cnonce: b"0a4f113b",
    };
    let nonce = b"dcd98b7102dd2f0e8b11d0f600bfb0c093";
    let r = digest::response(alg, &ha1, nonce, Some(qop), b"GET", b"/dir/index.html");
    assert_eq!(r.as_str(), "6629fae49393a05397450978507c4ef1");

    // The same example through the client's header builder.
    let ch = "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
              nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", \
              opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"";
    let h = client_response(
        ch,
        "Mufasa",
        "Circle Of Life",
        "GET",
        "/dir/index.html",
        "0a4f113b",
        1,
    );
    assert_eq!(
        h.as_deref(),
        Ok("Digest username=\"Mufasa\", realm=\"testrealm@host.com\", \
            nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", \
            response=\"6629fae49393a05397450978507c4ef1\", algorithm=MD5, \
            cnonce=\"0a4f113b\", qop=auth, nc=00000001, \
            opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"")
    );
}

#[test]
fn challenges_offer_sha256_then_md5_with_one_fresh_nonce() {
    let a = auth();
    let [sha, md5]: [String; 2] = a.challenges(NOW, false).try_into().unwrap();
    let prefix = "Digest realm=\"siphon.test\", nonce=\"";
    assert!(sha.starts_with(prefix), "{sha}");
    assert!(
        sha.ends_with("\", algorithm=SHA-256, qop=\"auth\""),
        "{sha}"
    );
    assert!(md5.ends_with("\", algorithm=MD5, qop=\"auth\""), "{md5}");
    let nonce = |s: &str| s[prefix.len()..prefix.len() + 64].to_owned();
    assert_eq!(nonce(&sha), nonce(&md5));
    let [again, _]: [String; 2] = a.challenges(NOW, false).try_into().unwrap();
    assert_ne!(nonce(&again), nonce(&sha));
    let [stale_sha, stale_md5]: [String; 2] = a.challenges(NOW, true).try_into().unwrap();
    assert!(stale_sha.ends_with(", stale=true"));
    assert!(stale_md5.ends_with(", stale=true"));
    assert_eq!(a.realm(), REALM);
}

#[test]
fn round_trip_both_algorithms() {
    let a = auth();
    for alg in BOTH {
        let h = answer(&challenge(&a, alg, NOW), "alice", "wonderland", 1);
        assert!(h.contains(&format!("algorithm={}", alg.name())), "{h}");
        assert_eq!(verify(&a, &h, NOW + 1), ok("alice"), "{alg:?}");
    }
    assert_eq!(a.tracked_nonces(), 2);
}

#[test]
fn wrong_password_and_unknown_user() {
    let a = auth();
    for alg in BOTH {
        let ch = challenge(&a, alg, NOW);
        let wrong = answer(&ch, "alice", "Wonderland", 1);
        assert_eq!(verify(&a, &wrong, NOW), Verdict::WrongPassword);
        let nobody = answer(&ch, "mallory", "wonderland", 1);
        assert_eq!(verify(&a, &nobody, NOW), Verdict::UnknownUser);
        // Usernames are exact.
        let case = answer(&ch, "Alice", "wonderland", 1);
        assert_eq!(verify(&a, &case, NOW), Verdict::UnknownUser);
    }
    // One reason phrase for both, so the wire does not list users.
    assert_eq!(
        Verdict::WrongPassword.reason(),
        Verdict::UnknownUser.reason()
    );
    // Failures are not remembered: the right answer still works after.
    let ch = challenge(&a, Algorithm::Md5, NOW);
    assert_eq!(
        verify(&a, &answer(&ch, "alice", "x", 1), NOW),
        Verdict::WrongPassword
    );
    assert_eq!(
        verify(&a, &answer(&ch, "alice", "wonderland", 1), NOW),
        ok("alice")
    );
}

#[test]
fn replayed_nc_is_refused() {
    let a = auth();
    for alg in BOTH {
        let h = answer(&challenge(&a, alg, NOW), "alice", "wonderland", 1);
        assert_eq!(verify(&a, &h, NOW), ok("alice"));
        assert_eq!(verify(&a, &h, NOW), Verdict::Replay);
        assert_eq!(verify(&a, &h, NOW + 10), Verdict::Replay);
    }
}

#[test]
fn increasing_nc_is_accepted() {
    let a = auth();
    let ch = challenge(&a, Algorithm::Sha256, NOW);
    for nc in [1, 2, 3, 7, 0x10, 0xffff_ffff] {
        assert_eq!(
            verify(&a, &answer(&ch, "alice", "wonderland", nc), NOW),
            ok("alice"),
            "{nc}"
        );
    }
    // Lower than the highest seen, even if never seen itself.
    assert_eq!(
        verify(&a, &answer(&ch, "alice", "wonderland", 5), NOW),
        Verdict::Replay
    );
    // nc starts at 1.
    let fresh = challenge(&a, Algorithm::Sha256, NOW);
    assert_eq!(
        verify(&a, &answer(&fresh, "alice", "wonderland", 0), NOW),
        Verdict::Replay
    );
}

#[test]
fn clients_challenged_in_the_same_second_count_separately() {
    let a = auth();
    let one = challenge(&a, Algorithm::Md5, NOW);
    let two = challenge(&a, Algorithm::Md5, NOW);
    assert_eq!(
        verify(&a, &answer(&one, "alice", "wonderland", 1), NOW),
        ok("alice")
    );
    assert_eq!(
        verify(&a, &answer(&two, "bob", "builder", 1), NOW),
        ok("bob")
    );
}

#[test]
fn expired_nonce_is_stale_only_with_the_right_password() {
    let a = auth();
    for alg in BOTH {
        let ch = challenge(&a, alg, NOW);
        let h = answer(&ch, "alice", "wonderland", 1);
        assert_eq!(verify(&a, &h, NOW + LIFETIME + 1), Verdict::Stale);
        let wrong = answer(&ch, "alice", "nope", 1);
        assert_eq!(
            verify(&a, &wrong, NOW + LIFETIME + 1),
            Verdict::WrongPassword
        );
        // The last second of the lifetime still counts.
        assert_eq!(verify(&a, &h, NOW + LIFETIME), ok("alice"));
    }
}

#[test]
fn future_nonce_beyond_skew_is_bad() {
    let a = auth();
    let soon = answer(
        &challenge(&a, Algorithm::Md5, NOW + 5),
        "alice",
        "wonderland",
        1,
    );
    assert_eq!(verify(&a, &soon, NOW), ok("alice"));
    let later = answer(
        &challenge(&a, Algorithm::Md5, NOW + 6),
        "alice",
        "wonderland",
        1,
    );
    assert_eq!(verify(&a, &later, NOW), Verdict::BadNonce);
}

#[test]
fn forged_and_foreign_nonces_are_bad() {
    let a = auth();
    let good = challenge(&a, Algorithm::Md5, NOW);
    let start = good.find("nonce=\"").unwrap() + 7;
    let nonce = &good[start..start + 64];
    // A later issue time with the old MAC, the response right for it.
    let mut forged = nonce.as_bytes().to_vec();
    forged[15] = if forged[15] == b'f' { b'e' } else { b'f' };
    let forged = String::from_utf8(forged).unwrap();
    // A nonce from a proxy with another secret; garbage; an RFC example.
    let other = Auth::new(REALM.into(), [1; 32], LIFETIME, users(), 10);
    let other_nonce = {
        let ch = challenge(&other, Algorithm::Md5, NOW);
        ch[start..start + 64].to_owned()
    };
    for n in [
        forged.as_str(),
        other_nonce.as_str(),
        "",
        "xyz",
        "dcd98b7102dd2f0e8b11d0f600bfb0c093",
    ] {
        let ch = format!("Digest realm=\"{REALM}\", nonce=\"{n}\", qop=\"auth\"");
        let h = answer(&ch, "alice", "wonderland", 1);
        assert_eq!(verify(&a, &h, NOW), Verdict::BadNonce, "{n}");
    }
}

#[test]
fn other_realm_is_ignored() {
    let a = auth();
    let elsewhere = Auth::new("elsewhere.test".into(), SECRET, LIFETIME, users(), 10);
    let h = answer(
        &challenge(&elsewhere, Algorithm::Md5, NOW),
        "alice",
        "wonderland",
        1,
    );
    assert_eq!(verify(&a, &h, NOW), Verdict::OtherRealm);
    // Realms are compared exactly.
    let upper = h.replace("siphon.test", "SIPHON.TEST");
    assert_eq!(verify(&a, &upper, NOW), Verdict::OtherRealm);
    // Even if the rest would not verify here.
    let partial = "Digest realm=\"elsewhere.test\", username=\"x\"";
    assert_eq!(verify(&a, partial, NOW), Verdict::OtherRealm);
}

#[test]
fn uri_must_be_the_request_uri() {
    let a = auth();
    let h = answer(
        &challenge(&a, Algorithm::Sha256, NOW),
        "alice",
        "wonderland",
        1,
    );
    for other in [
        "sip:other.test",
        "sip:SIPHON.TEST",
        "sip:siphon.test;transport=tcp",
        "",
    ] {
        let v = a.verify(h.as_bytes(), b"REGISTER", other.as_bytes(), NOW);
        assert_eq!(v, Verdict::UriMismatch, "{other}");
    }
    // The method is bound by the response, not compared.
    let v = a.verify(h.as_bytes(), b"INVITE", URI.as_bytes(), NOW);
    assert_eq!(v, Verdict::WrongPassword);
    assert_eq!(verify(&a, &h, NOW), ok("alice"));
}

#[test]
fn ha1_credentials() {
    let a = auth();
    for alg in BOTH {
        let h = answer(&challenge(&a, alg, NOW), "bob", "builder", 1);
        assert_eq!(verify(&a, &h, NOW), ok("bob"), "{alg:?}");
        let wrong = answer(&challenge(&a, alg, NOW), "bob", "builder!", 1);
        assert_eq!(verify(&a, &wrong, NOW), Verdict::WrongPassword, "{alg:?}");
    }
    // carol has only an MD5 HA1.
    let md5 = answer(&challenge(&a, Algorithm::Md5, NOW), "carol", "c", 1);
    assert_eq!(verify(&a, &md5, NOW), ok("carol"));
    for pw in ["c", ""] {
        // Not even the stand-in HA1 (empty password) may match.
        let sha = answer(&challenge(&a, Algorithm::Sha256, NOW), "carol", pw, 1);
        assert_eq!(verify(&a, &sha, NOW), Verdict::WrongPassword, "{pw:?}");
    }
    // A malformed stored HA1 never matches.
    let mut u = Users::new();
    u.insert("dan".into(), Credential::ha1(Some("zz".into()), None));
    let a = Auth::new(REALM.into(), SECRET, LIFETIME, u, 10);
    let h = answer(&challenge(&a, Algorithm::Md5, NOW), "dan", "", 1);
    assert_eq!(verify(&a, &h, NOW), Verdict::WrongPassword);
}

#[test]
fn users_file_feeds_auth() {
    let text = format!(
        "# test users\nalice:password=wonderland\nbob:ha1={};ha1_sha256={}\n",
        ha1_hex(Algorithm::Md5, "bob", REALM, "builder"),
        ha1_hex(Algorithm::Sha256, "bob", REALM, "builder"),
    );
    let users = parse_users(&text).unwrap();
    let a = Auth::new(REALM.into(), SECRET, LIFETIME, users, 1000);
    for (user, pw) in [("alice", "wonderland"), ("bob", "builder")] {
        for alg in BOTH {
            let h = answer(&challenge(&a, alg, NOW), user, pw, 1);
            assert_eq!(verify(&a, &h, NOW), ok(user));
        }
    }
    assert_eq!(
        parse_users("alice:password=x\n\nbob:ha1=abc")
            .err()
            .as_deref(),
        Some("line 3: ha1 must be 32 hex digits")
    );
}

#[test]
fn without_qop_only_the_nonce_is_checked() {
    let a = auth();
    for alg in BOTH {
        let ours = challenge(&a, alg, NOW).replace(", qop=\"auth\"", "");
        let h = answer(&ours, "alice", "wonderland", 1);
        assert!(!h.contains("qop") && !h.contains("nc="), "{h}");
        assert_eq!(verify(&a, &h, NOW), ok("alice"));
        // Documented: no count, so no replay detection.
        assert_eq!(verify(&a, &h, NOW), ok("alice"));
        assert_eq!(verify(&a, &h, NOW + LIFETIME + 1), Verdict::Stale);
        let wrong = answer(&ours, "alice", "x", 1);
        assert_eq!(verify(&a, &wrong, NOW), Verdict::WrongPassword);
    }
    // Without a count only the failures are remembered: one nonce each.
    assert_eq!(a.tracked_nonces(), 2);
}

#[test]
fn a_nonce_serves_a_bounded_number_of_failures() {
    let a = auth().with_max_nonce_failures(2);
    for alg in BOTH {
        let ch = challenge(&a, alg, NOW);
        for nc in 1..=2 {
            let wrong = answer(&ch, "alice", "guess", nc);
            assert_eq!(verify(&a, &wrong, NOW), Verdict::WrongPassword);
        }
        let unknown = answer(&ch, "mallory", "guess", 3);
        assert_eq!(verify(&a, &unknown, NOW), Verdict::Stale, "worn out");
        let right = answer(&ch, "alice", "wonderland", 4);
        assert_eq!(verify(&a, &right, NOW), Verdict::Stale, "even the password");
        let fresh = challenge(&a, alg, NOW);
        let right = answer(&fresh, "alice", "wonderland", 1);
        assert_eq!(verify(&a, &right, NOW), ok("alice"));
    }
}

#[test]
fn a_username_that_keeps_failing_is_locked_whoever_guesses() {
    // 3 failures in 60 s lock the name for 300 s; each guess on a fresh
    // challenge (a guesser on many addresses, each nonce used once).
    let a = auth().with_user_lockout(3, 60, 300, 100);
    let alg = Algorithm::Md5;
    for i in 0..3 {
        let wrong = answer(&challenge(&a, alg, NOW), "alice", "guess", 1);
        assert_eq!(verify(&a, &wrong, NOW + i), Verdict::WrongPassword);
    }
    // Now even the password fails, with the same verdict; bob is not
    // locked, nor is an unknown name's answer any different.
    let right = answer(&challenge(&a, alg, NOW + 5), "alice", "wonderland", 1);
    assert_eq!(verify(&a, &right, NOW + 5), Verdict::WrongPassword);
    let bob = answer(&challenge(&a, alg, NOW + 5), "bob", "builder", 1);
    assert_eq!(verify(&a, &bob, NOW + 5), ok("bob"));
    for i in 0..4 {
        let ghost = answer(&challenge(&a, alg, NOW + 6), "ghost", "x", 1);
        let v = verify(&a, &ghost, NOW + 6 + i);
        let want = if i < 3 {
            Verdict::UnknownUser
        } else {
            Verdict::WrongPassword
        };
        assert_eq!(v, want, "{i}: both are the same 403 on the wire");
    }
    // The lock ends; the sweep forgets the names.
    let at = NOW + 2 + 300;
    let right = answer(&challenge(&a, alg, at), "alice", "wonderland", 1);
    assert_eq!(verify(&a, &right, at), ok("alice"));
    a.sweep(NOW + 10_000);
}

#[test]
fn sess_variants() {
    let a = auth();
    for alg in BOTH {
        let ch = challenge(&a, alg, NOW).replace(alg.name(), &format!("{}-sess", alg.name()));
        let h = answer(&ch, "bob", "builder", 1);
        assert!(h.contains("-sess"), "{h}");
        assert_eq!(verify(&a, &h, NOW), ok("bob"));
        // The -sess HA1 differs from the plain one: relabelling fails.
        let plain = h.replace("-sess", "");
        assert_eq!(verify(&a, &plain, NOW), Verdict::WrongPassword);
    }
}

#[test]
fn response_hex_is_case_insensitive() {
    let a = auth();
    let h = answer(
        &challenge(&a, Algorithm::Sha256, NOW),
        "alice",
        "wonderland",
        1,
    );
    let start = h.find("response=\"").unwrap() + 10;
    let upper = format!(
        "{}{}{}",
        &h[..start],
        h[start..start + 64].to_uppercase(),
        &h[start + 64..]
    );
    assert_ne!(upper, h);
    assert_eq!(verify(&a, &upper, NOW), ok("alice"));
}

#[test]
fn quoted_username_with_escapes() {
    let a = auth();
    let h = answer(&challenge(&a, Algorithm::Md5, NOW), "a\"b\\c", "quoted", 1);
    assert!(h.starts_with(r#"Digest username="a\"b\\c""#), "{h}");
    assert_eq!(verify(&a, &h, NOW), ok("a\"b\\c"));
}

#[test]
fn full_replay_window_forces_a_fresh_nonce() {
    let a = Auth::new(REALM.into(), SECRET, LIFETIME, users(), 1);
    let first = answer(
        &challenge(&a, Algorithm::Md5, NOW),
        "alice",
        "wonderland",
        1,
    );
    assert_eq!(verify(&a, &first, NOW), ok("alice"));
    let second = answer(
        &challenge(&a, Algorithm::Md5, NOW),
        "alice",
        "wonderland",
        1,
    );
    assert_eq!(verify(&a, &second, NOW), Verdict::Stale);
    assert_eq!(a.tracked_nonces(), 1);
    // The remembered nonce keeps working; once it expires it makes room.
    let first2 = answer(&challenge_for(&nonce_of(&first)), "alice", "wonderland", 2);
    assert_eq!(verify(&a, &first2, NOW), ok("alice"));
    let later = NOW + LIFETIME + 1;
    let third = answer(
        &challenge(&a, Algorithm::Md5, later),
        "alice",
        "wonderland",
        1,
    );
    assert_eq!(verify(&a, &third, later), ok("alice"));
    assert_eq!(a.tracked_nonces(), 1);
}

fn nonce_of(header: &str) -> String {
    let start = header.find("nonce=\"").map_or(0, |i| i + 7);
    header[start..].chars().take_while(|&c| c != '"').collect()
}

fn challenge_for(nonce: &str) -> String {
    format!("Digest realm=\"{REALM}\", nonce=\"{nonce}\", qop=\"auth\", algorithm=MD5")
}

#[test]
fn malformed_headers_say_why() {
    let a = auth();
    let ch = challenge(&a, Algorithm::Md5, NOW);
    let good = answer(&ch, "alice", "wonderland", 1);
    let nonce = nonce_of(&good);
    let resp = {
        let start = good.find("response=\"").unwrap() + 10;
        good[start..start + 32].to_owned()
    };
    let (user, realm) = ("username=\"alice\"", format!("realm=\"{REALM}\""));
    let (n, u, r) = (
        format!("nonce=\"{nonce}\""),
        format!("uri=\"{URI}\""),
        format!("response=\"{resp}\""),
    );
    let base = format!("{realm}, {n}, {u}");
    let full = format!("Digest {user}, {base}, {r}");
    let cases: Vec<(String, &str)> = vec![
        (
            "Basic YWxpY2U6d29uZGVybGFuZA==".into(),
            "not a Digest header",
        ),
        ("Digest".into(), "missing realm"),
        (format!("Digest {user}, {n}"), "missing realm"),
        (format!("Digest {base}, {r}"), "missing username"),
        (format!("Digest {user}, {realm}, {u}, {r}"), "missing nonce"),
        (format!("Digest {user}, {realm}, {n}, {r}"), "missing uri"),
        (format!("Digest {user}, {base}"), "missing response"),
        (
            format!("{full}, algorithm=SHA-512-256"),
            "unsupported algorithm",
        ),
        (
            format!("{full}, qop=auth-int, nc=00000001, cnonce=\"x\""),
            "unsupported qop",
        ),
        (format!("{full}, userhash=true"), "userhash not supported"),
        (format!("{full}, qop=auth, cnonce=\"x\""), "missing nc"),
        (format!("{full}, qop=auth, nc=1, cnonce=\"x\""), "bad nc"),
        (format!("{full}, qop=auth, nc=00000001"), "missing cnonce"),
        (format!("{full}, algorithm=MD5-sess"), "missing cnonce"),
        (
            format!("Digest {user}, {base}, response=\"xyz\""),
            "response not hex",
        ),
        (
            format!("Digest {user}, {base}, response=\"\""),
            "response not hex",
        ),
        (format!("{full}, algorithm=SHA-256"), "bad response length"),
        (format!("{full}, username=\"bob\""), "duplicate parameter"),
        (format!("Digest {user} {base}"), "expected comma"),
        // Any UTF-8 is a username; this one is unknown.
        (format!("Digest username=\"\u{fc}\", {base}, {r}"), ""),
    ];
    for (h, why) in cases {
        let v = verify(&a, &h, NOW);
        if why.is_empty() {
            assert_eq!(v, Verdict::UnknownUser, "{h}");
        } else {
            assert_eq!(v, Verdict::Malformed(why), "{h}");
            assert_eq!(v.reason(), why);
        }
    }
    // A username that is not UTF-8.
    let mut bytes = format!("Digest username=\"\u{1}\", {base}, {r}").into_bytes();
    let at = bytes.iter().position(|&b| b == 1).unwrap();
    bytes[at] = 0xff;
    let v = a.verify(&bytes, b"REGISTER", URI.as_bytes(), NOW);
    assert_eq!(v, Verdict::Malformed("username not UTF-8"));
    // Parameter names are case-insensitive, unknown ones ignored, and
    // quoted tokens accepted.
    let loose = good
        .replace("username=", "UserName=")
        .replace("qop=auth", "qop=\"auth\", foo=bar, x=\"y\"");
    assert_eq!(verify(&a, &loose, NOW), ok("alice"));
}

#[test]
fn truncations_and_byte_flips_never_panic_or_pass() {
    let a = auth();
    let good = answer(
        &challenge(&a, Algorithm::Sha256, NOW),
        "alice",
        "wonderland",
        1,
    );
    let bytes = good.as_bytes();
    for end in 0..bytes.len() {
        let v = a.verify(&bytes[..end], b"REGISTER", URI.as_bytes(), NOW);
        assert!(!matches!(v, Verdict::Ok { .. }), "{end}: {v:?}");
    }
    // Every byte replaced by a delimiter, a non-hex letter or a non-ASCII
    // byte: none of these keeps both the syntax and the signed values.
    for i in 0..bytes.len() {
        for b in [0u8, b'"', b'\\', b',', b'=', b' ', b'x', 0xff] {
            let mut m = bytes.to_vec();
            // A space may become an empty list element (RFC 7230 §7).
            if m[i] == b || (m[i] == b' ' && b == b',') {
                continue;
            }
            m[i] = b;
            let v = a.verify(&m, b"REGISTER", URI.as_bytes(), NOW);
            assert!(
                !matches!(v, Verdict::Ok { .. }),
                "{}",
                String::from_utf8_lossy(&m)
            );
        }
    }
}

#[test]
fn auth_is_shared_between_threads() {
    fn assert_sync<T: Send + Sync>() {}
    assert_sync::<Auth>();
    let a = std::sync::Arc::new(auth());
    let handles: Vec<_> = BOTH
        .iter()
        .chain(BOTH.iter())
        .map(|&alg| {
            let a = a.clone();
            std::thread::spawn(move || {
                let ch = challenge(&a, alg, NOW);
                (1..=50).all(|nc| {
                    verify(&a, &answer(&ch, "alice", "wonderland", nc), NOW) == ok("alice")
                })
            })
        })
        .collect();
    for h in handles {
        assert!(h.join().unwrap_or(false));
    }
    assert_eq!(a.tracked_nonces(), 4);
}

#[test]
fn algorithm_names() {
    assert_eq!(Algorithm::parse(b"md5"), Some(Algorithm::Md5));
    assert_eq!(Algorithm::parse(b"SHA-256"), Some(Algorithm::Sha256));
    assert_eq!(Algorithm::parse(b"sha-256"), Some(Algorithm::Sha256));
    assert_eq!(Algorithm::parse(b"MD5-sess"), None);
    assert_eq!(Algorithm::parse(b"SHA256"), None);
    assert_eq!(Algorithm::parse(b""), None);
    assert_eq!(
        Algorithm::parse_sess(b"sha-256-SESS"),
        Some((Algorithm::Sha256, true))
    );
    assert_eq!(Algorithm::parse_sess(b"-sess"), None);
    assert_eq!(Algorithm::Sha256.name(), "SHA-256");
}

#[test]
fn client_refuses_what_it_cannot_answer() {
    let cases = [
        ("Basic realm=\"x\"", "not a Digest header"),
        ("Digest nonce=\"n\"", "missing realm"),
        ("Digest realm=\"r\"", "missing nonce"),
        (
            "Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512",
            "unsupported algorithm",
        ),
        (
            "Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\"",
            "unsupported qop",
        ),
    ];
    for (ch, why) in cases {
        assert_eq!(
            client_response(ch, "u", "p", "REGISTER", URI, "c", 1),
            Err(why)
        );
    }
}

proptest! {
    #[test]
    fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let a = auth();
        let v = a.verify(&bytes, b"REGISTER", URI.as_bytes(), NOW);
        prop_assert!(!matches!(v, Verdict::Ok { .. }), "{:?}", v);
    }

    #[test]
    fn digest_shaped_input_never_panics(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("username".to_string()), Just("realm".to_string()),
                Just("nonce".to_string()), Just("uri".to_string()),
                Just("response".to_string()), Just("algorithm".to_string()),
                Just("qop".to_string()), Just("nc".to_string()),
                Just("cnonce".to_string()), Just("userhash".to_string()),
                "[a-z]{1,6}",
            ]
            .prop_flat_map(|n| ("[ \t\r\n]{0,2}", "[ -~]{0,40}", any::<bool>())
                .prop_map(move |(ws, v, q)| {
                    if q { format!("{n}{ws}=\"{v}\"") } else { format!("{n}={v}") }
                })),
            0..12,
        ),
    ) {
        let a = auth();
        let h = format!("Digest {}", parts.join(", "));
        let v = a.verify(h.as_bytes(), b"REGISTER", URI.as_bytes(), NOW);
        prop_assert!(!matches!(v, Verdict::Ok { .. }), "{:?}", v);
    }
}

#[test]
fn offered_algorithms_order_the_challenges_and_refuse_the_others() {
    let a = auth().with_algorithms(vec![Algorithm::Md5]);
    let chs = a.challenges(NOW, false);
    assert_eq!(chs.len(), 1);
    assert!(chs[0].contains("algorithm=MD5"), "{}", chs[0]);
    assert_eq!(
        verify(&a, &answer(&chs[0], "alice", "wonderland", 1), NOW),
        ok("alice")
    );
    let sha = chs[0].replace("algorithm=MD5", "algorithm=SHA-256");
    assert_eq!(
        verify(&a, &answer(&sha, "alice", "wonderland", 2), NOW),
        Verdict::Malformed("Digest Algorithm Not Offered")
    );
    let both = auth().with_algorithms(vec![Algorithm::Md5, Algorithm::Sha256]);
    let chs = both.challenges(NOW, false);
    assert!(chs[0].contains("algorithm=MD5") && chs[1].contains("algorithm=SHA-256"));
}
