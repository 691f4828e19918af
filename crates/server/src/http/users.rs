//! `/api/v1/users`: a tenant's admin manages its users.

use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiPath, ClientIp};
use crate::app::AppState;
use crate::auth::{Caller, CanManage};
use crate::service::accounts;
use crate::service::audit;
use crate::store::User;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sightline_core::code::FieldError;
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
    let user = accounts::create_user(&state, &caller.tenant, &username, password, role.expect("checked")).await?;
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

pub async fn get(
    caller: Caller<CanManage>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<User>> {
    Ok(Json(accounts::get_user(&state, &caller.tenant, &id).await?))
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
    let changed_password = b.password.is_some();
    let user = accounts::update_user(&state, &caller.tenant, &id, is_self(&caller, &id), role, b.password).await?;
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
    accounts::delete_user(&state, &caller.tenant, &id, is_self(&caller, &id)).await?;
    audit::record(&state, &caller.tenant, &audit::actor(&caller), "user.delete", Some(&id), &ip, json!({})).await;
    Ok(StatusCode::NO_CONTENT)
}
