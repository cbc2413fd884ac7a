//! The Digest computations (RFC 7616 §3.4.1–§3.4.3): `H`, `HA1`, the
//! response, lowercase hex and a constant-time comparison. No allocation:
//! a hex digest lives in a 64-byte stack buffer.

use md5::{Digest, Md5};
use sha2::Sha256;

use super::Algorithm;

/// A lowercase hex digest: 32 characters for MD5, 64 for SHA-256.
#[derive(Clone, Copy)]
pub(crate) struct Hex {
    buf: [u8; 64],
    len: usize,
}

impl Hex {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        // `len` is 32 or 64 by construction (`from_digest`, `parse`).
        &self.buf[..self.len]
    }

    pub(crate) fn as_str(&self) -> &str {
        // Only lowercase hex digits are ever written to `buf`.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    fn from_digest(bytes: &[u8]) -> Hex {
        let mut buf = [0u8; 64];
        let len = (bytes.len() * 2).min(64);
        encode_hex(&bytes[..len / 2], &mut buf[..len]);
        Hex { buf, len }
    }

    /// A stored HA1 (users file, [`super::Credential::ha1`]): exactly the
    /// digest length of `alg` in hex digits, kept lowercase.
    pub(crate) fn parse(alg: Algorithm, text: &str) -> Option<Hex> {
        let t = text.as_bytes();
        if t.len() != alg.hex_len() || !t.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        let mut buf = [0u8; 64];
        for (d, s) in buf.iter_mut().zip(t) {
            *d = s.to_ascii_lowercase();
        }
        Some(Hex { buf, len: t.len() })
    }
}

/// `H(parts[0] ":" parts[1] ":" ...)`: every Digest hash input is a
/// colon-joined list (RFC 7616 §3.4.1–§3.4.3).
pub(crate) fn h(alg: Algorithm, parts: &[&[u8]]) -> Hex {
    fn feed<D: Digest>(mut d: D, parts: &[&[u8]]) -> Hex {
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                d.update(b":");
            }
            d.update(p);
        }
        Hex::from_digest(&d.finalize())
    }
    match alg {
        Algorithm::Md5 => feed(Md5::new(), parts),
        Algorithm::Sha256 => feed(Sha256::new(), parts),
    }
}

/// `HA1 = H(username ":" realm ":" passwd)` (RFC 7616 §3.4.2).
pub(crate) fn ha1(alg: Algorithm, user: &[u8], realm: &[u8], password: &[u8]) -> Hex {
    h(alg, &[user, realm, password])
}

/// The `-sess` HA1: `H(H(username ":" realm ":" passwd) ":" nonce ":"
/// cnonce)` (RFC 7616 §3.4.2), from the plain HA1.
pub(crate) fn ha1_sess(alg: Algorithm, ha1: &Hex, nonce: &[u8], cnonce: &[u8]) -> Hex {
    h(alg, &[ha1.as_bytes(), nonce, cnonce])
}

/// `qop=auth` inputs: the nonce count as sent (8 hex digits) and the cnonce.
#[derive(Clone, Copy)]
pub(crate) struct QopAuth<'a> {
    pub(crate) nc: &'a [u8],
    pub(crate) cnonce: &'a [u8],
}

/// The request-digest. With `qop=auth`:
/// `H(HA1 ":" nonce ":" nc ":" cnonce ":" "auth" ":" H(A2))` (RFC 7616
/// §3.4.1); without qop, the RFC 2069 form `H(HA1 ":" nonce ":" H(A2))`
/// that RFC 2617 §3.2.2.1 keeps. `A2 = method ":" digest-uri`
/// (§3.4.3, qop=auth only: auth-int is not supported).
pub(crate) fn response(
    alg: Algorithm,
    ha1: &Hex,
    nonce: &[u8],
    qop: Option<QopAuth<'_>>,
    method: &[u8],
    uri: &[u8],
) -> Hex {
    let ha2 = h(alg, &[method, uri]);
    match qop {
        Some(q) => h(
            alg,
            &[
                ha1.as_bytes(),
                nonce,
                q.nc,
                q.cnonce,
                b"auth",
                ha2.as_bytes(),
            ],
        ),
        None => h(alg, &[ha1.as_bytes(), nonce, ha2.as_bytes()]),
    }
}

/// Lowercase hex of `src` into `dst` (`dst.len() == 2 * src.len()`).
pub(crate) fn encode_hex(src: &[u8], dst: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, b) in dst.chunks_exact_mut(2).zip(src) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0x0f)];
    }
}

/// Hex (either case) into `dst`; `None` unless `src` is exactly
/// `2 * dst.len()` hex digits.
pub(crate) fn decode_hex(src: &[u8], dst: &mut [u8]) -> Option<()> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    if src.len() != 2 * dst.len() {
        return None;
    }
    for (d, pair) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *d = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(())
}

/// Compares the expected lowercase hex digest with the one received, case
/// folded, in time that depends only on the length (which is public: it
/// follows from the algorithm). The caller has checked that `received` is
/// all hex digits, so `| 0x20` is exactly ASCII lowercase here.
pub(crate) fn hex_eq_ct(expected: &[u8], received: &[u8]) -> bool {
    if expected.len() != received.len() {
        return false;
    }
    let diff = expected
        .iter()
        .zip(received)
        .fold(0u8, |acc, (a, b)| acc | (a ^ (b | 0x20)));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_rejects() {
        let mut out = [0u8; 4];
        encode_hex(&[0x00, 0x9f], &mut out);
        assert_eq!(&out, b"009f");
        let mut back = [0u8; 2];
        assert_eq!(decode_hex(b"009F", &mut back), Some(()));
        assert_eq!(back, [0x00, 0x9f]);
        assert_eq!(decode_hex(b"009", &mut back), None);
        assert_eq!(decode_hex(b"00g0", &mut back), None);
        assert_eq!(decode_hex(b"+0+0", &mut back), None);
    }

    #[test]
    fn constant_time_compare_folds_case_only() {
        assert!(hex_eq_ct(b"0a1f", b"0A1F"));
        assert!(!hex_eq_ct(b"0a1f", b"0a1e"));
        assert!(!hex_eq_ct(b"0a1f", b"0a1"));
    }

    #[test]
    fn known_hashes() {
        // MD5("") and SHA-256("") (RFC 1321 §A.5, FIPS 180-2 examples).
        assert_eq!(
            h(Algorithm::Md5, &[b""]).as_str(),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
        assert_eq!(
            h(Algorithm::Sha256, &[b""]).as_str(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // The parts are joined with ':'.
        assert_eq!(
            h(Algorithm::Md5, &[b"a", b"b"]).as_str(),
            h(Algorithm::Md5, &[b"a:b"]).as_str()
        );
    }

    #[test]
    fn stored_ha1_parse() {
        let md5 = "939E7578ED9E3C518A452ACEE763BCE9";
        let parsed = Hex::parse(Algorithm::Md5, md5).map(|h| h.as_str().to_owned());
        assert_eq!(parsed.as_deref(), Some("939e7578ed9e3c518a452acee763bce9"));
        assert!(Hex::parse(Algorithm::Sha256, md5).is_none());
        assert!(Hex::parse(Algorithm::Md5, &md5.replace('E', "x")).is_none());
    }
}
