//! The analytics engine on embedded DuckDB: compiles each query-model value with the
//! DuckDB dialect, runs it on the reader pool under its time limit, and reads the rows
//! into typed tables. Row positions are known here, where the statements are, and
//! nowhere else.

use super::reader::DuckReader;
use super::runner::micros;
use crate::engine::{
    ConversationBucket, ConversationFigures, ConversationQuery, Engine, MAX_CONVERSATION_BUCKETS, Outcome,
    RealtimeFigures, SegmentMember, SegmentSummary, SqlQuery, SqlTable, UserFigures, UserQuery, WindowFigures,
};
use crate::error::{Error, Result};
use crate::store::{Page, QueryRunner, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use duckdb::types::Value;
use sightline_core::code::{Code, FieldError};
use sightline_core::model::TenantId;
use sightline_core::query::compile::{Compiled, Dialect, compile_with};
use sightline_core::query::field::PropertyColumns;
use sightline_core::query::funnel::{Funnel, compile_funnel};
use sightline_core::query::insight::{MAX_LIMIT, Query};
use sightline_core::query::retention::{Retention, compile_retention};
use sightline_core::query::rfm::{Scored, compile_rfm, scored};
use sightline_core::query::segment::Condition;
use sightline_core::query::time::Window;
use sightline_core::query::{conversations, realtime, segment, user};
use sightline_core::sql::SqlValue;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The compilers' dialect here.
const DIALECT: Dialect = Dialect::DuckDb;

pub struct DuckEngine {
    reader: Arc<DuckReader>,
    /// Properties events keep in columns of their own.
    cols: PropertyColumns,
}

impl DuckEngine {
    pub fn new(reader: Arc<DuckReader>, cols: PropertyColumns) -> Self {
        Self { reader, cols }
    }

    async fn compiled(&self, compiled: Compiled, limit: Duration) -> Result<Outcome> {
        let started = Instant::now();
        let mut rows = self.reader.run(&compiled, limit).await?;
        let truncated = rows.len() > compiled.max_rows;
        rows.truncate(compiled.max_rows);
        Ok(Outcome { compiled, rows, truncated, elapsed: started.elapsed() })
    }

    /// Runs a statement and reads at most `max_rows` rows of cells (and whether more
    /// were there).
    async fn cells(&self, statement: (String, Vec<SqlValue>), limit: Duration, max_rows: usize) -> Result<Cells> {
        let (sql, params) = statement;
        let rows = self
            .reader
            .interruptible(limit, move |conn| {
                let mut stmt = conn.prepare_cached(&sql)?;
                let mut rows = stmt.query(duckdb::params_from_iter(params.iter().map(super::reader::to_duck)))?;
                let mut out = Vec::new();
                while let Some(r) = rows.next()? {
                    if out.len() > max_rows {
                        break;
                    }
                    // Known once the statement ran.
                    let n = r.as_ref().column_count();
                    out.push((0..n).map(|i| r.get::<_, Value>(i)).collect::<duckdb::Result<Vec<_>>>()?);
                }
                Ok(out)
            })
            .await?;
        let truncated = rows.len() > max_rows;
        Ok(Cells { rows: rows.into_iter().take(max_rows).collect(), truncated })
    }
}

/// Rows of DuckDB values, read by position through typed getters.
struct Cells {
    rows: Vec<Vec<Value>>,
    truncated: bool,
}

impl Cells {
    fn first(&self) -> Option<&[Value]> {
        self.rows.first().map(Vec::as_slice)
    }
}

fn f64_of(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::TinyInt(n) => Some(*n as f64),
        Value::SmallInt(n) => Some(*n as f64),
        Value::Int(n) => Some(*n as f64),
        Value::BigInt(n) => Some(*n as f64),
        Value::HugeInt(n) => Some(*n as f64),
        Value::UTinyInt(n) => Some(*n as f64),
        Value::USmallInt(n) => Some(*n as f64),
        Value::UInt(n) => Some(*n as f64),
        Value::UBigInt(n) => Some(*n as f64),
        Value::UHugeInt(n) => Some(*n as f64),
        Value::Float(x) => Some(*x as f64),
        Value::Double(x) => Some(*x),
        Value::Decimal(d) => d.to_string().parse().ok(),
        _ => None,
    }
    .filter(|x: &f64| x.is_finite())
}

fn u64_of(v: Option<&Value>) -> u64 {
    f64_of(v).map_or(0, |x| x.max(0.0) as u64)
}

fn bool_of(v: Option<&Value>) -> bool {
    matches!(v, Some(Value::Boolean(true)))
}

