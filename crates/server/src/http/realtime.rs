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
use serde::Serialize;
use serde_json::{Value, json};
use sightline_core::query::answer::number;
use sightline_core::query::realtime::{WINDOW_MINUTES, change, realtime_sql, traffic_alert};

/// Figures over the last window.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Current {
    #[schema(value_type = f64)]
    active_users: Value,
    #[schema(value_type = f64)]
    active_conversations: Value,
    #[schema(value_type = f64)]
    messages_per_minute: Value,
    #[schema(value_type = Option<f64>)]
    average_response_time_ms: Value,
}

/// Changes against the window before, as `"+12.5%"`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Trends {
    #[schema(value_type = Option<String>)]
    users_change: Value,
    #[schema(value_type = Option<String>)]
    conversations_change: Value,
    #[schema(value_type = Option<String>)]
    satisfaction_change: Value,
}

/// Something that needs attention now: an alert rule that holds (`rule`), a rule whose
/// metric no longer resolves (`rule_error`), or a traffic spike or drop.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RealtimeAlert {
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub value: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
}

impl RealtimeAlert {
    pub fn new(kind: &str, message: String) -> RealtimeAlert {
        RealtimeAlert {
            kind: kind.to_owned(),
            message,
            rule_id: None,
            name: None,
            metric: None,
            value: None,
            condition: None,
            threshold: None,
        }
    }
}

/// Realtime figures (seed 004).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Realtime {
    current: Current,
    trends: Trends,
    alerts: Vec<RealtimeAlert>,
    window_minutes: i64,
    timestamp: String,
}

pub async fn realtime(caller: Caller<CanRead>, State(state): State<AppState>) -> ApiResult<Json<Realtime>> {
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
        alerts.push(RealtimeAlert::new(kind, message.to_string()));
    }
    Ok(Json(Realtime {
        current: Current {
            active_users: number(at(&cur, 1).or(Some(0.0))),
            active_conversations: number(at(&cur, 2).or(Some(0.0))),
            messages_per_minute: number(per_minute.or(Some(0.0))),
            average_response_time_ms: at(&cur, 4).map(|x| number(Some(x.round()))).unwrap_or(Value::Null),
        },
        trends: Trends {
            users_change: json!(change(at(&cur, 1), at(&prev, 1))),
            conversations_change: json!(change(at(&cur, 2), at(&prev, 2))),
            satisfaction_change: json!(change(at(&cur, 5), at(&prev, 5))),
        },
        alerts,
        window_minutes: WINDOW_MINUTES,
        timestamp: now.to_rfc3339_opts(SecondsFormat::Secs, true),
    }))
}
