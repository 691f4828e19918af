//! `sightline bench query`: generates a realistic event set in a fresh DuckDB file (10M
//! events by default: 50k users, their sessions, 20 event names, pages and purchase
//! amounts over 90 days, plus a second tenant's events) and times, in one run on that
//! file, each case of the query model against the DuckDB SQL a person would write for it.
//!
//! The Sightline column is the whole path a request takes after HTTP: parse the JSON
//! query, resolve metrics, compile, run on a pooled reader, shape the answer. The raw
//! column is a prepared hand-written statement on a connection to the same database.
//! Every case first checks that both compute the same numbers.

use crate::engine::{Engine, SqlQuery};
use crate::store::duckdb::{self, DuckEngine};
use ::duckdb::params_from_iter;
use anyhow::{Context, bail};
use chrono::{DateTime, Duration, TimeZone, Utc};
use clap::Args;
use serde_json::{Value, json};
use sightline_core::model::TenantId;
use sightline_core::query::answer::shape;
use sightline_core::query::field::PropertyColumns;
use sightline_core::query::funnel::{parse_funnel, shape_funnel};
use sightline_core::query::insight::{MAX_LIMIT, parse_query};
use sightline_core::query::metric::NoCatalog;
use sightline_core::query::retention::{parse_retention, shape_retention};
use std::time::Instant;

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// Events of the measured tenant.
    #[arg(long, default_value_t = 10_000_000)]
    pub events: u64,
    /// Events of another tenant in the same table (the tenant filter must skip them).
    #[arg(long, default_value_t = 1_000_000)]
    pub other_events: u64,
    /// Timed runs of each case (after one warm-up); the median is reported.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Keep the database here instead of a temporary directory (reused if it exists).
    #[arg(long)]
    pub data_dir: Option<std::path::PathBuf>,
    /// Concurrent reader connections (DuckDB threads are per query; this is the pool).
    #[arg(long, default_value_t = 2)]
    pub readers: usize,
    /// Keep no properties in columns of their own (every property read parses the JSON).
    #[arg(long)]
    pub no_materialize: bool,
    /// Then start `sightline serve` on the file (twice: the first start builds the event id
    /// set), and report its cold start and its peak resident memory (VmHWM) after every
    /// case over HTTP, first one client and then two at once.
    #[arg(long)]
    pub serve: bool,
}

const TENANT: &str = "bench";
/// A small tenant whose events are spread among the measured tenant's, one in every
/// [`SMALL_EVERY`] rows, as a shared service's ingest interleaves them: every row group
/// holds some, so none can be skipped by its tenant.
const SMALL_TENANT: &str = "small";
const SMALL_EVERY: u64 = 1000;

/// The 20 event names, most frequent first (a page view is 17 times as likely as the last).
const NAMES: [&str; 20] = [
    "page_view",
    "click",
    "search",
    "scroll",
    "login",
    "add_to_cart",
    "message",
    "signup",
    "api_request",
    "share",
    "purchase",
    "conversation_started",
    "logout",
    "video_play",
    "download",
    "comment",
    "like",
    "invite",
    "ticket_purchase",
    "satisfaction",
];

