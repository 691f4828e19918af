//! `sightline bench ingest`: in one run, on one machine,
//! 1. raw: DuckDB's Appender straight into the events table (the ceiling),
//! 2. batch: `POST /events/batch` of `--batch-size` events from `--batch-clients` clients,
//! 3. single: `POST /events` of one event each from `--clients` clients,
//!
//! each into a fresh database file. Every phase checks that exactly what was sent was
//! stored. Reports events/s, request latency p50/p99, peak RSS, and the ratios to raw.
//!
//! With `--sustained N`, instead: N events in batches into one server, as a user loading
//! history would, with the rate, resident memory and file size per million
//! (`super::sustained`).

use crate::app::App;
use crate::auth::jwt::{Claims, sign_hs256};
use crate::config::{Config, Secret};
use crate::store::EventRow;
use anyhow::Context;
use chrono::Utc;
use clap::Args;
use serde_json::json;
use sightline_core::model::TenantId;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Events for the raw and batch phases.
    #[arg(long, default_value_t = 200_000)]
    pub events: usize,
    /// Events for the single-event phase.
    #[arg(long, default_value_t = 40_000)]
    pub single_events: usize,
    /// Concurrent clients of the single-event phase.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Events per batch request.
    #[arg(long, default_value_t = 500)]
    pub batch_size: usize,
    /// Concurrent clients of the batch phase.
    #[arg(long, default_value_t = 4)]
    pub batch_clients: usize,
    /// Properties kept in columns of their own (comma-separated; `none` for none);
    /// default: the service's default list.
    #[arg(long, value_delimiter = ',')]
    pub keep: Option<Vec<String>>,
    /// Load this many events in `--batch-size` batches from `--batch-clients` clients into
    /// one server, reporting every million, instead of the phases above.
    #[arg(long)]
    pub sustained: Option<u64>,
    /// With `--sustained`: keep the database here (a new directory) instead of a temporary one.
    #[arg(long)]
    pub data_dir: Option<std::path::PathBuf>,
}

pub(super) const SECRET: &str = "bench-secret-0123456789abcdef";
const NAMES: [&str; 4] = ["page_view", "click", "purchase", "signup"];

pub(crate) fn event(i: usize) -> serde_json::Value {
    json!({
        "event_id": format!("bench-{i}"),
        "event_name": NAMES[i % 4],
        "user_id": format!("user-{}", i % 5000),
        "session_id": format!("sess-{}", i % 20000),
        "properties": { "page": format!("/p/{}", i % 100), "amount": (i % 1000) as f64 / 10.0 },
    })
}

/// Peak resident memory of this process.
fn peak_rss_mib() -> f64 {
    super::status_mib("VmHWM")
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx].as_secs_f64() * 1000.0
}

struct PhaseResult {
    name: &'static str,
    events: usize,
    secs: f64,
    p50_ms: f64,
    p99_ms: f64,
    rss_mib: f64,
}

impl PhaseResult {
    fn rate(&self) -> f64 {
        self.events as f64 / self.secs
    }
}

fn raw_phase(n: usize, dir: &std::path::Path) -> anyhow::Result<PhaseResult> {
    let (_, reader) = crate::store::duckdb::open(Some(&dir.join("raw.duckdb")), 1)?;
    drop(reader);
    let conn = duckdb::Connection::open(dir.join("raw.duckdb"))?;
    let tenant = TenantId::default_tenant();
    let now = Utc::now();
    // Rows are built as the service builds them, so only the append is timed.
    let rows: Vec<EventRow> = (0..n)
        .map(|i| {
            let ev = sightline_core::event::parse_event(event(i), "", now, || unreachable!()).expect("valid");
            crate::ingest::to_row(&tenant, ev, now)
        })
        .collect();
    let started = Instant::now();
    {
        let mut app = conn.appender("events")?;
        for r in &rows {
            let ts =
                duckdb::types::Value::Timestamp(duckdb::types::TimeUnit::Microsecond, r.timestamp.timestamp_micros());
            app.append_row(duckdb::params![
                r.tenant_id.as_str(),
                r.event_id,
                r.name,
                r.user_id,
                r.user_key,
                r.session_id,
                ts.clone(),
                ts,
                r.properties_json,
                r.context_json,
            ])?;
        }
        app.flush()?;
    }
    let secs = started.elapsed().as_secs_f64();
    let stored: i64 = conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
    anyhow::ensure!(stored as usize == n, "raw: stored {stored} of {n}");
    Ok(PhaseResult {
        name: "raw appender",
        events: n,
        secs,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
        rss_mib: peak_rss_mib(),
    })
}

