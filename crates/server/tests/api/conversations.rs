//! End-to-end tests of seed 004's conversation analytics
//! (`GET /api/v1/analytics/conversations/analytics`).
//!
//! Every answer is checked against a model in plain Rust, written from the definition of
//! who counts (top of `crates/core/src/query/conversations.rs`) and not from the SQL: a
//! conversation is a `properties.conversation_id` carried by any event in the period; its
//! bot, topic and user are the first non-null ones of its events in the period; its
//! duration runs from its first to its last event in the period; its messages are its
//! `message` events; it is completed with a `conversation_ended` event, resolved unless
//! that event says `"resolved": false`; the timeline puts it in the bucket of its first
//! event in the period (local time). Events come from a small seeded PRNG at fixed
//! timestamps in 2025, each conversation's events at distinct seconds, so no answer
//! depends on today's date (except the test of `today`, `week` and `month`) or on ties.

use crate::helpers::*;
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, SecondsFormat, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

const BATCH: &str = "/api/v1/analytics/events/batch";
const CONVERSATIONS: &str = "/api/v1/analytics/conversations/analytics";

// ---------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------

/// A property as sent: absent (`None`), JSON null (`Some(None)`), or a string.
type Prop = Option<Option<String>>;

fn val(s: &str) -> Prop {
    Some(Some(s.to_owned()))
}

#[derive(Clone, Debug)]
struct Ev {
    name: String,
    ts: DateTime<Utc>,
    user: Option<String>,
    conv: Prop,
    bot: Prop,
    topic: Prop,
    resolved: Option<bool>,
}

impl Ev {
    fn user(mut self, u: &str) -> Self {
        self.user = Some(u.into());
        self
    }
    fn bot(mut self, b: &str) -> Self {
        self.bot = val(b);
        self
    }
    fn topic(mut self, t: &str) -> Self {
        self.topic = val(t);
        self
    }
    fn resolved(mut self, r: bool) -> Self {
        self.resolved = Some(r);
        self
    }

    fn json(&self) -> Value {
        let mut p = Map::new();
        let mut put = |k: &str, v: &Prop| {
            if let Some(v) = v {
                p.insert(k.into(), v.as_deref().map_or(Value::Null, |s| json!(s)));
            }
        };
        put("conversation_id", &self.conv);
        put("bot_id", &self.bot);
        put("topic", &self.topic);
        if let Some(r) = self.resolved {
            p.insert("resolved".into(), json!(r));
        }
        if self.name == "message" {
            p.insert("role".into(), json!(if self.ts.timestamp() % 2 == 0 { "user" } else { "assistant" }));
            p.insert("token_count".into(), json!(self.ts.timestamp() % 300));
        }
        let mut o = json!({
            "event_name": self.name,
            "properties": p,
            "timestamp": self.ts.to_rfc3339_opts(SecondsFormat::Secs, true),
        });
        if let Some(u) = &self.user {
            o["user_id"] = json!(u);
        }
        o
    }

    fn conv_id(&self) -> Option<&str> {
        self.conv.as_ref().and_then(|c| c.as_deref())
    }
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// An event of conversation `conv` (None: without a `conversation_id`) at `ts`.
fn ev(conv: Option<&str>, name: &str, ts: &str) -> Ev {
    ev_at(conv, name, at(ts))
}

fn ev_at(conv: Option<&str>, name: &str, ts: DateTime<Utc>) -> Ev {
    Ev {
        name: name.into(),
        ts,
        user: None,
        conv: conv.map(|c| Some(c.to_owned())),
        bot: None,
        topic: None,
        resolved: None,
    }
}

const BOTS: [&str; 3] = ["support-bot", "sales-bot", "faq-bot"];
/// A bot that joins conversations late: never the first bot of one it joins.
const HANDOFF_BOT: &str = "handoff-bot";
const TOPICS: [(&str, u64); 6] =
    [("billing", 30), ("technical_support", 25), ("onboarding", 15), ("refunds", 12), ("sales", 10), ("feedback", 8)];
/// A topic that a conversation takes late: never the first topic of one it is named in.
const LATE_TOPIC: &str = "escalation";

fn weighted_topic(r: &mut Rng) -> &'static str {
    let total: u64 = TOPICS.iter().map(|t| t.1).sum();
    let mut x = r.below(total);
    for (t, w) in TOPICS {
        if x < w {
            return t;
        }
        x -= w;
    }
    unreachable!()
}

/// The gap before a conversation's next event: mostly seconds to minutes, sometimes
/// hours, now and then more than a day.
fn gap(r: &mut Rng) -> Duration {
    Duration::seconds(match r.below(100) {
        0..=79 => 5 + r.below(300),
        80..=87 => 600 + r.below(3 * 3600),
        _ => 6 * 3600 + r.below(36 * 3600),
    } as i64)
}

/// `n` conversations `c000`, `c001`, ... whose first events fall in `[from, from +
/// span_days)`: mostly started, some messages, mostly ended (resolved true, false, or not
/// said), sometimes rated after. A conversation's bot, topic and user are on some of its
/// events only (sometimes a JSON null), and a few late events name another bot, topic or
/// user. Plus events that belong to no conversation.
fn population(seed: u64, n: usize, from: DateTime<Utc>, span_days: u64) -> Vec<Ev> {
    let mut r = Rng(seed);
    let mut out = Vec::new();
    for i in 0..n {
        let id = format!("c{i:03}");
        let user = (!r.chance(6)).then(|| format!("u{:02}", r.below(60)));
        let bot = (!r.chance(8)).then(|| r.pick(&BOTS));
        let topic = (!r.chance(10)).then(|| weighted_topic(&mut r));
        let mut names = Vec::new();
        if r.chance(92) {
            names.push("conversation_started");
        }
        names.extend(std::iter::repeat_n("message", r.below(12) as usize));
        let ended = r.chance(70);
        if ended {
            names.push("conversation_ended");
            if r.chance(15) {
                names.push("satisfaction");
            }
        }
        if names.is_empty() {
            names.push("message");
        }
        let mut t = from + Duration::seconds(r.below(span_days * 86_400) as i64);
        let (mut bot_said, mut topic_said) = (false, false);
        for (k, name) in names.into_iter().enumerate() {
            if k > 0 {
                t += gap(&mut r);
            }
            let first = k == 0;
            let mut e = ev_at(Some(&id), name, t);
            e.user = match &user {
                Some(u) if r.chance(75) => Some(u.clone()),
                _ if !first && r.chance(4) => Some(format!("agent{}", r.below(3))),
                _ => None,
            };
            e.bot = match bot {
                Some(b) if r.chance(if first { 60 } else { 30 }) => {
                    val(if bot_said && r.chance(20) { HANDOFF_BOT } else { b })
                }
                _ if r.chance(10) => Some(None),
                _ => None,
            };
            bot_said |= matches!(e.bot, Some(Some(_)));
            e.topic = match topic {
                Some(tp) if r.chance(if first { 70 } else { 25 }) => {
                    val(if topic_said && r.chance(20) { LATE_TOPIC } else { tp })
                }
                _ if r.chance(10) => Some(None),
                _ => None,
            };
            topic_said |= matches!(e.topic, Some(Some(_)));
            if name == "conversation_ended" {
                e.resolved = match r.below(10) {
                    0..=4 => Some(true),
                    5..=7 => Some(false),
                    _ => None,
                };
            }
            out.push(e);
        }
    }
    // Events of no conversation: messages without a conversation_id, with a null one, and
    // other events.
    let span = span_days * 86_400;
    for k in 0..40 {
        let t = from + Duration::seconds(r.below(span) as i64);
        let mut e = ev_at(None, "message", t).user(&format!("u{:02}", k % 60)).bot(r.pick(&BOTS));
        e.topic = val(weighted_topic(&mut r));
        out.push(e);
    }
    for k in 0..10 {
        let t = from + Duration::seconds(r.below(span) as i64);
        let mut e = ev_at(None, if k % 2 == 0 { "message" } else { "conversation_started" }, t).user("u01");
        e.conv = Some(None);
        out.push(e.bot("support-bot").topic("billing"));
    }
    for _ in 0..20 {
        let t = from + Duration::seconds(r.below(span) as i64);
        out.push(ev_at(None, "page_view", t).user("u02"));
    }
    out
}

