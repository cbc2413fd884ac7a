use std::path::PathBuf;

use super::*;
use proptest::prelude::*;

fn table(keys: &[&[u8]]) -> PrefixTable<usize> {
    PrefixTable::build(keys.iter().enumerate().map(|(i, k)| (*k, i))).unwrap()
}

/// The longest key that is a prefix of `q`, by a linear scan.
fn reference(keys: &[Vec<u8>], q: &[u8]) -> Option<(usize, usize)> {
    (keys.iter().enumerate())
        .filter(|(_, k)| q.starts_with(k))
        .max_by_key(|(_, k)| k.len())
        .map(|(i, k)| (k.len(), i))
}

#[test]
fn empty_table_matches_nothing() {
    let t = PrefixTable::<u8>::build(Vec::<(&[u8], u8)>::new()).unwrap();
    assert!(t.is_empty());
    assert_eq!(t.lookup(b"123"), None);
    assert_eq!(t.lookup(b""), None);
}

#[test]
fn no_match_and_exact_match() {
    let t = table(&[b"44", b"49"]);
    assert_eq!(t.len(), 2);
    assert_eq!(t.lookup(b"33123"), None);
    assert_eq!(t.lookup(b"4"), None, "a query shorter than every key");
    assert_eq!(t.lookup(b"45"), None);
    assert_eq!(t.lookup(b"44"), Some((2, 0)));
    assert_eq!(t.lookup(b"49"), Some((2, 1)));
    assert_eq!(t.lookup(b"99"), None, "a query after every key");
}

#[test]
fn nested_prefixes_take_the_longest() {
    let t = table(&[b"123", b"1", b"12"]);
    assert_eq!(t.lookup(b"1"), Some((1, 1)));
    assert_eq!(t.lookup(b"12"), Some((2, 2)));
    assert_eq!(t.lookup(b"1234"), Some((3, 0)));
    assert_eq!(t.lookup(b"129"), Some((2, 2)));
    assert_eq!(t.lookup(b"13"), Some((1, 1)));
    assert_eq!(t.lookup(b"2"), None);
    assert_eq!(t.lookup(b""), None);
}

#[test]
fn climbs_past_keys_that_sort_between() {
    // The greatest key <= "1299" is "12389", whose prefix chain
    // "1238" -> "12" -> "1" leads to the answer "12".
    let t = table(&[b"1", b"12", b"1238", b"12389", b"13"]);
    assert_eq!(t.lookup(b"1299"), Some((2, 1)));
    assert_eq!(t.lookup(b"12390"), Some((2, 1)));
    assert_eq!(t.lookup(b"123899"), Some((5, 3)));
    assert_eq!(t.lookup(b"14"), Some((1, 0)));
}

#[test]
fn prefixes_across_index_blocks() {
    // "5" is in the first block; its extensions fill several blocks, so
    // the floor of a query lands many blocks after its answer.
    let mut keys: Vec<Vec<u8>> = vec![b"5".to_vec(), b"50".to_vec()];
    keys.extend((0..100).map(|i| format!("50{i:03}").into_bytes()));
    keys.push(b"5099".to_vec());
    let t = PrefixTable::build(keys.iter().enumerate().map(|(i, k)| (k, i))).unwrap();
    assert!(t.len() > 6 * STRIDE);
    for q in [
        "5", "50", "500", "50099", "501", "5099", "50999", "51", "4", "6",
    ] {
        let q = q.as_bytes();
        assert_eq!(t.lookup(q), reference(&keys, q), "query {q:?}");
    }
}

#[test]
fn keys_past_eight_bytes_and_shared_heads() {
    let t = table(&[
        b"+4420712",
        b"+44207123",
        b"+442071234",
        b"+442071239",
        b"+4420",
    ]);
    assert_eq!(t.lookup(b"+442071234567"), Some((10, 2)));
    assert_eq!(t.lookup(b"+442071235"), Some((9, 1)));
    assert_eq!(t.lookup(b"+44207124"), Some((8, 0)));
    assert_eq!(t.lookup(b"+4420712"), Some((8, 0)));
    assert_eq!(t.lookup(b"+442079"), Some((5, 4)));
    assert_eq!(t.lookup(b"+4420"), Some((5, 4)));
    assert_eq!(t.lookup(b"+442"), None);
}

#[test]
fn many_keys_share_one_head() {
    // 3000 keys with the same first 8 bytes: the tie is searched by tail.
    let keys: Vec<Vec<u8>> = (0..3000)
        .map(|i| format!("12345678{i}").into_bytes())
        .chain([b"1234567".to_vec()])
        .collect();
    let t = PrefixTable::build(keys.iter().enumerate().map(|(i, k)| (k, i))).unwrap();
    for q in [
        "123456781234",
        "1234567829999",
        "12345678",
        "123456789",
        "12345679",
    ] {
        let q = q.as_bytes();
        assert_eq!(t.lookup(q), reference(&keys, q), "query {q:?}");
    }
}

