//! Funnels (seed 004's `POST /funnels`): how many users go through ordered steps, each a
//! kind of event with optional property filters, within a conversion window.
//!
//! Who counts, exactly (the tests compute the same by hand):
//! - Users are `user_id`s; events without one are not in any funnel.
//! - A user enters with their *first* event of step 1 inside the date range. From there,
//!   `ordered` (the default) takes for each next step the user's first matching event
//!   strictly after the previous step's; `strict` takes only the user's very next event
//!   (of any name), which must match; both must happen within the window after entry.
//! - `any_order`: from the user's first event of any step in the range, the steps done
//!   within the window, in any order; step k counts users who did at least k of them.
//! - The median time from the previous step is over users who reached the step.

use super::compile::{Compiled, Layout, ts};
use super::field::{Field, PropertyColumns, Source};
use super::filter::{Filter, parse_filter};
use super::time::{DateRange, Window, parse_range, parse_tz};
use crate::code::FieldError;
use crate::model::TenantId;
use crate::sql::{Dialect, SqlBuilder, SqlValue, Stored};
use chrono::Duration;
use chrono_tz::Tz;
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Ordered,
    Strict,
    AnyOrder,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Ordered => "ordered",
            Mode::Strict => "strict",
            Mode::AnyOrder => "any_order",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub name: String,
    pub event: String,
    pub filter: Option<Filter>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Funnel {
    pub name: String,
    pub steps: Vec<Step>,
    pub mode: Mode,
    pub window: Duration,
    pub range: DateRange,
    pub tz: Tz,
    /// A field of the user's entering event to split the funnel by.
    pub breakdown: Option<Field>,
    pub limit: usize,
}

pub const MAX_STEPS: usize = 20;
pub const DEFAULT_WINDOW_DAYS: i64 = 14;
pub const MAX_WINDOW_DAYS: i64 = 365;

fn window_of(v: &Value) -> Result<Duration, String> {
    let bad = || "conversion_window is a number of days, or a string such as \"14d\", \"12h\", \"30m\"".to_string();
    let d = match v {
        Value::Number(n) => Duration::seconds((n.as_f64().ok_or_else(bad)? * 86400.0) as i64),
        Value::String(s) => {
            let s = s.trim();
            let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
            let n: i64 = s[..split].parse().map_err(|_| bad())?;
            match &s[split..] {
                "d" | "day" | "days" => Duration::days(n),
                "h" | "hour" | "hours" => Duration::hours(n),
                "m" | "min" | "minute" | "minutes" => Duration::minutes(n),
                "w" | "week" | "weeks" => Duration::weeks(n),
                _ => return Err(bad()),
            }
        }
        Value::Object(o) => {
            let n = o.get("value").and_then(Value::as_i64).ok_or_else(bad)?;
            match o.get("unit").and_then(Value::as_str).unwrap_or("day") {
                "day" | "days" => Duration::days(n),
                "hour" | "hours" => Duration::hours(n),
                "minute" | "minutes" => Duration::minutes(n),
                "week" | "weeks" => Duration::weeks(n),
                _ => return Err(bad()),
            }
        }
        _ => return Err(bad()),
    };
    if d <= Duration::zero() || d > Duration::days(MAX_WINDOW_DAYS) {
        return Err(format!("the conversion window is more than 0 and at most {MAX_WINDOW_DAYS} days"));
    }
    Ok(d)
}

