//! Stateless nonces (RFC 7616 §3.3 suggests a time-stamp and a keyed hash).
//!
//! A nonce is 64 lowercase hex digits of 32 bytes:
//! `issued (u64 BE) || seq (u64 BE) || first 16 bytes of
//! HMAC-SHA256(secret, issued || seq || realm)`. `seq` is a per-`Auth`
//! counter started at a random value, so two challenges issued in the same
//! second carry different nonces: every client then has its own nonce and
//! its own nonce-count sequence in the replay window (with the time alone,
//! every phone registering in one second would share a nonce, and the
//! second one's `nc=00000001` would look like a replay).

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::digest::{decode_hex, encode_hex};

/// The bytes of a nonce and of its hex text.
const NONCE_BYTES: usize = 32;
pub(crate) const NONCE_HEX: usize = 2 * NONCE_BYTES;

/// What an authentic nonce says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Opened {
    /// Issue time, unix seconds.
    pub(crate) issued: u64,
    /// The truncated MAC: unique per challenge, the replay window's key.
    pub(crate) mac: [u8; 16],
}

/// Mints and opens nonces for one realm under one secret.
pub(crate) struct NonceKey {
    /// HMAC-SHA256 keyed with the secret, cloned per use (the key schedule
    /// is done once).
    mac: Hmac<Sha256>,
    realm: Vec<u8>,
    seq: AtomicU64,
}

impl NonceKey {
    pub(crate) fn new(secret: &[u8; 32], realm: &[u8]) -> NonceKey {
        // HMAC takes keys of any length (RFC 2104 §2): this cannot fail.
        let mac = match Hmac::<Sha256>::new_from_slice(secret) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC accepts a 32-byte key"),
        };
        // Only uniqueness matters, not secrecy (seq is in the clear): a
        // random start keeps two `Auth`s (or one after a restart within the
        // same second) from minting the same nonce. std's RandomState is
        // seeded from the OS.
        let start = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        NonceKey {
            mac,
            realm: realm.to_vec(),
            seq: AtomicU64::new(start),
        }
    }

    /// A fresh nonce issued at `now`, as its hex text.
    pub(crate) fn mint(&self, now: u64) -> String {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        self.mint_with(now, seq)
    }

    pub(crate) fn mint_with(&self, issued: u64, seq: u64) -> String {
        let mut raw = [0u8; NONCE_BYTES];
        raw[..8].copy_from_slice(&issued.to_be_bytes());
        raw[8..16].copy_from_slice(&seq.to_be_bytes());
        let tag = self.tag(&raw[..16]).finalize().into_bytes();
        raw[16..].copy_from_slice(&tag[..16]);
        let mut text = [0u8; NONCE_HEX];
        encode_hex(&raw, &mut text);
        // Hex digits only: ASCII.
        String::from_utf8_lossy(&text).into_owned()
    }

    /// The issue time and MAC of a nonce we minted; `None` for anything
    /// else (wrong length, not hex, MAC mismatch — compared in constant
    /// time by `verify_truncated_left`).
    pub(crate) fn open(&self, text: &[u8]) -> Option<Opened> {
        let mut raw = [0u8; NONCE_BYTES];
        decode_hex(text, &mut raw)?;
        self.tag(&raw[..16])
            .verify_truncated_left(&raw[16..])
            .ok()?;
        let mut issued = [0u8; 8];
        issued.copy_from_slice(&raw[..8]);
        let mut mac = [0u8; 16];
        mac.copy_from_slice(&raw[16..]);
        Some(Opened {
            issued: u64::from_be_bytes(issued),
            mac,
        })
    }

    fn tag(&self, issued_seq: &[u8]) -> Hmac<Sha256> {
        let mut m = self.mac.clone();
        m.update(issued_seq);
        m.update(&self.realm);
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> NonceKey {
        NonceKey::new(&[7u8; 32], b"example.com")
    }

    #[test]
    fn mint_then_open() {
        let k = key();
        let n = k.mint(1_700_000_000);
        assert_eq!(n.len(), NONCE_HEX);
        assert!(n
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        let o = k.open(n.as_bytes()).map(|o| o.issued);
        assert_eq!(o, Some(1_700_000_000));
        // Hex case does not matter to the MAC.
        assert!(k.open(n.to_ascii_uppercase().as_bytes()).is_some());
    }

    #[test]
    fn same_second_nonces_differ() {
        let k = key();
        let a = k.mint(5);
        let b = k.mint(5);
        assert_ne!(a, b);
        let (oa, ob) = (k.open(a.as_bytes()), k.open(b.as_bytes()));
        assert!(oa.is_some() && ob.is_some());
        assert_ne!(oa.map(|o| o.mac), ob.map(|o| o.mac));
    }

    #[test]
    fn forged_or_foreign_nonces_fail() {
        let k = key();
        let n = k.mint_with(100, 1);
        // Change the issue time without the secret.
        let mut forged = n.clone().into_bytes();
        forged[15] = if forged[15] == b'0' { b'1' } else { b'0' };
        assert_eq!(k.open(&forged), None);
        // Same secret, other realm.
        assert_eq!(NonceKey::new(&[7u8; 32], b"other").open(n.as_bytes()), None);
        // Other secret.
        assert_eq!(
            NonceKey::new(&[8u8; 32], b"example.com").open(n.as_bytes()),
            None
        );
        // Truncated, extended, not hex.
        assert_eq!(k.open(&n.as_bytes()[..NONCE_HEX - 2]), None);
        assert_eq!(k.open(format!("{n}00").as_bytes()), None);
        let mut not_hex = n.clone().into_bytes();
        not_hex[0] = b'z';
        assert_eq!(k.open(&not_hex), None);
        assert_eq!(k.open(b""), None);
    }
}