#[test]
fn any_bytes_compare_as_bytes() {
    let t = table(&[b"*21#", b"\xff", b"\xff\xff", b"\0", b"\0\0\0", b"#"]);
    assert_eq!(t.lookup(b"*21#123"), Some((4, 0)));
    assert_eq!(t.lookup(b"*21"), None);
    assert_eq!(t.lookup(b"\xff\xfe"), Some((1, 1)));
    assert_eq!(t.lookup(b"\xff\xff\xff"), Some((2, 2)));
    assert_eq!(
        t.lookup(b"\0\0"),
        Some((1, 3)),
        "zero bytes are not padding"
    );
    assert_eq!(t.lookup(b"\0\0\0\0"), Some((3, 4)));
    assert_eq!(t.lookup(b"#"), Some((1, 5)));
}

#[test]
fn longest_keys_and_long_queries() {
    let long = [b'7'; MAX_PREFIX_LEN];
    let t = table(&[&long, &long[..31], b"7"]);
    let mut q = long.to_vec();
    q.extend_from_slice(b"7777777");
    assert_eq!(t.lookup(&q), Some((32, 0)));
    assert_eq!(t.lookup(&long[..31]), Some((31, 1)));
    assert_eq!(t.lookup(&long[..30]), Some((1, 2)));
}

#[test]
fn build_rejects_bad_keys() {
    let e = PrefixTable::build([(&b"1"[..], 0), (b"", 1)]).unwrap_err();
    assert_eq!(e, PrefixError::Empty { position: 1 });
    let long = [b'1'; MAX_PREFIX_LEN + 1];
    let e = PrefixTable::build([(&long[..], 0)]).unwrap_err();
    assert!(matches!(e, PrefixError::TooLong { position: 0, .. }));
    let e = PrefixTable::build(["9", "44", "1", "44", "9", "44"].map(|k| (k, ()))).unwrap_err();
    // "9" is repeated at 4 and "44" at 3: the earlier repeat is named.
    let want = PrefixError::Duplicate {
        prefix: b"44".to_vec(),
        first: 1,
        second: 3,
    };
    assert_eq!(e, want);
    assert_eq!(
        e.to_string(),
        "entry 3: duplicate prefix \"44\" (first as entry 1)"
    );
}

#[test]
fn memory_counts_the_arrays() {
    let t = table(&[b"1", b"123456789012"]);
    // Cuts "1", "123456789012", "123456789013", "2": 4 * 24 (a usize
    // value), index 8, tails 8, tail_base 4.
    assert_eq!(t.memory_bytes(), 116);
}

const ALPHABET: &[u8] = &[b'1', b'2', 0, 0xff];
// Stems make keys share 8-byte heads and nest past the 8th byte.
const STEMS: &[&[u8]] = &[b"", b"1", b"1212121", b"12121212"];

fn key() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(STEMS),
        prop::collection::vec(prop::sample::select(ALPHABET), 0..6),
    )
        .prop_map(|(stem, rest)| [stem, &rest[..]].concat())
}

proptest! {
    #[test]
    fn lookup_matches_a_linear_scan(
        keys in prop::collection::btree_set(key().prop_filter("non-empty", |k| !k.is_empty()), 0..200),
        queries in prop::collection::vec(key(), 1..60),
    ) {
        let keys: Vec<Vec<u8>> = keys.into_iter().collect();
        let t = PrefixTable::build(keys.iter().enumerate().map(|(i, k)| (k, i))).unwrap();
        prop_assert_eq!(t.len(), keys.len());
        // Each key itself, each key extended, and the random queries.
        let extended = keys.iter().zip(&queries).map(|(k, q)| [&k[..], q].concat());
        for q in keys.iter().cloned().chain(extended).chain(queries.iter().cloned()) {
            prop_assert_eq!(t.lookup(&q), reference(&keys, &q), "query {:?}", q);
        }
    }
}

/// A file under the temp directory, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(ext: &str, text: &[u8]) -> TempFile {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "siphon-prefix-{}-{}.{ext}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, text).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn load(ext: &str, text: &str) -> Result<Vec<Entry>, LoadError> {
    load_file(&TempFile::new(ext, text.as_bytes()).0)
}

fn e(prefix: &str, value: Option<&str>, line: usize) -> Entry {
    Entry {
        prefix: prefix.into(),
        value: value.map(Into::into),
        line,
    }
}

#[test]
fn csv_with_header_comments_and_blank_lines() {
    let text = "# carrier A\n\nPrefix , Destination\n44,uk\n  +4420 , london \r\n\n# end\n1\n";
    let got = load("csv", text).unwrap();
    let want = vec![
        e("44", Some("uk"), 4),
        e("+4420", Some("london"), 5),
        e("1", None, 8),
    ];
    assert_eq!(got, want);
    assert_eq!(load("txt", "prefix\n1\n").unwrap(), vec![e("1", None, 2)]);
    assert_eq!(load("csv", "").unwrap(), vec![]);
}

