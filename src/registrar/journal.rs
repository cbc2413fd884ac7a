//! The registrar's journal: every change to an AOR, appended before the
//! REGISTER that made it is answered, so an acknowledged binding survives
//! a crash.
//!
//! Layout of `registrar.journal_dir`:
//! - `journal-<gen>-<shard>.log`: what shard `shard` appended during
//!   generation `gen`. Each shard writes its own file, so shards never
//!   wait for each other.
//! - `snapshot-<gen>`: every AOR as of the start of generation `gen`,
//!   written by compaction (to a `.tmp` name, synced, then renamed).
//!
//! A record is the whole state of one AOR after a change, with the
//! change's sequence number, so replay is "newest record per AOR wins" in
//! any order: load the newest snapshot, then every journal file of its
//! generation or later. Records are framed (`R`, length, body, FNV-1a
//! 64 of the body); a torn tail (a crash in the middle of a write) ends
//! its file's replay and is reported.
//!
//! Compaction, by the housekeeping thread: bump the generation; wait until
//! every shard has moved to the new generation's file (a shard moves
//! between two writes, and on its timer when idle); write the snapshot of
//! the table; delete older journals and snapshots. Every record in an
//! older file was applied to the table before its shard moved, so the
//! snapshot holds it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::store::{Binding, Record, Store};
use crate::config::Transport;

/// When the journal is synced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// After every write, before the 200 OK goes out: survives a power
    /// cut; costs a disk sync per receive batch.
    Always,
    /// Every `n` ms by the housekeeping thread: the 200 waits for the
    /// write (which survives a crash of siphon), not for the disk; a power
    /// cut can lose the last `n` ms.
    Batch(u64),
    /// Never: the kernel writes back when it likes. Survives a crash of
    /// siphon, not of the machine.
    Never,
}

/// What the shards and the housekeeping thread share.
pub struct Shared {
    pub dir: PathBuf,
    pub fsync: Fsync,
    /// The generation shards should write to.
    pub gen: AtomicU64,
    /// The generation each shard writes to now.
    pub shard_gen: Box<[AtomicU64]>,
    /// Each shard's current file (a duplicate descriptor), for batched
    /// syncs by the housekeeping thread.
    pub files: Mutex<Vec<Option<File>>>,
}

impl Shared {
    pub fn new(dir: PathBuf, fsync: Fsync, shards: usize, gen: u64) -> Shared {
        Shared {
            dir,
            fsync,
            gen: AtomicU64::new(gen),
            shard_gen: (0..shards).map(|_| AtomicU64::new(gen)).collect(),
            files: Mutex::new((0..shards).map(|_| None).collect()),
        }
    }

    /// Sync every shard's file (the batched policy).
    pub fn sync_all(&self) {
        let files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        for f in files.iter().flatten() {
            let _ = f.sync_data();
        }
    }
}

/// One shard's end of the journal.
pub struct Writer {
    shared: Arc<Shared>,
    shard: usize,
    gen: u64,
    file: Option<File>,
}

impl Writer {
    pub fn new(shared: Arc<Shared>, shard: usize) -> Writer {
        let gen = shared.gen.load(Ordering::Acquire);
        Writer {
            shared,
            shard,
            gen,
            file: None,
        }
    }

    /// Append `data` (whole records) and sync as the policy says. An error
    /// means the changes are not durable: the caller must not acknowledge
    /// them.
    pub fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.follow_gen()?;
        let file = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(self.open()?),
        };
        file.write_all(data)?;
        if self.shared.fsync == Fsync::Always {
            file.sync_data()?;
        }
        Ok(())
    }

    /// Move to the generation compaction asked for (between writes; also
    /// called on the shard's timer so an idle shard moves too).
    pub fn follow_gen(&mut self) -> io::Result<()> {
        let want = self.shared.gen.load(Ordering::Acquire);
        if want == self.gen {
            return Ok(());
        }
        if let Some(f) = self.file.take() {
            f.sync_data()?;
        }
        self.gen = want;
        self.shared.shard_gen[self.shard].store(want, Ordering::Release);
        Ok(())
    }

    fn open(&self) -> io::Result<File> {
        let path = journal_path(&self.shared.dir, self.gen, self.shard);
        let f = OpenOptions::new().create(true).append(true).open(path)?;
        let mut files = self.shared.files.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = files.get_mut(self.shard) {
            *slot = f.try_clone().ok();
        }
        Ok(f)
    }
}

