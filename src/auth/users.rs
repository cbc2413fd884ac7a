//! Users and their secrets, and the users file (format in the module doc
//! of [`crate::auth`]).

use std::collections::HashMap;
use std::fmt;

use super::digest::{self, Hex};
use super::Algorithm;

/// What the server knows of one user's password: the password itself, or
/// `HA1 = H(username:realm:password)` per algorithm, as lowercase hex.
///
/// An HA1 is bound to the realm it was computed for. A user with only an
/// MD5 HA1 cannot answer a SHA-256 challenge (and clients take SHA-256,
/// offered first, when they can): such requests come out as
/// [`super::Verdict::WrongPassword`]. Give both HA1s, or the password.
#[derive(Clone)]
pub struct Credential(Secret);

#[derive(Clone)]
enum Secret {
    Password(String),
    Ha1 {
        md5: Option<String>,
        sha256: Option<String>,
    },
}

impl Credential {
    /// A plain password.
    pub fn password(p: &str) -> Credential {
        Credential(Secret::Password(p.to_owned()))
    }

    /// Precomputed HA1s in hex (either case; see [`super::ha1_hex`]). A
    /// value of the wrong length or not hex never matches.
    pub fn ha1(md5: Option<String>, sha256: Option<String>) -> Credential {
        Credential(Secret::Ha1 {
            md5: md5.map(|s| s.to_ascii_lowercase()),
            sha256: sha256.map(|s| s.to_ascii_lowercase()),
        })
    }

    /// The HA1 for `alg`, if this credential has one.
    pub(crate) fn ha1_for(&self, alg: Algorithm, user: &[u8], realm: &[u8]) -> Option<Hex> {
        match &self.0 {
            Secret::Password(p) => Some(digest::ha1(alg, user, realm, p.as_bytes())),
            Secret::Ha1 { md5, sha256 } => {
                let stored = match alg {
                    Algorithm::Md5 => md5,
                    Algorithm::Sha256 => sha256,
                };
                Hex::parse(alg, stored.as_deref()?)
            }
        }
    }
}

/// Never prints the secret.
impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.0 {
            Secret::Password(_) => "password",
            Secret::Ha1 { .. } => "ha1",
        };
        write!(f, "Credential({kind}, redacted)")
    }
}

/// Users by name (the Digest `username`, compared exactly).
#[derive(Clone, Debug, Default)]
pub struct Users(HashMap<String, Credential>);

impl Users {
    pub fn new() -> Users {
        Users::default()
    }

    /// Adds or replaces a user; returns the credential it replaced.
    pub fn insert(&mut self, username: String, credential: Credential) -> Option<Credential> {
        self.0.insert(username, credential)
    }

    pub fn get(&self, username: &str) -> Option<&Credential> {
        self.0.get(username)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Parses a users file (format in the [`crate::auth`] module doc). Errors
/// name the 1-based line: `line 3: ha1 must be 32 hex digits`.
pub fn parse_users(text: &str) -> Result<Users, String> {
    let mut users = Users::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, cred) = parse_line(line).map_err(|e| format!("line {}: {e}", n + 1))?;
        if users.get(name).is_some() {
            return Err(format!("line {}: duplicate user {name:?}", n + 1));
        }
        users.insert(name.to_owned(), cred);
    }
    Ok(users)
}

