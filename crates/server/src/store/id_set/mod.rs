//! The set of event keys stored (xxh3-128 of tenant and event id), for exact dedupe over
//! all time with memory that does not grow with the events: the keys of recent commits in
//! memory, older ones in sorted run files on disk, each behind an in-memory filter of
//! about 10 bits per key (a log-structured merge tree of keys only). Before, a primary-key
//! index on the events table did this and held every key in memory (issue 15).
//!
//! The events table is the truth and this set follows it: keys are recorded after their
//! events commit, and a run is written only from keys already committed. On start, the
//! events received since the last run was written (less a margin) are read again and
//! their keys recorded; when the set is missing, it is rebuilt from every event.
//!
//! Runs merge in the background, four of a size into one, so a lookup probes a handful
//! of filters. Only the writer thread uses the set.

mod filter;
mod run;

use chrono::{DateTime, Utc};
use run::Run;
use std::collections::HashSet;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};

const MANIFEST: &str = "manifest";
const MANIFEST_HEADER: &str = "sightline-id-set 1";
/// Keys kept in memory before they go to a run: 7/8 of 2^20, the load at which the
/// hash set would double its table (about 17 MiB).
pub const DEFAULT_FLUSH_AT: usize = 917_504;
/// Runs of about one size that merge into one.
const MERGE_FAN_IN: usize = 4;
/// How far before the last written run's time the events are read again on start: an
/// event is received (its `received_at`) before it commits, by at most a queue wait.
const RECOVERY_MARGIN_MINUTES: i64 = 10;

/// What the caller must read again from the events table after opening.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// No set was stored: every event's key.
    All,
    /// The events received since then.
    Since(DateTime<Utc>),
}

/// A set of keys in memory. The keys are already hashes, so a fast hasher does: SipHash
/// (std's default) took 7 % of the writer thread's time. foldhash is seeded per process, so
/// ids crafted to collide stay hard to find.
pub type KeySet = foldhash::HashSet<u128>;

pub struct IdSet {
    dir: Option<PathBuf>,
    recent: KeySet,
    flush_at: usize,
    runs: Vec<Arc<Run>>,
    next_seq: u64,
    /// Every event committed before this time has its key in a run.
    covered_until: DateTime<Utc>,
    merging: Option<Merging>,
    /// Set by [`IdSet::settle`]: no merge starts any more.
    settled: bool,
}

struct Merging {
    inputs: Vec<u64>,
    done: mpsc::Receiver<io::Result<Run>>,
}

impl IdSet {
    /// A set that lives in memory only (in-memory databases, tests).
    pub fn in_memory() -> IdSet {
        IdSet {
            dir: None,
            recent: KeySet::default(),
            flush_at: usize::MAX,
            runs: Vec::new(),
            next_seq: 1,
            covered_until: Utc::now(),
            merging: None,
            settled: false,
        }
    }