/// What a file of the journal directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Snapshot,
    Journal,
}

/// The snapshots and journals in `dir`, with their generations (other
/// files, such as a snapshot's `.tmp`, are left out).
fn files_in(dir: &Path) -> io::Result<Vec<(Kind, u64, PathBuf)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let found = if let Some(g) = name.strip_prefix("snapshot-") {
            g.parse().ok().map(|g| (Kind::Snapshot, g))
        } else if let Some(rest) = name
            .strip_prefix("journal-")
            .and_then(|r| r.strip_suffix(".log"))
        {
            let g = rest.split('-').next().and_then(|g| g.parse().ok());
            g.map(|g| (Kind::Journal, g))
        } else {
            None
        };
        if let Some((kind, g)) = found {
            out.push((kind, g, e.path()));
        }
    }
    Ok(out)
}

fn journal_path(dir: &Path, gen: u64, shard: usize) -> PathBuf {
    dir.join(format!("journal-{gen}-{shard}.log"))
}

fn snapshot_path(dir: &Path, gen: u64) -> PathBuf {
    dir.join(format!("snapshot-{gen}"))
}

/// Append the record of an AOR's state after change `seq` (no bindings:
/// the AOR was removed).
pub fn encode(out: &mut Vec<u8>, seq: u64, aor: &[u8], bindings: &[Binding]) {
    // 'S': each binding ends with the listener it arrived on and its NAT
    // flag ('R', its predecessor without them, is still read).
    out.push(b'S');
    let len_at = out.len();
    out.extend_from_slice(&[0; 4]);
    let body = out.len();
    out.extend_from_slice(&seq.to_le_bytes());
    put_bytes(out, aor);
    out.extend_from_slice(&(bindings.len() as u16).to_le_bytes());
    for b in bindings {
        put_bytes(out, &b.contact);
        out.extend_from_slice(&b.expires.to_le_bytes());
        out.extend_from_slice(&b.q.to_le_bytes());
        out.extend_from_slice(&b.cseq.to_le_bytes());
        out.extend_from_slice(&b.call_id.to_le_bytes());
        out.push(b.path.len() as u8);
        for p in b.path.iter() {
            put_bytes(out, p);
        }
        put_bytes(out, b.instance.as_deref().unwrap_or(b""));
        out.extend_from_slice(&b.reg_id.to_le_bytes());
        out.push(match b.transport {
            Transport::Udp => 0,
            Transport::Tcp => 1,
        });
        put_addr(out, b.source);
        put_addr(
            out,
            b.local
                .unwrap_or(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0)),
        );
        out.push(u8::from(b.nat));
    }
    let len = (out.len() - body) as u32;
    out[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
    let sum = fnv(&out[body..]);
    out.extend_from_slice(&sum.to_le_bytes());
}

