//! The analytics engine boundary. Every analysis is asked as a value of the query model
//! (`sightline_core::query`) and answered as a typed table; the implementation behind
//! the trait owns the SQL of its dialect and the reading of its rows. DuckDB is the
//! embedded one ([`crate::store::duckdb::DuckEngine`]); ClickHouse, in cluster mode,
//! implements the same trait once.
//!
//! Tenants stay apart by construction: every method takes the tenant, and the compilers
//! can name a stored relation only through `SqlBuilder::from_tenant`, which brings its
//! tenant filter with it.
//!
//! The canned pages of the seeds are insights: a top-N list is a `breakdown` with a
//! `limit` (top pages, top events), a per-entity list a `breakdown` by that entity (per
//! service, per metric type, over metric records), a daily series a `trend` by `day`;
//! `sightline_core::query::insight` tests that each compiles. So a second engine answers
//! them once it answers [`Engine::insight`].
//!
//! Sessions mean one thing in every analysis: the client's `session_id` when an event
//! carries one, else the user's events without one, cut after 30 minutes without an event
//! (`sightline_core::query::session`).

use crate::error::Result;
use crate::store::Page;
use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sightline_core::model::TenantId;
use sightline_core::query::answer::Row;
use sightline_core::query::compile::Compiled;
use sightline_core::query::funnel::Funnel;
use sightline_core::query::insight::Query;
use sightline_core::query::retention::Retention;
use sightline_core::query::rfm::Scored;
use sightline_core::query::segment::Condition;
use sightline_core::query::time::{Granularity, Window};
use sightline_core::sql::SqlValue;
use std::time::Duration;

/// The rows of an insight, a funnel or a retention, read by the layout their compiler
/// gave, and what they took.
pub struct Outcome {
    /// What ran, for `explain`.
    pub compiled: Compiled,
    pub rows: Vec<Row>,
    /// More rows matched than the answer holds.
    pub truncated: bool,
    pub elapsed: Duration,
}

/// One user's analysis (seed 004's user analytics): the range's activity and, whatever
/// the range, the engagement as of `now`.
pub struct UserQuery {
    pub user_id: String,
    pub window: Window,
    /// The last 30 local days, today whole.
    pub days30: Window,
    pub today: Window,
    pub now: DateTime<Utc>,
    pub tz: chrono_tz::Tz,
}

/// What one user did (see `sightline_core::query::user` for who counts).
#[derive(Debug, Clone, PartialEq)]
pub struct UserFigures {
    pub sessions: u64,
    pub average_session_secs: Option<f64>,
    pub messages: u64,
    pub last_active: Option<DateTime<Utc>>,
    pub satisfaction: Option<f64>,
    /// Distinct topics, first seen first, at most 20.
    pub topics: Vec<String>,
    pub active_today: bool,
    pub active_days_30: u32,
    pub active_7d: bool,
    pub active_14d: bool,
}

/// Conversation analytics over a window (`sightline_core::query::conversations`).
pub struct ConversationQuery {
    pub window: Window,
    pub bot: Option<String>,
    pub granularity: Granularity,
    pub tz: chrono_tz::Tz,
}

/// Most timeline buckets a conversation analysis answers.
pub const MAX_CONVERSATION_BUCKETS: usize = 10_000;

#[derive(Debug, Clone, PartialEq)]
pub struct ConversationFigures {
    pub total: u64,
    pub completed: u64,
    pub resolved: u64,
    pub average_duration_secs: Option<f64>,
    pub average_messages: Option<f64>,
    pub timeline: Vec<ConversationBucket>,
    /// More buckets than [`MAX_CONVERSATION_BUCKETS`] had conversations.
    pub timeline_truncated: bool,
    /// The most discussed topics, at most 50, with their conversations.
    pub topics: Vec<(String, u64)>,
    /// Conversations with any topic, the ones beyond the 50 included.
    pub conversations_with_topic: u64,
}

/// One bucket of the conversation timeline.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ConversationBucket {
    /// The bucket's local date (`2026-03-01`) or hour (`2026-03-01T14:00:00`).
    pub date: String,
    pub conversations: u64,
    pub messages: u64,
    pub unique_users: u64,
}

/// A segment's size and its members' average spend.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmentSummary {
    pub members: u64,
    pub average_spent: f64,
}