#[test]
fn csv_header_only_on_the_first_data_line() {
    // Later, "prefix" is an ordinary key (letters are allowed bytes).
    let got = load("csv", "# x\n1,a\nprefix,destination\n").unwrap();
    assert_eq!(
        got,
        vec![e("1", Some("a"), 2), e("prefix", Some("destination"), 3)]
    );
    let got = load("csv", "prefix,route\n").unwrap();
    assert_eq!(
        got,
        vec![e("prefix", Some("route"), 1)],
        "not the header's words"
    );
}

#[test]
fn csv_bad_lines_name_their_line() {
    let cases: &[(&str, usize, &str)] = &[
        ("1\n,a\n", 2, "empty prefix"),
        (
            "1\n2\n3,a,b\n",
            3,
            "3 fields, expected prefix[,destination]",
        ),
        ("1 2\n", 1, "prefix contains ' '"),
        ("\n\n1\t2,a\n", 3, "prefix contains '\\t'"),
        ("1\x07\n", 1, "prefix contains '\\u{7}'"),
        ("44,\n", 1, "empty destination"),
    ];
    for (text, line, message) in cases {
        let err = load("csv", text).unwrap_err();
        assert_eq!(
            (err.line, err.problem.to_string().as_str()),
            (*line, *message),
            "{text:?}"
        );
    }
    let long = "9".repeat(33);
    let err = load("csv", &format!("1\n{long}\n")).unwrap_err();
    assert!(matches!(err.problem, LoadProblem::PrefixTooLong(33)));
    assert_eq!(err.line, 2);
    assert!(
        err.to_string()
            .ends_with(".csv:2: prefix is 33 bytes, longer than 32"),
        "{err}"
    );
}

#[test]
fn csv_duplicates_name_both_lines() {
    let err = load("csv", "1,a\n44,b\n2\n44,c\n1\n").unwrap_err();
    assert_eq!(err.line, 4);
    assert_eq!(
        err.problem.to_string(),
        "duplicate prefix \"44\" (first on line 2)"
    );
}

#[test]
fn unreadable_files() {
    let missing = std::env::temp_dir().join("siphon-prefix-does-not-exist.csv");
    let err = load_file(&missing).unwrap_err();
    assert!(matches!(err.problem, LoadProblem::Read(_)));
    assert_eq!(err.line, 0);
    let f = TempFile::new("csv", b"1\n2\n\xff\n");
    let err = load_file(&f.0).unwrap_err();
    assert!(matches!(err.problem, LoadProblem::NotUtf8));
    assert_eq!(err.line, 3);
}

#[test]
fn toml_entries_with_lines() {
    let text = "[[prefix]]\nprefix = \"44\"\ndestination = \"uk\"\n\n[[prefix]]\nprefix = \"1\"\n";
    let want = vec![e("44", Some("uk"), 2), e("1", None, 6)];
    assert_eq!(load("toml", text).unwrap(), want);
    assert_eq!(load("toml", "").unwrap(), vec![]);
}

#[test]
fn toml_errors() {
    let err = load("toml", "[[prefix]]\nprefix = \"44\"\nweight = 3\n").unwrap_err();
    assert!(matches!(err.problem, LoadProblem::Toml(_)));
    assert_eq!(err.line, 3, "{err}");
    assert!(err.to_string().contains("weight"), "{err}");
    let err = load("toml", "[[prefix]]\ndestination = \"uk\"\n").unwrap_err();
    assert!(matches!(err.problem, LoadProblem::Toml(_)), "{err}");
    let err = load("toml", "[[prefix]]\nprefix = \"4 4\"\n").unwrap_err();
    assert_eq!(
        (err.line, err.problem.to_string()),
        (2, "prefix contains ' '".into())
    );
    let text = "[[prefix]]\nprefix = \"44\"\n[[prefix]]\nprefix = \"44\"\n";
    let err = load("toml", text).unwrap_err();
    assert_eq!(err.line, 4);
    assert!(matches!(
        err.problem,
        LoadProblem::Duplicate { first_line: 2, .. }
    ));
}

#[test]
fn loaded_entries_build_a_table() {
    let entries = load("csv", "prefix,destination\n1,us\n44,uk\n4420,london\n").unwrap();
    let names = ["us", "uk", "london"];
    let t = PrefixTable::build(entries.iter().map(|e| {
        let v = names.iter().position(|n| Some(*n) == e.value.as_deref());
        (e.prefix.as_bytes(), v)
    }))
    .unwrap();
    assert_eq!(t.lookup(b"442071234567"), Some((4, Some(2))));
    assert_eq!(t.lookup(b"441234"), Some((2, Some(1))));
}
