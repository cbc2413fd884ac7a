//! Sets of final SIP reply codes, as written in the config: `"200"`,
//! `"2xx"`, and `"!408"` to take a code (or class) back out.

/// A set of final reply codes (200–699).
///
/// Parsed once from the config's strings; [`CodeSet::contains`] is a bit
/// test, cheap enough for every probe reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeSet {
    /// Bit `code - FIRST` is set when `code` is in the set.
    bits: [u64; WORDS],
}

impl CodeSet {
    /// Parses entries applied in order: `"404"` adds a code, `"4xx"` a
    /// class, and a leading `!` removes instead (`["4xx", "!408"]`: every
    /// 4xx but 408). Provisional codes are refused: a 1xx never ends a
    /// probe, so an entry naming one would silently do nothing. A set that
    /// ends up empty is refused too.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<CodeSet, String> {
        let mut set = CodeSet::empty();
        for entry in entries {
            let entry = entry.as_ref().trim();
            let (remove, item) = match entry.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, entry),
            };
            let (lo, hi) = parse_item(item)
                .ok_or_else(|| format!("{entry:?}: expected a final reply code (200-699) or a class (2xx-6xx), optionally after `!`"))?;
            for code in lo..=hi {
                set.put(code, !remove);
            }
        }
        if set.bits.iter().all(|w| *w == 0) {
            return Err("the set holds no reply code".to_string());
        }
        Ok(set)
    }

    /// The probe default: any answer but a server or global failure, and
    /// not 408. A 4xx to OPTIONS still proves the peer's SIP stack is up
    /// (many carriers answer it with 403, 404 or 405); a 408 says the peer
    /// itself timed out on something, which is no proof it is serving.
    pub fn any_answer() -> CodeSet {
        let mut set = CodeSet::empty();
        for code in 200..=499 {
            set.put(code, code != 408);
        }
        set
    }

    /// Whether `code` is in the set; codes outside 200–699 never are.
    pub fn contains(&self, code: u16) -> bool {
        match code.checked_sub(FIRST) {
            Some(i) if code <= LAST => self.bits[usize::from(i / 64)] & (1 << (i % 64)) != 0,
            _ => false,
        }
    }

    fn empty() -> CodeSet {
        CodeSet { bits: [0; WORDS] }
    }

    /// `code` must be in FIRST..=LAST (both callers iterate that range).
    fn put(&mut self, code: u16, on: bool) {
        let i = code - FIRST;
        let word = &mut self.bits[usize::from(i / 64)];
        if on {
            *word |= 1 << (i % 64);
        } else {
            *word &= !(1 << (i % 64));
        }
    }
}

/// Lowest and highest final reply code (RFC 3261 §21: 2xx–6xx).
const FIRST: u16 = 200;
const LAST: u16 = 699;
const WORDS: usize = (LAST - FIRST) as usize / 64 + 1;

/// `"404"` → (404, 404), `"4xx"` → (400, 499); None for anything else.
fn parse_item(item: &str) -> Option<(u16, u16)> {
    let b = item.as_bytes();
    if b.len() != 3 || !b[0].is_ascii_digit() {
        return None;
    }
    let class = u16::from(b[0] - b'0');
    if !(2..=6).contains(&class) {
        return None;
    }
    if b[1..].eq_ignore_ascii_case(b"xx") {
        return Some((class * 100, class * 100 + 99));
    }
    if !b[1].is_ascii_digit() || !b[2].is_ascii_digit() {
        return None;
    }
    let code = class * 100 + u16::from(b[1] - b'0') * 10 + u16::from(b[2] - b'0');
    Some((code, code))
}
