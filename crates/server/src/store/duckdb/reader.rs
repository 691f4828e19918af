//! Reads run on blocking threads, each on a connection from a small pool. A semaphore caps
//! how many run at once, so a burst of heavy queries queues instead of thrashing 2 cores.

use crate::store::{EventFilter, EventReader, Page, StoreError, StoreResult, StoredEvent};
use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use duckdb::types::{TimeUnit, Value};
use duckdb::{Connection, params_from_iter};
use sightline_core::model::TenantId;
use sightline_core::sql::{SqlBuilder, SqlValue, Stored};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

pub struct DuckReader {
    pub(super) inner: Arc<Pool>,
    pub(super) permits: Arc<Semaphore>,
}

pub(super) struct Pool {
    base: Mutex<Connection>,
    /// Idle connections, each with the generation of the database it belongs to.
    idle: Mutex<Vec<(u64, Connection)>>,
    /// Counts the times the database was opened again ([`Pool::replace`]).
    generation: AtomicU64,
    /// Set when DuckDB invalidated the database (a write failed past recovery, such as a
    /// checkpoint on a full disk): every statement fails until it is opened again.
    broken: AtomicBool,
}

/// A pooled connection and the generation of the database it belongs to.
struct Pooled {
    conn: Connection,
    generation: u64,
}

impl Pool {
    /// Runs `f` on a pooled connection and gives it back; an invalidated database's error
    /// becomes [`StoreError::Reopening`].
    pub(super) fn with<T>(&self, f: impl FnOnce(&Connection) -> anyhow::Result<T>) -> StoreResult<T> {
        let pooled = self.take().map_err(|e| read_error(self, e))?;
        let out = f(&pooled.conn).map_err(|e| read_error(self, e));
        self.give_back(pooled);
        out
    }

    fn take(&self) -> anyhow::Result<Pooled> {
        if let Some((generation, conn)) = self.idle.lock().expect("pool lock").pop() {
            return Ok(Pooled { conn, generation });
        }
        let generation = self.generation.load(Ordering::Acquire);
        Ok(Pooled { conn: self.base.lock().expect("pool lock").try_clone()?, generation })
    }

    /// Keeps `c` for the next reader, unless the database was opened again since it was
    /// taken: a connection to the old one is closed.
    fn give_back(&self, c: Pooled) {
        let mut idle = self.idle.lock().expect("pool lock");
        if c.generation == self.generation.load(Ordering::Acquire) {
            idle.push((c.generation, c.conn));
        }
    }

    /// Readers take connections of `base` (a database opened again) from now on.
    pub(super) fn replace(&self, base: Connection) {
        let mut idle = self.idle.lock().expect("pool lock");
        *self.base.lock().expect("pool lock") = base;
        self.generation.fetch_add(1, Ordering::AcqRel);
        idle.clear();
        self.broken.store(false, Ordering::Release);
    }

    pub(super) fn mark_broken(&self) {
        self.broken.store(true, Ordering::Release);
    }

    pub(super) fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }
}

/// DuckDB's words for a database it invalidated: nothing runs on it until it is opened
/// again.
pub(super) fn is_invalidated(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        let m = c.to_string();
        m.contains("database has been invalidated") || m.contains("Reopen the database instance")
    })
}

/// A reader's error, with DuckDB's invalidated database told apart: the writer opens it
/// again, and until then readers hear that the store is reopening.
fn read_error(pool: &Pool, e: anyhow::Error) -> StoreError {
    if is_invalidated(&e) {
        pool.mark_broken();
        tracing::warn!(error = %e, "a read found the analytics store invalidated");
        StoreError::Reopening
    } else {
        StoreError::Backend(e)
    }
}

impl DuckReader {
    pub(super) fn new(base: Connection, max_readers: usize) -> Self {
        Self {
            inner: Arc::new(Pool {
                base: Mutex::new(base),
                idle: Mutex::new(Vec::new()),
                generation: AtomicU64::new(0),
                broken: AtomicBool::new(false),
            }),
            permits: Arc::new(Semaphore::new(max_readers.max(1))),
        }
    }

    /// A connection of its own to the same database, for tools that write SQL by hand
    /// (`sightline bench`): nothing of the service goes through it.
    pub fn connection(&self) -> anyhow::Result<Connection> {
        Ok(self.inner.base.lock().expect("pool lock").try_clone()?)
    }

    /// Runs `f` on a pooled connection on a blocking thread, keeping the caller's span.
    pub(super) async fn with_conn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> anyhow::Result<T> + Send + 'static,
    ) -> StoreResult<T> {
        let _permit = self.permits.clone().acquire_owned().await.map_err(|e| StoreError::Backend(e.into()))?;
        let pool = self.inner.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _g = span.enter();
            pool.with(f)
        })
        .await
        .map_err(|e| StoreError::Backend(e.into()))?
    }
}

