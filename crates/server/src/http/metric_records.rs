//! Seed 000's metrics API under `/api/v1/metrics`: metric records (stored data points) with
//! CRUD, aggregates, per-service and per-type lists and time series. Aggregates and time
//! series are queries of the query model, compiled like every other analysis. Handlers
//! parse and shape; `service::records` stores.

use super::error::{ApiError, ApiResult};
use super::events::rfc3339;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::app::AppState;
use crate::auth::{Caller, CanIngest, CanManage, CanRead};
use crate::service::analytics;
use crate::service::records::{self, Vocabulary};
use crate::store::{MetricChange, MetricFilter, MetricRecord, Page};
use axum::Json;
use axum::extract::{RawQuery, State};
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sightline_core::code::{Code, FieldError};
use sightline_core::event::parse_timestamp;
use sightline_core::query::answer::{number, objects};
use sightline_core::query::field::{Field, Source};
use sightline_core::query::filter::Filter;
use sightline_core::query::insight::{Dimension, Kind, MAX_LIMIT, Query, Series};
use sightline_core::query::metric::{Aggregation, Expr, Measure};
use sightline_core::query::time::{DateRange, Granularity, MIN_YEAR, Window, buckets, parse_bound};

const MAX_NAME_CHARS: usize = 200;
const MAX_JSON_BYTES: usize = 64 * 1024;

/// A stored metric record (seed 000).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecordOut {
    id: String,
    service_name: String,
    metric_type: String,
    metric_name: String,
    value: f64,
    /// When it was measured, RFC 3339 UTC.
    timestamp: String,
    /// The timestamp's day, `YYYY-MM-DD`.
    date: String,
    /// Free-form keys and values to group by.
    #[schema(value_type = Object)]
    dimensions: Value,
    /// Free-form.
    #[schema(value_type = Object)]
    meta: Value,
    created_at: String,
    updated_at: Option<String>,
}

pub fn record_out(r: &MetricRecord) -> RecordOut {
    RecordOut {
        id: r.id.clone(),
        service_name: r.service_name.clone(),
        metric_type: r.metric_type.clone(),
        metric_name: r.metric_name.clone(),
        value: r.value,
        timestamp: rfc3339(r.timestamp),
        date: r.timestamp.format("%Y-%m-%d").to_string(),
        dimensions: r.dimensions.clone(),
        meta: r.meta.clone(),
        created_at: rfc3339(r.created_at),
        updated_at: r.updated_at.map(rfc3339),
    }
}

/// A metric record to store (seed 000).
#[derive(utoipa::ToSchema)]
#[schema(as = RecordIn, example = json!({"service_name": "auth", "metric_type": "engagement", "metric_name": "logins", "value": 7, "dimensions": {"country": "UK"}}))]
#[allow(dead_code)]
pub struct RecordShape {
    /// One of the tenant's service names (seed 000's, or its own).
    service_name: String,
    /// One of the tenant's metric types.
    metric_type: String,
    /// 1 to 200 characters.
    metric_name: String,
    value: f64,
    /// RFC 3339; now when left out.
    timestamp: Option<String>,
    /// Free-form, at most 64 KB.
    dimensions: Option<Map<String, Value>>,
    /// Free-form, at most 64 KB.
    meta: Option<Map<String, Value>>,
}

crate::json_body!(
    /// A metric record (see `RecordIn`).
    RecordBody,
    RecordShape
);

/// What to change of a record; its service, type and name cannot change.
#[derive(utoipa::ToSchema)]
#[schema(as = RecordChange, example = json!({"value": 8}))]
#[allow(dead_code)]
pub struct RecordPatchShape {
    value: Option<f64>,
    timestamp: Option<String>,
    dimensions: Option<Map<String, Value>>,
    meta: Option<Map<String, Value>>,
}

crate::json_body!(
    /// A change to a record (see `RecordChange`).
    RecordPatchBody,
    RecordPatchShape
);

/// A confirmation.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Message {
    message: &'static str,
}

fn text(obj: &Map<String, Value>, k: &str, errors: &mut Vec<FieldError>, required: bool) -> Option<String> {
    match obj.get(k) {
        None | Some(Value::Null) => {
            if required {
                errors.push(FieldError::new(k, format!("{k} is required")));
            }
            None
        }
        Some(Value::String(s)) if s.trim().is_empty() => {
            errors.push(FieldError::new(k, format!("{k} must not be empty")));
            None
        }
        Some(Value::String(s)) if s.chars().count() > MAX_NAME_CHARS => {
            errors.push(FieldError::new(k, format!("{k} has at most {MAX_NAME_CHARS} characters")));
            None
        }
        Some(Value::String(s)) => Some(s.trim().to_owned()),
        Some(_) => {
            errors.push(FieldError::new(k, format!("{k} must be a string")));
            None
        }
    }
}

