//! The writer's connection. A group of events is appended straight into `events` with
//! DuckDB's Appender (the fast path: what a raw Appender costs). If an id is stored
//! already, the primary key refuses the append; the transaction is rolled back and the
//! group goes through a staging table and `INSERT OR IGNORE` instead (the slow path, for
//! client retries).

use crate::store::{CommitOutcome, EventRow, EventSink, MetricChange, MetricRecord};
use duckdb::types::{TimeUnit, Value};
use duckdb::{Connection, ToSql, appender_params_from_iter, params};
use sightline_core::model::TenantId;
use sightline_core::query::field::{PropertyColumns, property_text};
use std::collections::HashSet;

pub struct DuckSink {
    conn: Connection,
    seen: HashSet<u128>,
    /// Properties kept in columns of their own, after the fixed columns.
    columns: PropertyColumns,
}

impl DuckSink {
    pub(super) fn new(conn: Connection, columns: PropertyColumns) -> anyhow::Result<Self> {
        // A temp table lives with this connection only, and carries no index: appending to
        // it costs what a raw Appender costs.
        conn.execute_batch("CREATE TEMP TABLE events_staging AS SELECT * FROM events LIMIT 0")?;
        Ok(Self { conn, seen: HashSet::new(), columns })
    }

    /// Appends `rows` (first of each id) into `table`, inside the caller's transaction.
    fn append(&mut self, table: &str, rows: &[EventRow]) -> anyhow::Result<u64> {
        let mut appended = 0;
        {
            let mut app = self.conn.appender(table)?;
            self.seen.clear();
            for r in rows {
                if !self.seen.insert(r.id_key) {
                    continue; // the same id twice in one group
                }
                let (ts, received) = (micros(r.timestamp), micros(r.received_at));
                let fixed: [&dyn ToSql; 10] = [
                    &r.tenant_id.as_str(),
                    &r.event_id,
                    &r.id_key,
                    &r.name,
                    &r.user_id,
                    &r.session_id,
                    &ts,
                    &received,
                    &r.properties_json,
                    &r.context_json,
                ];
                // A row built without its materialized properties gets them from its JSON.
                let extracted;
                let kept = if r.materialized.len() == self.columns.slots().len() {
                    &r.materialized
                } else {
                    extracted = extract(&self.columns, &r.properties_json);
                    &extracted
                };
                app.append_row(appender_params_from_iter(
                    fixed.into_iter().chain(kept.iter().map(|v| v as &dyn ToSql)),
                ))?;
                appended += 1;
            }
            app.flush()?;
        }
        Ok(appended)
    }

    fn try_commit_fast(&mut self, rows: &[EventRow]) -> anyhow::Result<CommitOutcome> {
        self.conn.execute_batch("BEGIN")?;
        let inserted = self.append("events", rows)?;
        self.conn.execute_batch("COMMIT")?;
        Ok(CommitOutcome { inserted })
    }

    fn try_commit(&mut self, rows: &[EventRow]) -> anyhow::Result<CommitOutcome> {
        self.conn.execute_batch("BEGIN")?;
        self.append("events_staging", rows)?;
        let inserted = self.conn.execute("INSERT OR IGNORE INTO events SELECT * FROM events_staging", [])?;
        self.conn.execute_batch("DELETE FROM events_staging; COMMIT")?;
        Ok(CommitOutcome { inserted: inserted as u64 })
    }
}

fn extract(columns: &PropertyColumns, properties_json: &str) -> Vec<Option<String>> {
    let props: serde_json::Value = serde_json::from_str(properties_json).unwrap_or_default();
    columns.slots().iter().map(|(k, _)| props.get(k).and_then(property_text)).collect()
}

fn micros(t: chrono::DateTime<chrono::Utc>) -> Value {
    Value::Timestamp(TimeUnit::Microsecond, t.timestamp_micros())
}

impl EventSink for DuckSink {
    fn commit(&mut self, rows: &[EventRow]) -> anyhow::Result<CommitOutcome> {
        match self.try_commit_fast(rows) {
            Ok(outcome) => return Ok(outcome),
            Err(e) => {
                tracing::debug!(error = %e, "fast append refused; retrying through staging");
                self.conn.execute_batch("ROLLBACK").ok();
            }
        }
        match self.try_commit(rows) {
            Ok(outcome) => Ok(outcome),
            Err(e) => {
                // Nothing of a failed group stays: roll back and empty the staging table.
                self.conn.execute_batch("ROLLBACK").ok();
                self.conn.execute_batch("DELETE FROM events_staging").ok();
                Err(e)
            }
        }
    }

    fn delete_tenant(&mut self, tenant: &TenantId) -> anyhow::Result<u64> {
        self.conn.execute_batch("BEGIN")?;
        let done = (|| {
            let n = self.conn.execute("DELETE FROM events WHERE tenant_id = ?", [tenant.as_str()])?;
            self.conn.execute("DELETE FROM metric_records WHERE tenant_id = ?", [tenant.as_str()])?;
            Ok::<_, duckdb::Error>(n as u64)
        })();
        match done {
            Ok(n) => {
                self.conn.execute_batch("COMMIT")?;
                Ok(n)
            }
            Err(e) => {
                self.conn.execute_batch("ROLLBACK").ok();
                Err(e.into())
            }
        }
    }

    fn insert_metrics(&mut self, tenant: &TenantId, records: &[MetricRecord]) -> anyhow::Result<()> {
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
        match appended {
            Ok(()) => Ok(self.conn.execute_batch("COMMIT")?),
            Err(e) => {
                self.conn.execute_batch("ROLLBACK").ok();
                Err(e.into())
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
        Ok(self.conn.execute("DELETE FROM metric_records WHERE tenant_id = ? AND id = ?", [tenant.as_str(), id])? > 0)
    }

    fn checkpoint(&mut self) -> anyhow::Result<()> {
        self.conn.execute_batch("FORCE CHECKPOINT")?;
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
    fn fast_and_slow_paths_store_each_id_once() {
        let (mut sink, _reader) = super::super::open(None, 1).unwrap();
        assert_eq!(sink.commit(&rows("a", 0..100)).unwrap().inserted, 100, "fast path");
        // Overlaps what is stored, and repeats itself: the slow path.
        let mut again = rows("a", 50..150);
        again.extend(rows("a", 140..160));
        assert_eq!(sink.commit(&again).unwrap().inserted, 60);
        // The same ids in another tenant are new.
        assert_eq!(sink.commit(&rows("b", 0..10)).unwrap().inserted, 10);
        let n: i64 = sink.conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 170);
        let staged: i64 = sink.conn.query_row("SELECT count(*) FROM events_staging", [], |r| r.get(0)).unwrap();
        assert_eq!(staged, 0);
    }
}
