//! Source address lists: "is this peer one of our carriers?".
//!
//! Items are addresses ("192.0.2.7", "2001:db8::1") or networks
//! ("10.0.0.0/8", "2001:db8::/32"). Host bits below the length are accepted
//! and cleared ("10.1.2.3/8" is 10.0.0.0/8): operators paste an interface
//! address with its length, and refusing it helps nobody.
//!
//! An IPv4 peer may arrive as an IPv4-mapped IPv6 address (::ffff:a.b.c.d,
//! RFC 4291 §2.5.5.2) on a dual-stack socket, and it is the same peer: such
//! a source matches the IPv4 items, and an item written in mapped form is
//! kept as the IPv4 network it denotes.
//!
//! A set is kept as sorted, merged, disjoint address ranges per family, so
//! `contains` is one binary search however long the list.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One address or network, host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    len: u8,
}

/// A set of networks of both families.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CidrSet {
    /// Inclusive ranges, sorted, disjoint and not adjacent.
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

/// An item that is not an address or network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CidrError {
    pub item: String,
    pub problem: CidrProblem,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CidrProblem {
    BadAddress,
    /// Not a decimal number after the '/'.
    BadLength,
    LengthTooLong {
        len: u32,
        max: u8,
    },
}

/// Parse "addr" (a host: /32 or /128) or "addr/len".
pub fn parse_one(s: &str) -> Result<Cidr, CidrError> {
    let fail = |problem| CidrError {
        item: s.to_owned(),
        problem,
    };
    let (addr, len) = match s.split_once('/') {
        None => (s, None),
        Some((a, l)) => (a, Some(l)),
    };
    let addr: IpAddr = addr.parse().map_err(|_| fail(CidrProblem::BadAddress))?;
    let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
    let len = match len {
        None => u32::from(max),
        // One to three digits: u32's parser would also take "+8".
        Some(l) if (1..=3).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_digit()) => {
            l.parse::<u32>().map_err(|_| fail(CidrProblem::BadLength))?
        }
        Some(_) => return Err(fail(CidrProblem::BadLength)),
    };
    match u8::try_from(len) {
        Ok(l) if l <= max => Ok(Cidr::new(addr, l)),
        _ => Err(fail(CidrProblem::LengthTooLong { len, max })),
    }
}

impl Cidr {
    /// The network of `addr` with `len` bits, host bits cleared; an
    /// IPv4-mapped network of at least 96 bits becomes IPv4. `len` is
    /// capped at the family's width.
    pub fn new(addr: IpAddr, len: u8) -> Cidr {
        match addr {
            IpAddr::V6(a) if len >= 96 && a.to_ipv4_mapped().is_some() => {
                Cidr::new(a.to_canonical(), len - 96)
            }
            IpAddr::V4(a) => {
                let len = len.min(32);
                let (lo, _) = range4(u32::from(a), len);
                Cidr {
                    addr: IpAddr::V4(Ipv4Addr::from(lo)),
                    len,
                }
            }
            IpAddr::V6(a) => {
                let len = len.min(128);
                let (lo, _) = range6(u128::from(a), len);
                Cidr {
                    addr: IpAddr::V6(Ipv6Addr::from(lo)),
                    len,
                }
            }
        }
    }

    /// The network address (host bits cleared).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The number of network bits.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// Whether `ip` is in the network; a mapped source is its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let (lo, hi) = range4(u32::from(n), self.len);
                (lo..=hi).contains(&u32::from(a))
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let (lo, hi) = range6(u128::from(n), self.len);
                (lo..=hi).contains(&u128::from(a))
            }
            _ => false,
        }
    }
}

impl CidrSet {
    /// Parse every item; the first bad one is the error.
    pub fn parse(items: &[&str]) -> Result<CidrSet, CidrError> {
        let cidrs = items
            .iter()
            .map(|s| parse_one(s))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CidrSet::from_cidrs(cidrs))
    }

    pub fn from_cidrs(cidrs: impl IntoIterator<Item = Cidr>) -> CidrSet {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for c in cidrs {
            match c.addr {
                IpAddr::V4(a) => v4.push(range4(u32::from(a), c.len)),
                IpAddr::V6(a) => v6.push(range6(u128::from(a), c.len)),
            }
        }
        CidrSet {
            v4: merge(v4),
            v6: merge(v6),
        }
    }

    /// Whether `ip` is in any item; a mapped source is its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip.to_canonical() {
            IpAddr::V4(a) => within(&self.v4, u32::from(a)),
            IpAddr::V6(a) => within(&self.v6, u128::from(a)),
        }
    }

    /// True when nothing matches.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let item = &self.item;
        match self.problem {
            CidrProblem::BadAddress => write!(
                f,
                "{item:?} is not an IP address or network, like \"10.0.0.0/8\" or \"2001:db8::/32\""
            ),
            CidrProblem::BadLength => write!(f, "{item:?}: the length after '/' is not a number"),
            CidrProblem::LengthTooLong { len, max } => {
                write!(f, "{item:?}: length {len} is longer than {max}")
            }
        }
    }
}