fn object(obj: &Map<String, Value>, k: &str, errors: &mut Vec<FieldError>) -> Option<Value> {
    match obj.get(k) {
        None | Some(Value::Null) => None,
        Some(v @ Value::Object(_)) if v.to_string().len() <= MAX_JSON_BYTES => Some(v.clone()),
        Some(Value::Object(_)) => {
            errors.push(FieldError::new(k, format!("{k} holds at most {MAX_JSON_BYTES} bytes of JSON")));
            None
        }
        Some(_) => {
            errors.push(FieldError::new(k, format!("{k} must be an object")));
            None
        }
    }
}

fn value_of(obj: &Map<String, Value>, errors: &mut Vec<FieldError>, required: bool) -> Option<f64> {
    match obj.get("value") {
        None | Some(Value::Null) => {
            if required {
                errors.push(FieldError::new("value", "value is required"));
            }
            None
        }
        Some(Value::Number(n)) => match n.as_f64().filter(|f| f.is_finite()) {
            Some(f) => Some(f),
            None => {
                errors.push(FieldError::new("value", "value is out of range"));
                None
            }
        },
        Some(_) => {
            errors.push(FieldError::new("value", "value must be a number"));
            None
        }
    }
}

fn timestamp_of(obj: &Map<String, Value>, now: DateTime<Utc>, errors: &mut Vec<FieldError>) -> Option<DateTime<Utc>> {
    match obj.get("timestamp") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match parse_timestamp(s, now) {
            Ok(t) if t.year() < MIN_YEAR => {
                errors.push(FieldError::new("timestamp", format!("timestamp is before year {MIN_YEAR}")));
                None
            }
            Ok(t) => DateTime::from_timestamp_micros(t.timestamp_micros()),
            Err(m) => {
                errors.push(FieldError::new("timestamp", m));
                None
            }
        },
        Some(_) => {
            errors.push(FieldError::new("timestamp", "timestamp must be an RFC 3339 string"));
            None
        }
    }
}

