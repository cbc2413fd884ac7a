//! Who we are: every listener's address and advertised name. Used to
//! recognise our own Route and Record-Route values and Vias (RFC 3261
//! §16.4, §16.11), and to pick the sent-by for the Via we add.

use std::net::{IpAddr, SocketAddr};

use crate::config::{Config, Transport};

/// One listener as the outside world sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Me {
    pub transport: Transport,
    /// The socket address it is bound to.
    pub addr: SocketAddr,
    /// Host for Via and Record-Route: the advertised name, or the bound
    /// address (IPv6 in brackets).
    pub host: String,
    pub port: u16,
    /// `host:port`, for our Via's sent-by (built once).
    sent_by: String,
    /// `host` as an address when it is one (parsed once).
    host_ip: Option<IpAddr>,
}

impl Me {
    /// `host:port` for a Via sent-by.
    pub fn sent_by(&self) -> &str {
        &self.sent_by
    }
}

/// All our listeners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    listeners: Vec<Me>,
    /// Every shard's own UDP sockets for the requests it sends (stateful
    /// mode): our Vias name them, so they are us too.
    outbound: Vec<SocketAddr>,
}

impl Identity {
    pub fn new(cfg: &Config) -> Identity {
        let listeners = cfg
            .listen
            .iter()
            .map(|l| {
                let (host, port) = match &l.advertise {
                    Some(a) => split_host_port(a, l.addr.port()),
                    None => (bracket(l.addr.ip()), l.addr.port()),
                };
                let sent_by = format!("{host}:{port}");
                let host_ip = host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse()
                    .ok();
                Me {
                    transport: l.transport,
                    addr: l.addr,
                    host,
                    port,
                    sent_by,
                    host_ip,
                }
            })
            .collect();
        Identity {
            listeners,
            outbound: Vec::new(),
        }
    }

    /// Also recognise these addresses (every shard's outbound sockets).
    pub fn set_outbound(&mut self, addrs: &[SocketAddr]) {
        self.outbound = addrs.to_vec();
    }

    pub fn listeners(&self) -> &[Me] {
        &self.listeners
    }

    /// True if `host` (as written in a URI or Via; IPv6 in brackets or
    /// not) and `port` (absent = 5060) name one of our listeners, by bound
    /// address or by advertised name.
    pub fn is_me(&self, host: &[u8], port: Option<u16>) -> bool {
        let Ok(host) = std::str::from_utf8(host) else {
            return false;
        };
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return self.is_me_ip(ip, port);
        }
        let port = port.unwrap_or(5060);
        self.listeners.iter().any(|me| {
            port == me.port
                && me
                    .host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .eq_ignore_ascii_case(bare)
        })
    }

    /// [`Identity::is_me`] for a host that is already an address (a parsed
    /// URI's): no text round trip on the per-request path.
    pub fn is_me_ip(&self, ip: IpAddr, port: Option<u16>) -> bool {
        let port = port.unwrap_or(5060);
        self.listeners.iter().any(|me| {
            (ip == me.addr.ip() && port == me.addr.port())
                || (port == me.port && me.host_ip == Some(ip))
        }) || self
            .outbound
            .iter()
            .any(|a| a.ip() == ip && a.port() == port)
    }

    /// The listener to send to `dest` over `transport` from: one of the
    /// same address family if there is one.
    pub fn listener(&self, transport: Transport, dest: SocketAddr) -> Option<&Me> {
        let mut of_transport = self.listeners.iter().filter(|m| m.transport == transport);
        let first = of_transport.clone().next();
        of_transport
            .find(|m| m.addr.is_ipv4() == dest.is_ipv4())
            .or(first)
    }

    /// The listener bound to `local` for `transport` (where a request came in).
    pub fn by_local(&self, transport: Transport, local: SocketAddr) -> Option<&Me> {
        self.listeners
            .iter()
            .find(|m| m.transport == transport && m.addr == local)
    }
}

fn bracket(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    }
}

