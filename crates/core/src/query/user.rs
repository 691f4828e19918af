//! One user's analytics (seed 004's `GET /users/{user_id}/analytics`), over the events of
//! `docs/conventions.md`.
//!
//! Who counts, exactly:
//! - The user's events in the date range, in sessions as `query::session` defines them.
//!   A session lasts from its first to its last event in the range.
//! - `total_messages`: the user's `message` events; `satisfaction_score`: the average
//!   `properties.score` of their `satisfaction` events; `topics_discussed`: the distinct
//!   `properties.topic` values, first seen first (at most 20).
//! - Engagement, as of now, whatever the range: `daily_active` when the user has an event
//!   today (in the time zone); `retention_30d` is the share of the last 30 days (today
//!   included) with an event; `churn_risk` is `high` without an event in 14 days, else
//!   `medium` when active on fewer than 6 of the last 30 days or not in the last 7 days,
//!   else `low`.

use super::compile::local_bucket;
use super::session::{Narrow, from_sessionized};
use super::time::{Granularity, Window};
use crate::model::TenantId;
use crate::sql::{Dialect, SqlBuilder, SqlValue, Stored};

fn scan(b: &mut SqlBuilder, tenant: &TenantId, user: &str, w: Window) {
    b.push("SELECT *").from_tenant(Stored::Events, tenant, "t");
    b.push_bind(" WHERE user_id = ", SqlValue::Text(user.to_owned()));
    b.push_bind(" AND ts >= ", SqlValue::TimestampMicros(w.start.timestamp_micros()));
    b.push_bind(" AND ts < ", SqlValue::TimestampMicros(w.end.timestamp_micros()));
}

/// One row: (sessions, average session seconds, messages, last active, satisfaction,
/// events).
pub fn activity_sql(tenant: &TenantId, user: &str, w: Window, d: Dialect) -> (String, Vec<SqlValue>) {
    let mut b = SqlBuilder::in_dialect(d, "WITH e AS (SELECT session_key, ts, event_name, properties");
    let narrow = Narrow { from: Some(w.start), until: Some(w.end), inclusive: false, user: Some(user) };
    from_sessionized(&mut b, tenant, narrow, "s");
    b.push("), per AS (SELECT session_key, epoch(max(ts)) - epoch(min(ts)) AS secs FROM e GROUP BY session_key)");
    b.push(" SELECT (SELECT count(*) FROM per), (SELECT avg(secs) FROM per),");
    b.push(" (SELECT count(*) FROM e WHERE event_name = 'message'), (SELECT max(ts) FROM e),");
    b.push(" (SELECT avg(TRY_CAST(").json_text("properties", "score");
    b.push(" AS DOUBLE)) FROM e WHERE event_name = 'satisfaction'),");
    b.push(" (SELECT count(*) FROM e)");
    b.into_parts()
}

/// Rows of topics, first seen first.
pub fn topics_sql(tenant: &TenantId, user: &str, w: Window, d: Dialect) -> (String, Vec<SqlValue>) {
    let mut b = SqlBuilder::in_dialect(d, "SELECT topic FROM (SELECT ");
    b.json_text("properties", "topic").push(" AS topic, min(ts) AS first FROM (");
    scan(&mut b, tenant, user, w);
    b.push(") GROUP BY 1) WHERE topic IS NOT NULL ORDER BY first, topic LIMIT 20");
    b.into_parts()
}

/// One row: (active today, active days of the last 30, active in the last 7 days,
/// active in the last 14 days, has any event ever), with `days30` the window of the last
/// 30 local days and `today` that of today.
pub fn engagement_sql(
    tenant: &TenantId,
    user: &str,
    days30: Window,
    today: Window,
    now: chrono::DateTime<chrono::Utc>,
    tz: chrono_tz::Tz,
    d: Dialect,
) -> (String, Vec<SqlValue>) {
    let u = SqlValue::Text(user.to_owned());
    let at = |x: chrono::DateTime<chrono::Utc>| SqlValue::TimestampMicros(x.timestamp_micros());
    let mut b = SqlBuilder::in_dialect(d, "WITH e AS (SELECT ts");
    b.from_tenant(Stored::Events, tenant, "t").push_bind(" WHERE user_id = ", u).push(")");
    b.push_bind(" SELECT coalesce(bool_or(ts >= ", at(today.start))
        .push_bind(" AND ts < ", at(today.end))
        .push("), false),");
    b.push(" count(DISTINCT ");
    local_bucket(&mut b, Granularity::Day, tz, days30, "ts");
    b.push_bind(") FILTER (WHERE ts >= ", at(days30.start)).push_bind(" AND ts < ", at(days30.end)).push("),");
    b.push_bind(" coalesce(bool_or(ts >= ", at(now - chrono::Duration::days(7)))
        .push_bind(" AND ts <= ", at(now))
        .push("), false),");
    b.push_bind(" coalesce(bool_or(ts >= ", at(now - chrono::Duration::days(14)))
        .push_bind(" AND ts <= ", at(now))
        .push("), false),");
    b.push(" count(*) > 0 FROM e");
    b.into_parts()
}

/// The churn rule of the module's doc.
pub fn churn_risk(active_days_30: u32, active_7d: bool, active_14d: bool) -> &'static str {
    if !active_14d {
        "high"
    } else if active_days_30 < 6 || !active_7d {
        "medium"
    } else {
        "low"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn churn_rule() {
        assert_eq!(churn_risk(20, true, true), "low");
        assert_eq!(churn_risk(3, true, true), "medium");
        assert_eq!(churn_risk(10, false, true), "medium");
        assert_eq!(churn_risk(10, false, false), "high");
    }

    #[test]
    fn user_ids_only_bind() {
        let w = Window { start: chrono::Utc::now() - chrono::Duration::days(1), end: chrono::Utc::now() };
        let (sql, params) =
            activity_sql(&TenantId::parse("t").unwrap(), "u'; DROP TABLE events; --", w, Dialect::DuckDb);
        assert!(!sql.contains("DROP"));
        assert_eq!(sql.matches('?').count(), params.len());
    }
}
