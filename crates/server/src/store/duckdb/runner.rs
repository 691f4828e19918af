//! Runs compiled analyses on a pooled reader connection under a time limit: past it, the
//! query is interrupted (DuckDB stops at its next check) and the caller hears `Timeout`.

use super::reader::{DuckReader, to_duck};
use crate::store::{QueryRunner, SqlAnswer, StoreError, StoreResult};
use async_trait::async_trait;
use duckdb::params_from_iter;
use sightline_core::query::answer::{Row, bucket_time};
use sightline_core::query::compile::Compiled;
use std::sync::{Arc, Mutex};
use std::time::Duration;

impl DuckReader {
    /// Runs `work` on a pooled connection under `limit`, interrupting it past the limit.
    pub(super) async fn interruptible<T: Send + 'static>(
        &self,
        limit: Duration,
        work: impl FnOnce(&duckdb::Connection) -> anyhow::Result<T> + Send + 'static,
    ) -> StoreResult<T> {
        let _permit = self.permits.clone().acquire_owned().await.map_err(|e| StoreError::Backend(e.into()))?;
        let pool = self.inner.clone();
        let handle: Arc<Mutex<Option<Arc<duckdb::InterruptHandle>>>> = Arc::new(Mutex::new(None));
        let slot = handle.clone();
        let span = tracing::Span::current();
        let started = std::time::Instant::now();
        let mut task = tokio::task::spawn_blocking(move || {
            let _g = span.enter();
            pool.with(|conn| {
                *slot.lock().expect("interrupt slot") = Some(conn.interrupt_handle());
                work(conn)
            })
        });
        let out = match tokio::time::timeout(limit, &mut task).await {
            Ok(joined) => joined.map_err(|e| StoreError::Backend(e.into()))?.map_err(out_of_memory),
            Err(_) => {
                // Interrupt until the query notices (it may not have started when first told).
                loop {
                    if let Some(h) = handle.lock().expect("interrupt slot").as_ref() {
                        h.interrupt();
                    }
                    if tokio::time::timeout(Duration::from_millis(20), &mut task).await.is_ok() {
                        break;
                    }
                }
                Err(StoreError::Timeout(limit))
            }
        };
        metrics::histogram!(crate::telemetry::names::QUERY_DURATION).record(started.elapsed().as_secs_f64());
        out
    }
}

/// DuckDB refuses an allocation past `memory_limit` with an error of this kind; the
/// query stops and the memory it held is freed.
fn out_of_memory(e: StoreError) -> StoreError {
    match e {
        StoreError::Backend(e) if e.chain().any(|c| c.to_string().contains("Out of Memory Error")) => {
            tracing::warn!(error = %e, "a query ran out of the analytics store's memory");
            StoreError::OutOfMemory
        }
        other => other,
    }
}

#[async_trait]
impl QueryRunner for DuckReader {
    async fn run_sql(
        &self,
        sql: &str,
        params: Vec<sightline_core::sql::SqlValue>,
        limit: Duration,
        max_rows: usize,
    ) -> StoreResult<SqlAnswer> {
        let sql = sql.to_owned();
        self.interruptible(limit, move |conn| read_any(conn, &sql, &params, max_rows)).await
    }

    async fn run(&self, q: &Compiled, limit: Duration) -> StoreResult<Vec<Row>> {
        let q = q.clone();
        self.interruptible(limit, move |conn| read_rows(conn, &q)).await
    }
}

/// Any statement's rows as JSON values, with the column names.
fn read_any(
    conn: &duckdb::Connection,
    sql: &str,
    params: &[sightline_core::sql::SqlValue],
    max_rows: usize,
) -> anyhow::Result<SqlAnswer> {
    let mut stmt = conn.prepare(sql)?;
    let mut rows = stmt.query(params_from_iter(params.iter().map(to_duck)))?;
    let mut out = Vec::new();
    let mut columns = Vec::new();
    let mut truncated = false;
    while let Some(r) = rows.next()? {
        if columns.is_empty() {
            let s = r.as_ref();
            columns =
                (0..s.column_count()).map(|i| s.column_name(i).map(|n| n.to_string()).unwrap_or_default()).collect();
        }
        if out.len() >= max_rows {
            truncated = true;
            break;
        }
        let mut row = Vec::with_capacity(columns.len());
        for i in 0..columns.len() {
            row.push(json_of(r.get::<_, duckdb::types::Value>(i)?));
        }
        out.push(row);
    }
    if columns.is_empty() {
        // No rows: the names are known once the statement ran.
        let s = rows.as_ref().expect("a statement that ran");
        columns = (0..s.column_count()).map(|i| s.column_name(i).map(|n| n.to_string()).unwrap_or_default()).collect();
    }
    Ok(SqlAnswer { columns, rows: out, truncated })
}