/// About 170 conversations around March 2025 (first events from 2025-02-26 to
/// 2025-04-02), of which about 130 fall in `MARCH`.
fn march_population(seed: u64) -> Vec<Ev> {
    population(seed, 170, at("2025-02-26T00:00:00Z"), 36)
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

/// A `period=custom` request.
#[derive(Clone, Debug)]
struct Q {
    start: String,
    end: String,
    group_by: Option<&'static str>,
    timezone: Option<&'static str>,
    bot: Option<String>,
}

/// March 3 to 30, 2025 (four whole ISO weeks).
const MARCH: (&str, &str) = ("2025-03-03", "2025-03-30");

impl Q {
    fn custom(start: &str, end: &str) -> Q {
        Q { start: start.into(), end: end.into(), group_by: None, timezone: None, bot: None }
    }
    fn march() -> Q {
        Q::custom(MARCH.0, MARCH.1)
    }
    fn group_by(mut self, g: &'static str) -> Self {
        self.group_by = Some(g);
        self
    }
    fn tz(mut self, tz: &'static str) -> Self {
        self.timezone = Some(tz);
        self
    }
    fn bot(mut self, b: &str) -> Self {
        self.bot = Some(b.into());
        self
    }
    fn params(&self) -> Vec<(&'static str, String)> {
        let mut p =
            vec![("period", "custom".to_owned()), ("start_date", self.start.clone()), ("end_date", self.end.clone())];
        if let Some(g) = self.group_by {
            p.push(("group_by", g.into()));
        }
        if let Some(tz) = self.timezone {
            p.push(("timezone", tz.into()));
        }
        if let Some(b) = &self.bot {
            p.push(("bot_id", b.clone()));
        }
        p
    }
    fn zone(&self) -> Tz {
        self.timezone.map_or(Tz::UTC, |t| t.parse().unwrap())
    }
    /// A date is local midnight (an end date: the midnight after it); an instant is itself.
    fn bound(&self, s: &str, is_end: bool) -> DateTime<Utc> {
        match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            Ok(d) => midnight(self.zone(), if is_end { d + Duration::days(1) } else { d }),
            Err(_) => at(s),
        }
    }
    fn window(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        (self.bound(&self.start, false), self.bound(&self.end, true))
    }
}

fn midnight(tz: Tz, d: NaiveDate) -> DateTime<Utc> {
    tz.from_local_datetime(&d.and_time(NaiveTime::MIN)).earliest().unwrap().with_timezone(&Utc)
}

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

async fn get_ok(app: &TestApp, tok: &str, params: &[(&str, String)]) -> Value {
    let (st, b, _) = send(app.get(CONVERSATIONS).bearer_auth(tok).query(params)).await;
    assert_eq!(st, 200, "{params:?}: {b}");
    b
}

// ---------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Conv {
    id: String,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
    user: Option<String>,
    bot: Option<String>,
    topic: Option<String>,
    messages: u64,
    completed: bool,
    resolved: bool,
}

