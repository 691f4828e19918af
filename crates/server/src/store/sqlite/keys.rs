use super::{SqliteMeta, api_key_from, backend, new_id, ts};
use crate::store::{ApiKey, KeyStore, NewApiKey, StoreResult};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sightline_core::model::TenantId;

const COLUMNS: &str =
    "SELECT id, tenant_id, name, prefix, role, created_at, expires_at, revoked_at, last_used_at FROM api_keys";

#[async_trait]
impl KeyStore for SqliteMeta {
    async fn create_api_key(&self, k: NewApiKey<'_>) -> StoreResult<ApiKey> {
        let key = ApiKey {
            id: new_id(),
            tenant_id: k.tenant.clone(),
            name: k.name.to_owned(),
            prefix: k.prefix.to_owned(),
            role: k.role,
            created_at: Utc::now(),
            expires_at: k.expires_at,
            revoked_at: None,
            last_used_at: None,
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
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(key)
    }

    async fn find_api_key(&self, key_hash: &str) -> StoreResult<Option<ApiKey>> {
        let row = sqlx::query(&format!("{COLUMNS} WHERE key_hash = ?"))
            .bind(key_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        Ok(row.as_ref().map(api_key_from).transpose()?)
    }

    async fn list_api_keys(&self, tenant: &TenantId) -> StoreResult<Vec<ApiKey>> {
        let rows = sqlx::query(&format!("{COLUMNS} WHERE tenant_id = ? ORDER BY created_at, id"))
            .bind(tenant.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        Ok(rows.iter().map(api_key_from).collect::<anyhow::Result<_>>()?)
    }

    async fn revoke_api_key(&self, tenant: &TenantId, id: &str) -> StoreResult<Option<ApiKey>> {
        sqlx::query("UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE tenant_id = ? AND id = ?")
            .bind(ts(Utc::now()))
            .bind(tenant.as_str())
            .bind(id)
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        let row = sqlx::query(&format!("{COLUMNS} WHERE tenant_id = ? AND id = ?"))
            .bind(tenant.as_str())
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        Ok(row.as_ref().map(api_key_from).transpose()?)
    }

    async fn touch_api_key(&self, id: &str, at: DateTime<Utc>) -> StoreResult<()> {
        sqlx::query("UPDATE api_keys SET last_used_at = ? WHERE id = ?")
            .bind(ts(at))
            .bind(id)
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(())
    }
}
