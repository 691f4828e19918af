//! Runs compiled analyses on a pooled reader connection under a time limit: past it, the
//! query is interrupted (DuckDB stops at its next check) and the caller hears `Timeout`.

use super::reader::{DuckReader, to_duck};
use crate::store::{QueryRunner, StoreError, StoreResult};
use async_trait::async_trait;
use duckdb::params_from_iter;
use sightline_core::query::answer::{Row, bucket_time};
use sightline_core::query::compile::Compiled;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[async_trait]
impl QueryRunner for DuckReader {
    async fn run(&self, q: &Compiled, limit: Duration) -> StoreResult<Vec<Row>> {
        let _permit = self.permits.clone().acquire_owned().await.map_err(|e| StoreError::Backend(e.into()))?;
        let pool = self.inner.clone();
        let q = q.clone();
        let handle: Arc<Mutex<Option<Arc<duckdb::InterruptHandle>>>> = Arc::new(Mutex::new(None));
        let slot = handle.clone();
        let span = tracing::Span::current();
        let started = std::time::Instant::now();
        let mut task = tokio::task::spawn_blocking(move || {
            let _g = span.enter();
            let conn = pool.take()?;
            *slot.lock().expect("interrupt slot") = Some(conn.interrupt_handle());
            let out = read_rows(&conn, &q);
            pool.give_back(conn);
            out
        });
        let out = match tokio::time::timeout(limit, &mut task).await {
            Ok(joined) => joined.map_err(|e| StoreError::Backend(e.into()))?.map_err(StoreError::Backend),
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
