//! Analyses over HTTP: seed 001's structured query (`POST /analytics/query` with a
//! `metric`) and period summary (`GET /analytics/metrics`), and the general insights
//! endpoint (`POST /insights`) that takes any value of the query model.

use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiQuery};
use crate::app::AppState;
use crate::auth::{Caller, CanRead};
use crate::service::analytics::{self, parse_with};
use axum::Json;
use axum::extract::State;
use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sightline_core::code::FieldError;
use sightline_core::model::Role;
use sightline_core::query::answer::{number, objects, shape};
use sightline_core::query::insight::{
    Kind, Query, Series, and_filters, parse_dimension, parse_limit, parse_query, sources_of, with_aggregation,
};
use sightline_core::query::metric::{Aggregation, Catalog, resolve};
use sightline_core::query::time::{DateRange, Granularity, Named, Window, buckets, parse_range, parse_tz, to_date};
use std::time::Duration;

/// A span of time, RFC 3339 UTC; `end` is excluded.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Span {
    pub start: String,
    pub end: String,
}

fn window_json(w: Window) -> Span {
    Span {
        start: w.start.to_rfc3339_opts(SecondsFormat::Secs, true),
        end: w.end.to_rfc3339_opts(SecondsFormat::Secs, true),
    }
}

/// Seed 001's structured query, or seed 004's custom SQL (`query`).
#[derive(utoipa::ToSchema)]
#[schema(as = AnalyticsQueryIn, example = json!({"metric": "events", "dimensions": ["date"], "filters": {"date_range": "-7d"}, "granularity": "day"}))]
#[allow(dead_code)]
pub struct AnalyticsQueryShape {
    /// A metric name (`revenue`, `events`, a custom metric...); required without `query`.
    metric: Option<String>,
    /// `date` (the time bucket) and property fields to group by.
    dimensions: Option<Vec<String>>,
    /// `date_range` (`{start, end}` or a name such as `last_7_days`), `timezone`, and
    /// property conditions.
    filters: Option<Map<String, Value>>,
    /// `sum`, `avg`, `min`, `max`, `count`, `users`, `p50`, `p90`, `p99`.
    aggregation: Option<String>,
    /// `hour`, `day`, `week`, `month`, `quarter`, `year`.
    granularity: Option<String>,
    /// Rows, 1 to 1,000 (100 by default).
    limit: Option<u64>,
    /// A tighter time limit, in milliseconds.
    timeout_ms: Option<u64>,
    /// Seed 004: one read-only SELECT over the tenant's views (`events`, `metric_records`...).
    query: Option<String>,
    /// Values for the query's `?` placeholders.
    parameters: Option<Vec<Value>>,
    /// At most 30.
    timeout_seconds: Option<f64>,
}

crate::json_body!(
    /// Seed 001's query or seed 004's custom SQL (see `AnalyticsQueryIn`).
    AnalyticsQueryBody,
    AnalyticsQueryShape
);

/// Facts about a structured query's answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QueryMetadata {
    total_rows: usize,
    query_time_ms: u64,
    /// Rows were cut at `limit`.
    truncated: bool,
    metric: String,
    timezone: String,
    date_range: Span,
}

/// A structured query's rows: each has `date` and the dimensions asked for, and the
/// metric's value under the metric's name.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QueryAnswer {
    data: Vec<Map<String, Value>>,
    metadata: QueryMetadata,
}

/// `POST /analytics/query`'s answer: rows of a structured query, or a custom SQL result.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum AnalyticsAnswer {
    Query(QueryAnswer),
    Sql(super::custom_sql::SqlAnswer),
}

/// A caller's optional time limit, in milliseconds (never above the configured one).
fn timeout_of(v: Option<&Value>) -> ApiResult<Option<Duration>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(ms) if ms >= 1 => Ok(Some(Duration::from_millis(ms))),
            _ => Err(ApiError::field("timeout_ms", "timeout_ms is a whole number of at least 1")),
        },
        Some(_) => Err(ApiError::field("timeout_ms", "timeout_ms is a whole number")),
    }
}

