//! The writer's connection. A group of events is checked against the set of stored ids
//! (`store::id_set`), and its new events are appended with DuckDB's Appender in one
//! transaction; their ids join the set once the transaction commits.
//!
//! A full disk: a write that cannot be made is refused ([`WriteRefused`]), nothing of it
//! stored. When a checkpoint fails (DuckDB checkpoints inside a commit), DuckDB invalidates
//! the database and refuses every later statement; the writer then opens it again, before
//! its next write or when the service asks ([`EventSink::recover`]), once there is room.

use super::reader::{Pool, is_invalidated};
use crate::store::id_set::{IdSet, KeySet};
use crate::store::{CommitOutcome, EventRow, EventSink, MetricChange, MetricRecord, WriteRefused};
use duckdb::types::{TimeUnit, Value};
use duckdb::{Connection, params};
use sightline_core::model::TenantId;
use sightline_core::query::field::PropertyColumns;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct DuckSink {
    conn: Connection,
    ids: IdSet,
    /// Ids of the group being committed: a group may repeat one.
    seen: KeySet,
    /// Which rows of the group are new.
    fresh: Vec<usize>,
    /// Properties kept in columns of their own, after the fixed columns.
    columns: PropertyColumns,
    /// How to open the database again (a file; an in-memory one cannot be).
    reopen: Option<Reopen>,
    /// The database must be opened again before the next write.
    broken: bool,
    /// The last attempt to open it again: attempts are a second apart at least.
    last_attempt: Option<Instant>,
}

/// What it takes to open the database again once DuckDB has invalidated it.
pub(super) struct Reopen {
    pub(super) path: PathBuf,
    pub(super) materialize: Vec<String>,
    pub(super) tuning: super::Tuning,
    /// The readers' pool, handed the new database.
    pub(super) pool: Arc<Pool>,
}

/// DuckDB's words when a commit is stored in the write-ahead log but the checkpoint that
/// followed it failed: the events are kept (and the request acknowledged), and the
/// database is invalidated.
const DURABLE_BUT_INVALIDATED: &str = "COMMIT succeeded and is durable";

impl DuckSink {
    pub(super) fn new(conn: Connection, ids: IdSet, columns: PropertyColumns, reopen: Option<Reopen>) -> Self {
        Self {
            conn,
            ids,
            seen: KeySet::default(),
            fresh: Vec::new(),
            columns,
            reopen,
            broken: false,
            last_attempt: None,
        }
    }

    fn mark_broken(&mut self, e: &anyhow::Error) {
        tracing::error!(error = %format!("{e:#}"), "the analytics store was invalidated; it will be opened again");
        self.broken = true;
        if let Some(r) = &self.reopen {
            r.pool.mark_broken();
        }
    }

    /// A failed write as the client hears it: a refusal to retry when the disk is full or
    /// the database was invalidated, the error itself otherwise.
    fn refusal(&mut self, e: anyhow::Error) -> anyhow::Error {
        if is_invalidated(&e) {
            self.mark_broken(&e);
            WriteRefused::Reopening.into()
        } else if e.chain().any(|c| c.to_string().contains("No space left on device")) {
            tracing::warn!(error = %format!("{e:#}"), "a write was refused: the disk is full");
            WriteRefused::DiskFull.into()
        } else {
            e
        }
    }

    /// Before a write: opens the database again if DuckDB invalidated it. Refuses the write
    /// while that fails (the disk still full, say).
    fn ensure_open(&mut self) -> anyhow::Result<()> {
        let reader_saw_it = self.reopen.as_ref().is_some_and(|r| r.pool.is_broken());
        if !self.broken && !reader_saw_it {
            return Ok(());
        }
        let Some(reopen) = &self.reopen else { return Err(WriteRefused::Reopening.into()) };
        if self.last_attempt.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            return Err(WriteRefused::Reopening.into());
        }
        self.last_attempt = Some(Instant::now());
        let started = Instant::now();
        self.ids.settle();
        let opened = super::open_parts(Some(&reopen.path), &reopen.materialize, &reopen.tuning)
            .and_then(|(conn, ids, columns)| Ok((conn.try_clone()?, conn, ids, columns)));
        match opened {
            Ok((base, conn, ids, columns)) => {
                // The invalidated database closes with its last connection; it writes nothing.
                self.conn = conn;
                self.ids = ids;
                self.columns = columns;
                reopen.pool.replace(base);
                self.broken = false;
                tracing::info!(ms = started.elapsed().as_millis() as u64, "the analytics store was opened again");
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "opening the analytics store again failed; retrying");
                Err(WriteRefused::Reopening.into())
            }
        }
    }

    /// Appends the rows at `self.fresh`, inside the caller's transaction.
    fn append(&mut self, rows: &[EventRow]) -> anyhow::Result<()> {
        let batch = super::columns::event_batch(rows, &self.fresh, &self.columns)?;
        let mut app = self.conn.appender("events")?;
        app.append_record_batch(batch)?;
        app.flush()?;
        Ok(())
    }
}

