//! Sessions, one definition for every analysis: the `sessions` metric, one user's
//! analytics, the segments' `total_sessions`, and the custom-SQL `sessions` view.
//!
//! - An event that carries a `session_id` belongs to that session.
//! - A user's events without one form sessions by inactivity, as PostHog and Plausible
//!   do: a new session starts after more than 30 minutes without such an event. Its key
//!   is `<user_id>#<epoch microseconds of its first event>`.
//! - An event with neither a `session_id` nor a `user_id` belongs to no session.
//!
//! Sessions are cut where the events read stop: an analysis over a range sees the part
//! of a session inside it.

use crate::model::TenantId;
use crate::sql::{SqlBuilder, SqlValue, Stored};
use chrono::{DateTime, Utc};

/// Gap after which an event without a session id opens a new session.
pub const SESSION_GAP_SECS: i64 = 30 * 60;

/// Which of the tenant's events to sessionize (all of them when empty).
#[derive(Debug, Clone, Copy, Default)]
pub struct Narrow<'a> {
    /// `ts >= from`.
    pub from: Option<DateTime<Utc>>,
    /// `ts < until`, or `ts <= until` when `inclusive`.
    pub until: Option<DateTime<Utc>>,
    pub inclusive: bool,
    pub user: Option<&'a str>,
}

impl Narrow<'_> {
    fn push(&self, b: &mut SqlBuilder) {
        let at = |t: DateTime<Utc>| SqlValue::TimestampMicros(t.timestamp_micros());
        if let Some(t) = self.from {
            b.push_bind(" AND ts >= ", at(t));
        }
        if let Some(t) = self.until {
            b.push_bind(if self.inclusive { " AND ts <= " } else { " AND ts < " }, at(t));
        }
        if let Some(u) = self.user {
            b.push_bind(" AND user_id = ", SqlValue::Text(u.to_owned()));
        }
    }
}

/// Appends ` FROM <the tenant's events that `narrow` keeps, each with a `session_key`
/// column> AS <alias>`. Only the events without a session id are sorted (per user, by
/// time); the others are read as they are.
pub fn from_sessionized(b: &mut SqlBuilder, tenant: &TenantId, narrow: Narrow<'_>, alias: &'static str) {
    b.push(" FROM (SELECT *, session_id AS session_key");
    b.from_tenant(Stored::Events, tenant, "t");
    b.push(" WHERE (session_id IS NOT NULL OR user_id IS NULL)");
    narrow.push(b);
    // A running maximum of the times that open a session is the current session's start.
    // The default frame (RANGE) holds the events of the same instant together, whichever
    // of them the sort put first.
    b.push(" UNION ALL SELECT * EXCLUDE (opens), user_id || '#' || CAST(");
    b.epoch_us("max(CASE WHEN opens THEN ts END) OVER (PARTITION BY user_id ORDER BY ts)");
    b.push(" AS VARCHAR) AS session_key");
    b.push(" FROM (SELECT *, coalesce(lag(ts) OVER (PARTITION BY user_id ORDER BY ts) < ts - INTERVAL ");
    b.push_trusted(&SESSION_GAP_SECS.to_string());
    b.push(" SECOND, true) AS opens");
    b.from_tenant(Stored::Events, tenant, "t");
    b.push(" WHERE session_id IS NULL AND user_id IS NOT NULL");
    narrow.push(b);
    b.push(")) AS ").push_trusted(alias);
}

/// The custom-SQL view of sessionized events (`session_id`, `user_id`, `ts`), in the
/// sandbox's template (`{tenant}` stands for the tenant's literal): the same rule and
/// keys as [`from_sessionized`].
pub const SANDBOX_SESSIONIZED: &str = "AS (SELECT session_id, user_id, ts FROM main.events \
     WHERE tenant_id = '{tenant}' AND session_id IS NOT NULL \
     UNION ALL \
     SELECT user_id || '#' || CAST(epoch_us(max(CASE WHEN opens THEN ts END) \
     OVER (PARTITION BY user_id ORDER BY ts)) AS VARCHAR), user_id, ts \
     FROM (SELECT user_id, ts, \
     coalesce(lag(ts) OVER (PARTITION BY user_id ORDER BY ts) < ts - INTERVAL 1800 SECOND, true) AS opens \
     FROM main.events WHERE tenant_id = '{tenant}' AND session_id IS NULL AND user_id IS NOT NULL))";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sandbox_view_keeps_the_same_gap() {
        assert!(SANDBOX_SESSIONIZED.contains(&format!("INTERVAL {SESSION_GAP_SECS} SECOND")));
    }

    #[test]
    fn both_branches_read_the_tenant_and_bind_the_narrowing_twice() {
        let mut b = SqlBuilder::new("SELECT count(DISTINCT session_key)");
        let now = Utc::now();
        from_sessionized(
            &mut b,
            &TenantId::parse("t").unwrap(),
            Narrow { from: Some(now), until: Some(now), inclusive: false, user: Some("u'x") },
            "s",
        );
        let (sql, params) = b.into_parts();
        assert_eq!(sql.matches("tenant_id = ?").count(), 2);
        assert_eq!(sql.matches('?').count(), params.len());
        assert_eq!(params.len(), 8);
        assert!(!sql.contains("u'x"));
    }
}
