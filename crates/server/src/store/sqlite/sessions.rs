use super::{SqliteMeta, backend, parse_ts, tenant_id, ts};
use crate::store::{RefreshToken, RefreshUse, SessionStore, StoreResult};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sightline_core::model::TenantId;
use sqlx::Row;

#[async_trait]
impl SessionStore for SqliteMeta {
    async fn create_refresh_token(&self, t: &RefreshToken, token_hash: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO refresh_tokens (id, family_id, user_id, tenant_id, token_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&t.id)
        .bind(&t.family_id)
        .bind(&t.user_id)
        .bind(t.tenant_id.as_str())
        .bind(token_hash)
        .bind(ts(Utc::now()))
        .bind(ts(t.expires_at))
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn use_refresh_token(&self, token_hash: &str, now: DateTime<Utc>) -> StoreResult<RefreshUse> {
        // The UPDATE is the decision: only one use can flip used_at from NULL.
        let claimed = sqlx::query(
            "UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL AND revoked_at IS NULL \
             RETURNING id, family_id, user_id, tenant_id, expires_at",
        )
        .bind(ts(now))
        .bind(token_hash)
        .fetch_optional(&self.writer)
        .await
        .map_err(backend)?;
        if let Some(row) = claimed {
            let t = RefreshToken {
                id: row.try_get("id").map_err(backend)?,
                family_id: row.try_get("family_id").map_err(backend)?,
                user_id: row.try_get("user_id").map_err(backend)?,
                tenant_id: tenant_id(row.try_get("tenant_id").map_err(backend)?)?,
                expires_at: parse_ts(row.try_get("expires_at").map_err(backend)?)?,
            };
            if t.expires_at <= now {
                return Ok(RefreshUse::Expired);
            }
            return Ok(RefreshUse::Fresh(t));
        }
        let family: Option<String> = sqlx::query_scalar("SELECT family_id FROM refresh_tokens WHERE token_hash = ?")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        match family {
            None => Ok(RefreshUse::Unknown),
            Some(f) => {
                sqlx::query("UPDATE refresh_tokens SET revoked_at = coalesce(revoked_at, ?) WHERE family_id = ?")
                    .bind(ts(now))
                    .bind(f)
                    .execute(&self.writer)
                    .await
                    .map_err(backend)?;
                Ok(RefreshUse::Replayed)
            }
        }
    }

    async fn revoke_user_sessions(&self, tenant: &TenantId, user_id: &str) -> StoreResult<()> {
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = coalesce(revoked_at, ?) WHERE tenant_id = ? AND user_id = ?",
        )
        .bind(ts(Utc::now()))
        .bind(tenant.as_str())
        .bind(user_id)
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(())
    }
}
