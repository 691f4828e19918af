use super::{SqliteMeta, backend, ts};
use crate::store::{IdempotencyClaim, IdempotencyStore, StoreResult, StoredResponse};
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use sqlx::Row;

static PURGE_TICK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

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
        // Now and then, expired entries go; most claims do not pay for it.
        if PURGE_TICK.fetch_add(1, std::sync::atomic::Ordering::Relaxed).is_multiple_of(1000) {
            sqlx::query("DELETE FROM idempotency_keys WHERE expires_at <= ?")
                .bind(ts(now))
                .execute(&self.writer)
                .await
                .map_err(backend)?;
        }
        // One statement decides: a first use inserts; an expired entry, or a claim
        // abandoned by a crash, is taken over; anything else stays, and of concurrent
        // first uses exactly one wins.
        let claimed = sqlx::query(
            "INSERT INTO idempotency_keys (scope, key, fingerprint, state, created_at, expires_at) VALUES (?1, ?2, ?3, 'running', ?4, ?5) \
             ON CONFLICT (scope, key) DO UPDATE SET fingerprint = excluded.fingerprint, state = 'running', status = NULL, \
             headers = NULL, body = NULL, created_at = excluded.created_at, expires_at = excluded.expires_at \
             WHERE idempotency_keys.expires_at <= ?4 OR (idempotency_keys.state = 'running' AND idempotency_keys.created_at <= ?6)",
        )
        .bind(scope)
        .bind(key)
        .bind(fingerprint)
        .bind(ts(now))
        .bind(ts(now + ttl))
        .bind(ts(now - stale))
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        if claimed.rows_affected() == 1 {
            return Ok(IdempotencyClaim::Claimed);
        }
        let row = sqlx::query(
            "SELECT fingerprint, state, status, headers, body FROM idempotency_keys WHERE scope = ? AND key = ?",
        )
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
        let state: String = row.try_get("state").map_err(backend)?;
        if state == "running" {
            return Ok(IdempotencyClaim::InProgress);
        }
        let headers: Option<String> = row.try_get("headers").map_err(backend)?;
        let headers: Vec<(String, String)> =
            serde_json::from_str(headers.as_deref().unwrap_or("[]")).map_err(backend_json)?;
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
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn release_idempotency(&self, scope: &str, key: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM idempotency_keys WHERE scope = ? AND key = ? AND state = 'running'")
            .bind(scope)
            .bind(key)
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

fn backend_json(e: serde_json::Error) -> crate::store::StoreError {
    crate::store::StoreError::Backend(e.into())
}
