//! Event ingest and read-back under `/api/v1/analytics`: seed 001's and seed 004's
//! `/events`, seed 004's `/events/batch`, seed 003's `/track/activity`.

use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::guard::idempotency::{AnswerKept, Ticket};
use crate::app::AppState;
use crate::auth::{Caller, CanIngest, CanRead};
use crate::ingest::to_row_with;
use crate::store::{EventFilter, EventRow, Page, StoredEvent, StoredResponse};
use axum::extract::State;
use axum::http::HeaderValue;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sightline_core::code::{Code, FieldError};
use sightline_core::event::{parse_activity, parse_event, parse_timestamp};

/// Most events one batch may hold.
pub const MAX_BATCH_EVENTS: usize = 1000;
/// Body limits: one event, and one batch.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;
pub const MAX_BATCH_BYTES: usize = 10 * 1024 * 1024;
/// Most events one list answer holds.
pub const MAX_LIST_LIMIT: u64 = 1000;
pub const DEFAULT_LIST_LIMIT: u64 = 100;

/// Now, at the microsecond precision the store keeps, so answers match reads.
fn now() -> DateTime<Utc> {
    let t = Utc::now();
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A time as answers write it: RFC 3339 in UTC, with as many fraction digits as it has.
pub(super) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Commits `rows` and answers `answer` (200, JSON). A keyed request's answer is kept by
/// the ingest writer right after the commit (see `guard::idempotency`).
async fn commit<T: Serialize>(
    state: &AppState,
    ticket: Option<Extension<Ticket>>,
    rows: Vec<EventRow>,
    answer: &T,
) -> ApiResult<Response> {
    const JSON: &str = "application/json";
    let body = serde_json::to_vec(answer).map_err(ApiError::internal)?;
    let kept = ticket.map(|Extension(t)| {
        t.answer(StoredResponse {
            status: 200,
            headers: vec![(CONTENT_TYPE.as_str().to_owned(), JSON.to_owned())],
            body: body.clone(),
        })
    });
    let keyed = kept.is_some();
    crate::service::ingest::track(state, rows, kept).await?;
    let mut res = ([(CONTENT_TYPE, HeaderValue::from_static(JSON))], body).into_response();
    if keyed {
        res.extensions_mut().insert(AnswerKept);
    }
    Ok(res)
}

/// One event as a client sends it: seed 004's `{event_name, properties}` or seed 001's
/// `{event_type, event_data}` (the names in each pair are aliases). Any other top-level
/// field is kept as context.
#[derive(utoipa::ToSchema)]
#[schema(as = EventIn, example = json!({"event_name": "purchase", "user_id": "user-1", "session_id": "session-1", "properties": {"amount": 12.5, "page": "/checkout"}}))]
#[allow(dead_code)]
pub struct EventShape {
    /// The event's name (aliases `event_type`, `event`); 1 to 200 characters.
    event_name: String,
    /// What happened, free-form (alias `event_data`).
    properties: Option<Map<String, Value>>,
    /// The client's id for the event (aliases `uuid`, `messageId`); a retry with the same id
    /// is stored once. Generated when left out.
    event_id: Option<String>,
    /// Alias `userId`.
    user_id: Option<String>,
    /// Alias `sessionId`.
    session_id: Option<String>,
    /// RFC 3339; the time of receipt when left out; at most a day ahead.
    timestamp: Option<String>,
    /// Free-form context (page, device, library...).
    context: Option<Map<String, Value>>,
}

crate::json_body!(
    /// One event, in any seed's shape (see `EventIn`).
    EventBody,
    EventShape
);

/// An activity of the calling user (seed 003): `{activity_type, metadata}`.
#[derive(utoipa::ToSchema)]
#[schema(as = ActivityIn, example = json!({"activity_type": "login", "metadata": {"device": "ios"}}))]
#[allow(dead_code)]
pub struct ActivityShape {
    /// What the user did; becomes the event's name.
    activity_type: String,
    /// Free-form details; become the event's properties.
    metadata: Option<Map<String, Value>>,
    /// RFC 3339; the time of receipt when left out.
    timestamp: Option<String>,
}

crate::json_body!(
    /// An activity (see `ActivityIn`).
    ActivityBody,
    ActivityShape
);

/// A batch of events (seed 004).
#[derive(utoipa::ToSchema)]
#[schema(as = EventBatchIn, example = json!({"events": [{"event_name": "page_view", "user_id": "user-1", "properties": {"page": "/"}}, {"event_name": "purchase", "user_id": "user-1", "properties": {"amount": 20}}]}))]
#[allow(dead_code)]
pub struct BatchShape {
    /// 1 to 1,000 events; each is stored or refused on its own.
    events: Vec<EventShape>,
}

crate::json_body!(
    /// A batch of events (see `EventBatchIn`).
    BatchBody,
    BatchShape
);

/// An event was stored.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Tracked {
    success: bool,
    /// Always `true`.
    tracked: bool,
    event_id: String,
    /// RFC 3339, UTC.
    timestamp: String,
}

