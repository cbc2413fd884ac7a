//! NAT traversal inside dialogs (Kamailio's `set_contact_alias` and
//! `handle_ruri_alias`): when a dialog-forming message's Contact does not
//! name the address it came from and a NAT is likely between (see
//! `config::Nat`), the Contact we relay gets `;alias=IP~PORT~T` naming
//! that address. The other party sends its in-dialog requests to that
//! Contact through our Record-Route; we see the alias, send the request
//! to the address it names (from the listener's own socket, the one the
//! NAT let out) and strip it from the Request-URI, so the UA receives its
//! own Contact back.

use std::net::{IpAddr, SocketAddr};

use super::local::via_moved;
use super::request::NextHop;
use super::Core;
use crate::config::{Nat, Transport};
use crate::registrar::register::is_private;
use crate::sip::addr::NameAddr;
use crate::sip::uri::Uri;
use crate::sip::{HeaderName, Message};

impl Core {
    /// The `alias=…` parameter for the Contact of `msg`, received from
    /// `src`, when one is needed: Record-Route is on (else in-dialog
    /// requests do not come through us), the Contact is an address that
    /// is not `src`, and `[proxy] nat` says a NAT is there (`auto`: the
    /// Contact is private, or — for a request — its Via moved; `always`:
    /// any difference). The cheap tests come first: most messages stop
    /// at one of them.
    pub(super) fn nat_alias(
        &self,
        msg: &Message,
        src: SocketAddr,
        transport: Transport,
        request: bool,
    ) -> Option<Vec<u8>> {
        let mode = self.cfg.proxy.nat;
        if !self.cfg.proxy.record_route || mode == Nat::Off {
            return None;
        }
        let value = msg.header(HeaderName::Contact)?;
        let addr = NameAddr::parse(value, HeaderName::Contact).ok()?;
        let uri = addr.uri().ok()?;
        let ip = uri.host.ip()?;
        if SocketAddr::new(ip, uri.port_or_default()) == src {
            return None;
        }
        if mode == Nat::Auto && !is_private(ip) && !(request && via_moved(msg, src)) {
            return None;
        }
        let host = match src.ip() {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) => format!("[{a}]"),
        };
        let t = match transport {
            Transport::Udp => 1,
            Transport::Tcp => 2,
        };
        Some(format!("alias={host}~{}~{t}", src.port()).into_bytes())
    }
}

impl Core {
    /// [`Core::nat_alias`] for a response being relayed upstream (a
    /// provisional or 2xx with a Contact: the callee's side of a dialog),
    /// from where the message being handled came from.
    pub(super) fn response_alias(&self, msg: &Message) -> Option<Vec<u8>> {
        let (src, transport) = self.src?;
        if !msg.status().is_some_and(|c| (101..300).contains(&c)) {
            return None;
        }
        self.nat_alias(msg, src, transport, false)
    }
}

/// An in-dialog Request-URI with an `alias`: the hop it names, and the
/// Request-URI without it.
pub(super) fn alias_hop(target: &Uri<'_>) -> Option<(NextHop, Vec<u8>)> {
    let value = target.param("alias")??;
    let text = std::str::from_utf8(value).ok()?;
    let mut parts = text.split('~');
    let host = parts.next()?.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = host.parse().ok()?;
    let port: u16 = parts.next()?.parse().ok()?;
    let transport = match parts.next()? {
        "1" => Transport::Udp,
        "2" => Transport::Tcp,
        _ => return None,
    };
    if parts.next().is_some() || port == 0 {
        return None;
    }
    let mut uri = Vec::with_capacity(64);
    target.write_to(&mut uri);
    let cut = memchr::memmem::find(&uri, b";alias=")?;
    let end = uri[cut + 1..]
        .iter()
        .position(|&c| c == b';' || c == b'?')
        .map_or(uri.len(), |i| cut + 1 + i);
    uri.drain(cut..end);
    Some((NextHop::to_addr(SocketAddr::new(ip, port), transport), uri))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alias_names_the_hop_and_leaves_the_uri() {
        let u = Uri::parse(b"sip:alice@192.168.1.5:5060;alias=127.0.0.9~40000~1;transport=udp")
            .unwrap();
        let (hop, uri) = alias_hop(&u).unwrap();
        assert_eq!(uri, b"sip:alice@192.168.1.5:5060;transport=udp");
        assert_eq!(
            hop.addr(),
            Some(("127.0.0.9:40000".parse().unwrap(), Transport::Udp))
        );
        let u = Uri::parse(b"sip:a@10.0.0.1;alias=[2001:db8::1]~5070~2").unwrap();
        let (hop, uri) = alias_hop(&u).unwrap();
        assert_eq!(uri, b"sip:a@10.0.0.1");
        assert_eq!(
            hop.addr(),
            Some(("[2001:db8::1]:5070".parse().unwrap(), Transport::Tcp))
        );
        for bad in [
            "sip:a@h;alias=x~1~1",
            "sip:a@h;alias=1.2.3.4~0~1",
            "sip:a@h;alias=1.2.3.4~5~9",
            "sip:a@h;alias",
            "sip:a@h",
        ] {
            assert!(
                alias_hop(&Uri::parse(bad.as_bytes()).unwrap()).is_none(),
                "{bad}"
            );
        }
    }
}
