//! A tenant's own metric definitions (seed 004) at `/api/v1/analytics/custom-metrics`,
//! by name. A definition is checked on save: it parses, every name it uses resolves, it
//! does not reach itself, and no divisor is the constant 0.

use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiPath};
use crate::analytics::{TenantCatalog, problem};
use crate::app::AppState;
use crate::auth::{Caller, CanAuthor, CanRead};
use crate::store::{CustomMetric, StoreError};
use axum::Json;
use axum::extract::State;
use chrono::SecondsFormat;
use serde_json::{Value, json};
use sightline_core::code::{Code, FieldError};
use sightline_core::model::TenantId;
use sightline_core::query::custom::{check_resolves, parse_custom_metric};
use sightline_core::query::metric::{BUILTINS, Definition};

/// Most custom metrics a tenant may keep.
pub const MAX_PER_TENANT: usize = 500;

fn metric_json(c: &CustomMetric) -> Value {
    let mut v = c.spec.clone();
    v["created_at"] = json!(c.created_at.to_rfc3339_opts(SecondsFormat::Secs, true));
    v["updated_at"] = json!(c.updated_at.to_rfc3339_opts(SecondsFormat::Secs, true));
    v
}

/// Parses `body` and checks it against the tenant's other definitions (as they would be
/// after the save); answers the normalized spec.
async fn checked(
    state: &AppState,
    tenant: &TenantId,
    body: &Value,
    path_name: Option<&str>,
) -> ApiResult<(String, Value)> {
    let m = parse_custom_metric(body, path_name).map_err(ApiError::invalid)?;
    let mut catalog = TenantCatalog::load(state, tenant).await?;
    catalog.customs.insert(m.name.clone(), m.definition.clone());
    if let Err(msg) = check_resolves(&m.name, &catalog) {
        if !msg.starts_with("unknown metric") {
            return Err(problem(vec![FieldError::new("calculation", msg)]));
        }
        catalog.load_records(state, tenant).await?;
        check_resolves(&m.name, &catalog).map_err(|msg| problem(vec![FieldError::new("calculation", msg)]))?;
    }
    Ok((m.name, m.spec))
}

/// `GET /custom-metrics`: the tenant's definitions, and the built-ins every tenant has.
pub async fn list(caller: Caller<CanRead>, State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let own: Vec<Value> = state.meta.list_custom_metrics(&caller.tenant).await?.iter().map(metric_json).collect();
    let builtin: Vec<Value> =
        BUILTINS.iter().map(|b| json!({"metric_name": b.name, "description": b.description})).collect();
    Ok(Json(json!({"data": own, "builtin": builtin})))
}

/// `POST /custom-metrics`.
pub async fn create(
    caller: Caller<CanAuthor>,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(axum::http::StatusCode, Json<Value>)> {
    let (name, spec) = checked(&state, &caller.tenant, &body, None).await?;
    if state.meta.list_custom_metrics(&caller.tenant).await?.len() >= MAX_PER_TENANT {
        return Err(ApiError::new(
            Code::Unprocessable,
            format!("a tenant keeps at most {MAX_PER_TENANT} custom metrics"),
        ));
    }
    let saved = state.meta.create_custom_metric(&caller.tenant, &name, &spec).await.map_err(|e| match e {
        StoreError::Conflict(_) => {
            ApiError::new(Code::Conflict, format!("a custom metric named '{name}' exists already"))
        }
        other => other.into(),
    })?;
    Ok((axum::http::StatusCode::CREATED, Json(metric_json(&saved))))
}

/// `GET /custom-metrics/{name}`.
pub async fn get(
    caller: Caller<CanRead>,
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    match state.meta.get_custom_metric(&caller.tenant, &name).await? {
        Some(c) => Ok(Json(metric_json(&c))),
        None => Err(ApiError::not_found(format!("no custom metric named '{name}'"))),
    }
}

/// `PUT /custom-metrics/{name}`: replaces the definition.
pub async fn replace(
    caller: Caller<CanAuthor>,
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    if state.meta.get_custom_metric(&caller.tenant, &name).await?.is_none() {
        return Err(ApiError::not_found(format!("no custom metric named '{name}'")));
    }
    let (_, spec) = checked(&state, &caller.tenant, &body, Some(&name)).await?;
    match state.meta.update_custom_metric(&caller.tenant, &name, &spec).await? {
        Some(c) => Ok(Json(metric_json(&c))),
        None => Err(ApiError::not_found(format!("no custom metric named '{name}'"))),
    }
}

/// `DELETE /custom-metrics/{name}`: refused (409) while another definition uses it.
pub async fn delete(
    caller: Caller<CanAuthor>,
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let catalog = TenantCatalog::load(&state, &caller.tenant).await?;
    let mut users: Vec<&String> = catalog
        .customs
        .iter()
        .filter(|(n, d)| *n != &name && matches!(d, Definition::Formula(f) if f.refs().contains(&name.as_str())))
        .map(|(n, _)| n)
        .collect();
    users.sort();
    if !users.is_empty() {
        let list: Vec<&str> = users.iter().map(|s| s.as_str()).collect();
        return Err(ApiError::new(
            Code::Conflict,
            format!("'{name}' is used by {}; change or delete those first", list.join(", ")),
        ));
    }
    if state.meta.delete_custom_metric(&caller.tenant, &name).await? {
        Ok(Json(json!({"message": "Custom metric deleted successfully", "metric_name": name})))
    } else {
        Err(ApiError::not_found(format!("no custom metric named '{name}'")))
    }
}
