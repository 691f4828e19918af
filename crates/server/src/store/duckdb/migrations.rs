//! The analytics schema, versioned. Each step runs once, in order, in a transaction.

use anyhow::Context;
use duckdb::Connection;

/// A step: SQL, or code where the SQL depends on what the file holds.
enum Step {
    Sql(&'static str),
    Code(fn(&Connection) -> duckdb::Result<()>),
}
use Step::{Code, Sql};

/// (version, step). Append only: a released step never changes.
const STEPS: &[(i64, Step)] = &[
    (
        1,
        Sql("CREATE TABLE events (
        tenant_id   VARCHAR   NOT NULL,
        event_id    VARCHAR   NOT NULL,
        -- xxh3-128 of (tenant_id, event_id): the key that stores a repeated id once.
        id_key      UHUGEINT  NOT NULL PRIMARY KEY,
        event_name  VARCHAR   NOT NULL,
        user_id     VARCHAR,
        session_id  VARCHAR,
        -- UTC, microseconds.
        ts          TIMESTAMP NOT NULL,
        received_at TIMESTAMP NOT NULL,
        properties  JSON      NOT NULL,
        context     JSON
    );"),
    ),
    (
        2,
        Sql("CREATE TABLE metric_records (
        tenant_id    VARCHAR   NOT NULL,
        id           VARCHAR   NOT NULL,
        service_name VARCHAR   NOT NULL,
        metric_type  VARCHAR   NOT NULL,
        metric_name  VARCHAR   NOT NULL,
        value        DOUBLE    NOT NULL,
        -- UTC, microseconds.
        ts           TIMESTAMP NOT NULL,
        dimensions   JSON      NOT NULL,
        meta         JSON      NOT NULL,
        created_at   TIMESTAMP NOT NULL,
        updated_at   TIMESTAMP
    );"),
    ),
    (
        3,
        Sql("-- Top-level property keys events keep in columns of their own (pc_<slot>), added
        -- by ALTER TABLE when a key is first materialized.
        CREATE TABLE property_columns (
        slot INTEGER NOT NULL PRIMARY KEY,
        key  VARCHAR NOT NULL UNIQUE
    );"),
    ),
    (4, Code(events_without_key_index)),
];

/// The events table in the layout analyses read fastest: without `id_key` and its primary
/// key (that index held every event's key in memory and cost a third of the file; dedupe
/// moved to `store::id_set`, rebuilt from the events when missing), with `user_key` (the
/// integer funnels, retention and distinct users group by: `store::user_key`), each kept
/// property's number beside its text (`pn_<slot>`), and the rows ordered by tenant and
/// time, so that one tenant's query skips the others' row groups. The table is copied,
/// since DuckDB cannot drop a primary key in place.
fn events_without_key_index(conn: &Connection) -> duckdb::Result<()> {
    use sightline_core::query::field::PropertyColumns;
    let events: i64 = conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
    let started = std::time::Instant::now();
    if events > 0 {
        tracing::info!(events, "migrating the events table to its analytics layout; this runs once");
    }
    let slots: Vec<u32> = {
        let mut stmt = conn.prepare("SELECT slot FROM property_columns ORDER BY slot")?;
        stmt.query_map([], |r| r.get::<_, u32>(0))?.collect::<Result<_, _>>()?
    };
    let mut defs = String::new();
    let mut values = String::new();
    for slot in &slots {
        let (text, number) = (PropertyColumns::column_name(*slot), PropertyColumns::number_column_name(*slot));
        defs.push_str(&format!(",\n        {text} VARCHAR, {number} DOUBLE"));
        values.push_str(&format!(", {text}, TRY_CAST({text} AS DOUBLE)"));
    }
    conn.execute_batch(&format!(
        "CREATE TABLE events_v4 (
        tenant_id   VARCHAR   NOT NULL,
        event_id    VARCHAR   NOT NULL,
        event_name  VARCHAR   NOT NULL,
        user_id     VARCHAR,
        -- md5_number_lower(user_id), as store::user_key computes it.
        user_key    UBIGINT,
        session_id  VARCHAR,
        -- UTC, microseconds.
        ts          TIMESTAMP NOT NULL,
        received_at TIMESTAMP NOT NULL,
        properties  JSON      NOT NULL,
        context     JSON{defs}
    );
    INSERT INTO events_v4
        SELECT tenant_id, event_id, event_name, user_id, md5_number_lower(user_id), session_id, ts, received_at,
               properties, context{values}
        FROM events ORDER BY tenant_id, ts;
    DROP TABLE events;
    ALTER TABLE events_v4 RENAME TO events;"
    ))?;
    if events > 0 {
        tracing::info!(events, ms = started.elapsed().as_millis() as u64, "events table migrated");
    }
    Ok(())
}

/// Brings the schema up to date; answers whether any step ran.
pub fn run(conn: &Connection) -> anyhow::Result<bool> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS sightline_schema (version BIGINT NOT NULL, applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)")?;
    let current: i64 = conn.query_row("SELECT coalesce(max(version), 0) FROM sightline_schema", [], |r| r.get(0))?;
    let mut ran = false;
    for (version, step) in STEPS.iter().filter(|(v, _)| *v > current) {
        ran = true;
        conn.execute_batch("BEGIN")?;
        let applied = match step {
            Sql(sql) => conn.execute_batch(sql),
            Code(f) => f(conn),
        }
        .and_then(|_| conn.execute("INSERT INTO sightline_schema (version) VALUES (?)", [version]).map(|_| ()));
        match applied {
            Ok(()) => conn.execute_batch("COMMIT")?,
            Err(e) => {
                conn.execute_batch("ROLLBACK").ok();
                return Err(e).with_context(|| format!("analytics schema step {version}"));
            }
        }
    }
    Ok(ran)
}
