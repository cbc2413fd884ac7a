//! Requests the proxy answers as a UAS: REGISTER for the registrar
//! (RFC 3261 §10.3 steps 1–4: domain, authentication, authorisation; the
//! rest is `registrar::register`), and Digest challenges of the requests
//! `[auth]` names (RFC 7616; 401 for REGISTER, 407 for the others).
//!
//! A REGISTER's answer is remembered for a short while per shard, keyed
//! by its transaction, so that a retransmission gets the same answer
//! again instead of being processed again (its nonce count would look
//! like a replay).

use std::sync::Arc;

use super::{Core, Flow, Outcome};
use crate::auth::{Auth, Verdict};
use crate::config::Transport;
use crate::registrar::register::{register, Source};
use crate::sip::{HeaderName, Message, Method};

/// REGISTER answers remembered per shard for retransmissions.
pub(super) const ANSWERED: usize = 4096;

/// A ring of recent REGISTER answers over UDP (transaction hash, answer,
/// status), the oldest overwritten first, with an index.
pub(super) struct Answered {
    ring: Vec<(u64, Vec<u8>, u16)>,
    index: std::collections::HashMap<u64, usize>,
    next: usize,
}

impl Answered {
    pub(super) fn new() -> Answered {
        Answered {
            ring: Vec::new(),
            index: Default::default(),
            next: 0,
        }
    }

    fn get(&self, key: u64) -> Option<(&[u8], u16)> {
        let e = &self.ring[*self.index.get(&key)?];
        Some((&e.1[..], e.2))
    }

    fn put(&mut self, key: u64, data: &[u8], code: u16) {
        if self.ring.len() < ANSWERED {
            self.index.insert(key, self.ring.len());
            self.ring.push((key, data.to_vec(), code));
            return;
        }
        let slot = self.next;
        self.next = (self.next + 1) % ANSWERED;
        let old = std::mem::replace(&mut self.ring[slot], (key, data.to_vec(), code));
        if self.index.get(&old.0) == Some(&slot) {
            self.index.remove(&old.0);
        }
        self.index.insert(key, slot);
    }
}

impl Core {
    /// Use `reg` as this shard's registrar and location service.
    pub fn set_registrar(&mut self, reg: Arc<crate::registrar::Registrar>) {
        if self.prober {
            let c = &reg.cfg;
            self.pinger = super::natping::NatPinger::new(c.nat_ping_interval_s, c.nat_ping_misses);
        }
        self.registrar = Some(reg);
    }

    /// Authenticate with `auth` where the config asks for it.
    pub fn set_auth(&mut self, auth: Arc<Auth>) {
        self.auth = Some(auth);
    }

