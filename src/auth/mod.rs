//! SIP Digest authentication, server side (RFC 3261 §22, RFC 7616,
//! RFC 8760): challenges for `WWW-Authenticate` / `Proxy-Authenticate`
//! and the verdict on an `Authorization` / `Proxy-Authorization` value.
//!
//! Sans-IO: no clock, no sockets; `now` is unix seconds from the caller.
//!
//! - Algorithms: SHA-256 and MD5 (absent `algorithm` means MD5, for
//!   RFC 2617 clients), and their `-sess` variants when a client sends
//!   them. Challenges offer SHA-256 first, then MD5 (RFC 7616 §3.7 and
//!   RFC 8760: the preferred algorithm first). `qop=auth` only;
//!   `auth-int` and `userhash=true` are refused as malformed.
//! - Nonces are stateless: issue time, a per-challenge sequence number and
//!   a truncated HMAC-SHA256 under the server secret (layout in
//!   `nonce.rs`). An authentic nonce older than `nonce_lifetime_s` gives
//!   [`Verdict::Stale`], but only when the response was right for it
//!   (RFC 7616 §3.3 `stale`: the client may retry without asking the user
//!   again); a forged one, or one more than 5 s in the future, gives
//!   [`Verdict::BadNonce`].
//! - Replays: with `qop=auth` the nonce count must grow per nonce; a
//!   bounded, sharded window remembers the highest one accepted
//!   (`replay.rs`). Requests without `qop` (RFC 2069 style) carry no
//!   count: they are checked for nonce validity only, so one can be
//!   replayed while its nonce lives. Clients that offer qop should use it.
//! - `uri` must equal the request's Request-URI, byte for byte
//!   (RFC 3261 §22.4, RFC 7616 §3.4.6).
//!
//! # Users file
//!
//! [`parse_users`] reads one user per line; empty lines and lines starting
//! with `#` are skipped, and whitespace around a line is ignored:
//!
//! ```text
//! # username:password=SECRET          (SECRET is the rest of the line)
//! alice:password=correct horse;battery
//! # username:ha1=MD5HEX;ha1_sha256=SHA256HEX   (either or both)
//! bob:ha1=939e7578ed9e3c518a452acee763bce9
//! carol:ha1=...32 hex...;ha1_sha256=...64 hex...
//! ```
//!
//! The username runs to the first `:` and has no whitespace. HA1s are
//! `H(username:realm:password)` for the proxy's realm ([`ha1_hex`]); a
//! user with only an MD5 HA1 fails SHA-256 requests. Errors name the
//! line: `line 3: ha1 must be 32 hex digits`.

mod client;
mod digest;
mod lockout;
mod nonce;
mod params;
mod replay;
mod users;

pub use client::client_response;
pub use users::{parse_users, Credential, Users};

use std::fmt;

use digest::QopAuth;
use nonce::NonceKey;
use params::{push_quoted, RawCredentials};
use replay::{ReplayWindow, Seen};

/// How far in the future a nonce's issue time may be (clock skew between
/// proxies sharing a secret) before it is refused.
const FUTURE_SKEW_S: u64 = 5;

/// A Digest hash algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    /// `MD5` or `SHA-256`, case-insensitive.
    pub fn parse(s: &[u8]) -> Option<Algorithm> {
        match Algorithm::parse_sess(s)? {
            (alg, false) => Some(alg),
            (_, true) => None,
        }
    }

    /// The name in the `algorithm` parameter.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// Also `MD5-sess` / `SHA-256-sess`: the algorithm and whether `-sess`.
    fn parse_sess(s: &[u8]) -> Option<(Algorithm, bool)> {
        let (base, sess) = match s.len().checked_sub(5) {
            Some(at) if s[at..].eq_ignore_ascii_case(b"-sess") => (&s[..at], true),
            _ => (s, false),
        };
        let alg = if base.eq_ignore_ascii_case(b"MD5") {
            Algorithm::Md5
        } else if base.eq_ignore_ascii_case(b"SHA-256") {
            Algorithm::Sha256
        } else {
            return None;
        };
        Some((alg, sess))
    }

    /// Hex digits in a digest.
    fn hex_len(self) -> usize {
        match self {
            Algorithm::Md5 => 32,
            Algorithm::Sha256 => 64,
        }
    }
}

