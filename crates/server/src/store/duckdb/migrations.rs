//! The analytics schema, versioned. Each step runs once, in order, in a transaction.

use anyhow::Context;
use duckdb::Connection;

/// (version, SQL). Append only: a released step never changes.
const STEPS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE events (
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
    );",
    ),
    (
        2,
        "CREATE TABLE metric_records (
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
    );",
    ),
    (
        3,
        "-- Top-level property keys events keep in columns of their own (pc_<slot>), added
        -- by ALTER TABLE when a key is first materialized.
        CREATE TABLE property_columns (
        slot INTEGER NOT NULL PRIMARY KEY,
        key  VARCHAR NOT NULL UNIQUE
    );",
    ),
];

pub fn run(conn: &Connection) -> anyhow::Result<()> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS sightline_schema (version BIGINT NOT NULL, applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)")?;
    let current: i64 = conn.query_row("SELECT coalesce(max(version), 0) FROM sightline_schema", [], |r| r.get(0))?;
    for (version, sql) in STEPS.iter().filter(|(v, _)| *v > current) {
        conn.execute_batch("BEGIN")?;
        let applied = conn
            .execute_batch(sql)
            .and_then(|_| conn.execute("INSERT INTO sightline_schema (version) VALUES (?)", [version]).map(|_| ()));
        match applied {
            Ok(()) => conn.execute_batch("COMMIT")?,
            Err(e) => {
                conn.execute_batch("ROLLBACK").ok();
                return Err(e).with_context(|| format!("analytics schema step {version}"));
            }
        }
    }
    Ok(())
}