/// `POST /analytics/query`: seed 001's `metric` body; seed 004's `query` (custom SQL).
pub async fn analytics_query(
    caller: Caller<CanRead>,
    State(state): State<AppState>,
    ApiJson(AnalyticsQueryBody(body)): ApiJson<AnalyticsQueryBody>,
) -> ApiResult<Json<AnalyticsAnswer>> {
    if body.get("query").is_some_and(Value::is_string) {
        return Ok(Json(AnalyticsAnswer::Sql(super::custom_sql::run(&caller, &state, &body).await?)));
    }
    if body.get("metric").is_none() {
        return Err(ApiError::field("metric", "metric is required (a metric name such as revenue or events)"));
    }
    let timeout = timeout_of(body.get("timeout_ms"))?;
    let tenant = caller.tenant.clone();
    let (q, label) = parse_with(&state, &tenant, |cat| seed001_query(&body, cat)).await?;
    let now = Utc::now();
    let (window, _) = q.range.resolve(q.tz, now).map_err(|m| ApiError::field("filters.date_range", m))?;
    let out = analytics::execute(&state, &tenant, &q, window, None, timeout).await?;
    let mut data = match q.kind {
        Kind::Aggregate => {
            let v = out.rows.first().and_then(|r| r.values[0]).or(q.series[0].expr.is_additive().then_some(0.0));
            let mut row = Map::new();
            row.insert(label.clone(), number(v));
            vec![row]
        }
        _ => objects(&q, out.compiled.layout, &out.rows, "date"),
    };
    let mut truncated = out.truncated;
    // With the date as the only dimension, every bucket of the range is a row.
    if let (Some(g), true) = (q.granularity, q.by.is_empty()) {
        let all = buckets(window, g, q.tz).map_err(|m| ApiError::field("granularity", m))?;
        truncated = all.len() > q.limit;
        let got: std::collections::HashMap<String, Value> =
            data.iter().filter_map(|r| Some((r.get("date")?.as_str()?.to_owned(), r.get(&label)?.clone()))).collect();
        let empty = if q.series[0].expr.is_additive() { json!(0) } else { Value::Null };
        data = all
            .iter()
            .take(q.limit)
            .map(|b| {
                let d = g.label(*b);
                let v = got.get(&d).cloned().unwrap_or(empty.clone());
                let mut row = Map::new();
                row.insert("date".into(), json!(d));
                row.insert(label.clone(), v);
                row
            })
            .collect();
    }
    let metadata = QueryMetadata {
        total_rows: data.len(),
        query_time_ms: out.elapsed.as_millis() as u64,
        truncated,
        metric: label,
        timezone: q.tz.name().to_owned(),
        date_range: window_json(window),
    };
    Ok(Json(AnalyticsAnswer::Query(QueryAnswer { data, metadata })))
}