/// Fills `events` with `n` events of `tenant` between `start` and `start + 90 days`, in
/// time order (as ingest writes them). Deterministic: every value is a hash of the row number.
/// Generates `n` events of `tenant` over 90 days from `start`; with `small`, one more row
/// after every [`SMALL_EVERY`] of them belongs to [`SMALL_TENANT`] instead.
fn generate(
    conn: &::duckdb::Connection,
    cols: &PropertyColumns,
    tenant: &str,
    n: u64,
    start: DateTime<Utc>,
    small: bool,
) -> anyhow::Result<()> {
    let every = if small { SMALL_EVERY as i64 + 1 } else { i64::MAX };
    let n = if small { n + n / SMALL_EVERY } else { n };
    // Materialized properties are filled as the writer fills them.
    let (kept_names, kept_values): (Vec<String>, Vec<String>) = cols
        .slots()
        .iter()
        .map(|(k, slot)| {
            let (text, number) = (PropertyColumns::column_name(*slot), PropertyColumns::number_column_name(*slot));
            let read = format!("json_extract_string(props, '$.\"{k}\"')");
            (format!("{text}, {number}"), format!("{read}, TRY_CAST({read} AS DOUBLE)"))
        })
        .unzip();
    let kept_names = kept_names.iter().map(|c| format!(", {c}")).collect::<String>();
    let kept_values = kept_values.iter().map(|c| format!(", {c}")).collect::<String>();
    let names: Vec<String> = NAMES.iter().map(|n| format!("'{n}'")).collect();
    let step_us = Duration::days(90).num_microseconds().expect("fits") as f64 / n.max(1) as f64;
    // Skewed name choice: index = floor(20 * u^2) for u uniform in [0, 1).
    let sql = format!(
        "INSERT INTO events (tenant_id, event_id, event_name, user_id, user_key, session_id, ts, received_at, properties,
                             context{kept_names})
         SELECT CASE WHEN i % ? = ? - 1 THEN '{SMALL_TENANT}' ELSE ? END, 'ev-' || i, name, user_id, md5_number_lower(user_id), user_id || '-s' || (hash(i * 13) % 40)::VARCHAR,
                ts, ts, props, NULL{kept_values}
         FROM (
           SELECT i,
                  [{names}][1 + floor(20 * pow((hash(i) % 10000) / 10000.0, 2))::INT] AS name,
                  'u' || (hash(i * 7) % 50000)::VARCHAR AS user_id,
                  make_timestamp(?::BIGINT + (i * ?::DOUBLE)::BIGINT + (hash(i * 11) % 60000000)::BIGINT) AS ts
           FROM range(?, ?) r(i)
         ) g,
         LATERAL (SELECT CASE WHEN name IN ('purchase', 'ticket_purchase')
             THEN json_object('page', '/p/' || (hash(i * 3) % 200)::VARCHAR, 'amount', round((hash(i * 5) % 50000) / 100.0, 2),
                              'currency', 'USD', 'plan', ['free', 'pro', 'team'][(1 + hash(i * 17) % 3)::BIGINT])
             ELSE json_object('page', '/p/' || (hash(i * 3) % 200)::VARCHAR, 'referrer', 'r' || (hash(i * 19) % 30)::VARCHAR,
                              'duration_ms', hash(i * 23) % 30000) END AS props)",
        names = names.join(", ")
    );
    // In chunks: one INSERT of 100M rows keeps more in memory than the default
    // duckdb_memory_limit allows (it keeps insertion order).
    const CHUNK: u64 = 2_000_000;
    let mut from = 0;
    while from < n {
        let to = (from + CHUNK).min(n);
        conn.execute(
            &sql,
            ::duckdb::params![every, every, tenant, start.timestamp_micros(), step_us, from as i64, to as i64],
        )
        .context("generating events")?;
        from = to;
    }
    Ok(())
}

/// Which endpoint's model a case runs through.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Model {
    Insight,
    Funnel,
    Retention,
    Rfm,
    /// Custom SQL through the sandbox.
    Sql,
}

pub(super) struct Case {
    pub(super) name: &'static str,
    pub(super) tenant: &'static str,
    pub(super) model: Model,
    /// The query as a client sends it (to /api/v1/insights, /funnels or /cohorts).
    pub(super) query: Value,
    /// Which columns of the hand-written answer hold the numbers compared.
    raw_cols: Vec<usize>,
    /// The hand-written SQL and its parameters (tenant and times bound as values).
    raw: String,
    raw_params: Vec<::duckdb::types::Value>,
}

fn micros(t: DateTime<Utc>) -> ::duckdb::types::Value {
    ::duckdb::types::Value::Timestamp(::duckdb::types::TimeUnit::Microsecond, t.timestamp_micros())
}

fn text(s: &str) -> ::duckdb::types::Value {
    ::duckdb::types::Value::Text(s.to_owned())
}

