use super::{SqliteMeta, backend, parse_ts, ts};
use crate::store::{CustomMetric, CustomMetricStore, StoreResult};
use anyhow::Context;
use async_trait::async_trait;
use chrono::Utc;
use serde_json::Value;
use sightline_core::model::TenantId;
use sqlx::Row;

const COLUMNS: &str = "SELECT name, spec, created_at, updated_at FROM custom_metrics";

fn from_row(row: &sqlx::sqlite::SqliteRow) -> anyhow::Result<CustomMetric> {
    let spec: String = row.try_get("spec")?;
    Ok(CustomMetric {
        name: row.try_get("name")?,
        spec: serde_json::from_str(&spec).context("stored custom metric is not JSON")?,
        created_at: parse_ts(row.try_get("created_at")?)?,
        updated_at: parse_ts(row.try_get("updated_at")?)?,
    })
}

#[async_trait]
impl CustomMetricStore for SqliteMeta {
    async fn create_custom_metric(&self, tenant: &TenantId, name: &str, spec: &Value) -> StoreResult<CustomMetric> {
        let now = Utc::now();
        sqlx::query(
            "INSERT INTO custom_metrics (tenant_id, name, spec, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(tenant.as_str())
        .bind(name)
        .bind(spec.to_string())
        .bind(ts(now))
        .bind(ts(now))
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(CustomMetric { name: name.to_owned(), spec: spec.clone(), created_at: now, updated_at: now })
    }

    async fn get_custom_metric(&self, tenant: &TenantId, name: &str) -> StoreResult<Option<CustomMetric>> {
        let row = sqlx::query(&format!("{COLUMNS} WHERE tenant_id = ? AND name = ?"))
            .bind(tenant.as_str())
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    async fn list_custom_metrics(&self, tenant: &TenantId) -> StoreResult<Vec<CustomMetric>> {
        let rows = sqlx::query(&format!("{COLUMNS} WHERE tenant_id = ? ORDER BY name"))
            .bind(tenant.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        Ok(rows.iter().map(from_row).collect::<anyhow::Result<_>>()?)
    }

    async fn update_custom_metric(
        &self,
        tenant: &TenantId,
        name: &str,
        spec: &Value,
    ) -> StoreResult<Option<CustomMetric>> {
        let done = sqlx::query("UPDATE custom_metrics SET spec = ?, updated_at = ? WHERE tenant_id = ? AND name = ?")
            .bind(spec.to_string())
            .bind(ts(Utc::now()))
            .bind(tenant.as_str())
            .bind(name)
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.get_custom_metric(tenant, name).await
    }

    async fn delete_custom_metric(&self, tenant: &TenantId, name: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM custom_metrics WHERE tenant_id = ? AND name = ?")
            .bind(tenant.as_str())
            .bind(name)
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }
}