/// Builds a query from seed 001's body: `metric`, `dimensions` (`date` is the time bucket),
/// `filters` (`date_range` and property conditions), `aggregation`, `granularity`, `limit`.
fn seed001_query(body: &Value, cat: &dyn Catalog) -> Result<(Query, String), Vec<FieldError>> {
    let mut errors = Vec::new();
    let name = match &body["metric"] {
        Value::String(s) if !s.trim().is_empty() => s.trim().to_owned(),
        _ => return Err(vec![FieldError::new("metric", "metric is a metric name such as revenue or events")]),
    };
    let mut expr = match resolve(&name, cat) {
        Ok(e) => Some(e),
        Err(e) => {
            errors.push(e.at("metric"));
            None
        }
    };
    if let Some(a) = body.get("aggregation").filter(|a| !a.is_null()) {
        let Some(e) = expr.take() else { return Err(errors) };
        expr = match a.as_str().and_then(Aggregation::parse) {
            Some(agg) => {
                with_aggregation(e, agg, &name).map_err(|m| errors.push(FieldError::new("aggregation", m))).ok()
            }
            None => {
                errors.push(FieldError::new(
                    "aggregation",
                    format!("unknown aggregation {a}; use one of {}", Aggregation::NAMES),
                ));
                None
            }
        };
    }
    let granularity = match body.get("granularity").filter(|g| !g.is_null()) {
        None => Granularity::Day,
        Some(Value::String(g)) => Granularity::parse(g).unwrap_or_else(|| {
            errors.push(FieldError::new(
                "granularity",
                format!("unknown granularity '{g}'; use one of {}", Granularity::NAMES),
            ));
            Granularity::Day
        }),
        Some(_) => {
            errors.push(FieldError::new("granularity", "granularity is a string"));
            Granularity::Day
        }
    };
    // Filters: `date_range`, `timezone`, and the rest as conditions.
    let filters = body.get("filters").cloned().unwrap_or(Value::Null);
    let mut range = DateRange::default();
    let mut tz = chrono_tz::Tz::UTC;
    if let Some(tzv) = body.get("timezone").or(filters.get("timezone")).filter(|t| !t.is_null()) {
        match tzv.as_str().map(|s| parse_tz(s, "timezone")) {
            Some(Ok(t)) => tz = t,
            Some(Err(e)) => errors.push(e),
            None => errors.push(FieldError::new("timezone", "timezone is a string")),
        }
    }
    let mut conditions = Vec::new();
    match &filters {
        Value::Null => {}
        Value::Object(obj) => {
            for (k, v) in obj {
                match k.as_str() {
                    "date_range" => match parse_range(v, "filters.date_range") {
                        Ok(r) => range = r,
                        Err(e) => errors.push(e),
                    },
                    "timezone" => {}
                    "conditions" | "properties" | "and" | "or" => {
                        let v = if k == "and" || k == "or" { json!({ k: v }) } else { v.clone() };
                        conditions.push((format!("filters.{k}"), v));
                    }
                    field => {
                        // `{"event_type": "x"}` is equality, `{"plan": ["a", "b"]}` membership,
                        // `{"amount": {"gt": 10}}` any operator.
                        let cond = match v {
                            Value::Array(_) => json!({"field": field, "op": "in", "value": v}),
                            Value::Object(ops) if !ops.is_empty() => {
                                // `{"gte": 20, "lt": 100}`: every condition holds.
                                let all: Vec<Value> = ops
                                    .iter()
                                    .map(|(op, val)| json!({"field": field, "op": op, "value": val}))
                                    .collect();
                                if all.len() == 1 { all.into_iter().next().expect("one") } else { json!({"and": all}) }
                            }
                            _ => json!({"field": field, "op": "eq", "value": v}),
                        };
                        conditions.push((format!("filters.{field}"), cond));
                    }
                }
            }
        }
        Value::Array(_) => conditions.push(("filters".into(), filters.clone())),
        _ => errors.push(FieldError::new("filters", "filters is an object such as {\"date_range\": {...}}")),
    }
    if let Some(mut e) = expr.take() {
        for (at, c) in &conditions {
            match and_filters(e.clone(), c, at) {
                Ok(x) => e = x,
                Err(err) => errors.push(err),
            }
        }
        expr = Some(e);
    }
    let sources = sources_of(expr.iter());
    let mut by = Vec::new();
    let mut bucket = None;
    match body.get("dimensions").filter(|d| !d.is_null()) {
        None => {}
        Some(Value::Array(items)) => {
            for (i, d) in items.iter().enumerate() {
                match d.as_str().map(str::trim) {
                    Some("date" | "day" | "time" | "timestamp") => bucket = Some(granularity),
                    Some(name) if !name.is_empty() => {
                        match parse_dimension(name, &sources, &format!("dimensions[{i}]")) {
                            Ok(dim) => by.push(dim),
                            Err(e) => errors.push(e),
                        }
                    }
                    _ => errors.push(FieldError::new(format!("dimensions[{i}]"), "a dimension is a field name")),
                }
            }
            if by.len() > 3 {
                errors.push(FieldError::new("dimensions", "at most 3 dimensions besides date"));
            }
        }
        Some(_) => errors.push(FieldError::new("dimensions", "dimensions is an array of field names")),
    }
    if body.get("granularity").is_some_and(|g| !g.is_null()) && bucket.is_none() && by.is_empty() {
        bucket = Some(granularity);
    }
    let limit = parse_limit(body.get("limit"), "limit").map_err(|e| errors.push(e)).unwrap_or(100);
    if !errors.is_empty() {
        return Err(errors);
    }
    let kind = if by.is_empty() && bucket.is_none() { Kind::Aggregate } else { Kind::Breakdown };
    let series = vec![Series { label: name.clone(), expr: expr.expect("no errors") }];
    Ok((Query { kind, series, by, granularity: bucket, range, tz, limit }, name))
}

