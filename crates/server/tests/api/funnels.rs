//! End-to-end tests of seed 004's funnels (`POST /api/v1/analytics/funnels`).
//!
//! Every answer is checked against a model in plain Rust, written from the definition of
//! who counts (top of `crates/core/src/query/funnel.rs`) and not from the compiler: users
//! are `user_id`s; a user enters with their first step-1 event inside the date range;
//! `ordered` takes for each next step the first matching event strictly after the
//! previous step's, `strict` the user's very next event (of any name), both no later than
//! entry + window; `any_order` counts the distinct steps done within the window from the
//! user's first event of any step in the range. Events come from a small seeded PRNG at
//! fixed timestamps (January 2026, and January 2024 for seed 004's own request), each user's
//! events at distinct seconds, so that no answer depends on today's date or on ties.

use crate::helpers::*;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

const BATCH: &str = "/api/v1/analytics/events/batch";
const FUNNELS: &str = "/api/v1/analytics/funnels";

// ---------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Ev {
    user: Option<String>,
    name: String,
    ts: DateTime<Utc>,
    plan: Option<String>,
    amount: Option<f64>,
    page: Option<String>,
}

impl Ev {
    fn plan(mut self, p: &str) -> Self {
        self.plan = Some(p.into());
        self
    }
    fn amount(mut self, a: f64) -> Self {
        self.amount = Some(a);
        self
    }
    fn anon(mut self) -> Self {
        self.user = None;
        self
    }

