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
    /// the AOR `target` names, best first; 404 for an AOR nobody knows,
    /// 480 for a known one with no live binding.
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
        let (known, live) = reg.store.with(&aor, |r| match r {
            Some(r) => (
                true,
                r.live(now).into_iter().filter_map(loc_target).collect(),
            ),
            None => (false, Vec::new()),
        });
        if live.is_empty() {
            let user = aor.split(|&b| b == b'@').next().unwrap_or_default();
            let known = known
                || self
                    .auth
                    .as_ref()
                    .is_some_and(|a| a.knows(&String::from_utf8_lossy(user)));
            return Err(if known {
                self.reply(msg, flow, 480, &"Temporarily Unavailable", &[])
            } else {
                self.reply(msg, flow, 404, &"Not Found", &[])
            });
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
