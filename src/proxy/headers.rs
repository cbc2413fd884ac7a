//! Header rules of routes and destination sets (`config::headers`)
//! applied to a request being forwarded, through its edit list.

use super::Flow;
use crate::config::headers::{HeaderRules, Piece, Template};
use crate::sip::{Edits, HeaderName, Message};

/// Remove, set and add headers as `rules` say (each field removed once,
/// whichever rules name it).
pub(super) fn apply(e: &mut Edits, msg: &Message, flow: Flow, rules: &HeaderRules) {
    if rules.is_empty() {
        return;
    }
    let matches = |pattern: &str, name: HeaderName, bytes: &[u8]| match pattern.strip_suffix('*') {
        Some(prefix) => bytes
            .get(..prefix.len())
            .is_some_and(|b| b.eq_ignore_ascii_case(prefix.as_bytes())),
        None => match HeaderName::from_bytes(pattern.as_bytes()) {
            HeaderName::Other => bytes.eq_ignore_ascii_case(pattern.as_bytes()),
            known => name == known,
        },
    };
    for (i, h) in msg.headers().enumerate() {
        let gone = rules
            .remove
            .iter()
            .any(|p| matches(p, h.name, h.name_bytes))
            || rules
                .set
                .iter()
                .any(|(p, _)| matches(p, h.name, h.name_bytes));
        if gone {
            e.remove_field(msg, i);
        }
    }
    for (name, t) in rules.set.iter().chain(&rules.add) {
        let value = render(t, msg, flow);
        e.add_header(msg, name, &value);
    }
}

/// A header value from its template.
fn render(t: &Template, msg: &Message, flow: Flow) -> Vec<u8> {
    let mut out = Vec::new();
    let user = |a: Result<crate::sip::NameAddr<'_>, crate::sip::Error>| -> Vec<u8> {
        a.ok()
            .and_then(|n| n.uri().ok().and_then(|u| u.user.map(<[u8]>::to_vec)))
            .unwrap_or_default()
    };
    for p in &t.0 {
        match p {
            Piece::Text(s) => out.extend_from_slice(s.as_bytes()),
            Piece::FromUser => out.extend(user(msg.from())),
            Piece::ToUser => out.extend(user(msg.to())),
            Piece::RuriUser => {
                if let Some(u) = msg.request_uri().ok().and_then(|u| u.user) {
                    out.extend_from_slice(u);
                }
            }
            Piece::SourceIp => out.extend_from_slice(flow.remote.ip().to_string().as_bytes()),
            Piece::CallId => out.extend_from_slice(msg.call_id()),
        }
    }
    out
}
