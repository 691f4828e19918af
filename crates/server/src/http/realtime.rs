//! Seed 004's `GET /api/v1/analytics/realtime`: the last 5 minutes against the same
//! minutes a day earlier, and a traffic alert when the last 5 minutes are far from the
//! usual (`sightline_core::query::realtime` says who counts), and the tenant's alert
//! rules that hold (`/api/v1/analytics/alerts`).

use super::error::ApiResult;
use crate::app::AppState;
use crate::auth::{Caller, CanRead};
use axum::Json;
use axum::extract::State;
use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};
use sightline_core::query::answer::number;
use sightline_core::query::realtime::{WINDOW_MINUTES, change, realtime_sql, traffic_alert};

pub async fn realtime(caller: Caller<CanRead>, State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let now = Utc::now();
    let (sql, params) = realtime_sql(&caller.tenant, now);
    let limit = crate::analytics::time_limit(&state, None);
    let answer = state.queries.run_sql(&sql, params, limit, 3).await?;
    let row = |name: &str| answer.rows.iter().find(|r| r.first().and_then(Value::as_str) == Some(name)).cloned();
    let (cur, prev, base) = (row("current").unwrap_or_default(), row("previous").unwrap_or_default(), row("baseline"));
    let at = |r: &Vec<Value>, i: usize| r.get(i).and_then(Value::as_f64);
    let per_minute = at(&cur, 3).map(|m| (m / WINDOW_MINUTES as f64 * 100.0).round() / 100.0);
    let mut alerts = super::alerts::firing(&state, &caller.tenant, now).await?;
    if let Some((kind, message)) =
        traffic_alert(at(&cur, 6).unwrap_or(0.0), base.as_ref().and_then(|b| at(b, 6)).unwrap_or(0.0))
    {
        alerts.push(json!({"type": kind, "message": message}));
    }
    Ok(Json(json!({
        "current": {
            "active_users": number(at(&cur, 1).or(Some(0.0))),
            "active_conversations": number(at(&cur, 2).or(Some(0.0))),
            "messages_per_minute": number(per_minute.or(Some(0.0))),
            "average_response_time_ms": at(&cur, 4).map(|x| number(Some(x.round()))).unwrap_or(Value::Null),
        },
        "trends": {
            "users_change": change(at(&cur, 1), at(&prev, 1)),
            "conversations_change": change(at(&cur, 2), at(&prev, 2)),
            "satisfaction_change": change(at(&cur, 5), at(&prev, 5)),
        },
        "alerts": alerts,
        "window_minutes": WINDOW_MINUTES,
        "timestamp": now.to_rfc3339_opts(SecondsFormat::Secs, true),
    })))
}