/// `HA1 = H(username:realm:password)` in lowercase hex: what a users file
/// stores instead of the password.
pub fn ha1_hex(alg: Algorithm, user: &str, realm: &str, password: &str) -> String {
    digest::ha1(alg, user.as_bytes(), realm.as_bytes(), password.as_bytes())
        .as_str()
        .to_owned()
}

/// The outcome of checking one credentials header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Authenticated.
    Ok { username: String },
    /// The right response for a nonce of ours that has expired: challenge
    /// again with `stale=true`. Also when the replay window is full.
    Stale,
    /// Well-formed, but for another realm: ignore this header (another one
    /// may match).
    OtherRealm,
    /// No such user.
    UnknownUser,
    /// The response does not match (or the user has no HA1 for the
    /// algorithm used).
    WrongPassword,
    /// A nonce count not higher than one already accepted for the nonce.
    Replay,
    /// The nonce is not one of ours, or claims to be from the future.
    BadNonce,
    /// The header could not be used; the reason says why.
    Malformed(&'static str),
    /// `uri` differs from the Request-URI.
    UriMismatch,
}

impl Verdict {
    /// A short reason phrase for the response. `UnknownUser` and
    /// `WrongPassword` share one, so the wire does not tell which users
    /// exist; the variant itself is for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Verdict::Ok { .. } => "OK",
            Verdict::Stale => "Stale nonce",
            Verdict::OtherRealm => "Other realm",
            Verdict::UnknownUser | Verdict::WrongPassword => "Bad credentials",
            Verdict::Replay => "Replayed nonce count",
            Verdict::BadNonce => "Bad nonce",
            Verdict::Malformed(r) => r,
            Verdict::UriMismatch => "URI mismatch",
        }
    }
}

/// `[auth] max_nonce_failures` when not set.
pub const DEFAULT_NONCE_FAILURES: u32 = 5;

/// A Digest authenticator for one realm. `Sync`: share one between
/// threads (the replay window is sharded behind mutexes).
pub struct Auth {
    realm: String,
    nonces: NonceKey,
    nonce_lifetime_s: u64,
    users: Users,
    replay: ReplayWindow,
    /// Challenges offered, in this order; credentials for another
    /// algorithm are refused.
    algorithms: Vec<Algorithm>,
    /// Failed authentications one nonce may serve before it is stale.
    max_nonce_failures: u32,
    /// Failed authentications per username (`user_failures`).
    lockout: lockout::Lockout,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("realm", &self.realm)
            .field("nonce_lifetime_s", &self.nonce_lifetime_s)
            .field("users", &self.users.len())
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// `secret` keys the nonce MACs: proxies that share it accept each
    /// other's nonces. `max_nonces` bounds the replay window (at least 1).
    /// `realm` is sent as a quoted string; CR and LF in it are dropped
    /// on the wire, so keep it to printable text.
    pub fn new(
        realm: String,
        secret: [u8; 32],
        nonce_lifetime_s: u64,
        users: Users,
        max_nonces: usize,
    ) -> Auth {
        Auth {
            nonces: NonceKey::new(&secret, realm.as_bytes()),
            realm,
            nonce_lifetime_s,
            users,
            replay: ReplayWindow::new(max_nonces),
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            max_nonce_failures: DEFAULT_NONCE_FAILURES,
            lockout: lockout::Lockout::new(0, 60, 300, 0),
        }
    }

    /// Lock a username for `lock_s` after `failures` failed
    /// authentications within `window_s` (0: never), counting at most
    /// `max_users` names at once.
    pub fn with_user_lockout(
        mut self,
        failures: u32,
        window_s: u64,
        lock_s: u64,
        max_users: usize,
    ) -> Auth {
        self.lockout = lockout::Lockout::new(failures, window_s, lock_s, max_users);
        self
    }

