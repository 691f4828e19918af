//! `/api/v1/tenants`: superusers manage tenants. Deleting one deletes all its data, in
//! both stores.

use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiPath, ClientIp};
use crate::app::AppState;
use crate::auth::{Caller, IsSuperuser};
use crate::service::accounts;
use crate::service::audit;
use crate::store::Tenant;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sightline_core::code::FieldError;
use sightline_core::model::TenantId;

/// A tenant to create (`name`, optional `id`) or a new name.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantBody {
    /// 1 to 200 characters.
    name: Option<String>,
    /// 1 to 64 of `[A-Za-z0-9_.-]`; a UUID when left out. Cannot change later.
    id: Option<String>,
}

/// Every tenant.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TenantList {
    data: Vec<Tenant>,
}

/// What a tenant's deletion removed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TenantDeleted {
    /// The tenant's id.
    deleted: String,
    /// Events removed with it.
    events_deleted: u64,
}

fn check_name(name: Option<String>) -> Result<String, FieldError> {
    let n = name.unwrap_or_default().trim().to_owned();
    if n.is_empty() || n.chars().count() > 200 {
        return Err(FieldError::new("name", "name must have 1 to 200 characters"));
    }
    Ok(n)
}

fn parse_id(id: &str) -> ApiResult<TenantId> {
    // An id that cannot exist names no tenant.
    TenantId::parse(id).map_err(|_| ApiError::not_found(format!("no tenant '{id}'")))
}

pub async fn create(
    caller: Caller<IsSuperuser>,
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(b): ApiJson<TenantBody>,
) -> ApiResult<(StatusCode, Json<Tenant>)> {
    let name = check_name(b.name).map_err(|e| ApiError::invalid(vec![e]))?;
    let id = match b.id.as_deref() {
        Some(s) => TenantId::parse(s).map_err(|e| ApiError::field("id", e))?,
        None => TenantId::parse(&uuid::Uuid::now_v7().to_string()).expect("a uuid is a tenant id"),
    };
    let t = accounts::create_tenant(&state, &id, &name).await?;
    audit::record(
        &state,
        &caller.tenant,
        &audit::actor(&caller),
        "tenant.create",
        Some(id.as_str()),
        &ip,
        json!({"name": name}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(t)))
}

pub async fn list(_caller: Caller<IsSuperuser>, State(state): State<AppState>) -> ApiResult<Json<TenantList>> {
    Ok(Json(TenantList { data: state.meta.list_tenants().await? }))
}

pub async fn get(
    _caller: Caller<IsSuperuser>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Tenant>> {
    let tid = parse_id(&id)?;
    state.meta.get_tenant(&tid).await?.map(Json).ok_or_else(|| ApiError::not_found(format!("no tenant '{id}'")))
}

pub async fn rename(
    caller: Caller<IsSuperuser>,
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiPath(id): ApiPath<String>,
    ApiJson(b): ApiJson<TenantBody>,
) -> ApiResult<Json<Tenant>> {
    if b.id.is_some() {
        return Err(ApiError::field("id", "a tenant's id cannot change"));
    }
    let name = check_name(b.name).map_err(|e| ApiError::invalid(vec![e]))?;
    let tid = parse_id(&id)?;
    let t = accounts::rename_tenant(&state, &tid, &name).await?;
    audit::record(
        &state,
        &caller.tenant,
        &audit::actor(&caller),
        "tenant.rename",
        Some(&id),
        &ip,
        json!({"name": name}),
    )
    .await;
    Ok(Json(t))
}

pub async fn delete(
    caller: Caller<IsSuperuser>,
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<TenantDeleted>> {
    let tid = parse_id(&id)?;
    let events = accounts::delete_tenant(&state, &caller.tenant, &tid).await?;
    let details = json!({ "events_deleted": events });
    audit::record(&state, &caller.tenant, &audit::actor(&caller), "tenant.delete", Some(&id), &ip, details).await;
    Ok(Json(TenantDeleted { deleted: id, events_deleted: events as u64 }))
}