/// `host[:port]` (validated by the config loader), defaulting the port.
fn split_host_port(s: &str, default_port: u16) -> (String, u16) {
    if let Some(rest) = s.strip_prefix('[') {
        // [v6] or [v6]:port
        let (inner, after) = rest.split_once(']').unwrap_or((rest, ""));
        let port = after
            .strip_prefix(':')
            .and_then(|p| p.parse().ok())
            .unwrap_or(default_port);
        return (format!("[{inner}]"), port);
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h.to_string(), p.parse().unwrap_or(default_port)),
        _ => (s.to_string(), default_port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn id(extra: &str) -> Identity {
        let text = format!(
            "[[listen]]\ntransport = \"udp\"\naddr = \"127.0.0.1:5060\"\n[[listen]]\ntransport = \"tcp\"\naddr = \"[::1]:5070\"\n{extra}"
        );
        Identity::new(&Config::parse(&text, Path::new("t.toml")).unwrap())
    }

    #[test]
    fn recognises_addresses_and_names() {
        let me = id("[[listen]]\ntransport = \"udp\"\naddr = \"127.0.0.2:5062\"\nadvertise = \"Edge.Example.COM\"\n");
        assert!(me.is_me(b"127.0.0.1", None));
        assert!(me.is_me(b"127.0.0.1", Some(5060)));
        assert!(!me.is_me(b"127.0.0.1", Some(5061)));
        assert!(me.is_me(b"[::1]", Some(5070)));
        assert!(me.is_me(b"::1", Some(5070)));
        assert!(me.is_me(b"edge.example.com", Some(5062)));
        assert!(me.is_me(b"127.0.0.2", Some(5062)));
        assert!(!me.is_me(b"edge.example.com", None));
        assert!(!me.is_me(b"other.example.com", Some(5062)));
    }

    #[test]
    fn addresses_match_without_text() {
        let me = id("[[listen]]\ntransport = \"udp\"\naddr = \"127.0.0.2:5062\"\nadvertise = \"[2001:DB8:0::5]:5080\"\n");
        assert!(me.is_me_ip("127.0.0.1".parse().unwrap(), None));
        assert!(me.is_me_ip("::1".parse().unwrap(), Some(5070)));
        // An advertised address matches as an address, whatever its spelling.
        assert!(me.is_me_ip("2001:db8::5".parse().unwrap(), Some(5080)));
        assert!(me.is_me(b"[2001:db8::5]", Some(5080)));
        assert!(!me.is_me_ip("2001:db8::5".parse().unwrap(), Some(5060)));
        assert!(!me.is_me_ip("127.0.0.3".parse().unwrap(), None));
    }

    #[test]
    fn picks_a_listener_by_transport_and_family() {
        let me = id("[[listen]]\ntransport = \"udp\"\naddr = \"[::1]:5060\"\n");
        let v6 = me
            .listener(Transport::Udp, "[::1]:9".parse().unwrap())
            .unwrap();
        assert_eq!(v6.sent_by(), "[::1]:5060");
        let v4 = me
            .listener(Transport::Udp, "127.0.0.9:9".parse().unwrap())
            .unwrap();
        assert_eq!(v4.sent_by(), "127.0.0.1:5060");
        let tcp = me
            .listener(Transport::Tcp, "127.0.0.9:9".parse().unwrap())
            .unwrap();
        assert_eq!(
            tcp.addr,
            "[::1]:5070".parse().unwrap(),
            "falls back to another family"
        );
    }

    #[test]
    fn advertised_host_and_port() {
        assert_eq!(
            split_host_port("sip.example.com", 5060),
            ("sip.example.com".into(), 5060)
        );
        assert_eq!(
            split_host_port("sip.example.com:5080", 5060),
            ("sip.example.com".into(), 5080)
        );
        assert_eq!(
            split_host_port("[2001:db8::1]:5080", 5060),
            ("[2001:db8::1]".into(), 5080)
        );
        assert_eq!(
            split_host_port("[2001:db8::1]", 5061),
            ("[2001:db8::1]".into(), 5061)
        );
    }
}