fn now_micros() -> DateTime<Utc> {
    let t = Utc::now();
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// `POST /metrics`: one record.
pub async fn create(
    caller: Caller<CanIngest>,
    State(state): State<AppState>,
    ApiJson(RecordBody(body)): ApiJson<RecordBody>,
) -> ApiResult<Json<RecordOut>> {
    let Value::Object(obj) = body else {
        return Err(ApiError::field("body", "a metric is a JSON object"));
    };
    let now = now_micros();
    let mut errors = Vec::new();
    let service_name = text(&obj, "service_name", &mut errors, true);
    let metric_type = text(&obj, "metric_type", &mut errors, true);
    let metric_name = text(&obj, "metric_name", &mut errors, true);
    let value = value_of(&obj, &mut errors, true);
    let timestamp = timestamp_of(&obj, now, &mut errors);
    let dimensions = object(&obj, "dimensions", &mut errors);
    let meta = object(&obj, "meta", &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let record = MetricRecord {
        id: uuid::Uuid::new_v4().to_string(),
        service_name: service_name.expect("checked"),
        metric_type: metric_type.expect("checked"),
        metric_name: metric_name.expect("checked"),
        value: value.expect("checked"),
        timestamp: timestamp.unwrap_or(now),
        dimensions: dimensions.unwrap_or_else(|| json!({})),
        meta: meta.unwrap_or_else(|| json!({})),
        created_at: now,
        updated_at: None,
    };
    Ok(Json(record_out(&records::create(&state, &caller.tenant, record).await?)))
}

/// `GET /metrics/{id}`.
pub async fn get(
    caller: Caller<CanRead>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<RecordOut>> {
    Ok(Json(record_out(&records::get(&state, &caller.tenant, &id).await?)))
}

/// `PATCH /metrics/{id}`: value, timestamp, dimensions, meta.
pub async fn update(
    caller: Caller<CanIngest>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(RecordPatchBody(body)): ApiJson<RecordPatchBody>,
) -> ApiResult<Json<RecordOut>> {
    let Value::Object(obj) = body else {
        return Err(ApiError::field("body", "a metric change is a JSON object"));
    };
    let now = now_micros();
    let mut errors = Vec::new();
    for fixed in ["service_name", "metric_type", "metric_name", "id"] {
        if obj.contains_key(fixed) {
            errors.push(FieldError::new(fixed, format!("{fixed} cannot change; create a new metric instead")));
        }
    }
    let change = MetricChange {
        value: value_of(&obj, &mut errors, false),
        timestamp: timestamp_of(&obj, now, &mut errors),
        dimensions: object(&obj, "dimensions", &mut errors),
        meta: object(&obj, "meta", &mut errors),
    };
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    Ok(Json(record_out(&records::update(&state, &caller.tenant, &id, change, now).await?)))
}

/// `DELETE /metrics/{id}`.
pub async fn delete(
    caller: Caller<CanIngest>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Message>> {
    records::delete(&state, &caller.tenant, &id).await?;
    Ok(Json(Message { message: "Metric deleted successfully" }))
}

/// The filters seed 000's list, aggregate and time-series endpoints share.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    service_name: Option<String>,
    metric_type: Option<String>,
    metric_name: Option<String>,
    /// `YYYY-MM-DD` or RFC 3339.
    start_date: Option<String>,
    /// `YYYY-MM-DD` (the whole day is included) or RFC 3339.
    end_date: Option<String>,
    /// Records to skip.
    skip: Option<u64>,
    /// Records per answer, 100 by default; more than 1,000 is clamped.
    limit: Option<u64>,
}

/// The aggregate's parameters: the list filters and `group_by`.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct AggregateParams {
    service_name: Option<String>,
    metric_type: Option<String>,
    metric_name: Option<String>,
    start_date: Option<String>,
    end_date: Option<String>,
    /// Fields to group by (`service_name`, `metric_type`, `metric_name`, `date`, a
    /// dimension as `dimensions.key`): repeated or comma-separated, at most 3 besides `date`.
    group_by: Option<Vec<String>>,
}

/// Sum, average, minimum, maximum and count of the records' `value`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AggregateOut {
    #[schema(value_type = Option<f64>)]
    sum: Value,
    #[schema(value_type = Option<f64>)]
    avg: Value,
    #[schema(value_type = Option<f64>)]
    min: Value,
    #[schema(value_type = Option<f64>)]
    max: Value,
    #[schema(value_type = f64)]
    count: Value,
    /// With `group_by`: one object per group, its keys and the five figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    groups: Option<Vec<Map<String, Value>>>,
    /// With `group_by`: whether groups were cut at 1,000.
    #[serde(skip_serializing_if = "Option::is_none")]
    truncated: Option<bool>,
}

/// One bucket of a time series.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SeriesPoint {
    /// The bucket's start.
    timestamp: String,
    #[schema(value_type = Option<f64>)]
    value: Value,
}

/// A date bound: `YYYY-MM-DD` (an end date includes its whole day) or an RFC 3339 time.
fn bound(field: &str, v: &Option<String>, is_end: bool) -> Result<Option<DateTime<Utc>>, FieldError> {
    let Some(s) = v.as_deref().map(str::trim).filter(|s| !s.is_empty()) else { return Ok(None) };
    // The same limits as every date range, so that no arithmetic on it overflows.
    parse_bound(s, field)?;
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let d = if is_end { d + Duration::days(1) } else { d };
        return Ok(Some(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc()));
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|_| FieldError::new(field, format!("{field} '{s}' is not a date (YYYY-MM-DD) or an RFC 3339 time")))
}

