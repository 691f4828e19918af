//! Seed 004's `GET /api/v1/analytics/users/{user_id}/analytics`: one user's sessions,
//! messages, satisfaction and topics in a date range, and their engagement as of now
//! (`sightline_core::query::user` says who counts).

use super::error::{ApiError, ApiResult};
use super::extract::{ApiPath, ApiQuery};
use crate::app::AppState;
use crate::auth::{Caller, CanRead};
use crate::engine::UserQuery;
use axum::Json;
use axum::extract::State;
use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sightline_core::code::FieldError;
use sightline_core::query::time::{Bound, DateRange, Named, Unit, parse_bound, parse_tz};
use sightline_core::query::user::churn_risk;

const METRICS: [&str; 6] = [
    "total_sessions",
    "total_messages",
    "average_session_duration",
    "last_active",
    "satisfaction_score",
    "topics_discussed",
];

/// The range and the metrics to compute.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Params {
    /// `YYYY-MM-DD`, RFC 3339 or relative (`-30d`); 30 days ago by default.
    start_date: Option<String>,
    /// Now by default.
    end_date: Option<String>,
    /// Comma-separated: `total_sessions`, `total_messages`, `average_session_duration`,
    /// `last_active`, `satisfaction_score`, `topics_discussed`; all by default.
    metrics: Option<String>,
    timezone: Option<String>,
}

/// How engaged the user is now.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Engagement {
    /// Active today.
    daily_active: bool,
    /// Active days in the last 30, over 30.
    retention_30d: f64,
    /// `low`, `medium` or `high`.
    churn_risk: &'static str,
}

/// One user's analytics (seed 004).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserAnalytics {
    user_id: String,
    /// The metrics asked for, by name.
    metrics: Map<String, Value>,
    engagement: Engagement,
    date_range: super::query::Span,
}

pub async fn analytics(
    caller: Caller<CanRead>,
    State(state): State<AppState>,
    ApiPath(user): ApiPath<String>,
    ApiQuery(p): ApiQuery<Params>,
) -> ApiResult<Json<UserAnalytics>> {
    let mut errors = Vec::new();
    let tz = match &p.timezone {
        None => chrono_tz::Tz::UTC,
        Some(t) => parse_tz(t, "timezone").unwrap_or_else(|e| {
            errors.push(e);
            chrono_tz::Tz::UTC
        }),
    };
    let mut bound = |v: &Option<String>, field: &str, default: Bound| match v.as_deref().filter(|s| !s.is_empty()) {
        None => default,
        Some(s) => parse_bound(s, field).unwrap_or_else(|e| {
            errors.push(e);
            default
        }),
    };
    let start = bound(&p.start_date, "start_date", Bound::Ago(30, Unit::Day));
    let end = bound(&p.end_date, "end_date", Bound::Now);
    let wanted: Vec<String> = match p.metrics.as_deref().filter(|m| !m.trim().is_empty()) {
        None => METRICS.iter().map(|m| (*m).to_owned()).collect(),
        Some(list) => list.split(',').map(|m| m.trim().to_owned()).collect(),
    };
    for m in &wanted {
        if !METRICS.contains(&m.as_str()) {
            errors.push(FieldError::new("metrics", format!("unknown metric '{m}'; use any of {}", METRICS.join(", "))));
        }
    }
    if user.is_empty() || user.chars().count() > 200 {
        errors.push(FieldError::new("user_id", "user_id has 1 to 200 characters"));
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let now = Utc::now();
    let (w, _) = DateRange::Between(start, end).resolve(tz, now).map_err(|m| ApiError::field("end_date", m))?;
    let (today, _) = DateRange::Named(Named::Today).resolve(tz, now).map_err(ApiError::internal)?;
    let (days30, _) =
        DateRange::Between(Bound::Ago(30, Unit::Day), Bound::Now).resolve(tz, now).map_err(ApiError::internal)?;
    // The last 30 local days with today whole: an event stamped later today counts.
    let days30 = sightline_core::query::time::Window { start: days30.start, end: today.end };
    let limit = crate::service::analytics::time_limit(&state, None);
    let q = UserQuery { user_id: user.clone(), window: w, days30, today, now, tz };
    let Some(f) = state.engine.user(&caller.tenant, &q, limit).await? else {
        return Err(ApiError::not_found(format!("no events of user '{user}'")));
    };
    let mut all = Map::new();
    all.insert("total_sessions".into(), json!(f.sessions));
    all.insert("average_session_duration".into(), json!(f.average_session_secs.map_or(0, |x| x.round() as i64)));
    all.insert("total_messages".into(), json!(f.messages));
    all.insert("last_active".into(), json!(f.last_active.as_ref().map(crate::engine::rfc3339)));
    all.insert("satisfaction_score".into(), json!(f.satisfaction.map(|x| (x * 100.0).round() / 100.0)));
    all.insert("topics_discussed".into(), json!(f.topics));
    let metrics: Map<String, Value> = all.into_iter().filter(|(k, _)| wanted.contains(k)).collect();
    Ok(Json(UserAnalytics {
        user_id: user,
        metrics,
        engagement: Engagement {
            daily_active: f.active_today,
            retention_30d: (f.active_days_30 as f64 / 30.0 * 10000.0).round() / 10000.0,
            churn_risk: churn_risk(f.active_days_30, f.active_7d, f.active_14d),
        },
        date_range: super::query::Span {
            start: w.start.to_rfc3339_opts(SecondsFormat::Secs, true),
            end: w.end.to_rfc3339_opts(SecondsFormat::Secs, true),
        },
    }))
}