/// The conversations of `[from, to)`, by the definition.
fn conversations(evs: &[Ev], from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Conv> {
    let mut by_id: BTreeMap<&str, Vec<&Ev>> = BTreeMap::new();
    for e in evs.iter().filter(|e| e.ts >= from && e.ts < to) {
        if let Some(c) = e.conv_id() {
            by_id.entry(c).or_default().push(e);
        }
    }
    let first_of = |es: &[&Ev], f: fn(&Ev) -> Option<String>| es.iter().find_map(|e| f(e));
    by_id
        .into_iter()
        .map(|(id, mut es)| {
            es.sort_by_key(|e| e.ts);
            let ended: Vec<&&Ev> = es.iter().filter(|e| e.name == "conversation_ended").collect();
            Conv {
                id: id.to_owned(),
                first: es[0].ts,
                last: es[es.len() - 1].ts,
                user: first_of(&es, |e| e.user.clone()),
                bot: first_of(&es, |e| e.bot.clone().flatten()),
                topic: first_of(&es, |e| e.topic.clone().flatten()),
                messages: es.iter().filter(|e| e.name == "message").count() as u64,
                completed: !ended.is_empty(),
                resolved: ended.iter().any(|e| e.resolved != Some(false)),
            }
        })
        .collect()
}

/// A bucket's label: the local start of the hour, day, ISO week or month holding `t`.
fn label(g: &str, tz: Tz, t: DateTime<Utc>) -> String {
    let local = t.with_timezone(&tz).naive_local();
    let d = local.date();
    match g {
        "hour" => format!("{}T{:02}:00:00", d.format("%Y-%m-%d"), local.hour()),
        "day" => d.format("%Y-%m-%d").to_string(),
        "week" => (d - Duration::days(d.weekday().num_days_from_monday() as i64)).format("%Y-%m-%d").to_string(),
        "month" => d.with_day(1).unwrap().format("%Y-%m-%d").to_string(),
        _ => unreachable!("{g}"),
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Want {
    total: u64,
    completed: u64,
    resolved: u64,
    /// Exact averages, before rounding (None: no conversation).
    duration: Option<f64>,
    messages: Option<f64>,
    /// (date, conversations, messages, unique users), in date order.
    timeline: Vec<(String, u64, u64, u64)>,
    /// (topic, conversations), most first, then by name.
    topics: Vec<(String, u64)>,
    period: (String, String),
}

fn tally(convs: &[Conv], q: &Q) -> Want {
    let convs: Vec<&Conv> = convs.iter().filter(|c| q.bot.as_ref().is_none_or(|b| c.bot.as_ref() == Some(b))).collect();
    let n = convs.len() as u64;
    let avg = |xs: Vec<f64>| (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64);
    let g = q.group_by.unwrap_or("day");
    let mut buckets: BTreeMap<String, (u64, u64, BTreeSet<&str>)> = BTreeMap::new();
    for c in &convs {
        let b = buckets.entry(label(g, q.zone(), c.first)).or_default();
        b.0 += 1;
        b.1 += c.messages;
        if let Some(u) = &c.user {
            b.2.insert(u);
        }
    }
    let mut topics: BTreeMap<&str, u64> = BTreeMap::new();
    for c in &convs {
        if let Some(t) = &c.topic {
            *topics.entry(t).or_default() += 1;
        }
    }
    let mut topics: Vec<(String, u64)> = topics.into_iter().map(|(t, k)| (t.to_owned(), k)).collect();
    topics.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let (from, to) = q.window();
    Want {
        total: n,
        completed: convs.iter().filter(|c| c.completed).count() as u64,
        resolved: convs.iter().filter(|c| c.resolved).count() as u64,
        duration: avg(convs.iter().map(|c| (c.last - c.first).num_seconds() as f64).collect()),
        messages: avg(convs.iter().map(|c| c.messages as f64).collect()),
        timeline: buckets.into_iter().map(|(d, (k, m, u))| (d, k, m, u.len() as u64)).collect(),
        topics,
        period: (rfc(from), rfc(to)),
    }
}

fn model(evs: &[Ev], q: &Q) -> Want {
    let (from, to) = q.window();
    tally(&conversations(evs, from, to), q)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
}

/// `got` is `exact` rounded to `decimals` places (either neighbour when `exact` lies on a
/// half, where the server's float sum may differ from ours in the last bit).
#[track_caller]
fn assert_rounded(got: &Value, exact: f64, decimals: i32, ctx: &str) {
    let g = got.as_f64().unwrap_or_else(|| panic!("{ctx}: expected a number, got {got}"));
    let f = 10f64.powi(decimals);
    let x = exact * f;
    let ok = if (x.fract().abs() - 0.5).abs() < 1e-6 {
        close(g * f, x.floor()) || close(g * f, x.ceil())
    } else {
        close(g, x.round() / f)
    };
    assert!(ok, "{ctx}: expected {exact} rounded to {decimals} places, got {g}");
}

fn ratio(n: u64, total: u64) -> f64 {
    if total == 0 { 0.0 } else { (n as f64 / total as f64 * 10_000.0).round() / 10_000.0 }
}

/// A topic's percentage: its share of the conversations that have a topic, rounded.
fn percentage(n: u64, total: u64) -> f64 {
    if total == 0 { 0.0 } else { (n as f64 * 100.0 / total as f64).round() }
}

fn timeline_of(b: &Value, ctx: &str) -> Vec<(String, u64, u64, u64)> {
    let rows = b["timeline"].as_array().unwrap_or_else(|| panic!("{ctx}: no timeline in {b}"));
    rows.iter()
        .map(|r| {
            let n = |k: &str| r[k].as_u64().unwrap_or_else(|| panic!("{ctx}: {k} of {r}"));
            let date = r["date"].as_str().unwrap_or_else(|| panic!("{ctx}: date of {r}")).to_owned();
            (date, n("conversations"), n("messages"), n("unique_users"))
        })
        .collect()
}

fn topics_of(b: &Value, ctx: &str) -> Vec<(String, u64)> {
    let rows = b["topics"].as_array().unwrap_or_else(|| panic!("{ctx}: no topics in {b}"));
    rows.iter()
        .map(|r| {
            let t = r["topic"].as_str().unwrap_or_else(|| panic!("{ctx}: topic of {r}")).to_owned();
            (t, r["count"].as_u64().unwrap_or_else(|| panic!("{ctx}: count of {r}")))
        })
        .collect()
}

/// The answer holds `want`.
#[track_caller]
fn assert_answer(b: &Value, want: &Want, ctx: &str) {
    let s = &b["summary"];
    assert_eq!(s["total_conversations"], want.total, "{ctx}: total_conversations; {s}");
    assert_eq!(s["completed_conversations"], want.completed, "{ctx}: completed_conversations; {s}");
    assert_rounded(&s["average_duration_seconds"], want.duration.unwrap_or(0.0), 0, &format!("{ctx}: duration"));
    assert_rounded(
        &s["average_messages_per_conversation"],
        want.messages.unwrap_or(0.0),
        2,
        &format!("{ctx}: messages per conversation"),
    );
    let rate = s["resolution_rate"].as_f64().unwrap_or_else(|| panic!("{ctx}: resolution_rate of {s}"));
    assert!(close(rate, ratio(want.resolved, want.total)), "{ctx}: resolution_rate {rate}, want {want:?}");
    assert_eq!(timeline_of(b, ctx), want.timeline, "{ctx}: timeline");
    assert_eq!(topics_of(b, ctx), want.topics, "{ctx}: topics");
    let with_topic: u64 = want.topics.iter().map(|t| t.1).sum();
    for (row, (t, n)) in b["topics"].as_array().unwrap().iter().zip(&want.topics) {
        let p = row["percentage"].as_f64().unwrap_or_else(|| panic!("{ctx}: percentage of {row}"));
        assert!(close(p, percentage(*n, with_topic)), "{ctx}: percentage of {t}: got {p}, {n} of {with_topic}");
    }
    assert_eq!(b["period"], json!({"start": want.period.0, "end": want.period.1}), "{ctx}: period");
}

/// Sends `q`, checks the answer against the model and returns (answer, model).
async fn check(app: &TestApp, tok: &str, evs: &[Ev], q: &Q, ctx: &str) -> (Value, Want) {
    let want = model(evs, q);
    let b = get_ok(app, tok, &q.params()).await;
    assert_answer(&b, &want, ctx);
    (b, want)
}

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object().unwrap_or_else(|| panic!("not an object: {v}")).keys().map(String::as_str).collect()
}

/// Ids of conversations with events both before `t` and at or after it.
fn crossing(evs: &[Ev], t: DateTime<Utc>) -> BTreeSet<String> {
    let side = |before: bool| -> BTreeSet<String> {
        evs.iter().filter(|e| (e.ts < t) == before).filter_map(|e| e.conv_id().map(str::to_owned)).collect()
    };
    side(true).intersection(&side(false)).cloned().collect()
}

// ---------------------------------------------------------------------------------------
// Who counts: hand-made conversations
// ---------------------------------------------------------------------------------------

/// Conversations of June 2 to 4, 2025, each testing one rule.
fn hand_made() -> Vec<Ev> {
    vec![
        // h1: the bot is named on the second event only, another bot later: support-bot.
        ev(Some("h1"), "conversation_started", "2025-06-02T10:00:00Z").user("a").topic("billing"),
        ev(Some("h1"), "message", "2025-06-02T10:00:30Z").user("a").bot("support-bot"),
        ev(Some("h1"), "message", "2025-06-02T10:01:00Z").bot("sales-bot"),
        ev(Some("h1"), "conversation_ended", "2025-06-02T10:05:00Z").user("a").resolved(true),
        // h2: starts before the range: only its events in the range count (bot, topic,
        // duration 20 minutes); ended unresolved.
        ev(Some("h2"), "conversation_started", "2025-06-01T23:50:00Z").user("b").bot("sales-bot").topic("sales"),
        ev(Some("h2"), "message", "2025-06-02T00:10:00Z").user("b"),
        ev(Some("h2"), "message", "2025-06-02T00:20:00Z").bot("support-bot"),
        ev(Some("h2"), "conversation_ended", "2025-06-02T00:30:00Z").topic("refunds").resolved(false),
        // h3: ends after the range: one message and 30 min 10 s in it, not completed.
        ev(Some("h3"), "conversation_started", "2025-06-04T23:00:00Z").user("c").bot("support-bot").topic("billing"),
        ev(Some("h3"), "message", "2025-06-04T23:30:10Z").user("c"),
        ev(Some("h3"), "message", "2025-06-05T00:30:00Z").user("c"),
        ev(Some("h3"), "conversation_ended", "2025-06-05T01:00:00Z").resolved(true),
        // h4: ended without saying whether resolved: resolved.
        ev(Some("h4"), "conversation_started", "2025-06-03T08:00:00Z").user("a").bot("support-bot").topic("billing"),
        ev(Some("h4"), "conversation_ended", "2025-06-03T08:00:46Z").user("a"),
        // h5: a conversation made of a rating only.
        ev(Some("h5"), "satisfaction", "2025-06-03T09:00:00Z").user("d"),
        // h6: the user comes on the second event; ended unresolved.
        ev(Some("h6"), "message", "2025-06-03T12:00:00Z").bot("sales-bot"),
        ev(Some("h6"), "message", "2025-06-03T12:01:00Z").user("e"),
        ev(Some("h6"), "conversation_ended", "2025-06-03T12:02:00Z").user("e").resolved(false),
        // h7: wholly before the range.
        ev(Some("h7"), "conversation_started", "2025-06-01T10:00:00Z").user("f").bot("support-bot"),
        ev(Some("h7"), "conversation_ended", "2025-06-01T10:10:00Z").user("f").resolved(true),
        // Events of no conversation.
        ev(None, "message", "2025-06-02T10:02:00Z").user("a").bot("support-bot").topic("billing"),
        Ev { conv: Some(None), ..ev(None, "message", "2025-06-03T10:00:00Z").user("g").bot("support-bot") },
        ev(None, "conversation_ended", "2025-06-03T10:00:01Z").user("g").resolved(true),
    ]
}

#[tokio::test]
async fn hand_made_conversations_each_count_by_one_rule() {
    let app = TestApp::spawn().await;
    let tok = token("admin", Some("acme"));
    let evs = hand_made();
    ingest(&app, &tok, &evs).await;
    let q = Q::custom("2025-06-02", "2025-06-04");
    let ids = |v: &[Conv]| v.iter().map(|c| c.id.clone()).collect::<Vec<_>>();
    let (from, to) = q.window();
    assert_eq!(ids(&conversations(&evs, from, to)), ["h1", "h2", "h3", "h4", "h5", "h6"]);

    let (b, want) = check(&app, &tok, &evs, &q, "all").await;
    // The model agrees with the hand count.
    assert_eq!((want.total, want.completed, want.resolved), (6, 4, 2));
    // Durations 300 + 1200 + 1810 + 46 + 0 + 120 = 3476 s over 6; messages 2+2+1+0+0+2.
    assert_eq!(b["summary"]["average_duration_seconds"].as_f64(), Some(579.0), "{b}");
    assert_eq!(b["summary"]["average_messages_per_conversation"].as_f64(), Some(1.17), "{b}");
    assert_eq!(b["summary"]["resolution_rate"].as_f64(), Some(0.3333), "{b}");
    assert_eq!(
        want.timeline,
        vec![("2025-06-02".into(), 2, 4, 2), ("2025-06-03".into(), 3, 2, 3), ("2025-06-04".into(), 1, 1, 1)]
    );
    assert_eq!(want.topics, vec![("billing".into(), 3), ("refunds".into(), 1)]);
    assert_eq!(b["topics"][0]["percentage"].as_f64(), Some(75.0), "{b}");
    assert_eq!(b["topics"][1]["percentage"].as_f64(), Some(25.0), "{b}");
    assert_eq!(b["period"], json!({"start": "2025-06-02T00:00:00Z", "end": "2025-06-05T00:00:00Z"}));

    // support-bot: h1 (named second), h2 (named in the range), h3, h4.
    let (b, want) = check(&app, &tok, &evs, &q.clone().bot("support-bot"), "support-bot").await;
    assert_eq!((want.total, want.completed, want.resolved), (4, 3, 2));
    assert_eq!(b["summary"]["average_duration_seconds"].as_f64(), Some(839.0), "{b}");
    assert_eq!(b["summary"]["average_messages_per_conversation"].as_f64(), Some(1.25), "{b}");
    assert_eq!(b["summary"]["resolution_rate"].as_f64(), Some(0.5), "{b}");
    // sales-bot: h6 only (h1 names it late, h2 before the range).
    let (b, want) = check(&app, &tok, &evs, &q.clone().bot("sales-bot"), "sales-bot").await;
    assert_eq!((want.total, want.completed, want.resolved), (1, 1, 0));
    assert_eq!(want.timeline, vec![("2025-06-03".into(), 1, 2, 1)]);
    assert_eq!(b["topics"], json!([]), "{b}");
    assert_eq!(b["summary"]["average_duration_seconds"].as_f64(), Some(120.0), "{b}");

    // A range of June 1 alone holds h2's start and h7.
    let (_, want) = check(&app, &tok, &evs, &Q::custom("2025-06-01", "2025-06-01"), "june 1").await;
    assert_eq!((want.total, want.completed, want.resolved), (2, 1, 1));
    assert_eq!(want.topics, vec![("sales".into(), 1)]);
}

// ---------------------------------------------------------------------------------------
// Generated conversations
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn summary_timeline_and_topics_follow_the_definition() {
    let app = TestApp::spawn().await;
    let tok = token("admin", Some("acme"));
    let evs = march_population(4);
    ingest(&app, &tok, &evs).await;
    let q = Q::march();
    let (from, to) = q.window();

    // The data make the rules matter: conversations cross both edges of the range, some
    // take their bot, topic or user from a later event, some are left unfinished.
    let across = [crossing(&evs, from), crossing(&evs, to)];
    assert!(across[0].len() >= 2 && across[1].len() >= 2, "{across:?}");
    let (b, want) = check(&app, &tok, &evs, &q, "march").await;
    assert!((100..=160).contains(&want.total), "{want:?}");
    assert!(want.completed < want.total && want.resolved < want.completed && want.resolved > 0, "{want:?}");
    assert!(want.timeline.len() >= 25, "conversations on most days: {want:?}");
    assert!(want.topics.len() >= 6, "{want:?}");
    let convs = conversations(&evs, from, to);
    let late = |f: fn(&Ev) -> bool| {
        convs.iter().filter(|c| evs.iter().filter(|e| e.conv_id() == Some(&c.id) && e.ts == c.first).any(f)).count()
    };
    assert!(late(|e| e.bot.clone().flatten().is_none()) > 10, "bots named late");
    assert!(late(|e| e.user.is_none()) > 10, "users named late");
    assert!(evs.iter().any(|e| e.bot == val(HANDOFF_BOT)), "a bot joins late");
    // Unique users are fewer than conversations on some days.
    assert!(want.timeline.iter().any(|t| t.3 < t.1), "{want:?}");
    assert!(b["summary"]["average_messages_per_conversation"].as_f64().unwrap() > 1.0, "{b}");

    // Only events in the range count: a wider range holds more, and the conversations
    // that cross the start count differently.
    let wide = Q::custom("2025-02-20", "2025-04-10");
    let (_, w) = check(&app, &tok, &evs, &wide, "wide").await;
    assert!(w.total > want.total, "{w:?}");
    let wide_convs = conversations(&evs, wide.window().0, wide.window().1);
    let differ = across[0].iter().filter(|id| {
        let a = convs.iter().find(|c| &&c.id == id).unwrap();
        let b = wide_convs.iter().find(|c| &&c.id == id).unwrap();
        a.first != b.first && (a.messages != b.messages || a.last - a.first != b.last - b.first)
    });
    assert!(differ.count() >= 1, "a conversation crossing the start counts less of itself");

    // One day, and one day of which only part of a conversation falls in.
    for day in ["2025-03-10", "2025-03-16", "2025-03-30"] {
        check(&app, &tok, &evs, &Q::custom(day, day), day).await;
    }
    // An empty stretch.
    let (b, want) = check(&app, &tok, &evs, &Q::custom("2024-01-01", "2024-01-31"), "empty").await;
    assert_eq!(want.total, 0);
    assert_eq!(
        b["summary"],
        json!({"total_conversations": 0, "completed_conversations": 0, "average_duration_seconds": 0.0,
               "average_messages_per_conversation": 0.0, "resolution_rate": 0.0}),
        "{b}"
    );
    assert_eq!(b["timeline"], json!([]));
    assert_eq!(b["topics"], json!([]));
}

#[tokio::test]
async fn the_answer_has_seed_004s_shape() {
    let app = TestApp::spawn().await;
    let tok = token("admin", Some("acme"));
    let evs = march_population(5);
    ingest(&app, &tok, &evs).await;
    let b = get_ok(&app, &tok, &Q::march().params()).await;

    assert_eq!(keys(&b), BTreeSet::from(["summary", "timeline", "topics", "period"]), "{b}");
    let s = &b["summary"];
    assert_eq!(
        keys(s),
        BTreeSet::from([
            "total_conversations",
            "completed_conversations",
            "average_duration_seconds",
            "average_messages_per_conversation",
            "resolution_rate"
        ]),
        "{s}"
    );
    assert!(s["total_conversations"].is_u64() && s["completed_conversations"].is_u64(), "{s}");
    let dur = s["average_duration_seconds"].as_f64().unwrap();
    assert_eq!(dur, dur.round(), "whole seconds: {s}");
    let msgs = s["average_messages_per_conversation"].as_f64().unwrap();
    assert!(close(msgs * 100.0, (msgs * 100.0).round()), "two decimals: {s}");
    let rate = s["resolution_rate"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&rate) && close(rate * 10_000.0, (rate * 10_000.0).round()), "four decimals: {s}");

    let timeline = b["timeline"].as_array().unwrap();
    assert!(!timeline.is_empty());
    for row in timeline {
        assert_eq!(keys(row), BTreeSet::from(["date", "conversations", "messages", "unique_users"]), "{row}");
        let d = row["date"].as_str().unwrap();
        assert!(NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok() && d.len() == 10, "{row}");
        for k in ["conversations", "messages", "unique_users"] {
            assert!(row[k].is_u64(), "{row}");
        }
    }
    let topics = b["topics"].as_array().unwrap();
    assert!(!topics.is_empty());
    for row in topics {
        assert_eq!(keys(row), BTreeSet::from(["topic", "count", "percentage"]), "{row}");
        assert!(row["topic"].is_string() && row["count"].is_u64(), "{row}");
        let p = row["percentage"].as_f64().unwrap();
        assert_eq!(p, p.round(), "a whole percentage: {row}");
    }
    assert_eq!(b["period"], json!({"start": "2025-03-03T00:00:00Z", "end": "2025-03-31T00:00:00Z"}));
    // Rounded percentages add up to about 100.
    let sum: f64 = topics.iter().map(|r| r["percentage"].as_f64().unwrap()).sum();
    assert!((97.0..=103.0).contains(&sum), "{sum}");
}

#[tokio::test]
async fn bot_id_keeps_the_conversations_whose_first_bot_it_is() {
    let app = TestApp::spawn().await;
    let tok = token("admin", Some("acme"));
    let evs = march_population(6);
    ingest(&app, &tok, &evs).await;
    let q = Q::march();
    let (_, all) = check(&app, &tok, &evs, &q, "all bots").await;
    let mut sum = 0;
    for bot in BOTS {
        let (_, w) = check(&app, &tok, &evs, &q.clone().bot(bot), bot).await;
        assert!(w.total >= 10, "{bot}: {w:?}");
        sum += w.total;
        // By the week and in New York too.
        check(&app, &tok, &evs, &q.clone().bot(bot).group_by("week").tz("America/New_York"), bot).await;
    }
    let (from, to) = q.window();
    let convs = conversations(&evs, from, to);
    let handoff = convs.iter().filter(|c| c.bot.as_deref() == Some(HANDOFF_BOT)).count() as u64;
    let botless = convs.iter().filter(|c| c.bot.is_none()).count() as u64;
    assert!(botless > 0, "some conversations have no bot");
    assert_eq!(sum + handoff + botless, all.total);
    // The bot that joins late counts only where it is named first in the range.
    check(&app, &tok, &evs, &q.clone().bot(HANDOFF_BOT), "handoff").await;
    // An unknown bot: nothing.
    let (b, w) = check(&app, &tok, &evs, &q.clone().bot("no-such-bot"), "unknown bot").await;
    assert_eq!(w.total, 0);
    assert_eq!(b["summary"]["total_conversations"], 0);
    // An empty bot_id filters nothing.
    let mut params = q.params();
    params.push(("bot_id", String::new()));
    let b = get_ok(&app, &tok, &params).await;
    assert_answer(&b, &all, "empty bot_id");
}

#[tokio::test]
async fn the_timeline_buckets_by_hour_day_week_and_month() {
    let app = TestApp::spawn().await;
    let tok = token("admin", Some("acme"));
    let evs = march_population(7);
    ingest(&app, &tok, &evs).await;

    // group_by defaults to day.
    let (b, day) = check(&app, &tok, &evs, &Q::march(), "default").await;
    let b2 = get_ok(&app, &tok, &Q::march().group_by("day").params()).await;
    assert_eq!(b, b2, "day is the default");
    assert_eq!(day.timeline[0].0, "2025-03-03");

    let (_, hour) = check(&app, &tok, &evs, &Q::march().group_by("hour"), "hour").await;
    assert!(hour.timeline.len() > 60, "{hour:?}");
    assert_eq!(hour.timeline.iter().map(|t| t.1).sum::<u64>(), day.total);
    assert!(hour.timeline.iter().all(|t| t.0.len() == 19 && t.0.ends_with(":00:00")), "{hour:?}");

    let (_, week) = check(&app, &tok, &evs, &Q::march().group_by("week"), "week").await;
    let mondays: Vec<&str> = week.timeline.iter().map(|t| t.0.as_str()).collect();
    assert_eq!(mondays, ["2025-03-03", "2025-03-10", "2025-03-17", "2025-03-24"]);
    // A range that starts mid-week: its first week is labelled by its Monday.
    let (_, mid) = check(&app, &tok, &evs, &Q::custom("2025-03-06", "2025-03-19").group_by("week"), "mid-week").await;
    assert_eq!(mid.timeline[0].0, "2025-03-03");

    // Months over a range that holds every conversation.
    let (_, month) = check(&app, &tok, &evs, &Q::custom("2025-02-15", "2025-04-20").group_by("month"), "month").await;
    let firsts: Vec<&str> = month.timeline.iter().map(|t| t.0.as_str()).collect();
    assert_eq!(firsts, ["2025-02-01", "2025-03-01", "2025-04-01"]);
    assert_eq!(month.timeline.iter().map(|t| t.1).sum::<u64>(), 170);

    // Messages and users go with the bucket of a conversation's first event, even when
    // the conversation runs on into the next bucket.
    let (from, to) = Q::march().window();
    let convs = conversations(&evs, from, to);
    assert!(convs.iter().any(|c| label("day", Tz::UTC, c.first) != label("day", Tz::UTC, c.last) && c.messages > 0));
    // Unique users of a week are not the sum of its days'.
    let week_users: u64 = week.timeline.iter().map(|t| t.3).sum();
    let day_users: u64 = day.timeline.iter().map(|t| t.3).sum();
    assert!(week_users < day_users, "{week_users} < {day_users}");
}

#[tokio::test]
async fn new_york_moves_conversations_across_days() {
    let app = TestApp::spawn().await;
    let tok = token("admin", Some("acme"));
    let evs = march_population(8);
    ingest(&app, &tok, &evs).await;
    // March 2025 in New York: UTC-5, then UTC-4 from March 9.
    let ny = Q::march().tz("America/New_York");
    let (b, want) = check(&app, &tok, &evs, &ny, "new york").await;
    assert_eq!(b["period"], json!({"start": "2025-03-03T05:00:00Z", "end": "2025-03-31T04:00:00Z"}));
    let utc = model(&evs, &Q::march());
    assert_ne!(want.timeline, utc.timeline, "the days differ");
    // Some conversations start on one day in UTC and the day before in New York.
    let convs = conversations(&evs, ny.window().0, ny.window().1);
    let nyz: Tz = "America/New_York".parse().unwrap();
    let moved = convs.iter().filter(|c| label("day", Tz::UTC, c.first) != label("day", nyz, c.first)).count();
    assert!(moved >= 10, "{moved}");

    for g in ["hour", "day", "week", "month"] {
        check(&app, &tok, &evs, &ny.clone().group_by(g), &format!("new york by {g}")).await;
    }
    // The hour that does not exist in New York (02:00 on March 9) has no bucket.
    let (_, hour) =
        check(&app, &tok, &evs, &Q::custom("2025-03-08", "2025-03-10").tz("America/New_York").group_by("hour"), "dst")
            .await;
    assert!(hour.timeline.iter().all(|t| t.0 != "2025-03-09T02:00:00"), "{hour:?}");
    // November's extra hour: the two 01:00s are one bucket.
    let fall = vec![
        ev(Some("f1"), "conversation_started", "2025-11-02T05:10:00Z").user("x"),
        ev(Some("f2"), "conversation_started", "2025-11-02T06:10:00Z").user("y"),
        ev(Some("f2"), "message", "2025-11-02T06:11:00Z").user("y"),
        ev(Some("f3"), "conversation_started", "2025-11-02T07:10:00Z").user("x"),
    ];
    ingest(&app, &tok, &fall).await;
    let q = Q::custom("2025-11-02", "2025-11-02").tz("America/New_York").group_by("hour");
    let (_, w) = check(&app, &tok, &fall, &q, "fall back").await;
    assert_eq!(w.timeline, vec![("2025-11-02T01:00:00".into(), 2, 1, 2), ("2025-11-02T02:00:00".into(), 1, 0, 1)]);
    // Another zone with a half-hour offset.
    check(&app, &tok, &evs, &Q::march().tz("Asia/Kolkata").group_by("hour"), "kolkata").await;
}

#[tokio::test]
async fn instants_cut_conversations_where_they_say() {
    let app = TestApp::spawn().await;
    let tok = token("admin", Some("acme"));
    let evs = march_population(9);
    ingest(&app, &tok, &evs).await;
    let q = Q::custom("2025-03-10T12:00:00Z", "2025-03-20T06:30:00Z");
    let (b, _) = check(&app, &tok, &evs, &q, "instants").await;
    assert_eq!(b["period"], json!({"start": "2025-03-10T12:00:00Z", "end": "2025-03-20T06:30:00Z"}));
    // The same instants written with an offset, and read in a time zone.
    let offset = Q::custom("2025-03-10T13:00:00+01:00", "2025-03-20T02:30:00-04:00");
    let (b2, _) = check(&app, &tok, &evs, &offset, "offsets").await;
    assert_eq!(b, b2);
    check(&app, &tok, &evs, &offset.clone().tz("America/New_York").group_by("hour"), "instants in new york").await;
    // A date start and an instant end.
    check(&app, &tok, &evs, &Q::custom("2025-03-10", "2025-03-12T18:00:00Z").group_by("hour"), "mixed").await;
}

/// Durations keep the fractions of a second that timestamps carry.
#[tokio::test]
async fn durations_count_fractions_of_a_second() {
    let app = TestApp::spawn().await;
    let tok = token("admin", Some("acme"));
    let raw = |conv: &str, name: &str, ts: &str| json!({"event_name": name, "user_id": "u", "timestamp": ts, "properties": {"conversation_id": conv}});
    let events = vec![
        // 1.2 s; whole seconds would make it 2.
        raw("d1", "conversation_started", "2025-06-02T10:00:00.900Z"),
        raw("d1", "message", "2025-06-02T10:00:01.500Z"),
        raw("d1", "conversation_ended", "2025-06-02T10:00:02.100Z"),
    ];
    let (s, b, _) = send(app.post(BATCH).bearer_auth(&tok).json(&json!({ "events": events }))).await;
    assert_eq!(s, 200, "{b}");
    let b = get_ok(&app, &tok, &Q::custom("2025-06-02", "2025-06-02").params()).await;
    assert_eq!(b["summary"]["average_duration_seconds"].as_f64(), Some(1.0), "{b}");
    // With another of 0.7 s: (1.2 + 0.7) / 2 = 0.95 -> 1; whole seconds (2 + 1) / 2 -> 2.
    let events = vec![
        raw("d2", "conversation_started", "2025-06-02T11:00:00.800Z"),
        raw("d2", "conversation_ended", "2025-06-02T11:00:01.500Z"),
    ];
    let (s, b, _) = send(app.post(BATCH).bearer_auth(&tok).json(&json!({ "events": events }))).await;
    assert_eq!(s, 200, "{b}");
    let b = get_ok(&app, &tok, &Q::custom("2025-06-02", "2025-06-02").params()).await;
    assert_eq!(b["summary"]["average_duration_seconds"].as_f64(), Some(1.0), "{b}");
    assert_eq!(b["summary"]["average_messages_per_conversation"].as_f64(), Some(0.5), "{b}");
}

/// `week` is seven days including today, and `month` thirty: whatever `today` counts,
/// they count too, also an event stamped later today (clients may be up to a day ahead).
#[tokio::test]
async fn today_is_part_of_the_week_and_the_month() {
    let secs = Utc::now().num_seconds_from_midnight();
    if !(120..86_040).contains(&secs) {
        tokio::time::sleep(std::time::Duration::from_secs(480)).await;
    }
    let app = TestApp::spawn().await;
    let tok = token("admin", Some("acme"));
    let now = Utc::now();
    let to_midnight = midnight(Tz::UTC, now.date_naive() + Duration::days(1)) - now;
    let later = now + to_midnight / 2;
    let evs = vec![
        ev_at(Some("earlier"), "conversation_started", now - Duration::seconds(60)).topic("earlier"),
        ev_at(Some("later"), "conversation_started", later).topic("later"),
    ];
    ingest(&app, &tok, &evs).await;
    let today = get_ok(&app, &tok, &[("period", "today".into())]).await;
    let n = today["summary"]["total_conversations"].as_u64().unwrap();
    for p in ["week", "month"] {
        let b = get_ok(&app, &tok, &[("period", p.into())]).await;
        assert_eq!(b["summary"]["total_conversations"].as_u64().unwrap(), n, "{p} holds today: {b} vs {today}");
    }
}

#[tokio::test]
async fn another_tenants_conversations_never_count() {
    let app = TestApp::spawn().await;
    let acme = token("admin", Some("acme"));
    let rival = token("admin", Some("rival"));
    // The same conversation ids (c000, ...) and users in both tenants.
    let mine = march_population(10);
    let mut theirs = march_population(11);
    // Rival events that would change acme's conversations: an earlier first event with
    // another bot, topic and user, more messages, an end.
    for c in ["c000", "c001", "c002", "c003"] {
        theirs.push(
            ev(Some(c), "conversation_started", "2025-03-03T00:00:01Z")
                .user("intruder")
                .bot("sales-bot")
                .topic("intrusion"),
        );
        theirs.push(ev(Some(c), "message", "2025-03-30T23:59:58Z").user("intruder"));
        theirs.push(ev(Some(c), "conversation_ended", "2025-03-30T23:59:59Z").resolved(false));
    }
    ingest(&app, &acme, &mine).await;
    ingest(&app, &rival, &theirs).await;
    for q in [Q::march(), Q::march().bot("sales-bot"), Q::march().group_by("week").tz("America/New_York")] {
        let (_, a) = check(&app, &acme, &mine, &q, "acme").await;
        let (_, r) = check(&app, &token("viewer", Some("rival")), &theirs, &q, "rival").await;
        assert_ne!(a, r);
    }
    let (b, _) = check(&app, &acme, &mine, &Q::march(), "acme").await;
    assert!(topics_of(&b, "acme").iter().all(|t| t.0 != "intrusion"), "{b}");
    // A tenant with no events sees none.
    let b = get_ok(&app, &token("viewer", Some("empty")), &Q::march().params()).await;
    assert_eq!(b["summary"]["total_conversations"], 0, "{b}");
    // A credential of one tenant naming the other is refused.
    let got =
        send(app.get(CONVERSATIONS).bearer_auth(&rival).header("X-Tenant-ID", "acme").query(&Q::march().params()))
            .await;
    let p = assert_problem(&got, 403);
    assert!(p["type"].as_str().unwrap().ends_with("/forbidden"), "{p}");
}

/// More than 10,000 hours with a conversation: the timeline may be refused as too long,
/// but is never cut short, and the request never fails inside.
#[tokio::test]
async fn a_timeline_of_more_than_ten_thousand_buckets_is_whole_or_refused() {
    let app = TestApp::spawn().await;
    let tok = token("admin", Some("acme"));
    let t0 = at("2024-01-01T00:00:00Z");
    let evs: Vec<Ev> = (0..10_001)
        .map(|i| ev_at(Some(&format!("x{i}")), "conversation_started", t0 + Duration::hours(i)).user("u"))
        .collect();
    ingest(&app, &tok, &evs).await;
    let q = Q::custom("2024-01-01", "2025-02-28").group_by("hour");
    let got = send(app.get(CONVERSATIONS).bearer_auth(&tok).query(&q.params())).await;
    match got.0 {
        200 => {
            let b = &got.1;
            assert_eq!(b["summary"]["total_conversations"], 10_001, "{}", b["summary"]);
            let rows = b["timeline"].as_array().unwrap();
            assert_eq!(rows.len(), 10_001, "every hour with a conversation");
            assert_eq!(rows[10_000]["date"], "2025-02-20T16:00:00");
        }
        _ => {
            let p = assert_problem(&got, 400);
            assert!(p["type"].as_str().unwrap().ends_with("/validation"), "{p}");
            assert!(p["errors"].as_array().unwrap().iter().any(|e| e["field"] == "group_by"), "{p}");
        }
    }
    // By the day, the same conversations are 417 rows.
    let (_, w) = check(&app, &tok, &evs, &Q::custom("2024-01-01", "2025-02-28"), "by day").await;
    assert_eq!(w.timeline.len(), 417);
}

// ---------------------------------------------------------------------------------------
// Periods relative to now
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn today_week_and_month_count_back_from_now() {
    // Away from midnight UTC, so that "today" is the same day throughout.
    let secs = Utc::now().num_seconds_from_midnight();
    if !(120..86_280).contains(&secs) {
        tokio::time::sleep(std::time::Duration::from_secs(240)).await;
    }
    let app = TestApp::spawn().await;
    let tok = token("admin", Some("acme"));
    let now = Utc::now();
    let today = now.date_naive();
    let day = |n: i64| midnight(Tz::UTC, today - Duration::days(n));
    let conv = |id: &str, t: DateTime<Utc>| {
        vec![
            ev_at(Some(id), "conversation_started", t).user(id).bot("support-bot").topic(id),
            ev_at(Some(id), "message", t + Duration::seconds(1)).user(id),
        ]
    };
    let evs: Vec<Ev> = [
        conv("today", day(0) + Duration::seconds(1)),
        conv("six_days_ago", day(6) + Duration::seconds(1)),
        conv("seven_days_ago", day(6) - Duration::seconds(5)),
        conv("29_days_ago", day(29) + Duration::seconds(1)),
        conv("30_days_ago", day(29) - Duration::seconds(5)),
    ]
    .concat();
    ingest(&app, &tok, &evs).await;

    let topics = |b: &Value| -> Vec<String> {
        let mut t: Vec<String> = topics_of(b, "period").into_iter().map(|t| t.0).collect();
        t.sort();
        t
    };
    let period = |p: &str| vec![("period", p.to_owned())];

    let b = get_ok(&app, &tok, &period("today")).await;
    assert_eq!(topics(&b), ["today"], "{b}");
    assert_eq!(b["period"], json!({"start": rfc(day(0)), "end": rfc(day(-1))}), "today is the whole day");

    for (p, want, start) in [
        ("week", vec!["six_days_ago", "today"], 6),
        ("month", vec!["29_days_ago", "seven_days_ago", "six_days_ago", "today"], 29),
    ] {
        let before = Utc::now();
        let b = get_ok(&app, &tok, &period(p)).await;
        let after = Utc::now();
        assert_eq!(topics(&b), want, "{p}: {b}");
        assert_eq!(b["summary"]["total_conversations"], want.len(), "{p}: {b}");
        assert_eq!(b["period"]["start"], rfc(day(start)), "{p}: {b}");
        // It holds today whole, as `today` does.
        assert_eq!(b["period"]["end"], rfc(day(-1)), "{p}: ends with today: {b}");
        let _ = (before, after);
        // Timeline by day: one row per day with a conversation.
        assert_eq!(b["timeline"].as_array().unwrap().len(), want.len(), "{p}: {b}");
    }
    // Without a period: the week.
    let b = get_ok(&app, &tok, &[]).await;
    assert_eq!(topics(&b), ["six_days_ago", "today"], "{b}");
    // Today in New York starts at New York's midnight.
    let b = get_ok(&app, &tok, &[("period", "today".into()), ("timezone", "America/New_York".into())]).await;
    let nyz: Tz = "America/New_York".parse().unwrap();
    let ny_today = Utc::now().with_timezone(&nyz).date_naive();
    assert_eq!(b["period"]["start"], rfc(midnight(nyz, ny_today)), "{b}");
    assert_eq!(b["period"]["end"], rfc(midnight(nyz, ny_today + Duration::days(1))), "{b}");
    // Custom still works with the same data.
    let q = Q::custom(&(today - Duration::days(40)).to_string(), &today.to_string());
    let (_, w) = check(&app, &tok, &evs, &q, "custom").await;
    assert_eq!(w.total, 5);
}

// ---------------------------------------------------------------------------------------
// Topics
// ---------------------------------------------------------------------------------------

/// 60 conversations on `big` and one on each of 60 small topics: the answer lists 50
/// topics, and a topic's percentage must not change with how many others are listed.
#[tokio::test]
async fn topic_percentages_count_the_topics_beyond_the_fifty_listed() {
    let app = TestApp::spawn().await;
    let tok = token("admin", Some("acme"));
    let t0 = at("2025-05-05T00:00:00Z");
    let mut evs = Vec::new();
    for i in 0..60 {
        evs.push(ev_at(Some(&format!("b{i}")), "conversation_started", t0 + Duration::minutes(i)).topic("big"));
        evs.push(
            ev_at(Some(&format!("s{i}")), "conversation_started", t0 + Duration::minutes(i)).topic(&format!("t{i:02}")),
        );
    }
    ingest(&app, &tok, &evs).await;
    let b = get_ok(&app, &tok, &Q::custom("2025-05-05", "2025-05-05").params()).await;
    let topics = b["topics"].as_array().unwrap();
    assert_eq!(topics.len(), 50, "at most 50 topics: {b}");
    assert_eq!(topics[0]["topic"], "big");
    assert_eq!(topics[0]["count"], 60);
    assert_eq!(topics[1]["topic"], "t00");
    assert_eq!(topics[49]["topic"], "t48");
    // 60 of the 120 conversations with a topic: 50 %, not 60 of the 109 listed (55 %).
    assert_eq!(topics[0]["percentage"].as_f64(), Some(50.0), "{}", topics[0]);
    assert_eq!(topics[1]["percentage"].as_f64(), Some(1.0), "{}", topics[1]);
}

#[tokio::test]
async fn topics_rank_by_count_then_name() {
    let app = TestApp::spawn().await;
    let tok = token("admin", Some("acme"));
    let t0 = at("2025-05-05T00:00:00Z");
    let mut evs = Vec::new();
    let mut k = 0;
    // Counts: billing 3, alpha 2, zeta 2, gamma 1, and one conversation without a topic
    // whose late event names one outside the range.
    for (topic, n) in [("zeta", 2), ("billing", 3), ("gamma", 1), ("alpha", 2)] {
        for _ in 0..n {
            k += 1;
            evs.push(ev_at(Some(&format!("k{k}")), "conversation_started", t0 + Duration::minutes(k)).topic(topic));
        }
    }
    evs.push(ev_at(Some("none"), "conversation_started", t0 + Duration::hours(3)));
    evs.push(ev_at(Some("none"), "message", t0 + Duration::days(1) + Duration::hours(1)).topic("late"));
    ingest(&app, &tok, &evs).await;
    let (b, want) = check(&app, &tok, &evs, &Q::custom("2025-05-05", "2025-05-05"), "ranked").await;
    assert_eq!(want.total, 9);
    let names: Vec<String> = topics_of(&b, "ranked").into_iter().map(|t| t.0).collect();
    assert_eq!(names, ["billing", "alpha", "zeta", "gamma"]);
    // Percentages of the 8 conversations with a topic: 37.5 -> 38, 25, 25, 12.5 -> 13.
    let pcts: Vec<f64> = b["topics"].as_array().unwrap().iter().map(|t| t["percentage"].as_f64().unwrap()).collect();
    assert_eq!(pcts, [38.0, 25.0, 25.0, 13.0], "{b}");
}

// ---------------------------------------------------------------------------------------
// Bad inputs
// ---------------------------------------------------------------------------------------

/// Asserts a 400 validation problem whose `errors` name `field` and whose detail holds
/// `needle`.
#[track_caller]
fn assert_field_problem(got: &(u16, Value, String), field: &str, needle: &str, ctx: &str) {
    let p = assert_problem(got, 400);
    let errs = p["errors"].as_array().unwrap_or_else(|| panic!("{ctx}: no errors[] in {p}"));
    let e = errs.iter().find(|e| e["field"] == field).unwrap_or_else(|| panic!("{ctx}: no error on {field}: {p}"));
    assert!(e["message"].as_str().unwrap().contains(needle), "{ctx}: message of {field}: {p}");
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.contains(needle), "{ctx}: detail '{detail}' lacks '{needle}'");
    assert!(p["type"].as_str().unwrap().ends_with("/validation"), "{ctx}: {p}");
    assert_eq!(p["instance"], CONVERSATIONS, "{ctx}");
}

