//! The analytics store's events: the rows the writer commits and the reads of them.

use super::StoreResult;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sightline_core::model::TenantId;

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
    /// [`user_key`] of `user_id`: what analyses group and join users by.
    pub user_key: Option<u64>,
    pub session_id: Option<String>,
    pub timestamp: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub properties_json: String,
    pub context_json: Option<String>,
    /// The text of each materialized property, in slot order (see
    /// `sightline_core::query::field::PropertyColumns`); empty when the caller did not
    /// extract them, and the writer then reads them from `properties_json`.
    pub materialized: Vec<Option<String>>,
}

impl EventRow {
    pub fn id_key(tenant: &TenantId, event_id: &str) -> u128 {
        Self::id_key_of(tenant.as_str(), event_id)
    }

    /// [`EventRow::id_key`] of a tenant id read back from the store.
    pub fn id_key_of(tenant: &str, event_id: &str) -> u128 {
        // The separator cannot occur in a tenant id, so ("a", "b:c") and ("a:b", "c") differ.
        let mut buf = Vec::with_capacity(tenant.len() + 1 + event_id.len());
        buf.extend_from_slice(tenant.as_bytes());
        buf.push(b':');
        buf.extend_from_slice(event_id.as_bytes());
        xxhash_rust::xxh3::xxh3_128(&buf)
    }
}

/// The integer that stands for a user id in analyses (funnels, retention, distinct users
/// join and count it several times faster than text): the low 64 bits of the id's MD5,
/// as DuckDB's `md5_number_lower` computes it, so a migration computes the same key in SQL.
/// Two ids share a key with odds of about 1 in 10^10 at a million users.
pub fn user_key(user_id: &str) -> u64 {
    use md5::Digest;
    let digest = md5::Md5::digest(user_id.as_bytes());
    u64::from_le_bytes(digest[8..16].try_into().expect("16 bytes"))
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

/// The writer's side of the analytics store (events and metric records). Synchronous: it
/// runs on the writer's own thread and owns its connection.
pub trait EventSink: Send + 'static {
    /// Stores `rows` in one transaction: all of them or none. Ids already stored, or
    /// repeated within `rows`, are stored once.
    fn commit(&mut self, rows: &[EventRow]) -> anyhow::Result<CommitOutcome>;
    /// Deletes every event and metric record of `tenant`; answers how many events.
    fn delete_tenant(&mut self, tenant: &TenantId) -> anyhow::Result<u64>;
    /// Stores metric records in one transaction.
    fn insert_metrics(&mut self, tenant: &TenantId, records: &[super::MetricRecord]) -> anyhow::Result<()>;
    /// Changes one record; `None` when the tenant has no record with that id.
    fn update_metric(
        &mut self,
        tenant: &TenantId,
        id: &str,
        change: &super::MetricChange,
        at: DateTime<Utc>,
    ) -> anyhow::Result<Option<super::MetricRecord>>;
    /// Deletes one record; false when the tenant has none with that id.
    fn delete_metric(&mut self, tenant: &TenantId, id: &str) -> anyhow::Result<bool>;
    /// Makes everything committed durable in the main file (called at shutdown).
    fn checkpoint(&mut self) -> anyhow::Result<()>;
    /// Opens the store again if a failed write left it unusable (called now and then, so
    /// that reads recover while nothing is written). Nothing to do by default.
    fn recover(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
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