impl std::error::Error for CidrError {}

fn range4(a: u32, len: u8) -> (u32, u32) {
    // checked_shr: a shift by the full width (len 0) is no mask at all.
    let host = u32::MAX.checked_shr(u32::from(len)).unwrap_or(0);
    (a & !host, a | host)
}

fn range6(a: u128, len: u8) -> (u128, u128) {
    let host = u128::MAX.checked_shr(u32::from(len)).unwrap_or(0);
    (a & !host, a | host)
}

/// Sort and merge overlapping or adjacent ranges.
fn merge<T: Ord + Copy + Step>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match out.last_mut() {
            Some(last) if last.1.next().is_none_or(|n| lo <= n) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out.shrink_to_fit();
    out
}

fn within<T: Ord + Copy>(ranges: &[(T, T)], x: T) -> bool {
    let i = ranges.partition_point(|&(lo, _)| lo <= x);
    i > 0 && x <= ranges[i - 1].1
}

trait Step: Sized {
    fn next(self) -> Option<Self>;
}

impl Step for u32 {
    fn next(self) -> Option<u32> {
        self.checked_add(1)
    }
}

impl Step for u128 {
    fn next(self) -> Option<u128> {
        self.checked_add(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn set(items: &[&str]) -> CidrSet {
        CidrSet::parse(items).unwrap()
    }

    #[test]
    fn v4_networks_and_hosts() {
        let s = set(&["10.0.0.0/8", "192.0.2.7", "198.51.100.0/24"]);
        assert!(s.contains(ip("10.0.0.0")));
        assert!(s.contains(ip("10.255.255.255")));
        assert!(!s.contains(ip("11.0.0.0")));
        assert!(!s.contains(ip("9.255.255.255")));
        assert!(s.contains(ip("192.0.2.7")));
        assert!(!s.contains(ip("192.0.2.6")));
        assert!(!s.contains(ip("192.0.2.8")));
        assert!(s.contains(ip("198.51.100.200")));
        assert!(!s.contains(ip("198.51.101.0")));
        assert!(
            !s.contains(ip("::a00:1")),
            "an IPv6 address is not an IPv4 one"
        );
    }

    #[test]
    fn v6_networks_and_hosts() {
        let s = set(&["2001:db8::/32", "::1/128", "fe80::1"]);
        assert!(s.contains(ip("2001:db8:ffff::5")));
        assert!(!s.contains(ip("2001:db9::")));
        assert!(s.contains(ip("::1")));
        assert!(!s.contains(ip("::2")));
        assert!(s.contains(ip("fe80::1")));
        assert!(!s.contains(ip("fe80::2")));
        assert!(!s.contains(ip("10.0.0.1")));
    }

    #[test]
    fn mapped_sources_match_v4_items() {
        let s = set(&["10.0.0.0/8", "2001:db8::/32"]);
        assert!(s.contains(ip("::ffff:10.1.2.3")));
        assert!(!s.contains(ip("::ffff:11.1.2.3")));
        // An item in mapped form is the IPv4 network it names.
        let m = set(&["::ffff:192.0.2.0/120"]);
        assert!(m.contains(ip("192.0.2.99")));
        assert!(m.contains(ip("::ffff:192.0.2.99")));
        assert!(!m.contains(ip("192.0.3.0")));
        assert_eq!(
            parse_one("::ffff:192.0.2.0/120").unwrap().to_string(),
            "192.0.2.0/24"
        );
    }

    #[test]
    fn zero_and_full_lengths() {
        let all4 = set(&["0.0.0.0/0"]);
        assert!(all4.contains(ip("0.0.0.0")));
        assert!(all4.contains(ip("255.255.255.255")));
        assert!(all4.contains(ip("::ffff:1.2.3.4")));
        assert!(!all4.contains(ip("2001:db8::1")));
        let all6 = set(&["::/0"]);
        assert!(all6.contains(ip("::")));
        assert!(all6.contains(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
        assert!(!all6.contains(ip("1.2.3.4")));
        let one = set(&[
            "255.255.255.255/32",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128",
        ]);
        assert!(one.contains(ip("255.255.255.255")));
        assert!(!one.contains(ip("255.255.255.254")));
        assert!(one.contains(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
        assert!(!one.contains(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe")));
        assert!(CidrSet::parse(&[]).unwrap().is_empty());
        assert!(!set(&["::/0"]).is_empty());
    }

    #[test]
    fn host_bits_are_cleared() {
        let c = parse_one("10.1.2.3/8").unwrap();
        assert_eq!((c.addr(), c.prefix_len()), (ip("10.0.0.0"), 8));
        assert_eq!(
            parse_one("2001:db8::1/32").unwrap().to_string(),
            "2001:db8::/32"
        );
        assert_eq!(parse_one("192.0.2.1").unwrap().to_string(), "192.0.2.1/32");
        assert!(c.contains(ip("10.200.0.1")));
        assert!(!c.contains(ip("11.0.0.1")));
    }

    #[test]
    fn overlapping_and_adjacent_items_merge() {
        let s = set(&[
            "10.0.0.0/9",
            "10.128.0.0/9",
            "10.1.0.0/16",
            "10.0.0.0/8",
            "12.0.0.0/8",
        ]);
        assert_eq!(
            s.v4,
            vec![(0x0a00_0000, 0x0aff_ffff), (0x0c00_0000, 0x0cff_ffff)]
        );
        assert!(!s.contains(ip("11.0.0.0")));
        assert!(s.contains(ip("12.0.0.0")));
        let halves = set(&["10.128.0.0/9", "10.0.0.0/9"]);
        assert_eq!(
            halves.v4,
            vec![(0x0a00_0000, 0x0aff_ffff)],
            "adjacent ranges merge"
        );
        let top = set(&["255.255.255.255", "255.255.255.254/31", "0.0.0.0"]);
        assert_eq!(top.v4, vec![(0, 0), (0xffff_fffe, 0xffff_ffff)]);
    }

    proptest! {
        #[test]
        fn a_set_holds_what_one_of_its_items_holds(
            items in prop::collection::vec((any::<u32>(), 0u8..=32, any::<u128>(), 0u8..=128), 1..12),
            probes in prop::collection::vec((any::<prop::sample::Index>(), any::<bool>(), -1i8..=1), 1..40),
        ) {
            // Items in the lower quarter of each family, so they overlap
            // and touch.
            let v4: Vec<Cidr> = (items.iter())
                .map(|&(a, l, _, _)| Cidr::new(IpAddr::V4((a >> 2).into()), l))
                .collect();
            let v6: Vec<Cidr> = (items.iter())
                .map(|&(_, _, a, l)| Cidr::new(IpAddr::V6((a >> 2).into()), l))
                .collect();
            let all: Vec<Cidr> = v4.iter().chain(&v6).copied().collect();
            let s = CidrSet::from_cidrs(all.iter().copied());
            for (i, last, d) in probes {
                // At an item's first or last address, or one beside it.
                let (lo4, hi4) = match v4[i.index(v4.len())].addr {
                    IpAddr::V4(a) => range4(u32::from(a), v4[i.index(v4.len())].len),
                    IpAddr::V6(_) => unreachable!("v4 items"),
                };
                let (lo6, hi6) = match v6[i.index(v6.len())].addr {
                    IpAddr::V6(a) => range6(u128::from(a), v6[i.index(v6.len())].len),
                    IpAddr::V4(_) => unreachable!("v6 items"),
                };
                let p4 = if last { hi4 } else { lo4 }.wrapping_add_signed(d.into());
                let p6 = if last { hi6 } else { lo6 }.wrapping_add_signed(d.into());
                let mapped = IpAddr::V6(Ipv4Addr::from(p4).to_ipv6_mapped());
                for ip in [IpAddr::V4(p4.into()), IpAddr::V6(p6.into()), mapped] {
                    let want = all.iter().any(|c| c.contains(ip));
                    prop_assert_eq!(s.contains(ip), want, "{}", ip);
                }
            }
        }
    }

    #[test]
    fn bad_items_are_named() {
        let cases = [
            (
                "10.0.0.0/33",
                CidrProblem::LengthTooLong { len: 33, max: 32 },
            ),
            ("::/129", CidrProblem::LengthTooLong { len: 129, max: 128 }),
            ("::/999", CidrProblem::LengthTooLong { len: 999, max: 128 }),
            ("10.0.0.0/", CidrProblem::BadLength),
            ("10.0.0.0/+8", CidrProblem::BadLength),
            ("10.0.0.0/8/8", CidrProblem::BadLength),
            ("10.0.0.0/0008", CidrProblem::BadLength),
            ("10.0.0/8", CidrProblem::BadAddress),
            ("example.com", CidrProblem::BadAddress),
            (" 10.0.0.1", CidrProblem::BadAddress),
            ("", CidrProblem::BadAddress),
            ("[::1]", CidrProblem::BadAddress),
        ];
        for (item, problem) in cases {
            let want = CidrError {
                item: item.to_owned(),
                problem,
            };
            assert_eq!(parse_one(item), Err(want), "{item:?}");
        }
        let err = CidrSet::parse(&["10.0.0.0/8", "nope", "::/200"]).unwrap_err();
        assert_eq!(err.item, "nope");
        assert_eq!(
            err.to_string(),
            "\"nope\" is not an IP address or network, like \"10.0.0.0/8\" or \"2001:db8::/32\""
        );
        let err = parse_one("10.0.0.0/33").unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"10.0.0.0/33\": length 33 is longer than 32"
        );
    }
}
