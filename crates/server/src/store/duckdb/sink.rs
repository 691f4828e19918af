//! The writer's connection: appends a group of events to a staging table with DuckDB's
//! Appender (the fast path), then moves them into `events` in the same transaction,
//! skipping ids already stored.

use crate::store::{CommitOutcome, EventRow, EventSink};
use duckdb::types::{TimeUnit, Value};
use duckdb::{Connection, params};
use std::collections::HashSet;

pub struct DuckSink {
    conn: Connection,
    seen: HashSet<u128>,
}

impl DuckSink {
    pub(super) fn new(conn: Connection) -> anyhow::Result<Self> {
        // A temp table lives with this connection only, and carries no index: appending to
        // it costs what a raw Appender costs.
        conn.execute_batch("CREATE TEMP TABLE events_staging AS SELECT * FROM events LIMIT 0")?;
        Ok(Self { conn, seen: HashSet::new() })
    }

    fn try_commit(&mut self, rows: &[EventRow]) -> anyhow::Result<CommitOutcome> {
        self.conn.execute_batch("BEGIN")?;
        {
            let mut app = self.conn.appender("events_staging")?;
            self.seen.clear();
            for r in rows {
                if !self.seen.insert(r.id_key) {
                    continue; // the same id twice in one group
                }
                app.append_row(params![
                    r.tenant_id.as_str(),
                    r.event_id,
                    r.id_key,
                    r.name,
                    r.user_id,
                    r.session_id,
                    micros(r.timestamp),
                    micros(r.received_at),
                    r.properties_json,
                    r.context_json,
                ])?;
            }
            app.flush()?;
        }
        let inserted = self.conn.execute("INSERT OR IGNORE INTO events SELECT * FROM events_staging", [])?;
        self.conn.execute_batch("DELETE FROM events_staging; COMMIT")?;
        Ok(CommitOutcome { inserted: inserted as u64 })
    }
}

fn micros(t: chrono::DateTime<chrono::Utc>) -> Value {
    Value::Timestamp(TimeUnit::Microsecond, t.timestamp_micros())
}

impl EventSink for DuckSink {
    fn commit(&mut self, rows: &[EventRow]) -> anyhow::Result<CommitOutcome> {
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

    fn checkpoint(&mut self) -> anyhow::Result<()> {
        self.conn.execute_batch("FORCE CHECKPOINT")?;
        Ok(())
    }
}
