//! Seed 004's `GET /api/v1/analytics/conversations/analytics`: summary, timeline and
//! topics of conversations (`sightline_core::query::conversations` says who counts).

use super::error::{ApiError, ApiResult};
use super::extract::ApiQuery;
use crate::app::AppState;
use crate::auth::{Caller, CanRead};
use axum::Json;
use axum::extract::State;
use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sightline_core::code::FieldError;
use sightline_core::query::conversations::{summary_sql, timeline_sql, topics_sql};
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

/// One bucket of the timeline.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConversationBucket {
    /// The bucket's start.
    #[schema(value_type = String)]
    date: Value,
    #[schema(value_type = u64)]
    conversations: Value,
    #[schema(value_type = u64)]
    messages: Value,
    #[schema(value_type = u64)]
    unique_users: Value,
}

/// A topic and its share of the conversations that have one.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TopicShare {
    #[schema(value_type = String)]
    topic: Value,
    #[schema(value_type = u64)]
    count: Value,
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

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
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
    let bot = p.bot_id.as_deref().filter(|b| !b.is_empty());
    let limit = crate::analytics::time_limit(&state, None);
    let cols = &state.property_columns;
    let tenant = &caller.tenant;
    let (s_sql, s_params) = summary_sql(tenant, w, bot, cols);
    let (t_sql, t_params) = timeline_sql(tenant, w, bot, g, tz, cols);
    let (p_sql, p_params) = topics_sql(tenant, w, bot, cols);
    let (summary, timeline, topics) = tokio::try_join!(
        state.queries.run_sql(&s_sql, s_params, limit, 1),
        state.queries.run_sql(&t_sql, t_params, limit, 10_000),
        state.queries.run_sql(&p_sql, p_params, limit, 50),
    )?;
    if timeline.truncated {
        return Err(ApiError::field(
            "group_by",
            "the timeline has more than 10,000 buckets with conversations; use a coarser group_by or a shorter period",
        ));
    }
    let s = summary.rows.first().cloned().unwrap_or_default();
    let total = s.first().map(num).unwrap_or(0.0);
    let ratio = |n: f64| if total > 0.0 { (n / total * 10000.0).round() / 10000.0 } else { 0.0 };
    // The share of conversations with a topic, counting the topics beyond the 50 listed.
    let topic_total: f64 = topics.rows.first().map(|r| num(&r[2])).unwrap_or(0.0);
    let summary = ConversationSummary {
        total_conversations: total as u64,
        completed_conversations: s.get(1).map(num).unwrap_or(0.0) as u64,
        average_duration_seconds: s.get(3).and_then(Value::as_f64).map(|x| x.round()).unwrap_or(0.0),
        average_messages_per_conversation: s
            .get(4)
            .and_then(Value::as_f64)
            .map(|x| (x * 100.0).round() / 100.0)
            .unwrap_or(0.0),
        resolution_rate: ratio(s.get(2).map(num).unwrap_or(0.0)),
    };
    let timeline = timeline
        .rows
        .into_iter()
        .map(|r| {
            let mut it = r.into_iter();
            let mut next = || it.next().unwrap_or(Value::Null);
            ConversationBucket { date: next(), conversations: next(), messages: next(), unique_users: next() }
        })
        .collect();
    let topics = topics
        .rows
        .into_iter()
        .map(|r| {
            let percentage = if topic_total > 0.0 { (num(&r[1]) * 100.0 / topic_total).round() } else { 0.0 };
            let mut it = r.into_iter();
            TopicShare { topic: it.next().unwrap_or(Value::Null), count: it.next().unwrap_or(Value::Null), percentage }
        })
        .collect();
    let period = super::query::Span {
        start: w.start.to_rfc3339_opts(SecondsFormat::Secs, true),
        end: w.end.to_rfc3339_opts(SecondsFormat::Secs, true),
    };
    Ok(Json(ConversationAnalytics { summary, timeline, topics, period }))
}