/// Which period and metrics to summarize.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SummaryParams {
    /// `day`, `week`, `month` (the default) or `year`.
    period: Option<String>,
    /// Comma-separated: `revenue`, `tickets`, `customers`, `events` or metric names; all
    /// four when left out.
    metric_type: Option<String>,
    /// An IANA time zone; UTC by default.
    timezone: Option<String>,
}

/// One metric over the period so far and the same span of the period before.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Change {
    #[schema(value_type = Option<f64>)]
    current: Value,
    #[schema(value_type = Option<f64>)]
    previous: Value,
    /// `null` when the previous value is 0 or missing.
    #[schema(value_type = Option<f64>)]
    change_percent: Value,
}

/// Seed 001's period summary.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Summary {
    period: String,
    /// By metric name.
    metrics: std::collections::BTreeMap<String, Change>,
    current_period: Span,
    previous_period: Span,
    timezone: String,
}

/// Seed 001's `metric_type` values and the metric (and answer key) each stands for.
const SUMMARY_METRICS: [(&str, &str); 4] =
    [("revenue", "revenue"), ("tickets", "tickets_sold"), ("customers", "customers"), ("events", "events")];

/// `GET /analytics/metrics`: each metric over the current period so far (`day`, `week`,
/// `month` or `year`, in `timezone`), against the same span of the period before.
pub async fn summary(
    caller: Caller<CanRead>,
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<SummaryParams>,
) -> ApiResult<Json<Summary>> {
    let period = p.period.as_deref().unwrap_or("month").trim().to_ascii_lowercase();
    let named = match period.as_str() {
        "day" | "today" => Named::Today,
        "week" => Named::ThisWeek,
        "month" => Named::ThisMonth,
        "year" => Named::ThisYear,
        other => {
            return Err(ApiError::field("period", format!("unknown period '{other}'; use day, week, month or year")));
        }
    };
    let tz = match &p.timezone {
        Some(t) => parse_tz(t, "timezone").map_err(|e| ApiError::invalid(vec![e]))?,
        None => chrono_tz::Tz::UTC,
    };
    let wanted: Vec<(String, String)> = match p.metric_type.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => SUMMARY_METRICS.iter().map(|(t, k)| ((*t).to_owned(), (*k).to_owned())).collect(),
        Some(list) => list
            .split(',')
            .map(|t| {
                let t = t.trim();
                let key = SUMMARY_METRICS.iter().find(|(s, _)| *s == t).map(|(_, k)| *k).unwrap_or(t);
                (t.to_owned(), key.to_owned())
            })
            .collect(),
    };
    let tenant = caller.tenant.clone();
    let series = parse_with(&state, &tenant, |cat| {
        let mut errors = Vec::new();
        let mut out = Vec::new();
        for (asked, key) in &wanted {
            match resolve(key, cat) {
                Ok(expr) => out.push(Series { label: key.clone(), expr }),
                Err(e) => errors.push(FieldError::with_code(
                    "metric_type",
                    format!(
                        "{e}; metric_type takes revenue, tickets, customers, events or a metric name (got '{asked}')"
                    ),
                    e.code(),
                )),
            }
        }
        if errors.is_empty() { Ok(out) } else { Err(errors) }
    })
    .await?;
    let now = Utc::now();
    let (full, prev_full) = DateRange::Named(named).resolve(tz, now).map_err(ApiError::internal)?;
    let (current, previous) = to_date(full, prev_full, now);
    let changes = crate::service::metrics::compare(&state, &tenant, series, current, previous, tz).await?;
    let metrics = changes
        .into_iter()
        .map(|m| {
            let change = json!(m.change_percent);
            (m.label, Change { current: number(m.current), previous: number(m.previous), change_percent: change })
        })
        .collect();
    Ok(Json(Summary {
        period,
        metrics,
        current_period: window_json(current),
        previous_period: window_json(previous),
        timezone: tz.name().to_owned(),
    }))
}