async fn filter_of(
    state: &AppState,
    tenant: &sightline_core::model::TenantId,
    p: &ListParams,
) -> ApiResult<MetricFilter> {
    let mut errors = Vec::new();
    let start = bound("start_date", &p.start_date, false).unwrap_or_else(|e| {
        errors.push(e);
        None
    });
    let end = bound("end_date", &p.end_date, true).unwrap_or_else(|e| {
        errors.push(e);
        None
    });
    if let (Some(s), Some(e)) = (start, end)
        && e <= s
    {
        errors.push(FieldError::new("end_date", "end_date is before start_date"));
    }
    if p.limit == Some(0) {
        errors.push(FieldError::new("limit", "limit must be at least 1"));
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let clean = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
    let f = MetricFilter {
        service_name: clean(&p.service_name),
        metric_type: clean(&p.metric_type),
        metric_name: clean(&p.metric_name),
        start,
        end,
    };
    if f.service_name.is_some() || f.metric_type.is_some() {
        let vocab = Vocabulary::load(state, tenant).await?;
        if let Some(s) = &f.service_name {
            vocab.check("service_name", s)?;
        }
        if let Some(t) = &f.metric_type {
            vocab.check("metric_type", t)?;
        }
    }
    Ok(f)
}

fn page(p: &ListParams) -> Page {
    Page { offset: p.skip.unwrap_or(0), limit: p.limit.unwrap_or(100).min(MAX_LIMIT as u64) }
}

async fn list_with(
    state: &AppState,
    tenant: &sightline_core::model::TenantId,
    p: ListParams,
) -> ApiResult<Json<Vec<RecordOut>>> {
    let f = filter_of(state, tenant, &p).await?;
    let records = state.metrics.list_metrics(tenant, &f, page(&p)).await?;
    Ok(Json(records.iter().map(record_out).collect()))
}

/// `GET /metrics`: oldest first; `skip` and `limit` (default 100, at most 1,000).
pub async fn list(
    caller: Caller<CanRead>,
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<ListParams>,
) -> ApiResult<Json<Vec<RecordOut>>> {
    list_with(&state, &caller.tenant, p).await
}

/// `GET /metrics/by-service/{service_name}`.
pub async fn by_service(
    caller: Caller<CanRead>,
    State(state): State<AppState>,
    ApiPath(service): ApiPath<String>,
    ApiQuery(mut p): ApiQuery<ListParams>,
) -> ApiResult<Json<Vec<RecordOut>>> {
    // A blank path segment names no service; it must not list every record.
    if service.trim().is_empty() {
        return Err(ApiError::field("service_name", "service_name must not be blank"));
    }
    p.service_name = Some(service);
    list_with(&state, &caller.tenant, p).await
}

/// `GET /metrics/by-type/{metric_type}`.
pub async fn by_type(
    caller: Caller<CanRead>,
    State(state): State<AppState>,
    ApiPath(kind): ApiPath<String>,
    ApiQuery(mut p): ApiQuery<ListParams>,
) -> ApiResult<Json<Vec<RecordOut>>> {
    if kind.trim().is_empty() {
        return Err(ApiError::field("metric_type", "metric_type must not be blank"));
    }
    p.metric_type = Some(kind);
    list_with(&state, &caller.tenant, p).await
}

/// The record filter as a query-model filter.
fn as_filter(f: &MetricFilter) -> Option<Filter> {
    let mut parts = Vec::new();
    if let Some(v) = &f.service_name {
        parts.push(Filter::eq(Field::ServiceName, v.clone()));
    }
    if let Some(v) = &f.metric_type {
        parts.push(Filter::eq(Field::MetricType, v.clone()));
    }
    if let Some(v) = &f.metric_name {
        parts.push(Filter::eq(Field::MetricName, v.clone()));
    }
    Filter::and(parts)
}

fn records_measure(agg: Aggregation, filter: &Option<Filter>) -> Expr {
    Expr::Measure(Measure {
        source: Source::MetricRecords,
        agg,
        field: agg.needs_field().then_some(Field::Value),
        filter: filter.clone(),
    })
}

/// All of time, for filters without dates.
fn window_of(f: &MetricFilter) -> Window {
    // Year 1: records may carry any timestamp RFC 3339 can write.
    let lo = DateTime::from_timestamp(-62_135_596_800, 0).expect("0001-01-01");
    let hi = DateTime::from_timestamp(7_258_118_400, 0).expect("2200-01-01");
    Window { start: f.start.unwrap_or(lo), end: f.end.unwrap_or(hi) }
}

/// Reads `group_by` as FastAPI sends a list (`?group_by=a&group_by=b`) or comma-separated.
fn group_by_of(raw: Option<&str>) -> Result<Vec<String>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|e| ApiError::new(Code::Validation, format!("invalid query string: {e}")))?;
    Ok(pairs
        .into_iter()
        .filter(|(k, _)| k == "group_by" || k == "group_by[]")
        .flat_map(|(_, v)| v.split(',').map(|s| s.trim().to_owned()).collect::<Vec<_>>())
        .filter(|s| !s.is_empty())
        .collect())
}

const STATS: [(&str, Aggregation); 5] = [
    ("sum", Aggregation::Sum),
    ("avg", Aggregation::Avg),
    ("min", Aggregation::Min),
    ("max", Aggregation::Max),
    ("count", Aggregation::Count),
];

