//! End-to-end tests of seed 004's user analytics
//! (`GET /api/v1/analytics/users/{user_id}/analytics`).
//!
//! Every answer is checked against a model in plain Rust, written from the definition of
//! who counts (top of `crates/core/src/query/user.rs`) and not from its SQL:
//! - the user's events in `[start, end)` (an end date includes its day; no range: the last
//!   30 local days, today included, up to now);
//! - sessions are `session_id`s, and the user's events without one, in time order, open a
//!   new session after MORE than 30 minutes without such an event (events with an id
//!   neither break nor extend them); a session lasts from its first to its last event, and
//!   the average is rounded to whole seconds;
//! - messages are `message` events; satisfaction the average `score` of `satisfaction`
//!   events (2 decimals, null without any); topics the distinct `topic` values, first seen
//!   first, at most 20; `last_active` the last event (RFC 3339);
//! - engagement is as of now, whatever the range: `daily_active` (an event today, in the
//!   time zone), `retention_30d` (active days of the last 30 local days / 30, 4 decimals),
//!   `churn_risk` (`high` without an event in 14 days, else `medium` when active on fewer
//!   than 6 of the 30 days or not in the last 7 days, else `low`).
//!
//! Range tests use fixed past dates (2025); engagement tests send events at now minus
//! hours or days, and compute the expected answer from the clock read just before and
//! just after the request (a request that straddles a day boundary is retried).

use crate::helpers::*;
use chrono::{DateTime, Duration, NaiveDate, SecondsFormat, SubsecRound, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

const BATCH: &str = "/api/v1/analytics/events/batch";
const METRICS: [&str; 6] = [
    "total_sessions",
    "total_messages",
    "average_session_duration",
    "last_active",
    "satisfaction_score",
    "topics_discussed",
];

// ---------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Ev {
    user: Option<String>,
    name: String,
    ts: DateTime<Utc>,
    session: Option<String>,
    score: Option<f64>,
    topic: Option<String>,
}

impl Ev {
    fn sid(mut self, s: &str) -> Self {
        self.session = Some(s.into());
        self
    }
    fn score(mut self, x: f64) -> Self {
        self.score = Some(x);
        self
    }
    fn topic(mut self, t: &str) -> Self {
        self.topic = Some(t.into());
        self
    }
    fn anon(mut self) -> Self {
        self.user = None;
        self
    }

    fn json(&self) -> Value {
        let mut p = Map::new();
        if let Some(x) = self.score {
            p.insert("score".into(), json!(x));
        }
        if let Some(x) = &self.topic {
            p.insert("topic".into(), json!(x));
        }
        let mut o = json!({
            "event_name": self.name,
            "properties": p,
            "timestamp": self.ts.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        });
        if let Some(u) = &self.user {
            o["user_id"] = json!(u);
        }
        if let Some(s) = &self.session {
            o["session_id"] = json!(s);
        }
        o
    }
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// One event of `user` named `name` at `ts` (RFC 3339), without a session.
fn ev(user: &str, name: &str, ts: &str) -> Ev {
    ev_at(user, name, at(ts))
}

fn ev_at(user: &str, name: &str, ts: DateTime<Utc>) -> Ev {
    Ev { user: Some(user.into()), name: name.into(), ts, session: None, score: None, topic: None }
}

async fn ingest(app: &TestApp, tok: &str, evs: &[Ev]) {
    for chunk in evs.chunks(1000) {
        let events: Vec<Value> = chunk.iter().map(Ev::json).collect();
        let (s, b, _) = send(app.post(BATCH).bearer_auth(tok).json(&json!({ "events": events }))).await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["tracked"], chunk.len(), "{b}");
    }
}

// ---------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn path_of(user: &str, params: &[(&str, &str)]) -> String {
    let mut p = format!("/api/v1/analytics/users/{}/analytics", enc(user));
    for (i, (k, v)) in params.iter().enumerate() {
        p.push(if i == 0 { '?' } else { '&' });
        p.push_str(&format!("{}={}", enc(k), enc(v)));
    }
    p
}

async fn get(app: &TestApp, tok: &str, user: &str, params: &[(&str, &str)]) -> (u16, Value, String) {
    send(app.get(&path_of(user, params)).bearer_auth(tok)).await
}

async fn get_ok(app: &TestApp, tok: &str, user: &str, params: &[(&str, &str)]) -> Value {
    let (s, b, _) = get(app, tok, user, params).await;
    assert_eq!(s, 200, "{user} {params:?}: {b}");
    b
}

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object().unwrap_or_else(|| panic!("not an object: {v}")).keys().map(String::as_str).collect()
}

fn secs(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

// ---------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------

/// Local midnight of `d` in `tz`, as UTC.
fn midnight(tz: Tz, d: NaiveDate) -> DateTime<Utc> {
    tz.from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap()).earliest().unwrap().with_timezone(&Utc)
}

fn local_date(tz: Tz, t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&tz).date_naive()
}

#[derive(Debug, Clone, PartialEq)]
struct Metrics {
    sessions: u64,
    avg_secs: i64,
    messages: u64,
    last_active: Option<String>,
    satisfaction: Option<f64>,
    topics: Vec<String>,
    /// Each session's length in seconds, sorted (for the hand counts).
    lengths: Vec<i64>,
}

fn user_events<'a>(evs: &'a [Ev], user: &str) -> Vec<&'a Ev> {
    let mut es: Vec<&Ev> = evs.iter().filter(|e| e.user.as_deref() == Some(user)).collect();
    es.sort_by_key(|e| e.ts);
    es
}

