//! Prefix files: CSV or TOML into entries with line numbers, every
//! prefix checked (so that they build into a `PrefixTable`), duplicates
//! named with both lines.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::{first_duplicate_sorted, head, MAX_PREFIX_LEN};

/// One line (CSV) or `[[prefix]]` table (TOML) of a prefix file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub prefix: String,
    pub value: Option<String>,
    /// 1-based; 0 when the format gives no line (never for CSV).
    pub line: usize,
}

/// A prefix file that could not be read: where and what.
#[derive(Debug)]
pub struct LoadError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem is the file as a whole.
    pub line: usize,
    pub problem: LoadProblem,
}

#[derive(Debug)]
pub enum LoadProblem {
    Read(std::io::Error),
    NotUtf8,
    /// The TOML parser's message (first line).
    Toml(String),
    EmptyPrefix,
    PrefixTooLong(usize),
    /// Whitespace, a comma or a control character inside the prefix.
    BadPrefixChar(char),
    /// More than `prefix,destination` on a CSV line.
    TooManyFields(usize),
    EmptyDestination,
    Duplicate {
        prefix: String,
        first_line: usize,
    },
}

/// Read a prefix file: TOML when the name ends in `.toml`, CSV otherwise.
///
/// CSV: one `prefix[,destination]` per line, fields trimmed; blank lines and
/// lines starting with `#` are skipped, and so is a first data line reading
/// `prefix` or `prefix,destination` (any case). TOML: `[[prefix]]` tables
/// with `prefix = "..."` and an optional `destination = "..."`.
///
/// Prefixes are checked here (non-empty, at most `MAX_PREFIX_LEN` bytes, no
/// whitespace, comma or control character, no duplicates), so the entries
/// build into a `PrefixTable` without error.
pub fn load_file(path: &Path) -> Result<Vec<Entry>, LoadError> {
    let fail = |line, problem| LoadError {
        file: path.to_path_buf(),
        line,
        problem,
    };
    let bytes = std::fs::read(path).map_err(|e| fail(0, LoadProblem::Read(e)))?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        fail(line, LoadProblem::NotUtf8)
    })?;
    let entries = if path.extension().is_some_and(|e| e == "toml") {
        parse_toml(text)
    } else {
        parse_csv(text)
    };
    let entries = entries.map_err(|(line, problem)| fail(line, problem))?;
    if let Some((second, first)) = first_duplicate(&entries) {
        let e = &entries[second];
        return Err(fail(
            e.line,
            LoadProblem::Duplicate {
                prefix: e.prefix.clone(),
                first_line: entries[first].line,
            },
        ));
    }
    Ok(entries)
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            0 => write!(f, "{}: {}", self.file.display(), self.problem),
            l => write!(f, "{}:{l}: {}", self.file.display(), self.problem),
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.problem {
            LoadProblem::Read(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for LoadProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadProblem::Read(e) => write!(f, "cannot read: {e}"),
            LoadProblem::NotUtf8 => write!(f, "not UTF-8"),
            LoadProblem::Toml(m) => write!(f, "{m}"),
            LoadProblem::EmptyPrefix => write!(f, "empty prefix"),
            LoadProblem::PrefixTooLong(n) => {
                write!(f, "prefix is {n} bytes, longer than {MAX_PREFIX_LEN}")
            }
            LoadProblem::BadPrefixChar(c) => write!(f, "prefix contains {c:?}"),
            LoadProblem::TooManyFields(n) => {
                write!(f, "{n} fields, expected prefix[,destination]")
            }
            LoadProblem::EmptyDestination => write!(f, "empty destination"),
            LoadProblem::Duplicate { prefix, first_line } => {
                write!(
                    f,
                    "duplicate prefix \"{prefix}\" (first on line {first_line})"
                )
            }
        }
    }
}

/// The duplicate in `entries` whose second occurrence comes first:
/// `(second, first)` indexes into `entries`.
fn first_duplicate(entries: &[Entry]) -> Option<(usize, usize)> {
    // Sorted by head first: most comparisons are one integer compare.
    let mut order: Vec<(u64, u32)> = (entries.iter().enumerate())
        .map(|(i, e)| (head(e.prefix.as_bytes()), i as u32))
        .collect();
    let prefix = |k: &(u64, u32)| entries[k.1 as usize].prefix.as_str();
    order.sort_unstable_by(|a, b| {
        (a.0.cmp(&b.0))
            .then_with(|| prefix(a).cmp(prefix(b)))
            .then(a.1.cmp(&b.1))
    });
    let (first, second) =
        first_duplicate_sorted(&order, |a, b| a.0 == b.0 && prefix(a) == prefix(b), |k| k.1)?;
    Some((order[second].1 as usize, order[first].1 as usize))
}

/// CSV lines into entries; on error, the line and the problem.
fn parse_csv(text: &str) -> Result<Vec<Entry>, (usize, LoadProblem)> {
    let mut out = Vec::with_capacity(memchr::memchr_iter(b'\n', text.as_bytes()).count() + 1);
    let mut header_possible = true;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let s = raw.trim_ascii();
        if s.is_empty() || s.starts_with('#') {
            continue;
        }
        let (prefix, value) = match s.split_once(',') {
            None => (s, None),
            Some((p, v)) => (p.trim_ascii_end(), Some(v.trim_ascii_start())),
        };
        if std::mem::take(&mut header_possible) && is_header(prefix, value) {
            continue;
        }
        if let Some(v) = value {
            if v.contains(',') {
                let fields = 2 + v.bytes().filter(|&b| b == b',').count();
                return Err((line, LoadProblem::TooManyFields(fields)));
            }
        }
        out.push(entry(prefix, value, line).map_err(|p| (line, p))?);
    }
    Ok(out)
}

fn is_header(prefix: &str, value: Option<&str>) -> bool {
    prefix.eq_ignore_ascii_case("prefix")
        && value.is_none_or(|v| v.eq_ignore_ascii_case("destination"))
}

/// A checked entry from a prefix and an optional destination.
fn entry(prefix: &str, value: Option<&str>, line: usize) -> Result<Entry, LoadProblem> {
    if prefix.is_empty() {
        return Err(LoadProblem::EmptyPrefix);
    }
    if prefix.len() > MAX_PREFIX_LEN {
        return Err(LoadProblem::PrefixTooLong(prefix.len()));
    }
    if let Some(c) = prefix
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || *c == ',')
    {
        return Err(LoadProblem::BadPrefixChar(c));
    }
    if value == Some("") {
        return Err(LoadProblem::EmptyDestination);
    }
    Ok(Entry {
        prefix: prefix.to_owned(),
        value: value.map(str::to_owned),
        line,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlFile {
    #[serde(default)]
    prefix: Vec<TomlEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlEntry {
    prefix: Spanned<String>,
    destination: Option<String>,
}

fn parse_toml(text: &str) -> Result<Vec<Entry>, (usize, LoadProblem)> {
    let newlines: Vec<usize> = memchr::memchr_iter(b'\n', text.as_bytes()).collect();
    let line_of = |offset: usize| newlines.partition_point(|&n| n < offset) + 1;
    let file: TomlFile = toml::from_str(text).map_err(|e| {
        // The toml message repeats the location; keep its first line.
        let message = e.message().lines().next().unwrap_or("invalid TOML");
        let line = e.span().map_or(0, |s| line_of(s.start));
        (line, LoadProblem::Toml(message.to_owned()))
    })?;
    (file.prefix.iter())
        .map(|t| {
            let line = line_of(t.prefix.span().start);
            entry(t.prefix.get_ref(), t.destination.as_deref(), line).map_err(|p| (line, p))
        })
        .collect()
}
