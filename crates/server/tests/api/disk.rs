//! A disk that fills up: under the free-space floor, writes are refused with a 503 that
//! says why, health says so, reads go on, and writes are taken again by themselves once
//! space is freed; nothing acknowledged is lost. On a real 48 MB tmpfs.

use crate::helpers::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `mb` MB, or answers None (and says the test is skipped) where
    /// mounting is not allowed (not root).
    fn mount(mb: u32) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap().keep();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs", dir.to_str().unwrap()])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("SKIPPED: mounting a tmpfs needs root; this test runs in CI, which is root");
        }
        ok.then_some(Tmpfs(dir))
    }
}

/// Posts a batch as an admin; answers the status, the `Retry-After` header and the body.
async fn post_batch(client: &reqwest::Client, base: &str, body: Value) -> (u16, Option<String>, Value) {
    let r = client.post(format!("{base}/api/v1/analytics/events/batch")).bearer_auth(admin()).json(&body);
    let r = r.send().await.unwrap();
    let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    (r.status().as_u16(), retry, r.json::<Value>().await.unwrap_or_default())
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_stop_over_a_full_disk_and_resume_when_space_returns() {
    let Some(fs) = Tmpfs::mount(48) else { return };
    let data = fs.0.join("data");
    let env = [("SIGHTLINE_MIN_FREE_DISK_MB", "16"), ("SIGHTLINE_LIMIT_BATCH", "off")];
    let child = Child::start(&["--data-dir", data.to_str().unwrap()], &env).await;
    let base = format!("http://{}", child.addr);
    let client = reqwest::Client::new();
    let batch = |from: usize| json!({"events": (from..from + 200).map(|i| json!({"event_name": "d", "event_id": format!("d{i}")})).collect::<Vec<_>>()});
    let post = |from: usize| post_batch(&client, &base, batch(from));
    let get = |path: &'static str| {
        let r = client.get(format!("{base}{path}")).bearer_auth(admin());
        async move {
            let r = r.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (s, _, _) = post(0).await;
    assert_eq!(s, 200);
    let (s, h) = get("/health").await;
    assert_eq!((s, h["disk"]["status"].as_str()), (200, Some("ok")), "{h}");

    // Ballast leaves less than the floor free.
    let free = rustix::fs::statvfs(&fs.0).unwrap();
    let free = free.f_bavail * free.f_frsize;
    let ballast = fs.0.join("ballast");
    std::fs::write(&ballast, vec![1u8; (free - 8_000_000) as usize]).unwrap();
    // Sends the batch of ids `from..from + 200` until the answer is `want`; answers that
    // answer and whether the batch was acknowledged on the way (the floor is read every
    // second, so a batch may still be taken just after the ballast lands).
    let until = |want: u16, from: usize| {
        let post = &post;
        async move {
            let started = Instant::now();
            let mut acked = false;
            loop {
                let got = post(from).await;
                acked |= got.0 == 200;
                if got.0 == want || started.elapsed() > Duration::from_secs(15) {
                    return (got, acked);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let ((s, retry, problem), acked_while_filling) = until(503, 200).await;
    assert_eq!(s, 503, "{problem}");
    assert_eq!(retry.as_deref(), Some("30"));
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("min_free_disk_mb") && detail.contains("MB free"), "{problem}");
    let (s, h) = get("/health").await;
    assert_eq!(
        (s, h["disk"]["status"].as_str(), h["ingest"]["status"].as_str()),
        (503, Some("low"), Some("refused")),
        "{h}"
    );
    let (s, r) = get("/ready").await;
    assert_eq!((s, r["checks"]["disk"].as_str()), (200, Some("low")), "reads go on: {r}");
    let stored = 200 + if acked_while_filling { 200 } else { 0 };
    let (s, page) = get("/api/v1/analytics/events?event_name=d&page=1&limit=1").await;
    assert_eq!((s, page["pagination"]["total"].as_u64()), (200, Some(stored)), "{page}");

    // Space returns: writes are taken again without a restart.
    std::fs::remove_file(&ballast).unwrap();
    let ((s, _, problem), _) = until(200, 400).await;
    assert_eq!(s, 200, "{problem}");
    let (s, h) = get("/health").await;
    assert_eq!((s, h["disk"]["status"].as_str()), (200, Some("ok")), "{h}");
    let (_, page) = get("/api/v1/analytics/events?event_name=d&page=1&limit=1").await;
    assert_eq!(
        page["pagination"]["total"].as_u64(),
        Some(stored + 200),
        "every acknowledged batch, and nothing refused"
    );
    drop(child);
}

/// With no free-space floor, the disk fills up under DuckDB itself: a commit's write fails
/// (nothing of it stored, a 503), and a checkpoint fails, which invalidates the database.
/// The service opens it again by itself once space returns: every acknowledged event is
/// there once, and resending them all stores nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_invalidated_by_a_full_disk_is_opened_again_without_a_restart() {
    let Some(fs) = Tmpfs::mount(48) else { return };
    let data = fs.0.join("data");
    let env = [
        ("SIGHTLINE_MIN_FREE_DISK_MB", "0"),
        ("SIGHTLINE_LIMIT_BATCH", "off"),
        ("SIGHTLINE_DUCKDB_CHECKPOINT_THRESHOLD", "16MB"),
    ];
    let child = Child::start(&["--data-dir", data.to_str().unwrap()], &env).await;
    let base = format!("http://{}", child.addr);
    let client = reqwest::Client::new();
    // Padded events fill the write-ahead log to the checkpoint threshold (16 MB) within the
    // space left below, so that the checkpoint is what finds the disk full.
    let batch = |from: usize| {
        let events: Vec<Value> = (from..from + 500)
            .map(|i| json!({"event_name": "f", "event_id": format!("f{i}"), "properties": {"pad": format!("{i:0>200}")}}))
            .collect();
        json!({ "events": events })
    };
    let post = |from: usize| post_batch(&client, &base, batch(from));
    let count = || {
        let r = client.get(format!("{base}/api/v1/analytics/events?event_name=f&page=1&limit=1")).bearer_auth(admin());
        async move {
            let r = r.send().await.unwrap();
            let status = r.status().as_u16();
            let body = r.json::<Value>().await.unwrap();
            (status, body["pagination"]["total"].as_u64(), body)
        }
    };

    let free = rustix::fs::statvfs(&fs.0).unwrap();
    let ballast = fs.0.join("ballast");
    std::fs::write(&ballast, vec![1u8; (free.f_bavail * free.f_frsize - 17_500_000) as usize]).unwrap();
    let mut acked = Vec::new();
    let mut next = 0;
    let mut refusals = Vec::new();
    while refusals.len() < 5 && next < 200_000 {
        let (s, retry, body) = post(next).await;
        match s {
            200 => acked.push(next),
            503 => {
                assert_eq!(retry.as_deref(), Some("30"), "{body}");
                refusals.push(body["detail"].as_str().unwrap().to_owned());
            }
            _ => panic!("a full disk answers 503, not {s}: {body}"),
        }
        next += 500;
    }
    assert!(!refusals.is_empty(), "the disk never filled up ({next} events sent)");
    // Reads wait too while the database cannot be used.
    let (s, total, body) = count().await;
    assert!(s == 503 || total == Some(500 * acked.len() as u64), "{s} {body}");
    let invalidated = s == 503 || refusals.iter().any(|d| d.contains("opened again"));
    assert!(invalidated, "a checkpoint should have failed and invalidated the database: {refusals:?} {body}");

    // Space returns: the database is opened again by itself.
    std::fs::remove_file(&ballast).unwrap();
    let started = Instant::now();
    loop {
        let (s, _, body) = post(next).await;
        if s == 200 {
            acked.push(next);
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "writes never resumed: {body}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    next += 500;
    let (s, total, body) = count().await;
    assert_eq!((s, total), (200, Some(500 * acked.len() as u64)), "every acknowledged event, once: {body}");
    // Resending every batch (acknowledged or refused) stores each refused one and no
    // acknowledged one again.
    for from in (0..next).step_by(500) {
        let (s, _, body) = post(from).await;
        assert_eq!(s, 200, "{body}");
    }
    let (_, total, body) = count().await;
    assert_eq!(total, Some(next as u64), "each event once: {body}");
    drop(child);
}