/// A DuckDB time of `unit`s as microseconds.
pub(super) fn micros(unit: duckdb::types::TimeUnit, n: i64) -> i64 {
    use duckdb::types::TimeUnit;
    match unit {
        TimeUnit::Second => n * 1_000_000,
        TimeUnit::Millisecond => n * 1_000,
        TimeUnit::Microsecond => n,
        TimeUnit::Nanosecond => n / 1_000,
    }
}

/// A DuckDB value as JSON: numbers as numbers, times as RFC 3339, the rest as text.
fn json_of(v: duckdb::types::Value) -> serde_json::Value {
    use duckdb::types::Value as V;
    use serde_json::json;
    match v {
        V::Null => serde_json::Value::Null,
        V::Boolean(b) => json!(b),
        V::TinyInt(n) => json!(n),
        V::SmallInt(n) => json!(n),
        V::Int(n) => json!(n),
        V::BigInt(n) => json!(n),
        V::HugeInt(n) => i64::try_from(n).map(|n| json!(n)).unwrap_or_else(|_| json!(n.to_string())),
        V::UTinyInt(n) => json!(n),
        V::USmallInt(n) => json!(n),
        V::UInt(n) => json!(n),
        V::UBigInt(n) => json!(n),
        V::Float(f) => sightline_core::query::answer::number(Some(f as f64)),
        V::Double(f) => sightline_core::query::answer::number(Some(f)),
        V::Decimal(d) => d.to_string().parse::<f64>().map(|f| json!(f)).unwrap_or_else(|_| json!(d.to_string())),
        V::Timestamp(u, n) => chrono::DateTime::from_timestamp_micros(micros(u, n))
            .map(|t| json!(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)))
            .unwrap_or(serde_json::Value::Null),
        V::Date32(d) => chrono::NaiveDate::from_num_days_from_ce_opt(d + 719_163)
            .map(|d| json!(d.format("%Y-%m-%d").to_string()))
            .unwrap_or(serde_json::Value::Null),
        V::Text(s) => json!(s),
        V::Interval { months, days, nanos } => json!({"months": months, "days": days, "micros": nanos / 1000}),
        V::List(items) | V::Array(items) => serde_json::Value::Array(items.into_iter().map(json_of).collect()),
        V::UHugeInt(n) => u64::try_from(n).map(|n| json!(n)).unwrap_or_else(|_| json!(n.to_string())),
        V::Time64(u, n) => {
            let us = micros(u, n);
            let t = chrono::NaiveTime::from_num_seconds_from_midnight_opt(
                (us / 1_000_000) as u32,
                ((us % 1_000_000) * 1000) as u32,
            );
            t.map(|t| json!(t.format("%H:%M:%S%.f").to_string())).unwrap_or(serde_json::Value::Null)
        }
        V::Enum(s) => json!(s),
        V::Struct(fields) => {
            serde_json::Value::Object(fields.iter().map(|(k, v)| (k.clone(), json_of(v.clone()))).collect())
        }
        // A map with text keys is an object; other keys would not survive that, so a map of
        // them is a list of {key, value}.
        V::Map(entries) if entries.keys().all(|k| matches!(k, V::Text(_))) => serde_json::Value::Object(
            entries
                .iter()
                .map(|(k, v)| (if let V::Text(k) = k { k.clone() } else { String::new() }, json_of(v.clone())))
                .collect(),
        ),
        V::Map(entries) => serde_json::Value::Array(
            entries.iter().map(|(k, v)| json!({"key": json_of(k.clone()), "value": json_of(v.clone())})).collect(),
        ),
        V::Union(inner) => json_of(*inner),
        V::Blob(bytes) | V::Geometry(bytes) => json!(hex::encode(bytes)),
        other => json!(format!("{other:?}")),
    }
}

fn read_rows(conn: &duckdb::Connection, q: &Compiled) -> anyhow::Result<Vec<Row>> {
    let l = q.layout;
    // The same query shape is the same text (values are bound), so dashboards reuse plans.
    let mut stmt = conn.prepare_cached(&q.sql)?;
    let mut rows = stmt.query(params_from_iter(q.params.iter().map(to_duck)))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let mut i = 0;
        let bucket = if l.bucket {
            i += 1;
            r.get::<_, Option<i64>>(0)?.and_then(bucket_time)
        } else {
            None
        };
        let mut dims = Vec::with_capacity(l.dims);
        for _ in 0..l.dims {
            dims.push(r.get::<_, Option<String>>(i)?);
            i += 1;
        }
        let current = if l.period {
            i += 1;
            r.get::<_, Option<bool>>(i - 1)?
        } else {
            None
        };
        let mut values = Vec::with_capacity(l.series);
        for _ in 0..l.series {
            values.push(r.get::<_, Option<f64>>(i)?);
            i += 1;
        }
        out.push(Row { bucket, dims, current, values });
    }
    Ok(out)
}
