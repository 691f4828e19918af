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
use sightline_core::query::realtime::{WINDOW_MINUTES, change, traffic_alert};

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
    let limit = crate::service::analytics::time_limit(&state, None);
    let figures = state.engine.realtime(&caller.tenant, now, limit).await?;
    let (cur, prev) = (figures.current, figures.previous);
    let per_minute = (cur.messages / WINDOW_MINUTES as f64 * 100.0).round() / 100.0;
    let mut alerts = super::alerts::firing(&state, &caller.tenant, now).await?;
    if let Some((kind, message)) = traffic_alert(cur.events, figures.baseline_events) {
        alerts.push(RealtimeAlert::new(kind, message.to_string()));
    }
    Ok(Json(Realtime {
        current: Current {
            active_users: number(Some(cur.users)),
            active_conversations: number(Some(cur.conversations)),
            messages_per_minute: number(Some(per_minute)),
            average_response_time_ms: cur.response_ms.map(|x| number(Some(x.round()))).unwrap_or(Value::Null),
        },
        trends: Trends {
            users_change: json!(change(Some(cur.users), Some(prev.users))),
            conversations_change: json!(change(Some(cur.conversations), Some(prev.conversations))),
            satisfaction_change: json!(change(cur.satisfaction, prev.satisfaction)),
        },
        alerts,
        window_minutes: WINDOW_MINUTES,
        timestamp: now.to_rfc3339_opts(SecondsFormat::Secs, true),
    }))
}