/// An address: IPv4 flag, the address as IPv6 (IPv4-mapped), the port.
fn put_addr(out: &mut Vec<u8>, a: SocketAddr) {
    let ip = match a.ip() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    out.push(u8::from(a.is_ipv4()));
    out.extend_from_slice(&ip.octets());
    out.extend_from_slice(&a.port().to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    let b = &b[..b.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(b.len() as u16).to_le_bytes());
    out.extend_from_slice(b);
}

fn fnv(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &x in b {
        h ^= u64::from(x);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// One decoded record.
#[derive(Debug, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    pub aor: Vec<u8>,
    pub bindings: Vec<Binding>,
}

/// Reading the records of one file.
pub struct Decoded {
    pub entries: Vec<Entry>,
    /// Bytes at the end that are not a whole, intact record (a write cut
    /// short by a crash).
    pub torn: usize,
}

/// Decode every whole record of `data`, stopping at the first that is cut
/// short or damaged.
pub fn decode(data: &[u8]) -> Decoded {
    let mut entries = Vec::new();
    let mut at = 0;
    while at < data.len() {
        match decode_one(&data[at..]) {
            Some((e, used)) => {
                entries.push(e);
                at += used;
            }
            None => break,
        }
    }
    Decoded {
        entries,
        torn: data.len() - at,
    }
}

fn decode_one(d: &[u8]) -> Option<(Entry, usize)> {
    let with_local = match *d.first()? {
        b'R' => false,
        b'S' => true,
        _ => return None,
    };
    let len = u32::from_le_bytes(d.get(1..5)?.try_into().ok()?) as usize;
    let body = d.get(5..5 + len)?;
    let sum = u64::from_le_bytes(d.get(5 + len..13 + len)?.try_into().ok()?);
    if fnv(body) != sum {
        return None;
    }
    let mut r = Reader(body);
    let seq = r.u64()?;
    let aor = r.bytes()?.to_vec();
    let n = r.u16()?;
    let mut bindings = Vec::with_capacity(usize::from(n).min(64));
    for _ in 0..n {
        let contact = r.bytes()?.into();
        let expires = r.u64()?;
        let q = r.u16()?;
        let cseq = r.u32()?;
        let call_id = r.u64()?;
        let np = r.u8()?;
        let mut path = Vec::with_capacity(usize::from(np));
        for _ in 0..np {
            path.push(r.bytes()?.into());
        }
        let instance = r.bytes()?;
        let instance = (!instance.is_empty()).then(|| instance.into());
        let reg_id = r.u32()?;
        let transport = match r.u8()? {
            0 => Transport::Udp,
            1 => Transport::Tcp,
            _ => return None,
        };
        let source = r.addr()?;
        let (local, nat) = if with_local {
            (Some(r.addr()?).filter(|a| a.port() != 0), r.u8()? == 1)
        } else {
            (None, false)
        };
        bindings.push(Binding {
            contact,
            expires,
            q,
            cseq,
            call_id,
            path: path.into_boxed_slice(),
            instance,
            reg_id,
            source,
            transport,
            local,
            conn: 0,
            nat,
        });
    }
    if !r.0.is_empty() {
        return None;
    }
    Some((Entry { seq, aor, bindings }, 13 + len))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn addr(&mut self) -> Option<SocketAddr> {
        let v4 = self.u8()? == 1;
        let ip = Ipv6Addr::from(<[u8; 16]>::try_from(self.take(16)?).ok()?);
        let port = self.u16()?;
        let ip = match (v4, ip.to_ipv4_mapped()) {
            (true, Some(a)) => IpAddr::V4(a),
            _ => IpAddr::V6(ip),
        };
        Some(SocketAddr::new(ip, port))
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (a, b) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}

/// What a start-up replay found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// The generation to continue in (one past the newest seen).
    pub gen: u64,
    pub records: usize,
    /// Live bindings in the table afterwards.
    pub bindings: usize,
    /// Files whose tail was torn, and how many bytes were skipped.
    pub torn: Vec<(PathBuf, usize)>,
}

/// Rebuild `store` from `dir` (created if missing): the newest snapshot,
/// then the journals of its generation and later; expired bindings are
/// dropped.
pub fn replay(dir: &Path, store: &Store, now: u64) -> io::Result<Replayed> {
    std::fs::create_dir_all(dir)?;
    let mut snapshots = Vec::new();
    let mut journals = Vec::new();
    for (kind, g, path) in files_in(dir)? {
        match kind {
            Kind::Snapshot => snapshots.push(g),
            Kind::Journal => journals.push((g, path)),
        }
    }
    let base = snapshots.iter().copied().max();
    let mut out = Replayed::default();
    let mut files = Vec::new();
    if let Some(g) = base {
        files.push(snapshot_path(dir, g));
    }
    journals.sort();
    files.extend(
        journals
            .iter()
            .filter(|(g, _)| base.is_none_or(|b| *g >= b))
            .map(|(_, p)| p.clone()),
    );
    // Newest record per AOR first, across all files: a removal (a record
    // with no bindings) must win over an older record in a file read
    // later.
    let mut newest: std::collections::HashMap<Vec<u8>, (u64, Vec<Binding>)> = Default::default();
    for path in files {
        let mut data = Vec::new();
        File::open(&path)?.read_to_end(&mut data)?;
        let d = decode(&data);
        if d.torn > 0 {
            out.torn.push((path.clone(), d.torn));
        }
        for e in d.entries {
            out.records += 1;
            match newest.get_mut(&e.aor) {
                Some(cur) if cur.0 >= e.seq => {}
                Some(cur) => *cur = (e.seq, e.bindings),
                None => {
                    newest.insert(e.aor, (e.seq, e.bindings));
                }
            }
        }
    }
    for (aor, (seq, bindings)) in newest {
        let live: Vec<Binding> = bindings.into_iter().filter(|b| b.live(now)).collect();
        store.restore(seq, &aor, live);
    }
    let newest = journals
        .iter()
        .map(|(g, _)| *g)
        .chain(base)
        .max()
        .unwrap_or(0);
    out.gen = newest + 1;
    out.bindings = store.len();
    Ok(out)
}

/// Compact: move every shard to a new generation, snapshot the table,
/// delete what the snapshot replaces. `Ok(false)`: a shard did not move in
/// time; try again later (nothing was deleted).
pub fn compact(shared: &Shared, store: &Store, wait: std::time::Duration) -> io::Result<bool> {
    let gen = shared.gen.fetch_add(1, Ordering::AcqRel) + 1;
    let deadline = std::time::Instant::now() + wait;
    while shared
        .shard_gen
        .iter()
        .any(|g| g.load(Ordering::Acquire) < gen)
    {
        if std::time::Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let tmp = shared.dir.join(format!("snapshot-{gen}.tmp"));
    {
        let mut f = std::io::BufWriter::new(File::create(&tmp)?);
        let mut buf = Vec::with_capacity(64 * 1024);
        let mut err = None;
        store.for_each(|r: &Record| {
            encode(&mut buf, r.seq, &r.aor, &r.bindings);
            if buf.len() >= 60 * 1024 {
                if let Err(e) = f.write_all(&buf) {
                    err.get_or_insert(e);
                }
                buf.clear();
            }
        });
        if let Some(e) = err {
            return Err(e);
        }
        f.write_all(&buf)?;
        let f = f.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, snapshot_path(&shared.dir, gen))?;
    File::open(&shared.dir)?.sync_all()?;
    for (_, g, path) in files_in(&shared.dir)? {
        if g < gen {
            let _ = std::fs::remove_file(path);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(contact: &str, expires: u64) -> Binding {
        Binding {
            contact: contact.as_bytes().into(),
            expires,
            q: 700,
            cseq: 42,
            call_id: 0xdead_beef,
            path: vec![b"<sip:p1;lr>".to_vec().into_boxed_slice()].into_boxed_slice(),
            instance: Some(b"\"<urn:uuid:1>\"".to_vec().into_boxed_slice()),
            reg_id: 1,
            source: "[::1]:5070".parse().unwrap(),
            transport: Transport::Tcp,
            local: Some("[::1]:5060".parse().unwrap()),
            conn: 0,
            nat: true,
        }
    }

    #[test]
    fn records_round_trip() {
        let mut out = Vec::new();
        let mut v4 = b("sip:x@h", 99);
        v4.source = "10.1.2.3:7".parse().unwrap();
        v4.transport = Transport::Udp;
        v4.instance = None;
        v4.path = Box::new([]);
        encode(&mut out, 7, b"a@x", &[b("sip:a@h", 100), v4.clone()]);
        encode(&mut out, 8, b"b@x", &[]);
        let d = decode(&out);
        assert_eq!(d.torn, 0);
        assert_eq!(d.entries.len(), 2);
        assert_eq!(d.entries[0].seq, 7);
        assert_eq!(d.entries[0].aor, b"a@x");
        assert_eq!(d.entries[0].bindings, vec![b("sip:a@h", 100), v4]);
        assert_eq!((d.entries[1].seq, d.entries[1].bindings.len()), (8, 0));
    }

    #[test]
    fn records_without_the_listener_still_replay() {
        let mut old = b("sip:a@h", 100);
        old.local = None;
        old.nat = false;
        let mut s = Vec::new();
        encode(&mut s, 3, b"a@x", &[old.clone()]);
        // An 'R' record: the same without the listener and the NAT flag
        // (20 bytes) that end its one binding.
        let body = s[5..s.len() - 8 - 20].to_vec();
        let mut r = vec![b'R'];
        r.extend_from_slice(&(body.len() as u32).to_le_bytes());
        r.extend_from_slice(&body);
        r.extend_from_slice(&fnv(&body).to_le_bytes());
        let d = decode(&r);
        assert_eq!((d.entries.len(), d.torn), (1, 0));
        assert_eq!(d.entries[0].bindings, vec![old]);
    }

    #[test]
    fn a_torn_or_damaged_tail_ends_the_replay_of_its_file() {
        let mut out = Vec::new();
        encode(&mut out, 1, b"a@x", &[b("sip:a@h", 100)]);
        let whole = out.len();
        encode(&mut out, 2, b"b@x", &[b("sip:b@h", 100)]);
        for cut in whole..out.len() {
            let d = decode(&out[..cut]);
            assert_eq!((d.entries.len(), d.torn), (1, cut - whole), "cut at {cut}");
        }
        let mut bad = out.clone();
        bad[whole + 20] ^= 1;
        let d = decode(&bad);
        assert_eq!(d.entries.len(), 1);
        assert!(d.torn > 0);
    }

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("siphon-journal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn replay_compact_and_replay_again() {
        let dir = tmpdir("compact");
        let store = Store::new(16, 1000);
        let shared = Arc::new(Shared::new(dir.clone(), Fsync::Never, 2, 1));
        std::fs::create_dir_all(&dir).unwrap();
        let mut w0 = Writer::new(shared.clone(), 0);
        let mut w1 = Writer::new(shared.clone(), 1);
        let write = |w: &mut Writer, aor: &str, bs: Vec<Binding>| {
            let u = store
                .update::<()>(aor.as_bytes(), |_| Ok(bs.clone()))
                .unwrap();
            let mut buf = Vec::new();
            encode(&mut buf, u.seq, aor.as_bytes(), &bs);
            w.append(&buf).unwrap();
        };
        write(&mut w0, "a@x", vec![b("sip:a1@h", 100)]);
        write(&mut w1, "a@x", vec![b("sip:a2@h", 100)]);
        // Added by shard 1, removed later by shard 0: shard 0's file is
        // read first, and the removal must still win.
        write(&mut w1, "gone@x", vec![b("sip:g@h", 100)]);
        write(&mut w0, "gone@x", vec![]);
        write(&mut w0, "old@x", vec![b("sip:o@h", 5)]);

        let again = Store::new(4, 1000);
        let r = replay(&dir, &again, 10).unwrap();
        assert_eq!(r.records, 5);
        assert_eq!(
            &*again.get(b"a@x").unwrap().bindings[0].contact,
            b"sip:a2@h"
        );
        assert!(again.get(b"gone@x").is_none());
        assert!(again.get(b"old@x").is_none(), "expired at replay");
        assert_eq!(r.gen, 2);

        // Compaction waits for both writers to move.
        let s2 = shared.clone();
        let h = std::thread::spawn(move || {
            compact(&s2, &store_for_compact(), std::time::Duration::from_secs(5))
        });
        std::thread::sleep(std::time::Duration::from_millis(20));
        w0.follow_gen().unwrap();
        w1.follow_gen().unwrap();
        assert!(h.join().unwrap().unwrap());
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["snapshot-2".to_string()]);
        let third = Store::new(4, 1000);
        let r = replay(&dir, &third, 10).unwrap();
        assert_eq!(r.records, 1);
        assert_eq!(&*third.get(b"c@x").unwrap().bindings[0].contact, b"sip:c@h");
        assert_eq!(r.gen, 3);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn store_for_compact() -> Store {
        let s = Store::new(4, 10);
        s.update::<()>(b"c@x", |_| Ok(vec![b("sip:c@h", 100)]))
            .unwrap();
        s
    }

    #[test]
    fn compaction_gives_up_when_a_shard_does_not_move() {
        let dir = tmpdir("stuck");
        std::fs::create_dir_all(&dir).unwrap();
        let shared = Shared::new(dir.clone(), Fsync::Never, 1, 1);
        let store = Store::new(2, 10);
        assert!(!compact(&shared, &store, std::time::Duration::from_millis(20)).unwrap());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn decoding_garbage_never_panics() {
        let mut out = Vec::new();
        encode(&mut out, 1, b"a@x", &[b("sip:a@h", 100)]);
        for i in 0..out.len() {
            for bit in 0..8 {
                let mut m = out.clone();
                m[i] ^= 1 << bit;
                let _ = decode(&m);
            }
        }
    }
}
