use super::{SqliteMeta, backend, parse_ts, ts};
use crate::store::{AlertRule, AlertRuleStore, StoreResult};
use async_trait::async_trait;
use sightline_core::model::TenantId;
use sqlx::Row;

const COLUMNS: &str =
    "SELECT id, name, metric, condition, threshold, window_secs, created_at, updated_at FROM alert_rules";

fn from_row(row: &sqlx::sqlite::SqliteRow) -> anyhow::Result<AlertRule> {
    Ok(AlertRule {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        metric: row.try_get("metric")?,
        condition: row.try_get("condition")?,
        threshold: row.try_get("threshold")?,
        window_secs: row.try_get("window_secs")?,
        created_at: parse_ts(row.try_get("created_at")?)?,
        updated_at: parse_ts(row.try_get("updated_at")?)?,
    })
}

#[async_trait]
impl AlertRuleStore for SqliteMeta {
    async fn create_alert_rule(&self, tenant: &TenantId, r: &AlertRule) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO alert_rules (tenant_id, id, name, metric, condition, threshold, window_secs, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(tenant.as_str())
        .bind(&r.id)
        .bind(&r.name)
        .bind(&r.metric)
        .bind(&r.condition)
        .bind(r.threshold)
        .bind(r.window_secs)
        .bind(ts(r.created_at))
        .bind(ts(r.updated_at))
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn list_alert_rules(&self, tenant: &TenantId) -> StoreResult<Vec<AlertRule>> {
        let rows = sqlx::query(&format!("{COLUMNS} WHERE tenant_id = ? ORDER BY created_at, id"))
            .bind(tenant.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        Ok(rows.iter().map(from_row).collect::<anyhow::Result<_>>()?)
    }

    async fn get_alert_rule(&self, tenant: &TenantId, id: &str) -> StoreResult<Option<AlertRule>> {
        let row = sqlx::query(&format!("{COLUMNS} WHERE tenant_id = ? AND id = ?"))
            .bind(tenant.as_str())
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    async fn replace_alert_rule(&self, tenant: &TenantId, r: &AlertRule) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE alert_rules SET name = ?, metric = ?, condition = ?, threshold = ?, window_secs = ?, updated_at = ? \
             WHERE tenant_id = ? AND id = ?",
        )
        .bind(&r.name)
        .bind(&r.metric)
        .bind(&r.condition)
        .bind(r.threshold)
        .bind(r.window_secs)
        .bind(ts(r.updated_at))
        .bind(tenant.as_str())
        .bind(&r.id)
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_alert_rule(&self, tenant: &TenantId, id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM alert_rules WHERE tenant_id = ? AND id = ?")
            .bind(tenant.as_str())
            .bind(id)
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }
}
