//! Header rules of a route or a destination set (`headers = { remove,
//! set, add }`): what a forwarded initial request loses and gains, e.g.
//! strip `P-Asserted-Identity` from untrusted sources and set it toward a
//! carrier, or remove internal `X-` headers on egress. Checked here, at
//! load; applied through the edit list when the request is built.

use std::collections::BTreeMap;

use crate::sip::lex;

/// One piece of a value template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    /// `{from.user}`, `{to.user}`, `{ruri.user}`: the user part as written.
    FromUser,
    ToUser,
    RuriUser,
    /// `{source.ip}`: the address the request came from.
    SourceIp,
    /// `{call-id}`.
    CallId,
}

/// A header value with `{field}` placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(pub Vec<Piece>);

/// What a route or set does to the headers of the requests it forwards.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderRules {
    /// Names removed (case-insensitive); `X-Foo-*` removes every name with
    /// that prefix.
    pub remove: Vec<String>,
    /// Every field of the name replaced by one with this value.
    pub set: Vec<(String, Template)>,
    /// A field added after the existing ones.
    pub add: Vec<(String, Template)>,
}

impl HeaderRules {
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.add.is_empty()
    }
}

/// Headers that carry the transaction, the dialog or the routing: a rule
/// must not touch them.
const PROTECTED: &[&str] = &[
    "via",
    "v",
    "route",
    "record-route",
    "call-id",
    "i",
    "cseq",
    "from",
    "f",
    "to",
    "t",
    "max-forwards",
    "content-length",
    "l",
    "contact",
    "m",
];

/// Check a raw `headers` table; the error says what is wrong (the caller
/// adds the key).
pub(super) fn build(
    remove: &[String],
    set: &BTreeMap<String, String>,
    add: &BTreeMap<String, String>,
) -> Result<HeaderRules, String> {
    let name_ok = |n: &str, wildcard: bool| -> Result<(), String> {
        let base = if wildcard {
            n.strip_suffix('*').unwrap_or(n)
        } else {
            n
        };
        if base.is_empty() || !lex::is_token_str(base.as_bytes()) {
            return Err(format!("{n:?} is not a header name"));
        }
        let lower = base.to_ascii_lowercase();
        let hit = PROTECTED
            .iter()
            .any(|p| *p == lower || (n.ends_with('*') && p.starts_with(&lower)));
        if hit {
            return Err(format!(
                "{n:?}: Via, Route, Record-Route, Call-ID, CSeq, From, To, Max-Forwards, Content-Length and Contact are the proxy's to manage"
            ));
        }
        Ok(())
    };
    for n in remove {
        name_ok(n, true)?;
    }
    let mut rules = HeaderRules {
        remove: remove.to_vec(),
        ..HeaderRules::default()
    };
    for (list, out) in [(set, &mut rules.set), (add, &mut rules.add)] {
        for (n, v) in list {
            name_ok(n, false)?;
            out.push((n.clone(), template(v).map_err(|e| format!("{n}: {e}"))?));
        }
    }
    Ok(rules)
}

fn template(v: &str) -> Result<Template, String> {
    if v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err("a value cannot hold CR, LF or NUL".into());
    }
    let mut pieces = Vec::new();
    let mut rest = v;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            pieces.push(Piece::Text(rest[..open].to_string()));
        }
        let Some(close) = rest[open..].find('}') else {
            return Err(format!("{v:?}: an unclosed {{"));
        };
        let field = &rest[open + 1..open + close];
        pieces.push(match field {
            "from.user" => Piece::FromUser,
            "to.user" => Piece::ToUser,
            "ruri.user" => Piece::RuriUser,
            "source.ip" => Piece::SourceIp,
            "call-id" => Piece::CallId,
            other => {
                return Err(format!(
                    "{{{other}}} is not one of {{from.user}}, {{to.user}}, {{ruri.user}}, {{source.ip}}, {{call-id}}"
                ))
            }
        });
        rest = &rest[open + close + 1..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_string()));
    }
    Ok(Template(pieces))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn templates_and_names_are_checked() {
        let r = build(
            &["X-Internal-*".into(), "P-Asserted-Identity".into()],
            &map(&[("P-Asserted-Identity", "<sip:{from.user}@carrier.example>")]),
            &map(&[("X-Source", "{source.ip}")]),
        )
        .unwrap();
        assert_eq!(
            r.set[0].1,
            Template(vec![
                Piece::Text("<sip:".into()),
                Piece::FromUser,
                Piece::Text("@carrier.example>".into())
            ])
        );
        assert_eq!(r.add[0].1, Template(vec![Piece::SourceIp]));
        for (remove, set, why) in [
            (vec!["Via".to_string()], map(&[]), "proxy's to manage"),
            (vec!["Record-*".to_string()], map(&[]), "proxy's to manage"),
            (vec!["X Y".to_string()], map(&[]), "not a header name"),
            (vec![], map(&[("X-A", "{nope}")]), "{nope} is not one of"),
            (vec![], map(&[("X-A", "a{from.user")]), "unclosed"),
            (vec![], map(&[("Contact", "x")]), "proxy's to manage"),
        ] {
            let e = build(&remove, &set, &map(&[])).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
    }
}
