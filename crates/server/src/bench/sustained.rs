//! `sightline bench ingest --sustained N`: N events in batches into one fresh server, as a
//! user loading history would, reporting after every million events the rate over that
//! million, the resident memory and the file's bytes per event. The end checks that every
//! event was stored once and compares the last million's rate with the first's.

use super::ingest::{IngestArgs, event, ingest_token, server_config};
use super::status_mib;
use crate::app::App;
use anyhow::Context;
use serde_json::json;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const REPORT_EVERY: u64 = 1_000_000;

/// Bytes of every file in `dir` (the DuckDB file and its WAL, the SQLite files; the id
/// set's runs are in a folder of their own).
fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries.flatten().filter_map(|e| e.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len()).sum()
        })
        .unwrap_or(0)
}

/// One line of the report: the million just finished.
struct Mark {
    events: u64,
    at: Instant,
}

pub async fn run(total: u64, args: &IngestArgs) -> anyhow::Result<()> {
    let tmp;
    let dir = match &args.data_dir {
        Some(d) => {
            anyhow::ensure!(!d.exists(), "--data-dir {} exists; give a new directory", d.display());
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir().context("a temp dir for the bench database")?;
            tmp.path().to_path_buf()
        }
    };
    let app = App::build(server_config(&dir, &args.keep)?).await?;
    let addr = app.local_addr();
    let state = app.state();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    let token = ingest_token();
    let batch = args.batch_size as u64;
    let batches = total.div_ceil(batch);
    eprintln!(
        "sustained: {total} events in {batches} batches of {batch} from {} clients into {}",
        args.batch_clients,
        dir.display()
    );
    println!("| events | events/s over the last million | RSS MiB | database bytes/event | id set bytes/event |");
    println!("|---:|---:|---:|---:|");
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let marks = Arc::new(Mutex::new(vec![Mark { events: 0, at: started }]));
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.batch_clients).build()?;
    let mut tasks = Vec::new();
    for _ in 0..args.batch_clients {
        let (client, token, next, done, marks, dir) =
            (client.clone(), token.clone(), next.clone(), done.clone(), marks.clone(), dir.clone());
        let url = format!("http://{addr}/api/v1/analytics/events/batch");
        tasks.push(tokio::spawn(async move {
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= batches {
                    return anyhow::Ok(());
                }
                let ids = b * batch..((b + 1) * batch).min(total);
                let n = ids.end - ids.start;
                // Built here, one batch at a time: 50M events of bodies would not fit.
                let body = json!({ "events": ids.map(|i| event(i as usize)).collect::<Vec<_>>() });
                let body = serde_json::to_vec(&body)?;
                loop {
                    let res = client.post(&url).bearer_auth(&token).header("content-type", "application/json");
                    let res = res.body(body.clone()).send().await?;
                    match res.status().as_u16() {
                        200 => break,
                        503 => tokio::time::sleep(Duration::from_millis(50)).await,
                        s => anyhow::bail!("batch {b} answered {s}: {}", res.text().await.unwrap_or_default()),
                    }
                }
                let before = done.fetch_add(n, Ordering::Relaxed);
                if (before + n) / REPORT_EVERY != before / REPORT_EVERY || before + n == total {
                    let now = Instant::now();
                    let events = before + n;
                    let mut marks = marks.lock().unwrap_or_else(|p| p.into_inner());
                    let last = marks.last().expect("the start is a mark");
                    let rate = (events - last.events) as f64 / now.duration_since(last.at).as_secs_f64();
                    println!(
                        "| {events} | {rate:.0} | {:.0} | {:.0} | {:.0} |",
                        status_mib("VmRSS"),
                        dir_bytes(&dir) as f64 / events as f64,
                        dir_bytes(&dir.join("sightline.ids")) as f64 / events as f64
                    );
                    marks.push(Mark { events, at: now });
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    let stored = state.events.total_events().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let _ = stop.send(());
    server.await??;
    anyhow::ensure!(stored == total, "stored {stored} of {total}");
    let marks = marks.lock().unwrap_or_else(|p| p.into_inner());
    let rate_of = |w: &[Mark]| (w[1].events - w[0].events) as f64 / w[1].at.duration_since(w[0].at).as_secs_f64();
    let first = marks.windows(2).next().map(rate_of).unwrap_or(f64::NAN);
    let last = marks.windows(2).last().map(rate_of).unwrap_or(f64::NAN);
    println!(
        "\n{total} events in {secs:.1} s ({:.0}/s overall); the last million at {:.0} % of the first's rate; \
         after a checkpoint, database {:.0} and id set {:.0} bytes/event; peak RSS {:.0} MiB",
        total as f64 / secs,
        100.0 * last / first,
        dir_bytes(&dir) as f64 / total as f64,
        dir_bytes(&dir.join("sightline.ids")) as f64 / total as f64,
        status_mib("VmHWM"),
    );
    Ok(())
}