fn text_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Text(s) | Value::Enum(s) => Some(s.clone()),
        _ => None,
    }
}

fn time_of(v: Option<&Value>) -> Option<DateTime<Utc>> {
    let Some(Value::Timestamp(unit, n)) = v else { return None };
    DateTime::from_timestamp_micros(micros(*unit, *n))
}

#[async_trait]
impl Engine for DuckEngine {
    async fn insight(
        &self,
        tenant: &TenantId,
        q: &Query,
        window: Window,
        previous: Option<Window>,
        limit: Duration,
    ) -> Result<Outcome> {
        let compiled = compile_with(q, tenant, window, previous, MAX_LIMIT, DIALECT, &self.cols)
            .map_err(|m| Error::new(Code::Validation, m))?;
        self.compiled(compiled, limit).await
    }

    async fn funnel(&self, tenant: &TenantId, f: &Funnel, range: Window, limit: Duration) -> Result<Outcome> {
        self.compiled(compile_funnel(f, tenant, range, &self.cols, DIALECT), limit).await
    }

    async fn retention(&self, tenant: &TenantId, r: &Retention, range: Window, limit: Duration) -> Result<Outcome> {
        self.compiled(compile_retention(r, tenant, range, DIALECT), limit).await
    }

    async fn rfm(
        &self,
        tenant: &TenantId,
        since: Option<DateTime<Utc>>,
        until: DateTime<Utc>,
        limit: Duration,
    ) -> Result<Vec<Scored>> {
        let out = self.compiled(compile_rfm(tenant, since, until, &self.cols, DIALECT), limit).await?;
        Ok(scored(&out.rows))
    }

    async fn user(&self, tenant: &TenantId, q: &UserQuery, limit: Duration) -> Result<Option<UserFigures>> {
        let (activity, topics, engagement) = tokio::try_join!(
            self.cells(user::activity_sql(tenant, &q.user_id, q.window, DIALECT), limit, 1),
            self.cells(user::topics_sql(tenant, &q.user_id, q.window, DIALECT), limit, 20),
            self.cells(user::engagement_sql(tenant, &q.user_id, q.days30, q.today, q.now, q.tz, DIALECT), limit, 1),
        )?;
        // (active today, active days of 30, active in 7 days, in 14 days, any event ever)
        let e = engagement.first().unwrap_or_default();
        if !bool_of(e.get(4)) {
            return Ok(None);
        }
        // (sessions, average session seconds, messages, last active, satisfaction, events)
        let a = activity.first().unwrap_or_default();
        Ok(Some(UserFigures {
            sessions: u64_of(a.first()),
            average_session_secs: f64_of(a.get(1)),
            messages: u64_of(a.get(2)),
            last_active: time_of(a.get(3)),
            satisfaction: f64_of(a.get(4)),
            topics: topics.rows.iter().filter_map(|r| text_of(r.first())).collect(),
            active_today: bool_of(e.first()),
            active_days_30: u64_of(e.get(1)) as u32,
            active_7d: bool_of(e.get(2)),
            active_14d: bool_of(e.get(3)),
        }))
    }

    async fn conversations(
        &self,
        tenant: &TenantId,
        q: &ConversationQuery,
        limit: Duration,
    ) -> Result<ConversationFigures> {
        let (w, bot, cols) = (q.window, q.bot.as_deref(), &self.cols);
        let (summary, timeline, topics) = tokio::try_join!(
            self.cells(conversations::summary_sql(tenant, w, bot, cols, DIALECT), limit, 1),
            self.cells(
                conversations::timeline_sql(tenant, w, bot, q.granularity, q.tz, cols, DIALECT),
                limit,
                MAX_CONVERSATION_BUCKETS
            ),
            self.cells(conversations::topics_sql(tenant, w, bot, cols, DIALECT), limit, 50),
        )?;
        // (total, completed, resolved, average duration s, average messages)
        let s = summary.first().unwrap_or_default();
        Ok(ConversationFigures {
            total: u64_of(s.first()),
            completed: u64_of(s.get(1)),
            resolved: u64_of(s.get(2)),
            average_duration_secs: f64_of(s.get(3)),
            average_messages: f64_of(s.get(4)),
            // (bucket, conversations, messages, unique users)
            timeline: timeline
                .rows
                .iter()
                .map(|r| ConversationBucket {
                    date: text_of(r.first()).unwrap_or_default(),
                    conversations: u64_of(r.get(1)),
                    messages: u64_of(r.get(2)),
                    unique_users: u64_of(r.get(3)),
                })
                .collect(),
            timeline_truncated: timeline.truncated,
            // (topic, conversations, conversations with any topic)
            conversations_with_topic: topics.first().map_or(0, |r| u64_of(r.get(2))),
            topics: topics.rows.iter().filter_map(|r| Some((text_of(r.first())?, u64_of(r.get(1))))).collect(),
        })
    }