#[tokio::test]
async fn bad_inputs_get_precise_problems() {
    let app = TestApp::spawn().await;
    let tok = token("viewer", Some("acme"));
    let custom = |s: Option<&str>, e: Option<&str>| {
        let mut p = vec![("period", "custom".to_owned())];
        if let Some(s) = s {
            p.push(("start_date", s.to_owned()));
        }
        if let Some(e) = e {
            p.push(("end_date", e.to_owned()));
        }
        p
    };
    let with = |k: &'static str, v: &str| {
        let mut p = custom(Some("2025-03-01"), Some("2025-03-31"));
        p.push((k, v.to_owned()));
        p
    };
    let cases: Vec<(Vec<(&str, String)>, &str, &str)> = vec![
        (
            vec![("period", "fortnight".into())],
            "period",
            "unknown period 'fortnight'; use today, week, month or custom",
        ),
        (vec![("period", "".into())], "period", "unknown period ''"),
        (custom(None, None), "start_date", "period custom needs start_date and end_date"),
        (custom(Some("2025-03-01"), None), "start_date", "period custom needs start_date and end_date"),
        (custom(None, Some("2025-03-31")), "start_date", "period custom needs start_date and end_date"),
        (custom(Some("2025-13-01"), Some("2025-03-31")), "start_date", "'2025-13-01' is not a date"),
        (custom(Some("2025-03-01"), Some("31/03/2025")), "end_date", "'31/03/2025' is not a date"),
        (custom(Some("yesterday-ish"), Some("2025-03-31")), "start_date", "is not a date"),
        (custom(Some("2025-03-31"), Some("2025-03-01")), "end_date", "the date range ends before it starts"),
        (
            custom(Some("2025-03-01T10:00:00Z"), Some("2025-03-01T09:00:00Z")),
            "end_date",
            "the date range ends before it starts",
        ),
        (custom(Some("2025-03-01T10:00:00Z"), Some("2025-03-01T10:00:00Z")), "end_date", "empty"),
        (custom(Some("2000-01-01"), Some("2025-03-01")), "end_date", "at most 3660 days"),
        (with("group_by", "minute"), "group_by", "unknown group_by 'minute'; use hour, day, week or month"),
        (with("group_by", ""), "group_by", "unknown group_by ''"),
        (with("timezone", "Mars/Olympus"), "timezone", "unknown time zone 'Mars/Olympus'"),
        (with("timezone", "+05:00"), "timezone", "unknown time zone"),
    ];
    for (params, field, needle) in cases {
        let got = send(app.get(CONVERSATIONS).bearer_auth(&tok).query(&params)).await;
        assert_field_problem(&got, field, needle, &format!("{params:?}"));
    }

    // Both dates bad: both named.
    let got = send(app.get(CONVERSATIONS).bearer_auth(&tok).query(&custom(Some("x"), Some("y")))).await;
    let p = assert_problem(&got, 400);
    let fields: BTreeSet<&str> = p["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, BTreeSet::from(["start_date", "end_date"]), "{p}");

    // Every problem at once.
    let params = [("period", "fortnight"), ("group_by", "minute"), ("timezone", "Mars/X")];
    let p = assert_problem(&send(app.get(CONVERSATIONS).bearer_auth(&tok).query(&params)).await, 400);
    let fields: BTreeSet<&str> = p["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, BTreeSet::from(["period", "group_by", "timezone"]), "{p}");

    // Just allowed: the longest range, and words the parsers accept.
    for params in [
        custom(Some("2016-01-01"), Some("2026-01-07")),
        custom(Some("2025-03-01"), Some("now")),
        custom(Some("-30d"), Some("now")),
        with("group_by", "WEEK"),
        with("timezone", "UTC"),
    ] {
        let b = get_ok(&app, &tok, &params).await;
        assert_eq!(b["summary"]["total_conversations"], 0, "{params:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Authorization
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn conversation_analytics_need_a_reading_role() {
    let app = TestApp::spawn().await;
    let evs = hand_made();
    ingest(&app, &token("ingest", Some("acme")), &evs).await;
    let q = Q::custom("2025-06-02", "2025-06-04");
    let params = q.params();

    let p = assert_problem(&send(app.get(CONVERSATIONS).query(&params)).await, 401);
    assert!(p["type"].as_str().unwrap().ends_with("/unauthorized"), "{p}");
    let p = assert_problem(&send(app.get(CONVERSATIONS).bearer_auth("not-a-token").query(&params)).await, 401);
    assert!(p["type"].as_str().unwrap().ends_with("/unauthorized"), "{p}");
    let p = assert_problem(
        &send(app.get(CONVERSATIONS).bearer_auth(token("ingest", Some("acme"))).query(&params)).await,
        403,
    );
    assert!(p["type"].as_str().unwrap().ends_with("/forbidden"), "{p}");

    let want = model(&evs, &q);
    assert_eq!(want.total, 6);
    for role in ["viewer", "analyst", "admin"] {
        let b = get_ok(&app, &token(role, Some("acme")), &params).await;
        assert_answer(&b, &want, role);
    }
    // Another tenant's reader sees nothing of these events.
    let b = get_ok(&app, &token("viewer", Some("other")), &params).await;
    assert_eq!(b["summary"]["total_conversations"], 0, "{b}");
}
