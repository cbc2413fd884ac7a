//! The requests the UAC sends, written straight into a send buffer (no
//! per-message allocation), and the identifiers that tie answers back to
//! calls: the Call-ID carries the call number and the run's id, so an
//! answer finds its call by arithmetic instead of a hash lookup.
//!
//! Each request has its own branch (RFC 3261 §8.1.1.7): `.i` for INVITE,
//! `.o` for OPTIONS, `.a` for the ACK of a 2xx, `.b` for BYE; the ACK of a
//! non-2xx final response reuses the INVITE's (§17.1.1.3).
//!
//! REGISTERs (`Registers`) are tied to their attempt differently: a user
//! keeps one Call-ID for the whole run (`USER.RUNID@IP`, so the same
//! parser reads the user number) and its CSeq counts the rounds over the
//! users, so (user, CSeq) names the attempt (`RegisterPlan`). Their
//! branch is `.USER.CSEQ.r`.

use std::io::Write;

use siphon::sip::{Contact, Message, Span};

/// The user part the proxy's route matches (`user_prefix = "service"`).
pub const SERVICE: &str = "service";
/// Route set entries kept from a 2xx (more are not expected here).
const MAX_ROUTES: usize = 16;

/// An SDP offer like the one in sipp/uac.xml.
pub fn sdp(ip: &str) -> Vec<u8> {
    format!(
        "v=0\r\no=user1 53655765 2353687637 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    )
    .into_bytes()
}

/// Writes the UAC's requests for one source socket.
#[derive(Debug, Clone)]
pub struct Requests {
    /// This socket's address as text (`127.0.5.2:40001`).
    local: String,
    /// The UAC's IP as text (Call-ID host).
    ip: String,
    run: u32,
    /// Request-URI of new requests: `sip:service@PROXY` or `sip:PROXY`.
    ruri: String,
    /// Calls to registered users instead: `sip:user{n % count}@domain`.
    users: Option<(u64, String)>,
    sdp: Vec<u8>,
}

impl Requests {
    /// `service` is the Request-URI user, or None for a URI naming the
    /// proxy itself (OPTIONS).
    pub fn new(
        local: std::net::SocketAddr,
        proxy: std::net::SocketAddr,
        service: Option<&str>,
        run: u32,
    ) -> Requests {
        let ip = local.ip().to_string();
        Requests {
            local: local.to_string(),
            ruri: match service {
                Some(u) => format!("sip:{u}@{proxy}"),
                None => format!("sip:{proxy}"),
            },
            users: None,
            sdp: sdp(&ip),
            ip,
            run,
        }
    }

    /// Call registered users: call `n` goes to `sip:user{n % count}@domain`
    /// (Request-URI and To) instead of the configured service.
    pub fn with_users(mut self, count: u64, domain: &str) -> Requests {
        self.users = Some((count.max(1), domain.to_owned()));
        self
    }

    /// The Request-URI of call `n`'s INVITE.
    pub fn target(&self, n: u64) -> std::borrow::Cow<'_, str> {
        match &self.users {
            Some((count, domain)) => format!("sip:user{}@{domain}", n % count).into(),
            None => self.ruri.as_str().into(),
        }
    }

    /// The INVITE of call `n` (the same bytes on every retransmission).
    pub fn invite(&self, out: &mut Vec<u8>, n: u64) {
        let ruri = self.target(n);
        self.start_line(out, "INVITE", &ruri, n, 'i');
        let _ = write!(out, "To: <{ruri}>\r\n");
        self.tail(out, n, 1, "INVITE", &[], true);
    }

    /// OPTIONS number `n`.
    pub fn options(&self, out: &mut Vec<u8>, n: u64) {
        self.start_line(out, "OPTIONS", &self.ruri, n, 'o');
        let _ = write!(out, "To: <{}>\r\n", self.ruri);
        self.tail(out, n, 1, "OPTIONS", &[], false);
    }

    /// The ACK for `resp`, a final response to call `n`'s INVITE. For a
    /// 2xx it is a request of the dialog: a new branch, sent to the
    /// Contact with the route set (RFC 3261 §13.2.2.4); otherwise it is
    /// part of the INVITE transaction (§17.1.1.3).
    pub fn ack(&self, out: &mut Vec<u8>, n: u64, resp: &Message) {
        if resp.status().is_some_and(|s| (200..300).contains(&s)) {
            self.in_dialog(out, n, resp, "ACK", 1, 'a');
        } else {
            self.start_line(out, "ACK", &self.target(n), n, 'i');
            to_line(out, resp);
            self.tail(out, n, 1, "ACK", &[], false);
        }
    }

    /// The BYE of call `n`, in the dialog the 2xx `resp` set up.
    pub fn bye(&self, out: &mut Vec<u8>, n: u64, resp: &Message) {
        self.in_dialog(out, n, resp, "BYE", 2, 'b');
    }

    fn in_dialog(
        &self,
        out: &mut Vec<u8>,
        n: u64,
        resp: &Message,
        method: &str,
        seq: u32,
        b: char,
    ) {
        // Remote target: the Contact of the 2xx (§12.1.2); the route set
        // is its Record-Route in reverse.
        let fallback = self.target(n);
        let target = resp
            .contacts()
            .find_map(|c| match c {
                Ok(Contact::Addr(a)) => std::str::from_utf8(a.uri).ok(),
                _ => None,
            })
            .unwrap_or(&fallback);
        self.start_line(out, method, target, n, b);
        to_line(out, resp);
        // The route set: Record-Route of the 2xx, last first (§12.1.2).
        let mut spans = [Span::default(); MAX_ROUTES];
        let mut k = 0;
        for a in resp.record_routes().flatten().take(MAX_ROUTES) {
            spans[k] = a.span;
            k += 1;
        }
        let mut list = [&b""[..]; MAX_ROUTES];
        for (slot, span) in list.iter_mut().zip(spans[..k].iter().rev()) {
            *slot = resp.slice(*span);
        }
        self.tail(out, n, seq, method, &list[..k], false);
    }

    /// `METHOD uri SIP/2.0`, Via and From.
    fn start_line(&self, out: &mut Vec<u8>, method: &str, ruri: &str, n: u64, branch: char) {
        let (local, run) = (&self.local, self.run);
        let _ = write!(
            out,
            "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{run:08x}.{n}.{branch};rport\r\nFrom: <sip:loadgen@{local}>;tag={run:08x}.{n}\r\n"
        );
    }

    /// Call-ID, CSeq, Route, Contact, Max-Forwards and the body.
    fn tail(&self, out: &mut Vec<u8>, n: u64, seq: u32, method: &str, routes: &[&[u8]], sdp: bool) {
        let _ = write!(out, "Call-ID: ");
        write_call_id(out, n, self.run, &self.ip);
        let _ = write!(out, "\r\nCSeq: {seq} {method}\r\n");
        for r in routes {
            out.extend_from_slice(b"Route: ");
            out.extend_from_slice(r);
            out.extend_from_slice(b"\r\n");
        }
        let _ = write!(
            out,
            "Contact: <sip:loadgen@{}>\r\nMax-Forwards: 70\r\n",
            self.local
        );
        if sdp {
            let _ = write!(
                out,
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n",
                self.sdp.len()
            );
            out.extend_from_slice(&self.sdp);
        } else {
            out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
        }
    }
}