    /// A nonce serves at most `n` failed authentications (at least 1);
    /// then it is stale and the client must take a fresh challenge.
    pub fn with_max_nonce_failures(mut self, n: u32) -> Auth {
        self.max_nonce_failures = n.max(1);
        self
    }

    /// Offer these algorithms, in this order (not empty), instead of
    /// SHA-256 then MD5; credentials for any other are refused.
    pub fn with_algorithms(mut self, algorithms: Vec<Algorithm>) -> Auth {
        if !algorithms.is_empty() {
            self.algorithms = algorithms;
        }
        self
    }

    /// The authenticator `[auth]` describes: users from `users` and
    /// `users_file`; the nonce key from `secret` (its SHA-256, so proxies
    /// that share it accept each other's nonces) or random.
    pub fn from_config(a: &crate::config::AuthCfg) -> Result<Auth, String> {
        use sha2::Digest;
        let mut users = match &a.users_file {
            Some(f) => {
                let text = std::fs::read_to_string(f)
                    .map_err(|e| format!("cannot read auth.users_file {}: {e}", f.display()))?;
                parse_users(&text).map_err(|e| format!("{}: {e}", f.display()))?
            }
            None => Users::new(),
        };
        for (u, p) in &a.users {
            users.insert(u.clone(), Credential::password(p));
        }
        let secret: [u8; 32] = match &a.secret {
            Some(s) => sha2::Sha256::digest(s.as_bytes()).into(),
            None => {
                let mut k = [0u8; 32];
                crate::secret::os_random(&mut k);
                k
            }
        };
        Ok(Auth::new(
            a.realm.clone(),
            secret,
            a.nonce_lifetime_s,
            users,
            a.max_nonces,
        )
        .with_algorithms(a.algorithms.clone())
        .with_max_nonce_failures(a.max_nonce_failures)
        .with_user_lockout(
            a.user_failures,
            a.user_window_s,
            a.user_lock_s,
            a.max_nonces,
        ))
    }

