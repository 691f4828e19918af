//! A tenant's user segments at `/api/v1/analytics/segments` (seed 004): a name and
//! conditions on computed user fields (`sightline_core::query::segment` lists them). Every
//! answer counts the members now; `/segments/{id}/members` lists them.

use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::app::AppState;
use crate::auth::{Caller, CanAuthor, CanRead};
use crate::store::{Segment, StoreError};
use axum::Json;
use axum::extract::State;
use chrono::{SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sightline_core::code::{Code, FieldError};
use sightline_core::model::TenantId;
use sightline_core::query::segment::{count_sql, members_sql, parse_conditions};

pub const MAX_SEGMENTS: usize = 200;

/// Reads `{segment_name (or name), conditions}`.
fn parse_body(body: &Value) -> ApiResult<(String, Value)> {
    let mut errors = Vec::new();
    let name = match body.get("segment_name").or(body.get("name")) {
        Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 200 => Some(s.trim().to_owned()),
        _ => {
            errors.push(FieldError::new("segment_name", "segment_name is required: 1 to 200 characters"));
            None
        }
    };
    let conditions = body.get("conditions").cloned().unwrap_or(Value::Null);
    if let Err(e) = parse_conditions(&conditions, Utc::now()) {
        errors.extend(e);
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    Ok((name.expect("checked"), conditions))
}

async fn member_count(state: &AppState, tenant: &TenantId, s: &Segment) -> ApiResult<u64> {
    let conds = parse_conditions(&s.conditions, Utc::now()).map_err(ApiError::invalid)?;
    let (sql, params) = count_sql(tenant, &conds, Utc::now());
    let out = state.queries.run_sql(&sql, params, crate::analytics::time_limit(state, None), 1).await?;
    Ok(out.rows.first().and_then(|r| r.first()).and_then(Value::as_u64).unwrap_or(0))
}

async fn segment_json(state: &AppState, tenant: &TenantId, s: &Segment) -> ApiResult<Value> {
    Ok(json!({
        "id": s.id,
        "segment_name": s.name,
        "conditions": s.conditions,
        "member_count": member_count(state, tenant, s).await?,
        "created_at": s.created_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        "updated_at": s.updated_at.to_rfc3339_opts(SecondsFormat::Secs, true),
    }))
}

fn conflict(name: &str) -> impl Fn(StoreError) -> ApiError + '_ {
    move |e| match e {
        StoreError::Conflict(_) => ApiError::new(Code::Conflict, format!("a segment named '{name}' exists already")),
        other => other.into(),
    }
}

pub async fn list(caller: Caller<CanRead>, State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let mut out = Vec::new();
    for s in state.meta.list_segments(&caller.tenant).await? {
        out.push(segment_json(&state, &caller.tenant, &s).await?);
    }
    Ok(Json(json!({"data": out})))
}

pub async fn create(
    caller: Caller<CanAuthor>,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(axum::http::StatusCode, Json<Value>)> {
    let (name, conditions) = parse_body(&body)?;
    if state.meta.list_segments(&caller.tenant).await?.len() >= MAX_SEGMENTS {
        return Err(ApiError::new(Code::Unprocessable, format!("a tenant keeps at most {MAX_SEGMENTS} segments")));
    }
    let now = Utc::now();
    let s = Segment {
        id: uuid::Uuid::now_v7().to_string(),
        name: name.clone(),
        conditions,
        created_at: now,
        updated_at: now,
    };
    state.meta.create_segment(&caller.tenant, &s).await.map_err(conflict(&name))?;
    Ok((axum::http::StatusCode::CREATED, Json(segment_json(&state, &caller.tenant, &s).await?)))
}

pub async fn get(
    caller: Caller<CanRead>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    match state.meta.get_segment(&caller.tenant, &id).await? {
        Some(s) => Ok(Json(segment_json(&state, &caller.tenant, &s).await?)),
        None => Err(ApiError::not_found(format!("no segment with id '{id}'"))),
    }
}

pub async fn replace(
    caller: Caller<CanAuthor>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let Some(old) = state.meta.get_segment(&caller.tenant, &id).await? else {
        return Err(ApiError::not_found(format!("no segment with id '{id}'")));
    };
    let (name, conditions) = parse_body(&body)?;
    let s = Segment { name: name.clone(), conditions, updated_at: Utc::now(), ..old };
    state.meta.replace_segment(&caller.tenant, &s).await.map_err(conflict(&name))?;
    Ok(Json(segment_json(&state, &caller.tenant, &s).await?))
}

pub async fn delete(
    caller: Caller<CanAuthor>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    if state.meta.delete_segment(&caller.tenant, &id).await? {
        Ok(Json(json!({"message": "Segment deleted successfully", "id": id})))
    } else {
        Err(ApiError::not_found(format!("no segment with id '{id}'")))
    }
}

#[derive(Debug, Deserialize)]
pub struct MemberParams {
    limit: Option<usize>,
    skip: Option<usize>,
}

/// `GET /segments/{id}/members`: most recently active first, with their fields.
pub async fn members(
    caller: Caller<CanRead>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(p): ApiQuery<MemberParams>,
) -> ApiResult<Json<Value>> {
    let limit = p.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::field("limit", "limit is 1 to 1000"));
    }
    let Some(s) = state.meta.get_segment(&caller.tenant, &id).await? else {
        return Err(ApiError::not_found(format!("no segment with id '{id}'")));
    };
    let now = Utc::now();
    let conds = parse_conditions(&s.conditions, now).map_err(ApiError::invalid)?;
    let (sql, params) = members_sql(&caller.tenant, &conds, now, limit, p.skip.unwrap_or(0));
    let out = state.queries.run_sql(&sql, params, crate::analytics::time_limit(&state, None), limit).await?;
    let data: Vec<Value> = out
        .rows
        .into_iter()
        .map(|r| Value::Object(out.columns.iter().cloned().zip(r).collect::<Map<String, Value>>()))
        .collect();
    Ok(Json(json!({"segment_id": s.id, "segment_name": s.name, "data": data})))
}