/// `POST /insights`: any query of the model (`kind`, `series`, `breakdown`, `granularity`,
/// `date_range`, `timezone`, `filters`, `limit`); `explain: true` adds the compiled SQL
/// (admins only).
/// Any query of the model.
#[derive(utoipa::ToSchema)]
#[schema(as = InsightIn, example = json!({"kind": "trend", "series": ["events"], "granularity": "day", "date_range": "-30d"}))]
#[allow(dead_code)]
pub struct InsightShape {
    /// `aggregate`, `trend`, `breakdown` or `compare` (alias `type`); `breakdown` when a
    /// breakdown is given, else `aggregate`.
    kind: Option<String>,
    /// Up to 10: a metric name, `{metric}`, `{event, aggregation, property, filters}` or
    /// `{formula}`, each with an optional `label`.
    series: Option<Vec<Value>>,
    /// Instead of `series`: one metric name.
    metric: Option<String>,
    /// Up to 3 fields to group by (alias `dimensions`).
    breakdown: Option<Vec<String>>,
    /// For trends: `hour`, `day`, `week`, `month`, `quarter`, `year` (alias `interval`).
    granularity: Option<String>,
    /// `{start, end}` or a name such as `this_month`, `last_week` or `-30d`, `this_month`.
    date_range: Option<Value>,
    /// An IANA time zone; UTC by default.
    timezone: Option<String>,
    /// Conditions, with `and`/`or`, on any field.
    filters: Option<Value>,
    /// Rows or breakdown values, 1 to 1,000.
    limit: Option<u64>,
    /// Admins only: add the compiled SQL to the answer.
    explain: Option<bool>,
    /// A tighter time limit, in milliseconds.
    timeout_ms: Option<u64>,
}

crate::json_body!(
    /// A query of the model (see `InsightIn`).
    InsightBody,
    InsightShape
);

/// Facts about an insight's answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InsightMetadata {
    query_time_ms: u64,
    total_rows: usize,
    truncated: bool,
}

/// An insight's answer: `kind`, `timezone`, `date_range`, and by kind `series` (each with
/// its `value` or its `data` points), `rows` or `current`/`previous`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InsightAnswer {
    #[serde(flatten)]
    answer: sightline_core::query::answer::InsightOut,
    metadata: InsightMetadata,
    /// With `explain`: the statement and its parameters.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    explain: Option<Value>,
}

pub async fn insights(
    caller: Caller<CanRead>,
    State(state): State<AppState>,
    ApiJson(InsightBody(body)): ApiJson<InsightBody>,
) -> ApiResult<Json<InsightAnswer>> {
    let explain = match body.get("explain") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ApiError::field("explain", "explain is a boolean")),
    };
    if explain && !caller.roles.contains(&Role::Admin) {
        return Err(ApiError::forbidden("explain shows the compiled SQL to admins only"));
    }
    let timeout = timeout_of(body.get("timeout_ms"))?;
    let tenant = caller.tenant.clone();
    let q = parse_with(&state, &tenant, |cat| parse_query(&body, cat)).await?;
    let (window, previous) = q.range.resolve(q.tz, Utc::now()).map_err(|m| ApiError::field("date_range", m))?;
    if let Some(g) = q.granularity {
        buckets(window, g, q.tz).map_err(|m| ApiError::field("granularity", m))?;
    }
    // A comparison over a period still running compares the part of it that has elapsed.
    let (window, prev) = match q.kind {
        Kind::Compare => {
            let (w, p) = to_date(window, previous, Utc::now());
            (w, Some(p))
        }
        _ => (window, None),
    };
    let out = analytics::execute(&state, &tenant, &q, window, prev, timeout).await?;
    if q.kind == Kind::Trend && !q.by.is_empty() && out.truncated {
        // Cut rows would read as zeros in the lines: refuse rather than mislead.
        return Err(ApiError::field(
            "breakdown",
            "the trend has more than 10,000 (bucket, breakdown value) points; narrow the range, use a coarser granularity or filter the breakdown",
        ));
    }
    let answer = shape(&q, out.compiled.layout, &out.rows, window, prev);
    let metadata = InsightMetadata {
        query_time_ms: out.elapsed.as_millis() as u64,
        total_rows: out.rows.len(),
        truncated: out.truncated,
    };
    let explain = explain.then(|| analytics::explain(&out.compiled));
    Ok(Json(InsightAnswer { answer, metadata, explain }))
}
