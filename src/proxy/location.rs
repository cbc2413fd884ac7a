//! The location service for requests (RFC 3261 §10, §16.5): the live
//! contacts of the AOR a request is for, and where each is reached
//! (Path, its connection, its NAT address, or its Contact).

use super::request::{uri_hop, Next, NextHop};
use super::{ConnId, Core, Flow, Outcome};
use crate::config::Transport;
use crate::registrar::Binding;
use crate::sip::uri::Uri;
use crate::sip::Message;

/// One registered contact of the AOR a request is for.
#[derive(Debug, Clone)]
pub(crate) struct LocTarget {
    pub contact: Box<[u8]>,
    pub path: Box<[Box<[u8]>]>,
    pub hop: NextHop,
}

impl Core {
    /// The location service (RFC 3261 §10, §16.5): the live contacts of
    /// the AOR `target` names, best first. An AOR of a served domain with
    /// no live binding gets 480 (§21.4.18), whether it ever registered,
    /// is a provisioned user or is unknown: the answer must not tell
    /// which users exist. 404 only when there is no AOR at all (no user
    /// part, a domain not served, no registrar).
    // The error is what to send instead: an Outcome moved once, on the
    // path that does not forward.
    #[allow(clippy::result_large_err)]
    pub(super) fn location(
        &self,
        msg: &Message,
        flow: Flow,
        target: &Uri<'_>,
    ) -> Result<Next, Outcome> {
        let Some(reg) = &self.registrar else {
            return Err(self.reply(msg, flow, 404, &"Not Found", &[]));
        };
        let Some(aor) = reg.aor(target, self.uri_is_me(target)) else {
            return Err(self.reply(msg, flow, 404, &"Not Found", &[]));
        };
        let now = self.unix_now();
        let live: Vec<LocTarget> = reg.store.with(&aor, |r| {
            r.map_or_else(Vec::new, |r| {
                r.live(now).into_iter().filter_map(loc_target).collect()
            })
        });
        if live.is_empty() {
            return Err(self.reply(msg, flow, 480, &"Temporarily Unavailable", &[]));
        }
        Ok(Next::Location(live))
    }
}

/// Where a binding is reached: through its first Path value; over TCP
/// back to where it registered from (the connection it registered on,
/// when still open); over UDP behind a NAT at the address it registered
/// from, sent from the listener it registered on (RFC 3581, RFC 5626
/// §5); else at its Contact URI.
fn loc_target(b: &Binding) -> Option<LocTarget> {
    let hop = if let Some(p) = b.path.first() {
        let inner = p.strip_prefix(b"<").and_then(|p| p.strip_suffix(b">"))?;
        uri_hop(&Uri::parse(inner).ok()?)
    } else if b.transport == Transport::Tcp || b.nat {
        let mut hop = NextHop::to_addr(b.source, b.transport);
        hop.listener = b.local;
        hop.conn = (b.conn != 0).then_some(ConnId(b.conn));
        hop
    } else {
        uri_hop(&Uri::parse(&b.contact).ok()?)
    };
    Some(LocTarget {
        contact: b.contact.clone(),
        path: b.path.clone(),
        hop,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use bytes::Bytes;

    use crate::auth::{Auth, Credential, Users};
    use crate::config::{Config, Transport};
    use crate::proxy::{Core, Flow, Hosts, Outcome};
    use crate::registrar::Registrar;

    /// A registrar core for example.com in `mode`, with `carol` a
    /// provisioned (Digest) user who never registered, and `dave`
    /// registered for 60 s at time 0.
    fn core(mode: &str) -> Core {
        let text = format!(
            "[[listen]]\ntransport = \"udp\"\naddr = \"127.0.0.1:5060\"\n[proxy]\nmode = \"{mode}\"\n[registrar]\ndomains = [\"example.com\"]\n"
        );
        let cfg = Arc::new(Config::parse(&text, Path::new("t.toml")).unwrap());
        let reg = Registrar::in_memory(cfg.registrar.clone().unwrap());
        let mut users = Users::new();
        users.insert("carol".into(), Credential::password("x"));
        let mut core = Core::new(cfg, Arc::new(Hosts::default()));
        core.set_registrar(Arc::new(reg));
        core.set_auth(Arc::new(Auth::new(
            "example.com".into(),
            [7; 32],
            300,
            users,
            64,
        )));
        core.set_unix_base(1_700_000_000_000);
        let register = "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.9:5070;branch=z9hG4bKr1\r\nMax-Forwards: 70\r\nFrom: <sip:dave@example.com>;tag=1\r\nTo: <sip:dave@example.com>\r\nCall-ID: r1\r\nCSeq: 1 REGISTER\r\nContact: <sip:dave@127.0.0.9:5070>;expires=60\r\nContent-Length: 0\r\n\r\n";
        let mut out = Vec::new();
        core.handle_at(0, Bytes::from(register), flow(), &mut out);
        assert!(matches!(out[..], [Outcome::Replied(_, 200)]), "{out:?}");
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

    /// What the proxy does with `method` for `user@example.com` at `now`
    /// ms: the same request but for its Request-URI, so equal answers are
    /// equal bytes.
    fn send(core: &mut Core, now: u64, method: &str, user: &str) -> Outcome {
        let req = format!(
            "{method} sip:{user}@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.9:5070;branch=z9hG4bK{method}{now}\r\nMax-Forwards: 70\r\nFrom: <sip:svwar@example.net>;tag=9\r\nTo: <sip:someone@example.com>\r\nCall-ID: enum-{method}-{now}\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
        );
        let mut out = Vec::new();
        core.handle_at(now, Bytes::from(req), flow(), &mut out);
        out.pop().expect("an outcome")
    }

    fn ask(core: &mut Core, now: u64, method: &str, user: &str) -> (u16, Vec<u8>) {
        match send(core, now, method, user) {
            Outcome::Replied(t, code) => (code, t.data),
            other => panic!("{method} {user}: expected an answer, got {other:?}"),
        }
    }

    /// RFC 3261 §21.4.18: a user with no live binding is temporarily
    /// unavailable, whether the AOR ever registered, is provisioned, or
    /// is unknown to us: the answer must not tell them apart (`svwar`
    /// lists users from 404 against 480).
    #[test]
    fn known_and_unknown_users_without_a_binding_get_the_same_answer() {
        for mode in ["stateless", "stateful"] {
            let mut core = core(mode);
            // dave's binding is live until 60 s: he is reached.
            let live = send(&mut core, 1_000, "MESSAGE", "dave");
            assert!(matches!(live, Outcome::Forwarded(_)), "{mode}: {live:?}");
            let later = 120_000;
            for method in ["INVITE", "OPTIONS", "MESSAGE", "SUBSCRIBE", "BYE", "INFO"] {
                let answers: Vec<(u16, Vec<u8>)> = ["dave", "carol", "nobody"]
                    .iter()
                    .map(|u| ask(&mut core, later, method, u))
                    .collect();
                let line = answers[0].1.split(|&b| b == b'\r').next().unwrap();
                assert_eq!(
                    (answers[0].0, line),
                    (480, &b"SIP/2.0 480 Temporarily Unavailable"[..]),
                    "{mode} {method}"
                );
                assert!(
                    answers.iter().all(|a| *a == answers[0]),
                    "{mode} {method}: {:?}",
                    answers
                        .iter()
                        .map(|a| String::from_utf8_lossy(&a.1).into_owned())
                        .collect::<Vec<_>>()
                );
            }
        }
    }
}
