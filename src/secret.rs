//! Randomness from the OS for the secrets Siphon makes at start (the
//! branch key, the nonce key when none is configured).

use std::hash::{BuildHasher, Hasher};
use std::io::Read;

/// Fill `out` from the OS's random source. `/dev/urandom` first; if it
/// cannot be read (a chroot without /dev), std's `RandomState` keys, which
/// std seeds from the OS (getrandom(2)), are stretched with SipHash: still
/// unpredictable to a sender on the network.
pub fn os_random(out: &mut [u8]) {
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(out));
    if read.is_ok() {
        return;
    }
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(i);
        let v = h.finish().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn two_draws_differ() {
        let (mut a, mut b) = ([0u8; 16], [0u8; 16]);
        super::os_random(&mut a);
        super::os_random(&mut b);
        assert_ne!(a, b);
        assert_ne!(a, [0u8; 16]);
    }
}