fn date(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// How hand-written SQL reads a property: its own column when the schema has one.
fn prop(cols: &PropertyColumns, key: &str, number: bool) -> String {
    let path = sightline_core::query::field::PropertyPath::parse(key).expect("a valid key");
    match (cols.column(&path), cols.number_column(&path)) {
        (_, Some(n)) if number => n,
        (Some(c), _) => c,
        (None, _) if number => format!("TRY_CAST(json_extract_string(properties, '$.{key}') AS DOUBLE)"),
        (None, _) => format!("json_extract_string(properties, '$.{key}')"),
    }
}

/// The UTC week (Monday to Sunday) holding `t`, counted from the epoch's.
fn week_index(t: DateTime<Utc>) -> i64 {
    (t.timestamp_micros() + 259_200_000_000).div_euclid(604_800_000_000)
}

pub(super) fn cases(start: DateTime<Utc>, cols: &PropertyColumns) -> Vec<Case> {
    let page = prop(cols, "page", false);
    let customer = prop(cols, "customer_id", false);
    let amount = prop(cols, "amount", true);
    let end = start + Duration::days(90);
    let last_day = end - Duration::days(1);
    let cur_start = end - Duration::days(30);
    let prev_start = end - Duration::days(60);
    let trend = |name, tenant| Case {
        name,
        tenant,
        model: Model::Insight,
        raw_cols: vec![1],
        query: json!({"kind": "trend", "series": ["events"], "granularity": "day",
                      "date_range": {"start": date(start), "end": date(last_day)}}),
        raw: "SELECT epoch_us(date_trunc('day', ts)) AS d, count(*)::DOUBLE FROM events \
              WHERE tenant_id = ? AND ts >= ? AND ts < ? GROUP BY 1 ORDER BY 1"
            .into(),
        raw_params: vec![text(tenant), micros(start), micros(end)],
    };
    vec![
        trend("daily trend (events, 90 days)", TENANT),
        trend("daily trend of a small tenant (10k events among 10M)", SMALL_TENANT),
        Case {
            name: "breakdown by properties.page (top 100)",
            tenant: TENANT,
            model: Model::Insight,
            raw_cols: vec![1],
            query: json!({"kind": "breakdown", "series": ["events"], "breakdown": ["properties.page"], "limit": 100,
                          "date_range": {"start": date(start), "end": date(last_day)}}),
            raw: format!(
                "SELECT {page} AS page, count(*)::DOUBLE AS n FROM events \
                 WHERE tenant_id = ? AND ts >= ? AND ts < ? GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 100"
            ),
            raw_params: vec![text(TENANT), micros(start), micros(end)],
        },
        Case {
            name: "period comparison (revenue, 30 days vs 30 before)",
            tenant: TENANT,
            model: Model::Insight,
            raw_cols: vec![1],
            query: json!({"kind": "compare", "series": ["revenue"],
                          "date_range": {"start": date(cur_start), "end": date(last_day)}}),
            raw: format!(
                "SELECT ts >= ? AS cur, sum({amount}) FROM events \
                 WHERE tenant_id = ? AND ts >= ? AND ts < ? AND event_name IN ('purchase', 'ticket_purchase') \
                 GROUP BY 1 ORDER BY 1"
            ),
            raw_params: vec![micros(cur_start), text(TENANT), micros(prev_start), micros(end)],
        },
        Case {
            name: "p90 of properties.amount (purchases, 90 days)",
            tenant: TENANT,
            model: Model::Insight,
            raw_cols: vec![0],
            query: json!({"kind": "aggregate",
                          "series": [{"event": "purchase", "aggregation": "p90", "field": "properties.amount"}],
                          "date_range": {"start": date(start), "end": date(last_day)}}),
            raw: format!(
                "SELECT quantile_cont({amount}, 0.9) FROM events \
                 WHERE tenant_id = ? AND ts >= ? AND ts < ? AND event_name = 'purchase'"
            ),
            raw_params: vec![text(TENANT), micros(start), micros(end)],
        },
        Case {
            name: "4-step funnel (14-day window, 90 days)",
            tenant: TENANT,
            model: Model::Funnel,
            query: json!({"name": "shop", "steps": ["page_view", "search", "add_to_cart", "purchase"],
                          "date_range": {"start": date(start), "end": date(last_day)}}),
            raw_cols: vec![0, 1, 2, 3, 4, 5, 6],
            // Inlined: DuckDB would store `e` and scan it with every step's filter OR-ed (3x slower).
            raw: "WITH e AS NOT MATERIALIZED (SELECT user_key, ts, event_name FROM events WHERE tenant_id = ? AND ts >= ? AND ts < ? \
                  AND user_key IS NOT NULL AND event_name IN ('page_view', 'search', 'add_to_cart', 'purchase')), \
                  s0 AS (SELECT user_key, min(ts) AS t0 FROM e WHERE event_name = 'page_view' AND ts < ? GROUP BY 1), \
                  s1 AS (SELECT s0.user_key, s0.t0, min(e.ts) AS t1 FROM s0 JOIN e ON e.user_key = s0.user_key \
                    AND e.event_name = 'search' AND e.ts > s0.t0 AND e.ts <= s0.t0 + INTERVAL 14 DAY GROUP BY 1, 2), \
                  s2 AS (SELECT s1.user_key, s1.t0, min(e.ts) AS t2 FROM s1 JOIN e ON e.user_key = s1.user_key \
                    AND e.event_name = 'add_to_cart' AND e.ts > s1.t1 AND e.ts <= s1.t0 + INTERVAL 14 DAY GROUP BY 1, 2), \
                  s3 AS (SELECT s2.user_key, s2.t0, min(e.ts) AS t3 FROM s2 JOIN e ON e.user_key = s2.user_key \
                    AND e.event_name = 'purchase' AND e.ts > s2.t2 AND e.ts <= s2.t0 + INTERVAL 14 DAY GROUP BY 1, 2) \
                  SELECT count(s0.user_key)::DOUBLE, count(s1.user_key)::DOUBLE, count(s2.user_key)::DOUBLE, \
                    count(s3.user_key)::DOUBLE, median(epoch(t1) - epoch(s0.t0)), median(epoch(t2) - epoch(t1)), \
                    median(epoch(t3) - epoch(t2)) \
                  FROM s0 LEFT JOIN s1 ON s1.user_key = s0.user_key LEFT JOIN s2 ON s2.user_key = s0.user_key \
                  LEFT JOIN s3 ON s3.user_key = s0.user_key"
                .into(),
            raw_params: vec![text(TENANT), micros(start), micros(end + Duration::days(14)), micros(end)],
        },
        Case {
            name: "weekly retention (12 weeks)",
            tenant: TENANT,
            model: Model::Retention,
            query: json!({"cohort_type": "acquisition", "group_by": "week", "metric": "retention", "periods": 12,
                          "date_range": {"start": date(start), "end": date(last_day)}}),
            raw_cols: vec![2],
            // The best hand-written form found: one pass grouped by user, the active weeks as
            // an integer's bits (a DISTINCT over (user, week) is 2x slower), UTC weeks by
            // arithmetic.
            raw: format!(
                "WITH u AS (SELECT user_key, min(ts) FILTER (WHERE ts < ?) AS t0, \
                   bit_or(CAST(1 AS UBIGINT) << CAST({week} - {lo} AS UBIGINT)) FILTER (WHERE ts >= ?) AS m FROM events \
                   WHERE tenant_id = ? AND user_key IS NOT NULL AND ts < ? GROUP BY 1), \
                 cohort AS (SELECT user_key, m, date_trunc('week', t0) AS c, {week0} AS ci FROM u WHERE t0 >= ?), \
                 k AS (SELECT user_key, c, p.k FROM cohort CROSS JOIN range(0, 13) AS p(k) \
                   WHERE (m >> CAST(ci + p.k - {lo} AS UBIGINT)) & CAST(1 AS UBIGINT) = 1) \
                 SELECT epoch_us(c), k, count(*)::DOUBLE FROM k GROUP BY 1, 2 \
                 UNION ALL SELECT epoch_us(c), -1, count(*)::DOUBLE FROM cohort GROUP BY 1 \
                 UNION ALL SELECT epoch_us(c), 100 + lastk, count(*)::DOUBLE \
                   FROM (SELECT c, max(k) AS lastk FROM k GROUP BY user_key, c) GROUP BY 1, 2 \
                 ORDER BY 1, 2",
                week = "CAST((epoch_us(ts) + 259200000000) // 604800000000 AS INTEGER)",
                week0 = "CAST((epoch_us(t0) + 259200000000) // 604800000000 AS INTEGER)",
                lo = week_index(start) - 2,
            ),
            raw_params: vec![
                micros(end),
                micros(start - Duration::weeks(1)),
                text(TENANT),
                micros(end + Duration::weeks(13)),
                micros(start),
            ],
        },
        Case {
            name: "RFM scores (50k customers)",
            tenant: TENANT,
            model: Model::Rfm,
            query: Value::Null,
            raw_cols: vec![1, 2, 3],
            raw: format!(
                "WITH c AS (SELECT coalesce({customer}, user_id) AS customer_id, min(ts) AS first_ts, max(ts) AS last_ts, \
                 count(*) AS n, coalesce(sum({amount}), 0) AS spent FROM events WHERE tenant_id = ? \
                 AND event_name IN ('purchase', 'ticket_purchase') AND ts < ? GROUP BY 1) \
                 SELECT customer_id, ntile(5) OVER (ORDER BY last_ts, customer_id)::DOUBLE, \
                 ntile(5) OVER (ORDER BY n, customer_id)::DOUBLE, ntile(5) OVER (ORDER BY spent, customer_id)::DOUBLE \
                 FROM c WHERE customer_id IS NOT NULL ORDER BY customer_id"
            ),
            raw_params: vec![text(TENANT), micros(start + Duration::days(120))],
        },
        Case {
            name: "custom SQL group-by through the sandbox",
            tenant: TENANT,
            model: Model::Sql,
            query: json!("SELECT event_name, count(*) AS n, count(DISTINCT user_id) AS users FROM events GROUP BY 1 ORDER BY 1"),
            raw_cols: vec![1, 2],
            raw: "SELECT event_name, count(*)::DOUBLE, count(DISTINCT user_id)::DOUBLE FROM events WHERE tenant_id = ? \
                  GROUP BY 1 ORDER BY 1"
                .into(),
            raw_params: vec![text(TENANT)],
        },
    ]
}

/// Runs a hand-written query; answers its numbers (the last column of each row).
fn run_raw(conn: &::duckdb::Connection, c: &Case) -> anyhow::Result<Vec<f64>> {
    let mut stmt = conn.prepare_cached(&c.raw)?;
    let mut rows = stmt.query(params_from_iter(c.raw_params.iter().cloned()))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        for i in &c.raw_cols {
            out.push(r.get::<_, Option<f64>>(*i)?.unwrap_or(0.0));
        }
    }
    Ok(out)
}