/// Reads a funnel; every problem is reported at once.
pub fn parse_funnel(v: &Value) -> Result<Funnel, Vec<FieldError>> {
    let Value::Object(obj) = v else {
        return Err(vec![FieldError::new("body", "a funnel is a JSON object")]);
    };
    let mut errors = Vec::new();
    let name = match obj.get("name") {
        None | Some(Value::Null) => "funnel".to_owned(),
        Some(Value::String(s)) if s.len() <= 200 => s.clone(),
        Some(_) => {
            errors.push(FieldError::new("name", "name is a string of at most 200 characters"));
            String::new()
        }
    };
    let mut steps = Vec::new();
    match obj.get("steps") {
        Some(Value::Array(items)) if items.len() >= 2 && items.len() <= MAX_STEPS => {
            for (i, s) in items.iter().enumerate() {
                let at = format!("steps[{i}]");
                let (event, step_name, filters) = match s {
                    Value::String(e) => (Some(e.clone()), e.clone(), None),
                    Value::Object(o) => {
                        let event = o.get("event").or(o.get("event_name")).and_then(Value::as_str).map(str::to_owned);
                        let label = o.get("name").and_then(Value::as_str).map(str::to_owned);
                        (event.clone(), label.or(event).unwrap_or_default(), o.get("filters").or(o.get("properties")))
                    }
                    _ => (None, String::new(), None),
                };
                let Some(event) = event.filter(|e| !e.is_empty() && e.len() <= 200) else {
                    errors.push(FieldError::new(format!("{at}.event"), "a step needs event (an event name)"));
                    continue;
                };
                let filter = match filters.filter(|f| !f.is_null()) {
                    None => None,
                    Some(f) => match parse_filter(f, Source::Events, &format!("{at}.filters")) {
                        Ok(f) => Some(f),
                        Err(e) => {
                            errors.push(e);
                            None
                        }
                    },
                };
                steps.push(Step { name: step_name, event, filter });
            }
        }
        Some(Value::Array(_)) => {
            errors.push(FieldError::new("steps", format!("a funnel has 2 to {MAX_STEPS} steps")));
        }
        _ => errors.push(FieldError::new("steps", "steps is required: an array of steps {name, event, filters}")),
    }
    let mode = match obj.get("mode").or(obj.get("order")).and_then(Value::as_str) {
        None | Some("ordered") | Some("sequential") => Mode::Ordered,
        Some("strict") => Mode::Strict,
        Some("any_order" | "unordered" | "any") => Mode::AnyOrder,
        Some(other) => {
            errors.push(FieldError::new("mode", format!("unknown mode '{other}'; use ordered, strict or any_order")));
            Mode::Ordered
        }
    };
    let window = match obj.get("conversion_window").or(obj.get("conversion_window_days")).filter(|w| !w.is_null()) {
        None => Duration::days(DEFAULT_WINDOW_DAYS),
        Some(w) => window_of(w).unwrap_or_else(|m| {
            errors.push(FieldError::new("conversion_window", m));
            Duration::days(DEFAULT_WINDOW_DAYS)
        }),
    };
    let range = match obj.get("date_range").filter(|r| !r.is_null()) {
        None => DateRange::default(),
        Some(r) => parse_range(r, "date_range").unwrap_or_else(|e| {
            errors.push(e);
            DateRange::default()
        }),
    };
    let tz = match obj.get("timezone").and_then(Value::as_str) {
        None => Tz::UTC,
        Some(t) => parse_tz(t, "timezone").unwrap_or_else(|e| {
            errors.push(e);
            Tz::UTC
        }),
    };
    let breakdown = match obj.get("breakdown").filter(|b| !b.is_null()) {
        None => None,
        Some(Value::String(b)) => match Field::parse(Source::Events, b) {
            Ok(f) => Some(f),
            Err(m) => {
                errors.push(FieldError::new("breakdown", m));
                None
            }
        },
        Some(_) => {
            errors.push(FieldError::new("breakdown", "breakdown is one field name, such as properties.plan"));
            None
        }
    };
    let limit = super::insight::parse_limit(obj.get("limit"), "limit").unwrap_or_else(|e| {
        errors.push(e);
        100
    });
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Funnel { name, steps, mode, window, range, tz, breakdown, limit })
}

