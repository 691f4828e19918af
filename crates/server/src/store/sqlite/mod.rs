//! The meta store on embedded SQLite through sqlx. Timestamps are stored as RFC 3339 text
//! in UTC, so they sort and read the same from any client.

use crate::store::{ApiKey, MetaStore, NewApiKey, NewUser, StoreError, StoreResult, Tenant, User, UserCredential};
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
    pool: SqlitePool,
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
            .connect_with(options)
            .await
            .context("opening the SQLite meta store")?;
        MIGRATOR.run(&pool).await.context("migrating the SQLite meta store")?;
        Ok(Self { pool })
    }
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_ts(s: &str) -> anyhow::Result<DateTime<Utc>> {
    Ok(DateTime::parse_from_rfc3339(s).with_context(|| format!("bad stored timestamp {s}"))?.with_timezone(&Utc))
}

fn parse_opt_ts(s: Option<String>) -> anyhow::Result<Option<DateTime<Utc>>> {
    s.as_deref().map(parse_ts).transpose()
}

fn backend(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        if db.is_unique_violation() {
            return StoreError::Conflict(db.message().to_owned());
        }
    }
    StoreError::Backend(e.into())
}

fn tenant_id(s: &str) -> anyhow::Result<TenantId> {
    TenantId::parse(s).map_err(|e| anyhow::anyhow!("bad stored tenant id {s}: {e}"))
}

fn role(s: &str) -> anyhow::Result<Role> {
    Role::parse(s).map_err(|e| anyhow::anyhow!(e))
}

fn tenant_from(row: &sqlx::sqlite::SqliteRow) -> anyhow::Result<Tenant> {
    Ok(Tenant {
        id: tenant_id(row.try_get("id")?)?,
        name: row.try_get("name")?,
        created_at: parse_ts(row.try_get("created_at")?)?,
    })
}

fn api_key_from(row: &sqlx::sqlite::SqliteRow) -> anyhow::Result<ApiKey> {
    Ok(ApiKey {
        id: row.try_get("id")?,
        tenant_id: tenant_id(row.try_get("tenant_id")?)?,
        name: row.try_get("name")?,
        prefix: row.try_get("prefix")?,
        role: role(row.try_get("role")?)?,
        created_at: parse_ts(row.try_get("created_at")?)?,
        expires_at: parse_opt_ts(row.try_get("expires_at")?)?,
        revoked_at: parse_opt_ts(row.try_get("revoked_at")?)?,
    })
}

#[async_trait]
impl MetaStore for SqliteMeta {
    async fn create_tenant(&self, id: &TenantId, name: &str) -> StoreResult<Tenant> {
        let now = Utc::now();
        sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)")
            .bind(id.as_str())
            .bind(name)
            .bind(ts(now))
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(Tenant { id: id.clone(), name: name.to_owned(), created_at: now })
    }

    async fn ensure_tenant(&self, id: &TenantId, name: &str) -> StoreResult<bool> {
        let done =
            sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING")
                .bind(id.as_str())
                .bind(name)
                .bind(ts(Utc::now()))
                .execute(&self.pool)
                .await
                .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn get_tenant(&self, id: &TenantId) -> StoreResult<Option<Tenant>> {
        let row = sqlx::query("SELECT id, name, created_at FROM tenants WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        Ok(row.as_ref().map(tenant_from).transpose()?)
    }

    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        let rows = sqlx::query("SELECT id, name, created_at FROM tenants ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        Ok(rows.iter().map(tenant_from).collect::<anyhow::Result<_>>()?)
    }

    async fn create_user(&self, u: NewUser<'_>) -> StoreResult<User> {
        let user = User {
            id: uuid::Uuid::now_v7().to_string(),
            tenant_id: u.tenant.clone(),
            username: u.username.to_owned(),
            role: u.role,
            created_at: Utc::now(),
        };
        sqlx::query(
            "INSERT INTO users (id, tenant_id, username, password_hash, role, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&user.id)
        .bind(user.tenant_id.as_str())
        .bind(&user.username)
        .bind(u.password_hash)
        .bind(user.role.as_str())
        .bind(ts(user.created_at))
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(user)
    }

    async fn find_user(&self, tenant: &TenantId, username: &str) -> StoreResult<Option<UserCredential>> {
        let row = sqlx::query(
            "SELECT id, tenant_id, username, password_hash, role, created_at FROM users WHERE tenant_id = ? AND username = ?",
        )
        .bind(tenant.as_str())
        .bind(username)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        let read = || -> anyhow::Result<UserCredential> {
            Ok(UserCredential {
                user: User {
                    id: row.try_get("id")?,
                    tenant_id: tenant_id(row.try_get("tenant_id")?)?,
                    username: row.try_get("username")?,
                    role: role(row.try_get("role")?)?,
                    created_at: parse_ts(row.try_get("created_at")?)?,
                },
                password_hash: row.try_get("password_hash")?,
            })
        };
        Ok(Some(read()?))
    }

    async fn create_api_key(&self, k: NewApiKey<'_>) -> StoreResult<ApiKey> {
        let key = ApiKey {
            id: uuid::Uuid::now_v7().to_string(),
            tenant_id: k.tenant.clone(),
            name: k.name.to_owned(),
            prefix: k.prefix.to_owned(),
            role: k.role,
            created_at: Utc::now(),
            expires_at: k.expires_at,
            revoked_at: None,
        };
        sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, name, prefix, key_hash, role, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&key.id)
        .bind(key.tenant_id.as_str())
        .bind(&key.name)
        .bind(&key.prefix)
        .bind(k.key_hash)
        .bind(key.role.as_str())
        .bind(ts(key.created_at))
        .bind(key.expires_at.map(ts))
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(key)
    }

    async fn find_api_key(&self, key_hash: &str) -> StoreResult<Option<ApiKey>> {
        let row = sqlx::query(
            "SELECT id, tenant_id, name, prefix, role, created_at, expires_at, revoked_at FROM api_keys WHERE key_hash = ?",
        )
        .bind(key_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        Ok(row.as_ref().map(api_key_from).transpose()?)
    }

    async fn setting_or_init(&self, name: &str, make: &(dyn Fn() -> String + Sync)) -> StoreResult<String> {
        sqlx::query("INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(make())
            .execute(&self.pool)
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