    fn json(&self) -> Value {
        let mut p = Map::new();
        if let Some(x) = &self.plan {
            p.insert("plan".into(), json!(x));
        }
        if let Some(x) = self.amount {
            p.insert("amount".into(), json!(x));
        }
        if let Some(x) = &self.page {
            p.insert("page".into(), json!(x));
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
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// One event of `user` named `name` at `ts` (RFC 3339).
fn ev(user: &str, name: &str, ts: &str) -> Ev {
    Ev { user: Some(user.into()), name: name.into(), ts: at(ts), plan: None, amount: None, page: None }
}

const FLOW: [&str; 4] = ["signup", "view_pricing", "start_trial", "purchase"];
const NOISE: [&str; 3] = ["page_view", "logout", "support_chat"];
const PAGES: [&str; 4] = ["home", "pricing", "docs", "blog"];

/// The gap before a user's next event: mostly minutes, often hours to days, sometimes
/// longer than any window used here.
fn gap(r: &mut Rng) -> Duration {
    Duration::seconds(match r.below(100) {
        0..=54 => 1 + r.below(3600),
        55..=84 => 3600 + r.below(2 * 86_400),
        85..=96 => 2 * 86_400 + r.below(6 * 86_400),
        _ => 8 * 86_400 + r.below(12 * 86_400),
    } as i64)
}

/// `users` users who walk part of `flow`, some skipping a step, swapping two, repeating
/// one, with noise events between; each user's first event falls in `[from, from +
/// span_days)`, so some start before a January range and some after it. Plus a few
/// events without a user.
fn population(
    seed: u64,
    users: usize,
    prefix: &str,
    flow: &[&'static str],
    from: DateTime<Utc>,
    span_days: i64,
) -> Vec<Ev> {
    let mut r = Rng(seed);
    let mut out = Vec::new();
    let plans = [None, Some("free"), Some("pro"), Some("team")];
    for u in 0..users {
        let user = format!("{prefix}{u}");
        let plan = match r.below(10) {
            0..=3 => Some("free"),
            4..=6 => Some("pro"),
            7..=8 => Some("team"),
            _ => None,
        };
        // Deeper walks are likelier: the larger of two draws.
        let depth = 1 + (r.below(flow.len() as u64).max(r.below(flow.len() as u64))) as usize;
        let mut script: Vec<&'static str> = flow[..depth].to_vec();
        if script.len() >= 3 && r.chance(15) {
            script.remove(1 + r.below(script.len() as u64 - 2) as usize);
        }
        if script.len() >= 2 && r.chance(15) {
            let i = r.below(script.len() as u64 - 1) as usize;
            script.swap(i, i + 1);
        }
        if r.chance(25) {
            let i = r.below(script.len() as u64) as usize;
            script.insert(i, script[i]);
        }
        let mut names = Vec::new();
        for s in script {
            while r.chance(30) {
                names.push(r.pick(&NOISE));
            }
            names.push(s);
        }
        if r.chance(30) {
            names.push(r.pick(&NOISE));
        }
        let mut t = from + Duration::seconds(r.below(span_days as u64 * 86_400) as i64);
        for (i, name) in names.into_iter().enumerate() {
            if i > 0 {
                t += gap(&mut r);
            }
            let p = if r.chance(85) { plan } else { r.pick(&plans) };
            let last = name == flow[flow.len() - 1];
            let amount = if last && r.chance(90) { Some((r.below(20_000) + 100) as f64 / 100.0) } else { None };
            let page = (name == "page_view" || (name == flow[0] && r.chance(70))).then(|| r.pick(&PAGES));
            out.push(Ev {
                user: Some(user.clone()),
                name: name.into(),
                ts: t,
                plan: p.map(str::to_owned),
                amount,
                page: page.map(str::to_owned),
            });
        }
    }
    for _ in 0..30 {
        let name = r.pick(flow);
        let ts = from + Duration::seconds(r.below(span_days as u64 * 86_400) as i64);
        out.push(Ev { user: None, name: name.into(), ts, plan: Some("pro".into()), amount: Some(10.0), page: None });
    }
    out
}

/// About 300 users around January 2026 (first events from 2025-12-26 to 2026-02-06).
fn january_population(seed: u64, prefix: &str) -> Vec<Ev> {
    population(seed, 300, prefix, &FLOW, at("2025-12-26T00:00:00Z"), 42)
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
// The model
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Ordered,
    Strict,
    AnyOrder,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Ordered => "ordered",
            Mode::Strict => "strict",
            Mode::AnyOrder => "any_order",
        }
    }
}

/// A step: its request JSON and, for the model, what its filter means.
#[derive(Clone)]
struct StepDef {
    name: String,
    event: String,
    filter: Option<Value>,
    pred: fn(&Ev) -> bool,
}

impl StepDef {
    fn matches(&self, e: &Ev) -> bool {
        e.name == self.event && (self.pred)(e)
    }
    fn json(&self) -> Value {
        let mut o = json!({"name": self.name, "event": self.event});
        if let Some(f) = &self.filter {
            o["filters"] = f.clone();
        }
        o
    }
}

fn step(name: &str, event: &str) -> StepDef {
    StepDef { name: name.into(), event: event.into(), filter: None, pred: |_| true }
}

fn step_where(name: &str, event: &str, filter: Value, pred: fn(&Ev) -> bool) -> StepDef {
    StepDef { name: name.into(), event: event.into(), filter: Some(filter), pred }
}

fn flow_steps(names: &[&str]) -> Vec<StepDef> {
    names.iter().map(|n| step(&format!("step_{n}"), n)).collect()
}

#[derive(Clone)]
struct Spec {
    steps: Vec<StepDef>,
    mode: Mode,
    window: Duration,
    /// `None`: not sent (the default, 14 days).
    window_json: Option<Value>,
    range_json: Value,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    timezone: Option<&'static str>,
}

impl Spec {
    /// January 2026 in UTC, ordered, the default window.
    fn jan(steps: Vec<StepDef>) -> Spec {
        Spec {
            steps,
            mode: Mode::Ordered,
            window: Duration::days(14),
            window_json: None,
            range_json: json!({"start": "2026-01-01", "end": "2026-01-31"}),
            start: at("2026-01-01T00:00:00Z"),
            end: at("2026-02-01T00:00:00Z"),
            timezone: None,
        }
    }
    fn mode(mut self, m: Mode) -> Self {
        self.mode = m;
        self
    }
    fn window(mut self, json: Value, d: Duration) -> Self {
        self.window_json = Some(json);
        self.window = d;
        self
    }
    /// January 2026 in New York (UTC-5 all month).
    fn new_york(mut self) -> Self {
        self.timezone = Some("America/New_York");
        self.start = at("2026-01-01T05:00:00Z");
        self.end = at("2026-02-01T05:00:00Z");
        self
    }
    fn body(&self) -> Value {
        let mut b = json!({
            "name": "test_funnel",
            "steps": self.steps.iter().map(StepDef::json).collect::<Vec<_>>(),
            "mode": self.mode.name(),
            "date_range": self.range_json,
        });
        if let Some(w) = &self.window_json {
            b["conversion_window"] = w.clone();
        }
        if let Some(tz) = self.timezone {
            b["timezone"] = json!(tz);
        }
        b
    }
}

/// How far one user went.
#[derive(Debug, Clone)]
struct Walk {
    /// The breakdown value of the entering event.
    bd: Option<String>,
    /// Steps reached (at least 1).
    reached: usize,
    /// Seconds from each reached step to the next (ordered and strict only).
    gaps: Vec<f64>,
}

/// Each entering user's walk, by the definition.
fn walks(evs: &[Ev], spec: &Spec, bd: fn(&Ev) -> Option<String>) -> BTreeMap<String, Walk> {
    let mut by_user: BTreeMap<&str, Vec<&Ev>> = BTreeMap::new();
    for e in evs {
        if let Some(u) = &e.user {
            by_user.entry(u).or_default().push(e);
        }
    }
    let steps = &spec.steps;
    let in_range = |e: &Ev| e.ts >= spec.start && e.ts < spec.end;
    let mut out = BTreeMap::new();
    for (user, mut es) in by_user {
        es.sort_by_key(|e| e.ts);
        let walk = match spec.mode {
            Mode::Ordered | Mode::Strict => {
                let Some(i0) = es.iter().position(|e| steps[0].matches(e) && in_range(e)) else {
                    continue;
                };
                let deadline = es[i0].ts + spec.window;
                let (mut i, mut reached, mut gaps) = (i0, 1, Vec::new());
                for s in &steps[1..] {
                    let next = if spec.mode == Mode::Ordered {
                        (i + 1..es.len()).find(|&j| es[j].ts > es[i].ts && s.matches(es[j]))
                    } else {
                        Some(i + 1).filter(|&j| j < es.len() && s.matches(es[j]))
                    };
                    match next.filter(|&j| es[j].ts <= deadline) {
                        Some(j) => {
                            gaps.push((es[j].ts - es[i].ts).num_seconds() as f64);
                            i = j;
                            reached += 1;
                        }
                        None => break,
                    }
                }
                Walk { bd: bd(es[i0]), reached, gaps }
            }
            Mode::AnyOrder => {
                let Some(i0) = es.iter().position(|e| in_range(e) && steps.iter().any(|s| s.matches(e))) else {
                    continue;
                };
                let (from, to) = (es[i0].ts, es[i0].ts + spec.window);
                let done =
                    steps.iter().filter(|s| es.iter().any(|e| e.ts >= from && e.ts <= to && s.matches(e))).count();
                Walk { bd: bd(es[i0]), reached: done, gaps: Vec::new() }
            }
        };
        out.insert(user.to_owned(), walk);
    }
    out
}

fn no_breakdown(_: &Ev) -> Option<String> {
    None
}

fn plan_of(e: &Ev) -> Option<String> {
    e.plan.clone()
}

fn page_of(e: &Ev) -> Option<String> {
    e.page.clone()
}

/// DuckDB's `median`: the middle value, or the mean of the two middle ones.
fn median(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let mut s = xs.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let m = s.len() / 2;
    Some(if s.len() % 2 == 1 { s[m] } else { (s[m - 1] + s[m]) / 2.0 })
}

/// A funnel's expected numbers: users per step, and the median gap into each step.
#[derive(Debug, Clone, PartialEq)]
struct Want {
    users: Vec<u64>,
    medians: Vec<Option<f64>>,
}

fn tally<'a>(ws: impl IntoIterator<Item = &'a Walk>, n: usize, mode: Mode) -> Want {
    let ws: Vec<&Walk> = ws.into_iter().collect();
    let users = (0..n).map(|k| ws.iter().filter(|w| w.reached > k).count() as u64).collect();
    let medians = (0..n)
        .map(|k| {
            if k == 0 || mode == Mode::AnyOrder {
                return None;
            }
            let gaps: Vec<f64> = ws.iter().filter(|w| w.reached > k).map(|w| w.gaps[k - 1]).collect();
            median(&gaps)
        })
        .collect();
    Want { users, medians }
}

fn model(evs: &[Ev], spec: &Spec) -> Want {
    tally(walks(evs, spec, no_breakdown).values(), spec.steps.len(), spec.mode)
}

fn pct(u: u64, first: u64) -> f64 {
    if first == 0 { 0.0 } else { (u as f64 * 100.0 / first as f64 * 100.0).round() / 100.0 }
}

fn rate(last: u64, first: u64) -> f64 {
    if first == 0 { 0.0 } else { (last as f64 / first as f64 * 10_000.0).round() / 10_000.0 }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
}

#[track_caller]
fn assert_num(got: &Value, want: Option<f64>, ctx: &str) {
    match want {
        None => assert!(got.is_null(), "{ctx}: expected null, got {got}"),
        Some(w) => {
            let g = got.as_f64().unwrap_or_else(|| panic!("{ctx}: expected {w}, got {got}"));
            assert!(close(g, w), "{ctx}: expected {w}, got {g}");
        }
    }
}

/// `got` (a funnel, or one breakdown value's) holds `want` for these steps.
#[track_caller]
fn assert_funnel(got: &Value, want: &Want, steps: &[StepDef], ctx: &str) {
    let users: Vec<u64> = got["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("{ctx}: no steps in {got}"))
        .iter()
        .map(|s| s["users"].as_u64().unwrap_or_else(|| panic!("{ctx}: users of {s}")))
        .collect();
    assert_eq!(users, want.users, "{ctx}: users per step; answer {got}");
    let first = want.users[0];
    assert_eq!(got["total_users"], first, "{ctx}: total_users");
    for (k, (s, def)) in got["steps"].as_array().unwrap().iter().zip(steps).enumerate() {
        assert_eq!(s["name"], def.name.as_str(), "{ctx}: step {k} name");
        assert_eq!(s["event"], def.event.as_str(), "{ctx}: step {k} event");
        assert_num(&s["percentage"], Some(pct(want.users[k], first)), &format!("{ctx}: step {k} percentage"));
        if k == 0 {
            assert!(s.get("drop_off").is_none(), "{ctx}: step 1 has no drop_off: {s}");
            assert!(s.get("median_time_from_previous_seconds").is_none(), "{ctx}: step 1 has no median: {s}");
        } else {
            assert_eq!(s["drop_off"], want.users[k - 1] - want.users[k], "{ctx}: step {k} drop_off");
            let m = s.get("median_time_from_previous_seconds").unwrap_or_else(|| panic!("{ctx}: no median in {s}"));
            assert_num(m, want.medians[k], &format!("{ctx}: step {k} median"));
        }
    }
    let n = want.users.len();
    assert_num(&got["completion_rate"], Some(rate(want.users[n - 1], first)), &format!("{ctx}: completion_rate"));
}

async fn post_ok(app: &TestApp, tok: &str, body: &Value) -> Value {
    let (st, b, _) = send(app.post(FUNNELS).bearer_auth(tok).json(body)).await;
    assert_eq!(st, 200, "{body}: {b}");
    b
}

/// Sends `spec`, checks the answer against the model and returns (answer, model).
async fn check(app: &TestApp, tok: &str, evs: &[Ev], spec: &Spec, ctx: &str) -> (Value, Want) {
    let want = model(evs, spec);
    let b = post_ok(app, tok, &spec.body()).await;
    assert_funnel(&b["funnel"], &want, &spec.steps, ctx);
    assert_eq!(b["funnel"]["mode"], spec.mode.name(), "{ctx}");
    assert_eq!(b["funnel"]["conversion_window_seconds"], spec.window.num_seconds(), "{ctx}");
    (b, want)
}

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object().unwrap_or_else(|| panic!("not an object: {v}")).keys().map(String::as_str).collect()
}

// ---------------------------------------------------------------------------------------
// Seed 004's request
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn seed_004_onboarding_funnel_as_written() {
    let app = TestApp::spawn().await;
    let tok = token("admin", Some("acme"));
    let flow = ["user_registered", "profile_completed", "first_conversation"];
    let evs = population(4, 250, "u", &flow, at("2023-12-24T00:00:00Z"), 45);
    ingest(&app, &tok, &evs).await;

    // Seed 004's request, exactly as written.
    let body = json!({
      "name": "onboarding_funnel",
      "steps": [
        {"name": "signup", "event": "user_registered"},
        {"name": "profile", "event": "profile_completed"},
        {"name": "first_action", "event": "first_conversation"}
      ],
      "date_range": {
        "start": "2024-01-01",
        "end": "2024-01-31"
      }
    });
    let b = post_ok(&app, &tok, &body).await;

    let steps = vec![
        step("signup", "user_registered"),
        step("profile", "profile_completed"),
        step("first_action", "first_conversation"),
    ];
    let spec = Spec {
        range_json: body["date_range"].clone(),
        start: at("2024-01-01T00:00:00Z"),
        end: at("2024-02-01T00:00:00Z"),
        ..Spec::jan(steps.clone())
    };
    let want = model(&evs, &spec);
    // The data make a funnel worth the name: many enter, fewer go on, some finish.
    assert!(want.users[0] >= 100 && want.users[0] > want.users[1] && want.users[1] > want.users[2], "{want:?}");
    assert!(want.users[2] > 0, "{want:?}");
    assert_funnel(&b["funnel"], &want, &steps, "seed 004");

    // The shape: seed 004's fields, and what this service adds.
    assert_eq!(keys(&b), BTreeSet::from(["funnel", "metadata"]), "no breakdown without one: {b}");
    let f = &b["funnel"];
    assert_eq!(
        keys(f),
        BTreeSet::from([
            "name",
            "total_users",
            "steps",
            "completion_rate",
            "mode",
            "conversion_window_seconds",
            "date_range"
        ]),
        "{f}"
    );
    assert_eq!(f["name"], "onboarding_funnel");
    assert_eq!(f["mode"], "ordered", "the default mode");
    assert_eq!(f["conversion_window_seconds"], 14 * 86_400, "the default window: 14 days");
    assert_eq!(
        f["date_range"],
        json!({"start": "2024-01-01T00:00:00Z", "end": "2024-02-01T00:00:00Z"}),
        "an end date includes its whole day"
    );
    assert!(f["total_users"].is_u64());
    assert!(f["completion_rate"].is_number());
    let steps_json = f["steps"].as_array().unwrap();
    assert_eq!(keys(&steps_json[0]), BTreeSet::from(["name", "event", "users", "percentage"]));
    assert_num(&steps_json[0]["percentage"], Some(100.0), "step 1 is 100%");
    for s in &steps_json[1..] {
        assert_eq!(
            keys(s),
            BTreeSet::from(["name", "event", "users", "percentage", "drop_off", "median_time_from_previous_seconds"]),
            "{s}"
        );
        assert!(s["median_time_from_previous_seconds"].is_number(), "{s}");
    }
    assert_eq!(keys(&b["metadata"]), BTreeSet::from(["query_time_ms", "truncated"]), "{}", b["metadata"]);
    assert!(b["metadata"]["query_time_ms"].is_u64());
    assert_eq!(b["metadata"]["truncated"], false);

    // Steps written as bare event names, without a funnel name: the names are the events'.
    let b =
        post_ok(&app, &tok, &json!({"steps": flow, "date_range": {"start": "2024-01-01", "end": "2024-01-31"}})).await;
    let bare: Vec<StepDef> = flow.iter().map(|n| step(n, n)).collect();
    assert_funnel(&b["funnel"], &want, &bare, "bare steps");
    assert_eq!(b["funnel"]["name"], "funnel", "{b}");
}

// ---------------------------------------------------------------------------------------
// Who counts: hand-made users
// ---------------------------------------------------------------------------------------

/// Users whose walks through signup -> activate -> purchase each test one rule.
fn hand_made() -> Vec<Ev> {
    vec![
        // Does every step: 3.
        ev("full", "signup", "2026-01-05T10:00:00Z"),
        ev("full", "activate", "2026-01-05T10:10:00Z"),
        ev("full", "purchase", "2026-01-06T10:10:00Z"),
        // Skips activate: 1.
        ev("skip", "signup", "2026-01-05T11:00:00Z"),
        ev("skip", "purchase", "2026-01-06T11:00:00Z"),
        // Purchases before activating: the purchase does not count after it: 2.
        ev("skip_then", "signup", "2026-01-05T12:00:00Z"),
        ev("skip_then", "purchase", "2026-01-06T12:00:00Z"),
        ev("skip_then", "activate", "2026-01-07T12:00:00Z"),
        // Repeats each step: the first of each counts: 3, gaps 25 h and 1 h.
        ev("repeat", "signup", "2026-01-03T08:00:00Z"),
        ev("repeat", "signup", "2026-01-04T08:00:00Z"),
        ev("repeat", "activate", "2026-01-04T09:00:00Z"),
        ev("repeat", "activate", "2026-01-04T10:00:00Z"),
        ev("repeat", "purchase", "2026-01-04T11:00:00Z"),
        ev("repeat", "purchase", "2026-01-04T12:00:00Z"),
        // Backwards: 1.
        ev("reorder", "activate", "2026-01-08T00:00:00Z"),
        ev("reorder", "purchase", "2026-01-09T00:00:00Z"),
        ev("reorder", "signup", "2026-01-10T00:00:00Z"),
        // Purchases exactly 14 days after entry: inside (the bound is inclusive): 3.
        ev("inside", "signup", "2026-01-10T12:00:00Z"),
        ev("inside", "activate", "2026-01-11T12:00:00Z"),
        ev("inside", "purchase", "2026-01-24T12:00:00Z"),
        // One second later: outside: 2.
        ev("outside", "signup", "2026-01-10T12:00:00Z"),
        ev("outside", "activate", "2026-01-11T12:00:00Z"),
        ev("outside", "purchase", "2026-01-24T12:00:01Z"),
        // The window runs from entry, not from the previous step: 2.
        ev("from_entry", "signup", "2026-01-12T00:00:00Z"),
        ev("from_entry", "activate", "2026-01-25T00:00:00Z"),
        ev("from_entry", "purchase", "2026-01-26T12:00:00Z"),
        // Activates in the same second as signing up: not strictly after, so not a step;
        // and no purchase without it: 1.
        ev("same_second", "signup", "2026-01-13T00:00:00Z"),
        ev("same_second", "activate", "2026-01-13T00:00:00Z"),
        ev("same_second", "purchase", "2026-01-13T01:00:00Z"),
        // Signs up the second before the range: not in the funnel.
        ev("before", "signup", "2025-12-31T23:59:59Z"),
        ev("before", "activate", "2026-01-02T00:00:00Z"),
        ev("before", "purchase", "2026-01-03T00:00:00Z"),
        // Signs up before the range and again inside it: enters with the second, and the
        // activation between the two is before entry: 3.
        ev("again", "signup", "2025-12-30T00:00:00Z"),
        ev("again", "activate", "2025-12-31T00:00:00Z"),
        ev("again", "signup", "2026-01-20T00:00:00Z"),
        ev("again", "activate", "2026-01-21T06:00:00Z"),
        ev("again", "purchase", "2026-01-22T00:00:00Z"),
        // Enters in the last hour of the range; the later steps after the range, inside the
        // window (to its last second), count: 3.
        ev("late", "signup", "2026-01-31T23:00:00Z"),
        ev("late", "activate", "2026-02-03T00:00:00Z"),
        ev("late", "purchase", "2026-02-14T23:00:00Z"),
        // Signs up at the range's end: after it, not in the funnel.
        ev("after", "signup", "2026-02-01T00:00:00Z"),
        ev("after", "activate", "2026-02-01T01:00:00Z"),
        ev("after", "purchase", "2026-02-02T00:00:00Z"),
        // Events without a user are in no funnel.
        ev("x", "signup", "2026-01-05T10:00:00Z").anon(),
        ev("x", "activate", "2026-01-05T10:01:00Z").anon(),
        ev("x", "purchase", "2026-01-05T10:02:00Z").anon(),
    ]
}

fn sap() -> Vec<StepDef> {
    vec![step("signed up", "signup"), step("activated", "activate"), step("paid", "purchase")]
}

#[tokio::test]
async fn skipped_repeated_reordered_steps_and_window_and_range_edges() {
    let app = TestApp::spawn().await;
    let tok = token("admin", Some("acme"));
    let evs = hand_made();
    ingest(&app, &tok, &evs).await;

    let spec = Spec::jan(sap());
    let (b, want) = check(&app, &tok, &evs, &spec, "hand-made").await;
    // The model agrees with the hand count, user by user.
    let reached: BTreeMap<String, usize> =
        walks(&evs, &spec, no_breakdown).into_iter().map(|(u, w)| (u, w.reached)).collect();
    let expected: BTreeMap<String, usize> = [
        ("full", 3),
        ("skip", 1),
        ("skip_then", 2),
        ("repeat", 3),
        ("reorder", 1),
        ("inside", 3),
        ("outside", 2),
        ("from_entry", 2),
        ("same_second", 1),
        ("again", 3),
        ("late", 3),
    ]
    .into_iter()
    .map(|(u, n)| (u.to_owned(), n))
    .collect();
    assert_eq!(reached, expected);
    assert_eq!(want.users, vec![11, 8, 5]);
    let f = &b["funnel"];
    assert_eq!(f["total_users"], 11);
    assert_eq!(f["steps"][1]["drop_off"], 3);
    assert_eq!(f["steps"][2]["drop_off"], 3);
    assert_num(&f["steps"][1]["percentage"], Some(72.73), "8 of 11");
    assert_num(&f["steps"][2]["percentage"], Some(45.45), "5 of 11");
    assert_num(&f["completion_rate"], Some(0.4545), "5 of 11");
    // Gaps into activate (seconds): full 600, skip_then 2 d, repeat 25 h, inside 1 d,
    // outside 1 d, from_entry 13 d, again 30 h, late 2 d + 1 h; the middle two of the
    // eight sorted are 25 h and 30 h.
    assert_num(&f["steps"][1]["median_time_from_previous_seconds"], Some((90_000.0 + 108_000.0) / 2.0), "median");
    // Into purchase: full 1 d, repeat 2 h, inside 13 d, again 18 h, late 11 d 23 h: 1 d.
    assert_num(&f["steps"][2]["median_time_from_previous_seconds"], Some(86_400.0), "median");

    // The same window, spelled every way.
    for w in [json!(14), json!("14d"), json!("2w"), json!("336h"), json!({"value": 14, "unit": "days"})] {
        let s = spec.clone().window(w.clone(), Duration::days(14));
        let (b2, _) = check(&app, &tok, &evs, &s, &format!("window {w}")).await;
        assert_eq!(b2["funnel"]["steps"], b["funnel"]["steps"], "window {w}");
    }
    // A window of 13 days and 23 h cuts "inside" and "late" to 2 steps.
    let s = spec.clone().window(json!("335h"), Duration::hours(335));
    let (_, w13) = check(&app, &tok, &evs, &s, "335h").await;
    assert_eq!(w13.users, vec![11, 8, 3]);
    // Shorter windows, in each unit.
    for (w, d) in [
        (json!("30m"), Duration::minutes(30)),
        (json!("12h"), Duration::hours(12)),
        (json!(1.5), Duration::hours(36)),
        (json!({"value": 2, "unit": "hours"}), Duration::hours(2)),
        (json!({"value": 1, "unit": "week"}), Duration::weeks(1)),
        (json!(365), Duration::days(365)),
    ] {
        check(&app, &tok, &evs, &spec.clone().window(w.clone(), d), &format!("window {w}")).await;
    }
    // "30m": only "full" activates within 30 minutes of signing up.
    let (_, m30) = check(&app, &tok, &evs, &spec.clone().window(json!("30m"), Duration::minutes(30)), "30m").await;
    assert_eq!(m30.users, vec![11, 1, 0]);

    // A range given as instants: from 2026-01-10T12:00:00Z (inclusive) to 2026-02-01 (exclusive).
    let s = Spec {
        range_json: json!({"start": "2026-01-10T12:00:00Z", "end": "2026-02-01T00:00:00Z"}),
        start: at("2026-01-10T12:00:00Z"),
        ..spec.clone()
    };
    let (b3, w3) = check(&app, &tok, &evs, &s, "instants").await;
    assert_eq!(w3.users, vec![6, 5, 3], "inside, outside, from_entry, same_second, again, late");
    assert_eq!(b3["funnel"]["date_range"], json!({"start": "2026-01-10T12:00:00Z", "end": "2026-02-01T00:00:00Z"}));
    // A range that ends on the 30th leaves out "late".
    let s = Spec {
        range_json: json!({"start": "2026-01-01", "end": "2026-01-30"}),
        end: at("2026-01-31T00:00:00Z"),
        ..spec.clone()
    };
    let (_, w4) = check(&app, &tok, &evs, &s, "to the 30th").await;
    assert_eq!(w4.users, vec![10, 7, 4]);

    // A range in which nobody enters: zeros, no medians.
    let s = Spec {
        range_json: json!({"start": "2026-03-01", "end": "2026-03-31"}),
        start: at("2026-03-01T00:00:00Z"),
        end: at("2026-04-01T00:00:00Z"),
        ..spec.clone()
    };
    let (b5, w5) = check(&app, &tok, &evs, &s, "empty").await;
    assert_eq!(w5.users, vec![0, 0, 0]);
    assert_num(&b5["funnel"]["completion_rate"], Some(0.0), "empty");
}

#[tokio::test]
async fn a_new_york_day_boundary_changes_who_enters_and_who_converts() {
    let app = TestApp::spawn().await;
    let tok = token("admin", Some("acme"));
    let mut evs = vec![
        // Jan 1 in UTC, Dec 31 in New York.
        ev("utc_only", "signup", "2026-01-01T03:00:00Z"),
        ev("utc_only", "purchase", "2026-01-01T04:00:00Z"),
        // Feb 1 in UTC, Jan 31 in New York.
        ev("ny_only", "signup", "2026-02-01T03:00:00Z"),
        ev("ny_only", "purchase", "2026-02-01T04:00:00Z"),
        // January in both.
        ev("both", "signup", "2026-01-01T06:00:00Z"),
        ev("both", "purchase", "2026-01-02T06:00:00Z"),
        // February in both.
        ev("neither", "signup", "2026-02-01T06:00:00Z"),
        ev("neither", "purchase", "2026-02-01T07:00:00Z"),
        // December in both.
        ev("december", "signup", "2025-12-31T23:00:00Z"),
        ev("december", "purchase", "2026-01-01T07:00:00Z"),
        // Enters at 04:59:59Z in UTC but at 05:00:00Z in New York (its first signup is on
        // Dec 31 there), so the purchase 14 days after 05:00:00Z is inside only in New York.
        ev("shifted", "signup", "2026-01-01T04:59:59Z"),
        ev("shifted", "signup", "2026-01-01T05:00:00Z"),
        ev("shifted", "purchase", "2026-01-15T05:00:00Z"),
    ];
    evs.extend(january_population(7, "p"));
    ingest(&app, &tok, &evs).await;

    let steps = vec![step("signup", "signup"), step("purchase", "purchase")];
    let utc = Spec::jan(steps.clone());
    let ny = Spec::jan(steps.clone()).new_york();
    let hand: Vec<Ev> = evs.iter().filter(|e| !e.user.as_deref().unwrap_or("p").starts_with('p')).cloned().collect();
    let (hu, hn) = (model(&hand, &utc), model(&hand, &ny));
    assert_eq!(hu.users, vec![3, 2], "utc_only, both, shifted (late)");
    assert_eq!(hn.users, vec![3, 3], "ny_only, both, shifted");

    let (bu, wu) = check(&app, &tok, &evs, &utc, "UTC").await;
    let (bn, wn) = check(&app, &tok, &evs, &ny, "New York").await;
    assert_ne!(wu, wn, "the time zone matters to these data");
    assert_eq!(bu["funnel"]["date_range"], json!({"start": "2026-01-01T00:00:00Z", "end": "2026-02-01T00:00:00Z"}));
    assert_eq!(bn["funnel"]["date_range"], json!({"start": "2026-01-01T05:00:00Z", "end": "2026-02-01T05:00:00Z"}));
    // Explicitly UTC is the same as no time zone.
    let mut body = utc.body();
    body["timezone"] = json!("UTC");
    let b = post_ok(&app, &tok, &body).await;
    assert_eq!(b["funnel"], bu["funnel"]);
    // The other modes move with the zone too.
    for mode in [Mode::Strict, Mode::AnyOrder] {
        check(&app, &tok, &evs, &ny.clone().mode(mode), &format!("New York {mode:?}")).await;
    }
}

// ---------------------------------------------------------------------------------------
// Random users
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn three_and_four_step_funnels_over_300_random_users() {
    let app = TestApp::spawn().await;
    let tok = token("admin", Some("acme"));
    let evs = january_population(11, "u");
    ingest(&app, &tok, &evs).await;

    let four = Spec::jan(flow_steps(&FLOW));
    let (_, w) = check(&app, &tok, &evs, &four, "4 steps").await;
    assert!(w.users[0] >= 100, "{w:?}");
    assert!(w.users.windows(2).all(|p| p[0] > p[1]), "every step loses someone: {w:?}");
    assert!(w.users[3] > 0, "{w:?}");

    let three = Spec::jan(flow_steps(&["signup", "start_trial", "purchase"]));
    let (_, w3) = check(&app, &tok, &evs, &three, "3 steps").await;
    assert!(w3.users[2] > 0 && w3.users[2] < w3.users[0], "{w3:?}");

    let cases = [
        four.clone().window(json!("2d"), Duration::days(2)),
        four.clone().window(json!({"value": 36, "unit": "hours"}), Duration::hours(36)),
        four.clone().window(json!(0.5), Duration::hours(12)),
        three.clone().window(json!("7d"), Duration::days(7)),
        three.clone().window(json!("90m"), Duration::minutes(90)),
        // The first and last steps only.
        Spec::jan(flow_steps(&["signup", "purchase"])),
        // A step twice: two distinct pricing views, then a purchase.
        Spec::jan(flow_steps(&["view_pricing", "view_pricing", "purchase"])),
        // Noise as a step.
        Spec::jan(flow_steps(&["signup", "page_view", "start_trial"])),
        // A range of one week, in New York.
        Spec {
            range_json: json!({"start": "2026-01-10", "end": "2026-01-16"}),
            start: at("2026-01-10T05:00:00Z"),
            end: at("2026-01-17T05:00:00Z"),
            timezone: Some("America/New_York"),
            ..four.clone()
        },
    ];
    let mut answers = BTreeSet::new();
    for (i, spec) in cases.iter().enumerate() {
        let (_, w) = check(&app, &tok, &evs, spec, &format!("case {i}")).await;
        assert!(w.users[0] > 0, "case {i} has users: {w:?}");
        answers.insert(format!("{:?}", w.users));
    }
    assert!(answers.len() >= 8, "the cases differ: {answers:?}");
    // A shorter window never counts more.
    let (_, short) = check(&app, &tok, &evs, &cases[0], "2d").await;
    assert!(short.users.iter().zip(&w.users).all(|(s, l)| s <= l));
    assert!(short.users[3] < w.users[3], "the window matters to these data");
}

#[tokio::test]
async fn strict_ordered_and_any_order_give_different_right_answers() {
    let app = TestApp::spawn().await;
    let tok = token("admin", Some("acme"));
    // Hand-made first: (ordered, strict, any order) steps reached, as commented.
    let mut evs = vec![
        // One after the other: 3, 3, 3.
        ev("s1", "signup", "2026-01-05T10:00:00Z"),
        ev("s1", "activate", "2026-01-05T10:01:00Z"),
        ev("s1", "purchase", "2026-01-05T10:02:00Z"),
        // Another event between: 3, 1, 3.
        ev("s2", "signup", "2026-01-05T10:00:00Z"),
        ev("s2", "page_view", "2026-01-05T10:01:00Z"),
        ev("s2", "activate", "2026-01-05T10:02:00Z"),
        ev("s2", "purchase", "2026-01-05T10:03:00Z"),
        // Signs up twice: the next event after entry is a signup: 3, 1, 3.
        ev("s3", "signup", "2026-01-06T10:00:00Z"),
        ev("s3", "signup", "2026-01-06T10:01:00Z"),
        ev("s3", "activate", "2026-01-06T10:02:00Z"),
        ev("s3", "purchase", "2026-01-06T10:03:00Z"),
        // Activates first: 1, 1, 3.
        ev("s4", "activate", "2026-01-07T10:00:00Z"),
        ev("s4", "signup", "2026-01-07T10:01:00Z"),
        ev("s4", "purchase", "2026-01-07T10:02:00Z"),
        // Never signs up: -, -, 1.
        ev("s5", "purchase", "2026-01-08T10:00:00Z"),
        ev("s5", "page_view", "2026-01-08T10:01:00Z"),
        // Purchases after the window: 2, 2, 2.
        ev("s6", "signup", "2026-01-09T10:00:00Z"),
        ev("s6", "activate", "2026-01-09T10:01:00Z"),
        ev("s6", "purchase", "2026-01-23T10:00:01Z"),
        // Activated before the range: 1, 1, 2 (any order starts at the signup in range).
        ev("s7", "activate", "2025-12-31T10:00:00Z"),
        ev("s7", "signup", "2026-01-10T10:00:00Z"),
        ev("s7", "purchase", "2026-01-10T10:01:00Z"),
        // Any order, from the first purchase: signup and activate inside 14 days, 3; the
        // others: 1, 1.
        ev("s8", "purchase", "2026-01-11T00:00:00Z"),
        ev("s8", "activate", "2026-01-24T00:00:00Z"),
        ev("s8", "signup", "2026-01-25T00:00:00Z"),
    ];
    let steps = sap();
    let spec = Spec::jan(steps.clone());
    let want = |m: Mode| model(&evs, &spec.clone().mode(m)).users;
    assert_eq!(want(Mode::Ordered), vec![7, 4, 3]);
    assert_eq!(want(Mode::Strict), vec![7, 2, 1]);
    // s8: from the purchase on the 11th to the 25th 00:00 is exactly 14 days: inside.
    assert_eq!(want(Mode::AnyOrder), vec![8, 7, 5]);
    ingest(&app, &tok, &evs).await;
    for m in [Mode::Ordered, Mode::Strict, Mode::AnyOrder] {
        let (b, _) = check(&app, &tok, &evs, &spec.clone().mode(m), &format!("hand-made {m:?}")).await;
        if m == Mode::AnyOrder {
            for s in &b["funnel"]["steps"].as_array().unwrap()[1..] {
                assert!(s["median_time_from_previous_seconds"].is_null(), "any order has no step order: {s}");
            }
        }
    }
    // "sequential" and "unordered" are other names of the modes.
    let mut body = spec.clone().body();
    body["mode"] = json!("sequential");
    assert_eq!(post_ok(&app, &tok, &body).await["funnel"]["mode"], "ordered");
    body["mode"] = json!("unordered");
    let b = post_ok(&app, &tok, &body).await;
    assert_eq!(b["funnel"]["mode"], "any_order");
    assert_funnel(&b["funnel"], &model(&evs, &spec.clone().mode(Mode::AnyOrder)), &steps, "unordered");

    // Then random users, in a fresh tenant.
    let tok = token("admin", Some("beta"));
    evs = january_population(21, "u");
    ingest(&app, &tok, &evs).await;
    for spec in [Spec::jan(flow_steps(&FLOW)), Spec::jan(flow_steps(&["signup", "view_pricing", "purchase"]))] {
        let w: Vec<Want> =
            [Mode::Ordered, Mode::Strict, Mode::AnyOrder].iter().map(|m| model(&evs, &spec.clone().mode(*m))).collect();
        assert_ne!(w[0].users, w[1].users, "strict differs from ordered on these data");
        assert_ne!(w[0].users, w[2].users, "any order differs from ordered on these data");
        assert_ne!(w[1].users, w[2].users);
        assert!(w[1].users.iter().zip(&w[0].users).all(|(s, o)| s <= o), "strict is stricter: {w:?}");
        for m in [Mode::Ordered, Mode::Strict, Mode::AnyOrder] {
            check(&app, &tok, &evs, &spec.clone().mode(m), &format!("random {m:?}")).await;
            let s = spec.clone().mode(m).window(json!("3d"), Duration::days(3));
            check(&app, &tok, &evs, &s, &format!("random {m:?} 3d")).await;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Filters, breakdown, medians
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn step_property_filters_pick_the_events_of_each_step() {
    let app = TestApp::spawn().await;
    let tok = token("admin", Some("acme"));
    let evs = january_population(31, "u");
    ingest(&app, &tok, &evs).await;

    let paid_plan = step_where(
        "paid plan signup",
        "signup",
        json!([{"field": "properties.plan", "op": "in", "value": ["pro", "team"]}]),
        |e| matches!(e.plan.as_deref(), Some("pro" | "team")),
    );
    let big =
        step_where("big purchase", "purchase", json!({"field": "properties.amount", "op": "gt", "value": 50}), |e| {
            e.amount.is_some_and(|a| a > 50.0)
        });
    let specs = [
        Spec::jan(vec![paid_plan.clone(), step("pricing", "view_pricing"), big.clone()]),
        Spec::jan(vec![step("signup", "signup"), step("trial", "start_trial"), big.clone()]),
        // neq keeps events without the property.
        Spec::jan(vec![
            step_where("not free", "signup", json!({"field": "plan", "op": "neq", "value": "free"}), |e| {
                e.plan.as_deref() != Some("free")
            }),
            step("trial", "start_trial"),
        ]),
        // Groups: or, and; a kept column (amount) and a JSON one (plan).
        Spec::jan(vec![
            step_where(
                "landing",
                "signup",
                json!({"or": [{"field": "properties.page", "op": "eq", "value": "pricing"},
                              {"field": "properties.page", "op": "is_not_set"}]}),
                |e| e.page.is_none() || e.page.as_deref() == Some("pricing"),
            ),
            step_where(
                "pro purchase",
                "purchase",
                json!({"and": [{"field": "properties.plan", "op": "eq", "value": "pro"},
                               {"field": "properties.amount", "op": "lte", "value": 120.5}]}),
                |e| e.plan.as_deref() == Some("pro") && e.amount.is_some_and(|a| a <= 120.5),
            ),
        ]),
        // The same event in two steps, told apart by a filter.
        Spec::jan(vec![
            step_where("home", "page_view", json!({"field": "page", "op": "eq", "value": "home"}), |e| {
                e.page.as_deref() == Some("home")
            }),
            step_where("docs", "page_view", json!({"field": "page", "op": "in", "value": ["docs", "blog"]}), |e| {
                matches!(e.page.as_deref(), Some("docs" | "blog"))
            }),
        ]),
    ];
    for (i, spec) in specs.iter().enumerate() {
        let unfiltered = Spec {
            steps: spec.steps.iter().map(|s| StepDef { filter: None, pred: |_| true, ..s.clone() }).collect(),
            ..spec.clone()
        };
        let (wf, wu) = (model(&evs, spec), model(&evs, &unfiltered));
        assert!(wf.users[0] > 0, "case {i}: {wf:?}");
        assert_ne!(wf.users, wu.users, "case {i}: the filters matter to these data");
        for m in [Mode::Ordered, Mode::Strict, Mode::AnyOrder] {
            check(&app, &tok, &evs, &spec.clone().mode(m), &format!("filters {i} {m:?}")).await;
        }
    }
}

#[tokio::test]
async fn breakdown_by_plan_splits_the_funnel_by_the_entering_event() {
    let app = TestApp::spawn().await;
    let tok = token("admin", Some("acme"));
    let evs = january_population(41, "u");
    ingest(&app, &tok, &evs).await;

    for (field, label, bd) in [
        ("properties.plan", "properties.plan", plan_of as fn(&Ev) -> Option<String>),
        // A kept property column, named bare.
        ("page", "properties.page", page_of),
    ] {
        for mode in [Mode::Ordered, Mode::Strict, Mode::AnyOrder] {
            let spec = Spec::jan(flow_steps(&FLOW)).mode(mode);
            let ctx = format!("{field} {mode:?}");
            let ws = walks(&evs, &spec, bd);
            let whole = tally(ws.values(), FLOW.len(), mode);
            let mut groups: BTreeMap<Option<String>, Vec<&Walk>> = BTreeMap::new();
            for w in ws.values() {
                groups.entry(w.bd.clone()).or_default().push(w);
            }
            assert!(groups.len() >= 4 && groups.contains_key(&None), "{ctx}: values and a null group: {groups:?}");

            let mut body = spec.body();
            body["breakdown"] = json!(field);
            let b = post_ok(&app, &tok, &body).await;
            assert_eq!(b["breakdown"]["field"], label, "{ctx}");
            // The whole funnel's users are those of the funnel without a breakdown.
            let got_users: Vec<u64> =
                b["funnel"]["steps"].as_array().unwrap().iter().map(|s| s["users"].as_u64().unwrap()).collect();
            assert_eq!(got_users, whole.users, "{ctx}: the whole funnel");
            assert_eq!(b["funnel"]["total_users"], whole.users[0], "{ctx}");
            assert_num(&b["funnel"]["completion_rate"], Some(rate(whole.users[3], whole.users[0])), &ctx);

            let values = b["breakdown"]["values"].as_array().unwrap_or_else(|| panic!("{ctx}: {b}"));
            let got_values: BTreeSet<Option<String>> =
                values.iter().map(|v| v["value"].as_str().map(str::to_owned)).collect();
            assert_eq!(got_values, groups.keys().cloned().collect(), "{ctx}: one entry per value, null too");
            assert_eq!(values.len(), groups.len(), "{ctx}: no value twice");
            for v in values {
                let key = v["value"].as_str().map(str::to_owned);
                let want = tally(groups[&key].iter().copied(), FLOW.len(), mode);
                assert_funnel(v, &want, &spec.steps, &format!("{ctx} value {key:?}"));
            }
            // The values add up to the whole, step by step.
            for k in 0..FLOW.len() {
                let sum: u64 = values.iter().map(|v| v["steps"][k]["users"].as_u64().unwrap()).sum();
                assert_eq!(sum, whole.users[k], "{ctx}: step {k} summed over values");
            }
            // Largest first.
            let firsts: Vec<u64> = values.iter().map(|v| v["total_users"].as_u64().unwrap()).collect();
            assert!(firsts.windows(2).all(|p| p[0] >= p[1]), "{ctx}: largest first: {firsts:?}");
            assert_eq!(b["metadata"]["truncated"], false, "{ctx}");
        }
    }

    // A limit keeps the largest values and says more matched.
    let spec = Spec::jan(flow_steps(&FLOW));
    let mut body = spec.body();
    body["breakdown"] = json!("properties.plan");
    body["limit"] = json!(2);
    let b = post_ok(&app, &tok, &body).await;
    let values = b["breakdown"]["values"].as_array().unwrap();
    assert_eq!(values.len(), 2, "{b}");
    assert_eq!(b["metadata"]["truncated"], true);
    let ws = walks(&evs, &spec, plan_of);
    let mut sizes: Vec<u64> = ws
        .values()
        .fold(BTreeMap::<Option<String>, u64>::new(), |mut m, w| {
            *m.entry(w.bd.clone()).or_default() += 1;
            m
        })
        .into_values()
        .collect();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    let got: Vec<u64> = values.iter().map(|v| v["total_users"].as_u64().unwrap()).collect();
    assert_eq!(got, sizes[..2].to_vec(), "the two largest values");
}

#[tokio::test]
async fn breakdown_keeps_the_whole_funnels_medians() {
    let app = TestApp::spawn().await;
    let tok = token("admin", Some("acme"));
    let evs = january_population(41, "u");
    ingest(&app, &tok, &evs).await;
    let spec = Spec::jan(flow_steps(&FLOW));
    let want = model(&evs, &spec);
    assert!(want.medians[1].is_some());
    let mut body = spec.body();
    body["breakdown"] = json!("properties.plan");
    let b = post_ok(&app, &tok, &body).await;
    // The same funnel as without a breakdown, medians included.
    assert_funnel(&b["funnel"], &want, &spec.steps, "whole funnel with a breakdown");
}

#[tokio::test]
async fn breakdown_limit_does_not_shrink_the_whole_funnel() {
    let app = TestApp::spawn().await;
    let tok = token("admin", Some("acme"));
    let evs = january_population(41, "u");
    ingest(&app, &tok, &evs).await;
    let spec = Spec::jan(flow_steps(&FLOW));
    let want = model(&evs, &spec);
    let mut body = spec.body();
    body["breakdown"] = json!("properties.plan");
    body["limit"] = json!(1);
    let b = post_ok(&app, &tok, &body).await;
    assert_eq!(b["breakdown"]["values"].as_array().unwrap().len(), 1);
    // Showing fewer values does not change who is in the funnel.
    assert_eq!(b["funnel"]["total_users"], want.users[0], "{}", b["funnel"]);
    let got: Vec<u64> = b["funnel"]["steps"].as_array().unwrap().iter().map(|s| s["users"].as_u64().unwrap()).collect();
    assert_eq!(got, want.users);
}

#[tokio::test]
async fn medians_are_duckdb_medians_of_the_time_between_steps() {
    let app = TestApp::spawn().await;
    let tok = token("admin", Some("acme"));
    let base = at("2026-01-05T00:00:00Z");
    let mut evs = Vec::new();
    // Into activate: 10, 20, 40 and 100 s (even: (20 + 40) / 2 = 30); into purchase: 1 and
    // 2 s (even: 1.5); a fifth user only signs up.
    for (i, (a, p)) in [(10, Some(1)), (20, None), (40, Some(2)), (100, None)].into_iter().enumerate() {
        let user = format!("m{i}");
        let t0 = base + Duration::hours(i as i64);
        evs.push(Ev { ts: t0, ..ev(&user, "signup", "2026-01-01T00:00:00Z") });
        evs.push(Ev { ts: t0 + Duration::seconds(a), ..ev(&user, "activate", "2026-01-01T00:00:00Z") });
        if let Some(p) = p {
            evs.push(Ev { ts: t0 + Duration::seconds(a + p), ..ev(&user, "purchase", "2026-01-01T00:00:00Z") });
        }
    }
    evs.push(ev("m4", "signup", "2026-01-06T00:00:00Z"));
    ingest(&app, &tok, &evs).await;
    let spec = Spec::jan(sap());
    let (b, want) = check(&app, &tok, &evs, &spec, "medians").await;
    assert_eq!(want.users, vec![5, 4, 2]);
    assert_eq!(want.medians, vec![None, Some(30.0), Some(1.5)]);
    assert_num(&b["funnel"]["steps"][1]["median_time_from_previous_seconds"], Some(30.0), "even count");
    assert_num(&b["funnel"]["steps"][2]["median_time_from_previous_seconds"], Some(1.5), "even count");
    assert_num(&b["funnel"]["completion_rate"], Some(0.4), "2 of 5");

    // One more purchase makes the count odd: 1, 2, 7 -> 2.
    let more = vec![ev("m1", "purchase", "2026-01-05T01:00:27Z")];
    ingest(&app, &tok, &more).await;
    evs.extend(more);
    let (b, want) = check(&app, &tok, &evs, &spec, "odd").await;
    assert_eq!(want.medians[2], Some(2.0));
    assert_num(&b["funnel"]["steps"][2]["median_time_from_previous_seconds"], Some(2.0), "odd count");
    // A step nobody reaches has no median.
    let four = Spec::jan(vec![step("s", "signup"), step("a", "activate"), step("p", "purchase"), step("r", "refund")]);
    let (b, _) = check(&app, &tok, &evs, &four, "nobody refunds").await;
    assert!(b["funnel"]["steps"][3]["median_time_from_previous_seconds"].is_null(), "{b}");
    assert_eq!(b["funnel"]["steps"][3]["drop_off"], 3);
}

// ---------------------------------------------------------------------------------------
// Tenants
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn another_tenants_events_never_count() {
    let app = TestApp::spawn().await;
    let acme = token("admin", Some("acme"));
    let rival = token("admin", Some("rival"));
    // The same user ids in both tenants.
    let mut mine = vec![
        ev("u1", "signup", "2026-01-05T10:00:00Z"),
        ev("u1", "activate", "2026-01-05T10:02:00Z"),
        ev("u1", "purchase", "2026-01-05T10:04:00Z"),
        ev("u3", "signup", "2026-01-05T10:00:00Z"),
    ];
    let mut theirs = vec![
        // Between u1's steps: would break a strict funnel.
        ev("u1", "page_view", "2026-01-05T10:01:00Z"),
        ev("u1", "page_view", "2026-01-05T10:03:00Z"),
        // A whole funnel of a user acme never saw.
        ev("u2", "signup", "2026-01-05T10:00:00Z"),
        ev("u2", "activate", "2026-01-05T10:01:00Z"),
        ev("u2", "purchase", "2026-01-05T10:02:00Z"),
        // The steps u3 never did in acme.
        ev("u3", "activate", "2026-01-05T10:01:00Z"),
        ev("u3", "purchase", "2026-01-05T10:02:00Z"),
    ];
    mine.extend(january_population(51, "r"));
    theirs.extend(january_population(52, "r"));
    ingest(&app, &acme, &mine).await;
    ingest(&app, &rival, &theirs).await;

    for spec in [Spec::jan(sap()), Spec::jan(flow_steps(&FLOW))] {
        for m in [Mode::Ordered, Mode::Strict, Mode::AnyOrder] {
            let spec = spec.clone().mode(m);
            let (_, w) = check(&app, &acme, &mine, &spec, &format!("acme {m:?}")).await;
            let (_, v) = check(&app, &token("viewer", Some("rival")), &theirs, &spec, &format!("rival {m:?}")).await;
            assert_ne!(w, v, "{m:?}: the tenants' funnels differ");
        }
    }
    let hand = &mine[..4];
    for m in [Mode::Ordered, Mode::Strict, Mode::AnyOrder] {
        assert_eq!(model(hand, &Spec::jan(sap()).mode(m)).users, vec![2, 1, 1], "{m:?}");
    }
    // A credential of one tenant naming the other is refused.
    let p = assert_problem(
        &send(app.post(FUNNELS).bearer_auth(&rival).header("X-Tenant-ID", "acme").json(&Spec::jan(sap()).body())).await,
        403,
    );
    assert!(p["type"].as_str().unwrap().ends_with("/forbidden"), "{p}");
}

// ---------------------------------------------------------------------------------------
// Bugs
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn any_order_counts_users_whose_events_lack_another_steps_property() {
    let app = TestApp::spawn().await;
    let tok = token("admin", Some("acme"));
    let evs = vec![
        // A pro purchase without an amount: step 1 only.
        ev("a", "purchase", "2026-01-05T10:00:00Z").plan("pro"),
        // A pro purchase over 100: both steps.
        ev("b", "purchase", "2026-01-05T10:00:00Z").plan("pro").amount(150.0),
    ];
    ingest(&app, &tok, &evs).await;
    let steps = vec![
        step_where("pro", "purchase", json!({"field": "properties.plan", "op": "eq", "value": "pro"}), |e| {
            e.plan.as_deref() == Some("pro")
        }),
        step_where("big", "purchase", json!({"field": "properties.amount", "op": "gt", "value": 100}), |e| {
            e.amount.is_some_and(|a| a > 100.0)
        }),
    ];
    let spec = Spec::jan(steps);
    // Ordered counts "a" at step 1.
    let (_, w) = check(&app, &tok, &evs, &spec, "ordered").await;
    assert_eq!(w.users, vec![2, 0], "ordered: b's big purchase is not after its entry");
    let any = spec.clone().mode(Mode::AnyOrder);
    assert_eq!(model(&evs, &any).users, vec![2, 1]);
    check(&app, &tok, &evs, &any, "any order").await;
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
    assert_eq!(p["instance"], FUNNELS, "{ctx}");
}

#[tokio::test]
async fn bad_funnels_get_precise_problems() {
    let app = TestApp::spawn().await;
    let tok = token("viewer", Some("acme"));
    let two = json!([{"name": "a", "event": "a"}, {"name": "b", "event": "b"}]);
    let with = |k: &str, v: Value| {
        let mut b = json!({"steps": two, "date_range": {"start": "2026-01-01", "end": "2026-01-31"}});
        b[k] = v;
        b
    };
    let many: Vec<String> = (0..21).map(|i| format!("e{i}")).collect();
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({"steps": [{"name": "a", "event": "a"}]}), "steps", "a funnel has 2 to 20 steps"),
        (json!({"steps": many}), "steps", "a funnel has 2 to 20 steps"),
        (json!({"steps": []}), "steps", "a funnel has 2 to 20 steps"),
        (json!({"name": "x"}), "steps", "steps is required"),
        (json!({"steps": "signup,purchase"}), "steps", "steps is required"),
        (json!({"steps": [{"name": "a", "event": "a"}, {"name": "b"}]}), "steps[1].event", "a step needs event"),
        (json!({"steps": [{"name": "a", "event": ""}, "b"]}), "steps[0].event", "a step needs event"),
        (json!({"steps": ["a", 7]}), "steps[1].event", "a step needs event"),
        (
            json!({"steps": [{"event": "a", "filters": {"field": "plan", "op": "like", "value": "p%"}}, "b"]}),
            "steps[0].filters.op",
            "unknown operator 'like'",
        ),
        (
            json!({"steps": ["a", {"event": "b", "filters": {"field": "timestamp", "value": "x"}}]}),
            "steps[1].filters.field",
            "'timestamp' is not a field of events",
        ),
        (with("mode", json!("sideways")), "mode", "unknown mode 'sideways'; use ordered, strict or any_order"),
        (with("conversion_window", json!("3 fortnights")), "conversion_window", "a number of days, or a string"),
        (with("conversion_window", json!("14")), "conversion_window", "a number of days, or a string"),
        (with("conversion_window", json!(true)), "conversion_window", "a number of days, or a string"),
        (with("conversion_window", json!({"value": 2, "unit": "fortnight"})), "conversion_window", "a number of days"),
        (with("conversion_window", json!({"value": 1.5})), "conversion_window", "a number of days"),
        (with("conversion_window", json!("0d")), "conversion_window", "more than 0 and at most 365 days"),
        (with("conversion_window", json!(-1)), "conversion_window", "more than 0 and at most 365 days"),
        (with("conversion_window", json!(366)), "conversion_window", "more than 0 and at most 365 days"),
        (with("conversion_window", json!("53w")), "conversion_window", "at most 365 days"),
        (with("conversion_window", json!("8761h")), "conversion_window", "at most 365 days"),
        (with("conversion_window", json!({"value": 400, "unit": "days"})), "conversion_window", "at most 365 days"),
        (
            with("date_range", json!({"start": "2026-02-01", "end": "2026-01-01"})),
            "date_range",
            "ends before it starts",
        ),
        (
            with("date_range", json!({"start": "2026-01-05T00:00:00Z", "end": "2026-01-05T00:00:00Z"})),
            "date_range",
            "empty",
        ),
        (with("date_range", json!({"start": "2026-13-01"})), "date_range.start", "is not a date"),
        (with("date_range", json!({"start": 20260101})), "date_range.start", "a date bound is a string"),
        (with("date_range", json!("fortnight")), "date_range", "unknown date range 'fortnight'"),
        (with("date_range", json!(7)), "date_range", "a date range is a string"),
        (with("date_range", json!({"start": "2000-01-01", "end": "2026-01-01"})), "date_range", "at most 3660 days"),
        (with("timezone", json!("Mars/Olympus")), "timezone", "unknown time zone 'Mars/Olympus'"),
        (with("breakdown", json!("timestamp")), "breakdown", "'timestamp' is not a field of events"),
        (with("breakdown", json!("properties.")), "breakdown", "a property path needs at least one key"),
        (with("breakdown", json!(["plan", "page"])), "breakdown", "breakdown is one field name"),
        (with("limit", json!(1001)), "limit", "limit is at most 1000; 1001 is over it"),
        (with("limit", json!(0)), "limit", "at least 1"),
        (with("limit", json!("ten")), "limit", "a whole number"),
        (with("name", json!("x".repeat(201))), "name", "at most 200 characters"),
        (with("name", json!(5)), "name", "at most 200 characters"),
        (json!(["a", "b"]), "body", "a funnel is a JSON object"),
    ];
    for (body, field, needle) in cases {
        let got = send(app.post(FUNNELS).bearer_auth(&tok).json(&body)).await;
        assert_field_problem(&got, field, needle, &body.to_string());
    }

    // Every problem of a body at once.
    let p = assert_problem(
        &send(app.post(FUNNELS).bearer_auth(&tok).json(&json!({
            "steps": ["a"], "mode": "sideways", "conversion_window": 400, "timezone": "Mars/X",
            "breakdown": "timestamp", "limit": 5000
        })))
        .await,
        400,
    );
    let fields: BTreeSet<String> =
        p["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap().to_owned()).collect();
    let want: BTreeSet<String> =
        ["steps", "mode", "conversion_window", "timezone", "breakdown", "limit"].map(String::from).into();
    assert_eq!(fields, want, "{p}");

    // Limits that are just allowed.
    let ok = [
        with("conversion_window", json!(365)),
        with("conversion_window", json!("8760h")),
        with("conversion_window", json!("52w")),
        with("limit", json!(1000)),
        json!({"steps": (0..20).map(|i| format!("e{i}")).collect::<Vec<_>>(),
               "date_range": {"start": "2026-01-01", "end": "2026-01-31"}}),
    ];
    for body in ok {
        let b = post_ok(&app, &tok, &body).await;
        assert_eq!(b["funnel"]["total_users"], 0, "{body}");
    }

    // The body itself.
    let raw = |body: &'static str, ctype: Option<&str>| {
        let mut r = app.post(FUNNELS).bearer_auth(&tok).body(body);
        if let Some(c) = ctype {
            r = r.header("content-type", c);
        }
        r
    };
    let p = assert_problem(&send(raw("", Some("application/json"))).await, 400);
    assert!(p["type"].as_str().unwrap().ends_with("/malformed_body"), "{p}");
    assert_eq!(p["detail"], "the request body is empty; expected a JSON document");
    let p = assert_problem(&send(raw("{\"steps\": [", Some("application/json"))).await, 400);
    assert!(p["type"].as_str().unwrap().ends_with("/malformed_body"), "{p}");
    assert!(p["detail"].as_str().unwrap().starts_with("the body is not valid JSON"), "{p}");
    let body = r#"{"steps": ["a", "b"]}"#;
    let p = assert_problem(&send(raw(body, Some("text/plain"))).await, 415);
    assert!(p["type"].as_str().unwrap().ends_with("/unsupported_media_type"), "{p}");
    assert_eq!(p["detail"], "expected Content-Type: application/json, got Content-Type 'text/plain'");
    let p = assert_problem(&send(raw(body, None)).await, 415);
    assert_eq!(p["detail"], "expected Content-Type: application/json, got no Content-Type");
}

// ---------------------------------------------------------------------------------------
// Authorization
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn funnels_need_a_reading_role() {
    let app = TestApp::spawn().await;
    let evs = hand_made();
    ingest(&app, &token("ingest", Some("acme")), &evs).await;
    let spec = Spec::jan(sap());
    let body = spec.body();

    let p = assert_problem(&send(app.post(FUNNELS).json(&body)).await, 401);
    assert!(p["type"].as_str().unwrap().ends_with("/unauthorized"), "{p}");
    let p = assert_problem(&send(app.post(FUNNELS).bearer_auth("not-a-token").json(&body)).await, 401);
    assert!(p["type"].as_str().unwrap().ends_with("/unauthorized"), "{p}");
    let p = assert_problem(&send(app.post(FUNNELS).bearer_auth(token("ingest", Some("acme"))).json(&body)).await, 403);
    assert!(p["type"].as_str().unwrap().ends_with("/forbidden"), "{p}");

    let want = model(&evs, &spec);
    for role in ["viewer", "analyst", "admin"] {
        let b = post_ok(&app, &token(role, Some("acme")), &body).await;
        assert_funnel(&b["funnel"], &want, &spec.steps, role);
    }
    // Another tenant's reader sees nothing of these events.
    let b = post_ok(&app, &token("viewer", Some("other")), &body).await;
    assert_eq!(b["funnel"]["total_users"], 0, "{b}");
}
