//! The meta store on embedded SQLite through sqlx. Timestamps are stored as RFC 3339 text
//! in UTC, so they sort and read the same from any client. One file per concern.

mod audit;
mod idempotency;
mod keys;
mod recent_keys;
mod resources;
mod sessions;
mod tenants;
mod users;

use crate::store::{ApiKey, MetaStore, StoreError, StoreResult, Tenant, User};
use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use sightline_core::model::{Role, TenantId};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteMeta {
    /// Reads, on several connections.
    pub(super) pool: SqlitePool,
    /// Writes, on one connection: SQLite takes one writer at a time, and writers queued
    /// here wait in order instead of sleeping in SQLite's busy handler.
    pub(super) writer: SqlitePool,
    /// Answers of keyed requests, looked up and committed in groups.
    answers: idempotency::Answers,
}

impl SqliteMeta {
    /// Opens the file at `path` (created if missing), or a private in-memory database.
    pub async fn open(path: Option<&Path>) -> anyhow::Result<Self> {
        let (options, max) = match path {
            Some(p) => (
                SqliteConnectOptions::new()
                    .filename(p)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal),
                8,
            ),
            // One connection: every in-memory connection would be its own database.
            None => (SqliteConnectOptions::from_str("sqlite::memory:")?, 1),
        };
        // Per-connection settings go on the options, so every pooled connection has them.
        let options = options.foreign_keys(true).busy_timeout(Duration::from_secs(5));
        if path.is_some() {
            // Switch a new file to WAL and migrate it from one connection first: pooled
            // connections opening at once would race for the lock that the switch needs.
            use sqlx::{ConnectOptions, Connection};
            let mut conn = options.connect().await.context("opening the SQLite meta store")?;
            MIGRATOR.run(&mut conn).await.context("migrating the SQLite meta store")?;
            conn.close().await?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(max)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.clone())
            .await
            .context("opening the SQLite meta store")?;
        MIGRATOR.run(&pool).await.context("migrating the SQLite meta store")?;
        let writer = match path {
            None => pool.clone(),
            Some(_) => SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options)
                .await
                .context("opening the SQLite meta store's writer")?,
        };
        let answers = idempotency::Answers::start(path).await?;
        Ok(Self { pool, writer, answers })
    }
}

pub(super) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(super) fn parse_ts(s: &str) -> anyhow::Result<DateTime<Utc>> {
    Ok(DateTime::parse_from_rfc3339(s).with_context(|| format!("bad stored timestamp {s}"))?.with_timezone(&Utc))
}

pub(super) fn parse_opt_ts(s: Option<String>) -> anyhow::Result<Option<DateTime<Utc>>> {
    s.as_deref().map(parse_ts).transpose()
}

pub(super) fn backend(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e
        && db.is_unique_violation()
    {
        // The constraint's text names tables and columns: logged, never answered.
        tracing::debug!(constraint = %db.message(), "unique constraint");
        return StoreError::Conflict("a record with the same unique key exists already".to_owned());
    }
    StoreError::Backend(e.into())
}

pub(super) fn tenant_id(s: &str) -> anyhow::Result<TenantId> {
    TenantId::parse(s).map_err(|e| anyhow::anyhow!("bad stored tenant id {s}: {e}"))
}

pub(super) fn role(s: &str) -> anyhow::Result<Role> {
    Role::parse(s).map_err(|e| anyhow::anyhow!(e))
}

pub(super) fn tenant_from(row: &sqlx::sqlite::SqliteRow) -> anyhow::Result<Tenant> {
    Ok(Tenant {
        id: tenant_id(row.try_get("id")?)?,
        name: row.try_get("name")?,
        created_at: parse_ts(row.try_get("created_at")?)?,
    })
}

pub(super) fn api_key_from(row: &sqlx::sqlite::SqliteRow) -> anyhow::Result<ApiKey> {
    Ok(ApiKey {
        id: row.try_get("id")?,
        tenant_id: tenant_id(row.try_get("tenant_id")?)?,
        name: row.try_get("name")?,
        prefix: row.try_get("prefix")?,
        role: role(row.try_get("role")?)?,
        created_at: parse_ts(row.try_get("created_at")?)?,
        expires_at: parse_opt_ts(row.try_get("expires_at")?)?,
        revoked_at: parse_opt_ts(row.try_get("revoked_at")?)?,
        last_used_at: parse_opt_ts(row.try_get("last_used_at")?)?,
    })
}

pub(super) fn user_from(row: &sqlx::sqlite::SqliteRow) -> anyhow::Result<User> {
    Ok(User {
        id: row.try_get("id")?,
        tenant_id: tenant_id(row.try_get("tenant_id")?)?,
        username: row.try_get("username")?,
        role: role(row.try_get("role")?)?,
        superuser: row.try_get::<i64, _>("superuser")? != 0,
        created_at: parse_ts(row.try_get("created_at")?)?,
    })
}

pub(super) fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[async_trait]
impl MetaStore for SqliteMeta {
    async fn setting_or_init(&self, name: &str, make: &(dyn Fn() -> String + Sync)) -> StoreResult<String> {
        sqlx::query("INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(make())
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        let v: String = sqlx::query_scalar("SELECT value FROM settings WHERE name = ?")
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(backend)?;
        Ok(v)
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(backend)?;
        Ok(())
    }
}
