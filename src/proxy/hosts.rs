//! Names from a hosts file (`/etc/hosts` format): how next hops that are
//! names resolve until RFC 3263 DNS arrives. Read once at start-up; the
//! proxy core only looks names up.

use std::collections::HashMap;
use std::net::IpAddr;

/// Name → addresses, in file order. Names are stored lowercase.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hosts {
    names: HashMap<String, Vec<IpAddr>>,
}

impl Hosts {
    /// Parse hosts-file text. Lines that do not start with an IP address
    /// are skipped; `#` starts a comment. An IPv6 zone (`fe80::1%eth0`) is
    /// skipped too: it cannot be used from a shared table.
    pub fn parse(text: &str) -> Hosts {
        let mut names: HashMap<String, Vec<IpAddr>> = HashMap::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or_default();
            let mut words = line.split_whitespace();
            let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) else {
                continue;
            };
            for name in words {
                let list = names.entry(name.to_ascii_lowercase()).or_default();
                if !list.contains(&ip) {
                    list.push(ip);
                }
            }
        }
        Hosts { names }
    }

    /// Read `/etc/hosts`; an unreadable file is an empty table.
    pub fn system() -> Hosts {
        std::fs::read_to_string("/etc/hosts")
            .map(|t| Hosts::parse(&t))
            .unwrap_or_default()
    }

    /// The first address for `name`, preferring `v4` or IPv6 as asked.
    pub fn lookup(&self, name: &str, prefer_v4: bool) -> Option<IpAddr> {
        let list = self.names.get(&name.to_ascii_lowercase())?;
        list.iter()
            .find(|a| a.is_ipv4() == prefer_v4)
            .or(list.first())
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_the_system_file() {
        let h = Hosts::parse("127.0.0.1 localhost\n::1 localhost ip6-localhost # v6\n# 10.0.0.1 gone\n192.0.2.7 GW.Example.NET gw\nbogus line\nfe80::1%eth0 linklocal\n");
        assert_eq!(
            h.lookup("localhost", true),
            Some("127.0.0.1".parse().unwrap())
        );
        assert_eq!(h.lookup("LOCALHOST", false), Some("::1".parse().unwrap()));
        assert_eq!(
            h.lookup("gw.example.net", true),
            Some("192.0.2.7".parse().unwrap())
        );
        assert_eq!(
            h.lookup("gw", false),
            Some("192.0.2.7".parse().unwrap()),
            "falls back to the other family"
        );
        assert_eq!(h.lookup("gone", true), None);
        assert_eq!(h.lookup("linklocal", false), None);
    }
}