/// `GET /metrics/aggregate`: sum, avg, min, max and count of `value`; with `group_by`,
/// `groups` holds one row per group with its keys as well.
pub async fn aggregate(
    caller: Caller<CanRead>,
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    ApiQuery(p): ApiQuery<ListParams>,
) -> ApiResult<Json<AggregateOut>> {
    let f = filter_of(&state, &caller.tenant, &p).await?;
    let group_by = group_by_of(raw.as_deref())?;
    let filter = as_filter(&f);
    let series: Vec<Series> = STATS
        .iter()
        .map(|(label, agg)| Series { label: (*label).into(), expr: records_measure(*agg, &filter) })
        .collect();
    let window = window_of(&f);
    let base = Query {
        kind: Kind::Aggregate,
        series,
        by: Vec::new(),
        granularity: None,
        range: DateRange::default(),
        tz: chrono_tz::Tz::UTC,
        limit: 1,
    };
    let total = analytics::execute(&state, &caller.tenant, &base, window, None, None).await?;
    let stat = |i: usize| {
        let v = total.rows.first().and_then(|r| r.values[i]).or((STATS[i].1 == Aggregation::Count).then_some(0.0));
        number(v)
    };
    let mut out = AggregateOut {
        sum: stat(0),
        avg: stat(1),
        min: stat(2),
        max: stat(3),
        count: stat(4),
        groups: None,
        truncated: None,
    };
    if !group_by.is_empty() {
        let mut by = Vec::new();
        let mut granularity = None;
        let mut errors = Vec::new();
        for (i, g) in group_by.iter().enumerate() {
            if g == "date" {
                granularity = Some(Granularity::Day);
                continue;
            }
            match Field::parse(Source::MetricRecords, g) {
                Ok(field) if field != Field::Value => {
                    by.push(Dimension { label: g.clone(), on_events: None, on_records: Some(field) })
                }
                Ok(_) => errors.push(FieldError::new(format!("group_by[{i}]"), "cannot group by value")),
                Err(m) => errors.push(FieldError::new(format!("group_by[{i}]"), m)),
            }
        }
        if by.len() > 3 {
            errors.push(FieldError::new("group_by", "group by at most 3 fields (and date)"));
        }
        if !errors.is_empty() {
            return Err(ApiError::invalid(errors));
        }
        let q = Query { kind: Kind::Breakdown, by, granularity, limit: MAX_LIMIT, ..base };
        let groups = analytics::execute(&state, &caller.tenant, &q, window, None, None).await?;
        let rows = objects(&q, groups.compiled.layout, &groups.rows, "date");
        out.groups = Some(rows);
        out.truncated = Some(groups.truncated);
    }
    Ok(Json(out))
}

/// A time series of one metric's records.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SeriesParams {
    /// Required.
    metric_name: Option<String>,
    service_name: Option<String>,
    start_date: Option<String>,
    end_date: Option<String>,
    /// `hour`, `day` (the default), `week` or `month`.
    interval: Option<String>,
    /// `sum` (the default), `avg`, `min`, `max`, `count`, `p50`, `p90` or `p99`.
    aggregation: Option<String>,
}

