//! Property tests of the query compiler (`sightline_core::query::compile`) against a real
//! in-memory DuckDB:
//! 1. random valid queries (every kind, op, aggregation, granularity, time zone) compile,
//!    bind as many values as they have `?`, and run;
//! 2. a tenant's answers never change when another tenant's data arrives;
//! 3. answers match an independent computation in plain Rust (filters, aggregations,
//!    time buckets in four zones), and trends / breakdowns / comparisons add up to the
//!    aggregate;
//! 4. hostile property keys and values never change the SQL's shape, only its values.
//!
//! Every random test runs from a fixed seed; set `SIGHTLINE_PROPS_SEED=<u64>` to try
//! another. A failing case prints its seed, its index and the query.

use chrono::{DateTime, Datelike, Duration as Span, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value, json};
use sightline::ingest::to_row;
use sightline::store::duckdb::{DuckReader, DuckSink};
use sightline::store::{EventRow, EventSink, MetricRecord, QueryRunner};
use sightline_core::event::NewEvent;
use sightline_core::model::TenantId;
use sightline_core::query::answer::{Row, shape};
use sightline_core::query::compile::{Compiled, Dialect, compile, compile_with};
use sightline_core::query::field::{Field, PropertyColumns, Source};
use sightline_core::query::filter::parse_filter;
use sightline_core::query::insight::{Kind, Query, parse_query};
use sightline_core::query::metric::{Aggregation, Catalog, Definition, Formula, Measure, NoCatalog};
use sightline_core::query::time::{Window, to_date};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

// ---------------------------------------------------------------------------------------
// A tiny seeded PRNG (xorshift64*), so no crate is needed and every run is repeatable.

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // Never 0 (xorshift's fixed point); mix the seed so that 1, 2, 3 differ widely.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    fn pick<T: Clone>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())].clone()
    }
}

fn base_seed() -> u64 {
    std::env::var("SIGHTLINE_PROPS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5167_4C1E_2026)
}

/// Fails a case with a message (the caller adds the seed and the query).
macro_rules! ensure {
    ($cond:expr, $($t:tt)*) => {
        if !$cond {
            return Err(format!($($t)*));
        }
    };
}

// ---------------------------------------------------------------------------------------
// Time.

const NOW: &str = "2026-04-05T12:00:00Z";
const DATA_START: &str = "2026-01-20T00:00:00Z";
const DATA_END: &str = "2026-04-10T00:00:00Z";
const ZONES: &[&str] = &["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata"];
const GRANULARITIES: &[&str] = &["hour", "day", "week", "month"];

/// Instants at local midnights, DST changes (New York 2026-03-08 07:00Z, Paris 2026-03-29
/// 01:00Z), month and ISO-week starts, and `now`: where bucketing goes wrong first.
const EDGES: &[&str] = &[
    "2026-03-08T06:59:59.999999Z",
    "2026-03-08T07:00:00Z",
    "2026-03-08T04:59:59Z",
    "2026-03-08T05:00:00Z",
    "2026-03-09T03:59:59Z",
    "2026-03-09T04:00:00Z",
    "2026-03-29T00:59:59Z",
    "2026-03-29T01:00:00Z",
    "2026-03-28T23:00:00Z",
    "2026-03-29T22:00:00Z",
    "2026-01-31T23:59:59Z",
    "2026-02-01T00:00:00Z",
    "2026-03-01T04:59:59Z",
    "2026-03-01T05:00:00Z",
    "2026-02-28T18:29:59Z",
    "2026-02-28T18:30:00Z",
    "2026-02-28T23:00:00Z",
    "2026-03-02T00:00:00Z",
    "2026-04-05T12:00:00Z",
    "2026-04-05T11:59:59Z",
    "2026-02-20T05:00:00Z",
    "2026-04-03T03:59:59Z",
];

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn now() -> DateTime<Utc> {
    at(NOW)
}

fn tz(name: &str) -> Tz {
    name.parse().unwrap()
}

/// Local midnight of `d` in `zone`, computed here rather than by the crate under test.
fn local_midnight(zone: Tz, d: NaiveDate) -> DateTime<Utc> {
    zone.from_local_datetime(&d.and_time(NaiveTime::MIN)).earliest().unwrap().with_timezone(&Utc)
}

fn local(zone: Tz, t: DateTime<Utc>) -> NaiveDateTime {
    t.with_timezone(&zone).naive_local()
}

fn truncate(g: &str, t: NaiveDateTime) -> NaiveDateTime {
    let d = t.date();
    match g {
        "hour" => d.and_hms_opt(t.hour(), 0, 0).unwrap(),
        "day" => d.and_time(NaiveTime::MIN),
        "week" => (d - Span::days(d.weekday().num_days_from_monday() as i64)).and_time(NaiveTime::MIN),
        "month" => NaiveDate::from_ymd_opt(d.year(), d.month(), 1).unwrap().and_time(NaiveTime::MIN),
        other => panic!("granularity {other}"),
    }
}

// ---------------------------------------------------------------------------------------
// Generated data.

#[derive(Debug, Clone)]
struct Ev {
    id: String,
    name: String,
    user: Option<String>,
    session: Option<String>,
    ts: DateTime<Utc>,
    props: Map<String, Value>,
    /// The session by the one definition (`Data::sessionize`).
    key: Option<String>,
}

#[derive(Debug, Clone)]
struct Rec {
    id: String,
    service: String,
    mtype: String,
    name: String,
    value: f64,
    ts: DateTime<Utc>,
    dims: Value,
    meta: Value,
}

#[derive(Debug, Clone, Default)]
struct Data {
    events: Vec<Ev>,
    records: Vec<Rec>,
}

impl Data {
    /// Each event's session, computed here from the rule as written: its `session_id`;
    /// else its user's events without one, in time order, a new session after more than
    /// 30 minutes; else none. A session is named by its user and its first event.
    fn sessionize(&mut self) {
        let mut by_user: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, e) in self.events.iter_mut().enumerate() {
            e.key = e.session.clone();
            if let (None, Some(u)) = (&e.session, &e.user) {
                by_user.entry(u.clone()).or_default().push(i);
            }
        }
        for (user, mut idx) in by_user {
            idx.sort_by_key(|&i| self.events[i].ts);
            let (mut start, mut last) = (None, None);
            for i in idx {
                let ts = self.events[i].ts;
                if last.is_none_or(|l: DateTime<Utc>| ts - l > chrono::Duration::minutes(30)) {
                    start = Some(ts);
                }
                last = Some(ts);
                self.events[i].key = Some(format!("{user}#{}", start.unwrap().timestamp_micros()));
            }
        }
    }
}

const EVENT_NAMES: &[&str] = &[
    "page_view",
    "purchase",
    "ticket_purchase",
    "signup",
    "api_request",
    "message",
    "conversation_started",
    "satisfaction",
    "Purchase",
    "ünï évent",
];
const PLANS: &[&str] = &["free", "pro", "Pro", "team", "enterprise", "ünïcode plan"];
const COUNTRIES: &[&str] = &["FR", "US", "IN", "de", "Ünited"];
const TIERS: &[&str] = &["gold", "silver", "Gold"];
const SERVICES: &[&str] = &["api", "web", "worker"];
const METRIC_TYPES: &[&str] = &["gauge", "counter", "histogram"];
const METRIC_NAMES: &[&str] = &["latency", "cpu", "signups", "Latency"];
const REGIONS: &[&str] = &["eu", "us", "ap"];

fn random_ts(rng: &mut Rng) -> DateTime<Utc> {
    if rng.chance(0.08) {
        return at(rng.pick(EDGES));
    }
    let (s, e) = (at(DATA_START).timestamp_micros(), at(DATA_END).timestamp_micros());
    DateTime::from_timestamp_micros(s + (rng.next() % (e - s) as u64) as i64).unwrap()
}

fn gen_data(rng: &mut Rng, n_events: usize, n_records: usize) -> Data {
    let mut events = Vec::with_capacity(n_events);
    for i in 0..n_events {
        let mut p = Map::new();
        if rng.chance(0.7) {
            // Whole amounts as JSON integers; others never whole, so their text is unique.
            let whole = rng.below(500) as f64;
            let v = if rng.chance(0.7) { json!(whole as i64) } else { json!(whole + rng.pick(&[0.25, 0.5, 0.75])) };
            p.insert("amount".into(), v);
        }
        if rng.chance(0.8) {
            p.insert("plan".into(), json!(rng.pick(PLANS)));
        }
        match rng.below(10) {
            0 => {
                p.insert("country".into(), Value::Null);
            }
            1..=6 => {
                p.insert("country".into(), json!(rng.pick(COUNTRIES)));
            }
            _ => {}
        }
        if rng.chance(0.6) {
            p.insert("n".into(), json!(rng.below(21)));
        }
        let tag = match rng.below(8) {
            0 => Some(json!("7")),
            1 => Some(json!("abc")),
            2 => Some(json!(3)),
            3 => Some(json!(true)),
            4 => Some(Value::Null),
            5 => Some(json!("-2.5")),
            _ => None,
        };
        if let Some(t) = tag {
            p.insert("tag".into(), t);
        }
        if rng.chance(0.5) {
            p.insert("flag".into(), json!(rng.chance(0.5)));
        }
        if rng.chance(0.4) {
            p.insert("info".into(), json!({"tier": rng.pick(TIERS)}));
        }
        if rng.chance(0.2) {
            p.insert("key with space".into(), json!(format!("v{}", rng.below(3))));
        }
        if rng.chance(0.2) {
            p.insert("customer_id".into(), json!(format!("c{}", rng.below(10))));
        }
        if rng.chance(0.5) {
            p.insert("score".into(), json!(rng.unit() * 100.0));
        }
        if rng.chance(0.3) {
            p.insert("status_code".into(), json!(rng.pick(&[200, 404, 500, 503])));
        }
        if rng.chance(0.2) {
            p.insert("token_count".into(), json!(rng.below(4000)));
            p.insert("cost".into(), json!(rng.below(100) as f64 + 0.25));
            p.insert("response_time_ms".into(), json!(rng.below(900)));
        }
        let name = rng.pick(EVENT_NAMES).to_string();
        let user = (!rng.chance(0.1)).then(|| format!("u{}", rng.below(50)));
        let session = (!rng.chance(0.2)).then(|| format!("s{}", rng.below(200)));
        events.push(Ev { id: format!("ev-{i}"), name, user, session, ts: random_ts(rng), props: p, key: None });
    }
    let mut records = Vec::with_capacity(n_records);
    for i in 0..n_records {
        let mut dims = Map::new();
        if rng.chance(0.8) {
            dims.insert("region".into(), json!(rng.pick(REGIONS)));
        }
        if rng.chance(0.7) {
            dims.insert("host".into(), json!(format!("h{}", rng.below(5))));
        }
        let meta = if rng.chance(0.5) { json!({"v": rng.below(3)}) } else { json!({}) };
        let value = if rng.chance(0.5) { rng.below(1000) as f64 } else { rng.unit() * 200.0 - 50.0 };
        records.push(Rec {
            id: format!("rec-{i}"),
            service: rng.pick(SERVICES).to_string(),
            mtype: rng.pick(METRIC_TYPES).to_string(),
            name: rng.pick(METRIC_NAMES).to_string(),
            value,
            ts: random_ts(rng),
            dims: Value::Object(dims),
            meta,
        });
    }
    let mut d = Data { events, records };
    d.sessionize();
    d
}

/// Top-level keys the stores keep in columns of their own (the service's defaults and
/// some of the generated keys, including a mixed-type one, a boolean, an object and one
/// with a space), so every query also runs through the materialized-column path.
const KEPT: &[&str] =
    &["page", "amount", "plan", "customer_id", "status_code", "tag", "flag", "info", "country", "key with space"];

struct Store {
    sink: DuckSink,
    reader: DuckReader,
    cols: PropertyColumns,
}

impl Store {
    fn new() -> Store {
        let kept: Vec<String> = KEPT.iter().map(|s| s.to_string()).collect();
        let (sink, reader, cols) = sightline::store::duckdb::open_with(None, 2, &kept, &Default::default()).unwrap();
        assert_eq!(cols.slots().len(), KEPT.len());
        Store { sink, reader, cols }
    }

