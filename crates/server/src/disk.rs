//! The free-space floor under the data directory. DuckDB that runs out of disk mid-
//! checkpoint invalidates its database, and every later write fails until a restart; so
//! writes are refused (503, `Retry-After`) while the free space is under a floor
//! (`min_free_disk_mb`), before the disk is full, and taken again by themselves once space
//! is freed. A thread reads the free space every second; a write only reads an atomic.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

const EVERY: Duration = Duration::from_secs(1);

pub struct DiskGuard {
    dir: Option<PathBuf>,
    floor: u64,
    free: AtomicU64,
    low: AtomicBool,
}

/// A write refused for want of space.
#[derive(Debug, Clone, Copy)]
pub struct DiskLow {
    pub free: u64,
    pub floor: u64,
}

impl std::fmt::Display for DiskLow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the disk holding the data has {} MB free, under the floor of {} MB (the min_free_disk_mb setting); \
             writes are refused until space is freed, and taken again by themselves then",
            self.free / 1_000_000,
            self.floor / 1_000_000
        )
    }
}

impl DiskGuard {
    /// Watches the file system of `dir` (none for in-memory stores: never low).
    pub fn watch(dir: Option<&Path>, floor_mb: u64) -> Arc<DiskGuard> {
        let guard = Arc::new(DiskGuard {
            dir: dir.map(Path::to_path_buf),
            floor: floor_mb * 1_000_000,
            free: AtomicU64::new(u64::MAX),
            low: AtomicBool::new(false),
        });
        if guard.dir.is_some() {
            guard.refresh();
            let weak: Weak<DiskGuard> = Arc::downgrade(&guard);
            let spawned = std::thread::Builder::new().name("sightline-disk".into()).spawn(move || {
                // Ends with the service, when the last handle to the guard goes.
                while let Some(g) = weak.upgrade() {
                    g.refresh();
                    drop(g);
                    std::thread::sleep(EVERY);
                }
            });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start watching the free disk space");
            }
        }
        guard
    }

    fn refresh(&self) {
        let Some(dir) = &self.dir else { return };
        match free_bytes(dir) {
            Ok(free) => {
                self.free.store(free, Ordering::Relaxed);
                let low = free < self.floor;
                if self.low.swap(low, Ordering::Relaxed) != low {
                    if low {
                        tracing::error!(free, floor = self.floor, "free disk space under the floor; refusing writes");
                    } else {
                        tracing::warn!(free, floor = self.floor, "free disk space back over the floor; taking writes");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, dir = %dir.display(), "could not read the free disk space"),
        }
    }

    /// Whether a write may go ahead.
    pub fn check(&self) -> Result<(), DiskLow> {
        if self.low.load(Ordering::Relaxed) {
            return Err(DiskLow { free: self.free.load(Ordering::Relaxed), floor: self.floor });
        }
        Ok(())
    }

    /// (free bytes, floor bytes, low) for health checks; free is `None` in memory.
    pub fn status(&self) -> (Option<u64>, u64, bool) {
        let free = self.dir.as_ref().map(|_| self.free.load(Ordering::Relaxed));
        (free, self.floor, self.low.load(Ordering::Relaxed))
    }
}

/// Bytes an unprivileged writer may still use on the file system holding `dir`.
fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let st = rustix::fs::statvfs(dir)?;
    Ok(st.f_bavail * st.f_frsize)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_floor_over_the_free_space_refuses_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let ok = super::DiskGuard::watch(Some(dir.path()), 1);
        assert!(ok.check().is_ok());
        let (free, _, low) = ok.status();
        assert!(free.unwrap() > 1_000_000 && !low);
        let huge = super::DiskGuard::watch(Some(dir.path()), u64::MAX / 2_000_000);
        let refused = huge.check().unwrap_err();
        assert!(refused.to_string().contains("min_free_disk_mb"), "{refused}");
        assert!(super::DiskGuard::watch(None, u64::MAX / 2_000_000).check().is_ok(), "in memory: never low");
    }
}