/// `GET /metrics/time-series`: one value per bucket (sum by default), empty buckets 0.
/// Without dates it spans the records' own first and last day.
pub async fn time_series(
    caller: Caller<CanRead>,
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<SeriesParams>,
) -> ApiResult<Json<Vec<SeriesPoint>>> {
    let mut errors = Vec::new();
    let name = p.metric_name.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
    if name.is_none() {
        errors.push(FieldError::new("metric_name", "metric_name is required"));
    }
    let interval = p.interval.as_deref().unwrap_or("day");
    let g = match interval {
        "hour" => Some(Granularity::Hour),
        "day" => Some(Granularity::Day),
        "week" => Some(Granularity::Week),
        "month" => Some(Granularity::Month),
        other => {
            errors
                .push(FieldError::new("interval", format!("unknown interval '{other}'; use hour, day, week or month")));
            None
        }
    };
    let agg = match p.aggregation.as_deref() {
        None => Some(Aggregation::Sum),
        Some(a) => match Aggregation::parse(a).filter(|a| *a != Aggregation::Users) {
            Some(a) => Some(a),
            None => {
                errors.push(FieldError::new(
                    "aggregation",
                    "aggregation is one of sum, avg, min, max, count, p50, p90, p99",
                ));
                None
            }
        },
    };
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let params = ListParams {
        service_name: p.service_name,
        metric_name: name,
        start_date: p.start_date,
        end_date: p.end_date,
        ..Default::default()
    };
    let f = filter_of(&state, &caller.tenant, &params).await?;
    let (g, agg) = (g.expect("checked"), agg.expect("checked"));
    let window = match (f.start, f.end) {
        (Some(s), Some(e)) => Window { start: s, end: e },
        _ => match state.metrics.metric_extent(&caller.tenant, &f).await? {
            None => return Ok(Json(Vec::new())),
            Some((lo, hi)) => Window {
                start: f.start.unwrap_or(lo),
                end: f.end.unwrap_or_else(|| g.next(g.truncate(hi.naive_utc())).and_utc()),
            },
        },
    };
    if window.end <= window.start {
        return Ok(Json(Vec::new()));
    }
    let all = buckets(window, g, chrono_tz::Tz::UTC).map_err(|m| ApiError::field("interval", m))?;
    let q = Query {
        kind: Kind::Trend,
        series: vec![Series { label: "value".into(), expr: records_measure(agg, &as_filter(&f)) }],
        by: Vec::new(),
        granularity: Some(g),
        range: DateRange::default(),
        tz: chrono_tz::Tz::UTC,
        limit: MAX_LIMIT,
    };
    if all.len() > MAX_LIMIT {
        return Err(ApiError::field(
            "interval",
            format!(
                "the range holds {} {interval}s; at most {MAX_LIMIT}: narrow the dates or use a coarser interval",
                all.len()
            ),
        ));
    }
    let out = analytics::execute(&state, &caller.tenant, &q, window, None, None).await?;
    let by_bucket: std::collections::HashMap<_, _> =
        out.rows.iter().filter_map(|r| r.bucket.map(|b| (b, r.values[0]))).collect();
    let empty = agg.is_additive().then_some(0.0);
    let data = all
        .iter()
        .map(|b| SeriesPoint { timestamp: g.label(*b), value: number(by_bucket.get(b).copied().flatten().or(empty)) })
        .collect();
    Ok(Json(data))
}

/// `GET /settings/metric-vocabulary`: the service names and metric types accepted.
pub async fn get_vocabulary(caller: Caller<CanRead>, State(state): State<AppState>) -> ApiResult<Json<VocabularyOut>> {
    Ok(Json(vocabulary_out(Vocabulary::load(&state, &caller.tenant).await?)))
}

/// The service names and metric types a tenant's records may use.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VocabularyOut {
    /// Seed 000's and the tenant's own.
    service_names: Vec<String>,
    metric_types: Vec<String>,
    /// The tenant's own only.
    custom_service_names: Vec<String>,
    custom_metric_types: Vec<String>,
}

fn vocabulary_out(v: Vocabulary) -> VocabularyOut {
    VocabularyOut {
        service_names: v.services,
        metric_types: v.types,
        custom_service_names: v.own_services,
        custom_metric_types: v.own_types,
    }
}

/// The tenant's own service names and metric types, added to seed 000's. The names the
/// GET answers with (`custom_service_names`, `custom_metric_types`) are accepted too.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VocabularyBody {
    /// At most 200 names of `[A-Za-z0-9_.-]`, 1 to 100 characters.
    #[serde(alias = "custom_service_names")]
    service_names: Option<Vec<String>>,
    #[serde(alias = "custom_metric_types")]
    metric_types: Option<Vec<String>>,
}

/// `PUT /settings/metric-vocabulary`: the tenant's own service names and metric types,
/// added to the seed's.
pub async fn put_vocabulary(
    caller: Caller<CanManage>,
    State(state): State<AppState>,
    ApiJson(b): ApiJson<VocabularyBody>,
) -> ApiResult<Json<VocabularyOut>> {
    let mut errors = Vec::new();
    let mut clean = |field: &str, list: Option<Vec<String>>| -> Vec<String> {
        let list = list.unwrap_or_default();
        if list.len() > 200 {
            errors.push(FieldError::new(field, "at most 200 values"));
            return Vec::new();
        }
        let mut out: Vec<String> = Vec::new();
        for (i, v) in list.iter().enumerate() {
            let v = v.trim();
            if v.is_empty() || v.len() > 100 || !v.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)) {
                errors.push(FieldError::new(format!("{field}[{i}]"), "a value has 1 to 100 of [A-Za-z0-9_.-]"));
            } else if !out.iter().any(|o| o == v) {
                out.push(v.to_owned());
            }
        }
        out
    };
    let services = clean("service_names", b.service_names);
    let types = clean("metric_types", b.metric_types);
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    Ok(Json(vocabulary_out(records::set_vocabulary(&state, &caller.tenant, services, types).await?)))
}