/// Which users one generator thread registers, and how its attempts map
/// to (user, CSeq): attempt `j` is user `first + j % count` in round
/// `j / count`, with CSeq `round + 1`. Users are split between threads so
/// that one user's REGISTERs always leave from one thread and socket, in
/// CSeq order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegisterPlan {
    pub first: u64,
    pub count: u64,
}

impl RegisterPlan {
    /// Thread `t` of `threads` over `users` users: a contiguous block,
    /// the first `users % threads` blocks one larger.
    pub fn split(users: u64, threads: u64, t: u64) -> RegisterPlan {
        let (base, extra) = (users / threads, users % threads);
        RegisterPlan {
            first: t * base + t.min(extra),
            count: base + u64::from(t < extra),
        }
    }

    /// The user and CSeq of attempt `j`.
    pub fn attempt(&self, j: u64) -> (u64, u32) {
        let round = j / self.count;
        (
            self.first + j % self.count,
            (round + 1).min(u32::MAX as u64) as u32,
        )
    }

    /// The attempt of `user` with `cseq`, when the user is this plan's.
    pub fn number(&self, user: u64, cseq: u32) -> Option<u64> {
        let k = user.checked_sub(self.first).filter(|&k| k < self.count)?;
        let round = u64::from(cseq).checked_sub(1)?;
        round.checked_mul(self.count)?.checked_add(k)
    }
}