/// How requests reach the ingest queue in an HTTP phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stack {
    /// The product's routes: JWT, tenant, rate limit (set far above the load), metrics.
    Guarded,
    /// As `Guarded`, plus a fresh `Idempotency-Key` on every request.
    GuardedIdempotent,
    /// A bare route of this benchmark: parse, validate, queue; no auth, limits or keys.
    /// Only to measure what the stack costs.
    Bare,
}

/// The bare route: the handler's work without the guard or the `Caller` extractor.
async fn bare_track(
    axum::extract::State(state): axum::extract::State<crate::app::AppState>,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    let now = Utc::now();
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) else { return axum::http::StatusCode::BAD_REQUEST };
    let Ok(ev) = sightline_core::event::parse_event(v, "", now, || uuid::Uuid::now_v7().to_string()) else {
        return axum::http::StatusCode::BAD_REQUEST;
    };
    match state
        .ingest
        .submit(vec![crate::ingest::to_row_with(&TenantId::default_tenant(), ev, now, &state.property_columns)])
        .await
    {
        Ok(()) => axum::http::StatusCode::OK,
        Err(_) => axum::http::StatusCode::SERVICE_UNAVAILABLE,
    }
}

async fn http_phase(
    name: &'static str,
    dir: &std::path::Path,
    bodies: Vec<(String, Vec<u8>)>,
    clients: usize,
    events: usize,
    stack: Stack,
    keep: &Option<Vec<String>>,
) -> anyhow::Result<PhaseResult> {
    let app = App::build(server_config(dir, keep)?).await?;
    let mut addr = app.local_addr();
    let state = app.state();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    let bare_server = if stack == Stack::Bare {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        addr = listener.local_addr()?;
        let router = axum::Router::new().route("/bare", axum::routing::post(bare_track)).with_state(state.clone());
        Some(tokio::spawn(async move { axum::serve(listener, router).await }))
    } else {
        None
    };
    let token = ingest_token();
    let client = reqwest::Client::builder().pool_max_idle_per_host(clients).build()?;
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, bodies, next, token) = (client.clone(), bodies.clone(), next.clone(), token.clone());
        let base = format!("http://{addr}");
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((path, body)) = bodies.get(i) else { break };
                let path = if stack == Stack::Bare { "/bare" } else { path.as_str() };
                let t = Instant::now();
                // A 503 (queue full) is retried after a pause, as a client should.
                loop {
                    let mut req = client
                        .post(format!("{base}{path}"))
                        .header("content-type", "application/json")
                        .body(body.clone());
                    if stack != Stack::Bare {
                        req = req.bearer_auth(&token);
                    }
                    if stack == Stack::GuardedIdempotent {
                        req = req.header("idempotency-key", format!("bench-{i}"));
                    }
                    let res = req.send().await?;
                    match res.status().as_u16() {
                        200 => break,
                        503 => tokio::time::sleep(Duration::from_millis(50)).await,
                        s => anyhow::bail!("{path} answered {s}: {}", res.text().await.unwrap_or_default()),
                    }
                }
                lat.push(t.elapsed());
            }
            anyhow::Ok(lat)
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    let secs = started.elapsed().as_secs_f64();
    lat.sort();
    let stored = state.events.total_events().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    anyhow::ensure!(stored as usize == events, "{name}: stored {stored} of {events}");
    if let Some(b) = bare_server {
        b.abort();
    }
    let _ = stop.send(());
    server.await??;
    Ok(PhaseResult {
        name,
        events,
        secs,
        p50_ms: percentile(&lat, 0.5),
        p99_ms: percentile(&lat, 0.99),
        rss_mib: peak_rss_mib(),
    })
}

/// The service as the bench runs it: limits on, as in production, but far above this load
/// (their cost is measured, their refusals are not).
pub(super) fn server_config(dir: &std::path::Path, keep: &Option<Vec<String>>) -> anyhow::Result<Config> {
    let high = || "1000000000/minute".to_owned();
    Ok(Config {
        listen: "127.0.0.1:0".parse()?,
        data_dir: dir.to_path_buf(),
        jwt_secret: Some(Secret::new(SECRET)),
        log_level: "warn".into(),
        limit_events: high(),
        limit_batch: high(),
        materialized_properties: match keep {
            Some(k) => k.iter().filter(|k| k.as_str() != "none").cloned().collect(),
            None => Config::default().materialized_properties,
        },
        ..Config::default()
    })
}

