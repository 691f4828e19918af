//! Tenants, users and API keys: the rules that span a store call (a tenant's deletion
//! across both stores, a user's password hashed off the runtime, sessions ended with an
//! old password, cached keys forgotten on revocation). The admin panel will call these
//! as the API does.

use super::ingest::write_error;
use crate::app::AppState;
use crate::auth::{api_key, password};
use crate::error::{Error, Result};
use crate::store::{ApiKey, NewApiKey, NewUser, StoreError, Tenant, User, UserChange};
use chrono::{DateTime, Utc};
use sightline_core::code::Code;
use sightline_core::model::{Role, TenantId};

fn no_tenant(id: &TenantId) -> Error {
    Error::not_found(format!("no tenant '{id}'"))
}

fn no_user(id: &str) -> Error {
    Error::not_found(format!("no user with id '{id}'"))
}

pub async fn create_tenant(state: &AppState, id: &TenantId, name: &str) -> Result<Tenant> {
    state.meta.create_tenant(id, name).await.map_err(|e| match e {
        StoreError::Conflict(_) => Error::new(Code::Conflict, format!("a tenant with id '{id}' exists already")),
        e => e.into(),
    })
}

pub async fn rename_tenant(state: &AppState, id: &TenantId, name: &str) -> Result<Tenant> {
    state.meta.rename_tenant(id, name).await?.ok_or_else(|| no_tenant(id))
}

/// Deletes a tenant and everything it owns, in both stores; answers how many events went.
/// `acting` is the tenant the caller stands in, which it may not delete.
pub async fn delete_tenant(state: &AppState, acting: &TenantId, id: &TenantId) -> Result<u64> {
    if id == acting {
        return Err(Error::new(Code::Conflict, "a superuser cannot delete the tenant it acts in"));
    }
    if state.meta.get_tenant(id).await?.is_none() {
        return Err(no_tenant(id));
    }
    // Events first: if that fails the tenant still exists and the delete can be retried.
    let events = state.ingest.delete_tenant(id).await.map_err(write_error)?;
    state.meta.delete_tenant(id).await?;
    state.auth.forget_tenant(id);
    Ok(events)
}

/// Hashes on a blocking thread: a password hash takes tens of milliseconds on purpose.
async fn hash(p: String) -> Result<String> {
    tokio::task::spawn_blocking(move || password::hash(&p)).await.map_err(Error::internal)?.map_err(Error::internal)
}

pub async fn create_user(
    state: &AppState,
    tenant: &TenantId,
    username: &str,
    password: String,
    role: Role,
) -> Result<User> {
    let password_hash = hash(password).await?;
    let new = NewUser { tenant, username, password_hash: &password_hash, role, superuser: false };
    state.meta.create_user(new).await.map_err(|e| match e {
        StoreError::Conflict(_) => Error::new(Code::Conflict, format!("a user named '{username}' exists already")),
        e => e.into(),
    })
}

pub async fn get_user(state: &AppState, tenant: &TenantId, id: &str) -> Result<User> {
    state.meta.get_user(tenant, id).await?.ok_or_else(|| no_user(id))
}

/// Changes a user's role and/or password; a new password ends every session of the old
/// one. `by_self`: the caller is this user, who may not demote itself (the tenant could be
/// left with no one to manage it).
pub async fn update_user(
    state: &AppState,
    tenant: &TenantId,
    id: &str,
    by_self: bool,
    role: Option<Role>,
    password: Option<String>,
) -> Result<User> {
    get_user(state, tenant, id).await?;
    if role.is_some_and(|r| r != Role::Admin) && by_self {
        return Err(Error::new(Code::Conflict, "you cannot change your own role; ask another admin"));
    }
    let password_hash = match password {
        Some(p) => Some(hash(p).await?),
        None => None,
    };
    let changed_password = password_hash.is_some();
    let user =
        state.meta.update_user(tenant, id, UserChange { role, password_hash }).await?.ok_or_else(|| no_user(id))?;
    if changed_password {
        state.meta.revoke_user_sessions(tenant, id).await?;
    }
    Ok(user)
}

pub async fn delete_user(state: &AppState, tenant: &TenantId, id: &str, by_self: bool) -> Result<()> {
    if by_self {
        return Err(Error::new(Code::Conflict, "you cannot delete yourself; ask another admin"));
    }
    if !state.meta.delete_user(tenant, id).await? {
        return Err(no_user(id));
    }
    Ok(())
}

/// A new API key, and its secret (shown once).
pub async fn create_api_key(
    state: &AppState,
    tenant: &TenantId,
    name: &str,
    role: Role,
    expires_at: Option<DateTime<Utc>>,
) -> Result<(ApiKey, String)> {
    let (key, hash) = api_key::generate();
    let new = NewApiKey { tenant, name, prefix: api_key::display_prefix(&key), key_hash: &hash, role, expires_at };
    Ok((state.meta.create_api_key(new).await?, key))
}

/// Revokes a key at once: the authenticator's cache of checked keys is emptied.
pub async fn revoke_api_key(state: &AppState, tenant: &TenantId, id: &str) -> Result<ApiKey> {
    let key = state
        .meta
        .revoke_api_key(tenant, id)
        .await?
        .ok_or_else(|| Error::not_found(format!("no API key with id '{id}'")))?;
    state.auth.keys.clear();
    Ok(key)
}