/// A member of a segment with the fields its conditions are written on.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SegmentMember {
    pub user_id: String,
    pub total_events: u64,
    pub total_sessions: u64,
    pub total_purchases: u64,
    #[serde(serialize_with = "as_number")]
    pub total_spent: f64,
    pub total_messages: u64,
    #[serde(serialize_with = "as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub first_seen: DateTime<Utc>,
    #[serde(serialize_with = "as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub last_active: DateTime<Utc>,
    pub days_since_last_active: i64,
    /// `high`, `medium`, `low` or `none`: the user's events 31 to 60 days ago.
    pub previous_activity: String,
}

/// Figures of one realtime window (`sightline_core::query::realtime`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct WindowFigures {
    pub users: f64,
    pub conversations: f64,
    pub messages: f64,
    pub response_ms: Option<f64>,
    pub satisfaction: Option<f64>,
    pub events: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RealtimeFigures {
    pub current: WindowFigures,
    /// The same window a day earlier.
    pub previous: WindowFigures,
    /// Events of the 24 hours before the current window.
    pub baseline_events: f64,
}

/// A custom SQL query over the tenant's views, with its bound values.
pub struct SqlQuery<'a> {
    pub text: &'a str,
    pub params: Vec<SqlValue>,
    pub max_rows: usize,
}

/// A free-form query's answer: column names and rows of JSON values.
pub use crate::store::SqlAnswer as SqlTable;

/// Every analysis Sightline answers. Each method reads only `tenant`'s rows, stops at
/// `limit` (a [`crate::error::Error`] of code `timeout`), and reports a query the engine
/// refused as a validation error that names no internal table.
#[async_trait]
pub trait Engine: Send + Sync + 'static {
    /// Aggregate, trend, breakdown or comparison; `previous` ends where `window` starts.
    async fn insight(
        &self,
        tenant: &TenantId,
        q: &Query,
        window: Window,
        previous: Option<Window>,
        limit: Duration,
    ) -> Result<Outcome>;
    async fn funnel(&self, tenant: &TenantId, f: &Funnel, range: Window, limit: Duration) -> Result<Outcome>;
    async fn retention(&self, tenant: &TenantId, r: &Retention, range: Window, limit: Duration) -> Result<Outcome>;
    /// Every customer's RFM scores from purchases in `[since, until)`.
    async fn rfm(
        &self,
        tenant: &TenantId,
        since: Option<DateTime<Utc>>,
        until: DateTime<Utc>,
        limit: Duration,
    ) -> Result<Vec<Scored>>;
    /// `None` when the user has no event at all.
    async fn user(&self, tenant: &TenantId, q: &UserQuery, limit: Duration) -> Result<Option<UserFigures>>;
    async fn conversations(
        &self,
        tenant: &TenantId,
        q: &ConversationQuery,
        limit: Duration,
    ) -> Result<ConversationFigures>;
    async fn segment_summary(
        &self,
        tenant: &TenantId,
        conditions: &[Condition],
        now: DateTime<Utc>,
        limit: Duration,
    ) -> Result<SegmentSummary>;
    /// Members, most recently active first.
    async fn segment_members(
        &self,
        tenant: &TenantId,
        conditions: &[Condition],
        now: DateTime<Utc>,
        page: Page,
        limit: Duration,
    ) -> Result<Vec<SegmentMember>>;
    async fn realtime(&self, tenant: &TenantId, now: DateTime<Utc>, limit: Duration) -> Result<RealtimeFigures>;
    /// A client's SQL over the tenant's views: checked against the sandbox's rules, then
    /// run with at most `max_rows` rows.
    async fn custom_sql(&self, tenant: &TenantId, q: SqlQuery<'_>, limit: Duration) -> Result<SqlTable>;
}

/// A number as answers write it: whole numbers without a fraction.
pub fn as_number<S: serde::Serializer>(x: &f64, s: S) -> std::result::Result<S::Ok, S::Error> {
    sightline_core::query::answer::number(Some(*x)).serialize(s)
}

/// A time as answers write it: RFC 3339 in UTC, with a fraction only when there is one.
pub fn as_rfc3339<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> std::result::Result<S::Ok, S::Error> {
    rfc3339(t).serialize(s)
}

pub fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}