    /// Journal records of the changes made since the last call, appended
    /// to `out`. The runtime writes them before it sends anything the
    /// core decided since (a 200 OK for a REGISTER is an acknowledgement
    /// that the binding is durable).
    pub fn take_journal(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.journal);
    }

    /// Records are waiting to be written.
    pub fn journal_pending(&self) -> bool {
        !self.journal.is_empty()
    }

    /// The registrar's clock: unix seconds.
    pub(super) fn unix_now(&self) -> u64 {
        (self.unix_base_ms + self.now_ms) / 1000
    }

    /// Set the unix time (ms) at which the shard's clock (`now` of
    /// `handle_at`) was 0.
    pub fn set_unix_base(&mut self, unix_ms: u64) {
        self.unix_base_ms = unix_ms;
    }

    /// A REGISTER for the registrar (§10.3).
    pub(super) fn registrar_request(&mut self, msg: &Message, flow: Flow) -> Outcome {
        let Some(reg) = self.registrar.clone() else {
            return self.reply(msg, flow, 404, &"Not Found", &[]);
        };
        self.reg_stats.registers += 1;
        let udp = flow.transport == Transport::Udp;
        let key = answered_key(msg, flow);
        if let Some((data, code)) = self.answered.get(key).filter(|_| udp) {
            let t = super::request::upstream(msg, flow, data.to_vec());
            return Outcome::Replied(t, code);
        }
        // Step 1 was the Request-URI; the AOR is the To URI.
        let to = match msg.to().map(|t| t.uri()) {
            Ok(Ok(u)) => u,
            _ => return self.reply(msg, flow, 400, &"Bad To", &[]),
        };
        let Some(aor) = reg.aor(&to, self.uri_is_me(&to)) else {
            return self.reply(msg, flow, 403, &"Domain Not Served", &[]);
        };
        // Steps 3–4: authenticate; the user may change only its own AOR.
        if let Some(auth) = self.auth.clone().filter(|_| self.auth_register()) {
            let user = aor.split(|&b| b == b'@').next().unwrap_or_default();
            if let Some(o) = self.authenticate(&auth, msg, flow, Method::Register, user) {
                return o;
            }
        }
        let src = Source {
            addr: flow.remote,
            transport: flow.transport,
            local: flow.local,
            conn: flow.conn.map_or(0, |c| c.0),
            nat: self.cfg.proxy.nat,
            via_moved: via_moved(msg, flow.remote),
        };
        let now = self.unix_now();
        let r = register(&reg, msg, &aor, src, now, &mut self.journal);
        let headers: Vec<(&str, &[u8])> = r.headers.iter().map(|(n, v)| (*n, &v[..])).collect();
        let out = self.reply(msg, flow, r.code, &r.reason, &headers);
        if let Outcome::Replied(t, code) = &out {
            if udp {
                self.answered.put(key, &t.data, *code);
            }
        }
        out
    }

    fn auth_register(&self) -> bool {
        self.cfg.auth.as_ref().is_some_and(|a| a.register)
    }

    /// 407 for an initial request of a method `[auth] requests` names,
    /// unless its Proxy-Authorization is good and its From user is the
    /// authenticated user.
    pub(super) fn challenge_request(
        &mut self,
        msg: &Message,
        flow: Flow,
        method: Method,
    ) -> Option<Outcome> {
        let auth = self.auth.clone()?;
        let cfg = self.cfg.auth.as_ref()?;
        // Only initial requests come here (`plan` decides).
        if matches!(method, Method::Ack | Method::Cancel | Method::Register)
            || !cfg
                .requests
                .iter()
                .any(|m| m.as_bytes() == msg.method_bytes())
        {
            return None;
        }
        let from = msg.from().ok()?.uri().ok()?;
        let user = from
            .user_decoded()
            .map(|u| u.into_owned())
            .unwrap_or_default();
        self.authenticate(&auth, msg, flow, method, &user)
    }

    /// Check the credentials of `msg` for `user`: `None` when they are
    /// good, else the answer (a challenge, or 403).
    fn authenticate(
        &mut self,
        auth: &Auth,
        msg: &Message,
        flow: Flow,
        method: Method,
        user: &[u8],
    ) -> Option<Outcome> {
        let (cred, chal, code, reason) = if method == Method::Register {
            (
                HeaderName::Authorization,
                "WWW-Authenticate",
                401,
                "Unauthorized",
            )
        } else {
            (
                HeaderName::ProxyAuthorization,
                "Proxy-Authenticate",
                407,
                "Proxy Authentication Required",
            )
        };
        let now = self.unix_now();
        let ruri = msg.request_uri_bytes().unwrap_or_default();
        let mut stale = false;
        for value in msg.header_values(cred) {
            match auth.verify(value, msg.method_bytes(), ruri, now) {
                Verdict::OtherRealm => continue,
                Verdict::Ok { username } => {
                    if username.as_bytes() != user {
                        self.reg_stats.auth_failures += 1;
                        self.auth_failed(flow);
                        return Some(self.reply(
                            msg,
                            flow,
                            403,
                            &"Forbidden (Identity Mismatch)",
                            &[],
                        ));
                    }
                    return None;
                }
                Verdict::Stale => stale = true,
                Verdict::UnknownUser | Verdict::WrongPassword => {
                    self.reg_stats.auth_failures += 1;
                    self.auth_failed(flow);
                    return Some(self.reply(msg, flow, 403, &"Forbidden", &[]));
                }
                Verdict::Malformed(why) => {
                    return Some(self.reply(msg, flow, 400, &why, &[]));
                }
                Verdict::UriMismatch => {
                    return Some(self.reply(msg, flow, 400, &"Digest URI Mismatch", &[]));
                }
                // A replayed or forged nonce gets a fresh challenge.
                Verdict::Replay | Verdict::BadNonce => {}
            }
            break;
        }
        self.reg_stats.challenges += 1;
        // One challenge per algorithm offered, in the configured order.
        let challenges = auth.challenges(now, stale);
        let headers: Vec<(&str, &[u8])> = challenges.iter().map(|c| (chal, c.as_bytes())).collect();
        Some(self.reply(msg, flow, code, &reason, &headers))
    }
}