    fn load(&mut self, tenant: &TenantId, d: &Data) {
        let rows: Vec<EventRow> = d
            .events
            .iter()
            .map(|e| {
                let ev = NewEvent {
                    event_id: e.id.clone(),
                    name: e.name.clone(),
                    user_id: e.user.clone(),
                    session_id: e.session.clone(),
                    timestamp: e.ts,
                    properties: e.props.clone(),
                    context: Map::new(),
                };
                to_row(tenant, ev, e.ts)
            })
            .collect();
        let out = self.sink.commit(&rows).unwrap();
        assert_eq!(out.inserted, rows.len() as u64, "every generated event is stored");
        let recs: Vec<MetricRecord> = d
            .records
            .iter()
            .map(|r| MetricRecord {
                id: r.id.clone(),
                service_name: r.service.clone(),
                metric_type: r.mtype.clone(),
                metric_name: r.name.clone(),
                value: r.value,
                timestamp: r.ts,
                dimensions: r.dims.clone(),
                meta: r.meta.clone(),
                created_at: r.ts,
                updated_at: None,
            })
            .collect();
        self.sink.insert_metrics(tenant, &recs).unwrap();
    }

    async fn run(&self, c: &Compiled) -> Result<Vec<Row>, String> {
        QueryRunner::run(&self.reader, c, Duration::from_secs(10)).await.map_err(|e| format!("run failed: {e}"))
    }
}

fn tenant(s: &str) -> TenantId {
    TenantId::parse(s).unwrap()
}

// ---------------------------------------------------------------------------------------
// Fields, filters and their meaning in plain Rust.

/// A field as the Rust model reads it.
#[derive(Debug, Clone, PartialEq)]
enum Fld {
    Name,
    User,
    Session,
    /// The session by the one definition: not a name clients write, the `sessions`
    /// metric counts it.
    SessionKey,
    Customer,
    Prop(Vec<String>),
    Value,
    Service,
    MType,
    MName,
    Dim(Vec<String>),
    Meta(Vec<String>),
}

fn path(p: &str) -> Vec<String> {
    p.split('.').map(str::to_owned).collect()
}

/// A field as a client names it, with what it means on each source (`None`: not used there).
#[derive(Debug, Clone)]
struct FieldRef {
    name: String,
    ev: Option<Fld>,
    rec: Option<Fld>,
    /// Text operands to compare it with.
    texts: &'static [&'static str],
    /// Number operands.
    numbers: &'static [f64],
    /// Whether text comparisons have one obvious meaning in Rust (the values are strings,
    /// integers or booleans, never fractional numbers whose text DuckDB might spell differently).
    text_safe: bool,
}

impl FieldRef {
    fn on(&self, s: Source) -> Option<&Fld> {
        match s {
            Source::Events => self.ev.as_ref(),
            Source::MetricRecords => self.rec.as_ref(),
        }
    }
    fn kinds(&self) -> (bool, bool) {
        // (text operands allowed, number/bool operands allowed)
        let text_col = |f: &Fld| {
            matches!(
                f,
                Fld::Name
                    | Fld::User
                    | Fld::Session
                    | Fld::SessionKey
                    | Fld::Customer
                    | Fld::Service
                    | Fld::MType
                    | Fld::MName
            )
        };
        let num_col = |f: &Fld| matches!(f, Fld::Value);
        let all: Vec<&Fld> = self.ev.iter().chain(self.rec.iter()).collect();
        (!all.iter().any(|f| num_col(f)), !all.iter().any(|f| text_col(f)))
    }
    fn has_number_column(&self) -> bool {
        self.ev.iter().chain(self.rec.iter()).any(|f| *f == Fld::Value)
    }
}

const T_NAMES: &[&str] =
    &["page_view", "purchase", "Purchase", "PURCHASE", "purch", "signup", "api_request", "ünï évent", "ÜNÏ", "zzz", ""];
const T_USERS: &[&str] = &["u1", "u2", "u17", "U1", "u4", "zzz", "u"];
const T_SESSIONS: &[&str] = &["s1", "s10", "s", "s199", "zzz"];
const T_CUSTOMERS: &[&str] = &["c1", "c3", "u1", "c", "zzz"];
const T_PLANS: &[&str] = &["free", "pro", "Pro", "PRO", "team", "ent", "ünïcode plan", "ÜNÏ", "zzz"];
const T_COUNTRIES: &[&str] = &["FR", "US", "fr", "de", "ünited", "zzz"];
const T_TAGS: &[&str] = &["7", "abc", "ABC", "3", "true", "-2.5", "b"];
const T_FLAGS: &[&str] = &["true", "false", "TRUE", "ru"];
const T_TIERS: &[&str] = &["gold", "GOLD", "silver", "ld", "zzz"];
const T_SPACE: &[&str] = &["v0", "v1", "V2", "v"];
const T_INTS: &[&str] = &["5", "12", "1", "20", "abc"];
const T_FRACT: &[&str] = &["5", "12.25", "abc"];
const T_SERVICES: &[&str] = &["api", "web", "worker", "API", "wor", "zzz"];
const T_TYPES: &[&str] = &["gauge", "counter", "GAUGE", "ount"];
const T_METRICS: &[&str] = &["latency", "Latency", "LATENCY", "cpu", "signups", "nope"];
const T_REGIONS: &[&str] = &["eu", "us", "EU", "u", "zzz"];
const T_HOSTS: &[&str] = &["h1", "h2", "H3", "h"];
const N_NONE: &[f64] = &[];
const N_AMOUNT: &[f64] = &[0.0, 10.0, 100.0, 250.0, 499.0, 12.25, 300.5];
const N_SMALL: &[f64] = &[0.0, 1.0, 5.0, 10.0, 19.0, 20.0];
const N_SCORE: &[f64] = &[10.0, 50.5, 90.0];
const N_TAG: &[f64] = &[3.0, 7.0, -2.5, 0.0];
const N_STATUS: &[f64] = &[200.0, 404.0, 500.0];
const N_VALUE: &[f64] = &[0.0, 10.0, 50.0, 100.0, 500.0, -10.0];

fn fr(
    name: &str,
    ev: Option<Fld>,
    rec: Option<Fld>,
    texts: &'static [&'static str],
    numbers: &'static [f64],
    text_safe: bool,
) -> FieldRef {
    FieldRef { name: name.into(), ev, rec, texts, numbers, text_safe }
}

fn prop(p: &str) -> Option<Fld> {
    Some(Fld::Prop(path(p)))
}
fn dim(p: &str) -> Option<Fld> {
    Some(Fld::Dim(path(p)))
}

/// Fields of events, by every spelling clients use.
fn event_fields() -> Vec<FieldRef> {
    vec![
        fr("event_name", Some(Fld::Name), None, T_NAMES, N_NONE, true),
        fr("event_type", Some(Fld::Name), None, T_NAMES, N_NONE, true),
        fr("user_id", Some(Fld::User), None, T_USERS, N_NONE, true),
        fr("session_id", Some(Fld::Session), None, T_SESSIONS, N_NONE, true),
        fr("customer_id", Some(Fld::Customer), None, T_CUSTOMERS, N_NONE, true),
        fr("properties.amount", prop("amount"), None, T_FRACT, N_AMOUNT, false),
        fr("amount", prop("amount"), None, T_FRACT, N_AMOUNT, false),
        fr("plan", prop("plan"), None, T_PLANS, N_NONE, true),
        fr("event_data.plan", prop("plan"), None, T_PLANS, N_NONE, true),
        fr("properties.country", prop("country"), None, T_COUNTRIES, N_NONE, true),
        fr("n", prop("n"), None, T_INTS, N_SMALL, true),
        fr("props.tag", prop("tag"), None, T_TAGS, N_TAG, true),
        fr("flag", prop("flag"), None, T_FLAGS, N_SMALL, true),
        fr("info.tier", prop("info.tier"), None, T_TIERS, N_NONE, true),
        fr("properties.key with space", prop("key with space"), None, T_SPACE, N_NONE, true),
        fr("missing_key", prop("missing_key"), None, T_TAGS, N_SMALL, true),
        fr("score", prop("score"), None, T_FRACT, N_SCORE, false),
        fr("properties.status_code", prop("status_code"), None, T_INTS, N_STATUS, true),
    ]
}

/// Fields of metric records.
fn record_fields() -> Vec<FieldRef> {
    vec![
        fr("value", None, Some(Fld::Value), N_NONE_T, N_VALUE, false),
        fr("service_name", None, Some(Fld::Service), T_SERVICES, N_NONE, true),
        fr("service", None, Some(Fld::Service), T_SERVICES, N_NONE, true),
        fr("metric_type", None, Some(Fld::MType), T_TYPES, N_NONE, true),
        fr("metric_name", None, Some(Fld::MName), T_METRICS, N_NONE, true),
        fr("region", None, dim("region"), T_REGIONS, N_NONE, true),
        fr("dimensions.host", None, dim("host"), T_HOSTS, N_NONE, true),
        fr("meta.v", None, Some(Fld::Meta(path("v"))), T_INTS, N_SMALL, true),
        fr("dimensions.missing", None, dim("missing"), T_TAGS, N_SMALL, true),
    ]
}
const N_NONE_T: &[&str] = &[];

