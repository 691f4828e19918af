//! The analytics store's metric records (seed 000's data points) and the runner of
//! compiled queries. Records are written by the ingest writer (so writes to the analytics
//! store stay on one connection, in order) and read like events.

use super::StoreResult;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sightline_core::model::TenantId;
use sightline_core::query::answer::Row;
use sightline_core::query::compile::Compiled;
use std::time::Duration;

/// One stored data point.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRecord {
    pub id: String,
    pub service_name: String,
    pub metric_type: String,
    pub metric_name: String,
    pub value: f64,
    pub timestamp: DateTime<Utc>,
    /// JSON objects.
    pub dimensions: Value,
    pub meta: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// What a PATCH may change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct MetricChange {
    pub value: Option<f64>,
    pub timestamp: Option<DateTime<Utc>>,
    pub dimensions: Option<Value>,
    pub meta: Option<Value>,
}

/// Which records to list; all conditions must hold.
#[derive(Debug, Clone, Default)]
pub struct MetricFilter {
    pub service_name: Option<String>,
    pub metric_type: Option<String>,
    pub metric_name: Option<String>,
    pub start: Option<DateTime<Utc>>,
    /// Exclusive.
    pub end: Option<DateTime<Utc>>,
}

/// Reads of metric records.
#[async_trait]
pub trait MetricReader: Send + Sync + 'static {
    async fn get_metric(&self, tenant: &TenantId, id: &str) -> StoreResult<Option<MetricRecord>>;
    /// Oldest first, then by id.
    async fn list_metrics(
        &self,
        tenant: &TenantId,
        filter: &MetricFilter,
        page: super::Page,
    ) -> StoreResult<Vec<MetricRecord>>;
    /// The distinct `metric_name`s of a tenant's records (for name resolution).
    async fn metric_names(&self, tenant: &TenantId) -> StoreResult<Vec<String>>;
    /// The first and last timestamp of the records a filter selects.
    async fn metric_extent(
        &self,
        tenant: &TenantId,
        filter: &MetricFilter,
    ) -> StoreResult<Option<(DateTime<Utc>, DateTime<Utc>)>>;
}

/// The answer of a free-form SQL statement: column names and rows of JSON values.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlAnswer {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    /// More rows than asked for were there.
    pub truncated: bool,
}

/// Runs what the query compiler produced.
#[async_trait]
pub trait QueryRunner: Send + Sync + 'static {
    /// Runs `q`, interrupting it after `limit` ([`super::StoreError::Timeout`]).
    async fn run(&self, q: &Compiled, limit: Duration) -> StoreResult<Vec<Row>>;
    /// Runs a statement the custom SQL sandbox rewrote, reading at most `max_rows` rows.
    async fn run_sql(
        &self,
        sql: &str,
        params: Vec<sightline_core::sql::SqlValue>,
        limit: Duration,
        max_rows: usize,
    ) -> StoreResult<SqlAnswer>;
}