/// Writes REGISTERs for one source socket.
#[derive(Debug, Clone)]
pub struct Registers {
    local: String,
    ip: String,
    run: u32,
    domain: String,
    /// `host:port` of the users' Contact.
    contact: String,
    expires: u32,
}

impl Registers {
    /// From socket `local` for users of `domain`, each registering
    /// `<sip:userK@contact>` (`contact` None: `local` itself).
    pub fn new(
        local: std::net::SocketAddr,
        domain: &str,
        contact: Option<std::net::SocketAddr>,
        expires: u32,
        run: u32,
    ) -> Registers {
        Registers {
            local: local.to_string(),
            ip: local.ip().to_string(),
            run,
            domain: domain.to_owned(),
            contact: contact.unwrap_or(local).to_string(),
            expires,
        }
    }

    /// The REGISTER of `user` with `cseq` (the same bytes on every
    /// retransmission).
    pub fn register(&self, out: &mut Vec<u8>, user: u64, cseq: u32) {
        let (local, run, domain) = (&self.local, self.run, &self.domain);
        let _ = write!(
            out,
            "REGISTER sip:{domain} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{run:08x}.{user}.{cseq}.r;rport\r\n\
             From: <sip:user{user}@{domain}>;tag={run:08x}.{user}\r\nTo: <sip:user{user}@{domain}>\r\nCall-ID: "
        );
        write_call_id(out, user, self.run, &self.ip);
        let _ = write!(
            out,
            "\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:user{user}@{}>\r\nMax-Forwards: 70\r\nExpires: {}\r\nContent-Length: 0\r\n\r\n",
            self.contact, self.expires
        );
    }

    /// Does the 200 `resp` list `user`'s contact with a non-zero expiry
    /// (RFC 3261 §10.3 step 8: the 200 lists every current binding)?
    pub fn lists_contact(&self, resp: &Message, user: u64) -> bool {
        let mut want = Vec::with_capacity(48);
        let _ = write!(want, "sip:user{user}@{}", self.contact);
        let header_expires = resp.expires().ok().flatten();
        resp.contacts().any(|c| match c {
            Ok(Contact::Addr(a)) if a.uri.eq_ignore_ascii_case(&want) => match a.expires() {
                Some(Ok(e)) => e > 0,
                Some(Err(_)) => false,
                None => header_expires != Some(0),
            },
            _ => false,
        })
    }
}

/// `To:` as the response has it (with the UAS's tag).
fn to_line(out: &mut Vec<u8>, resp: &Message) {
    out.extend_from_slice(b"To: ");
    out.extend_from_slice(resp.header(siphon::sip::HeaderName::To).unwrap_or_default());
    out.extend_from_slice(b"\r\n");
}

/// `N.RUNID@IP`: call number, then the run's id in 8 hex digits.
pub fn write_call_id(out: &mut Vec<u8>, n: u64, run: u32, ip: &str) {
    let _ = write!(out, "{n}.{run:08x}@{ip}");
}