/// The metrics of `user`'s events in `[start, end)`, by the definition.
fn model(evs: &[Ev], user: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> Metrics {
    let es: Vec<&Ev> = user_events(evs, user).into_iter().filter(|e| e.ts >= start && e.ts < end).collect();
    let mut spans: BTreeMap<String, (DateTime<Utc>, DateTime<Utc>)> = BTreeMap::new();
    let mut widen = |key: String, t: DateTime<Utc>| {
        let s = spans.entry(key).or_insert((t, t));
        s.0 = s.0.min(t);
        s.1 = s.1.max(t);
    };
    for e in &es {
        if let Some(s) = &e.session {
            widen(format!("id:{s}"), e.ts);
        }
    }
    let (mut n, mut prev) = (0, None::<DateTime<Utc>>);
    for e in es.iter().filter(|e| e.session.is_none()) {
        if prev.is_none_or(|p| e.ts - p > Duration::minutes(30)) {
            n += 1;
        }
        widen(format!("gap:{n}"), e.ts);
        prev = Some(e.ts);
    }
    let mut lengths: Vec<i64> = spans.values().map(|(a, b)| (*b - *a).num_seconds()).collect();
    lengths.sort();
    let avg_secs =
        if lengths.is_empty() { 0 } else { (lengths.iter().sum::<i64>() as f64 / lengths.len() as f64).round() as i64 };
    let scores: Vec<f64> = es.iter().filter(|e| e.name == "satisfaction").filter_map(|e| e.score).collect();
    let satisfaction =
        (!scores.is_empty()).then(|| (scores.iter().sum::<f64>() / scores.len() as f64 * 100.0).round() / 100.0);
    let mut first: BTreeMap<&str, DateTime<Utc>> = BTreeMap::new();
    for e in &es {
        if let Some(t) = &e.topic {
            first.entry(t).or_insert(e.ts);
        }
    }
    let mut topics: Vec<(DateTime<Utc>, &str)> = first.into_iter().map(|(t, ts)| (ts, t)).collect();
    topics.sort();
    Metrics {
        sessions: lengths.len() as u64,
        avg_secs,
        messages: es.iter().filter(|e| e.name == "message").count() as u64,
        last_active: es.last().map(|e| e.ts.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        satisfaction,
        topics: topics.into_iter().take(20).map(|(_, t)| t.to_owned()).collect(),
        lengths,
    }
}

#[track_caller]
fn assert_metrics(got: &Value, want: &Metrics, ctx: &str) {
    let m = &got["metrics"];
    assert_eq!(keys(m), BTreeSet::from(METRICS), "{ctx}: {got}");
    assert_eq!(m["total_sessions"].as_u64(), Some(want.sessions), "{ctx}: total_sessions; {want:?}; {got}");
    assert_eq!(
        m["average_session_duration"].as_i64(),
        Some(want.avg_secs),
        "{ctx}: average_session_duration; {want:?}; {got}"
    );
    assert_eq!(m["total_messages"].as_u64(), Some(want.messages), "{ctx}: total_messages; {got}");
    match &want.last_active {
        None => assert!(m["last_active"].is_null(), "{ctx}: last_active; {got}"),
        Some(t) => assert_eq!(m["last_active"].as_str(), Some(t.as_str()), "{ctx}: last_active; {got}"),
    }
    match want.satisfaction {
        None => assert!(m["satisfaction_score"].is_null(), "{ctx}: satisfaction_score; {got}"),
        Some(w) => {
            let g = m["satisfaction_score"].as_f64().unwrap_or_else(|| panic!("{ctx}: satisfaction_score; {got}"));
            assert!((g - w).abs() < 1e-9, "{ctx}: satisfaction_score {g}, expected {w}; {got}");
        }
    }
    let topics: Vec<&str> = m["topics_discussed"]
        .as_array()
        .unwrap_or_else(|| panic!("{ctx}: topics_discussed; {got}"))
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(topics, want.topics, "{ctx}: topics_discussed; {got}");
}

#[derive(Debug, Clone, PartialEq)]
struct Engagement {
    daily_active: bool,
    active_days: usize,
    retention: f64,
    churn: &'static str,
}

/// Engagement of `user` as of `now` in `tz`, by the definition.
fn engagement(evs: &[Ev], user: &str, now: DateTime<Utc>, tz: Tz) -> Engagement {
    let es = user_events(evs, user);
    let today = local_date(tz, now);
    let start30 = midnight(tz, today - Duration::days(29));
    let days: BTreeSet<NaiveDate> =
        es.iter().filter(|e| e.ts >= start30 && e.ts <= now).map(|e| local_date(tz, e.ts)).collect();
    let within = |d: Duration| es.iter().any(|e| e.ts >= now - d && e.ts <= now);
    let churn = if !within(Duration::days(14)) {
        "high"
    } else if days.len() < 6 || !within(Duration::days(7)) {
        "medium"
    } else {
        "low"
    };
    Engagement {
        daily_active: es.iter().any(|e| e.ts <= now && local_date(tz, e.ts) == today),
        active_days: days.len(),
        retention: (days.len() as f64 / 30.0 * 10_000.0).round() / 10_000.0,
        churn,
    }
}

#[track_caller]
fn assert_engagement(got: &Value, want: &Engagement, ctx: &str) {
    let e = &got["engagement"];
    assert_eq!(keys(e), BTreeSet::from(["daily_active", "retention_30d", "churn_risk"]), "{ctx}: {got}");
    assert_eq!(e["daily_active"].as_bool(), Some(want.daily_active), "{ctx}: daily_active; {want:?}; {got}");
    let r = e["retention_30d"].as_f64().unwrap_or_else(|| panic!("{ctx}: retention_30d; {got}"));
    assert!((r - want.retention).abs() < 1e-9, "{ctx}: retention_30d {r}, expected {want:?}; {got}");
    assert_eq!(e["churn_risk"].as_str(), Some(want.churn), "{ctx}: churn_risk; {want:?}; {got}");
}

/// The default range (the last 30 local days to now): checks the engagement, the metrics
/// and the range of the answer against the model at the clock just before and just after
/// the request, and retries when those disagree (a day boundary passed meanwhile).
async fn check_now(app: &TestApp, tok: &str, evs: &[Ev], user: &str, tz: Option<&str>) -> (Value, Engagement) {
    let zone: Tz = tz.unwrap_or("UTC").parse().unwrap();
    let params: Vec<(&str, &str)> = tz.map(|t| vec![("timezone", t)]).unwrap_or_default();
    let start30 = |now: DateTime<Utc>| midnight(zone, local_date(zone, now) - Duration::days(29));
    for _ in 0..3 {
        let before = Utc::now();
        let b = get_ok(app, tok, user, &params).await;
        let after = Utc::now();
        let want = engagement(evs, user, before, zone);
        let (s0, s1) = (start30(before), start30(after));
        // Every event is older than `before`, so the metrics' end does not matter.
        let m = model(evs, user, s0, before);
        if want != engagement(evs, user, after, zone) || s0 != s1 || m != model(evs, user, s1, before) {
            continue;
        }
        let ctx = format!("{user} in {}", tz.unwrap_or("UTC (default)"));
        assert_engagement(&b, &want, &ctx);
        assert_metrics(&b, &m, &ctx);
        assert_eq!(b["date_range"]["start"], secs(s0), "{ctx}: the last 30 local days, today included: {b}");
        let end = at(b["date_range"]["end"].as_str().unwrap());
        assert!(
            end >= before - Duration::seconds(1) && end <= after,
            "{ctx}: the default range ends now: {b} ({before} .. {after})"
        );
        return (b, want);
    }
    panic!("{user}: the clock kept crossing a boundary");
}

// ---------------------------------------------------------------------------------------
// Seed 004's request and a hand-counted user
// ---------------------------------------------------------------------------------------

/// `user123` in March 2025 (UTC), each event testing one rule; numbers in the comments.
fn user123() -> Vec<Ev> {
    let u = "user123";
    vec![
        // Before the range by one second: not counted, and does not join the next session.
        ev(u, "message", "2025-02-28T23:59:59Z").topic("legacy"),
        // The range's first second: a session of its own (0 s).
        ev(u, "message", "2025-03-01T00:00:00Z"),
        // Session A, no id: gaps of exactly 30 minutes stay in it: 10:00 to 11:00 (3600 s).
        ev(u, "page_view", "2025-03-05T10:00:00Z"),
        ev(u, "message", "2025-03-05T10:30:00Z"),
        ev(u, "message", "2025-03-05T11:00:00Z"),
        // Session B: 30 min + 1 s later, a new one: 11:30:01 to 11:45:00 (899 s).
        ev(u, "message", "2025-03-05T11:30:01Z"),
        ev(u, "satisfaction", "2025-03-05T11:45:00Z").score(4.0),
        // Session s-1, by id: 40-minute gaps do not split it: 12:00 to 13:20 (4800 s).
        ev(u, "conversation_started", "2025-03-05T12:00:00Z").sid("s-1").topic("support"),
        ev(u, "message", "2025-03-05T12:40:00Z").sid("s-1"),
        ev(u, "message", "2025-03-05T13:20:00Z").sid("s-1"),
        // Session C: 35 minutes after B's last event without an id (s-1's events between do
        // not keep B open): 12:20 to 12:50 (1800 s).
        ev(u, "satisfaction", "2025-03-05T12:20:00Z").score(5.0).topic("billing"),
        ev(u, "message", "2025-03-05T12:50:00Z").topic("support"),
        // Session s-2: one event (0 s).
        ev(u, "message", "2025-03-10T09:00:00Z").sid("s-2").topic("features"),
        // Session E: 09:30 to 09:45 (900 s); a score on a `rating` is no satisfaction.
        ev(u, "satisfaction", "2025-03-10T09:30:00Z").score(4.0).topic("billing"),
        ev(u, "rating", "2025-03-10T09:45:00Z").score(1.0),
        // The range's last second: a session of its own (0 s).
        ev(u, "message", "2025-03-31T23:59:59Z"),
        // The first second after the range: not counted.
        ev(u, "message", "2025-04-01T00:00:00Z").topic("later"),
    ]
}

/// Users whose events must never be counted as `user123`'s.
fn neighbours() -> Vec<Ev> {
    let mut out = Vec::new();
    for (u, s) in [("user1234", "s-1"), ("user12", "x"), ("USER123", "s-9"), ("user123 ", "y")] {
        out.push(ev(u, "message", "2025-03-05T10:15:00Z").topic("other"));
        out.push(ev(u, "message", "2025-03-05T11:15:00Z").sid(s));
        out.push(ev(u, "satisfaction", "2025-03-06T11:15:00Z").score(1.0));
    }
    out.push(ev("user123", "message", "2025-03-05T10:16:00Z").anon().topic("anonymous"));
    out
}

#[tokio::test]
async fn seed_004_request_and_a_hand_counted_user() {
    let app = TestApp::spawn().await;
    let tok = token("admin", Some("acme"));
    let mut evs = user123();
    evs.extend(neighbours());
    ingest(&app, &tok, &evs).await;

    let range = [("start_date", "2025-03-01"), ("end_date", "2025-03-31")];
    let b = get_ok(&app, &tok, "user123", &range).await;

    // The hand count.
    let want = model(&evs, "user123", at("2025-03-01T00:00:00Z"), at("2025-04-01T00:00:00Z"));
    assert_eq!(want.lengths, vec![0, 0, 0, 899, 900, 1800, 3600, 4800], "the model agrees with the comments");
    assert_eq!(want.sessions, 8);
    assert_eq!(want.avg_secs, 1500, "11999 / 8 = 1499.875");
    assert_eq!(want.messages, 9);
    assert_eq!(want.satisfaction, Some(4.33), "(4 + 5 + 4) / 3");
    assert_eq!(want.topics, ["support", "billing", "features"]);
    assert_eq!(want.last_active.as_deref(), Some("2025-03-31T23:59:59Z"));
    assert_metrics(&b, &want, "user123 in March");
    let m = &b["metrics"];
    assert_eq!(m["total_sessions"], 8);
    assert_eq!(m["total_messages"], 9);
    assert_eq!(m["average_session_duration"], 1500);
    assert_eq!(m["last_active"], "2025-03-31T23:59:59Z");
    assert_eq!(m["satisfaction_score"], 4.33);
    assert_eq!(m["topics_discussed"], json!(["support", "billing", "features"]));

    // Seed 004's shape, and the range this service adds.
    assert_eq!(keys(&b), BTreeSet::from(["user_id", "metrics", "engagement", "date_range"]), "{b}");
    assert_eq!(b["user_id"], "user123");
    assert!(m["total_sessions"].is_u64() && m["total_messages"].is_u64() && m["average_session_duration"].is_i64());
    assert_eq!(b["date_range"], json!({"start": "2025-03-01T00:00:00Z", "end": "2025-04-01T00:00:00Z"}));
    // Engagement is as of now: nothing since 2025.
    let e = &b["engagement"];
    assert_eq!(e["daily_active"], false, "{b}");
    assert_eq!(e["retention_30d"].as_f64(), Some(0.0), "{b}");
    assert_eq!(e["churn_risk"], "high", "{b}");

    // The range as instants: [10:30:00, 12:50:00) on March 5 cuts sessions to their part
    // inside it: A 10:30-11:00, B, s-1 12:00-12:40, C 12:20 alone.
    let b =
        get_ok(&app, &tok, "user123", &[("start_date", "2025-03-05T10:30:00Z"), ("end_date", "2025-03-05T12:50:00Z")])
            .await;
    let want = model(&evs, "user123", at("2025-03-05T10:30:00Z"), at("2025-03-05T12:50:00Z"));
    assert_eq!(want.lengths, vec![0, 899, 1800, 2400]);
    assert_eq!(want.satisfaction, Some(4.5));
    assert_eq!(want.topics, ["support", "billing"]);
    assert_metrics(&b, &want, "instants");
    assert_eq!(b["date_range"], json!({"start": "2025-03-05T10:30:00Z", "end": "2025-03-05T12:50:00Z"}));

    // One day, given as the same start and end date.
    let b = get_ok(&app, &tok, "user123", &[("start_date", "2025-03-10"), ("end_date", "2025-03-10")]).await;
    let want = model(&evs, "user123", at("2025-03-10T00:00:00Z"), at("2025-03-11T00:00:00Z"));
    assert_eq!(want.lengths, vec![0, 900]);
    assert_metrics(&b, &want, "March 10");
    assert_eq!(b["date_range"], json!({"start": "2025-03-10T00:00:00Z", "end": "2025-03-11T00:00:00Z"}));

    // A range without any of the user's events: zeros, no last activity, no score.
    let b = get_ok(&app, &tok, "user123", &[("start_date", "2025-03-20"), ("end_date", "2025-03-30")]).await;
    let want = model(&evs, "user123", at("2025-03-20T00:00:00Z"), at("2025-03-31T00:00:00Z"));
    assert_eq!(want.sessions, 0);
    assert_metrics(&b, &want, "an empty range");
    assert_eq!(b["metrics"]["topics_discussed"], json!([]));

    // A start alone runs to now: every event from March 5 on.
    let b = get_ok(&app, &tok, "user123", &[("start_date", "2025-03-05")]).await;
    let want = model(&evs, "user123", at("2025-03-05T00:00:00Z"), Utc::now());
    assert_eq!(want.topics, ["support", "billing", "features", "later"]);
    assert_metrics(&b, &want, "from March 5");
    assert_eq!(b["date_range"]["start"], "2025-03-05T00:00:00Z");

    // The neighbours are users of their own.
    for u in ["user1234", "user12", "USER123", "user123 "] {
        let b = get_ok(&app, &tok, u, &range).await;
        assert_eq!(b["user_id"], u);
        assert_metrics(&b, &model(&evs, u, at("2025-03-01T00:00:00Z"), at("2025-04-01T00:00:00Z")), u);
        assert_eq!(b["metrics"]["total_messages"], 2, "{u}: {b}");
    }
}

#[tokio::test]
async fn sessions_break_after_more_than_30_minutes_without_an_event_without_id() {
    let app = TestApp::spawn().await;
    let tok = token("admin", Some("acme"));
    let u = "walker";
    let t0 = at("2025-03-12T08:00:00Z");
    // Gaps (seconds) between events without a session id: 1800 keeps the session, 1801
    // breaks it, 1799 keeps it.
    let gaps = [1800, 1800, 1801, 1799, 1, 1801, 1801, 3600, 1800, 2, 1799, 7200, 1800];
    let mut evs = vec![ev_at(u, "message", t0)];
    let mut t = t0;
    for g in gaps {
        t += Duration::seconds(g);
        evs.push(ev_at(u, "message", t));
    }
    // Events with ids in the middle of the long gaps neither break nor bridge them.
    evs.push(ev_at(u, "page_view", t0 + Duration::seconds(3600 + 1801 / 2)).sid("a"));
    evs.push(ev_at(u, "page_view", t0 + Duration::seconds(3600 + 1801 + 1799 + 1 + 900)).sid("a"));
    evs.push(ev_at(u, "page_view", t0 + Duration::seconds(3600 + 1801 + 1799 + 1 + 1801 + 600)).sid("b"));
    ingest(&app, &tok, &evs).await;

    let want = model(&evs, u, at("2025-03-12T00:00:00Z"), at("2025-03-13T00:00:00Z"));
    // Without ids, the sessions are (gaps) {t0, +1800, +1800}, {+1801, +1799, +1},
    // {+1801}, {+1801}, {+3600, +1800, +2, +1799}, {+7200, +1800}.
    let no_id = [3600, 1800, 0, 0, 3601, 1800];
    // With ids: "a" from t0 + 4500 s to t0 + 8101 s, "b" one event.
    let a_len = (3600 + 1801 + 1799 + 1 + 900) - (3600 + 1801 / 2);
    let mut lengths: Vec<i64> = no_id.iter().copied().chain([a_len, 0]).collect();
    lengths.sort();
    assert_eq!(want.lengths, lengths, "the model agrees with the hand count");
    assert_eq!(want.sessions, 8);
    let b = get_ok(&app, &tok, u, &[("start_date", "2025-03-12"), ("end_date", "2025-03-12")]).await;
    assert_metrics(&b, &want, "walker");
    assert_eq!(b["metrics"]["total_sessions"], 8);
    assert_eq!(b["metrics"]["average_session_duration"], 1800, "14402 s / 8");

    // From t0 + 5401 s (instants): the sessions before are gone, the one it starts kept.
    let from = t0 + Duration::seconds(5401);
    let b = get_ok(&app, &tok, u, &[("start_date", &secs(from)), ("end_date", "2025-03-13")]).await;
    let want = model(&evs, u, from, at("2025-03-14T00:00:00Z"));
    assert_eq!(want.sessions, 7, "{want:?}");
    assert_metrics(&b, &want, "walker from the fourth session");
}

#[tokio::test]
async fn events_in_the_same_second_stay_in_one_session() {
    let app = TestApp::spawn().await;
    let tok = token("admin", Some("acme"));
    // Events without a session id come in pairs at the same second, an hour apart; every
    // other pair has a third event 10 minutes later. Each pair is one session (a gap of 0
    // is not more than 30 minutes).
    let u = "twins";
    let mut evs = Vec::new();
    for k in 0..24 {
        let t = at("2025-03-12T00:00:00Z") + Duration::hours(k);
        evs.push(ev_at(u, "message", t));
        evs.push(ev_at(u, "message", t));
        if k % 2 == 0 {
            evs.push(ev_at(u, "page_view", t + Duration::minutes(10)));
        }
    }
    ingest(&app, &tok, &evs).await;
    let want = model(&evs, u, at("2025-03-12T00:00:00Z"), at("2025-03-13T00:00:00Z"));
    assert_eq!(want.sessions, 24);
    assert_eq!(want.avg_secs, 300, "12 sessions of 600 s, 12 of 0 s");
    assert_eq!(want.messages, 48);
    let b = get_ok(&app, &tok, u, &[("start_date", "2025-03-12"), ("end_date", "2025-03-12")]).await;
    assert_metrics(&b, &want, "pairs in the same second");

    // Many more: 3,000 hours with three events in the same second, and a fourth 5 minutes
    // later every third hour: 3,000 sessions, 1,000 of them 300 s long.
    let u = "crowd";
    let mut evs = Vec::new();
    for k in 0..3000 {
        let t = at("2025-01-01T00:00:00Z") + Duration::hours(k);
        for _ in 0..3 {
            evs.push(ev_at(u, "message", t));
        }
        if k % 3 == 0 {
            evs.push(ev_at(u, "page_view", t + Duration::minutes(5)));
        }
    }
    ingest(&app, &tok, &evs).await;
    let want = model(&evs, u, at("2025-01-01T00:00:00Z"), at("2025-07-01T00:00:00Z"));
    assert_eq!((want.sessions, want.avg_secs), (3000, 100));
    for _ in 0..3 {
        let b = get_ok(&app, &tok, u, &[("start_date", "2025-01-01"), ("end_date", "2025-06-30")]).await;
        assert_metrics(&b, &want, "3,000 triples in the same second");
    }
}

#[tokio::test]
async fn exactly_30_minutes_apart_with_fractions_of_a_second_is_one_session() {
    let app = TestApp::spawn().await;
    let tok = token("admin", Some("acme"));
    // Pairs of events without a session id, two hours apart, each pair exactly 30 minutes
    // apart to the microsecond, at many fractions of a second: one session each.
    let u = "fractions";
    let mut r = Rng(30);
    let mut evs = Vec::new();
    let day = at("2025-03-12T00:00:00Z");
    for k in 0..40 {
        let micros = match k {
            0 => 100_000,
            1 => 123_456,
            2 => 300_000,
            3 => 999_999,
            4 => 1,
            _ => r.below(1_000_000) as i64,
        };
        let t = day + Duration::hours(2 * k) + Duration::microseconds(micros);
        evs.push(ev_at(u, "message", t));
        evs.push(ev_at(u, "message", t + Duration::minutes(30)));
    }
    // And pairs a millisecond and a microsecond more than 30 minutes apart: two each.
    let t = at("2025-03-20T00:00:00.250Z");
    evs.push(ev_at(u, "page_view", t));
    evs.push(ev_at(u, "page_view", t + Duration::minutes(30) + Duration::milliseconds(1)));
    let t = at("2025-03-20T03:00:00.250Z");
    evs.push(ev_at(u, "page_view", t));
    evs.push(ev_at(u, "page_view", t + Duration::minutes(30) + Duration::microseconds(1)));
    ingest(&app, &tok, &evs).await;

    let want = model(&evs, u, at("2025-03-12T00:00:00Z"), at("2025-03-21T00:00:00Z"));
    assert_eq!(want.sessions, 44);
    assert_eq!(want.avg_secs, (40.0 * 1800.0 / 44.0_f64).round() as i64);
    assert_eq!(want.last_active.as_deref(), Some("2025-03-20T03:30:00.250001Z"));
    let b = get_ok(&app, &tok, u, &[("start_date", "2025-03-12"), ("end_date", "2025-03-20")]).await;
    assert_metrics(&b, &want, "fractions of a second");
}

// ---------------------------------------------------------------------------------------
// Random users
// ---------------------------------------------------------------------------------------

/// `users` users with events from 2025-02-20 on: gaps of exactly 30 minutes, 30 minutes
/// and a second, less, more, days; some events with one of a few session ids; messages,
/// satisfaction with whole and half scores, topics from a pool of 30. Each user's events
/// are at distinct seconds. User 0 talks about many topics.
fn population(seed: u64, users: usize) -> Vec<Ev> {
    let mut r = Rng(seed);
    let mut out = Vec::new();
    for u in 0..users {
        let user = format!("r{u}");
        let n = if u == 0 { 90 } else { 5 + r.below(90) };
        let mut t = at("2025-02-20T00:00:00Z") + Duration::seconds(r.below(20 * 86_400) as i64);
        let topic_chance = if u == 0 { 80 } else { 25 };
        for _ in 0..n {
            t += Duration::seconds(match r.below(100) {
                0..=11 => 1800,
                12..=21 => 1801,
                22..=59 => 1 + r.below(1799),
                60..=84 => 1802 + r.below(3 * 3600),
                _ => 3 * 3600 + r.below(4 * 86_400),
            } as i64);
            let (name, score) = match r.below(100) {
                0..=39 => ("message", None),
                40..=51 => ("satisfaction", Some((2 + r.below(9)) as f64 / 2.0)),
                52..=59 => ("rating", Some(1.0)),
                60..=69 => ("conversation_started", None),
                70..=84 => ("page_view", None),
                _ => ("login", None),
            };
            let mut e = ev_at(&user, name, t);
            e.score = score;
            if r.chance(35) {
                e.session = Some(format!("{user}-s{}", r.below(4)));
            }
            if r.chance(topic_chance) {
                e.topic = Some(format!("topic-{:02}", r.below(30)));
            }
            out.push(e);
        }
    }
    for k in 0..20 {
        out.push(ev("r1", "message", "2025-03-10T00:00:00Z").anon().topic(&format!("anon-{k}")));
    }
    out
}

/// Query parameters, and the range they mean.
type RangeCase = (Vec<(&'static str, &'static str)>, DateTime<Utc>, DateTime<Utc>);

#[tokio::test]
async fn forty_random_users_in_utc_local_and_instant_ranges() {
    let app = TestApp::spawn().await;
    let tok = token("analyst", Some("acme"));
    let evs = population(2025, 40);
    ingest(&app, &token("ingest", Some("acme")), &evs).await;

    let kolkata: Tz = "Asia/Kolkata".parse().unwrap();
    let new_york: Tz = "America/New_York".parse().unwrap();
    let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    // (params, start, end)
    let cases: Vec<RangeCase> = vec![
        (
            vec![("start_date", "2025-03-01"), ("end_date", "2025-03-31")],
            at("2025-03-01T00:00:00Z"),
            at("2025-04-01T00:00:00Z"),
        ),
        (
            vec![("start_date", "2025-03-01"), ("end_date", "2025-03-31"), ("timezone", "Asia/Kolkata")],
            midnight(kolkata, d("2025-03-01")),
            midnight(kolkata, d("2025-04-01")),
        ),
        (
            vec![("start_date", "2025-03-10T06:30:00Z"), ("end_date", "2025-03-20T18:00:00Z")],
            at("2025-03-10T06:30:00Z"),
            at("2025-03-20T18:00:00Z"),
        ),
        (
            // Across New York's change to summer time (2025-03-09).
            vec![("start_date", "2025-03-05"), ("end_date", "2025-03-15"), ("timezone", "America/New_York")],
            midnight(new_york, d("2025-03-05")),
            midnight(new_york, d("2025-03-16")),
        ),
        (
            vec![("start_date", "2025-01-01"), ("end_date", "2025-06-30")],
            at("2025-01-01T00:00:00Z"),
            at("2025-07-01T00:00:00Z"),
        ),
    ];
    assert_eq!(secs(cases[1].1), "2025-02-28T18:30:00Z");
    assert_eq!(secs(cases[3].1), "2025-03-05T05:00:00Z");
    assert_eq!(secs(cases[3].2), "2025-03-16T04:00:00Z");

    let mut seen = BTreeSet::new();
    let (mut truncated, mut scored, mut multi) = (0, 0, 0);
    for u in 0..40 {
        let user = format!("r{u}");
        for (i, (params, start, end)) in cases.iter().enumerate() {
            let want = model(&evs, &user, *start, *end);
            let b = get_ok(&app, &tok, &user, params).await;
            assert_metrics(&b, &want, &format!("{user}, case {i}"));
            assert_eq!(b["date_range"], json!({"start": secs(*start), "end": secs(*end)}), "{user} case {i}");
            assert_eq!(b["engagement"]["churn_risk"], "high", "{b}");
            seen.insert((want.sessions, want.avg_secs, want.messages));
            if i == 4 {
                truncated += usize::from(want.topics.len() == 20);
                scored += usize::from(want.satisfaction.is_some());
                multi += usize::from(want.sessions >= 5);
            }
        }
    }
    // The data exercise the rules.
    assert!(seen.len() >= 100, "answers differ: {}", seen.len());
    assert!(truncated >= 1 && scored >= 20 && multi >= 20, "{truncated} {scored} {multi}");
    let all = model(&evs, "r0", at("2025-01-01T00:00:00Z"), at("2025-07-01T00:00:00Z"));
    let distinct: BTreeSet<&str> =
        evs.iter().filter(|e| e.user.as_deref() == Some("r0")).filter_map(|e| e.topic.as_deref()).collect();
    assert!(distinct.len() > 20 && all.topics.len() == 20, "r0 has more than 20 topics: {}", distinct.len());
}

// ---------------------------------------------------------------------------------------
// Engagement, as of now
// ---------------------------------------------------------------------------------------

/// Users whose events are placed relative to `now`.
fn recent(now: DateTime<Utc>) -> Vec<Ev> {
    let day = Duration::days(1);
    let mut evs = Vec::new();
    let on_days = |evs: &mut Vec<Ev>, user: &str, days: &[i64], extra: Duration| {
        for k in days {
            evs.push(ev_at(user, "message", now - day * (*k as i32) - extra));
        }
    };
    // Active on each of the last 10 days: low.
    on_days(&mut evs, "daily", &(0..10).collect::<Vec<_>>(), Duration::seconds(1));
    // Every one of the last 30 days, and days 30 to 35 before them: 30 of 30.
    on_days(&mut evs, "every_day", &(0..36).collect::<Vec<_>>(), Duration::zero());
    // Only 20 days ago: high.
    on_days(&mut evs, "twenty", &[20], Duration::zero());
    // Only 40 days ago: high, and no day of the last 30.
    on_days(&mut evs, "forty", &[40], Duration::zero());
    // Today (an hour ago) and 2 days ago: fewer than 6 days: medium.
    on_days(&mut evs, "few", &[2], Duration::zero());
    on_days(&mut evs, "few", &[0], Duration::hours(1));
    // 6 days in the last week: low; 5 days: medium.
    on_days(&mut evs, "six_days", &[0, 1, 2, 3, 4, 5], Duration::minutes(1));
    on_days(&mut evs, "five_days", &[0, 1, 2, 3, 4], Duration::minutes(1));
    // Many days, none in the last 7: medium.
    on_days(&mut evs, "not_this_week", &[8, 9, 10, 11, 12, 13], Duration::zero());
    // The same and one event a minute inside the 7 days: low; a minute outside: medium.
    on_days(&mut evs, "edge7_in", &[8, 9, 10, 11, 12, 13], Duration::zero());
    evs.push(ev_at("edge7_in", "message", now - day * 7 + Duration::minutes(1)));
    on_days(&mut evs, "edge7_out", &[8, 9, 10, 11, 12, 13], Duration::zero());
    evs.push(ev_at("edge7_out", "message", now - day * 7 - Duration::minutes(1)));
    // One event a minute inside the 14 days: medium; a minute outside: high.
    evs.push(ev_at("edge14_in", "message", now - day * 14 + Duration::minutes(1)));
    evs.push(ev_at("edge14_out", "message", now - day * 14 - Duration::minutes(1)));
    // Many events on one (UTC) day 3 days ago: one active day.
    let three = midnight(Tz::UTC, now.date_naive() - Duration::days(3)) + Duration::hours(1);
    for h in 0..12 {
        evs.push(ev_at("one_day", "message", three + Duration::minutes(h)).topic(&format!("t{h}")));
    }
    evs
}

#[tokio::test]
async fn engagement_daily_active_retention_and_churn_as_of_now() {
    let app = TestApp::spawn().await;
    let tok = token("viewer", Some("acme"));
    let now = Utc::now().trunc_subsecs(0);
    let mut evs = recent(now);
    // The UTC edges of the 30 days: its first second counts, the second before does not.
    let start30 = midnight(Tz::UTC, now.date_naive() - Duration::days(29));
    evs.push(ev_at("first_second", "message", start30));
    evs.push(ev_at("second_before", "message", start30 - Duration::seconds(1)));
    ingest(&app, &token("ingest", Some("acme")), &evs).await;

    let users = [
        "daily",
        "every_day",
        "twenty",
        "forty",
        "few",
        "six_days",
        "five_days",
        "not_this_week",
        "edge7_in",
        "edge7_out",
        "edge14_in",
        "edge14_out",
        "one_day",
        "first_second",
        "second_before",
    ];
    let mut got = BTreeMap::new();
    for u in users {
        let (_, e) = check_now(&app, &tok, &evs, u, None).await;
        got.insert(u, e);
    }
    // What does not depend on the time of day.
    let churn = |u: &str| got[u].churn;
    let days = |u: &str| got[u].active_days;
    assert_eq!((churn("daily"), days("daily")), ("low", 10));
    assert_eq!((churn("every_day"), days("every_day"), got["every_day"].retention), ("low", 30, 1.0));
    assert!(got["every_day"].daily_active);
    assert_eq!((churn("twenty"), days("twenty"), got["twenty"].retention), ("high", 1, 0.0333));
    assert!(!got["twenty"].daily_active);
    assert_eq!((churn("forty"), days("forty"), got["forty"].retention), ("high", 0, 0.0));
    assert_eq!(churn("few"), "medium");
    assert_eq!((churn("six_days"), days("six_days"), got["six_days"].retention), ("low", 6, 0.2));
    assert_eq!((churn("five_days"), days("five_days")), ("medium", 5));
    assert_eq!((churn("not_this_week"), days("not_this_week")), ("medium", 6));
    assert_eq!(churn("edge7_in"), "low");
    assert_eq!(churn("edge7_out"), "medium");
    assert_eq!((churn("edge14_in"), days("edge14_in")), ("medium", 1));
    assert_eq!((churn("edge14_out"), days("edge14_out")), ("high", 1));
    assert_eq!(days("one_day"), 1);
    assert_eq!((days("first_second"), days("second_before")), (1, 0));

    // Engagement does not depend on the requested range.
    let b = get_ok(&app, &tok, "daily", &[("start_date", "2025-03-01"), ("end_date", "2025-03-31")]).await;
    assert_eq!(b["metrics"]["total_sessions"], 0, "{b}");
    assert!(b["metrics"]["last_active"].is_null(), "{b}");
    assert_eq!(b["engagement"]["churn_risk"], "low", "{b}");
    assert_eq!(b["engagement"]["retention_30d"].as_f64(), Some(0.3333), "{b}");

    // The same users in other time zones.
    for tz in ["Asia/Kolkata", "America/New_York", "Pacific/Kiritimati", "Etc/GMT+12"] {
        for u in users {
            check_now(&app, &tok, &evs, u, Some(tz)).await;
        }
    }
}

#[tokio::test]
async fn a_time_zone_moves_today_and_the_30_days() {
    let app = TestApp::spawn().await;
    let tok = token("admin", Some("acme"));
    let now = Utc::now().trunc_subsecs(0);
    let midnight_utc = midnight(Tz::UTC, now.date_naive());
    // Before noon UTC: an event a second before UTC midnight is yesterday in UTC but today
    // 12 hours ahead; after noon, an event at UTC midnight is today in UTC but yesterday 12
    // hours behind.
    let (ts, zone) = if now - midnight_utc < Duration::hours(12) {
        (midnight_utc - Duration::seconds(1), "Etc/GMT-12")
    } else {
        (midnight_utc, "Etc/GMT+12")
    };
    let mut evs = vec![ev_at("zoned", "message", ts)];
    // Events around the first second of the 30 days in UTC.
    let start30 = midnight(Tz::UTC, now.date_naive() - Duration::days(29));
    for off in [-13 * 3600, -3600, -1, 0, 1, 3600, 13 * 3600] {
        evs.push(ev_at("edges", "message", start30 + Duration::seconds(off)));
    }
    ingest(&app, &tok, &evs).await;

    let (utc, e_utc) = check_now(&app, &tok, &evs, "zoned", None).await;
    let (local, e_local) = check_now(&app, &tok, &evs, "zoned", Some(zone)).await;
    assert_ne!(e_utc.daily_active, e_local.daily_active, "{zone} moves today: {utc} {local}");
    assert_eq!(e_utc.daily_active, ts == midnight_utc);
    // UTC given by name is the default.
    check_now(&app, &tok, &evs, "zoned", Some("UTC")).await;

    let mut counts = BTreeSet::new();
    for tz in [None, Some("Etc/GMT-12"), Some("Etc/GMT+12"), Some("Asia/Kolkata"), Some("Europe/Paris")] {
        let (b, _) = check_now(&app, &tok, &evs, "edges", tz).await;
        counts.insert(b["metrics"]["total_messages"].as_u64().unwrap());
    }
    assert!(counts.len() >= 2, "the zone moves the default range: {counts:?}");
}

#[tokio::test]
async fn an_event_later_today_makes_today_an_active_day() {
    let app = TestApp::spawn().await;
    let tok = token("admin", Some("acme"));
    let now = Utc::now().trunc_subsecs(0);
    // A client whose clock runs two minutes ahead; the event is still today in UTC.
    let ts = now + Duration::minutes(2);
    if ts.date_naive() != now.date_naive() || (ts + Duration::minutes(1)).date_naive() != now.date_naive() {
        return; // the last minutes of a UTC day: nothing to test
    }
    ingest(&app, &tok, &[ev_at("skewed", "message", ts)]).await;
    let b = get_ok(&app, &tok, "skewed", &[]).await;
    // Today is one of the last 30 days, and the user has an event today: both agree.
    assert_eq!(b["engagement"]["daily_active"], true, "{b}");
    assert_eq!(b["engagement"]["retention_30d"].as_f64(), Some(0.0333), "today is an active day: {b}");
}

// ---------------------------------------------------------------------------------------
// The metrics filter
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn metrics_lists_a_subset_and_engagement_always_answers() {
    let app = TestApp::spawn().await;
    let tok = token("admin", Some("acme"));
    let u = "picky";
    let evs = vec![
        ev(u, "message", "2025-03-05T10:00:00Z").topic("billing"),
        ev(u, "message", "2025-03-05T10:20:00Z").sid("s"),
        ev(u, "message", "2025-03-05T11:00:00Z").topic("support"),
    ];
    ingest(&app, &tok, &evs).await;
    let range = [("start_date", "2025-03-01"), ("end_date", "2025-03-31")];
    let all = METRICS.join(",");
    let full = get_ok(&app, &tok, u, &range).await;
    let want = model(&evs, u, at("2025-03-01T00:00:00Z"), at("2025-04-01T00:00:00Z"));
    assert_metrics(&full, &want, "all metrics");
    assert!(full["metrics"]["satisfaction_score"].is_null(), "no satisfaction events: null; {full}");

    for (list, expect) in [
        ("total_sessions,topics_discussed", vec!["total_sessions", "topics_discussed"]),
        (" total_messages , last_active ", vec!["total_messages", "last_active"]),
        ("satisfaction_score", vec!["satisfaction_score"]),
        ("average_session_duration,average_session_duration", vec!["average_session_duration"]),
        (all.as_str(), METRICS.to_vec()),
        ("", METRICS.to_vec()),
    ] {
        let mut params = range.to_vec();
        params.push(("metrics", list));
        let b = get_ok(&app, &tok, u, &params).await;
        assert_eq!(keys(&b["metrics"]), expect.iter().copied().collect(), "metrics={list:?}: {b}");
        for k in &expect {
            assert_eq!(b["metrics"][*k], full["metrics"][*k], "{k}");
        }
        assert_eq!(b["engagement"], full["engagement"], "metrics={list:?}");
        assert_eq!(b["date_range"], full["date_range"]);
        assert_eq!(b["user_id"], u);
    }

    for bad in ["total_sessions,bogus", "sessions", "session_count"] {
        let mut params = range.to_vec();
        params.push(("metrics", bad));
        let p = assert_problem(&get(&app, &tok, u, &params).await, 400);
        assert_eq!(p["type"], "/problems/validation");
        assert_eq!(p["errors"][0]["field"], "metrics", "{bad}: {p}");
    }
    let mut params = range.to_vec();
    params.push(("metrics", "total_sessions,bogus"));
    let p = assert_problem(&get(&app, &tok, u, &params).await, 400);
    assert!(p["detail"].as_str().unwrap().contains("bogus"), "the detail names the metric: {p}");
}

// ---------------------------------------------------------------------------------------
// Whose events
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn another_tenants_user_with_the_same_id_is_never_counted() {
    let app = TestApp::spawn().await;
    let (acme, beta) = (token("admin", Some("acme")), token("admin", Some("beta")));
    let now = Utc::now().trunc_subsecs(0);
    let acme_evs = vec![
        ev("shared", "message", "2025-03-05T10:00:00Z").topic("acme-topic"),
        ev("shared", "satisfaction", "2025-03-05T10:10:00Z").score(5.0),
    ];
    let mut beta_evs = vec![
        ev("shared", "message", "2025-03-05T10:05:00Z").topic("beta-topic"),
        ev("shared", "message", "2025-03-05T12:00:00Z").sid("b"),
        ev("shared", "satisfaction", "2025-03-05T10:20:00Z").score(1.0),
        ev("beta_only", "message", "2025-03-05T10:00:00Z"),
    ];
    for k in 0..10 {
        beta_evs.push(ev_at("shared", "message", now - Duration::days(k) - Duration::seconds(1)));
    }
    ingest(&app, &acme, &acme_evs).await;
    ingest(&app, &beta, &beta_evs).await;

    let range = [("start_date", "2025-03-01"), ("end_date", "2025-03-31")];
    let (s, e) = (at("2025-03-01T00:00:00Z"), at("2025-04-01T00:00:00Z"));
    let a = get_ok(&app, &acme, "shared", &range).await;
    assert_metrics(&a, &model(&acme_evs, "shared", s, e), "acme");
    assert_eq!(a["metrics"]["total_messages"], 1);
    assert_eq!(a["metrics"]["satisfaction_score"], 5.0);
    assert_eq!(a["metrics"]["topics_discussed"], json!(["acme-topic"]));
    // Beta's recent events make no engagement in acme.
    assert_eq!(a["engagement"], json!({"daily_active": false, "retention_30d": 0.0, "churn_risk": "high"}));
    check_now(&app, &acme, &acme_evs, "shared", None).await;

    let b = get_ok(&app, &beta, "shared", &range).await;
    assert_metrics(&b, &model(&beta_evs, "shared", s, e), "beta");
    check_now(&app, &beta, &beta_evs, "shared", None).await;

    // Beta's own user is unknown in acme; acme's and beta's are unknown in a third tenant.
    let p = assert_problem(&get(&app, &acme, "beta_only", &range).await, 404);
    assert_eq!(p["type"], "/problems/not_found");
    assert_problem(&get(&app, &token("viewer", Some("gamma")), "shared", &[]).await, 404);
    // A superuser acting in acme sees acme's.
    let su = send(app.get(&path_of("shared", &range)).bearer_auth(superuser()).header("X-Tenant-ID", "acme")).await;
    assert_eq!(su.0, 200, "{}", su.1);
    assert_eq!(su.1["metrics"], a["metrics"]);
}

#[tokio::test]
async fn user_ids_with_quotes_semicolons_and_unicode() {
    let app = TestApp::spawn().await;
    let tok = token("admin", Some("acme"));
    let (long, long_unicode) = ("x".repeat(200), "é".repeat(200));
    let ids = [
        long.as_str(),
        long_unicode.as_str(),
        "o'brien",
        "a\"b;c",
        "x'; DROP TABLE events; --",
        "' OR '1'='1",
        "ユーザー🚀",
        "ümlaut café",
        "100% + more?&=#",
        "back\\slash",
        "a/b",
        "two  spaces ",
    ];
    let mut evs = Vec::new();
    for (i, u) in ids.iter().enumerate() {
        for k in 0..=i {
            let ts = at("2025-03-05T10:00:00Z") + Duration::minutes(k as i64 * 40);
            evs.push(ev_at(u, "message", ts).topic(&format!("t{k}")));
        }
    }
    // A plain user whose events the odd ids must not reach.
    evs.push(ev("plain", "message", "2025-03-05T10:00:00Z"));
    ingest(&app, &tok, &evs).await;

    let range = [("start_date", "2025-03-01"), ("end_date", "2025-03-31")];
    let (s, e) = (at("2025-03-01T00:00:00Z"), at("2025-04-01T00:00:00Z"));
    for (i, u) in ids.iter().enumerate() {
        let (st, b, _) = get(&app, &tok, u, &range).await;
        assert_eq!(st, 200, "{u:?} ({}): {b}", path_of(u, &range));
        assert_eq!(b["user_id"], *u, "{b}");
        let want = model(&evs, u, s, e);
        assert_eq!(want.messages, i as u64 + 1);
        assert_metrics(&b, &want, u);
        // A trailing slash does not matter.
        let slash = format!("{}/?start_date=2025-03-01&end_date=2025-03-31", path_of(u, &[]));
        let (st, b2, _) = send(app.get(&slash).bearer_auth(&tok)).await;
        assert_eq!((st, &b2), (200, &b), "{slash}");
    }
    // Nothing was dropped or widened.
    let b = get_ok(&app, &tok, "plain", &range).await;
    assert_eq!(b["metrics"]["total_messages"], 1);
    assert_problem(&get(&app, &tok, "' OR 1=1 --", &range).await, 404);
    assert_problem(&get(&app, &tok, "%", &range).await, 404);
}

#[tokio::test]
async fn a_user_without_any_event_is_a_404_problem() {
    let app = TestApp::spawn().await;
    let tok = token("viewer", Some("acme"));
    // An empty store.
    let p = assert_problem(&get(&app, &tok, "ghost", &[]).await, 404);
    assert_eq!(p["type"], "/problems/not_found");
    assert!(p["detail"].as_str().unwrap().contains("ghost"), "{p}");

    let evs =
        vec![ev("known", "message", "2025-03-05T10:00:00Z"), ev("anon", "message", "2025-03-05T10:00:00Z").anon()];
    ingest(&app, &token("ingest", Some("acme")), &evs).await;
    assert_problem(&get(&app, &tok, "ghost", &[]).await, 404);
    assert_problem(&get(&app, &tok, "Known", &[]).await, 404);
    assert_problem(&get(&app, &tok, "know", &[]).await, 404);
    // A known user with no event in the range is no 404.
    let b = get_ok(&app, &tok, "known", &[]).await;
    assert_eq!(b["metrics"]["total_sessions"], 0, "{b}");
    assert_eq!(b["engagement"]["churn_risk"], "high");
}

// ---------------------------------------------------------------------------------------
// Bad requests, access
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn bad_inputs_are_problems_naming_the_field() {
    let app = TestApp::spawn().await;
    let tok = token("admin", Some("acme"));
    ingest(&app, &tok, &[ev("u1", "message", "2025-03-05T10:00:00Z")]).await;

    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("start_date", "2025-02-30")], "start_date"),
        (vec![("start_date", "yesterday-ish")], "start_date"),
        (vec![("start_date", "2025-03-01"), ("end_date", "31/03/2025")], "end_date"),
        (vec![("start_date", "2025-03-01"), ("end_date", "2025-03-01T25:00:00Z")], "end_date"),
        (vec![("start_date", "2025-03-10"), ("end_date", "2025-03-01")], "end_date"),
        (vec![("start_date", "2025-03-10T00:00:00Z"), ("end_date", "2025-03-09T23:59:59Z")], "end_date"),
        (vec![("start_date", "2025-03-10T00:00:00Z"), ("end_date", "2025-03-10T00:00:00Z")], "end_date"),
        (vec![("start_date", "1990-01-01"), ("end_date", "2025-03-01")], "end_date"),
        (vec![("metrics", "total_sessions,churn")], "metrics"),
        (vec![("timezone", "Mars/Olympus")], "timezone"),
        (vec![("timezone", "+05:00")], "timezone"),
    ];
    for (params, field) in cases {
        let p = assert_problem(&get(&app, &tok, "u1", &params).await, 400);
        assert_eq!(p["type"], "/problems/validation", "{params:?}: {p}");
        let fields: Vec<&str> = p["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
        assert_eq!(fields, [field], "{params:?}: {p}");
    }
    // Several at once: each is named.
    let p = assert_problem(
        &get(&app, &tok, "u1", &[("start_date", "nope"), ("metrics", "bogus"), ("timezone", "Nowhere/City")]).await,
        400,
    );
    let fields: BTreeSet<&str> = p["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, BTreeSet::from(["start_date", "metrics", "timezone"]), "{p}");
    // A user id longer than 200 characters.
    let p = assert_problem(&get(&app, &tok, &"u".repeat(201), &[]).await, 400);
    assert_eq!(p["errors"][0]["field"], "user_id", "{p}");
    let p = assert_problem(&get(&app, &tok, &"é".repeat(201), &[]).await, 400);
    assert_eq!(p["errors"][0]["field"], "user_id", "{p}");
    // A path that is not UTF-8 once decoded.
    let p = assert_problem(&send(app.get("/api/v1/analytics/users/%FF%FE/analytics").bearer_auth(&tok)).await, 400);
    assert_eq!(p["type"], "/problems/validation", "{p}");
}

#[tokio::test]
async fn concurrent_requests_each_get_their_users_answer() {
    let app = TestApp::spawn().await;
    let tok = token("viewer", Some("acme"));
    let evs = population(77, 12);
    ingest(&app, &token("ingest", Some("acme")), &evs).await;
    let (start, end) = (at("2025-01-01T00:00:00Z"), at("2025-07-01T00:00:00Z"));
    let mut set = tokio::task::JoinSet::new();
    for round in 0..4 {
        for u in 0..12 {
            let user = format!("r{u}");
            let url = app.url(&path_of(&user, &[("start_date", "2025-01-01"), ("end_date", "2025-06-30")]));
            let req = app.client.get(url).bearer_auth(&tok);
            set.spawn(async move { (round, user, send(req).await) });
        }
    }
    let mut n = 0;
    while let Some(done) = set.join_next().await {
        let (round, user, (s, b, _)) = done.unwrap();
        assert_eq!(s, 200, "{user} round {round}: {b}");
        assert_eq!(b["user_id"], user.as_str());
        assert_metrics(&b, &model(&evs, &user, start, end), &format!("{user} round {round}"));
        n += 1;
    }
    assert_eq!(n, 48);
}

#[tokio::test]
async fn who_may_read_a_users_analytics() {
    let app = TestApp::spawn().await;
    ingest(&app, &token("ingest", Some("acme")), &[ev("u1", "message", "2025-03-05T10:00:00Z")]).await;
    let url = path_of("u1", &[("start_date", "2025-03-01"), ("end_date", "2025-03-31")]);

    let p = assert_problem(&send(app.get(&url)).await, 401);
    assert_eq!(p["type"], "/problems/unauthorized");
    assert_problem(&send(app.get(&url).bearer_auth("not-a-token")).await, 401);
    let mut bad = token("viewer", Some("acme"));
    bad.push('x');
    assert_problem(&send(app.get(&url).bearer_auth(bad)).await, 401);
    let p = assert_problem(&send(app.get(&url).bearer_auth(token("ingest", Some("acme")))).await, 403);
    assert_eq!(p["type"], "/problems/forbidden");
    // Another tenant's X-Tenant-ID.
    assert_problem(
        &send(app.get(&url).bearer_auth(token("viewer", Some("beta"))).header("X-Tenant-ID", "acme")).await,
        403,
    );
    for role in ["viewer", "analyst", "admin"] {
        let (s, b, _) = send(app.get(&url).bearer_auth(token(role, Some("acme")))).await;
        assert_eq!(s, 200, "{role}: {b}");
        assert_eq!(b["metrics"]["total_messages"], 1, "{role}: {b}");
    }
}
