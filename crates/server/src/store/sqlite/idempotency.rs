use super::{SqliteMeta, backend, parse_ts, ts};
use crate::store::{IdempotencyClaim, IdempotencyStore, StoreResult, StoredResponse};
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use sqlx::Row;

#[async_trait]
impl IdempotencyStore for SqliteMeta {
    async fn claim_idempotency(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
        ttl: Duration,
        stale: Duration,
    ) -> StoreResult<IdempotencyClaim> {
        // Expired entries, and abandoned claims of this key, make room first.
        sqlx::query("DELETE FROM idempotency_keys WHERE expires_at <= ? OR (scope = ? AND key = ? AND state = 'running' AND created_at <= ?)")
            .bind(ts(now))
            .bind(scope)
            .bind(key)
            .bind(ts(now - stale))
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        // The INSERT decides: of concurrent first uses exactly one claims.
        let claimed = sqlx::query(
            "INSERT INTO idempotency_keys (scope, key, fingerprint, state, created_at, expires_at) VALUES (?, ?, ?, 'running', ?, ?) \
             ON CONFLICT (scope, key) DO NOTHING",
        )
        .bind(scope)
        .bind(key)
        .bind(fingerprint)
        .bind(ts(now))
        .bind(ts(now + ttl))
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        if claimed.rows_affected() == 1 {
            return Ok(IdempotencyClaim::Claimed);
        }
        let row = sqlx::query("SELECT fingerprint, state, status, headers, body, expires_at FROM idempotency_keys WHERE scope = ? AND key = ?")
            .bind(scope)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        let Some(row) = row else {
            // Deleted in between (expired): the caller may simply retry.
            return Ok(IdempotencyClaim::InProgress);
        };
        let stored_fp: String = row.try_get("fingerprint").map_err(backend)?;
        if stored_fp != fingerprint {
            return Ok(IdempotencyClaim::Mismatch);
        }
        let _ = parse_ts(row.try_get("expires_at").map_err(backend)?)?;
        let state: String = row.try_get("state").map_err(backend)?;
        if state == "running" {
            return Ok(IdempotencyClaim::InProgress);
        }
        let headers: Option<String> = row.try_get("headers").map_err(backend)?;
        let headers: Vec<(String, String)> =
            serde_json::from_str(headers.as_deref().unwrap_or("[]")).map_err(|e| backend_json(e))?;
        Ok(IdempotencyClaim::Replay(StoredResponse {
            status: row.try_get::<i64, _>("status").map_err(backend)? as u16,
            headers,
            body: row.try_get("body").map_err(backend)?,
        }))
    }

    async fn complete_idempotency(&self, scope: &str, key: &str, r: &StoredResponse) -> StoreResult<()> {
        sqlx::query(
            "UPDATE idempotency_keys SET state = 'done', status = ?, headers = ?, body = ? WHERE scope = ? AND key = ?",
        )
        .bind(r.status as i64)
        .bind(serde_json::to_string(&r.headers).map_err(backend_json)?)
        .bind(&r.body)
        .bind(scope)
        .bind(key)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn release_idempotency(&self, scope: &str, key: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM idempotency_keys WHERE scope = ? AND key = ? AND state = 'running'")
            .bind(scope)
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

fn backend_json(e: serde_json::Error) -> crate::store::StoreError {
    crate::store::StoreError::Backend(e.into())
}
