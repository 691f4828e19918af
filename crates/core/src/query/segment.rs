//! User segments (seed 004): users whose computed fields meet every condition, such as
//! `{"field": "total_sessions", "operator": ">", "value": 10}` or
//! `{"field": "last_active", "operator": ">", "value": "-7d"}`.
//!
//! The fields, per `user_id`, over all of the user's events up to now:
//! - `total_events`, `total_sessions` (as `query::session` defines them),
//!   `total_purchases`, `total_spent` (sum of
//!   `properties.amount` of purchases), `total_messages`;
//! - `first_seen`, `last_active` (times: compare with RFC 3339 times, dates, or relative
//!   values like `-7d`, which mean that long before now);
//! - `days_since_last_active` (whole days);
//! - `previous_activity`: the user's events 31 to 60 days ago: `high` (20 or more),
//!   `medium` (5 or more), `low` (1 or more), `none`.

use super::metric::PURCHASE_EVENTS;
use super::session::{Narrow, from_sessionized};
use super::time::{Bound, Unit, parse_bound};
use crate::code::FieldError;
use crate::model::TenantId;
use crate::sql::{Dialect, SqlBuilder, SqlValue};
use chrono::{DateTime, Duration, Months, Utc};
use serde_json::Value;

pub const FIELDS: &[&str] = &[
    "total_events",
    "total_sessions",
    "total_purchases",
    "total_spent",
    "total_messages",
    "first_seen",
    "last_active",
    "days_since_last_active",
    "previous_activity",
];

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Number(f64),
    Time(DateTime<Utc>),
    Text(String),
    List(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// One of [`FIELDS`]: the column of the per-user table, never client text.
    pub field: &'static str,
    /// One of `>`, `>=`, `<`, `<=`, `=`, `!=`, `in`.
    pub op: &'static str,
    pub value: Operand,
}

fn is_time(field: &str) -> bool {
    matches!(field, "first_seen" | "last_active")
}