/// A kept property's text as a number, as `TRY_CAST(text AS DOUBLE)` reads it.
pub fn number_of(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok()
}

pub(super) fn micros(t: chrono::DateTime<chrono::Utc>) -> Value {
    Value::Timestamp(TimeUnit::Microsecond, t.timestamp_micros())
}

impl EventSink for DuckSink {
    fn commit(&mut self, rows: &[EventRow]) -> anyhow::Result<CommitOutcome> {
        self.ensure_open()?;
        self.seen.clear();
        self.fresh.clear();
        for (i, r) in rows.iter().enumerate() {
            if self.seen.insert(r.id_key) && !self.ids.contains(r.id_key)? {
                self.fresh.push(i);
            }
        }
        if self.fresh.is_empty() {
            return Ok(CommitOutcome { inserted: 0 });
        }
        let began = self.conn.execute_batch("BEGIN").map_err(anyhow::Error::from);
        match began.and_then(|_| self.append(rows)).and_then(|_| Ok(self.conn.execute_batch("COMMIT")?)) {
            Ok(()) => {}
            // Stored: its ids are recorded and the request hears so.
            Err(e) if e.to_string().contains(DURABLE_BUT_INVALIDATED) => self.mark_broken(&e),
            Err(e) => {
                // Nothing of a failed group stays.
                self.conn.execute_batch("ROLLBACK").ok();
                return Err(self.refusal(e));
            }
        }
        self.ids.record(self.fresh.iter().map(|&i| rows[i].id_key));
        Ok(CommitOutcome { inserted: self.fresh.len() as u64 })
    }

    fn delete_tenant(&mut self, tenant: &TenantId) -> anyhow::Result<u64> {
        self.ensure_open()?;
        let keys: KeySet = {
            let mut stmt = self.conn.prepare("SELECT event_id FROM events WHERE tenant_id = ?")?;
            let ids = stmt.query_map([tenant.as_str()], |r| r.get::<_, String>(0))?;
            ids.map(|id| id.map(|id| EventRow::id_key(tenant, &id))).collect::<Result<_, _>>()?
        };
        self.conn.execute_batch("BEGIN")?;
        let done = (|| {
            let n = self.conn.execute("DELETE FROM events WHERE tenant_id = ?", [tenant.as_str()])?;
            self.conn.execute("DELETE FROM metric_records WHERE tenant_id = ?", [tenant.as_str()])?;
            Ok::<_, duckdb::Error>(n as u64)
        })();
        match done {
            Ok(n) => {
                self.conn.execute_batch("COMMIT")?;
                // The ids may be sent again, to a tenant made again under the same id.
                self.ids.remove(&keys)?;
                Ok(n)
            }
            Err(e) => {
                self.conn.execute_batch("ROLLBACK").ok();
                Err(e.into())
            }
        }
    }

    fn insert_metrics(&mut self, tenant: &TenantId, records: &[MetricRecord]) -> anyhow::Result<()> {
        self.ensure_open()?;
        self.conn.execute_batch("BEGIN")?;
        let appended = (|| {
            let mut app = self.conn.appender("metric_records")?;
            for r in records {
                app.append_row(params![
                    tenant.as_str(),
                    r.id,
                    r.service_name,
                    r.metric_type,
                    r.metric_name,
                    r.value,
                    micros(r.timestamp),
                    r.dimensions.to_string(),
                    r.meta.to_string(),
                    micros(r.created_at),
                    r.updated_at.map(micros),
                ])?;
            }
            app.flush()
        })();
        match appended.and_then(|_| self.conn.execute_batch("COMMIT")) {
            Ok(()) => Ok(()),
            Err(e) if e.to_string().contains(DURABLE_BUT_INVALIDATED) => {
                self.mark_broken(&e.into());
                Ok(())
            }
            Err(e) => {
                self.conn.execute_batch("ROLLBACK").ok();
                Err(self.refusal(e.into()))
            }
        }
    }

