//! Behavioral analyses under `/api/v1/analytics` (seed 004): funnels and retention cohorts. Each is a
//! value parsed from the request, compiled by its own compiler in
//! `sightline_core::query`, and run like every other query (time limit, row cap).

use super::error::{ApiError, ApiResult};
use super::extract::ApiJson;
use crate::analytics::{self, problem};
use crate::app::AppState;
use crate::auth::{Caller, CanRead};
use axum::Json;
use axum::extract::State;
use chrono::Utc;
use serde_json::{Value, json};
use sightline_core::query::funnel::{Funnel, compile_funnel, parse_funnel, shape_funnel};
use sightline_core::query::retention::{compile_retention, parse_retention, shape_retention};

/// `POST /funnels`: `{name, steps: [{name, event, filters}], date_range, conversion_window,
/// mode (ordered | strict | any_order), breakdown, timezone}`.
pub async fn funnel(
    caller: Caller<CanRead>,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let f = parse_funnel(&body).map_err(problem)?;
    let (range, _) = f.range.resolve(f.tz, Utc::now()).map_err(|m| ApiError::field("date_range", m))?;
    // The whole funnel is its own statement: a breakdown's values may be cut by `limit`,
    // and medians do not add up.
    let whole = Funnel { breakdown: None, ..f.clone() };
    let whole = compile_funnel(&whole, &caller.tenant, range, &state.property_columns);
    let (whole, groups) = match f.breakdown {
        None => (analytics::run_compiled(&state, whole, None).await?, None),
        Some(_) => {
            let split = compile_funnel(&f, &caller.tenant, range, &state.property_columns);
            let (w, g) = tokio::try_join!(
                analytics::run_compiled(&state, whole, None),
                analytics::run_compiled(&state, split, None)
            )?;
            (w, Some(g))
        }
    };
    let mut answer = shape_funnel(&f, &whole.rows, groups.as_ref().map_or(&[][..], |g| &g.rows), range);
    let elapsed = whole.elapsed.max(groups.as_ref().map_or(Default::default(), |g| g.elapsed));
    answer["metadata"] = json!({
        "query_time_ms": elapsed.as_millis() as u64,
        "truncated": groups.as_ref().is_some_and(|g| g.truncated),
    });
    Ok(Json(answer))
}

/// `POST /cohorts`: `{cohort_type: acquisition, group_by: day | week | month, metric:
/// retention, date_range, periods, start_event, return_event, timezone}`.
pub async fn cohorts(
    caller: Caller<CanRead>,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let r = parse_retention(&body).map_err(problem)?;
    let now = Utc::now();
    let (range, _) = r.range.resolve(r.tz, now).map_err(|m| ApiError::field("date_range", m))?;
    let compiled = compile_retention(&r, &caller.tenant, range);
    let out = analytics::run_compiled(&state, compiled, None).await?;
    let mut answer = shape_retention(&r, &out.rows, now);
    answer["metadata"] = json!({"query_time_ms": out.elapsed.as_millis() as u64});
    Ok(Json(answer))
}
