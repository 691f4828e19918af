use super::{SqliteMeta, backend, tenant_from, ts};
use crate::store::{StoreError, StoreResult, Tenant, TenantStore};
use async_trait::async_trait;
use chrono::Utc;
use sightline_core::model::TenantId;

const COLUMNS: &str = "SELECT id, name, created_at FROM tenants";

#[async_trait]
impl TenantStore for SqliteMeta {
    async fn create_tenant(&self, id: &TenantId, name: &str) -> StoreResult<Tenant> {
        let t = Tenant { id: id.clone(), name: name.to_owned(), created_at: Utc::now() };
        sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)")
            .bind(id.as_str())
            .bind(name)
            .bind(ts(t.created_at))
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(t)
    }

    async fn ensure_tenant(&self, id: &TenantId, name: &str) -> StoreResult<bool> {
        let done =
            sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING")
                .bind(id.as_str())
                .bind(name)
                .bind(ts(Utc::now()))
                .execute(&self.writer)
                .await
                .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn get_tenant(&self, id: &TenantId) -> StoreResult<Option<Tenant>> {
        let row = sqlx::query(&format!("{COLUMNS} WHERE id = ?"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        Ok(row.as_ref().map(tenant_from).transpose()?)
    }

    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        let rows =
            sqlx::query(&format!("{COLUMNS} ORDER BY created_at, id")).fetch_all(&self.pool).await.map_err(backend)?;
        Ok(rows.iter().map(tenant_from).collect::<anyhow::Result<_>>()?)
    }

    async fn rename_tenant(&self, id: &TenantId, name: &str) -> StoreResult<Option<Tenant>> {
        sqlx::query("UPDATE tenants SET name = ? WHERE id = ?")
            .bind(name)
            .bind(id.as_str())
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        self.get_tenant(id).await
    }

    async fn delete_tenant(&self, id: &TenantId) -> StoreResult<bool> {
        // Users, keys, tokens and audit lines go with it (ON DELETE CASCADE); the answers
        // kept for its idempotency keys are not tied to it by a key.
        self.answers.forget_scope(crate::store::tenant_scope(id)).await?;
        let done = sqlx::query("DELETE FROM tenants WHERE id = ?")
            .bind(id.as_str())
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn get_tenant_setting(&self, id: &TenantId, name: &str) -> StoreResult<Option<serde_json::Value>> {
        let v: Option<String> =
            sqlx::query_scalar("SELECT value FROM tenant_settings WHERE tenant_id = ? AND name = ?")
                .bind(id.as_str())
                .bind(name)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        Ok(v.map(|v| serde_json::from_str(&v)).transpose().map_err(|e| StoreError::Backend(e.into()))?)
    }

    async fn put_tenant_setting(&self, id: &TenantId, name: &str, value: &serde_json::Value) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO tenant_settings (tenant_id, name, value) VALUES (?, ?, ?) \
             ON CONFLICT (tenant_id, name) DO UPDATE SET value = excluded.value",
        )
        .bind(id.as_str())
        .bind(name)
        .bind(value.to_string())
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn all_tenant_settings(&self, name: &str) -> StoreResult<Vec<(TenantId, serde_json::Value)>> {
        let rows: Vec<(String, String)> = sqlx::query_as("SELECT tenant_id, value FROM tenant_settings WHERE name = ?")
            .bind(name)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.into_iter()
            .map(|(t, v)| Ok((super::tenant_id(&t)?, serde_json::from_str(&v).map_err(anyhow::Error::from)?)))
            .collect::<anyhow::Result<_>>()
            .map_err(StoreError::Backend)
    }
}
