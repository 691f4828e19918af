//! Conversation analytics (seed 004's `GET /conversations/analytics`) over the events of
//! `docs/conventions.md`.
//!
//! Who counts, exactly:
//! - A conversation is a `properties.conversation_id` carried by any event in the period;
//!   its bot, topic and user are the first non-null `bot_id`, `topic` and `user_id` of its
//!   events. `bot_id` filters conversations by that bot.
//! - Its duration runs from its first to its last event in the period; its messages are
//!   its `message` events.
//! - It is completed when it has a `conversation_ended` event, and resolved when that
//!   event does not say `"resolved": false`. `resolution_rate` = resolved / all.
//! - The timeline counts conversations by the bucket of their first event, their
//!   messages, and their distinct users.

use super::compile::local_bucket;
use super::field::PropertyColumns;
use super::time::{Granularity, Window};
use crate::model::TenantId;
use crate::sql::{Dialect, SqlBuilder, SqlValue, Stored};

/// The conversations CTE (`conv`): one row per conversation of the window.
fn conversations(b: &mut SqlBuilder, tenant: &TenantId, w: Window, cols: &PropertyColumns) {
    let prop = |b: &mut SqlBuilder, key: &str| {
        let path = super::field::PropertyPath::parse(key).expect("a valid key");
        super::compile::text_of(b, cols, &super::field::Field::Property(path));
    };
    b.push("WITH ev AS (SELECT ");
    prop(b, "conversation_id");
    b.push(" AS conv, user_id, event_name, ts, ");
    prop(b, "bot_id");
    b.push(" AS bot, ");
    prop(b, "topic");
    b.push(" AS topic, ");
    prop(b, "resolved");
    b.push(" AS resolved");
    b.from_tenant(Stored::Events, tenant, "t");
    b.push_bind(" WHERE ts >= ", SqlValue::TimestampMicros(w.start.timestamp_micros()));
    b.push_bind(" AND ts < ", SqlValue::TimestampMicros(w.end.timestamp_micros()));
    b.push("), conv AS (SELECT conv, min(ts) AS started, max(ts) AS ended, arg_min(user_id, ts) AS user_id,");
    b.push(" arg_min(bot, ts) AS bot, arg_min(topic, ts) AS topic,");
    b.push(" count(*) FILTER (WHERE event_name = 'message') AS messages,");
    b.push(" coalesce(bool_or(event_name = 'conversation_ended'), false) AS completed,");
    b.push(" coalesce(bool_or(event_name = 'conversation_ended' AND coalesce(resolved, 'true') <> 'false'), false) AS resolved");
    b.push(" FROM ev WHERE conv IS NOT NULL GROUP BY conv)");
}

/// Summary: one row of (total, completed, resolved, average duration s, average messages).
pub fn summary_sql(
    tenant: &TenantId,
    w: Window,
    bot: Option<&str>,
    cols: &PropertyColumns,
    d: Dialect,
) -> (String, Vec<SqlValue>) {
    let mut b = SqlBuilder::in_dialect(d, "");
    conversations(&mut b, tenant, w, cols);
    b.push(" SELECT count(*), count(*) FILTER (WHERE completed), count(*) FILTER (WHERE resolved),");
    b.push(" avg(epoch(ended) - epoch(started)), avg(messages) FROM conv");
    if let Some(bot) = bot {
        b.push_bind(" WHERE bot = ", SqlValue::Text(bot.to_owned()));
    }
    b.into_parts()
}

/// Timeline: (bucket start as local wall time, conversations, messages, unique users).
pub fn timeline_sql(
    tenant: &TenantId,
    w: Window,
    bot: Option<&str>,
    g: Granularity,
    tz: chrono_tz::Tz,
    cols: &PropertyColumns,
    d: Dialect,
) -> (String, Vec<SqlValue>) {
    let mut b = SqlBuilder::in_dialect(d, "");
    conversations(&mut b, tenant, w, cols);
    b.push(" SELECT strftime(");
    local_bucket(&mut b, g, tz, w, "started");
    b.push(match g {
        Granularity::Hour => ", '%Y-%m-%dT%H:00:00')",
        _ => ", '%Y-%m-%d')",
    });
    b.push(" AS date, count(*) AS conversations, sum(messages) AS messages, count(DISTINCT user_id) AS unique_users FROM conv");
    if let Some(bot) = bot {
        b.push_bind(" WHERE bot = ", SqlValue::Text(bot.to_owned()));
    }
    b.push(" GROUP BY 1 ORDER BY 1");
    b.into_parts()
}

/// Topics: (topic, conversations, conversations with any topic), most first, at most 50.
pub fn topics_sql(
    tenant: &TenantId,
    w: Window,
    bot: Option<&str>,
    cols: &PropertyColumns,
    d: Dialect,
) -> (String, Vec<SqlValue>) {
    let mut b = SqlBuilder::in_dialect(d, "");
    conversations(&mut b, tenant, w, cols);
    b.push(" SELECT topic, count(*) AS n, sum(count(*)) OVER () AS all_topics FROM conv WHERE topic IS NOT NULL");
    if let Some(bot) = bot {
        b.push_bind(" AND bot = ", SqlValue::Text(bot.to_owned()));
    }
    b.push(" GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 50");
    b.into_parts()
}
