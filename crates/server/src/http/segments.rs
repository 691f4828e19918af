//! A tenant's user segments at `/api/v1/analytics/segments` (seed 004): a name and
//! conditions on computed user fields (`sightline_core::query::segment` lists them). Every
//! answer counts the members now; `/segments/{id}/members` lists them.

use super::error::{ApiError, ApiResult};
use super::extract::{ApiPath, ApiQuery};
use super::resource::{self, Resource};
use crate::app::AppState;
use crate::auth::{Caller, CanRead};
use crate::engine::SegmentMember;
use crate::store::Page;
use crate::store::StoredResource;
use axum::Json;
use axum::extract::State;
use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sightline_core::code::FieldError;
use sightline_core::model::TenantId;
use sightline_core::query::segment::parse_conditions;

pub const MAX_SEGMENTS: usize = 200;

/// A user segment to save.
#[derive(utoipa::ToSchema)]
#[schema(as = SegmentIn, example = json!({"segment_name": "buyers", "conditions": [{"field": "total_purchases", "operator": "gt", "value": 0}]}))]
#[allow(dead_code)]
pub struct SegmentShape {
    /// 1 to 200 characters, unique in the tenant (alias `name`).
    segment_name: String,
    /// Conditions on computed user fields (`total_events`, `total_sessions`,
    /// `total_purchases`, `total_spent`, `total_messages`, `first_seen`, `last_active`,
    /// `days_since_last_active`, `previous_activity`), each `{field, operator, value}`,
    /// with `and`/`or`.
    conditions: Value,
}

crate::json_body!(
    /// A user segment (see `SegmentIn`).
    SegmentBody,
    SegmentShape
);

/// A user segment, with its member count now.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SegmentOut {
    id: String,
    segment_name: String,
    /// As saved: one condition, a list, or `{and|or: [...]}`.
    conditions: Value,
    member_count: u64,
    created_at: String,
    updated_at: String,
}

/// The tenant's segments, by name.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SegmentList {
    data: Vec<SegmentOut>,
}

/// The tenant's user segments (seed 004).
pub struct Segments;

impl Resource for Segments {
    const KIND: &'static str = "segment";
    const NOUN: &'static str = "segment";
    const PLURAL: &'static str = "segments";
    const TAG: &'static str = "segments";
    const MAX_PER_TENANT: usize = MAX_SEGMENTS;
    const UNIQUE_NAME: bool = true;
    const DELETED: &'static str = "Segment deleted successfully";
    type Body = SegmentBody;
    type Answer = SegmentOut;
    type List = SegmentList;

    async fn parse(
        _: &AppState,
        _: &TenantId,
        SegmentBody(body): SegmentBody,
        _: Option<&str>,
    ) -> ApiResult<(String, Value)> {
        let (name, conditions) = parse_body(&body)?;
        Ok((name, json!({ "conditions": conditions })))
    }

    async fn present(state: &AppState, tenant: &TenantId, r: StoredResource) -> ApiResult<SegmentOut> {
        let conditions = r.body.get("conditions").cloned().unwrap_or(Value::Null);
        Ok(SegmentOut {
            member_count: member_count(state, tenant, &conditions).await?,
            id: r.id,
            segment_name: r.name,
            conditions,
            created_at: r.created_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            updated_at: r.updated_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        })
    }

    fn list(data: Vec<SegmentOut>) -> SegmentList {
        SegmentList { data }
    }

    fn sort(items: &mut [StoredResource]) {
        items.sort_by(|a, b| a.name.cmp(&b.name));
    }
}

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

async fn member_count(state: &AppState, tenant: &TenantId, conditions: &Value) -> ApiResult<u64> {
    let now = Utc::now();
    let conds = parse_conditions(conditions, now).map_err(ApiError::invalid)?;
    let limit = crate::service::analytics::time_limit(state, None);
    Ok(state.engine.segment_summary(tenant, &conds, now, limit).await?.members)
}

/// A page of a segment's members.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MemberParams {
    /// 1 to 1,000; 100 by default.
    limit: Option<usize>,
    skip: Option<usize>,
}

/// A page of a segment's members, most recently active first, each with its computed
/// fields.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Members {
    segment_id: String,
    segment_name: String,
    data: Vec<SegmentMember>,
}

/// `GET /segments/{id}/members`: most recently active first, with their fields.
pub async fn members(
    caller: Caller<CanRead>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(p): ApiQuery<MemberParams>,
) -> ApiResult<Json<Members>> {
    let limit = p.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::field("limit", "limit is 1 to 1000"));
    }
    let s = resource::one::<Segments>(&state, &caller.tenant, &id).await?;
    let now = Utc::now();
    let conds = parse_conditions(&s.body["conditions"], now).map_err(ApiError::invalid)?;
    let page = Page { limit: limit as u64, offset: p.skip.unwrap_or(0) as u64 };
    let time_limit = crate::service::analytics::time_limit(&state, None);
    let data = state.engine.segment_members(&caller.tenant, &conds, now, page, time_limit).await?;
    Ok(Json(Members { segment_id: s.id, segment_name: s.name, data }))
}