    /// Opens the set kept in `dir` (made if missing), answering what must be read again.
    pub fn open(dir: &Path, flush_at: usize) -> io::Result<(IdSet, Recovery)> {
        std::fs::create_dir_all(dir)?;
        let mut set = IdSet { dir: Some(dir.to_owned()), flush_at: flush_at.max(1), ..IdSet::in_memory() };
        let recovery = match std::fs::read_to_string(dir.join(MANIFEST)) {
            Ok(text) => {
                let m = parse_manifest(&text)
                    .ok_or_else(|| io::Error::other(format!("{} is not an id set manifest", dir.display())))?;
                set.covered_until = m.covered_until;
                set.next_seq = m.next_seq;
                for (seq, count) in m.runs {
                    let run = Run::open(dir, seq)?;
                    if run.count != count {
                        return Err(io::Error::other(format!("run {seq} holds {} keys, not {count}", run.count)));
                    }
                    set.runs.push(Arc::new(run));
                }
                Recovery::Since(m.covered_until - chrono::Duration::minutes(RECOVERY_MARGIN_MINUTES))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Recovery::All,
            Err(e) => return Err(e),
        };
        set.remove_strays()?;
        Ok((set, recovery))
    }

    /// Keys stored, in memory and in runs.
    #[allow(clippy::len_without_is_empty)] // a count for logs and tests
    pub fn len(&self) -> u64 {
        self.recent.len() as u64 + self.runs.iter().map(|r| r.count).sum::<u64>()
    }

    pub fn contains(&self, key: u128) -> io::Result<bool> {
        if self.recent.contains(&key) {
            return Ok(true);
        }
        for run in &self.runs {
            if run.contains(key)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Records keys whose events have committed. Writing a run may fail (a full disk):
    /// the keys then stay in memory, the set stays exact, and the next call tries again.
    pub fn record(&mut self, keys: impl IntoIterator<Item = u128>) {
        self.recent.extend(keys);
        self.finish_merge(false);
        if self.recent.len() >= self.flush_at
            && let Err(e) = self.flush()
        {
            tracing::error!(error = %e, keys = self.recent.len(), "writing a run of event ids failed; they stay in memory");
        }
    }

    /// Writes the keys in memory to a run and notes that every committed event is covered.
    pub fn flush(&mut self) -> io::Result<()> {
        let Some(dir) = self.dir.clone() else { return Ok(()) };
        let now = Utc::now();
        if !self.recent.is_empty() {
            let mut keys: Vec<u128> = self.recent.iter().copied().collect();
            keys.sort_unstable();
            let seq = self.take_seq();
            let run = Run::write(&dir, seq, keys.len() as u64, keys.into_iter().map(Ok))?;
            self.runs.push(Arc::new(run));
            self.recent.clear();
        }
        self.covered_until = now;
        self.write_manifest()?;
        self.start_merge();
        Ok(())
    }

    /// Forgets `keys` (a tenant's events, deleted): from memory, and from each run that
    /// holds any of them, rewritten without them.
    pub fn remove(&mut self, keys: &KeySet) -> io::Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        self.recent.retain(|k| !keys.contains(k));
        let Some(dir) = self.dir.clone() else { return Ok(()) };
        // A merge under way would bring removed keys back: let it land first.
        self.finish_merge(true);
        for i in 0..self.runs.len() {
            let run = self.runs[i].clone();
            let mut held = 0u64;
            for &k in keys {
                if run.contains(k)? {
                    held += 1;
                }
            }
            if held == 0 {
                continue;
            }
            let seq = self.take_seq();
            let kept = run.keys()?.filter(|k| k.as_ref().map_or(true, |k| !keys.contains(k)));
            self.runs[i] = Arc::new(Run::write(&dir, seq, run.count - held, kept)?);
            self.write_manifest()?;
            std::fs::remove_file(run.path())?;
        }
        Ok(())
    }

    fn take_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq - 1
    }

    /// Waits for a merge under way and lands it, and starts no other: before the set is
    /// dropped for one opened again on the same folder (the database reopened), whose new
    /// runs a late merge could otherwise overwrite.
    pub fn settle(&mut self) {
        self.settled = true;
        self.finish_merge(true);
    }

    /// Lands a finished merge; with `wait`, waits for one under way.
    fn finish_merge(&mut self, wait: bool) {
        let Some(m) = &self.merging else { return };
        let result = if wait {
            m.done.recv().unwrap_or_else(|_| Err(io::Error::other("the merge thread ended")))
        } else {
            match m.done.try_recv() {
                Ok(r) => r,
                Err(mpsc::TryRecvError::Empty) => return,
                Err(mpsc::TryRecvError::Disconnected) => Err(io::Error::other("the merge thread ended")),
            }
        };
        let inputs = self.merging.take().expect("a merge").inputs;
        match result.and_then(|run| {
            let gone: Vec<Arc<Run>> = self.runs.iter().filter(|r| inputs.contains(&r.seq)).cloned().collect();
            self.runs.retain(|r| !inputs.contains(&r.seq));
            self.runs.push(Arc::new(run));
            self.write_manifest()?;
            for r in gone {
                std::fs::remove_file(r.path())?;
            }
            Ok(())
        }) {
            Ok(()) => self.start_merge(),
            Err(e) => tracing::error!(error = %e, "merging runs of event ids failed; they stay as they are"),
        }
    }

    /// Starts merging the oldest `MERGE_FAN_IN` runs of the smallest size class that has
    /// that many, if no merge is under way.
    fn start_merge(&mut self) {
        let Some(dir) = self.dir.clone() else { return };
        if self.merging.is_some() || self.settled {
            return;
        }
        let base = self.flush_at as u64;
        let class = |r: &Run| (r.count / base).max(1).ilog(MERGE_FAN_IN as u64);
        let mut classes: Vec<u32> = self.runs.iter().map(|r| class(r)).collect();
        classes.sort_unstable();
        classes.dedup();
        let Some(pick) =
            classes.into_iter().find(|&c| self.runs.iter().filter(|r| class(r) == c).count() >= MERGE_FAN_IN)
        else {
            return;
        };
        let mut inputs: Vec<Arc<Run>> = self.runs.iter().filter(|r| class(r) == pick).cloned().collect();
        inputs.sort_by_key(|r| r.seq);
        inputs.truncate(MERGE_FAN_IN);
        let seq = self.take_seq();
        let (tx, rx) = mpsc::channel();
        self.merging = Some(Merging { inputs: inputs.iter().map(|r| r.seq).collect(), done: rx });
        let spawned = std::thread::Builder::new().name("sightline-ids-merge".into()).spawn(move || {
            let started = std::time::Instant::now();
            let count = inputs.iter().map(|r| r.count).sum();
            let merged = inputs
                .iter()
                .map(|r| r.keys())
                .collect::<io::Result<Vec<_>>>()
                .and_then(|streams| Run::write(&dir, seq, count, Merged::new(streams)?));
            if merged.is_ok() {
                tracing::debug!(keys = count, ms = started.elapsed().as_millis() as u64, "runs of event ids merged");
            }
            let _ = tx.send(merged);
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start merging runs of event ids");
            self.merging = None;
        }
    }

    fn write_manifest(&self) -> io::Result<()> {
        let Some(dir) = &self.dir else { return Ok(()) };
        let mut text = format!(
            "{MANIFEST_HEADER}\ncovered_until {}\nnext_seq {}\n",
            self.covered_until.timestamp_micros(),
            self.next_seq
        );
        for r in &self.runs {
            text.push_str(&format!("run {} {}\n", r.seq, r.count));
        }
        let tmp = dir.join("manifest.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join(MANIFEST))?;
        std::fs::File::open(dir)?.sync_all()
    }

    /// Removes what a crash may leave: temporary files, and runs a merge replaced.
    fn remove_strays(&self) -> io::Result<()> {
        let Some(dir) = &self.dir else { return Ok(()) };
        let listed: HashSet<String> = self.runs.iter().map(|r| run::file_name(r.seq)).collect();
        for entry in std::fs::read_dir(dir)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if name != MANIFEST && !listed.contains(&name) && (name.ends_with(".ids") || name.ends_with(".tmp")) {
                std::fs::remove_file(dir.join(&name))?;
            }
        }
        Ok(())
    }
}

/// A manifest: when every committed key was in a run, the next run number, and each
/// run's number and key count.
struct Manifest {
    covered_until: DateTime<Utc>,
    next_seq: u64,
    runs: Vec<(u64, u64)>,
}

fn parse_manifest(text: &str) -> Option<Manifest> {
    let mut lines = text.lines();
    (lines.next()? == MANIFEST_HEADER).then_some(())?;
    let covered = DateTime::from_timestamp_micros(lines.next()?.strip_prefix("covered_until ")?.parse().ok()?)?;
    let next_seq = lines.next()?.strip_prefix("next_seq ")?.parse().ok()?;
    let mut runs = Vec::new();
    for line in lines {
        let mut w = line.strip_prefix("run ")?.split(' ');
        runs.push((w.next()?.parse().ok()?, w.next()?.parse().ok()?));
    }
    Some(Manifest { covered_until: covered, next_seq, runs })
}

/// The keys of several runs in one ascending stream (runs hold distinct keys).
struct Merged {
    heads: Vec<(u128, run::Keys)>,
}

impl Merged {
    fn new(streams: Vec<run::Keys>) -> io::Result<Merged> {
        let mut heads = Vec::with_capacity(streams.len());
        for mut s in streams {
            if let Some(k) = s.next() {
                heads.push((k?, s));
            }
        }
        Ok(Merged { heads })
    }
}

impl Iterator for Merged {
    type Item = io::Result<u128>;

    fn next(&mut self) -> Option<io::Result<u128>> {
        let (i, _) = self.heads.iter().enumerate().min_by_key(|(_, (k, _))| *k)?;
        let key = self.heads[i].0;
        match self.heads[i].1.next() {
            Some(Ok(k)) => self.heads[i].0 = k,
            Some(Err(e)) => return Some(Err(e)),
            None => {
                self.heads.swap_remove(i);
            }
        }
        Some(Ok(key))
    }
}

#[cfg(test)]
mod tests {
    use super::{IdSet, Recovery};
    use std::collections::HashSet;

    fn key(i: u64) -> u128 {
        xxhash_rust::xxh3::xxh3_128(&i.to_le_bytes())
    }

    /// Records 0..n in groups, as the writer does, checking each against a HashSet.
    fn fill(set: &mut IdSet, range: std::ops::Range<u64>, truth: &mut HashSet<u128>) {
        for chunk in range.collect::<Vec<_>>().chunks(37) {
            let keys: Vec<u128> = chunk.iter().map(|&i| key(i)).collect();
            for k in &keys {
                assert_eq!(set.contains(*k).unwrap(), truth.contains(k));
            }
            set.record(keys.iter().copied());
            truth.extend(keys);
        }
    }

    #[test]
    fn runs_merge_and_reopen_with_every_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut truth = HashSet::new();
        let (mut set, recovery) = IdSet::open(dir.path(), 100).unwrap();
        assert_eq!(recovery, Recovery::All, "no set yet");
        fill(&mut set, 0..5_000, &mut truth);
        set.finish_merge(true);
        assert!(set.runs.len() < 50 / 4 + 4, "runs merged: {}", set.runs.len());
        assert_eq!(set.len(), 5_000);
        set.flush().unwrap();
        set.finish_merge(true);
        drop(set);

        let (mut set, recovery) = IdSet::open(dir.path(), 100).unwrap();
        assert!(matches!(recovery, Recovery::Since(_)));
        assert_eq!(set.len(), 5_000);
        for i in 0..6_000 {
            assert_eq!(set.contains(key(i)).unwrap(), i < 5_000, "key {i}");
        }
        // Forgetting a third of them: gone from every run, the rest still there.
        let gone: super::KeySet = (0..5_000).filter(|i| i % 3 == 0).map(key).collect();
        set.remove(&gone).unwrap();
        truth.retain(|k| !gone.contains(k));
        assert_eq!(set.len(), truth.len() as u64);
        fill(&mut set, 5_000..5_500, &mut truth);
        for i in 0..6_000 {
            assert_eq!(set.contains(key(i)).unwrap(), truth.contains(&key(i)), "key {i}");
        }
        // Only the manifest's runs remain on disk.
        set.finish_merge(true);
        let files = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(files, set.runs.len() + 1);
    }

    #[test]
    fn a_damaged_run_stops_the_open() {
        let dir = tempfile::tempdir().unwrap();
        let (mut set, _) = IdSet::open(dir.path(), 10).unwrap();
        set.record((0..25).map(key));
        set.flush().unwrap();
        let run = set.runs[0].path().to_owned();
        drop(set);
        let len = std::fs::metadata(&run).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(&run).unwrap().set_len(len - 1).unwrap();
        assert!(IdSet::open(dir.path(), 10).is_err());
    }
}
