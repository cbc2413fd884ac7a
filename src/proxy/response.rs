//! Responses through the stateless proxy (RFC 3261 §16.11): the top Via
//! must be ours; it is removed and the response goes where the next Via
//! says (§18.2.2, RFC 3581: received, rport, maddr).

use std::net::SocketAddr;

use super::branch::{conn_of, stateless_response_ok, LegRef, STATEFUL_PREFIX};
use super::request::bad_destination;
use super::{Core, Drop, Outcome, Transmit};
use crate::config::Transport;
use crate::routing::calls::CallRef;
use crate::sip::{Message, Transport as ViaTransport};

impl Core {
    /// Concurrent calls: a final answer to an INVITE on its way to the
    /// caller starts or ends the call it belongs to (`routing::calls`).
    pub(super) fn count_answer(&self, msg: &Message) {
        if self.cur.calls.is_empty() {
            return;
        }
        if let (Some(cseq), Some(code)) = (msg.cseq(), msg.status()) {
            if cseq.method == crate::sip::Method::Invite {
                self.cur
                    .calls
                    .answered(CallRef::of(msg), cseq.seq, code, self.now_ms);
            }
        }
    }

    pub(super) fn response(&mut self, msg: &Message) -> Outcome {
        let mut vias = msg.vias();
        let Some(Ok(top)) = vias.next() else {
            return Outcome::Dropped(Drop::BadResponse);
        };
        if !self.me.is_me(top.host, top.port) {
            return Outcome::Dropped(Drop::NotOurVia);
        }
        // Topology hiding: the Vias below ours travelled sealed in it.
        let sealed = match super::topology::via_token(&top) {
            Some(t) => match super::topology::open_vias(&self.sealer, t) {
                Some(v) => Some(v),
                None => return Outcome::Dropped(Drop::TopologyToken),
            },
            None => None,
        };
        let next = match &sealed {
            Some(v) => match crate::sip::Via::parse(&v[0]) {
                Ok(v) => v,
                Err(_) => return Outcome::Dropped(Drop::BadResponse),
            },
            None => match vias.next() {
                Some(Ok(v)) => v,
                Some(Err(_)) => return Outcome::Dropped(Drop::BadResponse),
                None => return Outcome::Dropped(Drop::NoNextVia),
            },
        };
        // Only a response to a request we forwarded: its branch's keyed tag
        // must match (an off-path sender cannot make one).
        let branch = top.branch().unwrap_or_default();
        let genuine = if branch.starts_with(STATEFUL_PREFIX.as_bytes()) {
            matches!(LegRef::parse(branch, msg), Ok(Some(_)))
        } else {
            stateless_response_ok(branch, next, msg)
        };
        if !genuine {
            return self.forged();
        }
        self.count_answer(msg);
        let transport = match next.transport {
            ViaTransport::Udp => Transport::Udp,
            ViaTransport::Tcp => Transport::Tcp,
            _ => return Outcome::Dropped(Drop::NoListener),
        };
        // §18.2.2: maddr (unreliable transports), else received, else the
        // sent-by host; the port from rport (UDP), else sent-by, else 5060.
        let host = match (transport, next.maddr()) {
            (Transport::Udp, Some(m)) => m,
            _ => next.received().unwrap_or(next.host),
        };
        let host = String::from_utf8_lossy(host);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let Some(ip) = host.parse().ok().or_else(|| self.hosts.lookup(host, true)) else {
            return Outcome::Dropped(Drop::Unresolvable);
        };
        // rport is for unreliable transports (RFC 3581 §4); over a stream
        // the response takes the connection (named by our branch) and,
        // if that has closed, the sent-by port (§18.2.2).
        let port = match (transport, next.rport()) {
            (Transport::Udp, Some(Some(p))) => p,
            _ => next.port.unwrap_or(5060),
        };
        let dest = SocketAddr::new(ip, port);
        if bad_destination(ip) {
            return Outcome::Dropped(Drop::BadDestination);
        }
        let Some(out_me) = self.me.listener(transport, dest) else {
            return Outcome::Dropped(Drop::NoListener);
        };
        let local = out_me.addr;
        let mut e = std::mem::take(&mut self.edits);
        e.clear();
        let removed = e.remove_top_via(msg).is_ok();
        let alias = self.response_alias(msg);
        let restored = match &sealed {
            Some(vias) => {
                let face = super::topology::Face {
                    host: &out_me.host,
                    port: out_me.port,
                    transport,
                };
                super::topology::restore_response(
                    &self.sealer,
                    &mut e,
                    msg,
                    vias,
                    face,
                    |u| self.uri_is_me(u),
                    alias.as_deref(),
                )
                .is_some()
            }
            None => {
                if let Some(alias) = &alias {
                    e.add_contact_uri_param(msg, alias);
                }
                true
            }
        };
        if transport == Transport::Tcp {
            e.ensure_content_length(msg);
        }
        let mut data = Vec::with_capacity(msg.as_bytes().len() + 256);
        e.apply(msg, &mut data);
        self.edits = e;
        if !removed {
            return Outcome::Dropped(Drop::BadResponse);
        }
        if !restored {
            return Outcome::Dropped(Drop::TopologyToken);
        }
        // The connection the request came in on, if it did over a stream.
        let conn = match transport {
            Transport::Tcp => top.branch().and_then(conn_of),
            Transport::Udp => None,
        };
        Outcome::Forwarded(Transmit {
            leg: None,
            transport,
            local,
            dest,
            conn,
            data,
        })
    }
}
