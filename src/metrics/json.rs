//! Just enough JSON for the admin API: string escaping (RFC 8259 §7).

use std::fmt::Write as _;

/// `s` as a JSON string, quotes included.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Bytes (from the network) as a JSON string, invalid UTF-8 replaced.
pub fn bytes(b: &[u8]) -> String {
    string(&String::from_utf8_lossy(b))
}

/// `{"error": message}`.
pub fn error(message: &str) -> String {
    format!("{{\"error\":{}}}\n", string(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_json_requires() {
        assert_eq!(string("a\"b\\c\nd\u{1}é"), "\"a\\\"b\\\\c\\nd\\u0001é\"");
        assert_eq!(bytes(b"x\xffy"), "\"x\u{fffd}y\"");
        let v: serde_json::Value = serde_json::from_str(&error("bad \"x\"")).unwrap();
        assert_eq!(v["error"], "bad \"x\"");
    }
}
