//! The writer's connection. A group of events is checked against the set of stored ids
//! (`store::id_set`), and its new events are appended with DuckDB's Appender in one
//! transaction; their ids join the set once the transaction commits.

use crate::store::id_set::IdSet;
use crate::store::{CommitOutcome, EventRow, EventSink, MetricChange, MetricRecord};
use duckdb::types::{TimeUnit, Value};
use duckdb::{Connection, ToSql, appender_params_from_iter, params};
use sightline_core::model::TenantId;
use sightline_core::query::field::{PropertyColumns, property_text};
use std::collections::HashSet;

pub struct DuckSink {
    conn: Connection,
    ids: IdSet,
    /// Ids of the group being committed: a group may repeat one.
    seen: HashSet<u128>,
    /// Which rows of the group are new.
    fresh: Vec<usize>,
    /// Properties kept in columns of their own, after the fixed columns.
    columns: PropertyColumns,
}

impl DuckSink {
    pub(super) fn new(conn: Connection, ids: IdSet, columns: PropertyColumns) -> Self {
        Self { conn, ids, seen: HashSet::new(), fresh: Vec::new(), columns }
    }

    /// Appends the rows at `self.fresh`, inside the caller's transaction.
    fn append(&mut self, rows: &[EventRow]) -> anyhow::Result<()> {
        let mut app = self.conn.appender("events")?;
        for &i in &self.fresh {
            let r = &rows[i];
            let (ts, received) = (micros(r.timestamp), micros(r.received_at));
            let fixed: [&dyn ToSql; 9] = [
                &r.tenant_id.as_str(),
                &r.event_id,
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
            app.append_row(appender_params_from_iter(fixed.into_iter().chain(kept.iter().map(|v| v as &dyn ToSql))))?;
        }
        app.flush()?;
        Ok(())
    }
}

fn extract(columns: &PropertyColumns, properties_json: &str) -> Vec<Option<String>> {
    let props: serde_json::Value = serde_json::from_str(properties_json).unwrap_or_default();
    columns.slots().iter().map(|(k, _)| props.get(k).and_then(property_text)).collect()
}

pub(super) fn micros(t: chrono::DateTime<chrono::Utc>) -> Value {
    Value::Timestamp(TimeUnit::Microsecond, t.timestamp_micros())
}

impl EventSink for DuckSink {
    fn commit(&mut self, rows: &[EventRow]) -> anyhow::Result<CommitOutcome> {
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
        self.conn.execute_batch("BEGIN")?;
        if let Err(e) = self.append(rows).and_then(|_| Ok(self.conn.execute_batch("COMMIT")?)) {
            // Nothing of a failed group stays.
            self.conn.execute_batch("ROLLBACK").ok();
            return Err(e);
        }
        self.ids.record(self.fresh.iter().map(|&i| rows[i].id_key));
        Ok(CommitOutcome { inserted: self.fresh.len() as u64 })
    }

    fn delete_tenant(&mut self, tenant: &TenantId) -> anyhow::Result<u64> {
        let keys: HashSet<u128> = {
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
}