/// An ingest-role token for the default tenant, valid for a day.
pub(super) fn ingest_token() -> String {
    sign_hs256(
        SECRET.as_bytes(),
        &Claims {
            sub: "bench".into(),
            exp: (Utc::now().timestamp() + 24 * 3600) as u64,
            role: Some("ingest".into()),
            ..Default::default()
        },
    )
}

pub fn run(args: IngestArgs, rt: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    anyhow::ensure!(args.batch_size >= 1 && args.batch_size <= 1000, "--batch-size must be 1 to 1000");
    if let Some(n) = args.sustained {
        return rt.block_on(super::sustained::run(n, &args));
    }
    let tmp = tempfile::tempdir().context("a temp dir for the bench databases")?;
    let sub = |n: &str| -> anyhow::Result<std::path::PathBuf> {
        let d = tmp.path().join(n);
        std::fs::create_dir_all(&d)?;
        Ok(d)
    };
    eprintln!("raw: appending {} events ...", args.events);
    let raw = raw_phase(args.events, &sub("raw")?)?;

    let batches: Vec<(String, Vec<u8>)> = (0..args.events)
        .collect::<Vec<_>>()
        .chunks(args.batch_size)
        .map(|c| {
            let evs: Vec<_> = c.iter().map(|&i| event(i)).collect();
            ("/api/v1/analytics/events/batch".to_owned(), serde_json::to_vec(&json!({ "events": evs })).expect("json"))
        })
        .collect();
    eprintln!("batch: {} requests of {} from {} clients ...", batches.len(), args.batch_size, args.batch_clients);
    let batch = rt.block_on(http_phase(
        "batch POST",
        &sub("batch")?,
        batches,
        args.batch_clients,
        args.events,
        Stack::Guarded,
        &args.keep,
    ))?;

    let singles: Vec<(String, Vec<u8>)> = (0..args.single_events)
        .map(|i| ("/api/v1/analytics/events".to_owned(), serde_json::to_vec(&event(i)).expect("json")))
        .collect();
    eprintln!("single: {} requests from {} clients ...", singles.len(), args.clients);
    let single = rt.block_on(http_phase(
        "single POST",
        &sub("single")?,
        singles.clone(),
        args.clients,
        args.single_events,
        Stack::Guarded,
        &args.keep,
    ))?;
    eprintln!("single, bare route (no auth, limits, keys) ...");
    let bare = rt.block_on(http_phase(
        "single POST, bare",
        &sub("bare")?,
        singles.clone(),
        args.clients,
        args.single_events,
        Stack::Bare,
        &args.keep,
    ))?;
    eprintln!("single, with Idempotency-Key ...");
    let keyed = rt.block_on(http_phase(
        "single POST + Idempotency-Key",
        &sub("keyed")?,
        singles,
        args.clients,
        args.single_events,
        Stack::GuardedIdempotent,
        &args.keep,
    ))?;

    println!("| phase | events | seconds | events/s | p50 ms | p99 ms | peak RSS MiB | vs raw |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in [&raw, &batch, &single, &bare, &keyed] {
        let ms = |v: f64| if v.is_nan() { "-".to_owned() } else { format!("{v:.2}") };
        println!(
            "| {} | {} | {:.2} | {:.0} | {} | {} | {:.0} | {:.1}% |",
            r.name,
            r.events,
            r.secs,
            r.rate(),
            ms(r.p50_ms),
            ms(r.p99_ms),
            r.rss_mib,
            100.0 * r.rate() / raw.rate()
        );
    }
    let per_req_us = |r: &PhaseResult| 1e6 * r.secs / r.events as f64;
    println!(
        "\nstack overhead per single POST (64 clients, wall time per event): auth + tenant + rate limit {:+.1} us ({:+.1}%), \
         plus Idempotency-Key {:+.1} us ({:+.1}%); p50 {:.2} / {:.2} / {:.2} ms (bare / guarded / keyed)",
        per_req_us(&single) - per_req_us(&bare),
        100.0 * (per_req_us(&single) / per_req_us(&bare) - 1.0),
        per_req_us(&keyed) - per_req_us(&bare),
        100.0 * (per_req_us(&keyed) / per_req_us(&bare) - 1.0),
        bare.p50_ms,
        single.p50_ms,
        keyed.p50_ms,
    );
    println!(
        "\ntargets (issue 15): batch >= 50% of raw ({}), single >= 15000 events/s ({}) with p99 <= 25 ms ({})",
        if batch.rate() >= 0.5 * raw.rate() { "met" } else { "MISSED" },
        if single.rate() >= 15_000.0 { "met" } else { "MISSED" },
        if single.p99_ms <= 25.0 { "met" } else { "MISSED" },
    );
    Ok(())
}