/// The top Via's sent-by is not where the request came from (an address
/// or a port a NAT changed; a host name is taken at its word).
pub(super) fn via_moved(msg: &Message, src: std::net::SocketAddr) -> bool {
    let Ok(v) = msg.top_via() else {
        return false;
    };
    let port = v.port.unwrap_or(5060);
    let host = std::str::from_utf8(v.host).unwrap_or_default();
    match host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
    {
        Ok(ip) => ip != src.ip() || port != src.port(),
        Err(_) => false,
    }
}

/// The transaction of a REGISTER (Call-ID, CSeq, branch, source): a
/// retransmission has the same.
fn answered_key(msg: &Message, flow: Flow) -> u64 {
    let mut h = super::branch::StableHash::default();
    match flow.remote.ip() {
        std::net::IpAddr::V4(a) => h.write(&a.octets()),
        std::net::IpAddr::V6(a) => h.write(&a.octets()),
    }
    h.write(&flow.remote.port().to_le_bytes());
    h.write(msg.call_id());
    h.write(&msg.cseq().map_or(0, |c| c.seq).to_le_bytes());
    h.write(
        msg.top_via()
            .ok()
            .and_then(|v| v.branch())
            .unwrap_or_default(),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use bytes::Bytes;

    use crate::auth::{client_response, Auth};
    use crate::config::{Config, Transport};
    use crate::proxy::{Core, Flow, Hosts, Outcome};
    use crate::registrar::Registrar;

    const NONCE_LIFETIME_S: u64 = 300;

    /// A registrar with Digest on REGISTER and INVITE; `alice` is the
    /// only user. The same secret every time, so a challenge from one
    /// core is good on another: each request goes to a fresh core, and no
    /// remembered answer (a REGISTER retransmission) can stand in for it.
    fn core() -> Core {
        let text = format!(
            "[[listen]]\ntransport = \"udp\"\naddr = \"127.0.0.1:5060\"\n[registrar]\ndomains = [\"example.com\"]\n[auth]\nrealm = \"example.com\"\nsecret = \"s3cret\"\nnonce_lifetime_s = {NONCE_LIFETIME_S}\nrequests = [\"INVITE\"]\nusers = {{ alice = \"wonderland\" }}\n"
        );
        let cfg = Arc::new(Config::parse(&text, Path::new("t.toml")).unwrap());
        let reg = Registrar::in_memory(cfg.registrar.clone().unwrap());
        let auth = Auth::from_config(cfg.auth.as_ref().unwrap()).unwrap();
        let mut core = Core::new(cfg, Arc::new(Hosts::default()));
        core.set_registrar(Arc::new(reg));
        core.set_auth(Arc::new(auth));
        core.set_unix_base(1_700_000_000_000);
        core
    }

    fn flow() -> Flow {
        Flow {
            transport: Transport::Udp,
            local: "127.0.0.1:5060".parse().unwrap(),
            remote: "127.0.0.9:5070".parse().unwrap(),
            conn: None,
        }
    }

    /// `method` from `user` (for REGISTER: of `user`'s AOR), with
    /// `cred` as its Authorization / Proxy-Authorization.
    fn request(method: &str, user: &str, cred: Option<&str>) -> Vec<u8> {
        let (ruri, to, header) = match method {
            "REGISTER" => ("sip:example.com", user, "Authorization"),
            _ => ("sip:bob@example.com", "bob", "Proxy-Authorization"),
        };
        let cred = cred.map_or(String::new(), |c| format!("{header}: {c}\r\n"));
        format!(
            "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.9:5070;branch=z9hG4bKe1\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@example.com>;tag=1\r\nTo: <sip:{to}@example.com>\r\nCall-ID: e1\r\nCSeq: 1 {method}\r\nContact: <sip:{user}@127.0.0.9:5070>\r\n{cred}Content-Length: 0\r\n\r\n"
        )
        .into_bytes()
    }

    /// The answer of a fresh core at `now` ms, with the user's name and
    /// the nonces (fresh for each challenge) masked: what is left must not
    /// depend on whether the user exists.
    fn answer(now: u64, req: &[u8], user: &str) -> (u16, String) {
        let mut out = Vec::new();
        core().handle_at(now, Bytes::copy_from_slice(req), flow(), &mut out);
        let (code, data) = match out.pop() {
            Some(Outcome::Replied(t, code)) => (code, t.data),
            other => panic!("expected an answer, got {other:?}"),
        };
        let text = String::from_utf8(data).unwrap().replace(user, "USER");
        let mut masked = String::new();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("nonce=\"") {
            masked.push_str(&rest[..at + 7]);
            rest = &rest[at + 7..];
            rest = &rest[rest.find('"').unwrap()..];
            masked.push('N');
        }
        masked.push_str(rest);
        (code, masked)
    }

    /// A challenge for `method` issued at `now` ms (its algorithm MD5).
    fn challenge(now: u64, method: &str) -> String {
        let mut out = Vec::new();
        core().handle_at(
            now,
            Bytes::from(request(method, "alice", None)),
            flow(),
            &mut out,
        );
        let Some(Outcome::Replied(t, _)) = out.pop() else {
            panic!("no challenge");
        };
        let text = String::from_utf8(t.data).unwrap();
        let line = text
            .lines()
            .find(|l| l.contains("algorithm=MD5"))
            .expect("an MD5 challenge");
        line.split_once(": ").unwrap().1.to_owned()
    }

    fn cred(ch: &str, method: &str, user: &str, password: &str) -> String {
        let uri = match method {
            "REGISTER" => "sip:example.com",
            _ => "sip:bob@example.com",
        };
        client_response(ch, user, password, method, uri, "cn", 1).unwrap()
    }

    /// REGISTER (401/403) and INVITE (407/403): a known user and a name
    /// nobody has get the same status, reason and headers, with or
    /// without credentials, with a fresh or an expired nonce. Only the
    /// right password tells them apart.
    #[test]
    fn digest_answers_do_not_tell_known_from_unknown_users() {
        let stale = (NONCE_LIFETIME_S + 10) * 1000;
        for (method, challenged) in [("REGISTER", 401), ("INVITE", 407)] {
            // No credentials: challenged alike.
            let known = answer(0, &request(method, "alice", None), "alice");
            let unknown = answer(0, &request(method, "mallory", None), "mallory");
            assert_eq!(known.0, challenged, "{method}: {}", known.1);
            assert_eq!(known, unknown, "{method} without credentials");

            // Credentials: a wrong password and a user nobody has.
            let ch = challenge(0, method);
            for now in [1_000, stale] {
                let wrong = cred(&ch, method, "alice", "rabbit");
                let nobody = cred(&ch, method, "mallory", "rabbit");
                let known = answer(now, &request(method, "alice", Some(&wrong)), "alice");
                let unknown = answer(now, &request(method, "mallory", Some(&nobody)), "mallory");
                assert!(
                    known.1.starts_with("SIP/2.0 403 Forbidden\r\n"),
                    "{method}: {}",
                    known.1
                );
                assert_eq!(known, unknown, "{method} with credentials at {now} ms");
            }
            // Someone else's name in the credentials of alice's request.
            let as_nobody = cred(&ch, method, "mallory", "wonderland");
            let known = answer(
                1_000,
                &request(method, "alice", Some(&cred(&ch, method, "alice", "x"))),
                "alice",
            );
            let unknown = answer(1_000, &request(method, "alice", Some(&as_nobody)), "alice");
            assert_eq!(
                known, unknown,
                "{method}: alice's request, another user's name"
            );

            // The right password is what is different: accepted, or a
            // stale nonce challenged again.
            let good = cred(&ch, method, "alice", "wonderland");
            let (code, _) = answer(stale, &request(method, "alice", Some(&good)), "alice");
            assert_eq!(code, challenged, "{method}: stale");
        }
    }
}
