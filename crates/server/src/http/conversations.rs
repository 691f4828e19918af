//! Seed 004's `GET /api/v1/analytics/conversations/analytics`: summary, timeline and
//! topics of conversations (`sightline_core::query::conversations` says who counts).

use super::error::{ApiError, ApiResult};
use super::extract::ApiQuery;
use crate::app::AppState;
use crate::auth::{Caller, CanRead};
use crate::engine::{ConversationBucket, ConversationQuery};
use axum::Json;
use axum::extract::State;
use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sightline_core::code::FieldError;
use sightline_core::query::time::{DateRange, Granularity, Named, parse_bound, parse_tz};

/// Which conversations, over which period, bucketed how.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Params {
    /// Only this bot's conversations.
    bot_id: Option<String>,
    /// `day`, `week`, `month` (the default) or `year`, up to now; or give the dates.
    period: Option<String>,
    /// `YYYY-MM-DD` or RFC 3339.
    start_date: Option<String>,
    end_date: Option<String>,
    /// The timeline's buckets: `hour`, `day` (the default), `week` or `month`.
    group_by: Option<String>,
    timezone: Option<String>,
}

/// Totals over the period.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConversationSummary {
    total_conversations: u64,
    completed_conversations: u64,
    average_duration_seconds: f64,
    average_messages_per_conversation: f64,
    /// Completed over total, 0 to 1.
    resolution_rate: f64,
}

/// A topic and its share of the conversations that have one.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TopicShare {
    topic: String,
    count: u64,
    percentage: f64,
}

/// Conversation analytics (seed 004).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConversationAnalytics {
    summary: ConversationSummary,
    timeline: Vec<ConversationBucket>,
    /// The 50 most frequent topics.
    topics: Vec<TopicShare>,
    period: super::query::Span,
}

pub async fn analytics(
    caller: Caller<CanRead>,
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<Params>,
) -> ApiResult<Json<ConversationAnalytics>> {
    let mut errors = Vec::new();
    let tz = match &p.timezone {
        None => chrono_tz::Tz::UTC,
        Some(t) => parse_tz(t, "timezone").unwrap_or_else(|e| {
            errors.push(e);
            chrono_tz::Tz::UTC
        }),
    };
    let period = p.period.as_deref().unwrap_or("week");
    let range = match period {
        "today" | "day" => Some(DateRange::Named(Named::Today)),
        "week" => Some(DateRange::Between(
            sightline_core::query::time::Bound::Ago(7, sightline_core::query::time::Unit::Day),
            sightline_core::query::time::Bound::Now,
        )),
        "month" => Some(DateRange::Between(
            sightline_core::query::time::Bound::Ago(30, sightline_core::query::time::Unit::Day),
            sightline_core::query::time::Bound::Now,
        )),
        "custom" => match (&p.start_date, &p.end_date) {
            (Some(s), Some(e)) => match (parse_bound(s, "start_date"), parse_bound(e, "end_date")) {
                (Ok(s), Ok(e)) => Some(DateRange::Between(s, e)),
                (a, b) => {
                    errors.extend(a.err());
                    errors.extend(b.err());
                    None
                }
            },
            _ => {
                errors.push(FieldError::new("start_date", "period custom needs start_date and end_date"));
                None
            }
        },
        other => {
            errors
                .push(FieldError::new("period", format!("unknown period '{other}'; use today, week, month or custom")));
            None
        }
    };
    let g = match p.group_by.as_deref() {
        None => Granularity::Day,
        Some(g) => Granularity::parse(g).unwrap_or_else(|| {
            errors.push(FieldError::new("group_by", format!("unknown group_by '{g}'; use hour, day, week or month")));
            Granularity::Day
        }),
    };
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let (w, _) = range.expect("checked").resolve(tz, Utc::now()).map_err(|m| ApiError::field("end_date", m))?;
    // A week or month of days holds today whole, as `today` does (ingest takes events
    // stamped up to a day ahead).
    let w = if matches!(period, "week" | "month") {
        let (today, _) = DateRange::Named(Named::Today).resolve(tz, Utc::now()).map_err(ApiError::internal)?;
        sightline_core::query::time::Window { start: w.start, end: today.end }
    } else {
        w
    };
    let bot = p.bot_id.filter(|b| !b.is_empty());
    let limit = crate::service::analytics::time_limit(&state, None);
    let q = ConversationQuery { window: w, bot, granularity: g, tz };
    let f = state.engine.conversations(&caller.tenant, &q, limit).await?;
    if f.timeline_truncated {
        return Err(ApiError::field(
            "group_by",
            "the timeline has more than 10,000 buckets with conversations; use a coarser group_by or a shorter period",
        ));
    }
    let total = f.total as f64;
    let ratio = |n: u64| if total > 0.0 { (n as f64 / total * 10000.0).round() / 10000.0 } else { 0.0 };
    let summary = ConversationSummary {
        total_conversations: f.total,
        completed_conversations: f.completed,
        average_duration_seconds: f.average_duration_secs.map_or(0.0, f64::round),
        average_messages_per_conversation: f.average_messages.map_or(0.0, |x| (x * 100.0).round() / 100.0),
        resolution_rate: ratio(f.resolved),
    };
    // The share of conversations with a topic, counting the topics beyond the 50 listed.
    let with_topic = f.conversations_with_topic as f64;
    let topics = f
        .topics
        .into_iter()
        .map(|(topic, count)| {
            let percentage = if with_topic > 0.0 { (count as f64 * 100.0 / with_topic).round() } else { 0.0 };
            TopicShare { topic, count, percentage }
        })
        .collect();
    let timeline = f.timeline;
    let period = super::query::Span {
        start: w.start.to_rfc3339_opts(SecondsFormat::Secs, true),
        end: w.end.to_rfc3339_opts(SecondsFormat::Secs, true),
    };
    Ok(Json(ConversationAnalytics { summary, timeline, topics, period }))
}