    async fn segment_summary(
        &self,
        tenant: &TenantId,
        conditions: &[Condition],
        now: DateTime<Utc>,
        limit: Duration,
    ) -> Result<SegmentSummary> {
        let c = self.cells(segment::summary_sql(tenant, conditions, now, DIALECT), limit, 1).await?;
        // (members, average total_spent)
        let r = c.first().unwrap_or_default();
        Ok(SegmentSummary { members: u64_of(r.first()), average_spent: f64_of(r.get(1)).unwrap_or(0.0) })
    }

    async fn segment_members(
        &self,
        tenant: &TenantId,
        conditions: &[Condition],
        now: DateTime<Utc>,
        page: Page,
        limit: Duration,
    ) -> Result<Vec<SegmentMember>> {
        let (rows, skip) =
            (usize::try_from(page.limit).unwrap_or(usize::MAX), usize::try_from(page.offset).unwrap_or(usize::MAX));
        let statement = segment::members_sql(tenant, conditions, now, rows, skip, DIALECT);
        let c = self.cells(statement, limit, rows).await?;
        // In the order of segment::FIELDS, after user_id.
        Ok(c.rows
            .iter()
            .map(|r| SegmentMember {
                user_id: text_of(r.first()).unwrap_or_default(),
                total_events: u64_of(r.get(1)),
                total_sessions: u64_of(r.get(2)),
                total_purchases: u64_of(r.get(3)),
                total_spent: f64_of(r.get(4)).unwrap_or(0.0),
                total_messages: u64_of(r.get(5)),
                first_seen: time_of(r.get(6)).unwrap_or_default(),
                last_active: time_of(r.get(7)).unwrap_or_default(),
                days_since_last_active: f64_of(r.get(8)).unwrap_or(0.0) as i64,
                previous_activity: text_of(r.get(9)).unwrap_or_default(),
            })
            .collect())
    }

    async fn realtime(&self, tenant: &TenantId, now: DateTime<Utc>, limit: Duration) -> Result<RealtimeFigures> {
        let c = self.cells(realtime::realtime_sql(tenant, now, DIALECT), limit, 3).await?;
        // (window, users, conversations, messages, response ms, satisfaction, events)
        let window = |name: &str| c.rows.iter().find(|r| text_of(r.first()).as_deref() == Some(name));
        let figures = |name: &str| {
            window(name).map_or_else(WindowFigures::default, |r| WindowFigures {
                users: f64_of(r.get(1)).unwrap_or(0.0),
                conversations: f64_of(r.get(2)).unwrap_or(0.0),
                messages: f64_of(r.get(3)).unwrap_or(0.0),
                response_ms: f64_of(r.get(4)),
                satisfaction: f64_of(r.get(5)),
                events: f64_of(r.get(6)).unwrap_or(0.0),
            })
        };
        Ok(RealtimeFigures {
            current: figures("current"),
            previous: figures("previous"),
            baseline_events: window("baseline").and_then(|r| f64_of(r.get(6))).unwrap_or(0.0),
        })
    }

    async fn custom_sql(&self, tenant: &TenantId, q: SqlQuery<'_>, limit: Duration) -> Result<SqlTable> {
        let checked = sightline_core::custom_sql::sandbox(q.text, tenant, q.params.len()).map_err(|r| {
            let message = format!("{} (rule: {})", r.detail, r.rule);
            Error::validation(format!("the query was refused: {message}"), vec![FieldError::new("query", message)])
        })?;
        // Wrapped, so that the engine stops after the cap (the row past it says "truncated").
        let capped = format!("SELECT * FROM ({}) AS custom_query LIMIT {}", checked.sql, q.max_rows + 1);
        match self.reader.run_sql(&capped, q.params, limit, q.max_rows).await {
            Ok(table) => Ok(table),
            // The engine refused the client's own query (an unknown column, a bad cast): say
            // why, without the sandbox's internal names.
            Err(StoreError::Backend(e)) => {
                let text = format!("{e:#}");
                let text = text.split(": Error code").next().unwrap_or(&text).trim().replace("__sl_", "");
                Err(Error::validation(format!("the query failed: {text}"), vec![FieldError::new("query", text)]))
            }
            Err(other) => Err(other.into()),
        }
    }
}
