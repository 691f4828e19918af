use super::{SqliteMeta, backend, new_id, ts, user_from};
use crate::store::{NewUser, StoreResult, User, UserChange, UserCredential, UserStore};
use async_trait::async_trait;
use chrono::Utc;
use sightline_core::model::TenantId;
use sqlx::Row;

const COLUMNS: &str = "SELECT id, tenant_id, username, role, superuser, created_at, password_hash FROM users";

#[async_trait]
impl UserStore for SqliteMeta {
    async fn create_user(&self, u: NewUser<'_>) -> StoreResult<User> {
        let user = User {
            id: new_id(),
            tenant_id: u.tenant.clone(),
            username: u.username.to_owned(),
            role: u.role,
            superuser: u.superuser,
            created_at: Utc::now(),
        };
        sqlx::query(
            "INSERT INTO users (id, tenant_id, username, password_hash, role, superuser, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&user.id)
        .bind(user.tenant_id.as_str())
        .bind(&user.username)
        .bind(u.password_hash)
        .bind(user.role.as_str())
        .bind(user.superuser as i64)
        .bind(ts(user.created_at))
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(user)
    }

    async fn find_user(&self, tenant: &TenantId, username: &str) -> StoreResult<Option<UserCredential>> {
        let row = sqlx::query(&format!("{COLUMNS} WHERE tenant_id = ? AND username = ?"))
            .bind(tenant.as_str())
            .bind(username)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        let password_hash: String = row.try_get("password_hash").map_err(backend)?;
        Ok(Some(UserCredential { user: user_from(&row)?, password_hash }))
    }

    async fn get_user(&self, tenant: &TenantId, id: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(&format!("{COLUMNS} WHERE tenant_id = ? AND id = ?"))
            .bind(tenant.as_str())
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        Ok(row.as_ref().map(user_from).transpose()?)
    }

    async fn list_users(&self, tenant: &TenantId) -> StoreResult<Vec<User>> {
        let rows = sqlx::query(&format!("{COLUMNS} WHERE tenant_id = ? ORDER BY username"))
            .bind(tenant.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        Ok(rows.iter().map(user_from).collect::<anyhow::Result<_>>()?)
    }

    async fn update_user(&self, tenant: &TenantId, id: &str, change: UserChange) -> StoreResult<Option<User>> {
        sqlx::query(
            "UPDATE users SET role = coalesce(?, role), password_hash = coalesce(?, password_hash) WHERE tenant_id = ? AND id = ?",
        )
        .bind(change.role.map(|r| r.as_str()))
        .bind(change.password_hash)
        .bind(tenant.as_str())
        .bind(id)
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        self.get_user(tenant, id).await
    }

    async fn delete_user(&self, tenant: &TenantId, id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM users WHERE tenant_id = ? AND id = ?")
            .bind(tenant.as_str())
            .bind(id)
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }
}
