//! Realtime activity (seed 004's `GET /realtime`): the last 5 minutes, against the same
//! 5 minutes a day earlier, and traffic against its usual level.
//!
//! Who counts, exactly:
//! - `active_users`: distinct `user_id` with an event in the window; `active_conversations`:
//!   distinct `properties.conversation_id`; `messages_per_minute`: `message` events / 5;
//!   `average_response_time_ms`: average `properties.response_time_ms` of the window's
//!   events carrying it; satisfaction: average `properties.score` of `satisfaction` events.
//! - Traffic is the window's events against the average of the 288 five-minute windows of
//!   the 24 hours before it: 50 % or more above is `high_traffic` (when at least one event
//!   per window is usual), 50 % or more below (with at least 20 per window usually) is
//!   `low_traffic`.

use super::time::Window;
use crate::model::TenantId;
use crate::sql::{Dialect, SqlBuilder, SqlValue, Stored};
use chrono::{DateTime, Duration, Utc};

pub const WINDOW_MINUTES: i64 = 5;

/// The current window, the same window a day earlier, and the 24 hours before the current.
pub fn windows(now: DateTime<Utc>) -> (Window, Window, Window) {
    let w = Duration::minutes(WINDOW_MINUTES);
    let day = Duration::days(1);
    (
        Window { start: now - w, end: now },
        Window { start: now - day - w, end: now - day },
        Window { start: now - w - day, end: now - w },
    )
}

/// Rows: one per window (`current`, `previous`) with (users, conversations, messages,
/// average response ms, average satisfaction, events), then `baseline` with the events of
/// the 24 hours before.
pub fn realtime_sql(tenant: &TenantId, now: DateTime<Utc>, d: Dialect) -> (String, Vec<SqlValue>) {
    let (cur, prev, base) = windows(now);
    let at = |t: DateTime<Utc>| SqlValue::TimestampMicros(t.timestamp_micros());
    let mut b = SqlBuilder::in_dialect(d, "WITH e AS (SELECT ts, user_key, event_name, properties");
    b.from_tenant(Stored::Events, tenant, "t");
    b.push_bind(" WHERE ((ts >= ", at(base.start)).push_bind(" AND ts < ", at(cur.end)).push(")");
    b.push_bind(" OR (ts >= ", at(prev.start)).push_bind(" AND ts < ", at(prev.end)).push(")))");
    for (name, w) in [("current", cur), ("previous", prev)] {
        b.push(if name == "current" { " SELECT " } else { " UNION ALL SELECT " });
        b.bind(SqlValue::Text(name.into()));
        b.push(", CAST(count(DISTINCT user_key) AS DOUBLE),");
        b.push(" CAST(count(DISTINCT ").json_text("properties", "conversation_id").push(") AS DOUBLE),");
        b.push(" CAST(count(*) FILTER (WHERE event_name = 'message') AS DOUBLE),");
        b.push(" avg(TRY_CAST(").json_text("properties", "response_time_ms").push(" AS DOUBLE)),");
        b.push(" avg(TRY_CAST(")
            .json_text("properties", "score")
            .push(" AS DOUBLE)) FILTER (WHERE event_name = 'satisfaction'),");
        b.push(" CAST(count(*) AS DOUBLE) FROM e");
        b.push_bind(" WHERE ts >= ", at(w.start)).push_bind(" AND ts < ", at(w.end));
    }
    b.push(" UNION ALL SELECT 'baseline', NULL, NULL, NULL, NULL, NULL, CAST(count(*) AS DOUBLE) FROM e");
    b.push_bind(" WHERE ts >= ", at(base.start)).push_bind(" AND ts < ", at(base.end));
    b.into_parts()
}

/// `+12%`, `-8%`, `0%`; `None` without a previous value.
pub fn change(current: Option<f64>, previous: Option<f64>) -> Option<String> {
    let pct = super::answer::change_percent(current, previous)?;
    let r = pct.round() as i64;
    Some(if r > 0 { format!("+{r}%") } else { format!("{r}%") })
}

/// The traffic alert, if any: events in the window against the usual per window.
pub fn traffic_alert(current_events: f64, baseline_events_24h: f64) -> Option<(&'static str, String)> {
    let usual = baseline_events_24h / (24.0 * 60.0 / WINDOW_MINUTES as f64);
    if usual <= 0.0 {
        return None;
    }
    let ratio = current_events / usual;
    // Below one event per window usually, any burst looks like thousands of percent.
    if ratio >= 1.5 && usual >= 1.0 {
        Some(("high_traffic", format!("Traffic {}% above normal", ((ratio - 1.0) * 100.0).round() as i64)))
    } else if ratio <= 0.5 && usual >= 20.0 {
        Some(("low_traffic", format!("Traffic {}% below normal", ((1.0 - ratio) * 100.0).round() as i64)))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_alerts_fire_at_half_again_and_half() {
        // 2880 events a day is 10 per 5 minutes.
        assert_eq!(traffic_alert(15.0, 2880.0).unwrap().1, "Traffic 50% above normal");
        assert!(traffic_alert(14.0, 2880.0).is_none());
        assert!(traffic_alert(2.0, 2880.0).is_none(), "too little usual traffic to call it low");
        assert_eq!(traffic_alert(10.0, 28800.0).unwrap().0, "low_traffic");
        assert!(traffic_alert(10.0, 0.0).is_none());
        assert!(traffic_alert(2.0, 1.0).is_none(), "no usual traffic to compare with");
        assert_eq!(change(Some(112.0), Some(100.0)).as_deref(), Some("+12%"));
        assert_eq!(change(Some(92.0), Some(100.0)).as_deref(), Some("-8%"));
        assert_eq!(change(Some(3.0), Some(0.0)), None);
    }
}