/// Names that parse on both sources (a bare name is a property of events and a dimension
/// of metric records), for query-wide filters and breakdowns.
fn shared_fields() -> Vec<FieldRef> {
    vec![
        fr("plan", prop("plan"), dim("plan"), T_PLANS, N_NONE, true),
        fr("region", prop("region"), dim("region"), T_REGIONS, N_NONE, true),
        fr("n", prop("n"), dim("n"), T_INTS, N_SMALL, true),
        fr("tag", prop("tag"), dim("tag"), T_TAGS, N_TAG, true),
        fr("info.tier", prop("info.tier"), dim("info.tier"), T_TIERS, N_NONE, true),
        fr("event_name", Some(Fld::Name), dim("event_name"), T_NAMES, N_NONE, true),
        fr("user_id", Some(Fld::User), dim("user_id"), T_USERS, N_NONE, true),
        fr("value", prop("value"), Some(Fld::Value), N_NONE_T, N_VALUE, false),
        fr("service_name", prop("service_name"), Some(Fld::Service), T_SERVICES, N_NONE, true),
        fr("meta.v", prop("meta.v"), Some(Fld::Meta(path("v"))), T_INTS, N_SMALL, true),
        fr("dimensions.host", prop("dimensions.host"), dim("host"), T_HOSTS, N_NONE, true),
        fr("properties.amount", prop("amount"), dim("properties.amount"), T_FRACT, N_AMOUNT, false),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum O {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
    Contains,
    In,
    NotIn,
    IsSet,
    IsNotSet,
}

const ALL_OPS: &[O] =
    &[O::Eq, O::Neq, O::Gt, O::Gte, O::Lt, O::Lte, O::Contains, O::In, O::NotIn, O::IsSet, O::IsNotSet];

impl O {
    /// Every spelling the parser accepts; one is picked at random.
    fn spellings(self) -> &'static [&'static str] {
        match self {
            O::Eq => &["eq", "=", "==", "equals", "is"],
            O::Neq => &["neq", "!=", "<>", "not_equals"],
            O::Gt => &["gt", ">"],
            O::Gte => &["gte", ">="],
            O::Lt => &["lt", "<"],
            O::Lte => &["lte", "<="],
            O::Contains => &["contains", "icontains"],
            O::In => &["in"],
            O::NotIn => &["not_in", "nin", "not in"],
            O::IsSet => &["is_set", "exists"],
            O::IsNotSet => &["is_not_set", "not_exists"],
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Sc {
    T(String),
    N(f64),
    B(bool),
}

impl Sc {
    fn json(&self) -> Value {
        match self {
            Sc::T(s) => json!(s),
            Sc::N(n) => json!(n),
            Sc::B(b) => json!(b),
        }
    }
    /// The text a number or boolean is compared as (JSON's spelling).
    fn text(&self) -> String {
        match self {
            Sc::T(s) => s.clone(),
            Sc::N(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => format!("{}", *n as i64),
            Sc::N(n) => n.to_string(),
            Sc::B(b) => b.to_string(),
        }
    }
}

#[derive(Debug, Clone)]
enum Opd {
    None,
    One(Sc),
    Many(Vec<Sc>),
}

#[derive(Debug, Clone)]
struct Cond {
    f: FieldRef,
    op: O,
    opd: Opd,
}

#[derive(Debug, Clone)]
enum Tree {
    All(Vec<Tree>),
    Any(Vec<Tree>),
    C(Cond),
}

impl Tree {
    fn json(&self, rng: &mut Rng) -> Value {
        match self {
            Tree::All(v) => {
                let items: Vec<Value> = v.iter().map(|t| t.json(rng)).collect();
                if rng.chance(0.5) { json!({"and": items}) } else { Value::Array(items) }
            }
            Tree::Any(v) => json!({"or": v.iter().map(|t| t.json(rng)).collect::<Vec<_>>()}),
            Tree::C(c) => {
                let mut o = Map::new();
                o.insert(rng.pick(&["field", "property", "key"]).to_string(), json!(c.f.name));
                if !(c.op == O::Eq && rng.chance(0.15)) {
                    o.insert(rng.pick(&["op", "operator"]).to_string(), json!(rng.pick(c.op.spellings())));
                }
                match &c.opd {
                    Opd::None => match rng.below(3) {
                        0 => {}
                        1 => {
                            o.insert("value".into(), Value::Null);
                        }
                        _ => {
                            o.insert("value".into(), json!(true));
                        }
                    },
                    Opd::One(s) => {
                        o.insert("value".into(), s.json());
                    }
                    Opd::Many(v) => {
                        o.insert("value".into(), Value::Array(v.iter().map(Sc::json).collect()));
                    }
                }
                Value::Object(o)
            }
        }
    }
}

/// A random scalar for `f`, of a type the parser accepts for it. `oracle`: only operands
/// whose meaning the Rust model states without doubt.
fn scalar_for(rng: &mut Rng, f: &FieldRef, oracle: bool) -> Sc {
    let (texts_ok, others_ok) = f.kinds();
    let texts_ok = texts_ok && !f.texts.is_empty() && (!oracle || f.text_safe);
    let nums_ok = others_ok && (!f.numbers.is_empty() || f.has_number_column());
    let bools_ok = others_ok && !f.has_number_column();
    loop {
        match rng.below(10) {
            0..=4 if texts_ok => return Sc::T(rng.pick(f.texts).to_string()),
            5..=8 if nums_ok => {
                let n = if f.numbers.is_empty() { rng.pick(N_VALUE) } else { rng.pick(f.numbers) };
                return Sc::N(n);
            }
            9 if bools_ok => return Sc::B(rng.chance(0.5)),
            _ => {}
        }
        if !texts_ok && !nums_ok && !bools_ok {
            panic!("no operand fits {}", f.name);
        }
    }
}

fn random_cond(rng: &mut Rng, fields: &[FieldRef], oracle: bool) -> Cond {
    let f = rng.pick(fields).clone();
    let (texts_ok, _) = f.kinds();
    loop {
        let op = rng.pick(ALL_OPS);
        let opd = match op {
            O::IsSet | O::IsNotSet => Opd::None,
            O::Contains => {
                if !texts_ok || f.texts.is_empty() || (oracle && !f.text_safe) {
                    continue;
                }
                Opd::One(Sc::T(rng.pick(f.texts).to_string()))
            }
            O::In | O::NotIn => {
                let first = scalar_for(rng, &f, oracle);
                let mut v = vec![first.clone()];
                for _ in 0..rng.below(3) {
                    let s = scalar_for(rng, &f, oracle);
                    // The oracle keeps lists all-number or all-text, where the meaning is plain.
                    if oracle && matches!(first, Sc::N(_)) != matches!(s, Sc::N(_)) {
                        continue;
                    }
                    v.push(s);
                }
                Opd::Many(v)
            }
            _ => Opd::One(scalar_for(rng, &f, oracle)),
        };
        return Cond { f, op, opd };
    }
}

fn random_tree(rng: &mut Rng, fields: &[FieldRef], depth: usize, oracle: bool) -> Tree {
    if depth >= 3 || rng.chance(0.45) {
        return Tree::C(random_cond(rng, fields, oracle));
    }
    let items: Vec<Tree> = (0..1 + rng.below(3)).map(|_| random_tree(rng, fields, depth + 1, oracle)).collect();
    if rng.chance(0.5) { Tree::All(items) } else { Tree::Any(items) }
}

/// One row of either source, as the Rust model reads it.
enum Subject<'a> {
    E(&'a Ev),
    R(&'a Rec),
}

fn json_at<'a>(root: &'a Value, p: &[String]) -> Option<&'a Value> {
    let mut v = root;
    for s in p {
        v = v.as_object()?.get(s)?;
    }
    Some(v)
}

/// The text of a JSON value (strings unquoted; JSON null is no value).
fn json_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        other => Some(other.to_string()),
    }
}

impl Subject<'_> {
    fn text(&self, f: &Fld) -> Option<String> {
        match (self, f) {
            (Subject::E(e), Fld::Name) => Some(e.name.clone()),
            (Subject::E(e), Fld::User) => e.user.clone(),
            (Subject::E(e), Fld::Session) => e.session.clone(),
            (Subject::E(e), Fld::SessionKey) => e.key.clone(),
            (Subject::E(e), Fld::Customer) => e.props.get("customer_id").and_then(json_text).or_else(|| e.user.clone()),
            (Subject::E(e), Fld::Prop(p)) => {
                let root = Value::Object(e.props.clone());
                json_at(&root, p).and_then(json_text)
            }
            (Subject::R(r), Fld::Value) => Some(format!("{:?}", r.value)),
            (Subject::R(r), Fld::Service) => Some(r.service.clone()),
            (Subject::R(r), Fld::MType) => Some(r.mtype.clone()),
            (Subject::R(r), Fld::MName) => Some(r.name.clone()),
            (Subject::R(r), Fld::Dim(p)) => json_at(&r.dims, p).and_then(json_text),
            (Subject::R(r), Fld::Meta(p)) => json_at(&r.meta, p).and_then(json_text),
            (_, f) => panic!("{f:?} is not a field of this source"),
        }
    }

    fn num(&self, f: &Fld) -> Option<f64> {
        match (self, f) {
            (Subject::R(r), Fld::Value) => Some(r.value),
            _ => self.text(f).and_then(|t| t.parse::<f64>().ok()).filter(|x| x.is_finite()),
        }
    }

    fn source(&self) -> Source {
        match self {
            Subject::E(_) => Source::Events,
            Subject::R(_) => Source::MetricRecords,
        }
    }
}

/// The meaning of a condition: numbers compare as numbers when the field is numeric or
/// every operand is a number; neq and not_in hold where the field is missing; contains
/// ignores case; is_set means present and not JSON null.
fn holds(s: &Subject, t: &Tree) -> bool {
    match t {
        Tree::All(v) => v.iter().all(|x| holds(s, x)),
        Tree::Any(v) => v.iter().any(|x| holds(s, x)),
        Tree::C(c) => {
            let f = c.f.on(s.source()).expect("the field exists on this source");
            let numeric = *f == Fld::Value
                || match &c.opd {
                    Opd::One(Sc::N(_)) => c.op != O::Contains,
                    Opd::Many(v) => v.iter().all(|x| matches!(x, Sc::N(_))),
                    _ => false,
                };
            let cmp = |x: &Sc| -> Option<std::cmp::Ordering> {
                if numeric {
                    let Sc::N(n) = x else { panic!("numeric comparison with text") };
                    s.num(f).and_then(|v| v.partial_cmp(n))
                } else {
                    s.text(f).map(|v| v.as_str().cmp(x.text().as_str()))
                }
            };
            use std::cmp::Ordering::*;
            match (&c.op, &c.opd) {
                (O::IsSet, _) => s.text(f).is_some(),
                (O::IsNotSet, _) => s.text(f).is_none(),
                (O::Contains, Opd::One(x)) => {
                    s.text(f).is_some_and(|v| v.to_lowercase().contains(&x.text().to_lowercase()))
                }
                (O::In, Opd::Many(v)) => v.iter().any(|x| cmp(x) == Some(Equal)),
                (O::NotIn, Opd::Many(v)) => !v.iter().any(|x| cmp(x) == Some(Equal)),
                (O::Eq, Opd::One(x)) => cmp(x) == Some(Equal),
                (O::Neq, Opd::One(x)) => cmp(x) != Some(Equal),
                (O::Gt, Opd::One(x)) => cmp(x) == Some(Greater),
                (O::Gte, Opd::One(x)) => matches!(cmp(x), Some(Greater | Equal)),
                (O::Lt, Opd::One(x)) => cmp(x) == Some(Less),
                (O::Lte, Opd::One(x)) => matches!(cmp(x), Some(Less | Equal)),
                other => panic!("malformed condition {other:?}"),
            }
        }
    }
}

/// An aggregation over the rows a series selects, as DuckDB should compute it.
fn aggregate(agg: Aggregation, field: Option<&Fld>, rows: &[Subject]) -> Option<f64> {
    let nums = || -> Vec<f64> { rows.iter().filter_map(|r| r.num(field.unwrap())).collect() };
    match agg {
        Aggregation::Count => Some(rows.len() as f64),
        Aggregation::Users => {
            let users: HashSet<String> = rows.iter().filter_map(|r| r.text(&Fld::User)).collect();
            Some(users.len() as f64)
        }
        Aggregation::CountDistinct => {
            let f = field.unwrap();
            let distinct: HashSet<String> = rows.iter().filter_map(|r| r.text(f)).collect();
            Some(distinct.len() as f64)
        }
        // A sum is additive: no rows (or no numbers) is 0.
        Aggregation::Sum => Some(nums().iter().sum()),
        Aggregation::Avg => {
            let v = nums();
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        }
        Aggregation::Min => nums().into_iter().reduce(f64::min),
        Aggregation::Max => nums().into_iter().reduce(f64::max),
        Aggregation::Percentile(p) => {
            let mut v = nums();
            if v.is_empty() {
                return None;
            }
            v.sort_by(|a, b| a.partial_cmp(b).unwrap());
            let pos = (p as f64 / 100.0) * (v.len() - 1) as f64;
            let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
            Some(v[lo] + (v[hi] - v[lo]) * (pos - lo as f64))
        }
    }
}

fn close(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-7 * x.abs().max(y.abs()).max(1.0),
        _ => false,
    }
}