/// `POST /events`: one event, in seed 001's or seed 004's shape.
pub async fn track_event(
    caller: Caller<CanIngest>,
    State(state): State<AppState>,
    ticket: Option<Extension<Ticket>>,
    ApiJson(EventBody(body)): ApiJson<EventBody>,
) -> ApiResult<Response> {
    let now = now();
    let ev = parse_event(body, "", now, new_id).map_err(invalid_event)?;
    let answer =
        Tracked { success: true, tracked: true, event_id: ev.event_id.clone(), timestamp: rfc3339(ev.timestamp) };
    commit(&state, ticket, vec![to_row_with(&caller.tenant, ev, now, &state.property_columns)], &answer).await
}

fn invalid_event(errors: Vec<FieldError>) -> ApiError {
    let detail = match errors.as_slice() {
        [one] => one.message.clone(),
        _ => format!("the event has {} invalid fields", errors.len()),
    };
    ApiError::validation(detail, errors)
}

/// `POST /events/batch`: `{"events": [...]}`. Good events are stored even when others
/// fail; the answer lists each failure with its index.
pub async fn track_batch(
    caller: Caller<CanIngest>,
    State(state): State<AppState>,
    ticket: Option<Extension<Ticket>>,
    ApiJson(BatchBody(body)): ApiJson<BatchBody>,
) -> ApiResult<Response> {
    let now = now();
    let Value::Object(mut obj) = body else {
        return Err(ApiError::field("body", "a batch is a JSON object: {\"events\": [...]}"));
    };
    let events = match obj.remove("events") {
        Some(Value::Array(a)) => a,
        None | Some(Value::Null) => return Err(ApiError::field("events", "events is required: an array of events")),
        Some(_) => return Err(ApiError::field("events", "events must be an array of events")),
    };
    if events.is_empty() {
        return Err(ApiError::field("events", "events must hold at least one event"));
    }
    if events.len() > MAX_BATCH_EVENTS {
        return Err(ApiError::new(
            Code::PayloadTooLarge,
            format!("a batch holds at most {MAX_BATCH_EVENTS} events; this one has {}", events.len()),
        ));
    }
    let total = events.len();
    let mut rows = Vec::with_capacity(total);
    let mut ids = Vec::with_capacity(total);
    let mut errors = Vec::new();
    for (i, item) in events.into_iter().enumerate() {
        match parse_event(item, &format!("events[{i}]."), now, new_id) {
            Ok(ev) => {
                ids.push(ev.event_id.clone());
                rows.push(to_row_with(&caller.tenant, ev, now, &state.property_columns));
            }
            Err(errs) => errors.extend(errs.into_iter().map(|e| (i, e))),
        }
    }
    if rows.is_empty() {
        let fields = errors.into_iter().map(|(_, e)| e).collect();
        return Err(ApiError::validation(format!("none of the {total} events is valid"), fields));
    }
    let tracked = rows.len();
    let errors =
        errors.into_iter().map(|(index, e)| BatchError { index, field: e.field, message: e.message }).collect();
    let answer = BatchTracked { success: true, tracked, failed: total - tracked, event_ids: ids, errors };
    commit(&state, ticket, rows, &answer).await
}

/// What a batch stored and what it refused.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchTracked {
    success: bool,
    /// Events stored.
    tracked: usize,
    /// Events refused (each listed in `errors`).
    failed: usize,
    /// The ids of the stored events, in order.
    event_ids: Vec<String>,
    errors: Vec<BatchError>,
}

/// Why one event of a batch was refused.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchError {
    /// Its index in `events`.
    index: usize,
    /// The field, as `events[3].timestamp`.
    field: String,
    message: String,
}

/// An activity was stored (seed 003).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ActivityTracked {
    success: bool,
    tracked: bool,
    message: &'static str,
    event_id: String,
    activity_type: String,
    /// The caller's subject.
    user_id: String,
    timestamp: String,
}

/// `POST /track/activity` (seed 003): an activity of the calling user.
pub async fn track_activity(
    caller: Caller<CanIngest>,
    State(state): State<AppState>,
    ticket: Option<Extension<Ticket>>,
    ApiJson(ActivityBody(body)): ApiJson<ActivityBody>,
) -> ApiResult<Response> {
    let now = now();
    let ev = parse_activity(body, &caller.subject, now, new_id).map_err(invalid_event)?;
    let answer = ActivityTracked {
        success: true,
        tracked: true,
        message: "Activity tracked successfully",
        event_id: ev.event_id.clone(),
        activity_type: ev.name.clone(),
        user_id: caller.subject.clone(),
        timestamp: rfc3339(ev.timestamp),
    };
    commit(&state, ticket, vec![to_row_with(&caller.tenant, ev, now, &state.property_columns)], &answer).await
}