    /// Forget expired nonces, one part of the replay window per call (the
    /// housekeeping of one shard calls it every tick).
    /// True if the window gave memory back.
    pub fn sweep(&self, now: u64) -> bool {
        self.lockout.sweep(now);
        self.replay.sweep_next(now, self.nonce_lifetime_s)
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// Nonces in the replay window now (for metrics).
    pub fn tracked_nonces(&self) -> usize {
        self.replay.len()
    }

    /// Header values (without the header name) for `WWW-Authenticate` or
    /// `Proxy-Authenticate`, one per algorithm offered, in order (by
    /// default SHA-256 first, then MD5: RFC 7616 §3.7, RFC 8760, most
    /// preferred first), all `qop="auth"` with the same fresh nonce, and
    /// `stale=true` when asked. No `opaque`: the nonce carries the state.
    pub fn challenges(&self, now: u64, stale: bool) -> Vec<String> {
        let nonce = self.nonces.mint(now);
        self.algorithms
            .iter()
            .map(|alg| {
                let mut s = String::with_capacity(160 + self.realm.len());
                s.push_str("Digest realm=");
                push_quoted(&mut s, &self.realm);
                s.push_str(", nonce=\"");
                s.push_str(&nonce);
                s.push_str("\", algorithm=");
                s.push_str(alg.name());
                s.push_str(", qop=\"auth\"");
                if stale {
                    s.push_str(", stale=true");
                }
                s
            })
            .collect()
    }

    /// Checks one `Authorization` / `Proxy-Authorization` value for
    /// `method` (e.g. `b"REGISTER"`) and the request's Request-URI text.
    ///
    /// Checks run in this order: syntax, realm, nonce authenticity, uri,
    /// user, response, nonce age, nonce count. So `Stale` and `Replay`
    /// only ever answer a request whose response was right.
    pub fn verify(&self, value: &[u8], method: &[u8], request_uri: &[u8], now: u64) -> Verdict {
        let raw = match RawCredentials::parse(value) {
            Ok(r) => r,
            Err(why) => return Verdict::Malformed(why),
        };
        match &raw.realm {
            None => return Verdict::Malformed("missing realm"),
            Some(r) if **r != *self.realm.as_bytes() => return Verdict::OtherRealm,
            Some(_) => {}
        }
        let c = match raw.into_checked() {
            Ok(c) => c,
            Err(why) => return Verdict::Malformed(why),
        };
        if !self.algorithms.contains(&c.algorithm) {
            return Verdict::Malformed("Digest Algorithm Not Offered");
        }
        let Some(nonce) = self.nonces.open(&c.nonce) else {
            return Verdict::BadNonce;
        };
        if nonce.issued > now.saturating_add(FUTURE_SKEW_S) {
            return Verdict::BadNonce;
        }
        if *c.uri != *request_uri {
            return Verdict::UriMismatch;
        }
        // A nonce that served its share of failed guesses: whatever this
        // one is, the client must take a fresh challenge (and the guard
        // counts the failures per source).
        if self.replay.failures(&nonce.mac) >= self.max_nonce_failures {
            return Verdict::Stale;
        }
        let Ok(username) = std::str::from_utf8(&c.username) else {
            return Verdict::Malformed("username not UTF-8");
        };
        // A locked name fails as a wrong password does, whatever it sent.
        if self.lockout.locked(&c.username, now) {
            self.replay
                .fail(&nonce.mac, nonce.issued, now, self.nonce_lifetime_s);
            return Verdict::WrongPassword;
        }
        let realm = self.realm.as_bytes();
        let user = self.users.get(username);
        let stored = user.and_then(|cred| cred.ha1_for(c.algorithm, &c.username, realm));
        let has_ha1 = stored.is_some();
        // An unknown user (or one without an HA1 for this algorithm) costs
        // the same hashing as a known one, so timing does not tell which
        // users exist; `has_ha1` keeps the stand-in from ever matching.
        let ha1 = stored.unwrap_or_else(|| digest::ha1(c.algorithm, &c.username, realm, b""));
        let qop = c.qop.as_ref().map(|q| QopAuth {
            nc: &q.nc_text,
            cnonce: &q.cnonce,
        });
        let ha1 = match (c.sess, qop) {
            (true, Some(q)) => digest::ha1_sess(c.algorithm, &ha1, &c.nonce, q.cnonce),
            _ => ha1,
        };
        let expected = digest::response(c.algorithm, &ha1, &c.nonce, qop, method, &c.uri);
        let matched = digest::hex_eq_ct(expected.as_bytes(), &c.response);
        let failed = match user {
            None => Some(Verdict::UnknownUser),
            Some(_) if !(matched && has_ha1) => Some(Verdict::WrongPassword),
            Some(_) => None,
        };
        if let Some(v) = failed {
            let lifetime = self.nonce_lifetime_s;
            self.replay.fail(&nonce.mac, nonce.issued, now, lifetime);
            if self.lockout.fail(&c.username, now) {
                tracing::warn!(
                    user = %String::from_utf8_lossy(&c.username),
                    "username locked after repeated failed authentications"
                );
            }
            return v;
        }
        if now.saturating_sub(nonce.issued) > self.nonce_lifetime_s {
            return Verdict::Stale;
        }
        if let Some(q) = &c.qop {
            match self
                .replay
                .check(&nonce.mac, q.nc, nonce.issued, now, self.nonce_lifetime_s)
            {
                Seen::Fresh => {}
                Seen::Replay => return Verdict::Replay,
                // No room to remember this nonce: make the client take a
                // fresh one rather than accept it unchecked.
                Seen::Full => return Verdict::Stale,
            }
        }
        Verdict::Ok {
            username: username.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests;
