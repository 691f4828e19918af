//! Behavioral analyses under `/api/v1/analytics` (seed 004): funnels and retention cohorts. Each is a
//! value parsed from the request, compiled by its own compiler in
//! `sightline_core::query`, and run like every other query (time limit, row cap).

use super::error::{ApiError, ApiResult};
use super::extract::ApiJson;
use crate::app::AppState;
use crate::auth::{Caller, CanRead};
use crate::service::analytics::{self, problem};
use axum::Json;
use axum::extract::State;
use chrono::Utc;
use serde::Serialize;
use serde_json::Value;
use sightline_core::query::funnel::{Funnel, FunnelAnswer, parse_funnel, shape_funnel};
use sightline_core::query::retention::{RetentionAnswer, parse_retention, shape_retention};

/// A funnel (seed 004).
#[derive(utoipa::ToSchema)]
#[schema(as = FunnelIn, example = json!({"name": "checkout", "steps": [{"name": "viewed", "event": "page_view"}, {"name": "bought", "event": "purchase"}], "date_range": "-30d", "conversion_window": "14d"}))]
#[allow(dead_code)]
pub struct FunnelShape {
    /// At most 200 characters; `funnel` by default.
    name: Option<String>,
    /// 2 to 20 steps, each `{name, event, filters}` (or an event name).
    steps: Vec<Value>,
    /// `{start, end}` or a name such as `this_month`, `last_week` or `-30d`.
    date_range: Option<Value>,
    /// Days as a number, a string such as `14d`, `12h`, or `{value, unit}`; 14 days by default.
    conversion_window: Option<Value>,
    /// `ordered` (the default), `strict` or `any_order`.
    mode: Option<String>,
    /// A field to split conversion by.
    breakdown: Option<String>,
    timezone: Option<String>,
    /// Breakdown values, 1 to 1,000.
    limit: Option<u64>,
}

crate::json_body!(
    /// A funnel (see `FunnelIn`).
    FunnelBody,
    FunnelShape
);

/// Retention cohorts (seed 004).
#[derive(utoipa::ToSchema)]
#[schema(as = CohortsIn, example = json!({"cohort_type": "acquisition", "group_by": "week", "metric": "retention", "date_range": "-90d", "periods": 8}))]
#[allow(dead_code)]
pub struct CohortsShape {
    /// `acquisition`.
    cohort_type: Option<String>,
    /// `day`, `week` (the default) or `month` (alias `period`).
    group_by: Option<String>,
    /// `retention`.
    metric: Option<String>,
    date_range: Option<Value>,
    /// Periods after the first, 1 to 104.
    periods: Option<u32>,
    /// The event that puts a user in a cohort; any event by default.
    start_event: Option<String>,
    /// The event that counts as a return; any event by default.
    return_event: Option<String>,
    timezone: Option<String>,
}

crate::json_body!(
    /// Retention cohorts (see `CohortsIn`).
    CohortsBody,
    CohortsShape
);

/// How long an analysis took and whether its rows were cut.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AnalysisMetadata {
    query_time_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    truncated: Option<bool>,
}

/// A funnel's answer: steps with their users and conversion, and how long it took.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FunnelAnalysis {
    #[serde(flatten)]
    answer: FunnelAnswer,
    metadata: AnalysisMetadata,
}

/// Cohorts with their retention by period, and how long it took.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CohortsAnalysis {
    #[serde(flatten)]
    answer: RetentionAnswer,
    metadata: AnalysisMetadata,
}

/// `POST /funnels`: `{name, steps: [{name, event, filters}], date_range, conversion_window,
/// mode (ordered | strict | any_order), breakdown, timezone}`.
pub async fn funnel(
    caller: Caller<CanRead>,
    State(state): State<AppState>,
    ApiJson(FunnelBody(body)): ApiJson<FunnelBody>,
) -> ApiResult<Json<FunnelAnalysis>> {
    let f = parse_funnel(&body).map_err(problem)?;
    let (range, _) = f.range.resolve(f.tz, Utc::now()).map_err(|m| ApiError::field("date_range", m))?;
    // The whole funnel is its own statement: a breakdown's values may be cut by `limit`,
    // and medians do not add up.
    let whole = Funnel { breakdown: None, ..f.clone() };
    let (tenant, limit) = (&caller.tenant, analytics::time_limit(&state, None));
    let (whole, groups) = match f.breakdown {
        None => (state.engine.funnel(tenant, &whole, range, limit).await?, None),
        Some(_) => {
            let (w, g) = tokio::try_join!(
                state.engine.funnel(tenant, &whole, range, limit),
                state.engine.funnel(tenant, &f, range, limit)
            )?;
            (w, Some(g))
        }
    };
    let answer = shape_funnel(&f, &whole.rows, groups.as_ref().map_or(&[][..], |g| &g.rows), range);
    let elapsed = whole.elapsed.max(groups.as_ref().map_or(Default::default(), |g| g.elapsed));
    let metadata = AnalysisMetadata {
        query_time_ms: elapsed.as_millis() as u64,
        truncated: Some(groups.as_ref().is_some_and(|g| g.truncated)),
    };
    Ok(Json(FunnelAnalysis { answer, metadata }))
}

/// `POST /cohorts`: `{cohort_type: acquisition, group_by: day | week | month, metric:
/// retention, date_range, periods, start_event, return_event, timezone}`.
pub async fn cohorts(
    caller: Caller<CanRead>,
    State(state): State<AppState>,
    ApiJson(CohortsBody(body)): ApiJson<CohortsBody>,
) -> ApiResult<Json<CohortsAnalysis>> {
    let r = parse_retention(&body).map_err(problem)?;
    let now = Utc::now();
    let (range, _) = r.range.resolve(r.tz, now).map_err(|m| ApiError::field("date_range", m))?;
    let out = state.engine.retention(&caller.tenant, &r, range, analytics::time_limit(&state, None)).await?;
    let answer = shape_retention(&r, &out.rows, now);
    let metadata = AnalysisMetadata { query_time_ms: out.elapsed.as_millis() as u64, truncated: None };
    Ok(Json(CohortsAnalysis { answer, metadata }))
}
