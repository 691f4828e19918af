use super::{SqliteMeta, backend, parse_ts, ts};
use crate::store::{Segment, SegmentStore, StoreResult};
use anyhow::Context;
use async_trait::async_trait;
use sightline_core::model::TenantId;
use sqlx::Row;

const COLUMNS: &str = "SELECT id, name, conditions, created_at, updated_at FROM segments";

fn from_row(row: &sqlx::sqlite::SqliteRow) -> anyhow::Result<Segment> {
    let conditions: String = row.try_get("conditions")?;
    Ok(Segment {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        conditions: serde_json::from_str(&conditions).context("stored conditions are not JSON")?,
        created_at: parse_ts(row.try_get("created_at")?)?,
        updated_at: parse_ts(row.try_get("updated_at")?)?,
    })
}

#[async_trait]
impl SegmentStore for SqliteMeta {
    async fn create_segment(&self, tenant: &TenantId, s: &Segment) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO segments (tenant_id, id, name, conditions, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(tenant.as_str())
        .bind(&s.id)
        .bind(&s.name)
        .bind(s.conditions.to_string())
        .bind(ts(s.created_at))
        .bind(ts(s.updated_at))
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn list_segments(&self, tenant: &TenantId) -> StoreResult<Vec<Segment>> {
        let rows = sqlx::query(&format!("{COLUMNS} WHERE tenant_id = ? ORDER BY name"))
            .bind(tenant.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        Ok(rows.iter().map(from_row).collect::<anyhow::Result<_>>()?)
    }

    async fn get_segment(&self, tenant: &TenantId, id: &str) -> StoreResult<Option<Segment>> {
        let row = sqlx::query(&format!("{COLUMNS} WHERE tenant_id = ? AND id = ?"))
            .bind(tenant.as_str())
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    async fn replace_segment(&self, tenant: &TenantId, s: &Segment) -> StoreResult<bool> {
        let done =
            sqlx::query("UPDATE segments SET name = ?, conditions = ?, updated_at = ? WHERE tenant_id = ? AND id = ?")
                .bind(&s.name)
                .bind(s.conditions.to_string())
                .bind(ts(s.updated_at))
                .bind(tenant.as_str())
                .bind(&s.id)
                .execute(&self.writer)
                .await
                .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_segment(&self, tenant: &TenantId, id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM segments WHERE tenant_id = ? AND id = ?")
            .bind(tenant.as_str())
            .bind(id)
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }
}
