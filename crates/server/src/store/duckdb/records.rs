//! Metric records on DuckDB: the columns read back, and the reads of the
//! [`MetricReader`] trait. Writes live in the sink, on the writer's connection.

use super::reader::{DuckReader, from_micros, to_duck};
use crate::store::{MetricFilter, MetricReader, MetricRecord, Page, StoreResult};
use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use duckdb::{Connection, params_from_iter};
use sightline_core::model::TenantId;
use sightline_core::sql::{SqlBuilder, SqlValue, Stored};

pub(super) const COLUMNS: &str = "SELECT id, service_name, metric_type, metric_name, value, epoch_us(ts), \
     dimensions::VARCHAR, meta::VARCHAR, epoch_us(created_at), epoch_us(updated_at)";

/// `SELECT <columns> FROM <the tenant's records> WHERE TRUE`, for filters to follow.
fn select_records(columns: &'static str, tenant: &TenantId) -> SqlBuilder {
    let mut b = SqlBuilder::new(columns);
    b.from_tenant(Stored::MetricRecords, tenant, "m").push(" WHERE TRUE");
    b
}

pub(super) fn query_records(conn: &Connection, b: &SqlBuilder) -> anyhow::Result<Vec<MetricRecord>> {
    let mut stmt = conn.prepare_cached(b.sql())?;
    let rows = stmt.query_map(params_from_iter(b.params().iter().map(to_duck)), |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, f64>(4)?,
            r.get::<_, i64>(5)?,
            r.get::<_, String>(6)?,
            r.get::<_, String>(7)?,
            r.get::<_, i64>(8)?,
            r.get::<_, Option<i64>>(9)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, service_name, metric_type, metric_name, value, ts, dims, meta, created, updated) = row?;
        out.push(MetricRecord {
            id,
            service_name,
            metric_type,
            metric_name,
            value,
            timestamp: from_micros(ts)?,
            dimensions: serde_json::from_str(&dims).context("stored dimensions are not JSON")?,
            meta: serde_json::from_str(&meta).context("stored meta is not JSON")?,
            created_at: from_micros(created)?,
            updated_at: updated.map(from_micros).transpose()?,
        });
    }
    Ok(out)
}

/// One record by id, on any connection (the sink reads back what it changed).
pub(super) fn get_record(conn: &Connection, tenant: &TenantId, id: &str) -> anyhow::Result<Option<MetricRecord>> {
    let mut b = select_records(COLUMNS, tenant);
    b.push_bind(" AND id = ", SqlValue::Text(id.to_owned()));
    Ok(query_records(conn, &b)?.into_iter().next())
}

fn push_filter(b: &mut SqlBuilder, f: &MetricFilter) {
    if let Some(v) = &f.service_name {
        b.push_bind(" AND service_name = ", SqlValue::Text(v.clone()));
    }
    if let Some(v) = &f.metric_type {
        b.push_bind(" AND metric_type = ", SqlValue::Text(v.clone()));
    }
    if let Some(v) = &f.metric_name {
        b.push_bind(" AND metric_name = ", SqlValue::Text(v.clone()));
    }
    if let Some(t) = f.start {
        b.push_bind(" AND ts >= ", SqlValue::TimestampMicros(t.timestamp_micros()));
    }
    if let Some(t) = f.end {
        b.push_bind(" AND ts < ", SqlValue::TimestampMicros(t.timestamp_micros()));
    }
}

#[async_trait]
impl MetricReader for DuckReader {
    async fn get_metric(&self, tenant: &TenantId, id: &str) -> StoreResult<Option<MetricRecord>> {
        let (tenant, id) = (tenant.clone(), id.to_owned());
        self.with_conn(move |c| get_record(c, &tenant, &id)).await
    }

    async fn list_metrics(
        &self,
        tenant: &TenantId,
        filter: &MetricFilter,
        page: Page,
    ) -> StoreResult<Vec<MetricRecord>> {
        let mut b = select_records(COLUMNS, tenant);
        push_filter(&mut b, filter);
        b.push(" ORDER BY ts, id LIMIT ")
            .bind(SqlValue::Int(page.limit.min(i64::MAX as u64) as i64))
            .push(" OFFSET ")
            .bind(SqlValue::Int(page.offset.min(i64::MAX as u64) as i64));
        self.with_conn(move |c| query_records(c, &b)).await
    }

    async fn metric_names(&self, tenant: &TenantId) -> StoreResult<Vec<String>> {
        let t = tenant.to_string();
        self.with_conn(move |c| {
            let mut stmt =
                c.prepare_cached("SELECT DISTINCT metric_name FROM metric_records WHERE tenant_id = ? ORDER BY 1")?;
            let names = stmt.query_map([t], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
            Ok(names)
        })
        .await
    }

    async fn metric_extent(
        &self,
        tenant: &TenantId,
        filter: &MetricFilter,
    ) -> StoreResult<Option<(DateTime<Utc>, DateTime<Utc>)>> {
        let mut b = select_records("SELECT epoch_us(min(ts)), epoch_us(max(ts))", tenant);
        push_filter(&mut b, filter);
        self.with_conn(move |c| {
            let (lo, hi): (Option<i64>, Option<i64>) = c
                .prepare_cached(b.sql())?
                .query_row(params_from_iter(b.params().iter().map(to_duck)), |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(match (lo, hi) {
                (Some(lo), Some(hi)) => Some((from_micros(lo)?, from_micros(hi)?)),
                _ => None,
            })
        })
        .await
    }
}