    fn update_metric(
        &mut self,
        tenant: &TenantId,
        id: &str,
        change: &MetricChange,
        at: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<Option<MetricRecord>> {
        self.ensure_open()?;
        // Unchanged fields keep their value through coalesce, so one statement does any PATCH.
        let n = self.conn.execute(
            "UPDATE metric_records SET value = coalesce(?, value), ts = coalesce(?, ts), \
             dimensions = coalesce(CAST(? AS JSON), dimensions), meta = coalesce(CAST(? AS JSON), meta), updated_at = ? \
             WHERE tenant_id = ? AND id = ?",
            params![
                change.value,
                change.timestamp.map(micros),
                change.dimensions.as_ref().map(|d| d.to_string()),
                change.meta.as_ref().map(|m| m.to_string()),
                micros(at),
                tenant.as_str(),
                id,
            ],
        )?;
        if n == 0 {
            return Ok(None);
        }
        super::records::get_record(&self.conn, tenant, id)
    }

    fn delete_metric(&mut self, tenant: &TenantId, id: &str) -> anyhow::Result<bool> {
        self.ensure_open()?;
        Ok(self.conn.execute("DELETE FROM metric_records WHERE tenant_id = ? AND id = ?", [tenant.as_str(), id])? > 0)
    }

    fn recover(&mut self) -> anyhow::Result<()> {
        self.ensure_open()
    }

    fn checkpoint(&mut self) -> anyhow::Result<()> {
        self.conn.execute_batch("FORCE CHECKPOINT")?;
        self.ids.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::store::{EventRow, EventSink};
    use sightline_core::model::TenantId;

    fn rows(tenant: &str, ids: impl IntoIterator<Item = usize>) -> Vec<EventRow> {
        let t = TenantId::parse(tenant).unwrap();
        let now = chrono::Utc::now();
        ids.into_iter()
            .map(|i| EventRow {
                tenant_id: t.clone(),
                event_id: format!("e{i}"),
                id_key: EventRow::id_key(&t, &format!("e{i}")),
                name: "n".into(),
                user_id: None,
                user_key: None,
                session_id: None,
                timestamp: now,
                received_at: now,
                properties_json: "{}".into(),
                context_json: None,
                materialized: Vec::new(),
            })
            .collect()
    }

    #[test]
    fn each_id_is_stored_once() {
        let (mut sink, _reader) = super::super::open(None, 1).unwrap();
        assert_eq!(sink.commit(&rows("a", 0..100)).unwrap().inserted, 100);
        // Overlaps what is stored, and repeats itself.
        let mut again = rows("a", 50..150);
        again.extend(rows("a", 140..160));
        assert_eq!(sink.commit(&again).unwrap().inserted, 60);
        // The same ids in another tenant are new.
        assert_eq!(sink.commit(&rows("b", 0..10)).unwrap().inserted, 10);
        let n: i64 = sink.conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 170);
    }

    /// The integer user key and each kept number, as the writer computes them in Rust,
    /// are what DuckDB computes from the same text (a migration computes them in SQL).
    #[test]
    fn user_keys_and_kept_numbers_match_duckdb() {
        let cols = vec!["amount".to_owned()];
        let (mut sink, _reader, _) = super::super::open_with(None, 1, &cols, &Default::default()).unwrap();
        let amounts = [
            serde_json::json!(12.5),
            serde_json::json!("7.25"),
            serde_json::json!(" 3 "),
            serde_json::json!("n/a"),
            serde_json::json!(1e21),
            serde_json::json!(-0.0),
            serde_json::json!(true),
            serde_json::json!({"v": 1}),
            serde_json::Value::Null,
        ];
        let mut batch = rows("a", 0..amounts.len());
        for (i, (r, a)) in batch.iter_mut().zip(&amounts).enumerate() {
            r.user_id = Some(format!("user-{i}-é"));
            r.user_key = r.user_id.as_deref().map(crate::store::user_key);
            r.properties_json = serde_json::json!({"amount": a}).to_string();
        }
        batch[0].user_id = None;
        batch[0].user_key = None;
        assert_eq!(sink.commit(&batch).unwrap().inserted, amounts.len() as u64);
        let mut stmt = sink
            .conn
            .prepare(
                "SELECT user_key IS NOT DISTINCT FROM md5_number_lower(user_id), \
                 pn_1 IS NOT DISTINCT FROM TRY_CAST(json_extract_string(properties, '$.amount') AS DOUBLE), \
                 json_extract(properties, '$.amount')::VARCHAR, pn_1 FROM events ORDER BY event_id",
            )
            .unwrap();
        let got: Vec<(bool, bool, Option<String>, Option<f64>)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for (keys, numbers, json, number) in &got {
            assert!(keys, "user key of {json:?}");
            assert!(numbers, "number of {json:?}: {number:?}");
        }
        // A value that is no number stays readable in the JSON.
        assert!(got.iter().any(|(_, _, json, n)| json.as_deref() == Some("\"n/a\"") && n.is_none()), "{got:?}");
    }
}