/// The funnel as one statement. Rows: the breakdown value (when split), the users at each
/// step, then the median seconds from each step to the next.
pub fn compile_funnel(f: &Funnel, tenant: &TenantId, range: Window, cols: &PropertyColumns, d: Dialect) -> Compiled {
    let n = f.steps.len();
    let mut b = SqlBuilder::in_dialect(d, "WITH e");
    b.push(d.inline_cte()).push("SELECT user_key, ts");
    for (i, s) in f.steps.iter().enumerate() {
        b.push(", (");
        step_sql(&mut b, s, cols);
        b.push_trusted(&format!(") AS f{i}"));
    }
    if let Some(field) = &f.breakdown {
        b.push(", ");
        super::compile::text_of(&mut b, cols, field);
        b.push(" AS bd");
    }
    if f.mode == Mode::Strict {
        b.push(", row_number() OVER (PARTITION BY user_key ORDER BY ts, event_id) AS rn");
    }
    b.from_tenant(Stored::Events, tenant, "t");
    b.push_bind(" WHERE ts >= ", ts(range.start));
    b.push_bind(" AND ts < ", ts(range.end + f.window));
    b.push(" AND user_key IS NOT NULL");
    if f.mode != Mode::Strict {
        // Only the steps' events matter; strict needs every event, to know the next one.
        b.push(" AND (");
        for (i, s) in f.steps.iter().enumerate() {
            if i > 0 {
                b.push(" OR ");
            }
            b.push("(");
            step_sql(&mut b, s, cols);
            b.push(")");
        }
        b.push(")");
    }
    b.push(")");
    let secs = f.window.num_seconds();
    let bd = f.breakdown.is_some();
    match f.mode {
        Mode::Ordered | Mode::Strict => {
            let strict = f.mode == Mode::Strict;
            b.push(", s0 AS (SELECT user_key, min(ts) AS t0");
            if strict {
                b.push(", arg_min(rn, ts) AS r0");
            }
            if bd {
                b.push(", arg_min_null(bd, ts) AS bd");
            }
            b.push_bind(" FROM e WHERE f0 AND ts < ", ts(range.end)).push(" GROUP BY user_key)");
            for k in 1..n {
                let p = k - 1;
                b.push_trusted(&format!(", s{k} AS (SELECT s{p}.user_key, s{p}.t0, min(e.ts) AS t{k}"));
                if strict {
                    b.push_trusted(&format!(", min(e.rn) AS r{k}"));
                }
                b.push_trusted(&format!(" FROM s{p} JOIN e ON e.user_key = s{p}.user_key AND e.f{k}"));
                if strict {
                    b.push_trusted(&format!(" AND e.rn = s{p}.r{p} + 1"));
                } else {
                    b.push_trusted(&format!(" AND e.ts > s{p}.t{p}"));
                }
                b.push_trusted(&format!(" AND e.ts <= s{p}.t0 + to_seconds("));
                b.bind(SqlValue::Int(secs)).push_trusted(&format!(") GROUP BY s{p}.user_key, s{p}.t0)"));
            }
            b.push(" SELECT ");
            if bd {
                b.push("s0.bd, ");
            }
            for k in 0..n {
                if k > 0 {
                    b.push(", ");
                }
                b.push_trusted(&format!("CAST(count(s{k}.user_key) AS DOUBLE)"));
            }
            for k in 1..n {
                let p = k - 1;
                b.push_trusted(&format!(", median(epoch(s{k}.t{k}) - epoch(s{p}.t{p}))"));
            }
            b.push(" FROM s0");
            for k in 1..n {
                b.push_trusted(&format!(" LEFT JOIN s{k} ON s{k}.user_key = s0.user_key"));
            }
        }
        Mode::AnyOrder => {
            b.push(", s0 AS (SELECT user_key, min(ts) AS t0");
            if bd {
                b.push(", arg_min_null(bd, ts) AS bd");
            }
            b.push_bind(" FROM e WHERE ts < ", ts(range.end)).push(" GROUP BY user_key)");
            b.push(", done AS (SELECT s0.user_key, ");
            for k in 0..n {
                if k > 0 {
                    b.push(" + ");
                }
                // A step whose condition is NULL on every event (a missing property) is not done.
                b.push_trusted(&format!("CAST(coalesce(bool_or(e.f{k}), false) AS INTEGER)"));
            }
            b.push(
                " AS k FROM s0 JOIN e ON e.user_key = s0.user_key AND e.ts >= s0.t0 AND e.ts <= s0.t0 + to_seconds(",
            );
            b.bind(SqlValue::Int(secs)).push(") GROUP BY s0.user_key)");
            b.push(" SELECT ");
            if bd {
                b.push("s0.bd, ");
            }
            for k in 0..n {
                if k > 0 {
                    b.push(", ");
                }
                b.push_trusted(&format!("CAST(count(*) FILTER (WHERE done.k >= {}) AS DOUBLE)", k + 1));
            }
            for _ in 1..n {
                b.push(", CAST(NULL AS DOUBLE)");
            }
            b.push(" FROM s0 JOIN done ON done.user_key = s0.user_key");
        }
    }
    if bd {
        b.push(" GROUP BY 1 ORDER BY 2 DESC, 1 NULLS LAST LIMIT ").bind(SqlValue::Int(f.limit as i64 + 1));
    }
    let (sql, params) = b.into_parts();
    Compiled {
        sql,
        params,
        layout: Layout { bucket: false, dims: bd as usize, period: false, series: 2 * n - 1 },
        max_rows: if bd { f.limit } else { 1 },
    }
}

fn step_sql(b: &mut SqlBuilder, s: &Step, cols: &PropertyColumns) {
    b.push_bind("event_name = ", SqlValue::Text(s.event.clone()));
    if let Some(f) = &s.filter {
        b.push(" AND ");
        super::compile::filter_of(b, cols, f);
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// One funnel's answer from its row's numbers (users per step, then medians).
/// Seed 004's funnel answer.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FunnelAnswer {
    pub funnel: FunnelOut,
    /// With a `breakdown`: one funnel per value of the field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breakdown: Option<FunnelBreakdown>,
}

/// The whole funnel.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FunnelOut {
    pub name: String,
    /// `ordered`, `strict` or `any_order`.
    pub mode: String,
    pub conversion_window_seconds: i64,
    pub date_range: Span,
    #[serde(flatten)]
    pub counts: FunnelCounts,
}

/// A period, RFC 3339 in UTC, end exclusive.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Span {
    pub start: String,
    pub end: String,
}

/// Users through each step.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FunnelCounts {
    /// Users who entered (did the first step).
    pub total_users: u64,
    pub steps: Vec<FunnelStepOut>,
    /// Share of entering users who did the last step, 0 to 1.
    pub completion_rate: f64,
}