fn same_rows(a: &[Row], b: &[Row]) -> Result<(), String> {
    ensure!(a.len() == b.len(), "{} rows against {}", a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        ensure!(
            x.bucket == y.bucket && x.dims == y.dims && x.current == y.current,
            "row {i} differs in its keys: {x:?} against {y:?}"
        );
        ensure!(x.values.len() == y.values.len(), "row {i}: series count");
        for (u, v) in x.values.iter().zip(&y.values) {
            ensure!(close(*u, *v), "row {i} differs: {x:?} against {y:?}");
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Random queries as clients write them.

const AGG_NAMES: &[&str] =
    &["count", "unique_users", "count_distinct", "sum", "avg", "min", "max", "median", "p50", "p90", "p99", "p5"];
const NUMERIC_EVENT_FIELDS: &[&str] =
    &["properties.amount", "amount", "n", "score", "props.tag", "properties.status_code", "plan", "missing_key"];
const DISTINCT_EVENT_FIELDS: &[&str] =
    &["user_id", "session_id", "customer_id", "event_name", "plan", "properties.country", "n", "info.tier", "flag"];
const BUILTINS: &[&str] = &[
    "events",
    "users",
    "active_users",
    "sessions",
    "revenue",
    "purchases",
    "tickets",
    "customers",
    "errors",
    "error_rate",
    "avg_response_time",
    "tokens",
    "cost",
    "satisfaction",
];
/// Metric-record names the catalog knows (resolved as sums of records).
const RECORD_NAMES: &[&str] = &["latency", "cpu", "signups", "Latency"];

/// The tenant's catalog for one random query: a few custom measures built as values (so
/// they reach shapes the JSON of a series cannot, such as a count of distinct dimensions).
struct Cat {
    defs: HashMap<String, Definition>,
}

impl Catalog for Cat {
    fn custom(&self, name: &str) -> Option<Definition> {
        self.defs.get(name).cloned()
    }
    fn has_records(&self, name: &str) -> bool {
        RECORD_NAMES.contains(&name)
    }
}

fn random_agg(rng: &mut Rng, source: Source) -> Aggregation {
    loop {
        let a = Aggregation::parse(rng.pick(AGG_NAMES)).unwrap();
        if !(source == Source::MetricRecords && a == Aggregation::Users) {
            return a;
        }
    }
}

fn random_catalog(rng: &mut Rng) -> Cat {
    let mut defs = HashMap::new();
    for i in 0..rng.below(4) {
        let source = if rng.chance(0.6) { Source::Events } else { Source::MetricRecords };
        let agg = random_agg(rng, source);
        let field = match (source, agg.needs_number()) {
            (Source::Events, true) => Field::parse(source, rng.pick(NUMERIC_EVENT_FIELDS)).unwrap(),
            (Source::Events, false) => Field::parse(source, rng.pick(DISTINCT_EVENT_FIELDS)).unwrap(),
            (Source::MetricRecords, true) => {
                Field::parse(source, rng.pick(&["value", "meta.v", "dimensions.host", "region"])).unwrap()
            }
            (Source::MetricRecords, false) => {
                Field::parse(source, rng.pick(&["region", "service_name", "metric_name", "value", "meta.v"])).unwrap()
            }
        };
        let fields = if source == Source::Events { event_fields() } else { record_fields() };
        let filter = rng.chance(0.6).then(|| {
            let t = random_tree(rng, &fields, 1, false);
            parse_filter(&t.json(rng), source, "custom").unwrap()
        });
        let m = Measure::new(source, agg, agg.needs_field().then_some(field), filter).unwrap();
        defs.insert(format!("m{i}"), Definition::Measure(m));
    }
    if defs.len() >= 2 && rng.chance(0.5) {
        defs.insert("f0".into(), Definition::Formula(Formula::parse("m0 * 2 + m1 / (m0 - 1)").unwrap()));
    }
    Cat { defs }
}

/// A formula over `refs` and numbers, with `+ - * /`, parentheses and unary minus. Returns
/// the text and whether it names anything (a divisor always does, so it is never the
/// constant 0).
fn random_formula(rng: &mut Rng, refs: &[String], depth: usize) -> (String, bool) {
    if depth >= 3 || rng.chance(0.4) {
        return if rng.chance(0.8) {
            let r = rng.pick(refs).clone();
            if rng.chance(0.1) { (format!("-{r}"), true) } else { (r, true) }
        } else {
            (rng.pick(&["2", "0.5", "100", "3", "1.25"]).to_string(), false)
        };
    }
    let op = rng.pick(&["+", "-", "*", "/"]);
    let (a, ra) = random_formula(rng, refs, depth + 1);
    let (mut b, mut rb) = random_formula(rng, refs, depth + 1);
    if op == "/" && !rb {
        b = rng.pick(refs).clone();
        rb = true;
    }
    (format!("({a} {op} {b})"), ra || rb)
}

/// A random date range, as clients write them.
fn random_range(rng: &mut Rng) -> Value {
    let day = |rng: &mut Rng| NaiveDate::from_ymd_opt(2026, 1, 15).unwrap() + Span::days(rng.below(80) as i64);
    match rng.below(6) {
        0 | 1 => {
            let a = day(rng);
            let b = a + Span::days(rng.below(40) as i64);
            json!({"start": a.to_string(), "end": b.to_string()})
        }
        2 => json!(rng.pick(&["-7d", "-30d", "-24h", "-2w", "-3m", "-1y", "-90d"])),
        3 => json!(rng.pick(&["this_month", "last_month", "this_week", "last_week", "today", "yesterday"])),
        4 => {
            let a = random_ts(rng).min(now() - Span::hours(1));
            let b = a + Span::seconds(1 + rng.below(40 * 86400) as i64);
            json!({"from": a.to_rfc3339(), "to": b.to_rfc3339()})
        }
        _ => json!({"start": day(rng).to_string()}),
    }
}

/// A random valid query (JSON for `parse_query`) and its catalog.
fn random_query(rng: &mut Rng) -> (Value, Cat) {
    let cat = random_catalog(rng);
    let mut refs: Vec<String> = BUILTINS.iter().map(|s| s.to_string()).collect();
    refs.extend(RECORD_NAMES.iter().map(|s| s.to_string()));
    refs.extend(cat.defs.keys().cloned());
    let shared = shared_fields();
    let mut series = Vec::new();
    for i in 0..1 + rng.below(3) {
        let s = match rng.below(7) {
            0 | 1 => {
                // Inline measure over events.
                let agg = rng.pick(AGG_NAMES);
                let mut o = json!({"aggregation": agg});
                let a = Aggregation::parse(agg).unwrap();
                if a.needs_number() {
                    o["field"] = json!(rng.pick(NUMERIC_EVENT_FIELDS));
                } else if a.needs_field() || rng.chance(0.2) {
                    o["field"] = json!(rng.pick(DISTINCT_EVENT_FIELDS));
                }
                if rng.chance(0.4) {
                    o["event"] = json!(rng.pick(EVENT_NAMES));
                }
                if rng.chance(0.6) {
                    o["filters"] = random_tree(rng, &event_fields(), 0, false).json(rng);
                }
                o
            }
            2 => {
                // Metric records have no users: every other aggregation.
                let agg = loop {
                    let a = rng.pick(AGG_NAMES);
                    if a != "unique_users" {
                        break a;
                    }
                };
                let mut o = json!({"source": rng.pick(&["metric_records", "metrics", "records"]),
                                   "metric_name": rng.pick(METRIC_NAMES), "aggregation": agg});
                if rng.chance(0.6) {
                    o["filters"] = random_tree(rng, &record_fields(), 0, false).json(rng);
                }
                o
            }
            3 => json!(rng.pick(&refs)),
            4 => {
                let (name, agg) = rng.pick(&[
                    ("revenue", "avg"),
                    ("revenue", "p90"),
                    ("revenue", "max"),
                    ("revenue", "count"),
                    ("events", "sum"),
                    ("events", "unique_users"),
                    ("purchases", "count"),
                    ("latency", "avg"),
                    ("cpu", "p50"),
                    ("error_rate", "avg"),
                ]);
                let mut o = json!({"metric": name, "aggregation": agg});
                if rng.chance(0.5) {
                    o["filters"] = random_tree(rng, &shared, 0, false).json(rng);
                }
                o
            }
            _ => {
                let (text, _) = loop {
                    let f = random_formula(rng, &refs, 0);
                    if f.1 {
                        break f;
                    }
                };
                let mut o = json!({"formula": text});
                if rng.chance(0.4) {
                    o["filters"] = random_tree(rng, &shared, 0, false).json(rng);
                }
                o
            }
        };
        let s = if rng.chance(0.2) && s.is_object() {
            let mut s = s;
            s["label"] = json!(format!("series {i}"));
            s
        } else {
            s
        };
        series.push(s);
    }
    let kind = rng.pick(&["aggregate", "trend", "breakdown", "compare"]);
    let mut q = Map::new();
    q.insert("series".into(), Value::Array(series));
    let kind_word = match kind {
        "aggregate" => rng.pick(&["aggregate", "total"]),
        "trend" => rng.pick(&["trend", "timeseries"]),
        "breakdown" => rng.pick(&["breakdown", "group_by"]),
        _ => rng.pick(&["compare", "comparison"]),
    };
    q.insert("kind".into(), json!(kind_word));
    if kind == "trend" && rng.chance(0.9) || kind == "breakdown" && rng.chance(0.5) {
        q.insert("granularity".into(), json!(rng.pick(GRANULARITIES)));
    }
    if kind == "breakdown" {
        let by: Vec<Value> = (0..1 + rng.below(2)).map(|_| json!(rng.pick(&shared).name)).collect();
        let by = if by.len() == 1 && rng.chance(0.5) { by[0].clone() } else { Value::Array(by) };
        q.insert("breakdown".into(), by);
    }
    if rng.chance(0.5) {
        q.insert("filters".into(), random_tree(rng, &shared, 0, false).json(rng));
    }
    q.insert("date_range".into(), random_range(rng));
    if rng.chance(0.85) {
        q.insert("timezone".into(), json!(rng.pick(ZONES)));
    }
    if rng.chance(0.4) {
        q.insert("limit".into(), json!(1 + rng.below(1000)));
    }
    (Value::Object(q), cat)
}

struct Ran {
    /// As the service compiles it: materialized keys read from their columns.
    compiled: Compiled,
    /// The same query reading every property from the JSON.
    plain: Compiled,
    rows: Vec<Row>,
    window: Window,
    previous: Window,
}

/// What holds of any compiled query: as many `?` as values, one tenant filter right after
/// each scan's FROM, a layout that fits the query.
fn check_compiled(q: &Query, t: &TenantId, c: &Compiled) -> Result<(), String> {
    let sql = &c.sql;
    ensure!(
        sql.matches('?').count() == c.params.len(),
        "{} placeholders, {} params: {sql}",
        sql.matches('?').count(),
        c.params.len()
    );
    let scans = sql.matches(" FROM events").count() + sql.matches(" FROM metric_records").count();
    // Counting sessions reads the events twice: those with a session id as they are, the
    // others sorted per user (query::session).
    let sessionized = usize::from(sql.contains(" AS session_key"));
    ensure!(scans == q.sources().len() + sessionized, "{scans} scans for sources {:?}: {sql}", q.sources());
    ensure!(
        sql.matches(" FROM events WHERE tenant_id = ?").count()
            + sql.matches(" FROM metric_records WHERE tenant_id = ?").count()
            == scans,
        "a scan without its tenant filter: {sql}"
    );
    let tenant_params =
        c.params.iter().filter(|p| **p == sightline_core::sql::SqlValue::Text(t.as_str().to_owned())).count();
    ensure!(tenant_params >= scans, "the tenant is bound {tenant_params} times for {scans} scans");
    let l = c.layout;
    let bucketed = q.kind == Kind::Trend || (q.kind == Kind::Breakdown && q.granularity.is_some());
    ensure!(
        l.bucket == bucketed
            && l.dims == q.by.len()
            && l.period == (q.kind == Kind::Compare)
            && l.series == q.series.len(),
        "layout {l:?} for {:?}",
        q.kind
    );
    // A trend answers every bucket; the other kinds at most `limit` rows, under the row cap.
    let max = if q.kind == Kind::Trend { sightline_core::query::time::MAX_BUCKETS } else { q.limit.min(1000) };
    ensure!(c.max_rows == max, "max_rows {} for a {:?} with limit {}", c.max_rows, q.kind, q.limit);
    Ok(())
}

/// Compiles `q` for `t` (with the previous period for a comparison, and sometimes for
/// others too, which must ignore it) both ways, checks both, runs both, and requires the
/// same rows.
async fn compile_and_run(store: &Store, q: &Query, t: &TenantId, give_previous: bool) -> Result<Ran, String> {
    let (window, previous) = q.range.resolve(q.tz, now()).map_err(|e| format!("range: {e}"))?;
    // As the service does: a comparison over a running period compares the elapsed part,
    // which leaves a gap between the previous period and the current one.
    let (window, previous) =
        if q.kind == Kind::Compare { to_date(window, previous, now()) } else { (window, previous) };
    let prev = (q.kind == Kind::Compare || give_previous).then_some(previous);
    let compiled = compile_with(q, t, window, prev, 1000, Dialect::DuckDb, &store.cols)
        .map_err(|e| format!("compile_with: {e}"))?;
    let plain = compile(q, t, window, prev, 1000, Dialect::DuckDb).map_err(|e| format!("compile: {e}"))?;
    check_compiled(q, t, &compiled)?;
    check_compiled(q, t, &plain)?;
    ensure!(
        plain.layout == compiled.layout && plain.max_rows == compiled.max_rows,
        "the two compilations differ in shape"
    );
    let rows = store.run(&compiled).await.map_err(|e| format!("{e}\nSQL: {}", compiled.sql))?;
    let plain_rows = store.run(&plain).await.map_err(|e| format!("{e}\nSQL (JSON): {}", plain.sql))?;
    same_rows(&plain_rows, &rows).map_err(|e| {
        format!("materialized columns and JSON disagree: {e}\nSQL: {}\nSQL (JSON): {}", compiled.sql, plain.sql)
    })?;
    let l = compiled.layout;
    ensure!(rows.len() <= compiled.max_rows + 1, "{} rows for at most {} (+1)", rows.len(), compiled.max_rows);
    for r in &rows {
        ensure!(r.values.len() == l.series && r.dims.len() == l.dims, "row shape {r:?}");
        ensure!(r.bucket.is_some() == l.bucket, "bucket presence {r:?}");
        ensure!(r.current.is_some() == l.period, "period presence {r:?}");
    }
    Ok(Ran { compiled, plain, rows, window, previous })
}

fn granularity_name(q: &Query) -> Option<&'static str> {
    use sightline_core::query::time::Granularity as G;
    q.granularity.map(|g| match g {
        G::Hour => "hour",
        G::Day => "day",
        G::Week => "week",
        G::Month => "month",
    })
}

/// What holds of the rows of each kind.
fn check_kind(q: &Query, ran: &Ran) -> Result<(), String> {
    let rows = &ran.rows;
    match q.kind {
        Kind::Aggregate => ensure!(rows.len() == 1, "an aggregate answers one row, not {}", rows.len()),
        Kind::Compare => {
            ensure!(rows.len() <= 2, "a comparison answers at most 2 rows, not {}", rows.len());
            let periods: HashSet<Option<bool>> = rows.iter().map(|r| r.current).collect();
            ensure!(periods.len() == rows.len(), "a period twice: {rows:?}");
        }
        Kind::Trend | Kind::Breakdown => {}
    }
    if let Some(g) = granularity_name(q).filter(|_| ran.compiled.layout.bucket) {
        let first = truncate(g, local(q.tz, ran.window.start));
        let last = local(q.tz, ran.window.end - Span::microseconds(1));
        let mut prev: Option<NaiveDateTime> = None;
        for r in rows {
            let b = r.bucket.unwrap();
            ensure!(truncate(g, b) == b, "bucket {b} is not a {g} start");
            ensure!(b >= first && b <= last, "bucket {b} outside {first} .. {last}");
            if let Some(p) = prev {
                ensure!(b >= p, "buckets out of order: {p} then {b}");
                if q.kind == Kind::Trend {
                    ensure!(b > p, "bucket {b} twice");
                }
            }
            prev = Some(b);
        }
    }
    if q.kind == Kind::Breakdown && !ran.compiled.layout.bucket {
        let keys: HashSet<&Vec<Option<String>>> = rows.iter().map(|r| &r.dims).collect();
        ensure!(keys.len() == rows.len(), "a breakdown group twice");
        for w in rows.windows(2) {
            let (a, b) = (w[0].values[0], w[1].values[0]);
            ensure!(
                match (a, b) {
                    (Some(x), Some(y)) => x >= y,
                    (None, Some(_)) => false,
                    _ => true,
                },
                "breakdown rows not largest first: {a:?} then {b:?}"
            );
        }
    }
    // The answer shapes without a panic.
    let prev = (q.kind == Kind::Compare).then_some(ran.previous);
    let shaped = serde_json::to_value(shape(q, ran.compiled.layout, rows, ran.window, prev)).unwrap();
    ensure!(shaped.get("kind").is_some(), "shape answered {shaped}");
    Ok(())
}

fn case_ctx(test: &str, seed: u64, i: usize, q: &Value) -> String {
    format!("{test}: seed {seed} (SIGHTLINE_PROPS_SEED={seed}), case {i}\nquery: {q}")
}

// ---------------------------------------------------------------------------------------
// 1. Random valid queries compile, bind every value, and run.

#[tokio::test]
async fn random_queries_compile_bind_and_run() {
    let seed = base_seed();
    let mut rng = Rng::new(seed);
    let mut store = Store::new();
    let (a, b) = (tenant("tenant_a"), tenant("tenant_b"));
    let da = gen_data(&mut rng, 1000, 100);
    let db = gen_data(&mut rng, 1000, 100);
    store.load(&a, &da);
    store.load(&b, &db);
    let tenants = [a, b, tenant("nobody")];
    let (mut nonempty, mut kinds) = (0, HashMap::new());
    const CASES: usize = 320;
    for i in 0..CASES {
        let (json, cat) = random_query(&mut rng);
        let ctx = case_ctx("random_queries_compile_bind_and_run", seed, i, &json);
        let q = parse_query(&json, &cat).unwrap_or_else(|e| panic!("{ctx}\na generated query failed to parse: {e:?}"));
        *kinds.entry(q.kind.name()).or_insert(0) += 1;
        let t = &tenants[rng.below(3)];
        let ran = compile_and_run(&store, &q, t, rng.chance(0.5)).await.unwrap_or_else(|e| panic!("{ctx}\n{e}"));
        check_kind(&q, &ran).unwrap_or_else(|e| panic!("{ctx}\nSQL: {}\n{e}", ran.compiled.sql));
        if ran.rows.iter().any(|r| r.values.iter().any(|v| v.is_some_and(|x| x != 0.0))) {
            nonempty += 1;
        }
    }
    // Not vacuous: every kind was drawn, and most queries found something.
    assert_eq!(kinds.len(), 4, "{kinds:?}");
    assert!(nonempty > CASES / 3, "only {nonempty} of {CASES} queries found a non-zero value");
}

// ---------------------------------------------------------------------------------------
// 2. Tenant isolation.

#[tokio::test]
async fn another_tenants_data_never_changes_an_answer() {
    let seed = base_seed().wrapping_add(2);
    let mut rng = Rng::new(seed);
    let (a, b) = (tenant("acme"), tenant("bravo"));
    let da = gen_data(&mut rng, 1000, 100);
    // Bravo reuses Acme's event and record ids, users, names and times, plus its own.
    let mut db = gen_data(&mut rng, 1000, 100);
    db.events.extend(da.events.iter().take(200).map(|e| Ev { id: format!("copy-{}", e.id), ..e.clone() }));
    db.sessionize();
    db.records.extend(da.records.iter().take(20).cloned());
    let mut both = Store::new();
    both.load(&a, &da);
    let mut only_b = Store::new();
    only_b.load(&b, &db);

    const CASES: usize = 90;
    let queries: Vec<(Value, Cat)> = (0..CASES).map(|_| random_query(&mut rng)).collect();
    let mut before = Vec::new();
    for (i, (json, cat)) in queries.iter().enumerate() {
        let ctx = case_ctx("another_tenants_data_never_changes_an_answer", seed, i, json);
        let q = parse_query(json, cat).unwrap_or_else(|e| panic!("{ctx}\n{e:?}"));
        let ran = compile_and_run(&both, &q, &a, false).await.unwrap_or_else(|e| panic!("{ctx}\n{e}"));
        before.push((q, ran.rows));
    }
    both.load(&b, &db);
    let mut nonempty = 0;
    for (i, (q, rows)) in before.iter().enumerate() {
        let ctx = case_ctx("another_tenants_data_never_changes_an_answer", seed, i, &queries[i].0);
        let after = compile_and_run(&both, q, &a, false).await.unwrap_or_else(|e| panic!("{ctx}\n{e}"));
        same_rows(rows, &after.rows)
            .unwrap_or_else(|e| panic!("{ctx}\nacme's answer changed when bravo's data arrived: {e}"));
        // And bravo sees only its own data.
        let mixed = compile_and_run(&both, q, &b, false).await.unwrap_or_else(|e| panic!("{ctx}\n{e}"));
        let alone = compile_and_run(&only_b, q, &b, false).await.unwrap_or_else(|e| panic!("{ctx}\n{e}"));
        same_rows(&alone.rows, &mixed.rows)
            .unwrap_or_else(|e| panic!("{ctx}\nbravo's answer depends on acme's data: {e}"));
        if rows.iter().any(|r| r.values.iter().any(|v| v.is_some_and(|x| x != 0.0))) {
            nonempty += 1;
        }
    }
    assert!(nonempty > CASES / 3, "only {nonempty} of {CASES} queries found anything");
}

// ---------------------------------------------------------------------------------------
// 3. Answers against plain Rust.

/// One series of an oracle query: an inline measure, as JSON writes it and as Rust reads it.
#[derive(Debug, Clone)]
struct OSeries {
    source: Source,
    agg: Aggregation,
    agg_name: &'static str,
    field: Option<FieldRef>,
    event: Option<String>,
    metric_name: Option<String>,
    filter: Option<Tree>,
}

impl OSeries {
    fn json(&self, rng: &mut Rng) -> Value {
        let mut o = json!({"aggregation": self.agg_name});
        if self.source == Source::MetricRecords {
            o["source"] = json!("metric_records");
            o["metric_name"] = json!(self.metric_name.as_ref().unwrap());
        }
        if let Some(f) = &self.field {
            o["field"] = json!(f.name);
        }
        if let Some(e) = &self.event {
            o["event"] = json!(e);
        }
        if let Some(t) = &self.filter {
            o["filters"] = t.json(rng);
        }
        o
    }

    /// Whether a row is one this series aggregates (the window and tenant aside).
    fn selects(&self, s: &Subject, global: Option<&Tree>) -> bool {
        let own = match s {
            Subject::E(e) => self.source == Source::Events && self.event.as_ref().is_none_or(|n| *n == e.name),
            Subject::R(r) => self.source == Source::MetricRecords && self.metric_name.as_ref() == Some(&r.name),
        };
        own && self.filter.as_ref().is_none_or(|t| holds(s, t)) && global.is_none_or(|t| holds(s, t))
    }

    fn value(&self, d: &Data, w: Window, global: Option<&Tree>) -> Option<f64> {
        let inside = |t: DateTime<Utc>| t >= w.start && t < w.end;
        let rows: Vec<Subject> = match self.source {
            Source::Events => d.events.iter().filter(|e| inside(e.ts)).map(Subject::E).collect(),
            Source::MetricRecords => d.records.iter().filter(|r| inside(r.ts)).map(Subject::R).collect(),
        };
        let rows: Vec<Subject> = rows.into_iter().filter(|s| self.selects(s, global)).collect();
        let field = match self.source {
            Source::Events => self.field.as_ref().and_then(|f| f.ev.as_ref()),
            Source::MetricRecords => Some(&Fld::Value),
        };
        aggregate(self.agg, field, &rows)
    }
}

fn oracle_series(rng: &mut Rng, source: Source) -> OSeries {
    let filter_fields = if source == Source::Events { event_fields() } else { record_fields() };
    let filter = rng.chance(0.85).then(|| random_tree(rng, &filter_fields, 0, true));
    if source == Source::MetricRecords {
        let agg_name = rng.pick(&["count", "sum", "min", "max", "avg", "count_distinct", "median"]);
        return OSeries {
            source,
            agg: Aggregation::parse(agg_name).unwrap(),
            agg_name,
            field: None,
            event: None,
            metric_name: Some(rng.pick(METRIC_NAMES).to_string()),
            filter,
        };
    }
    let agg_name =
        rng.pick(&["count", "count", "sum", "sum", "min", "max", "avg", "count_distinct", "unique_users", "p90"]);
    let agg = Aggregation::parse(agg_name).unwrap();
    let fields = event_fields();
    let field = if agg.needs_number() {
        let name = rng.pick(&["properties.amount", "n", "score", "props.tag", "properties.status_code", "plan"]);
        fields.iter().find(|f| f.name == name).cloned()
    } else if agg.needs_field() {
        let name = rng.pick(DISTINCT_EVENT_FIELDS);
        fields.iter().find(|f| f.name == name).cloned()
    } else {
        None
    };
    let event = rng.chance(0.3).then(|| rng.pick(EVENT_NAMES).to_string());
    OSeries { source, agg, agg_name, field, event, metric_name: None, filter }
}

/// The window of `{start, end}` dates in `zone`, computed here: local midnights, end inclusive.
fn date_window(zone: Tz, start: NaiveDate, end: NaiveDate) -> Window {
    Window { start: local_midnight(zone, start), end: local_midnight(zone, end + Span::days(1)) }
}

/// A formula over built-ins and metric-record names, as Rust evaluates it.
#[derive(Debug, Clone)]
enum Fe {
    Ref(&'static str),
    Neg(&'static str),
    Num(f64),
    Bin(char, Box<Fe>, Box<Fe>),
}

/// Names a formula may use, each with its meaning in [`builtin_series`].
const FORMULA_REFS: &[&str] =
    &["events", "users", "purchases", "revenue", "tickets", "sessions", "customers", "errors", "latency", "cpu"];

impl Fe {
    fn random(rng: &mut Rng, depth: usize) -> Fe {
        if depth >= 2 || rng.chance(0.35) {
            return match rng.below(10) {
                0 => Fe::Neg(rng.pick(FORMULA_REFS)),
                1 | 2 => Fe::Num(rng.pick(&[2.0, 0.5, 100.0, 3.0])),
                _ => Fe::Ref(rng.pick(FORMULA_REFS)),
            };
        }
        let op = rng.pick(&['+', '-', '*', '/']);
        let a = Fe::random(rng, depth + 1);
        let mut b = Fe::random(rng, depth + 1);
        if op == '/' && b.refs().is_empty() {
            b = Fe::Ref(rng.pick(FORMULA_REFS));
        }
        Fe::Bin(op, Box::new(a), Box::new(b))
    }
    fn refs(&self) -> Vec<&'static str> {
        match self {
            Fe::Ref(r) | Fe::Neg(r) => vec![r],
            Fe::Num(_) => vec![],
            Fe::Bin(_, a, b) => a.refs().into_iter().chain(b.refs()).collect(),
        }
    }
    fn text(&self) -> String {
        match self {
            Fe::Ref(r) => r.to_string(),
            Fe::Neg(r) => format!("-{r}"),
            Fe::Num(n) => n.to_string(),
            Fe::Bin(op, a, b) => format!("({} {op} {})", a.text(), b.text()),
        }
    }
    /// SQL's arithmetic: NULL spreads, and a division by 0 is NULL (`NULLIF`).
    fn eval(&self, v: &HashMap<&str, Option<f64>>) -> Option<f64> {
        match self {
            Fe::Ref(r) => v[r],
            Fe::Neg(r) => v[r].map(|x| 0.0 - x),
            Fe::Num(n) => Some(*n),
            Fe::Bin(op, a, b) => {
                let (x, y) = (a.eval(v)?, b.eval(v)?);
                match op {
                    '+' => Some(x + y),
                    '-' => Some(x - y),
                    '*' => Some(x * y),
                    _ => (y != 0.0).then(|| x / y),
                }
            }
        }
    }
}

/// What a built-in (or a metric-record name) computes, written out for Rust
/// (docs/metrics.md): the same measure the catalog resolves it to.
fn builtin_series(name: &str) -> OSeries {
    let fields = event_fields();
    let find = |n: &str| fields.iter().find(|f| f.name == n).cloned().unwrap();
    let named = |ns: &[&str]| {
        Tree::C(Cond {
            f: find("event_name"),
            op: O::In,
            opd: Opd::Many(ns.iter().map(|n| Sc::T(n.to_string())).collect()),
        })
    };
    let purchase = || named(&["purchase", "ticket_purchase"]);
    let ev = |agg: &'static str, field: Option<&str>, filter: Option<Tree>| OSeries {
        source: Source::Events,
        agg: Aggregation::parse(agg).unwrap(),
        agg_name: agg,
        field: field.map(find),
        event: None,
        metric_name: None,
        filter,
    };
    match name {
        "events" => ev("count", None, None),
        "users" => ev("unique_users", None, None),
        "purchases" => ev("count", None, Some(purchase())),
        "revenue" => ev("sum", Some("properties.amount"), Some(purchase())),
        "tickets" => ev("count", None, Some(named(&["ticket_purchase"]))),
        "sessions" => OSeries {
            field: Some(fr("session", Some(Fld::SessionKey), None, T_SESSIONS, N_NONE, true)),
            ..ev("count_distinct", None, None)
        },
        "customers" => ev("count_distinct", Some("customer_id"), Some(purchase())),
        "errors" => {
            let status = Tree::C(Cond { f: find("properties.status_code"), op: O::Gte, opd: Opd::One(Sc::N(500.0)) });
            ev("count", None, Some(Tree::All(vec![named(&["api_request"]), status])))
        }
        records => OSeries {
            source: Source::MetricRecords,
            agg: Aggregation::Sum,
            agg_name: "sum",
            field: None,
            event: None,
            metric_name: Some(records.to_string()),
            filter: None,
        },
    }
}

/// A series of an oracle query: one inline measure, or a formula with its own filter.
#[derive(Debug, Clone)]
enum OS {
    Measure(OSeries),
    Formula(Fe, Option<Tree>),
}

impl OS {
    fn sources(&self) -> HashSet<Source> {
        match self {
            OS::Measure(m) => HashSet::from([m.source]),
            OS::Formula(f, _) => f.refs().iter().map(|r| builtin_series(r).source).collect(),
        }
    }
    fn json(&self, rng: &mut Rng) -> Value {
        match self {
            OS::Measure(m) => m.json(rng),
            OS::Formula(f, filter) => {
                let mut o = json!({"formula": f.text()});
                if let Some(t) = filter {
                    o["filters"] = t.json(rng);
                }
                o
            }
        }
    }
    fn value(&self, d: &Data, w: Window, global: Option<&Tree>) -> Option<f64> {
        match self {
            OS::Measure(m) => m.value(d, w, global),
            OS::Formula(f, filter) => {
                let values: HashMap<&str, Option<f64>> = f
                    .refs()
                    .into_iter()
                    .map(|r| {
                        let mut m = builtin_series(r);
                        // The series' filter is ANDed into every measure of the formula.
                        m.filter = match (m.filter.take(), filter.clone()) {
                            (Some(a), Some(b)) => Some(Tree::All(vec![a, b])),
                            (a, b) => a.or(b),
                        };
                        (r, m.value(d, w, global))
                    })
                    .collect();
                f.eval(&values)
            }
        }
    }
    fn describe(&self) -> String {
        match self {
            OS::Measure(m) => format!("{} of {:?}", m.agg_name, m.field.as_ref().map(|f| &f.name)),
            OS::Formula(f, _) => format!("formula {}", f.text()),
        }
    }
}

/// A catalog with no custom definitions in which the metric-record names resolve.
fn records_catalog() -> Cat {
    Cat { defs: HashMap::new() }
}

#[tokio::test]
async fn aggregates_match_plain_rust() {
    let seed = base_seed().wrapping_add(3);
    let mut rng = Rng::new(seed);
    let (a, b) = (tenant("tenant_a"), tenant("tenant_b"));
    let da = gen_data(&mut rng, 1000, 100);
    let db = gen_data(&mut rng, 1000, 100);
    let mut store = Store::new();
    store.load(&a, &da);
    store.load(&b, &db);
    let (mut nonzero, mut checked, mut formulas) = (0, 0, 0);
    const CASES: usize = 240;
    for i in 0..CASES {
        let (t, d) = if rng.chance(0.5) { (&a, &da) } else { (&b, &db) };
        let zone_name = rng.pick(ZONES);
        let zone = tz(zone_name);
        let start = NaiveDate::from_ymd_opt(2026, 1, 18).unwrap() + Span::days(rng.below(70) as i64);
        let end = start + Span::days(rng.below(45) as i64);
        let series: Vec<OS> = (0..1 + rng.below(3))
            .map(|_| {
                if rng.chance(0.25) {
                    let f = loop {
                        let f = Fe::random(&mut rng, 0);
                        if !f.refs().is_empty() {
                            break f;
                        }
                    };
                    let both = f.refs().iter().any(|r| builtin_series(r).source == Source::MetricRecords);
                    let fields: Vec<FieldRef> = if both {
                        shared_fields().into_iter().filter(|f| f.text_safe).collect()
                    } else {
                        event_fields()
                    };
                    let filter = rng.chance(0.5).then(|| random_tree(&mut rng, &fields, 1, true));
                    OS::Formula(f, filter)
                } else {
                    let source = if rng.chance(0.75) { Source::Events } else { Source::MetricRecords };
                    OS::Measure(oracle_series(&mut rng, source))
                }
            })
            .collect();
        let sources: HashSet<Source> = series.iter().flat_map(|s| s.sources()).collect();
        let global = rng.chance(0.25).then(|| {
            let shared: Vec<FieldRef> = shared_fields()
                .into_iter()
                .filter(|f| sources.iter().all(|s| f.on(*s).is_some()) && f.text_safe)
                .collect();
            random_tree(&mut rng, &shared, 1, true)
        });
        let mut json = json!({
            "kind": "aggregate",
            "series": series.iter().map(|s| s.json(&mut rng)).collect::<Vec<_>>(),
            "date_range": {"start": start.to_string(), "end": end.to_string()},
            "timezone": zone_name,
        });
        if let Some(g) = &global {
            json["filters"] = g.json(&mut rng);
        }
        let ctx = case_ctx("aggregates_match_plain_rust", seed, i, &json);
        let q = parse_query(&json, &records_catalog()).unwrap_or_else(|e| panic!("{ctx}\n{e:?}"));
        let ran = compile_and_run(&store, &q, t, false).await.unwrap_or_else(|e| panic!("{ctx}\n{e}"));
        let w = date_window(zone, start, end);
        assert_eq!(ran.window, w, "{ctx}\nthe window of the dates in {zone_name}");
        assert_eq!(ran.rows.len(), 1, "{ctx}");
        for (k, s) in series.iter().enumerate() {
            let want = s.value(d, w, global.as_ref());
            let got = ran.rows[0].values[k];
            assert!(
                close(got, want),
                "{ctx}\nSQL: {}\nparams: {:?}\nseries {k} ({}): DuckDB answered {got:?}, Rust computed {want:?}",
                ran.compiled.sql,
                ran.compiled.params,
                s.describe()
            );
            checked += 1;
            formulas += matches!(s, OS::Formula(..)) as usize;
            if want.is_some_and(|x| x != 0.0) {
                nonzero += 1;
            }
        }
    }
    assert!(nonzero > checked / 3, "only {nonzero} of {checked} series had a non-zero answer");
    assert!(formulas > 30, "only {formulas} formulas");
}

#[tokio::test]
async fn trends_match_rust_bucketing_in_every_zone() {
    let seed = base_seed().wrapping_add(4);
    let mut rng = Rng::new(seed);
    let t = tenant("tenant_a");
    let d = gen_data(&mut rng, 1500, 150);
    let mut store = Store::new();
    store.load(&t, &d);
    store.load(&tenant("tenant_b"), &gen_data(&mut rng, 500, 50));
    let mut case = 0;
    for zone_name in ZONES {
        let zone = tz(zone_name);
        for g in GRANULARITIES {
            // Daily trends in UTC and New York get more cases: the ones the brief names.
            let reps = if *g == "day" && matches!(*zone_name, "UTC" | "America/New_York") { 6 } else { 2 };
            for _ in 0..reps {
                case += 1;
                // A window across New York's (03-08) and Paris's (03-29) change to summer time.
                let start = NaiveDate::from_ymd_opt(2026, 2, 20).unwrap() + Span::days(rng.below(10) as i64);
                let end = NaiveDate::from_ymd_opt(2026, 3, 30).unwrap() + Span::days(rng.below(10) as i64);
                let series: Vec<OSeries> = (0..1 + rng.below(2))
                    .map(|_| {
                        let source = if rng.chance(0.8) { Source::Events } else { Source::MetricRecords };
                        let mut s = oracle_series(&mut rng, source);
                        // Additive measures: a bucket without rows is 0, so missing rows compare.
                        if !matches!(s.agg, Aggregation::Count | Aggregation::Sum) {
                            s.agg = Aggregation::Count;
                            s.agg_name = "count";
                            s.field = None;
                        }
                        s
                    })
                    .collect();
                let json = json!({
                    "kind": "trend", "granularity": g, "timezone": zone_name,
                    "series": series.iter().map(|s| s.json(&mut rng)).collect::<Vec<_>>(),
                    "date_range": {"start": start.to_string(), "end": end.to_string()},
                });
                let ctx = case_ctx("trends_match_rust_bucketing_in_every_zone", seed, case, &json);
                let q = parse_query(&json, &NoCatalog).unwrap_or_else(|e| panic!("{ctx}\n{e:?}"));
                let ran = compile_and_run(&store, &q, &t, false).await.unwrap_or_else(|e| panic!("{ctx}\n{e}"));
                check_kind(&q, &ran).unwrap_or_else(|e| panic!("{ctx}\n{e}"));
                let w = date_window(zone, start, end);
                assert_eq!(ran.window, w, "{ctx}");
                // Rust's buckets: each row's local wall time, truncated.
                for (k, s) in series.iter().enumerate() {
                    let mut want: BTreeMap<NaiveDateTime, f64> = BTreeMap::new();
                    let mut add = |ts: DateTime<Utc>, subj: Subject| {
                        if ts >= w.start && ts < w.end && s.selects(&subj, None) {
                            let field = match s.source {
                                Source::Events => s.field.as_ref().and_then(|f| f.ev.as_ref()),
                                Source::MetricRecords => Some(&Fld::Value),
                            };
                            let v = aggregate(s.agg, field, &[subj]).unwrap_or(0.0);
                            *want.entry(truncate(g, local(zone, ts))).or_insert(0.0) += v;
                        }
                    };
                    d.events.iter().for_each(|e| add(e.ts, Subject::E(e)));
                    d.records.iter().for_each(|r| add(r.ts, Subject::R(r)));
                    let got: BTreeMap<NaiveDateTime, f64> =
                        ran.rows.iter().map(|r| (r.bucket.unwrap(), r.values[k].unwrap_or(0.0))).collect();
                    for b in want.keys().chain(got.keys()) {
                        let (x, y) = (got.get(b).copied().unwrap_or(0.0), want.get(b).copied().unwrap_or(0.0));
                        assert!(
                            close(Some(x), Some(y)),
                            "{ctx}\nSQL: {}\nseries {k}, bucket {b} ({g} in {zone_name}): DuckDB {x}, Rust {y}",
                            ran.compiled.sql
                        );
                    }
                    assert!(!want.is_empty() || s.filter.is_some(), "{ctx}\nan unfiltered series found nothing");
                }
            }
        }
    }
}

/// Metamorphic: a trend's buckets, a breakdown's groups and a comparison's current period
/// add up to the aggregate of the same measure, in any zone and granularity.
#[tokio::test]
async fn trends_breakdowns_and_comparisons_add_up_to_the_aggregate() {
    let seed = base_seed().wrapping_add(5);
    let mut rng = Rng::new(seed);
    let t = tenant("tenant_a");
    let mut store = Store::new();
    store.load(&t, &gen_data(&mut rng, 1200, 150));
    store.load(&tenant("tenant_b"), &gen_data(&mut rng, 400, 40));
    const CASES: usize = 60;
    for i in 0..CASES {
        let series = if rng.chance(0.35) {
            // Both sources in one formula: two grouped scans joined on their groups.
            let f = format!(
                "{} {} {}",
                rng.pick(&["events", "purchases", "revenue", "tickets", "errors"]),
                rng.pick(&["+", "-"]),
                rng.pick(&["latency", "cpu", "signups"])
            );
            let mut o = json!({"formula": f});
            if rng.chance(0.5) {
                let shared: Vec<FieldRef> = shared_fields();
                o["filters"] = random_tree(&mut rng, &shared, 1, false).json(&mut rng);
            }
            o
        } else {
            let source = if rng.chance(0.7) { Source::Events } else { Source::MetricRecords };
            let mut s = oracle_series(&mut rng, source);
            if !matches!(s.agg, Aggregation::Count | Aggregation::Sum) {
                s.agg = Aggregation::Sum;
                s.agg_name = "sum";
                if source == Source::Events {
                    s.field = event_fields().into_iter().find(|f| f.name == "properties.amount");
                }
            }
            s.json(&mut rng)
        };
        let base = json!({
            "series": [series],
            "date_range": random_range(&mut rng),
            "timezone": rng.pick(ZONES),
        });
        let with = |extra: Value| {
            let mut q = base.clone();
            for (k, v) in extra.as_object().unwrap() {
                q[k] = v.clone();
            }
            q
        };
        let total_json = with(json!({"kind": "aggregate"}));
        let ctx = case_ctx("trends_breakdowns_and_comparisons_add_up_to_the_aggregate", seed, i, &total_json);
        let run = |json: Value| {
            let store = &store;
            let t = &t;
            let ctx = ctx.clone();
            async move {
                let q = parse_query(&json, &records_catalog()).unwrap_or_else(|e| panic!("{ctx}\n{json}\n{e:?}"));
                let ran = compile_and_run(store, &q, t, false).await.unwrap_or_else(|e| panic!("{ctx}\n{json}\n{e}"));
                (q, ran)
            }
        };
        let (_, total) = run(total_json.clone()).await;
        let total = total.rows[0].values[0].unwrap_or(0.0);

        let g = rng.pick(GRANULARITIES);
        let (_, trend) = run(with(json!({"kind": "trend", "granularity": g, "limit": 1000}))).await;
        if trend.rows.len() <= 1000 {
            let sum: f64 = trend.rows.iter().map(|r| r.values[0].unwrap_or(0.0)).sum();
            assert!(close(Some(sum), Some(total)), "{ctx}\n{g} trend sums to {sum}, the aggregate is {total}");
        }
        let by_name = rng.pick(&shared_fields()).name.clone();
        let mut by = vec![json!(by_name)];
        if rng.chance(0.4) {
            by.push(json!(rng.pick(&shared_fields()).name));
        }
        let mut bd = json!({"kind": "breakdown", "breakdown": by, "limit": 1000});
        if rng.chance(0.4) {
            bd["granularity"] = json!(g);
        }
        let (_, breakdown) = run(with(bd.clone())).await;
        if breakdown.rows.len() <= 1000 {
            let sum: f64 = breakdown.rows.iter().map(|r| r.values[0].unwrap_or(0.0)).sum();
            assert!(close(Some(sum), Some(total)), "{ctx}\nbreakdown {bd} sums to {sum}, the aggregate is {total}");
        }
        // A smaller limit answers the first rows of the full answer (and one more).
        let limit = 1 + rng.below(8);
        bd["limit"] = json!(limit);
        let (_, top) = run(with(bd.clone())).await;
        let n = (limit + 1).min(breakdown.rows.len());
        same_rows(&breakdown.rows[..n], &top.rows)
            .unwrap_or_else(|e| panic!("{ctx}\nbreakdown {bd}: the first {n} rows differ from the full answer's: {e}"));
        let (cq, cmp) = run(with(json!({"kind": "compare"}))).await;
        // Each period equals the aggregate over that period's window (the current one is
        // cut at now when the range runs past it, and the previous one to the same length).
        let mut agg_q = cq.clone();
        agg_q.kind = Kind::Aggregate;
        for (current, w) in [(true, cmp.window), (false, cmp.previous)] {
            let got = cmp.rows.iter().find(|r| r.current == Some(current)).and_then(|r| r.values[0]).unwrap_or(0.0);
            let c = compile_with(&agg_q, &t, w, None, 1000, Dialect::DuckDb, &store.cols).unwrap();
            let want = store.run(&c).await.unwrap()[0].values[0].unwrap_or(0.0);
            assert!(
                close(Some(got), Some(want)),
                "{ctx}\nSQL: {}\ncompare's {} period is {got}, the aggregate over {w:?} is {want}",
                cmp.compiled.sql,
                if current { "current" } else { "previous" }
            );
        }
        if cmp.window.end == ran_window_end(&cq) {
            let current = cmp.rows.iter().find(|r| r.current == Some(true)).and_then(|r| r.values[0]).unwrap_or(0.0);
            assert!(close(Some(current), Some(total)), "{ctx}\ncompare's current {current}, aggregate {total}");
        }
    }
}

fn ran_window_end(q: &Query) -> DateTime<Utc> {
    q.range.resolve(q.tz, now()).unwrap().0.end
}

// ---------------------------------------------------------------------------------------
// 4. Hostile text only ever binds.

/// Text that would break or change a statement if it were ever pasted into SQL.
fn hostile_texts() -> Vec<String> {
    let mut v: Vec<String> = [
        "a'; DROP TABLE events; --",
        "x\" OR 1=1",
        "'",
        "''; --",
        "' OR ''='",
        "/* comment */",
        "*/ SELECT 1 /*",
        "-- line comment",
        "; DELETE FROM events WHERE 1=1; SELECT '",
        "\\'; DROP TABLE metric_records; --",
        "back\\slash\\",
        "?",
        "$1 ? :name @p %s",
        "ünïcødé ✓ 🚀 日本語",
        "UNION SELECT tenant_id FROM events",
        "SELECT",
        "NULL",
        "true",
        "0",
        "$.a[0]",
        "*",
        "[*]",
        "$",
        "line\nbreak\ttab",
        "json\"}, \"x\": {\"",
        "tenant_id = 'other'",
        "e.l0) AS s0 FROM events --",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push("'; --".repeat(25));
    v.push(format!("{}'x", "ä".repeat(60)));
    v.push("k".repeat(128));
    v.push(format!("{} OR 1=1", "'".repeat(3000)));
    v.push("Ω'\"".repeat(1500));
    v
}

/// A property key the path rules allow: no `.`, `"`, `\` or control character, at most
/// 128 bytes, no surrounding spaces.
fn as_key(h: &str) -> String {
    let mut k: String =
        h.chars().map(|c| if c == '.' || c == '"' || c == '\\' || c.is_control() { '_' } else { c }).collect();
    while k.len() > 128 {
        k.pop();
    }
    let k = k.trim().to_string();
    // A key of exactly `*` is DuckDB's JSON wildcard even when quoted: see
    // `bug_a_property_key_of_a_star_reads_every_key`.
    if k == "*" { "a*".into() } else { k }
}

/// The query templates: the same structure for every (key, value).
fn hostile_queries(k: &str, v: &str) -> Vec<Value> {
    let p = format!("properties.{k}");
    let range = json!({"start": "2026-02-01", "end": "2026-02-28"});
    vec![
        json!({"kind": "aggregate", "series": ["events"], "date_range": range,
               "filters": [{"field": p, "op": "eq", "value": v}]}),
        json!({"kind": "aggregate", "date_range": range, "series": [
            {"event": v, "aggregation": "count", "label": v},
            {"aggregation": "count_distinct", "field": p, "label": k,
             "filters": {"or": [{"field": "user_id", "op": "eq", "value": v}, {"field": p, "op": "contains", "value": v}]}},
            {"source": "metric_records", "metric_name": v, "aggregation": "sum",
             "filters": [{"field": format!("dimensions.{k}"), "op": "in", "value": [v, "zz"]}]}]}),
        json!({"kind": "breakdown", "series": [{"aggregation": "count"}], "breakdown": [p, "user_id"],
               "granularity": "day", "timezone": "Asia/Kolkata", "date_range": range,
               "filters": [{"field": p, "op": "neq", "value": v}, {"field": "event_name", "op": "not_in", "value": [v, "x"]}]}),
        json!({"kind": "compare", "series": [{"formula": "events / users"}, "revenue"], "date_range": range,
               "timezone": "America/New_York",
               "filters": {"and": [{"field": p, "op": "is_set"}, {"or": [{"field": "session_id", "op": "gte", "value": v},
                                                                         {"field": p, "op": "lt", "value": v}]}]}}),
        json!({"kind": "trend", "granularity": "hour", "date_range": range, "timezone": "Europe/Paris",
               "series": [{"metric": "revenue", "aggregation": "max"}, {"source": "metric_records", "metric_name": v}],
               "filters": [{"field": p, "op": "in", "value": [v, v, "zz"]}]}),
    ]
}

#[tokio::test]
async fn hostile_keys_and_values_only_ever_bind() {
    let texts = hostile_texts();
    let hostile_tenant = tenant("hostile");
    let normal = tenant("normal");
    let mut rng = Rng::new(base_seed().wrapping_add(6));
    let normal_data = gen_data(&mut rng, 300, 30);
    // Pairs of a key and a value; the values are rotated against the keys so each pair differs.
    let pairs: Vec<(String, String)> = texts
        .iter()
        .enumerate()
        .map(|(i, h)| (as_key(h), texts[(i + 7) % texts.len()].clone()))
        .chain([("a'; DROP TABLE events; --".to_string(), "x\" OR 1=1".to_string())])
        .collect();
    let mut d = Data::default();
    let t0 = at("2026-02-10T12:00:00Z");
    for (i, (k, v)) in pairs.iter().enumerate() {
        let ts = t0 + Span::minutes(i as i64);
        let ev = |id: String, name: &str, user: Option<&str>, props: Value| Ev {
            id,
            name: name.to_string(),
            user: user.map(str::to_owned),
            session: user.map(str::to_owned),
            ts,
            props: props.as_object().unwrap().clone(),
            key: user.map(str::to_owned),
        };
        let mut hit = Map::new();
        hit.insert(k.clone(), json!(v));
        hit.insert("amount".into(), json!(10));
        for j in 0..2 {
            d.events.push(ev(format!("hit-{i}-{j}"), v, Some(v), Value::Object(hit.clone())));
        }
        let mut near = Map::new();
        near.insert(k.clone(), json!(format!("{v}!")));
        d.events.push(ev(format!("near-{i}"), "plain", Some("u"), Value::Object(near)));
        d.events.push(ev(format!("other-key-{i}"), v, None, json!({"other key": v})));
        let mut upper = Map::new();
        upper.insert(k.clone(), json!(v.to_uppercase()));
        d.events.push(ev(format!("upper-{i}"), "purchase", Some("u2"), Value::Object(upper)));
        let mut dims = Map::new();
        dims.insert(k.clone(), json!(v));
        let rec = |id: String, name: &str, value: f64, dims: Value| Rec {
            id,
            service: v.clone(),
            mtype: "gauge".into(),
            name: name.to_string(),
            value,
            ts,
            dims,
            meta: json!({}),
        };
        d.records.push(rec(format!("r-{i}-0"), v, 1.5, Value::Object(dims.clone())));
        d.records.push(rec(format!("r-{i}-1"), v, 2.25, Value::Object(dims.clone())));
        d.records.push(rec(format!("r-{i}-2"), v, 10.0, json!({k.clone(): "zz"})));
        d.records.push(rec(format!("r-{i}-3"), "other", 100.0, Value::Object(dims)));
    }
    let mut store = Store::new();
    store.load(&hostile_tenant, &d);
    store.load(&normal, &normal_data);

    let benign = hostile_queries("plain_key", "plain value");
    let mut shapes: Vec<Option<(String, String)>> = vec![None; benign.len()];
    let window = |q: &Query| q.range.resolve(q.tz, now()).unwrap().0;
    for (i, (k, v)) in pairs.iter().enumerate() {
        for (n, json) in hostile_queries(k, v).into_iter().enumerate() {
            let ctx = format!("hostile pair {i}: key {k:?}, value {v:?}, template {n}\nquery: {json}");
            let q = parse_query(&json, &NoCatalog).unwrap_or_else(|e| panic!("{ctx}\n{e:?}"));
            let ran =
                compile_and_run(&store, &q, &hostile_tenant, false).await.unwrap_or_else(|e| panic!("{ctx}\n{e}"));
            let sql = &ran.compiled.sql;
            let both = (sql.clone(), ran.plain.sql.clone());
            match &shapes[n] {
                None => shapes[n] = Some(both),
                Some(first) => assert_eq!(&both, first, "{ctx}\nhostile text changed the SQL"),
            }
            let benign_q = parse_query(&benign[n], &NoCatalog).unwrap();
            let (bw, bp) = benign_q.range.resolve(benign_q.tz, now()).unwrap();
            let benign_sql =
                compile_with(&benign_q, &hostile_tenant, bw, Some(bp), 1000, Dialect::DuckDb, &store.cols).unwrap().sql;
            assert_eq!(sql, &benign_sql, "{ctx}\nthe SQL differs from the same query with plain text");
            for h in [k, v] {
                if h.len() >= 4 && !benign_sql.contains(h.as_str()) {
                    assert!(!sql.contains(h.as_str()), "{ctx}\nthe SQL holds client text: {sql}");
                    assert!(!ran.plain.sql.contains(h.as_str()), "{ctx}\nthe SQL holds client text: {}", ran.plain.sql);
                }
            }
            check_kind(&q, &ran).unwrap_or_else(|e| panic!("{ctx}\n{e}"));

            // The answers, against Rust.
            let w = window(&q);
            let key_field = fr(&format!("properties.{k}"), Some(Fld::Prop(vec![k.clone()])), None, &[], &[], true);
            let cond = |op: O, opd: Opd| Tree::C(Cond { f: key_field.clone(), op, opd });
            let count = |tree: &Tree| {
                d.events.iter().filter(|e| e.ts >= w.start && e.ts < w.end && holds(&Subject::E(e), tree)).count()
                    as f64
            };
            match n {
                0 => {
                    let want = count(&cond(O::Eq, Opd::One(Sc::T(v.clone()))));
                    assert!(want >= 2.0, "{ctx}\nthe data holds the pair");
                    assert_eq!(ran.rows[0].values[0], Some(want), "{ctx}\nSQL: {sql}");
                }
                1 => {
                    let named = d.events.iter().filter(|e| e.ts >= w.start && e.ts < w.end && e.name == *v).count();
                    assert_eq!(ran.rows[0].values[0], Some(named as f64), "{ctx}\ncount of event {v:?}");
                    let user = fr("user_id", Some(Fld::User), None, &[], &[], true);
                    let either = Tree::Any(vec![
                        Tree::C(Cond { f: user, op: O::Eq, opd: Opd::One(Sc::T(v.clone())) }),
                        cond(O::Contains, Opd::One(Sc::T(v.clone()))),
                    ]);
                    let distinct: HashSet<String> = d
                        .events
                        .iter()
                        .filter(|e| e.ts >= w.start && e.ts < w.end && holds(&Subject::E(e), &either))
                        .filter_map(|e| Subject::E(e).text(&Fld::Prop(vec![k.clone()])))
                        .collect();
                    assert_eq!(ran.rows[0].values[1], Some(distinct.len() as f64), "{ctx}\ncount_distinct");
                    let sum: f64 = d
                        .records
                        .iter()
                        .filter(|r| r.ts >= w.start && r.ts < w.end && r.name == *v)
                        .filter(|r| r.dims.get(k.as_str()).is_some_and(|x| *x == json!(v) || *x == json!("zz")))
                        .map(|r| r.value)
                        .sum();
                    assert!(
                        close(ran.rows[0].values[2], Some(sum)),
                        "{ctx}\nsum of records: {:?} vs {sum}",
                        ran.rows[0].values[2]
                    );
                }
                2 => {
                    let ev_name = fr("event_name", Some(Fld::Name), None, &[], &[], true);
                    let tree = Tree::All(vec![
                        cond(O::Neq, Opd::One(Sc::T(v.clone()))),
                        Tree::C(Cond {
                            f: ev_name,
                            op: O::NotIn,
                            opd: Opd::Many(vec![Sc::T(v.clone()), Sc::T("x".into())]),
                        }),
                    ]);
                    let sum: f64 = ran.rows.iter().map(|r| r.values[0].unwrap_or(0.0)).sum();
                    assert_eq!(sum, count(&tree), "{ctx}\nbreakdown total");
                    assert!(
                        ran.rows.iter().all(|r| r.dims[0].as_deref() != Some(v.as_str())),
                        "{ctx}\nneq let {v:?} through"
                    );
                }
                _ => {}
            }
        }
    }
    // Nothing was dropped or deleted: both tenants still count every event and record.
    let all = Measure::new(Source::MetricRecords, Aggregation::Count, None, None).unwrap();
    let cat = Cat { defs: HashMap::from([("all_records".to_string(), Definition::Measure(all))]) };
    let q = parse_query(
        &json!({"kind": "aggregate", "series": ["events", "all_records"],
                "date_range": {"start": "2026-01-01", "end": "2026-05-01"}}),
        &cat,
    )
    .unwrap();
    for (t, data) in [(&hostile_tenant, &d), (&normal, &normal_data)] {
        let ran = compile_and_run(&store, &q, t, false).await.unwrap();
        assert_eq!(ran.rows[0].values[0], Some(data.events.len() as f64), "the events table still holds {t}'s events");
        assert_eq!(ran.rows[0].values[1], Some(data.records.len() as f64), "metric_records still holds {t}'s records");
    }
}

/// Keys the path rules refuse never reach the compiler: the parser says no.
#[test]
fn keys_the_path_rules_refuse_are_refused_by_the_parser() {
    for key in ["a\"b", "a\\b", "a\nb", "x\u{7}", "a..b", ""] {
        let q = json!({"series": ["events"], "filters": [{"field": format!("properties.{key}"), "op": "is_set"}]});
        assert!(parse_query(&q, &NoCatalog).is_err(), "{key:?} was accepted");
    }
    let long = format!("properties.{}", "k".repeat(129));
    assert!(
        parse_query(&json!({"series": ["events"], "filters": [{"field": long, "op": "is_set"}]}), &NoCatalog).is_err()
    );
}

// ---------------------------------------------------------------------------------------
// Bugs found by the tests above, kept as failing cases.

/// Loads `events` (id, properties) into a fresh store for tenant `t`, at one instant inside
/// February 2026.
fn store_with(t: &TenantId, events: &[(&str, Value)]) -> Store {
    let mut store = Store::new();
    let data = Data {
        events: events
            .iter()
            .map(|(id, props)| Ev {
                id: id.to_string(),
                name: "page_view".into(),
                user: Some("u1".into()),
                session: None,
                ts: at("2026-02-10T12:00:00Z"),
                props: props.as_object().unwrap().clone(),
                key: None,
            })
            .collect(),
        records: Vec::new(),
    };
    store.load(t, &data);
    store
}

const FEBRUARY: &str = r#"{"start": "2026-02-01", "end": "2026-02-28"}"#;

/// DuckDB reads the JSON path `$."*"` as its wildcard even though the key is quoted, so a
/// property named `*` cannot be read exactly: it is refused with a reason, in filters and
/// breakdowns alike, while `a*b` means itself.
#[tokio::test]
async fn a_property_key_of_a_star_is_refused() {
    let t = tenant("star");
    let store = store_with(&t, &[("1", json!({"a*b": "v", "other": "w"})), ("2", json!({"other": "v"}))]);
    let range: Value = serde_json::from_str(FEBRUARY).unwrap();
    let bad = [
        json!({"series": ["events"], "date_range": range, "filters": [{"field": "properties.*", "op": "eq", "value": "v"}]}),
        json!({"kind": "breakdown", "series": ["events"], "date_range": range, "breakdown": ["properties.*"]}),
    ];
    for q in bad {
        let errs = parse_query(&q, &NoCatalog).unwrap_err();
        assert!(errs.iter().any(|e| e.message.contains("wildcard")), "{errs:?}");
    }
    let q = parse_query(
        &json!({"series": ["events"], "date_range": range, "filters": [{"field": "properties.a*b", "op": "eq", "value": "v"}]}),
        &NoCatalog,
    )
    .unwrap();
    let ran = compile_and_run(&store, &q, &t, false).await.expect("a filter on the key 'a*b' runs");
    assert_eq!(ran.rows[0].values[0], Some(1.0), "one event has 'a*b' = 'v'");
}

/// A materialized property column holds `property_text` of the value, which must spell
/// numbers as `json_extract_string` does (`100000000000000000000.0`, `1.5e300`), so that
/// the same query answers the same whether or not the key is kept in a column (`amount`
/// is kept by default): breakdown labels, text equality, contains.
#[tokio::test]
async fn materialized_columns_spell_numbers_as_the_json_does() {
    let t = tenant("numbers");
    let store = store_with(
        &t,
        &[("1", json!({"amount": 1e20})), ("2", json!({"amount": 1.5e300})), ("3", json!({"amount": 12}))],
    );
    let range: Value = serde_json::from_str(FEBRUARY).unwrap();
    for json in [
        json!({"kind": "breakdown", "series": ["events"], "date_range": range, "breakdown": "amount"}),
        json!({"series": ["events"], "date_range": range, "filters": [{"field": "amount", "op": "eq", "value": "100000000000000000000.0"}]}),
        json!({"series": ["events"], "date_range": range, "filters": [{"field": "amount", "op": "contains", "value": "e+"}]}),
    ] {
        let q = parse_query(&json, &NoCatalog).unwrap();
        // compile_and_run compares the materialized-column answer with the JSON one.
        compile_and_run(&store, &q, &t, false).await.unwrap_or_else(|e| panic!("{json}\n{e}"));
    }
}

/// `Field::parse` reads a name as written: `properties.plan ` is the key `plan ` (allowed
/// by the path rules), never the key `plan`.
#[tokio::test]
async fn a_property_key_ending_in_a_space_is_its_own_key() {
    let t = tenant("spaces");
    let store = store_with(
        &t,
        &[("1", json!({"plan ": "pro", "plan": "free"})), ("2", json!({"plan": "pro"})), ("3", json!({"plan": "pro"}))],
    );
    assert!(sightline_core::query::field::PropertyPath::parse("plan ").is_ok(), "the path rules allow the key");
    let range: Value = serde_json::from_str(FEBRUARY).unwrap();
    let q = parse_query(
        &json!({"series": ["events"], "date_range": range, "filters": [{"field": "properties.plan ", "op": "eq", "value": "pro"}]}),
        &NoCatalog,
    )
    .unwrap();
    let ran = compile_and_run(&store, &q, &t, false).await.unwrap();
    assert_eq!(ran.rows[0].values[0], Some(1.0), "only event 1 has 'plan ' = 'pro' (2 is what 'plan' answers)");
}

/// Reserved words are refused only bare ("a bare one is a mistake, not a property"):
/// properties named `date`, `time`, `timestamp`, `ts`, `tenant_id`... can be filtered and
/// broken down by when the client spells out the prefix.
#[test]
fn prefixed_properties_named_like_reserved_words_are_properties() {
    for name in ["properties.date", "properties.time", "event_data.timestamp", "properties.ts"] {
        let f = Field::parse(Source::Events, name);
        assert!(f.is_ok(), "{name}: {f:?}");
    }
    for name in ["dimensions.date", "dimensions.time"] {
        let f = Field::parse(Source::MetricRecords, name);
        assert!(f.is_ok(), "{name}: {f:?}");
    }
}
