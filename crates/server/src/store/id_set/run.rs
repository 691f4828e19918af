//! One immutable run: a file of sorted keys with its filter and fences.
//!
//! Layout, little-endian: a 32-byte header (magic, key count, filter blocks, fence
//! stride), the keys (16 bytes each, ascending), the filter's blocks (64 bytes each),
//! then the fences (every `FENCE_EVERY`-th key). The filter and fences are read into
//! memory on open (about 1.3 bytes per key); a lookup that passes the filter reads one
//! 4 KiB page of keys through the OS's page cache, which is not this process's memory.

use super::filter::Filter;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"SLIDRUN1";
const HEADER: u64 = 32;
const KEY: usize = 16;
/// Keys per page: 256 × 16 bytes is 4 KiB, one read per lookup.
const FENCE_EVERY: usize = 256;

#[derive(Debug)]
pub struct Run {
    pub seq: u64,
    pub count: u64,
    path: PathBuf,
    file: File,
    filter: Filter,
    /// The first key of each page.
    fences: Vec<u128>,
}

pub fn file_name(seq: u64) -> String {
    format!("run-{seq:010}.ids")
}

impl Run {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `keys` (ascending, distinct, exactly `count` of them) as run `seq` in `dir`:
    /// to a temporary name, synced, then renamed, so a run file is whole or absent.
    pub fn write(dir: &Path, seq: u64, count: u64, keys: impl Iterator<Item = io::Result<u128>>) -> io::Result<Run> {
        let path = dir.join(file_name(seq));
        let tmp = path.with_extension("tmp");
        let mut filter = Filter::with_capacity(count as usize);
        let mut fences = Vec::with_capacity((count as usize).div_ceil(FENCE_EVERY));
        let mut out = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
        let blocks = filter.blocks().len() as u64;
        out.write_all(MAGIC)?;
        out.write_all(&count.to_le_bytes())?;
        out.write_all(&blocks.to_le_bytes())?;
        out.write_all(&(FENCE_EVERY as u64).to_le_bytes())?;
        let mut written = 0u64;
        let mut last = None;
        for k in keys {
            let k = k?;
            debug_assert!(last.is_none_or(|l| l < k), "run keys ascend");
            last = Some(k);
            if (written as usize).is_multiple_of(FENCE_EVERY) {
                fences.push(k);
            }
            filter.insert(k);
            out.write_all(&k.to_le_bytes())?;
            written += 1;
        }
        if written != count {
            return Err(io::Error::other(format!("run {seq}: {written} keys written, {count} announced")));
        }
        for block in filter.blocks() {
            for w in block {
                out.write_all(&w.to_le_bytes())?;
            }
        }
        for f in &fences {
            out.write_all(&f.to_le_bytes())?;
        }
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, &path)?;
        Ok(Run { seq, count, file: File::open(&path)?, path, filter, fences })
    }

    pub fn open(dir: &Path, seq: u64) -> io::Result<Run> {
        let path = dir.join(file_name(seq));
        let file = File::open(&path)?;
        let mut header = [0u8; HEADER as usize];
        file.read_exact_at(&mut header, 0)?;
        let word = |i: usize| u64::from_le_bytes(header[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        if &header[..8] != MAGIC || word(3) != FENCE_EVERY as u64 {
            return Err(io::Error::other(format!("{} is not a run file of this version", path.display())));
        }
        let (count, blocks) = (word(1), word(2));
        let expected = HEADER + count * KEY as u64 + blocks * 64 + count.div_ceil(FENCE_EVERY as u64) * KEY as u64;
        if file.metadata()?.len() != expected {
            return Err(io::Error::other(format!("{} has the wrong length", path.display())));
        }
        let mut raw = vec![0u8; (blocks * 64) as usize];
        file.read_exact_at(&mut raw, HEADER + count * KEY as u64)?;
        let filter = Filter::from_blocks(
            raw.chunks_exact(64)
                .map(|b| std::array::from_fn(|i| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().expect("8 bytes"))))
                .collect(),
        );
        let mut raw = vec![0u8; count.div_ceil(FENCE_EVERY as u64) as usize * KEY];
        file.read_exact_at(&mut raw, HEADER + count * KEY as u64 + blocks * 64)?;
        let fences = raw.chunks_exact(KEY).map(key_of).collect();
        Ok(Run { seq, count, path, file, filter, fences })
    }

    pub fn contains(&self, key: u128) -> io::Result<bool> {
        if !self.filter.may_contain(key) {
            return Ok(false);
        }
        let page = match self.fences.binary_search(&key) {
            Ok(_) => return Ok(true),
            Err(0) => return Ok(false),
            Err(i) => i - 1,
        };
        let start = page * FENCE_EVERY;
        let n = FENCE_EVERY.min(self.count as usize - start);
        let mut buf = [0u8; FENCE_EVERY * KEY];
        self.file.read_exact_at(&mut buf[..n * KEY], HEADER + (start * KEY) as u64)?;
        // A binary search over the page as read, without copying its keys out.
        let at = |i: usize| key_of(&buf[i * KEY..(i + 1) * KEY]);
        let (mut lo, mut hi) = (0, n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match at(mid).cmp(&key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(true),
            }
        }
        Ok(false)
    }

    /// Its keys in order, read sequentially from a handle of its own.
    pub fn keys(&self) -> io::Result<Keys> {
        let mut file = File::open(&self.path)?;
        io::Seek::seek(&mut file, io::SeekFrom::Start(HEADER))?;
        Ok(Keys { reader: BufReader::with_capacity(1 << 20, file), left: self.count })
    }
}

fn key_of(b: &[u8]) -> u128 {
    u128::from_le_bytes(b.try_into().expect("16 bytes"))
}

pub struct Keys {
    reader: BufReader<File>,
    left: u64,
}

impl Iterator for Keys {
    type Item = io::Result<u128>;

    fn next(&mut self) -> Option<io::Result<u128>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let mut b = [0u8; KEY];
        Some(self.reader.read_exact(&mut b).map(|_| u128::from_le_bytes(b)))
    }
}
