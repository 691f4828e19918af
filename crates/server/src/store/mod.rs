//! Storage behind traits, so that a backend is an implementation and never a rewrite.
//!
//! Two stores, as DESIGN.md shapes them:
//! - the *analytics store* (events; metric records next): DuckDB embedded, ClickHouse in
//!   cluster mode. Written only by the ingest writer through [`EventSink`], read through
//!   [`EventReader`].
//! - the *meta store* (tenants, users, API keys, and later dashboards, reports...):
//!   SQLite embedded, PostgreSQL in cluster mode, through [`MetaStore`].
//!
//! Every method takes the tenant and every backend filters by it; a caller cannot forget.

pub mod duckdb;
pub mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sightline_core::model::{Role, TenantId};

/// Errors a store reports; anything but a conflict is a fault on our side.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint held: the thing already exists.
    #[error("conflict: {0}")]
    Conflict(String),
    #[error(transparent)]
    Backend(#[from] anyhow::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// One event as the writer commits it. Properties and context are serialized on the
/// request's task, so the single writer thread only appends.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub tenant_id: TenantId,
    pub event_id: String,
    /// 128-bit key of (tenant, event id): the unique key that makes a repeated id land once.
    pub id_key: u128,
    pub name: String,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub timestamp: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub properties_json: String,
    pub context_json: Option<String>,
}

impl EventRow {
    pub fn id_key(tenant: &TenantId, event_id: &str) -> u128 {
        // The separator cannot occur in a tenant id, so ("a", "b:c") and ("a:b", "c") differ.
        let mut buf = Vec::with_capacity(tenant.as_str().len() + 1 + event_id.len());
        buf.extend_from_slice(tenant.as_str().as_bytes());
        buf.push(b':');
        buf.extend_from_slice(event_id.as_bytes());
        xxhash_rust::xxh3::xxh3_128(&buf)
    }
}

/// An event read back.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub event_id: String,
    pub name: String,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub timestamp: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub properties: serde_json::Value,
    pub context: serde_json::Value,
}

/// Which events to list; all conditions must hold.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub name: Option<String>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub start: Option<DateTime<Utc>>,
    /// Exclusive.
    pub end: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub offset: u64,
    pub limit: u64,
}

/// What one commit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitOutcome {
    /// Rows newly stored; the others repeated an id already stored.
    pub inserted: u64,
}

/// The writer's side of the analytics store. Synchronous: it runs on the writer's own
/// thread and owns its connection.
pub trait EventSink: Send + 'static {
    /// Stores `rows` in one transaction: all of them or none. Ids already stored, or
    /// repeated within `rows`, are stored once.
    fn commit(&mut self, rows: &[EventRow]) -> anyhow::Result<CommitOutcome>;
    /// Makes everything committed durable in the main file (called at shutdown).
    fn checkpoint(&mut self) -> anyhow::Result<()>;
}

/// The readers' side of the analytics store.
#[async_trait]
pub trait EventReader: Send + Sync + 'static {
    /// Newest first.
    async fn list_events(&self, tenant: &TenantId, filter: &EventFilter, page: Page) -> StoreResult<Vec<StoredEvent>>;
    async fn count_events(&self, tenant: &TenantId, filter: &EventFilter) -> StoreResult<u64>;
    async fn get_event(&self, tenant: &TenantId, event_id: &str) -> StoreResult<Option<StoredEvent>>;
    /// Rows stored over all tenants (for /metrics).
    async fn total_events(&self) -> StoreResult<u64>;
    async fn ping(&self) -> StoreResult<()>;
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct User {
    pub id: String,
    pub tenant_id: TenantId,
    pub username: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

/// A user with the hash to check a password against.
#[derive(Debug, Clone)]
pub struct UserCredential {
    pub user: User,
    pub password_hash: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiKey {
    pub id: String,
    pub tenant_id: TenantId,
    pub name: String,
    /// The key's first characters, to recognise it in a list; never enough to use it.
    pub prefix: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    pub tenant: &'a TenantId,
    pub username: &'a str,
    pub password_hash: &'a str,
    pub role: Role,
}

#[derive(Debug, Clone)]
pub struct NewApiKey<'a> {
    pub tenant: &'a TenantId,
    pub name: &'a str,
    pub prefix: &'a str,
    pub key_hash: &'a str,
    pub role: Role,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Tenants, users, keys and settings.
#[async_trait]
pub trait MetaStore: Send + Sync + 'static {
    async fn create_tenant(&self, id: &TenantId, name: &str) -> StoreResult<Tenant>;
    /// Creates the tenant unless it exists; true when it was created.
    async fn ensure_tenant(&self, id: &TenantId, name: &str) -> StoreResult<bool>;
    async fn get_tenant(&self, id: &TenantId) -> StoreResult<Option<Tenant>>;
    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>>;

    async fn create_user(&self, user: NewUser<'_>) -> StoreResult<User>;
    async fn find_user(&self, tenant: &TenantId, username: &str) -> StoreResult<Option<UserCredential>>;

    async fn create_api_key(&self, key: NewApiKey<'_>) -> StoreResult<ApiKey>;
    /// Looks a key up by the hash of its secret, over all tenants: the key names its tenant.
    async fn find_api_key(&self, key_hash: &str) -> StoreResult<Option<ApiKey>>;

    /// A server-wide setting, created with `make` the first time it is asked for.
    async fn setting_or_init(&self, name: &str, make: &(dyn Fn() -> String + Sync)) -> StoreResult<String>;
    async fn ping(&self) -> StoreResult<()>;
}