/// Reads the conditions; relative times are resolved against `now`.
pub fn parse_conditions(v: &Value, now: DateTime<Utc>) -> Result<Vec<Condition>, Vec<FieldError>> {
    let Value::Array(items) = v else {
        return Err(vec![FieldError::new("conditions", "conditions is an array of {field, operator, value}")]);
    };
    if items.is_empty() || items.len() > 20 {
        return Err(vec![FieldError::new("conditions", "a segment has 1 to 20 conditions")]);
    }
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (i, c) in items.iter().enumerate() {
        let at = |k: &str| format!("conditions[{i}].{k}");
        let field = match c.get("field").and_then(Value::as_str) {
            Some(f) => match FIELDS.iter().find(|x| **x == f) {
                Some(x) => Some(*x),
                None => {
                    errors.push(FieldError::new(
                        at("field"),
                        format!("unknown field '{f}'; use one of {}", FIELDS.join(", ")),
                    ));
                    None
                }
            },
            None => {
                errors.push(FieldError::new(at("field"), "field is required"));
                None
            }
        };
        let op = match c.get("operator").or(c.get("op")).and_then(Value::as_str).map(str::trim) {
            Some(">" | "gt") => Some(">"),
            Some(">=" | "gte") => Some(">="),
            Some("<" | "lt") => Some("<"),
            Some("<=" | "lte") => Some("<="),
            Some("=" | "==" | "eq") => Some("="),
            Some("!=" | "<>" | "neq") => Some("!="),
            Some("in") => Some("in"),
            other => {
                errors.push(FieldError::new(
                    at("operator"),
                    format!(
                        "unknown operator {}; use >, >=, <, <=, =, != or in",
                        other.map(|o| format!("'{o}'")).unwrap_or("(none)".into())
                    ),
                ));
                None
            }
        };
        let (Some(field), Some(op)) = (field, op) else { continue };
        let value = c.get("value").unwrap_or(&Value::Null);
        let operand = if op == "in" {
            match value.as_array() {
                Some(a)
                    if !a.is_empty()
                        && a.len() <= 100
                        && a.iter().all(Value::is_string)
                        && field == "previous_activity" =>
                {
                    Ok(Operand::List(a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect()))
                }
                _ => Err("in takes a list of 1 to 100 strings, on previous_activity".to_string()),
            }
        } else if is_time(field) {
            match value.as_str().map(|s| parse_bound(s, "value")) {
                Some(Ok(Bound::Instant(t))) => Ok(Operand::Time(t)),
                Some(Ok(Bound::Date(d))) => Ok(Operand::Time(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())),
                Some(Ok(Bound::Now)) => Ok(Operand::Time(now)),
                Some(Ok(Bound::Ago(n, unit))) => Ok(Operand::Time(match unit {
                    Unit::Hour => now - Duration::hours(n),
                    Unit::Day => now - Duration::days(n),
                    Unit::Week => now - Duration::weeks(n),
                    Unit::Month => now.checked_sub_months(Months::new(n.min(1200) as u32)).unwrap_or(now),
                    Unit::Year => now.checked_sub_months(Months::new(12 * n.min(100) as u32)).unwrap_or(now),
                })),
                _ => Err(format!("{field} compares with a time: RFC 3339, YYYY-MM-DD or -7d")),
            }
        } else if field == "previous_activity" {
            match value.as_str() {
                Some(s @ ("high" | "medium" | "low" | "none")) if matches!(op, "=" | "!=") => {
                    Ok(Operand::Text(s.to_owned()))
                }
                _ => Err("previous_activity is = or != one of high, medium, low, none".to_string()),
            }
        } else {
            match value.as_f64().filter(|f| f.is_finite()) {
                Some(n) => Ok(Operand::Number(n)),
                None => Err(format!("{field} compares with a number")),
            }
        };
        match operand {
            Ok(value) => out.push(Condition { field, op, value }),
            Err(m) => errors.push(FieldError::new(at("value"), m)),
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

/// The per-user table (`u`) of the fields, as of `now`.
fn users(b: &mut SqlBuilder, tenant: &TenantId, now: DateTime<Utc>) {
    let at = |t: DateTime<Utc>| SqlValue::TimestampMicros(t.timestamp_micros());
    b.push("WITH e AS (SELECT user_id, session_key, event_name, ts, properties");
    from_sessionized(b, tenant, Narrow { until: Some(now), inclusive: true, ..Narrow::default() }, "s");
    b.push(" WHERE user_id IS NOT NULL");
    b.push("), u AS (SELECT user_id, count(*) AS total_events, count(DISTINCT session_key) AS total_sessions,");
    b.push(" count(*) FILTER (WHERE event_name IN (");
    for (i, e) in PURCHASE_EVENTS.iter().enumerate() {
        if i > 0 {
            b.push(", ");
        }
        b.bind(SqlValue::Text((*e).to_owned()));
    }
    b.push(")) AS total_purchases, coalesce(sum(TRY_CAST(").json_text("properties", "amount");
    b.push(" AS DOUBLE)) FILTER (WHERE event_name IN (");
    for (i, e) in PURCHASE_EVENTS.iter().enumerate() {
        if i > 0 {
            b.push(", ");
        }
        b.bind(SqlValue::Text((*e).to_owned()));
    }
    b.push(")), 0) AS total_spent, count(*) FILTER (WHERE event_name = 'message') AS total_messages,");
    b.push(" min(ts) AS first_seen, max(ts) AS last_active,");
    b.push_bind(" floor((epoch(", at(now)).push(") - epoch(max(ts))) / 86400) AS days_since_last_active,");
    b.push_bind(" count(*) FILTER (WHERE ts >= ", at(now - Duration::days(60)));
    b.push_bind(" AND ts < ", at(now - Duration::days(30))).push(") AS prev_events");
    b.push(" FROM e GROUP BY user_id), s AS (SELECT *, CASE WHEN prev_events >= 20 THEN 'high' WHEN prev_events >= 5 THEN 'medium'");
    b.push(" WHEN prev_events >= 1 THEN 'low' ELSE 'none' END AS previous_activity FROM u)");
}

fn where_sql(b: &mut SqlBuilder, conds: &[Condition]) {
    b.push(" WHERE TRUE");
    for c in conds {
        b.push(" AND ").push(c.field);
        match &c.value {
            Operand::List(values) => {
                b.push(" IN (");
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        b.push(", ");
                    }
                    b.bind(SqlValue::Text(v.clone()));
                }
                b.push(")");
            }
            other => {
                b.push(match c.op {
                    ">" => " > ",
                    ">=" => " >= ",
                    "<" => " < ",
                    "<=" => " <= ",
                    "=" => " = ",
                    _ => " IS DISTINCT FROM ",
                });
                b.bind(match other {
                    Operand::Number(n) => SqlValue::Float(*n),
                    Operand::Time(t) => SqlValue::TimestampMicros(t.timestamp_micros()),
                    Operand::Text(s) => SqlValue::Text(s.clone()),
                    Operand::List(_) => unreachable!("handled above"),
                });
            }
        }
    }
}

/// One row: the number of members and their average `total_spent`.
pub fn summary_sql(tenant: &TenantId, conds: &[Condition], now: DateTime<Utc>, d: Dialect) -> (String, Vec<SqlValue>) {
    let mut b = SqlBuilder::in_dialect(d, "");
    users(&mut b, tenant, now);
    b.push(" SELECT count(*), coalesce(avg(total_spent), 0) FROM s");
    where_sql(&mut b, conds);
    b.into_parts()
}

/// Members with their fields, most recently active first.
pub fn members_sql(
    tenant: &TenantId,
    conds: &[Condition],
    now: DateTime<Utc>,
    limit: usize,
    offset: usize,
    d: Dialect,
) -> (String, Vec<SqlValue>) {
    let mut b = SqlBuilder::in_dialect(d, "");
    users(&mut b, tenant, now);
    b.push(" SELECT user_id, total_events, total_sessions, total_purchases, total_spent, total_messages, first_seen,");
    b.push(" last_active, days_since_last_active, previous_activity FROM s");
    where_sql(&mut b, conds);
    // A count past what SQL takes is as good as the largest it takes: no rows.
    let int = |n: usize| SqlValue::Int(i64::try_from(n).unwrap_or(i64::MAX));
    b.push(" ORDER BY last_active DESC, user_id LIMIT ").bind(int(limit));
    b.push_bind(" OFFSET ", int(offset));
    b.into_parts()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn seed_004_segments_parse() {
        let now = Utc::now();
        let c = parse_conditions(
            &json!([{"field": "total_sessions", "operator": ">", "value": 10}, {"field": "last_active", "operator": ">", "value": "-7d"}]),
            now,
        )
        .unwrap();
        assert_eq!(c[1].value, Operand::Time(now - Duration::days(7)));
        let c = parse_conditions(
            &json!([{"field": "days_since_last_active", "operator": ">", "value": 30}, {"field": "previous_activity", "operator": "=", "value": "high"}]),
            now,
        )
        .unwrap();
        assert_eq!(c.len(), 2);
        let errs = parse_conditions(&json!([{"field": "email", "operator": "~", "value": 1}, {"field": "total_events", "operator": ">", "value": "x"}]), now)
            .unwrap_err();
        assert_eq!(errs.len(), 3);
        let (sql, params) = summary_sql(&TenantId::parse("t").unwrap(), &c, now, Dialect::DuckDb);
        assert_eq!(sql.matches('?').count(), params.len());
    }
}