pub(super) fn to_duck(v: &SqlValue) -> Value {
    match v {
        SqlValue::Text(s) => Value::Text(s.clone()),
        SqlValue::Int(i) => Value::BigInt(*i),
        SqlValue::Float(f) => Value::Double(*f),
        SqlValue::Bool(b) => Value::Boolean(*b),
        SqlValue::TimestampMicros(us) => Value::Timestamp(TimeUnit::Microsecond, *us),
        SqlValue::Null => Value::Null,
    }
}

/// `SELECT <columns> FROM <the tenant's events> WHERE TRUE`, for filters to follow.
fn select_events(columns: &'static str, tenant: &TenantId) -> SqlBuilder {
    let mut b = SqlBuilder::new(columns);
    b.from_tenant(Stored::Events, tenant, "e").push(" WHERE TRUE");
    b
}

const EVENT_COLUMNS: &str = "SELECT event_id, event_name, user_id, session_id, epoch_us(ts), epoch_us(received_at), \
     properties::VARCHAR, context::VARCHAR";

fn push_filter(b: &mut SqlBuilder, f: &EventFilter) {
    if let Some(n) = &f.name {
        b.push_bind(" AND event_name = ", SqlValue::Text(n.clone()));
    }
    if let Some(u) = &f.user_id {
        b.push_bind(" AND user_id = ", SqlValue::Text(u.clone()));
    }
    if let Some(s) = &f.session_id {
        b.push_bind(" AND session_id = ", SqlValue::Text(s.clone()));
    }
    if let Some(t) = f.start {
        b.push_bind(" AND ts >= ", SqlValue::TimestampMicros(t.timestamp_micros()));
    }
    if let Some(t) = f.end {
        b.push_bind(" AND ts < ", SqlValue::TimestampMicros(t.timestamp_micros()));
    }
}

fn query_events(conn: &Connection, b: &SqlBuilder) -> anyhow::Result<Vec<StoredEvent>> {
    let mut stmt = conn.prepare_cached(b.sql())?;
    let rows = stmt.query_map(params_from_iter(b.params().iter().map(to_duck)), |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<String>>(2)?,
            r.get::<_, Option<String>>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, i64>(5)?,
            r.get::<_, String>(6)?,
            r.get::<_, Option<String>>(7)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (event_id, name, user_id, session_id, ts, received, props, ctx) = row?;
        out.push(StoredEvent {
            event_id,
            name,
            user_id,
            session_id,
            timestamp: from_micros(ts)?,
            received_at: from_micros(received)?,
            properties: serde_json::from_str(&props).context("stored properties are not JSON")?,
            context: match ctx {
                Some(c) => serde_json::from_str(&c).context("stored context is not JSON")?,
                None => serde_json::Value::Object(Default::default()),
            },
        });
    }
    Ok(out)
}

pub(super) fn from_micros(us: i64) -> anyhow::Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(us).context("timestamp out of range")
}

#[async_trait]
impl EventReader for DuckReader {
    async fn list_events(&self, tenant: &TenantId, filter: &EventFilter, page: Page) -> StoreResult<Vec<StoredEvent>> {
        let mut b = select_events(EVENT_COLUMNS, tenant);
        push_filter(&mut b, filter);
        b.push(" ORDER BY ts DESC, event_id DESC LIMIT ")
            .bind(SqlValue::Int(page.limit.min(i64::MAX as u64) as i64))
            .push(" OFFSET ")
            .bind(SqlValue::Int(page.offset.min(i64::MAX as u64) as i64));
        self.with_conn(move |c| query_events(c, &b)).await
    }

    async fn count_events(&self, tenant: &TenantId, filter: &EventFilter) -> StoreResult<u64> {
        let mut b = select_events("SELECT count(*)", tenant);
        push_filter(&mut b, filter);
        self.with_conn(move |c| {
            let n: i64 =
                c.prepare_cached(b.sql())?.query_row(params_from_iter(b.params().iter().map(to_duck)), |r| r.get(0))?;
            Ok(n as u64)
        })
        .await
    }

    async fn get_event(&self, tenant: &TenantId, event_id: &str) -> StoreResult<Option<StoredEvent>> {
        let mut b = select_events(EVENT_COLUMNS, tenant);
        b.push_bind(" AND event_id = ", SqlValue::Text(event_id.to_owned())).push(" LIMIT 1");
        Ok(self.with_conn(move |c| query_events(c, &b)).await?.into_iter().next())
    }

    async fn total_events(&self) -> StoreResult<u64> {
        self.with_conn(|c| Ok(c.query_row("SELECT count(*) FROM events", [], |r| r.get::<_, i64>(0))? as u64)).await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.with_conn(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i32>(0)).map(|_| ())?)).await
    }
}