/// One step's users.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FunnelStepOut {
    pub name: String,
    pub event: String,
    pub users: u64,
    /// Of the users who entered, 0 to 100.
    pub percentage: f64,
    /// Users of the step before who did not do this one (not on the first step).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_off: Option<u64>,
    /// Median seconds from the step before (not on the first step; `null` when nobody
    /// got here).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "median")]
    #[schema(value_type = Option<f64>)]
    pub median_time_from_previous_seconds: Option<Option<f64>>,
}

fn median<S: serde::Serializer>(v: &Option<Option<f64>>, s: S) -> Result<S::Ok, S::Error> {
    super::answer::number(v.flatten()).serialize(s)
}

/// The funnel split by a field.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FunnelBreakdown {
    pub field: String,
    pub values: Vec<FunnelGroup>,
}

/// The funnel of the users whose entering event had this value.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FunnelGroup {
    pub value: Option<String>,
    #[serde(flatten)]
    pub counts: FunnelCounts,
}

fn counts(f: &Funnel, values: &[Option<f64>]) -> FunnelCounts {
    let n = f.steps.len();
    let users: Vec<u64> = (0..n).map(|k| values.get(k).copied().flatten().unwrap_or(0.0) as u64).collect();
    let first = users[0];
    let steps = f
        .steps
        .iter()
        .enumerate()
        .map(|(k, s)| FunnelStepOut {
            name: s.name.clone(),
            event: s.event.clone(),
            users: users[k],
            percentage: if first == 0 { 0.0 } else { round2(users[k] as f64 * 100.0 / first as f64) },
            drop_off: (k > 0).then(|| users[k - 1] - users[k].min(users[k - 1])),
            median_time_from_previous_seconds: (k > 0).then(|| values.get(n + k - 1).copied().flatten()),
        })
        .collect();
    let completion = if first == 0 { 0.0 } else { (users[n - 1] as f64 / first as f64 * 10000.0).round() / 10000.0 };
    FunnelCounts { total_users: first, steps, completion_rate: completion }
}

/// Seed 004's answer: `{"funnel": {name, total_users, steps, completion_rate, ...}}` from
/// the whole funnel's row (a funnel compiled without breakdown), and with a breakdown,
/// `breakdown`: one funnel per value, from `groups`.
pub fn shape_funnel(
    f: &Funnel,
    whole: &[super::answer::Row],
    groups: &[super::answer::Row],
    range: Window,
) -> FunnelAnswer {
    let at = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let funnel = FunnelOut {
        name: f.name.clone(),
        mode: f.mode.name().to_owned(),
        conversion_window_seconds: f.window.num_seconds(),
        date_range: Span { start: at(range.start), end: at(range.end) },
        counts: counts(f, whole.first().map(|r| r.values.as_slice()).unwrap_or(&[])),
    };
    let breakdown = f.breakdown.as_ref().map(|field| FunnelBreakdown {
        field: field.label(),
        values: groups
            .iter()
            .map(|r| FunnelGroup { value: r.dims.first().cloned().flatten(), counts: counts(f, &r.values) })
            .collect(),
    });
    FunnelAnswer { funnel, breakdown }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn seed_004_funnel_parses_and_compiles() {
        let f = parse_funnel(&json!({
            "name": "onboarding_funnel",
            "steps": [{"name": "signup", "event": "user_registered"}, {"name": "profile", "event": "profile_completed"},
                      {"name": "first_action", "event": "first_conversation"}],
            "date_range": {"start": "2024-01-01", "end": "2024-01-31"}
        }))
        .unwrap();
        assert_eq!(f.window, Duration::days(14));
        let (w, _) = f.range.resolve(f.tz, chrono::Utc::now()).unwrap();
        let c = compile_funnel(&f, &TenantId::parse("t").unwrap(), w, &PropertyColumns::default(), Dialect::DuckDb);
        assert_eq!(c.sql.matches('?').count(), c.params.len());
        assert!(c.sql.contains("tenant_id = ?"));
        assert!(!c.sql.contains("user_registered"), "event names are bound");
        assert_eq!(c.layout.series, 5);
    }

    #[test]
    fn bad_funnels_say_why() {
        let errs = parse_funnel(&json!({"steps": ["a"], "mode": "sideways", "conversion_window": "3 fortnights"}))
            .unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["steps", "mode", "conversion_window"]);
        assert!(parse_funnel(&json!({"steps": ["a", {"name": "x"}]})).is_err());
        assert!(parse_funnel(&json!({"steps": ["a", "b"], "conversion_window": 400})).is_err());
        assert_eq!(
            parse_funnel(&json!({"steps": ["a", "b"], "conversion_window": "2h"})).unwrap().window,
            Duration::hours(2)
        );
    }
}