/// The whole path of a query after HTTP, through the service's engine; answers its
/// numbers and the shaped answer.
async fn run_sightline(engine: &DuckEngine, c: &Case, now: DateTime<Utc>) -> anyhow::Result<(Vec<f64>, Value)> {
    let fail = |e: crate::error::Error| anyhow::anyhow!("{}: {}", e.code.slug(), e.detail);
    let tenant = TenantId::parse(c.tenant).map_err(anyhow::Error::msg)?;
    let limit = std::time::Duration::from_secs(600);
    match c.model {
        Model::Insight => {}
        Model::Funnel => {
            let f = parse_funnel(&c.query).map_err(|e| anyhow::anyhow!("{e:?}"))?;
            let (range, _) = f.range.resolve(f.tz, now).map_err(anyhow::Error::msg)?;
            let rows = engine.funnel(&tenant, &f, range, limit).await.map_err(fail)?.rows;
            let answer = serde_json::to_value(shape_funnel(&f, &rows, &[], range))?;
            let numbers = rows.first().map(|r| r.values.iter().map(|v| v.unwrap_or(0.0)).collect()).unwrap_or_default();
            return Ok((numbers, answer));
        }
        Model::Sql => {
            let sql = c.query.as_str().unwrap_or_default();
            let q = SqlQuery { text: sql, params: Vec::new(), max_rows: 10_000 };
            let answer = engine.custom_sql(&tenant, q, limit).await.map_err(fail)?;
            let numbers = answer.rows.iter().flat_map(|r| r.iter().skip(1).filter_map(Value::as_f64)).collect();
            return Ok((numbers, json!({"rows": answer.rows.len()})));
        }
        Model::Rfm => {
            let mut all = engine.rfm(&tenant, None, now, limit).await.map_err(fail)?;
            all.sort_by(|a, b| a.customer_id.cmp(&b.customer_id));
            let numbers = all.iter().flat_map(|c| [c.r as f64, c.f as f64, c.m as f64]).collect();
            return Ok((numbers, json!({"customers": all.len()})));
        }
        Model::Retention => {
            let r = parse_retention(&c.query).map_err(|e| anyhow::anyhow!("{e:?}"))?;
            let (range, _) = r.range.resolve(r.tz, now).map_err(anyhow::Error::msg)?;
            let rows = engine.retention(&tenant, &r, range, limit).await.map_err(fail)?.rows;
            let answer = serde_json::to_value(shape_retention(&r, &rows, now))?;
            // Every figure per (cohort, code), in the hand-written query's order: code k for
            // the users active in period k, -1 for the cohort's size, 100 + k for the users
            // last active in period k.
            let mut active: Vec<(i64, i64, f64)> = rows
                .iter()
                .map(|row| {
                    let c = row.bucket.map(|b| b.and_utc().timestamp()).unwrap_or(0);
                    let k: i64 = row.dims[1].as_deref().and_then(|k| k.parse().ok()).unwrap_or(0);
                    let code = match row.dims[0].as_deref() {
                        Some("size") => -1,
                        Some("last") => 100 + k,
                        _ => k,
                    };
                    (c, code, row.values[0].unwrap_or(0.0))
                })
                .collect();
            active.sort_by_key(|(c, k, _)| (*c, *k));
            return Ok((active.into_iter().map(|(_, _, n)| n).collect(), answer));
        }
    }
    let q = parse_query(&c.query, &NoCatalog).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let (window, previous) = q.range.resolve(q.tz, now).map_err(anyhow::Error::msg)?;
    let prev = (q.kind == sightline_core::query::insight::Kind::Compare).then_some(previous);
    let out = engine.insight(&tenant, &q, window, prev, limit).await.map_err(fail)?;
    let mut rows = out.rows;
    rows.truncate(q.limit.min(MAX_LIMIT));
    let answer = serde_json::to_value(shape(&q, out.compiled.layout, &rows, window, prev))?;
    let numbers = rows.iter().map(|r| r.values[0].unwrap_or(0.0)).collect();
    Ok((numbers, answer))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

pub fn run(args: QueryArgs, cfg: &crate::config::Config, rt: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = args.data_dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("bench-query.duckdb");
    // A fixed, whole-day start keeps the data (and so the answers) the same on every run.
    let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().expect("valid");
    let keep: Vec<String> = if args.no_materialize {
        Vec::new()
    } else {
        crate::config::DEFAULT_MATERIALIZED.iter().map(|s| (*s).to_owned()).collect()
    };
    let t = Instant::now();
    let tuning = crate::app::store_tuning(cfg);
    eprintln!("DuckDB memory limit {:?}, threads {:?}", tuning.memory_limit, tuning.threads);
    let (_sink, reader, cols) = duckdb::open_with(Some(&path), args.readers, &keep, &tuning)?;
    let reader = std::sync::Arc::new(reader);
    let engine = DuckEngine::new(reader.clone(), cols.clone());
    eprintln!("opened in {:.1} s; properties in columns: {:?}", t.elapsed().as_secs_f64(), cols.slots());
    let conn = reader.connection()?;
    let count =
        |t: &str| conn.query_row("SELECT count(*) FROM events WHERE tenant_id = ?", [t], |r| r.get::<_, i64>(0));
    if count(TENANT)? as u64 != args.events || count(SMALL_TENANT)? as u64 != args.events / SMALL_EVERY {
        eprintln!(
            "generating {} events (+{} of another tenant, +{} of a small one among them) in {} ...",
            args.events,
            args.other_events,
            args.events / SMALL_EVERY,
            path.display()
        );
        let t = Instant::now();
        conn.execute_batch("DELETE FROM events")?;
        // The other tenant's rows interleave in time with the measured tenant's.
        generate(&conn, &cols, "other", args.other_events, start, false)?;
        generate(&conn, &cols, TENANT, args.events, start, true)?;
        conn.execute_batch("CHECKPOINT")?;
        // The events went in past the ingest writer, so its id set does not hold them:
        // removed, it is rebuilt from the events when a service next opens the file.
        std::fs::remove_dir_all(path.with_extension("ids")).ok();
        eprintln!("generated in {:.1} s", t.elapsed().as_secs_f64());
    }
    let file_mib = std::fs::metadata(&path).map(|m| m.len() as f64 / 1048576.0).unwrap_or(f64::NAN);
    let now = start + Duration::days(120);
    let mut table = Vec::new();
    for c in cases(start, &cols) {
        // Same numbers first: a fast wrong answer is no result.
        let raw = run_raw(&conn, &c)?;
        let (ours, _) = rt.block_on(run_sightline(&engine, &c, now))?;
        let ours: Vec<f64> =
            if c.name.starts_with("daily") { ours.into_iter().filter(|v| *v != 0.0).collect() } else { ours };
        if raw.len() != ours.len() || raw.iter().zip(&ours).any(|(a, b)| (a - b).abs() > 1e-6 * a.abs().max(1.0)) {
            bail!(
                "{}: Sightline and hand-written SQL disagree:\n  raw  {:?}\n  ours {:?}",
                c.name,
                &raw[..raw.len().min(5)],
                &ours[..ours.len().min(5)]
            );
        }
        let (mut s_ms, mut r_ms) = (Vec::new(), Vec::new());
        for _ in 0..args.runs {
            let t = Instant::now();
            run_raw(&conn, &c)?;
            r_ms.push(t.elapsed().as_secs_f64() * 1000.0);
            let t = Instant::now();
            rt.block_on(run_sightline(&engine, &c, now))?;
            s_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let (s, r) = (median(s_ms), median(r_ms));
        eprintln!("{}: sightline {s:.1} ms, raw {r:.1} ms", c.name);
        table.push((c.name, s, r));
    }
    let (rss, peak) = (super::status_mib("VmRSS"), super::status_mib("VmHWM"));
    println!(
        "events: {} (+{} other tenant, +{} small tenant among them), file {file_mib:.0} MiB, {} timed runs per case (median)",
        args.events,
        args.other_events,
        args.events / SMALL_EVERY,
        args.runs
    );
    println!();
    println!("| query | Sightline ms | raw DuckDB ms | ratio |");
    println!("|---|---:|---:|---:|");
    for (name, s, r) in &table {
        println!("| {name} | {s:.1} | {r:.1} | {:.2}x |", s / r);
    }
    println!();
    println!("RSS {rss:.0} MiB, peak {peak:.0} MiB");
    if args.serve {
        // The service must be the file's only user.
        let cases = cases(start, &cols);
        drop((conn, engine, reader, _sink));
        super::serve::run(&path, &cases)?;
    }
    Ok(())
}
