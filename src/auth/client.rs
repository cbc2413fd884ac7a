//! The client side, for user agents and tests: answer one Digest challenge.

use super::digest::{self, QopAuth};
use super::params::{push_quoted, Challenge};
use super::Algorithm;

/// The `Authorization` / `Proxy-Authorization` header value (without the
/// header name) answering `challenge`, a `WWW-Authenticate` /
/// `Proxy-Authenticate` value such as one of [`super::Auth::challenges`].
///
/// For user agents and tests: the server side never calls it. With `qop`
/// offered it answers `qop=auth` with `cnonce` and `nc` (the caller counts
/// `nc` up from 1 for each request on the same nonce, RFC 7616 §3.4);
/// without, the RFC 2069 form. The algorithm (MD5, SHA-256 and their
/// `-sess` variants) and `opaque` are echoed. Errors say what in the
/// challenge it cannot answer.
pub fn client_response(
    challenge: &str,
    username: &str,
    password: &str,
    method: &str,
    uri: &str,
    cnonce: &str,
    nc: u32,
) -> Result<String, &'static str> {
    let c = Challenge::parse(challenge.as_bytes())?;
    let realm = c.realm.ok_or("missing realm")?;
    let nonce = c.nonce.ok_or("missing nonce")?;
    let (alg, sess) = match &c.algorithm {
        None => (Algorithm::Md5, false),
        Some(a) => Algorithm::parse_sess(a).ok_or("unsupported algorithm")?,
    };
    let with_qop = match &c.qop {
        None => false,
        Some(q) if Challenge::offers_auth(q) => true,
        Some(_) => return Err("unsupported qop"),
    };
    let nc_text = format!("{nc:08x}");
    let qop = with_qop.then_some(QopAuth {
        nc: nc_text.as_bytes(),
        cnonce: cnonce.as_bytes(),
    });
    let mut ha1 = digest::ha1(alg, username.as_bytes(), &realm, password.as_bytes());
    if sess {
        ha1 = digest::ha1_sess(alg, &ha1, &nonce, cnonce.as_bytes());
    }
    let response = digest::response(alg, &ha1, &nonce, qop, method.as_bytes(), uri.as_bytes());

    let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
    let mut out = String::with_capacity(256);
    out.push_str("Digest username=");
    push_quoted(&mut out, username);
    out.push_str(", realm=");
    push_quoted(&mut out, &text(&realm));
    out.push_str(", nonce=");
    push_quoted(&mut out, &text(&nonce));
    out.push_str(", uri=");
    push_quoted(&mut out, uri);
    out.push_str(", response=\"");
    out.push_str(response.as_str());
    out.push_str("\", algorithm=");
    out.push_str(alg.name());
    if sess {
        out.push_str("-sess");
    }
    if with_qop {
        out.push_str(", cnonce=");
        push_quoted(&mut out, cnonce);
        out.push_str(", qop=auth, nc=");
        out.push_str(&nc_text);
    }
    if let Some(o) = &c.opaque {
        out.push_str(", opaque=");
        push_quoted(&mut out, &text(o));
    }
    Ok(out)
}