/// The call number in a Call-ID written by `write_call_id` for this run;
/// None for anyone else's.
pub fn parse_call_id(id: &[u8], run: u32) -> Option<u64> {
    let dot = id.iter().position(|&b| b == b'.')?;
    let (num, rest) = (&id[..dot], &id[dot + 1..]);
    if num.is_empty() || num.len() > 20 || !num.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let hex = rest.get(..8)?;
    if rest.get(8) != Some(&b'@') {
        return None;
    }
    let mut got: u32 = 0;
    for &h in hex {
        got = got << 4 | (h as char).to_digit(16)?;
    }
    if got != run {
        return None;
    }
    num.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add((d - b'0') as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use siphon::sip::{response, Framing, HeaderName, Limits, Method};

    fn parse(b: &[u8]) -> Message {
        Message::parse(
            Bytes::copy_from_slice(b),
            Framing::Datagram,
            &Limits::default(),
        )
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(b)))
    }

    fn reqs() -> Requests {
        Requests::new(
            "127.0.5.2:40001".parse().unwrap(),
            "127.0.5.1:5060".parse().unwrap(),
            Some(SERVICE),
            0xabc,
        )
    }

    #[test]
    fn call_ids_carry_the_call_number_for_this_run_only() {
        let mut b = Vec::new();
        write_call_id(&mut b, 123_456, 0xdead_beef, "127.0.5.2");
        assert_eq!(b, b"123456.deadbeef@127.0.5.2");
        assert_eq!(parse_call_id(&b, 0xdead_beef), Some(123_456));
        assert_eq!(parse_call_id(&b, 0xdead_beee), None);
        for bad in [
            &b"x.deadbeef@h"[..],
            b".deadbeef@h",
            b"1.deadbee@h",
            b"1.deadbeefx",
            b"1",
            b"99999999999999999999.deadbeef@h",
        ] {
            assert_eq!(
                parse_call_id(bad, 0xdead_beef),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            parse_call_id(b"18446744073709551615.00000001@h", 1),
            Some(u64::MAX)
        );
    }

    #[test]
    fn the_invite_is_well_formed_with_sdp() {
        let mut b = Vec::new();
        reqs().invite(&mut b, 7);
        let m = parse(&b);
        assert_eq!(m.method(), Some(Method::Invite));
        assert_eq!(
            m.request_uri_bytes(),
            Some(&b"sip:service@127.0.5.1:5060"[..])
        );
        let via = m.top_via().unwrap();
        assert_eq!(via.branch(), Some(&b"z9hG4bK00000abc.7.i"[..]));
        assert_eq!(via.rport(), Some(None));
        assert_eq!(m.from().unwrap().tag(), Some(&b"00000abc.7"[..]));
        assert_eq!(m.to().unwrap().tag(), None);
        assert_eq!(parse_call_id(m.call_id(), 0xabc), Some(7));
        assert_eq!(
            m.cseq().map(|c| (c.seq, c.method)),
            Some((1, Method::Invite))
        );
        assert_eq!(m.max_forwards(), Ok(Some(70)));
        assert_eq!(
            m.header(HeaderName::ContentType),
            Some(&b"application/sdp"[..])
        );
        assert!(m
            .body()
            .starts_with(b"v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.5.2\r\n"));
        assert_eq!(m.content_length(), Some(m.body().len() as u32));
        // A retransmission is the same bytes.
        let mut again = Vec::new();
        reqs().invite(&mut again, 7);
        assert_eq!(again, b);
    }

    #[test]
    fn options_names_the_proxy_itself() {
        let r = Requests::new(
            "127.0.5.2:40001".parse().unwrap(),
            "127.0.5.1:5060".parse().unwrap(),
            None,
            1,
        );
        let mut b = Vec::new();
        r.options(&mut b, 3);
        let m = parse(&b);
        assert_eq!(m.method(), Some(Method::Options));
        assert_eq!(m.request_uri_bytes(), Some(&b"sip:127.0.5.1:5060"[..]));
        assert_eq!(m.content_length(), Some(0));
    }

    #[test]
    fn ack_and_bye_follow_the_dialog_of_the_2xx() {
        let r = reqs();
        let mut b = Vec::new();
        r.invite(&mut b, 9);
        // The invite as a UAS sees it after two record-routing proxies.
        let text = String::from_utf8(b).unwrap().replacen(
            "Call-ID:",
            "Record-Route: <sip:p2.example;lr>\r\nRecord-Route: <sip:p1.example;lr>\r\nCall-ID:",
            1,
        );
        let inv = parse(text.as_bytes());
        let mut ok = Vec::new();
        let rr: Vec<&[u8]> = inv.header_values(HeaderName::RecordRoute).collect();
        response::build(
            &inv,
            200,
            &"OK",
            b"uas1",
            &[
                ("Contact", b"<sip:uas@127.0.5.3:5080>"),
                ("Record-Route", rr[0]),
                ("Record-Route", rr[1]),
            ],
            &mut ok,
        );
        let ok = parse(&ok);

        let mut b = Vec::new();
        r.ack(&mut b, 9, &ok);
        let ack = parse(&b);
        assert_eq!(ack.method(), Some(Method::Ack));
        assert_eq!(
            ack.request_uri_bytes(),
            Some(&b"sip:uas@127.0.5.3:5080"[..])
        );
        assert_eq!(
            ack.top_via().unwrap().branch(),
            Some(&b"z9hG4bK00000abc.9.a"[..])
        );
        assert_eq!(ack.to().unwrap().tag(), Some(&b"uas1"[..]));
        assert_eq!(
            ack.cseq().map(|c| (c.seq, c.method)),
            Some((1, Method::Ack))
        );
        let routes: Vec<&[u8]> = ack.header_values(HeaderName::Route).collect();
        assert_eq!(
            routes,
            [&b"<sip:p1.example;lr>"[..], b"<sip:p2.example;lr>"]
        );

        let mut b = Vec::new();
        r.bye(&mut b, 9, &ok);
        let bye = parse(&b);
        assert_eq!(bye.method(), Some(Method::Bye));
        assert_eq!(
            bye.top_via().unwrap().branch(),
            Some(&b"z9hG4bK00000abc.9.b"[..])
        );
        assert_eq!(
            bye.cseq().map(|c| (c.seq, c.method)),
            Some((2, Method::Bye))
        );
        assert_eq!(bye.to().unwrap().tag(), Some(&b"uas1"[..]));
        assert_eq!(bye.call_id(), inv.call_id());
        assert_eq!(bye.header_values(HeaderName::Route).count(), 2);
    }

    #[test]
    fn register_plans_split_users_and_name_attempts_by_user_and_cseq() {
        // 10 users over 3 threads: 4, 3, 3, contiguous, covering all.
        let plans: Vec<RegisterPlan> = (0..3).map(|t| RegisterPlan::split(10, 3, t)).collect();
        assert_eq!(
            plans.iter().map(|p| (p.first, p.count)).collect::<Vec<_>>(),
            [(0, 4), (4, 3), (7, 3)]
        );
        let p = plans[1];
        // Rounds over users 4, 5, 6 with CSeq 1, 2, ...
        assert_eq!(
            (0..7).map(|j| p.attempt(j)).collect::<Vec<_>>(),
            [(4, 1), (5, 1), (6, 1), (4, 2), (5, 2), (6, 2), (4, 3)]
        );
        for j in 0..1000 {
            let (user, cseq) = p.attempt(j);
            assert_eq!(p.number(user, cseq), Some(j));
        }
        // Another thread's user, CSeq 0: not ours.
        assert_eq!(p.number(3, 1), None);
        assert_eq!(p.number(7, 1), None);
        assert_eq!(p.number(4, 0), None);
        assert_eq!(
            RegisterPlan::split(5, 1, 0),
            RegisterPlan { first: 0, count: 5 }
        );
    }

    fn registers() -> Registers {
        Registers::new(
            "127.0.5.2:40001".parse().unwrap(),
            "example.com",
            Some("127.0.5.3:5080".parse().unwrap()),
            3600,
            0xabc,
        )
    }

    #[test]
    fn the_register_is_well_formed_and_keeps_its_call_id() {
        let r = registers();
        let mut b = Vec::new();
        r.register(&mut b, 42, 7);
        let m = parse(&b);
        assert_eq!(m.method(), Some(Method::Register));
        assert_eq!(m.request_uri_bytes(), Some(&b"sip:example.com"[..]));
        assert_eq!(
            m.header(HeaderName::To),
            Some(&b"<sip:user42@example.com>"[..])
        );
        assert_eq!(m.from().unwrap().tag(), Some(&b"00000abc.42"[..]));
        assert_eq!(m.to().unwrap().tag(), None);
        assert_eq!(parse_call_id(m.call_id(), 0xabc), Some(42));
        assert_eq!(
            m.cseq().map(|c| (c.seq, c.method)),
            Some((7, Method::Register))
        );
        assert_eq!(
            m.header(HeaderName::Contact),
            Some(&b"<sip:user42@127.0.5.3:5080>"[..])
        );
        assert_eq!(m.expires(), Ok(Some(3600)));
        assert_eq!(m.max_forwards(), Ok(Some(70)));
        assert_eq!(m.content_length(), Some(0));
        let via = m.top_via().unwrap();
        assert_eq!(via.branch(), Some(&b"z9hG4bK00000abc.42.7.r"[..]));
        assert_eq!(via.rport(), Some(None));

        // The refresh: same Call-ID, next CSeq, its own branch; a
        // retransmission is the same bytes.
        let mut next = Vec::new();
        r.register(&mut next, 42, 8);
        let n = parse(&next);
        assert_eq!(n.call_id(), m.call_id());
        assert_eq!(n.cseq().unwrap().seq, 8);
        assert_ne!(n.top_via().unwrap().branch(), via.branch());
        let mut again = Vec::new();
        r.register(&mut again, 42, 7);
        assert_eq!(again, b);

        // Without --contact the user registers its own socket.
        let own = Registers::new("127.0.5.2:40001".parse().unwrap(), "127.0.5.1", None, 60, 1);
        let mut b = Vec::new();
        own.register(&mut b, 0, 1);
        let m = parse(&b);
        assert_eq!(m.request_uri_bytes(), Some(&b"sip:127.0.5.1"[..]));
        assert_eq!(
            m.header(HeaderName::Contact),
            Some(&b"<sip:user0@127.0.5.2:40001>"[..])
        );
        assert_eq!(m.expires(), Ok(Some(60)));
    }

    #[test]
    fn a_200_must_list_the_users_contact_unexpired() {
        let r = registers();
        let mut b = Vec::new();
        r.register(&mut b, 5, 1);
        let req = parse(&b);
        let ok = |contacts: &[&[u8]], expires: Option<&[u8]>| {
            let mut extra: Vec<(&str, &[u8])> = contacts.iter().map(|c| ("Contact", *c)).collect();
            if let Some(e) = expires {
                extra.push(("Expires", e));
            }
            let mut out = Vec::new();
            response::build(&req, 200, &"OK", b"t", &extra, &mut out);
            parse(&out)
        };
        let listed = ok(&[b"<sip:user5@127.0.5.3:5080>;expires=3600"], None);
        assert!(r.lists_contact(&listed, 5));
        // Another user's binding only.
        assert!(!r.lists_contact(&listed, 6));
        // Among others, in one header or several; host case-insensitive.
        assert!(r.lists_contact(
            &ok(
                &[b"<sip:a@h>;expires=10, <sip:user5@127.0.5.3:5080>;expires=10"],
                None
            ),
            5
        ));
        assert!(r.lists_contact(
            &ok(&[b"<sip:a@h>", b"<SIP:user5@127.0.5.3:5080>;q=0.5"], None),
            5
        ));
        // Removed (expires 0), or no contact at all.
        assert!(!r.lists_contact(&ok(&[b"<sip:user5@127.0.5.3:5080>;expires=0"], None), 5));
        assert!(!r.lists_contact(&ok(&[b"<sip:user5@127.0.5.3:5080>"], Some(b"0")), 5));
        assert!(r.lists_contact(&ok(&[b"<sip:user5@127.0.5.3:5080>"], None), 5));
        assert!(!r.lists_contact(&ok(&[], None), 5));
        // A different port is a different contact.
        assert!(!r.lists_contact(&ok(&[b"<sip:user5@127.0.5.3:5081>"], None), 5));
    }

    #[test]
    fn calls_to_users_cycle_over_them() {
        let r = reqs().with_users(3, "example.com");
        for (n, want) in [
            (0, "sip:user0@example.com"),
            (4, "sip:user1@example.com"),
            (5, "sip:user2@example.com"),
        ] {
            let mut b = Vec::new();
            r.invite(&mut b, n);
            let m = parse(&b);
            assert_eq!(m.request_uri_bytes(), Some(want.as_bytes()));
            assert_eq!(
                m.header(HeaderName::To),
                Some(format!("<{want}>").as_bytes())
            );
            assert_eq!(parse_call_id(m.call_id(), 0xabc), Some(n));
            // The ACK of a failure goes to the same Request-URI.
            let mut busy = Vec::new();
            response::build(&m, 404, &"Not Found", b"t", &[], &mut busy);
            let mut a = Vec::new();
            r.ack(&mut a, n, &parse(&busy));
            assert_eq!(parse(&a).request_uri_bytes(), Some(want.as_bytes()));
        }
    }

    #[test]
    fn the_ack_of_a_failure_belongs_to_the_invite_transaction() {
        let r = reqs();
        let mut b = Vec::new();
        r.invite(&mut b, 4);
        let inv = parse(&b);
        let mut busy = Vec::new();
        response::build(&inv, 486, &"Busy Here", b"t", &[], &mut busy);
        let mut b = Vec::new();
        r.ack(&mut b, 4, &parse(&busy));
        let ack = parse(&b);
        assert_eq!(ack.request_uri_bytes(), inv.request_uri_bytes());
        assert_eq!(
            ack.top_via().unwrap().branch(),
            inv.top_via().unwrap().branch()
        );
        assert_eq!(ack.header(HeaderName::Route), None);
        assert_eq!(ack.to().unwrap().tag(), Some(&b"t"[..]));
    }
}
