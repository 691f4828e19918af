//! `/api/v1/users`: a tenant's admin manages its users.

use super::audit;
use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiPath, ClientIp};
use crate::app::AppState;
use crate::auth::{Caller, CanManage, password};
use crate::store::{NewUser, StoreError, User, UserChange};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sightline_core::code::{Code, FieldError};
use sightline_core::model::Role;

pub const MIN_PASSWORD: usize = 8;
pub const MAX_PASSWORD: usize = 1024;

/// A user to create.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserBody {
    /// 1 to 150 characters, unique in the tenant.
    username: Option<String>,
    /// At least 8 characters.
    password: Option<String>,
    /// `admin`, `analyst`, `viewer` or `ingest`.
    role: Option<String>,
}

/// What to change of a user: a new password (ends the user's sign-ins) and/or a role.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    password: Option<String>,
    role: Option<String>,
}

/// The tenant's users.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserList {
    data: Vec<User>,
}

fn check_password(p: &str, errors: &mut Vec<FieldError>) {
    if p.chars().count() < MIN_PASSWORD {
        errors.push(FieldError::new("password", format!("password must have at least {MIN_PASSWORD} characters")));
    } else if p.len() > MAX_PASSWORD {
        errors.push(FieldError::new("password", format!("password must have at most {MAX_PASSWORD} bytes")));
    }
}

fn check_role(r: &str, errors: &mut Vec<FieldError>) -> Option<Role> {
    Role::parse(r).map_err(|e| errors.push(FieldError::new("role", e))).ok()
}

async fn hash(p: String) -> ApiResult<String> {
    tokio::task::spawn_blocking(move || password::hash(&p))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

pub async fn create(
    caller: Caller<CanManage>,
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(b): ApiJson<NewUserBody>,
) -> ApiResult<(StatusCode, Json<User>)> {
    let mut errors = Vec::new();
    let username = b.username.unwrap_or_default().trim().to_owned();
    if username.is_empty() || username.chars().count() > 150 {
        errors.push(FieldError::new("username", "username must have 1 to 150 characters"));
    }
    let password = b.password.unwrap_or_default();
    check_password(&password, &mut errors);
    let role = match b.role.as_deref() {
        None => {
            errors.push(FieldError::new("role", "role is required: admin, analyst, viewer or ingest"));
            None
        }
        Some(r) => check_role(r, &mut errors),
    };
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let password_hash = hash(password).await?;
    let user = state
        .meta
        .create_user(NewUser {
            tenant: &caller.tenant,
            username: &username,
            password_hash: &password_hash,
            role: role.expect("checked"),
            superuser: false,
        })
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => {
                ApiError::new(Code::Conflict, format!("a user named '{username}' exists already"))
            }
            e => e.into(),
        })?;
    let details = json!({ "username": user.username, "role": user.role });
    audit::record(&state, &caller.tenant, &audit::actor(&caller), "user.create", Some(&user.id), &ip, details).await;
    Ok((StatusCode::CREATED, Json(user)))
}

pub async fn list(caller: Caller<CanManage>, State(state): State<AppState>) -> ApiResult<Json<UserList>> {
    Ok(Json(UserList { data: state.meta.list_users(&caller.tenant).await? }))
}

/// Whether `id` is the signed-in caller's own user.
fn is_self(caller: &crate::auth::Principal, id: &str) -> bool {
    caller.via == crate::auth::AuthMethod::Password && caller.subject == id
}

fn no_user(id: &str) -> ApiError {
    ApiError::not_found(format!("no user with id '{id}'"))
}

pub async fn get(
    caller: Caller<CanManage>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<User>> {
    state.meta.get_user(&caller.tenant, &id).await?.map(Json).ok_or_else(|| no_user(&id))
}

pub async fn update(
    caller: Caller<CanManage>,
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiPath(id): ApiPath<String>,
    ApiJson(b): ApiJson<UserPatch>,
) -> ApiResult<Json<User>> {
    let mut errors = Vec::new();
    if let Some(p) = &b.password {
        check_password(p, &mut errors);
    }
    let role = b.role.as_deref().and_then(|r| check_role(r, &mut errors));
    if b.password.is_none() && b.role.is_none() {
        errors.push(FieldError::new("body", "nothing to change: send password and/or role"));
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    if state.meta.get_user(&caller.tenant, &id).await?.is_none() {
        return Err(no_user(&id));
    }
    // An admin who demotes itself may leave the tenant with no one to manage it.
    if role.is_some_and(|r| r != Role::Admin) && is_self(&caller, &id) {
        return Err(ApiError::new(Code::Conflict, "you cannot change your own role; ask another admin"));
    }
    let password_hash = match b.password.clone() {
        Some(p) => Some(hash(p).await?),
        None => None,
    };
    let changed_password = password_hash.is_some();
    let user = state
        .meta
        .update_user(&caller.tenant, &id, UserChange { role, password_hash })
        .await?
        .ok_or_else(|| no_user(&id))?;
    if changed_password {
        // A new password ends every session of the old one.
        state.meta.revoke_user_sessions(&caller.tenant, &id).await?;
    }
    let details = json!({ "role": role, "password_changed": changed_password });
    audit::record(&state, &caller.tenant, &audit::actor(&caller), "user.update", Some(&id), &ip, details).await;
    Ok(Json(user))
}

pub async fn delete(
    caller: Caller<CanManage>,
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    if is_self(&caller, &id) {
        return Err(ApiError::new(Code::Conflict, "you cannot delete yourself; ask another admin"));
    }
    if !state.meta.delete_user(&caller.tenant, &id).await? {
        return Err(no_user(&id));
    }
    audit::record(&state, &caller.tenant, &audit::actor(&caller), "user.delete", Some(&id), &ip, json!({})).await;
    Ok(StatusCode::NO_CONTENT)
}
