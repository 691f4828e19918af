use super::{SqliteMeta, backend, parse_ts, tenant_id, ts};
use crate::store::{AuditEntry, AuditStore, StoreResult};
use async_trait::async_trait;
use sightline_core::model::TenantId;
use sqlx::Row;

#[async_trait]
impl AuditStore for SqliteMeta {
    async fn record_audit(&self, e: &AuditEntry) -> StoreResult<()> {
        sqlx::query("INSERT INTO audit_log (id, tenant_id, at, actor, action, target, ip, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
            .bind(&e.id)
            .bind(e.tenant_id.as_str())
            .bind(ts(e.at))
            .bind(&e.actor)
            .bind(&e.action)
            .bind(&e.target)
            .bind(&e.ip)
            .bind(e.details.to_string())
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn list_audit(&self, tenant: &TenantId, limit: u32, offset: u32) -> StoreResult<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, at, actor, action, target, ip, details FROM audit_log WHERE tenant_id = ? \
             ORDER BY at DESC, id DESC LIMIT ? OFFSET ?",
        )
        .bind(tenant.as_str())
        .bind(limit as i64)
        .bind(offset as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        let read = |row: &sqlx::sqlite::SqliteRow| -> anyhow::Result<AuditEntry> {
            Ok(AuditEntry {
                id: row.try_get("id")?,
                tenant_id: tenant_id(row.try_get("tenant_id")?)?,
                at: parse_ts(row.try_get("at")?)?,
                actor: row.try_get("actor")?,
                action: row.try_get("action")?,
                target: row.try_get("target")?,
                ip: row.try_get("ip")?,
                details: serde_json::from_str(row.try_get("details")?)?,
            })
        };
        Ok(rows.iter().map(read).collect::<anyhow::Result<_>>()?)
    }
}