fn parse_line(line: &str) -> Result<(&str, Credential), String> {
    let (name, rest) = line
        .split_once(':')
        .ok_or("expected username:password=... or username:ha1=...")?;
    if name.is_empty() {
        return Err("empty username".into());
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "username {name:?} has whitespace or control characters"
        ));
    }
    // The password is the rest of the line, verbatim (it may hold ';').
    if let Some(p) = rest.strip_prefix("password=") {
        if p.is_empty() {
            return Err("empty password".into());
        }
        return Ok((name, Credential::password(p)));
    }
    let (mut md5, mut sha256) = (None, None);
    for field in rest.split(';') {
        let (key, value) = field
            .trim()
            .split_once('=')
            .ok_or_else(|| format!("expected key=value, found {:?}", field.trim()))?;
        let (slot, alg) = match key {
            "ha1" => (&mut md5, Algorithm::Md5),
            "ha1_sha256" => (&mut sha256, Algorithm::Sha256),
            "password" => return Err("password= must be the only field".into()),
            _ => {
                return Err(format!(
                    "unknown key {key:?} (expected password, ha1, ha1_sha256)"
                ))
            }
        };
        if slot.is_some() {
            return Err(format!("{key} given twice"));
        }
        if Hex::parse(alg, value).is_none() {
            return Err(format!("{key} must be {} hex digits", alg.hex_len()));
        }
        *slot = Some(value.to_owned());
    }
    Ok((name, Credential::ha1(md5, sha256)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MD5: &str = "939e7578ed9e3c518a452acee763bce9";
    const SHA: &str = "7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232";

    fn kind(u: &Users, name: &str) -> String {
        format!("{:?}", u.get(name))
    }

    #[test]
    fn parses_every_form() {
        let text = format!(
            "# users\n\n  alice:password=s3cret;with=stuff \n\
             bob:ha1={MD5}\ncarol:ha1_sha256={SHA}\r\ndave:ha1={};  ha1_sha256={SHA}\n",
            MD5.to_ascii_uppercase()
        );
        let u = parse_users(&text).unwrap();
        assert_eq!(u.len(), 4);
        assert_eq!(kind(&u, "alice"), "Some(Credential(password, redacted))");
        assert_eq!(kind(&u, "bob"), "Some(Credential(ha1, redacted))");
        let alice = u
            .get("alice")
            .and_then(|c| c.ha1_for(Algorithm::Md5, b"alice", b"r"));
        let expect = digest::ha1(Algorithm::Md5, b"alice", b"r", b"s3cret;with=stuff");
        assert_eq!(
            alice.map(|h| h.as_bytes().to_vec()),
            Some(expect.as_bytes().to_vec())
        );
        let dave = u.get("dave").map(|c| {
            (
                c.ha1_for(Algorithm::Md5, b"", b"")
                    .map(|h| h.as_str().to_owned()),
                c.ha1_for(Algorithm::Sha256, b"", b"")
                    .map(|h| h.as_str().to_owned()),
            )
        });
        assert_eq!(dave, Some((Some(MD5.into()), Some(SHA.into()))));
        let bob = u
            .get("bob")
            .map(|c| c.ha1_for(Algorithm::Sha256, b"", b"").is_none());
        assert_eq!(bob, Some(true));
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            (
                "a:password=x\nnocolon\n",
                "line 2: expected username:password=... or username:ha1=...",
            ),
            ("\n\n:password=x", "line 3: empty username"),
            (
                "a b:password=x",
                "line 1: username \"a b\" has whitespace or control characters",
            ),
            ("a:password=", "line 1: empty password"),
            ("a:ha1=123", "line 1: ha1 must be 32 hex digits"),
            ("a:ha1_sha256=", "line 1: ha1_sha256 must be 64 hex digits"),
            (
                "a:hash=1",
                "line 1: unknown key \"hash\" (expected password, ha1, ha1_sha256)",
            ),
            ("a:ha1", "line 1: expected key=value, found \"ha1\""),
            (
                "a:password=x\n#\na:password=y",
                "line 3: duplicate user \"a\"",
            ),
        ];
        for (text, err) in cases {
            assert_eq!(parse_users(text).err().as_deref(), Some(err), "{text:?}");
        }
        let twice = format!("a:ha1={MD5};ha1={MD5}");
        assert_eq!(
            parse_users(&twice).err().as_deref(),
            Some("line 1: ha1 given twice")
        );
    }

    #[test]
    fn empty_file_is_no_users() {
        let u = parse_users("# nobody\n\n").unwrap();
        assert!(u.is_empty());
    }
}