/// Which events to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only events of this name (aliases `event_type`, `name`).
    #[serde(alias = "event_type", alias = "name")]
    event_name: Option<String>,
    user_id: Option<String>,
    session_id: Option<String>,
    /// From this time (RFC 3339, or a date: its midnight UTC); alias `start`.
    #[serde(alias = "start")]
    start_date: Option<String>,
    /// Before this time; alias `end`.
    #[serde(alias = "end")]
    end_date: Option<String>,
    /// Events to skip (without `page`).
    skip: Option<u64>,
    /// Events per answer: at least 1, 100 by default; more than 1,000 is clamped.
    limit: Option<u64>,
    /// 1-based; when present the answer is `{data, pagination}` (seed 001's envelope).
    page: Option<u64>,
}

/// A stored event.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventOut {
    event_id: String,
    event_name: String,
    /// The same as `event_name` (seed 001's word).
    event_type: String,
    user_id: Option<String>,
    session_id: Option<String>,
    /// When it happened, RFC 3339 UTC.
    timestamp: String,
    /// When it was received.
    received_at: String,
    /// Free-form, as sent.
    #[schema(value_type = Object)]
    properties: Value,
    /// The event's other top-level fields.
    #[schema(value_type = Object)]
    context: Value,
}

/// Seed 001's page envelope.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Pagination {
    page: u64,
    limit: u64,
    total: u64,
    total_pages: u64,
}

/// A page of events with its position (when `page` is sent).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventPage {
    data: Vec<EventOut>,
    pagination: Pagination,
}

/// Events, newest first: a bare array, or with `page` a page envelope.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum EventList {
    Bare(Vec<EventOut>),
    Page(EventPage),
}

fn date_param(field: &str, v: &Option<String>, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, FieldError> {
    let Some(s) = v.as_deref().filter(|s| !s.is_empty()) else { return Ok(None) };
    // A bare date means its midnight, UTC.
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(Some(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc()));
    }
    match parse_timestamp(s, now + chrono::Duration::days(36500)) {
        Ok(t) => Ok(Some(t)),
        Err(m) => Err(FieldError::new(field, m.replace("timestamp", field))),
    }
}

pub fn event_out(e: StoredEvent) -> EventOut {
    EventOut {
        event_id: e.event_id,
        event_type: e.name.clone(),
        event_name: e.name,
        user_id: e.user_id,
        session_id: e.session_id,
        timestamp: rfc3339(e.timestamp),
        received_at: rfc3339(e.received_at),
        properties: e.properties,
        context: e.context,
    }
}

/// `GET /events`: newest first.
pub async fn list_events(
    caller: Caller<CanRead>,
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<ListParams>,
) -> ApiResult<Json<EventList>> {
    let now = Utc::now();
    let mut errors = Vec::new();
    let start = date_param("start_date", &p.start_date, now).unwrap_or_else(|e| {
        errors.push(e);
        None
    });
    let end = date_param("end_date", &p.end_date, now).unwrap_or_else(|e| {
        errors.push(e);
        None
    });
    if let (Some(s), Some(e)) = (start, end)
        && e < s
    {
        errors.push(FieldError::new("end_date", "end_date is before start_date"));
    }
    if p.limit == Some(0) {
        errors.push(FieldError::new("limit", "limit must be at least 1"));
    }
    if p.page == Some(0) {
        errors.push(FieldError::new("page", "page starts at 1"));
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let filter = EventFilter { name: p.event_name, user_id: p.user_id, session_id: p.session_id, start, end };
    let limit = p.limit.unwrap_or(DEFAULT_LIST_LIMIT).min(MAX_LIST_LIMIT);
    let offset = match p.page {
        Some(page) => (page - 1).saturating_mul(limit),
        None => p.skip.unwrap_or(0),
    };
    let events = state.events.list_events(&caller.tenant, &filter, Page { offset, limit }).await?;
    let data: Vec<EventOut> = events.into_iter().map(event_out).collect();
    match p.page {
        None => Ok(Json(EventList::Bare(data))),
        Some(page) => {
            let total = state.events.count_events(&caller.tenant, &filter).await?;
            let pagination = Pagination { page, limit, total, total_pages: total.div_ceil(limit) };
            Ok(Json(EventList::Page(EventPage { data, pagination })))
        }
    }
}

/// `GET /events/{id}`: another tenant's event is as absent as one never sent.
pub async fn get_event(
    caller: Caller<CanRead>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<EventOut>> {
    match state.events.get_event(&caller.tenant, &id).await? {
        Some(e) => Ok(Json(event_out(e))),
        None => Err(ApiError::not_found(format!("no event with id '{id}'"))),
    }
}
