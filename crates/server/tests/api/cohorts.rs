//! End-to-end tests of seed 004's retention cohorts (`POST /api/v1/analytics/cohorts`).
//!
//! Every answer is checked against a model in plain Rust, written from the definition of
//! who counts (top of `crates/core/src/query/retention.rs`) and not from the compiler:
//! users are `user_id`s; a user is acquired at their first event ever (or first
//! `start_event`) and belongs to the cohort of that period (day, ISO week from Monday, or
//! month, in the request's time zone) when that event's local date lies in the date range
//! (an end date includes its whole day); a member is active in period k when they have an
//! event (or a `return_event`) in the k-th period after their cohort's; `retention` is the
//! share active in period k, `returning` the share active in period k or any later one up
//! to `periods`, `counts` the number active in period k, all rounded to 4 decimals; periods
//! that have not begun are left out. Events come from a small seeded PRNG at fixed
//! timestamps (August to December 2025, and January 2024 for seed 004's own request), so
//! that no answer depends on today's date, except in the test of periods not yet begun.

use crate::helpers::*;
use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, SecondsFormat, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

const BATCH: &str = "/api/v1/analytics/events/batch";
const COHORTS: &str = "/api/v1/analytics/cohorts";

// ---------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Ev {
    user: Option<String>,
    name: &'static str,
    ts: DateTime<Utc>,
}

impl Ev {
    /// Seed 004's shape for even `i`, seed 001's (`event_type`, `event_data`) for odd.
    fn json(&self, i: usize) -> Value {
        let ts = self.ts.to_rfc3339_opts(SecondsFormat::Secs, true);
        let mut v = if i.is_multiple_of(2) {
            json!({"event_name": self.name, "properties": {"i": i}, "timestamp": ts})
        } else {
            json!({"event_type": self.name, "event_data": {"i": i}, "timestamp": ts})
        };
        if let Some(u) = &self.user {
            v["user_id"] = json!(u);
        }
        v
    }
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn ev(user: &str, name: &'static str, ts: &str) -> Ev {
    Ev { user: Some(user.into()), name, ts: at(ts) }
}

/// `user`'s page views at each of `times`.
fn visits(user: &str, times: &[&str]) -> Vec<Ev> {
    times.iter().map(|t| ev(user, "page_view", t)).collect()
}

const LATER: [&str; 4] = ["page_view", "login", "purchase", "message"];

/// `n` users named `{prefix}{i}`, each first seen at a random second of `[from, from +
/// days)`, by a `signup` for most and a `page_view` for the rest (half of whom sign up
/// within ten days), then active at random moments up to `until`, more often soon after
/// their first event than later: some never come back, some come back often, most leave
/// gaps; a few sign up again. Some anonymous events (no `user_id`) on the way. Shuffled,
/// so that nobody's first event is the first one sent.
fn population(seed: u64, prefix: &str, n: usize, from: DateTime<Utc>, days: i64, until: DateTime<Utc>) -> Vec<Ev> {
    let mut r = Rng(seed);
    let mut out = Vec::new();
    for i in 0..n {
        let user = Some(format!("{prefix}{i}"));
        let t0 = from + Duration::seconds(r.below((days * 86_400) as u64) as i64);
        let span = (until - t0).num_seconds().max(1) as u64;
        if r.chance(75) {
            out.push(Ev { user: user.clone(), name: "signup", ts: t0 });
        } else {
            out.push(Ev { user: user.clone(), name: "page_view", ts: t0 });
            if r.chance(50) {
                let later = t0 + Duration::seconds(r.below(10 * 86_400) as i64);
                out.push(Ev { user: user.clone(), name: "signup", ts: later });
            }
        }
        let comebacks = match r.below(4) {
            0 => 0,
            1 => r.below(3),
            2 => r.below(8),
            _ => 4 + r.below(16),
        };
        for _ in 0..comebacks {
            let a = r.below(span);
            let off = if r.chance(60) { a.min(r.below(span)) } else { a };
            let name = if r.chance(4) { "signup" } else { r.pick(&LATER) };
            out.push(Ev { user: user.clone(), name, ts: t0 + Duration::seconds(off as i64) });
        }
        if r.chance(15) {
            out.push(Ev { user: None, name: r.pick(&LATER), ts: t0 + Duration::seconds(r.below(span) as i64) });
        }
    }
    for i in (1..out.len()).rev() {
        let j = r.below(i as u64 + 1) as usize;
        out.swap(i, j);
    }
    out
}

/// Acquisition for the random tests: from 2025-08-11 for 63 days (three weeks before the
/// range of September 1 to October 12, and one day after it), activity until November 16.
fn standard(seed: u64, n: usize) -> Vec<Ev> {
    population(seed, "u", n, at("2025-08-11T00:00:00Z"), 63, at("2025-11-16T00:00:00Z"))
}

async fn ingest(app: &TestApp, tenant: &str, evs: &[Ev]) {
    let tok = token("ingest", Some(tenant));
    for (n, chunk) in evs.chunks(1000).enumerate() {
        let events: Vec<Value> = chunk.iter().enumerate().map(|(i, e)| e.json(n * 1000 + i)).collect();
        let (s, b, _) = send(app.post(BATCH).bearer_auth(&tok).json(&json!({ "events": events }))).await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["tracked"], chunk.len(), "{b}");
        assert_eq!(b["failed"], 0, "{b}");
    }
}

/// Noise for another tenant, made from `evs`: the same user ids first seen forty days
/// before anyone of `evs` (a leak would take every user out of their cohort) and active
/// three days before each of their events (a leak would add activity), plus users of its
/// own. Nothing later than the last event of `evs`, which may be recent.
fn noise(evs: &[Ev], seed: u64) -> Vec<Ev> {
    let first = evs.iter().map(|e| e.ts).min().unwrap();
    let last = evs.iter().map(|e| e.ts).max().unwrap();
    let users: BTreeSet<&String> = evs.iter().filter_map(|e| e.user.as_ref()).collect();
    let mut out: Vec<Ev> =
        users.iter().map(|u| Ev { user: Some((*u).clone()), name: "signup", ts: first - Duration::days(40) }).collect();
    out.extend(evs.iter().map(|e| Ev { ts: e.ts - Duration::days(3), ..e.clone() }));
    out.extend(population(seed, "n", 50, first, (last - first).num_days().max(1), last));
    out
}

/// `evs` in `tenant`, and noise made from them in `{tenant}-noise`. Returns a viewer's
/// token of `tenant`.
async fn seeded(app: &TestApp, tenant: &str, evs: &[Ev]) -> String {
    ingest(app, tenant, evs).await;
    ingest(app, &format!("{tenant}-noise"), &noise(evs, 0x5EED)).await;
    token("viewer", Some(tenant))
}

async fn post_ok(app: &TestApp, tok: &str, body: &Value) -> Value {
    let (st, b, _) = send(app.post(COHORTS).bearer_auth(tok).json(body)).await;
    assert_eq!(st, 200, "{body}: {b}");
    b
}

// ---------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Unit {
    Day,
    Week,
    Month,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Day => "day",
            Unit::Week => "week",
            Unit::Month => "month",
        }
    }

    /// The first day of the period that holds `d`.
    fn period_of(self, d: NaiveDate) -> NaiveDate {
        match self {
            Unit::Day => d,
            Unit::Week => d - Duration::days(d.weekday().num_days_from_monday() as i64),
            Unit::Month => NaiveDate::from_ymd_opt(d.year(), d.month(), 1).unwrap(),
        }
    }

    /// How many periods `p` lies after `c` (both first days of periods).
    fn index(self, c: NaiveDate, p: NaiveDate) -> i64 {
        match self {
            Unit::Day => (p - c).num_days(),
            Unit::Week => (p - c).num_days().div_euclid(7),
            Unit::Month => (p.year() as i64 * 12 + p.month0() as i64) - (c.year() as i64 * 12 + c.month0() as i64),
        }
    }

    /// The first day of the k-th period after `c`.
    fn nth(self, c: NaiveDate, k: u32) -> NaiveDate {
        match self {
            Unit::Day => c + Duration::days(k as i64),
            Unit::Week => c + Duration::weeks(k as i64),
            Unit::Month => c.checked_add_months(Months::new(k)).unwrap(),
        }
    }
}

#[derive(Clone, Debug)]
struct Spec {
    unit: Unit,
    tz: Tz,
    start: NaiveDate,
    end: NaiveDate,
    periods: u32,
    start_event: Option<&'static str>,
    return_event: Option<&'static str>,
}

impl Spec {
    fn new(unit: Unit, start: &str, end: &str, periods: u32) -> Spec {
        Spec { unit, tz: Tz::UTC, start: date(start), end: date(end), periods, start_event: None, return_event: None }
    }

    fn tz(mut self, name: &str) -> Spec {
        self.tz = name.parse().unwrap();
        self
    }

    fn events(mut self, start: Option<&'static str>, ret: Option<&'static str>) -> Spec {
        self.start_event = start;
        self.return_event = ret;
        self
    }

    /// The request, with every field written out.
    fn body(&self) -> Value {
        let mut b = json!({
            "cohort_type": "acquisition",
            "group_by": self.unit.name(),
            "metric": "retention",
            "date_range": {"start": self.start.to_string(), "end": self.end.to_string()},
            "periods": self.periods,
            "timezone": self.tz.name(),
        });
        if let Some(e) = self.start_event {
            b["start_event"] = json!(e);
        }
        if let Some(e) = self.return_event {
            b["return_event"] = json!(e);
        }
        b
    }
}

#[derive(Debug)]
struct Cohort {
    date: NaiveDate,
    members: BTreeSet<String>,
    /// The members active in period k, for k in 0..=periods.
    active: Vec<BTreeSet<String>>,
    /// How many periods have begun (their keys are in the answer).
    shown: usize,
}

impl Cohort {
    /// The members active in period k or any later one up to the last.
    fn returning(&self, k: usize) -> BTreeSet<String> {
        self.active[k..].iter().flatten().cloned().collect()
    }
}

fn model(evs: &[Ev], spec: &Spec, now: DateTime<Utc>) -> Vec<Cohort> {
    let local_day = |t: DateTime<Utc>| t.with_timezone(&spec.tz).date_naive();
    let mut first: BTreeMap<&str, DateTime<Utc>> = BTreeMap::new();
    for e in evs {
        let Some(u) = e.user.as_deref() else { continue };
        if spec.start_event.is_some_and(|s| s != e.name) {
            continue;
        }
        let t = first.entry(u).or_insert(e.ts);
        *t = (*t).min(e.ts);
    }
    let today = local_day(now);
    let mut cohort_of: BTreeMap<&str, NaiveDate> = BTreeMap::new();
    let mut cohorts: BTreeMap<NaiveDate, Cohort> = BTreeMap::new();
    for (u, t0) in first {
        let d = local_day(t0);
        if d < spec.start || d > spec.end {
            continue;
        }
        let c = spec.unit.period_of(d);
        cohort_of.insert(u, c);
        let co = cohorts.entry(c).or_insert_with(|| Cohort {
            date: c,
            members: BTreeSet::new(),
            active: vec![BTreeSet::new(); spec.periods as usize + 1],
            shown: (0..=spec.periods).filter(|k| spec.unit.nth(c, *k) <= today).count(),
        });
        co.members.insert(u.to_owned());
    }
    for e in evs {
        let Some(u) = e.user.as_deref() else { continue };
        let Some(c) = cohort_of.get(u) else { continue };
        if spec.return_event.is_some_and(|r| r != e.name) {
            continue;
        }
        let k = spec.unit.index(*c, spec.unit.period_of(local_day(e.ts)));
        if (0..=spec.periods as i64).contains(&k) {
            cohorts.get_mut(c).unwrap().active[k as usize].insert(u.to_owned());
        }
    }
    cohorts.into_values().collect()
}

/// A share rounded to 4 decimals.
fn share(n: usize, of: usize) -> f64 {
    (n as f64 / of as f64 * 10_000.0).round() / 10_000.0
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[track_caller]
fn assert_share(got: &Value, want: f64, ctx: &str) {
    let g = got.as_f64().unwrap_or_else(|| panic!("{ctx}: expected {want}, got {got}"));
    assert!((g - want).abs() < 1e-9, "{ctx}: expected {want}, got {g}");
}

/// The answer is the model's, key by key.
#[track_caller]
fn assert_answer(got: &Value, want: &[Cohort], spec: &Spec, ctx: &str) {
    let unit = spec.unit.name();
    assert_eq!(got["group_by"], unit, "{ctx}: {got}");
    assert_eq!(got["periods"], spec.periods, "{ctx}: {got}");
    let list = got["cohorts"].as_array().unwrap_or_else(|| panic!("{ctx}: no cohorts[] in {got}"));
    let got_dates: Vec<String> = list.iter().map(|c| s(&c["cohort_date"])).collect();
    let want_dates: Vec<String> = want.iter().map(|c| c.date.to_string()).collect();
    assert_eq!(got_dates, want_dates, "{ctx}: cohort dates");
    for (g, w) in list.iter().zip(want) {
        let cx = format!("{ctx}, cohort {}", w.date);
        let n = w.members.len();
        assert_eq!(g["users"], json!(n), "{cx}: users; members {:?}", w.members);
        let keys: BTreeSet<String> = (0..w.shown).map(|k| format!("{unit}_{k}")).collect();
        for map in ["retention", "returning", "counts"] {
            let obj = g[map].as_object().unwrap_or_else(|| panic!("{cx}: no {map} object in {g}"));
            let got_keys: BTreeSet<String> = obj.keys().cloned().collect();
            assert_eq!(got_keys, keys, "{cx}: keys of {map}");
        }
        for k in 0..w.shown {
            let key = format!("{unit}_{k}");
            let active = &w.active[k];
            let returning = w.returning(k);
            assert_eq!(g["counts"][&key], json!(active.len()), "{cx}: counts.{key}; active: {active:?}");
            assert_share(&g["retention"][&key], share(active.len(), n), &format!("{cx}: retention.{key}"));
            assert_share(
                &g["returning"][&key],
                share(returning.len(), n),
                &format!("{cx}: returning.{key}; returning: {returning:?}"),
            );
        }
    }
}

/// Asks, and checks the answer against the model over `evs`. Returns the answer.
async fn check(app: &TestApp, tok: &str, evs: &[Ev], spec: &Spec, ctx: &str) -> Value {
    let got = post_ok(app, tok, &spec.body()).await;
    let want = model(evs, spec, Utc::now());
    assert_answer(&got, &want, spec, ctx);
    got
}

/// Guards the random data against being too tame to test anything: many members, users
/// acquired before the range who are active in it, partial retention after period 0, and
/// members with a gap (active in a period, not in the next, again later).
#[track_caller]
fn assert_rich(evs: &[Ev], spec: &Spec, want: &[Cohort]) {
    let members: usize = want.iter().map(|c| c.members.len()).sum();
    assert!(members >= 100, "only {members} members");
    assert!(want.len() >= 2, "only {} cohorts", want.len());
    let all: BTreeSet<&String> = want.iter().flat_map(|c| c.members.iter()).collect();
    let start = spec.start.and_hms_opt(0, 0, 0).unwrap().and_utc() + Duration::days(1);
    let outsiders: BTreeSet<&String> =
        evs.iter().filter(|e| e.ts >= start).filter_map(|e| e.user.as_ref()).filter(|u| !all.contains(u)).collect();
    assert!(outsiders.len() >= 10, "only {} users active in the range outside every cohort", outsiders.len());
    let partial =
        want.iter().any(|c| (1..c.shown).any(|k| !c.active[k].is_empty() && c.active[k].len() < c.members.len()));
    assert!(partial, "no partial retention");
    let gaps = want
        .iter()
        .flat_map(|c| c.members.iter().map(move |m| (c, m)))
        .filter(|(c, m)| {
            (1..c.shown.saturating_sub(1)).any(|k| !c.active[k].contains(*m) && c.returning(k).contains(*m))
        })
        .count();
    // Months are few: a gap needs three of them.
    let least = if spec.unit == Unit::Month { 1 } else { 5 };
    assert!(gaps >= least, "only {gaps} members with a gap");
}

// ---------------------------------------------------------------------------------------
// Seed 004's request
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn seed_004_request_as_written() {
    let app = TestApp::spawn().await;
    // Acquired from 2023-12-18 to 2024-02-04; active until 2024-02-25, within eight weeks
    // of every cohort.
    let mut evs = population(4, "user", 300, at("2023-12-18T00:00:00Z"), 49, at("2024-02-26T00:00:00Z"));
    evs.extend(visits("edge-jan1", &["2024-01-01T00:00:00Z", "2024-01-08T00:00:00Z"]));
    evs.extend(visits("edge-dec31", &["2023-12-31T23:59:59Z", "2024-01-02T10:00:00Z", "2024-01-09T10:00:00Z"]));
    evs.extend(visits("edge-jan31", &["2024-01-31T23:59:59Z", "2024-02-07T10:00:00Z"]));
    evs.extend(visits("edge-feb1", &["2024-02-01T00:00:00Z", "2024-02-02T10:00:00Z"]));
    let tok = seeded(&app, "acme", &evs).await;

    let body = json!({
      "cohort_type": "acquisition",
      "group_by": "week",
      "metric": "retention",
      "date_range": {
        "start": "2024-01-01",
        "end": "2024-01-31"
      }
    });
    let got = post_ok(&app, &tok, &body).await;
    let spec = Spec::new(Unit::Week, "2024-01-01", "2024-01-31", 8);
    let want = model(&evs, &spec, Utc::now());
    assert_answer(&got, &want, &spec, "seed 004");

    // The shape, as the seed shows it.
    let cohorts = got["cohorts"].as_array().unwrap();
    let dates: Vec<&str> = cohorts.iter().map(|c| c["cohort_date"].as_str().unwrap()).collect();
    assert_eq!(dates, ["2024-01-01", "2024-01-08", "2024-01-15", "2024-01-22", "2024-01-29"]);
    for c in cohorts {
        assert!(c["users"].as_u64().unwrap() > 0, "{c}");
        assert_eq!(c["retention"]["week_0"], json!(1.0), "week 0 is everybody: {c}");
        assert_eq!(c["returning"]["week_0"], json!(1.0), "{c}");
        assert_eq!(c["counts"]["week_0"], c["users"], "{c}");
        let keys: BTreeSet<&String> = c["retention"].as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 9, "week_0 to week_8 by default: {c}");
        for (k, v) in c["retention"].as_object().unwrap() {
            let x = v.as_f64().unwrap_or_else(|| panic!("{k} is a number: {c}"));
            assert!((0.0..=1.0).contains(&x), "{k}: {c}");
            assert!(((x * 10_000.0).round() - x * 10_000.0).abs() < 1e-6, "{k} has at most 4 decimals: {c}");
        }
    }
    assert!(got["metadata"]["query_time_ms"].is_u64(), "{got}");
    // The edges of January: the first second is in, the last second is in (an end date
    // includes its day), a user first seen a second before or after is in no cohort.
    let members: BTreeSet<&str> = want.iter().flat_map(|c| c.members.iter().map(String::as_str)).collect();
    assert!(members.contains("edge-jan1") && members.contains("edge-jan31"));
    assert!(!members.contains("edge-dec31") && !members.contains("edge-feb1"));
    let last = &want[4];
    assert!(last.members.contains("edge-jan31") && last.active[1].contains("edge-jan31"));
    let total: u64 = cohorts.iter().map(|c| c["users"].as_u64().unwrap()).sum();
    assert_eq!(total as usize, members.len());
    assert_rich(&evs, &spec, &want);
}

// ---------------------------------------------------------------------------------------
// Day, week and month over random users
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn day_cohorts_match_the_model() {
    let app = TestApp::spawn().await;
    let evs = standard(11, 300);
    let tok = seeded(&app, "acme", &evs).await;
    // 104 days (the most) reach past every event of every cohort.
    let spec = Spec::new(Unit::Day, "2025-09-01", "2025-10-12", 104);
    let got = check(&app, &tok, &evs, &spec, "days").await;
    assert!(got["cohorts"].as_array().unwrap().len() >= 35, "a cohort most days");
    assert_rich(&evs, &spec, &model(&evs, &spec, Utc::now()));
}

#[tokio::test]
async fn week_cohorts_match_the_model() {
    let app = TestApp::spawn().await;
    let evs = standard(12, 300);
    let tok = seeded(&app, "acme", &evs).await;
    let spec = Spec::new(Unit::Week, "2025-09-01", "2025-10-12", 12);
    let got = check(&app, &tok, &evs, &spec, "weeks").await;
    assert_eq!(got["cohorts"].as_array().unwrap().len(), 6);
    assert_rich(&evs, &spec, &model(&evs, &spec, Utc::now()));
    // Weeks, acquisition, retention and UTC are the defaults.
    let minimal =
        post_ok(&app, &tok, &json!({"date_range": {"start": "2025-09-01", "end": "2025-10-12"}, "periods": 12})).await;
    assert_eq!(minimal["cohorts"], got["cohorts"]);
}

#[tokio::test]
async fn month_cohorts_match_the_model() {
    let app = TestApp::spawn().await;
    let evs = standard(13, 300);
    let tok = seeded(&app, "acme", &evs).await;
    // No periods: six months by default.
    let spec = Spec::new(Unit::Month, "2025-09-01", "2025-10-12", 6);
    let mut body = spec.body();
    body.as_object_mut().unwrap().remove("periods");
    let got = post_ok(&app, &tok, &body).await;
    let want = model(&evs, &spec, Utc::now());
    assert_answer(&got, &want, &spec, "months");
    let dates: Vec<String> = want.iter().map(|c| c.date.to_string()).collect();
    assert_eq!(dates, ["2025-09-01", "2025-10-01"]);
    assert!(!want[0].active[2].is_empty(), "some of September are back in November");
    assert_rich(&evs, &spec, &want);
}

#[tokio::test]
async fn new_york_cohorts_across_the_end_of_dst_match_the_model() {
    let app = TestApp::spawn().await;
    // Acquired from 2025-09-22 for 63 days, active until 2025-12-14; New York leaves
    // daylight saving time on 2025-11-02, inside the range.
    let evs = population(14, "u", 300, at("2025-09-22T00:00:00Z"), 63, at("2025-12-14T00:00:00Z"));
    let tok = seeded(&app, "acme", &evs).await;
    for (unit, periods) in [(Unit::Day, 104), (Unit::Week, 12), (Unit::Month, 6)] {
        let spec = Spec::new(unit, "2025-10-06", "2025-11-23", periods).tz("America/New_York");
        check(&app, &tok, &evs, &spec, &format!("New York {unit:?}")).await;
        assert_rich(&evs, &spec, &model(&evs, &spec, Utc::now()));
    }
    // The same data in UTC is another answer.
    let spec = Spec::new(Unit::Day, "2025-10-06", "2025-11-23", 104);
    let ny = model(&evs, &spec.clone().tz("America/New_York"), Utc::now());
    let utc = model(&evs, &spec, Utc::now());
    let sizes = |cs: &[Cohort]| cs.iter().map(|c| c.members.len()).collect::<Vec<_>>();
    assert_ne!(sizes(&ny), sizes(&utc), "the time zone moves users between days");
    check(&app, &tok, &evs, &spec, "UTC days").await;
}

// ---------------------------------------------------------------------------------------
// Who counts
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn users_first_seen_outside_the_range_are_in_no_cohort() {
    let app = TestApp::spawn().await;
    let mut evs = Vec::new();
    // First seen in August, active every week of September: in no cohort.
    evs.extend(visits(
        "old",
        &["2025-08-20T10:00:00Z", "2025-09-04T10:00:00Z", "2025-09-10T10:00:00Z", "2025-09-17T10:00:00Z"],
    ));
    // A second before the range (which starts on Wednesday 2025-09-03).
    evs.extend(visits("edge-before", &["2025-09-02T23:59:59Z", "2025-09-03T10:00:00Z", "2025-09-09T10:00:00Z"]));
    evs.extend(visits("edge-start", &["2025-09-03T00:00:00Z"]));
    evs.extend(visits("mid", &["2025-09-05T12:00:00Z", "2025-09-09T12:00:00Z"]));
    // The last second of the end date is in; the next is not.
    evs.extend(visits("edge-end", &["2025-09-30T23:59:59Z", "2025-10-01T08:00:00Z"]));
    evs.extend(visits("after", &["2025-10-01T00:00:00Z", "2025-10-08T00:00:00Z"]));
    let tok = seeded(&app, "acme", &evs).await;
    let spec = Spec::new(Unit::Week, "2025-09-03", "2025-09-30", 3);
    let got = check(&app, &tok, &evs, &spec, "edges").await;
    // By hand: the first cohort is the week of Monday 2025-09-01, before the range starts.
    assert_eq!(
        got["cohorts"],
        json!([
            {"cohort_date": "2025-09-01", "users": 2,
             "retention": {"week_0": 1.0, "week_1": 0.5, "week_2": 0.0, "week_3": 0.0},
             "returning": {"week_0": 1.0, "week_1": 0.5, "week_2": 0.0, "week_3": 0.0},
             "counts": {"week_0": 2, "week_1": 1, "week_2": 0, "week_3": 0}},
            {"cohort_date": "2025-09-29", "users": 1,
             "retention": {"week_0": 1.0, "week_1": 0.0, "week_2": 0.0, "week_3": 0.0},
             "returning": {"week_0": 1.0, "week_1": 0.0, "week_2": 0.0, "week_3": 0.0},
             "counts": {"week_0": 1, "week_1": 0, "week_2": 0, "week_3": 0}},
        ])
    );
    // Nobody at all: an empty list.
    let none = post_ok(&app, &tok, &Spec::new(Unit::Week, "2025-11-03", "2025-11-30", 3).body()).await;
    assert_eq!(none["cohorts"], json!([]), "{none}");
}

#[tokio::test]
async fn a_user_active_twice_in_a_period_counts_once() {
    let app = TestApp::spawn().await;
    let mut evs = visits(
        "a",
        &[
            "2025-09-01T10:00:00Z",
            "2025-09-01T11:00:00Z",
            "2025-09-03T10:00:00Z",
            "2025-09-07T23:59:59Z",
            "2025-09-08T00:00:00Z",
            "2025-09-10T10:00:00Z",
            "2025-09-14T23:00:00Z",
        ],
    );
    evs.extend(visits("b", &["2025-09-02T10:00:00Z", "2025-09-02T10:00:01Z"]));
    evs.push(ev("b", "purchase", "2025-09-02T10:00:02Z"));
    let tok = seeded(&app, "acme", &evs).await;
    let spec = Spec::new(Unit::Week, "2025-09-01", "2025-09-07", 2);
    let got = check(&app, &tok, &evs, &spec, "twice").await;
    assert_eq!(
        got["cohorts"],
        json!([{"cohort_date": "2025-09-01", "users": 2,
                "retention": {"week_0": 1.0, "week_1": 0.5, "week_2": 0.0},
                "returning": {"week_0": 1.0, "week_1": 0.5, "week_2": 0.0},
                "counts": {"week_0": 2, "week_1": 1, "week_2": 0}}])
    );
    // By day: a's two events of September 1 are one active day.
    let spec = Spec::new(Unit::Day, "2025-09-01", "2025-09-07", 14);
    let got = check(&app, &tok, &evs, &spec, "twice by day").await;
    for c in got["cohorts"].as_array().unwrap() {
        assert_eq!(c["counts"]["day_0"], c["users"], "{c}");
        assert_eq!(c["retention"]["day_0"], json!(1.0), "{c}");
    }
    let sept1 = &got["cohorts"][0];
    assert_eq!(sept1["cohort_date"], "2025-09-01");
    assert_eq!(sept1["counts"]["day_6"], 1, "{sept1}");
    assert_eq!(sept1["counts"]["day_7"], 1, "{sept1}");
    assert_eq!(sept1["counts"]["day_1"], 0, "{sept1}");
}

#[tokio::test]
async fn gaps_separate_recurring_from_returning() {
    let app = TestApp::spawn().await;
    // Wednesdays of the weeks from 2025-09-01.
    let week = |k: i64| (at("2025-09-03T12:00:00Z") + Duration::weeks(k)).to_rfc3339();
    let mut evs = Vec::new();
    for (user, weeks) in [("a", vec![0, 1, 3]), ("b", vec![0, 3]), ("c", vec![0]), ("d", vec![0, 2])] {
        for k in weeks {
            evs.push(ev(user, "page_view", &week(k)));
        }
    }
    let tok = seeded(&app, "acme", &evs).await;
    let spec = Spec::new(Unit::Week, "2025-09-01", "2025-09-07", 4);
    let got = check(&app, &tok, &evs, &spec, "gaps").await;
    // Recurring: who is active in the week. Returning: who is active then or later.
    assert_eq!(
        got["cohorts"],
        json!([{"cohort_date": "2025-09-01", "users": 4,
                "retention": {"week_0": 1.0, "week_1": 0.25, "week_2": 0.25, "week_3": 0.5, "week_4": 0.0},
                "returning": {"week_0": 1.0, "week_1": 0.75, "week_2": 0.75, "week_3": 0.5, "week_4": 0.0},
                "counts": {"week_0": 4, "week_1": 1, "week_2": 1, "week_3": 2, "week_4": 0}}])
    );
    // Three of seven: rounded to four decimals.
    let mut evs2 = Vec::new();
    for i in 0..7 {
        let user = format!("r{i}");
        evs2.push(ev(&user, "page_view", "2025-09-03T12:00:00Z"));
        if i < 3 {
            evs2.push(ev(&user, "page_view", "2025-09-10T12:00:00Z"));
        }
        if i < 2 {
            evs2.push(ev(&user, "page_view", "2025-09-24T12:00:00Z"));
        }
    }
    ingest(&app, "thirds", &evs2).await;
    let got = check(&app, &token("viewer", Some("thirds")), &evs2, &spec, "sevenths").await;
    assert_eq!(got["cohorts"][0]["retention"]["week_1"], json!(0.4286));
    assert_eq!(got["cohorts"][0]["retention"]["week_3"], json!(0.2857));
    assert_eq!(got["cohorts"][0]["returning"]["week_2"], json!(0.2857));
}

#[tokio::test]
async fn start_and_return_events_by_hand() {
    let app = TestApp::spawn().await;
    let evs = vec![
        // First seen in August, but signed up in the range: acquired at the signup.
        ev("u1", "page_view", "2025-08-20T10:00:00Z"),
        ev("u1", "signup", "2025-09-02T10:00:00Z"),
        ev("u1", "purchase", "2025-09-10T10:00:00Z"),
        ev("u1", "purchase", "2025-09-24T10:00:00Z"),
        ev("u2", "signup", "2025-09-03T10:00:00Z"),
        ev("u2", "purchase", "2025-09-03T11:00:00Z"),
        ev("u2", "page_view", "2025-09-09T10:00:00Z"),
        // Purchases, never a signup: in no cohort.
        ev("u3", "purchase", "2025-09-04T10:00:00Z"),
        ev("u3", "purchase", "2025-09-12T10:00:00Z"),
        // First signed up before the range.
        ev("u4", "signup", "2025-08-25T10:00:00Z"),
        ev("u4", "signup", "2025-09-05T10:00:00Z"),
        ev("u4", "purchase", "2025-09-12T10:00:00Z"),
        // A purchase before the signup in the same week counts in week 0; one the week
        // before does not count at all.
        ev("u5", "purchase", "2025-09-01T10:00:00Z"),
        ev("u5", "purchase", "2025-09-08T10:00:00Z"),
        ev("u5", "signup", "2025-09-09T10:00:00Z"),
        // Signed up, never bought.
        ev("u6", "signup", "2025-09-10T10:00:00Z"),
        ev("u6", "page_view", "2025-09-17T10:00:00Z"),
    ];
    let tok = seeded(&app, "acme", &evs).await;
    let spec = Spec::new(Unit::Week, "2025-09-01", "2025-09-30", 4).events(Some("signup"), Some("purchase"));
    let got = check(&app, &tok, &evs, &spec, "signup -> purchase").await;
    assert_eq!(
        got["cohorts"],
        json!([
            {"cohort_date": "2025-09-01", "users": 2,
             "retention": {"week_0": 0.5, "week_1": 0.5, "week_2": 0.0, "week_3": 0.5, "week_4": 0.0},
             "returning": {"week_0": 1.0, "week_1": 0.5, "week_2": 0.5, "week_3": 0.5, "week_4": 0.0},
             "counts": {"week_0": 1, "week_1": 1, "week_2": 0, "week_3": 1, "week_4": 0}},
            {"cohort_date": "2025-09-08", "users": 2,
             "retention": {"week_0": 0.5, "week_1": 0.0, "week_2": 0.0, "week_3": 0.0, "week_4": 0.0},
             "returning": {"week_0": 0.5, "week_1": 0.0, "week_2": 0.0, "week_3": 0.0, "week_4": 0.0},
             "counts": {"week_0": 1, "week_1": 0, "week_2": 0, "week_3": 0, "week_4": 0}},
        ])
    );
    // Only a start event: any event is a return.
    let spec = Spec::new(Unit::Week, "2025-09-01", "2025-09-30", 4).events(Some("signup"), None);
    let got = check(&app, &tok, &evs, &spec, "signup -> anything").await;
    assert_eq!(got["cohorts"][0]["retention"]["week_1"], json!(1.0), "u1 bought, u2 looked: {got}");
    assert_eq!(got["cohorts"][1]["retention"]["week_1"], json!(0.5), "u6 looked: {got}");
    // Only a return event: acquired at the first event of any name.
    let spec = Spec::new(Unit::Week, "2025-09-01", "2025-09-30", 4).events(None, Some("purchase"));
    let got = check(&app, &tok, &evs, &spec, "anything -> purchase").await;
    let dates: Vec<String> = got["cohorts"].as_array().unwrap().iter().map(|c| s(&c["cohort_date"])).collect();
    assert_eq!(dates, ["2025-09-01", "2025-09-08"], "u3 and u5 join u2 in the first cohort, u6 is the second");
    assert_eq!(got["cohorts"][0]["users"], 3, "u2, u3 and u5: {got}");
}

#[tokio::test]
async fn start_and_return_events_match_the_model() {
    let app = TestApp::spawn().await;
    let evs = standard(15, 300);
    let tok = seeded(&app, "acme", &evs).await;
    for (start, ret) in [(Some("signup"), Some("purchase")), (Some("signup"), None), (None, Some("purchase"))] {
        for (unit, periods) in [(Unit::Week, 12), (Unit::Day, 104)] {
            let spec = Spec::new(unit, "2025-09-01", "2025-10-12", periods).events(start, ret);
            check(&app, &tok, &evs, &spec, &format!("{start:?} -> {ret:?} by {unit:?}")).await;
        }
    }
    // The data has what the definition tells apart: users who bought but never signed up,
    // and users whose first event precedes their signup by a week or more.
    let signed: BTreeSet<&String> = evs.iter().filter(|e| e.name == "signup").filter_map(|e| e.user.as_ref()).collect();
    let buyers: BTreeSet<&String> =
        evs.iter().filter(|e| e.name == "purchase").filter_map(|e| e.user.as_ref()).collect();
    assert!(buyers.difference(&signed).count() >= 5);
    let spec = Spec::new(Unit::Week, "2025-09-01", "2025-10-12", 12);
    let by_signup = model(&evs, &spec.clone().events(Some("signup"), None), Utc::now());
    let by_first = model(&evs, &spec, Utc::now());
    let cohort_of = |cs: &[Cohort]| -> BTreeMap<String, NaiveDate> {
        cs.iter().flat_map(|c| c.members.iter().map(move |m| (m.clone(), c.date))).collect()
    };
    let (a, b) = (cohort_of(&by_signup), cohort_of(&by_first));
    assert!(
        a.iter().filter(|(u, d)| b.get(*u).is_some_and(|e| e != *d)).count() >= 3,
        "signups later than first events"
    );
}

/// A return event before the range starts, in the cohort's own period (the range starts on
/// a Wednesday, the week on Monday), is an event in period 0: the answer for that week
/// must not depend on which day of it the range starts.
#[tokio::test]
async fn a_return_event_before_the_range_in_the_cohort_week_counts() {
    let app = TestApp::spawn().await;
    let evs = vec![
        ev("u1", "purchase", "2025-09-01T10:00:00Z"),
        ev("u1", "signup", "2025-09-03T10:00:00Z"),
        ev("u2", "signup", "2025-09-04T10:00:00Z"),
    ];
    let tok = seeded(&app, "acme", &evs).await;
    let from_monday = Spec::new(Unit::Week, "2025-09-01", "2025-09-07", 2).events(Some("signup"), Some("purchase"));
    let a = check(&app, &tok, &evs, &from_monday, "from Monday").await;
    assert_eq!(a["cohorts"][0]["retention"]["week_0"], json!(0.5), "{a}");
    let from_wednesday = Spec { start: date("2025-09-03"), ..from_monday };
    let b = check(&app, &tok, &evs, &from_wednesday, "from Wednesday").await;
    assert_eq!(b["cohorts"], a["cohorts"]);
}

#[tokio::test]
async fn the_time_zone_moves_events_across_days_weeks_and_months() {
    let app = TestApp::spawn().await;
    // New York is UTC-5 in late November 2025.
    let evs = vec![
        // Sunday 2025-11-16 22:00 in New York, Monday 03:00 in UTC; then Thursday.
        ev("x", "page_view", "2025-11-17T03:00:00Z"),
        ev("x", "page_view", "2025-11-20T12:00:00Z"),
        // Sunday 2025-11-30 21:00 in New York (in the range), Monday 2025-12-01 in UTC (not);
        // then Sunday 2025-12-07 22:00 in New York, Monday 2025-12-08 in UTC.
        ev("y", "page_view", "2025-12-01T02:00:00Z"),
        ev("y", "page_view", "2025-12-08T03:00:00Z"),
        // Sunday 2025-11-09 22:00 in New York (before the range), Monday in UTC (in it).
        ev("z", "page_view", "2025-11-10T03:00:00Z"),
        ev("z", "page_view", "2025-11-12T12:00:00Z"),
    ];
    let tok = seeded(&app, "acme", &evs).await;
    let range = ("2025-11-10", "2025-11-30");
    let ny = |unit, periods| Spec::new(unit, range.0, range.1, periods).tz("America/New_York");
    let utc = |unit, periods| Spec::new(unit, range.0, range.1, periods);

    let got = check(&app, &tok, &evs, &ny(Unit::Week, 2), "New York weeks").await;
    assert_eq!(
        got["cohorts"],
        json!([
            {"cohort_date": "2025-11-10", "users": 1,
             "retention": {"week_0": 1.0, "week_1": 1.0, "week_2": 0.0},
             "returning": {"week_0": 1.0, "week_1": 1.0, "week_2": 0.0},
             "counts": {"week_0": 1, "week_1": 1, "week_2": 0}},
            {"cohort_date": "2025-11-24", "users": 1,
             "retention": {"week_0": 1.0, "week_1": 1.0, "week_2": 0.0},
             "returning": {"week_0": 1.0, "week_1": 1.0, "week_2": 0.0},
             "counts": {"week_0": 1, "week_1": 1, "week_2": 0}},
        ])
    );
    let got = check(&app, &tok, &evs, &utc(Unit::Week, 2), "UTC weeks").await;
    assert_eq!(
        got["cohorts"],
        json!([
            {"cohort_date": "2025-11-10", "users": 1,
             "retention": {"week_0": 1.0, "week_1": 0.0, "week_2": 0.0},
             "returning": {"week_0": 1.0, "week_1": 0.0, "week_2": 0.0},
             "counts": {"week_0": 1, "week_1": 0, "week_2": 0}},
            {"cohort_date": "2025-11-17", "users": 1,
             "retention": {"week_0": 1.0, "week_1": 0.0, "week_2": 0.0},
             "returning": {"week_0": 1.0, "week_1": 0.0, "week_2": 0.0},
             "counts": {"week_0": 1, "week_1": 0, "week_2": 0}},
        ])
    );
    let got = check(&app, &tok, &evs, &ny(Unit::Day, 7), "New York days").await;
    let dates: Vec<String> = got["cohorts"].as_array().unwrap().iter().map(|c| s(&c["cohort_date"])).collect();
    assert_eq!(dates, ["2025-11-16", "2025-11-30"]);
    assert_eq!(got["cohorts"][0]["counts"]["day_4"], 1, "{got}");
    assert_eq!(got["cohorts"][1]["counts"]["day_7"], 1, "{got}");
    let got = check(&app, &tok, &evs, &utc(Unit::Day, 7), "UTC days").await;
    let dates: Vec<String> = got["cohorts"].as_array().unwrap().iter().map(|c| s(&c["cohort_date"])).collect();
    assert_eq!(dates, ["2025-11-10", "2025-11-17"]);
    assert_eq!(got["cohorts"][1]["counts"]["day_3"], 1, "{got}");
    let got = check(&app, &tok, &evs, &ny(Unit::Month, 2), "New York months").await;
    assert_eq!(
        got["cohorts"],
        json!([{"cohort_date": "2025-11-01", "users": 2,
                "retention": {"month_0": 1.0, "month_1": 0.5, "month_2": 0.0},
                "returning": {"month_0": 1.0, "month_1": 0.5, "month_2": 0.0},
                "counts": {"month_0": 2, "month_1": 1, "month_2": 0}}])
    );
    let got = check(&app, &tok, &evs, &utc(Unit::Month, 2), "UTC months").await;
    assert_eq!(got["cohorts"][0]["users"], 2, "x and z: {got}");
    assert_eq!(got["cohorts"][0]["counts"]["month_1"], 0, "{got}");
}

// ---------------------------------------------------------------------------------------
// Periods
// ---------------------------------------------------------------------------------------

/// Two weekly cohorts with activity past two periods.
fn beyond_periods() -> Vec<Ev> {
    let mut evs = Vec::new();
    let wed = |k: i64| (at("2025-09-03T12:00:00Z") + Duration::weeks(k)).to_rfc3339();
    for (user, weeks) in [("p", vec![0, 1, 4]), ("q", vec![0, 3]), ("r", vec![0, 2]), ("s", vec![1, 4])] {
        for k in weeks {
            evs.push(ev(user, "page_view", &wed(k)));
        }
    }
    evs
}

#[tokio::test]
async fn periods_limit_the_answer() {
    let app = TestApp::spawn().await;
    let evs = beyond_periods();
    let tok = seeded(&app, "acme", &evs).await;
    let spec = Spec::new(Unit::Week, "2025-09-01", "2025-09-14", 2);
    let got = post_ok(&app, &tok, &spec.body()).await;
    assert_eq!(got["periods"], 2);
    let first = &got["cohorts"][0];
    assert_eq!(first["cohort_date"], "2025-09-01");
    assert_eq!(first["users"], 3);
    assert_eq!(first["retention"], json!({"week_0": 1.0, "week_1": 0.3333, "week_2": 0.3333}), "{got}");
    assert_eq!(first["counts"], json!({"week_0": 3, "week_1": 1, "week_2": 1}), "{got}");
    let second = &got["cohorts"][1];
    assert_eq!(second["cohort_date"], "2025-09-08");
    assert_eq!(second["retention"], json!({"week_0": 1.0, "week_1": 0.0, "week_2": 0.0}), "{got}");
    for c in got["cohorts"].as_array().unwrap() {
        let keys: Vec<&String> = c["returning"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["week_0", "week_1", "week_2"], "{c}");
    }
    // Period 0 only.
    let got = post_ok(&app, &tok, &Spec { periods: 0, ..spec.clone() }.body()).await;
    for c in got["cohorts"].as_array().unwrap() {
        assert_eq!(c["retention"], json!({"week_0": 1.0}), "{c}");
        assert_eq!(c["returning"], json!({"week_0": 1.0}), "{c}");
        assert_eq!(c["counts"], json!({"week_0": c["users"]}), "{c}");
    }
    // Enough periods to see everything: the model agrees on every figure.
    check(&app, &tok, &evs, &Spec { periods: 6, ..spec }, "six weeks").await;
}

/// Returning in period k is active in k or any later period up to `periods`: activity
/// after the last reported period counts for none of them (else the figure would depend on
/// how far past the range the activity happens to be read).
#[tokio::test]
async fn returning_stops_at_the_periods_limit() {
    let app = TestApp::spawn().await;
    let evs = beyond_periods();
    let tok = seeded(&app, "acme", &evs).await;
    let spec = Spec::new(Unit::Week, "2025-09-01", "2025-09-14", 2);
    let got = check(&app, &tok, &evs, &spec, "two weeks").await;
    assert_eq!(got["cohorts"][0]["returning"], json!({"week_0": 1.0, "week_1": 0.6667, "week_2": 0.3333}), "{got}");
    assert_eq!(got["cohorts"][1]["returning"], json!({"week_0": 1.0, "week_1": 0.0, "week_2": 0.0}), "{got}");
    // And over random users with the default periods.
    let evs = standard(16, 300);
    let tok = seeded(&app, "random", &evs).await;
    for (unit, periods) in [(Unit::Day, 14), (Unit::Week, 8)] {
        let spec = Spec::new(unit, "2025-09-01", "2025-10-12", periods);
        check(&app, &tok, &evs, &spec, &format!("default {unit:?}")).await;
    }
}

#[tokio::test]
async fn default_periods_per_unit() {
    let app = TestApp::spawn().await;
    let evs = visits("solo", &["2025-09-01T10:00:00Z"]);
    let tok = seeded(&app, "acme", &evs).await;
    for (unit, n) in [("day", 14), ("week", 8), ("month", 6)] {
        let got =
            post_ok(&app, &tok, &json!({"group_by": unit, "date_range": {"start": "2025-09-01", "end": "2025-09-01"}}))
                .await;
        assert_eq!(got["periods"], n, "{got}");
        assert_eq!(got["group_by"], unit, "{got}");
        let c = &got["cohorts"][0];
        assert_eq!(c["users"], 1, "{got}");
        for map in ["retention", "returning", "counts"] {
            let keys: BTreeSet<String> = c[map].as_object().unwrap().keys().cloned().collect();
            let want: BTreeSet<String> = (0..=n).map(|k| format!("{unit}_{k}")).collect();
            assert_eq!(keys, want, "{unit} {map}");
        }
        assert_eq!(c["retention"][format!("{unit}_1")], json!(0.0));
    }
    // The most periods.
    let got = post_ok(
        &app,
        &tok,
        &json!({"group_by": "week", "periods": 104, "date_range": {"start": "2025-09-01", "end": "2025-09-01"}}),
    )
    .await;
    let shown = got["cohorts"][0]["retention"].as_object().unwrap().len();
    let begun = (0..=104).filter(|k| Unit::Week.nth(date("2025-09-01"), *k) <= Utc::now().date_naive()).count();
    assert_eq!(shown, begun, "{got}");
}

#[tokio::test]
async fn periods_that_have_not_begun_are_left_out() {
    let app = TestApp::spawn().await;
    let now = Utc::now();
    let secs = |t: DateTime<Utc>| DateTime::from_timestamp(t.timestamp(), 0).unwrap();
    let evs = vec![
        Ev { user: Some("new".into()), name: "page_view", ts: secs(now - Duration::minutes(90)) },
        Ev { user: Some("older".into()), name: "page_view", ts: secs(now - Duration::days(10)) },
        Ev { user: Some("older".into()), name: "page_view", ts: secs(now - Duration::minutes(30)) },
        Ev { user: Some("oldest".into()), name: "page_view", ts: secs(now - Duration::days(40)) },
        Ev { user: Some("oldest".into()), name: "page_view", ts: secs(now - Duration::days(30)) },
    ];
    let tok = seeded(&app, "acme", &evs).await;
    let today = now.date_naive();
    for (unit, periods) in [(Unit::Day, 14), (Unit::Week, 8), (Unit::Month, 6)] {
        let spec = Spec::new(unit, &(today - Duration::days(45)).to_string(), &today.to_string(), periods);
        let got = post_ok(&app, &tok, &spec.body()).await;
        let want = model(&evs, &spec, Utc::now());
        assert_answer(&got, &want, &spec, &format!("recent {unit:?}"));
        let last = want.last().unwrap();
        assert!(last.shown <= periods as usize, "{unit:?}: the newest cohort lacks periods not begun");
    }
    // By day: the cohort of today (or yesterday, just after midnight) has one or two days.
    let spec = Spec::new(Unit::Day, &(today - Duration::days(2)).to_string(), &today.to_string(), 14);
    let got = post_ok(&app, &tok, &spec.body()).await;
    let newest = got["cohorts"].as_array().unwrap().last().unwrap().clone();
    assert!(newest["retention"].as_object().unwrap().len() <= 2, "{got}");
}

// ---------------------------------------------------------------------------------------
// Tenants and roles
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn another_tenants_events_never_count() {
    let app = TestApp::spawn().await;
    let evs = standard(17, 200);
    ingest(&app, "acme", &evs).await;
    // The same user ids, in another tenant: first seen long before, active all along.
    let other = noise(&evs, 99);
    ingest(&app, "globex", &other).await;
    let spec = Spec::new(Unit::Week, "2025-09-01", "2025-10-12", 12);
    let mine = check(&app, &token("viewer", Some("acme")), &evs, &spec, "acme").await;
    let theirs = check(&app, &token("viewer", Some("globex")), &other, &spec, "globex").await;
    assert_ne!(mine["cohorts"], theirs["cohorts"]);
    // Globex's copies of acme's users are all acquired before the range.
    for c in theirs["cohorts"].as_array().unwrap() {
        assert!(c["users"].as_u64().unwrap() <= 50, "{c}");
    }
    // A superuser of the default tenant sees neither without X-Tenant-ID.
    let none = post_ok(&app, &superuser(), &spec.body()).await;
    assert_eq!(none["cohorts"], json!([]), "{none}");
    // With it, acme's.
    let (st, as_acme, _) =
        send(app.post(COHORTS).bearer_auth(superuser()).header("X-Tenant-ID", "acme").json(&spec.body())).await;
    assert_eq!(st, 200, "{as_acme}");
    assert_eq!(as_acme["cohorts"], mine["cohorts"]);
}

#[tokio::test]
async fn roles_decide_who_reads_cohorts() {
    let app = TestApp::spawn().await;
    let evs = standard(18, 120);
    ingest(&app, "acme", &evs).await;
    let spec = Spec::new(Unit::Week, "2025-09-01", "2025-10-12", 12);
    let body = spec.body();
    // No credential, or a bad one.
    for got in [
        send(app.post(COHORTS).json(&body)).await,
        send(app.post(COHORTS).bearer_auth("not-a-token").json(&body)).await,
        send(app.post(COHORTS).bearer_auth(format!("sl_{}", "0".repeat(40))).json(&body)).await,
    ] {
        let p = assert_problem(&got, 401);
        assert!(p["type"].as_str().unwrap().ends_with("/unauthorized"), "{p}");
    }
    // The ingest role sends events, never reads them.
    let p = assert_problem(&send(app.post(COHORTS).bearer_auth(token("ingest", Some("acme"))).json(&body)).await, 403);
    assert!(p["type"].as_str().unwrap().ends_with("/forbidden"), "{p}");
    // Viewers, analysts and admins read.
    for role in ["viewer", "analyst", "admin"] {
        check(&app, &token(role, Some("acme")), &evs, &spec, role).await;
    }
    // Another tenant's credential naming acme is refused.
    let p = assert_problem(
        &send(app.post(COHORTS).bearer_auth(token("admin", Some("globex"))).header("X-Tenant-ID", "acme").json(&body))
            .await,
        403,
    );
    assert!(p["type"].as_str().unwrap().ends_with("/forbidden"), "{p}");
}

// ---------------------------------------------------------------------------------------
// Bad inputs
// ---------------------------------------------------------------------------------------

/// Asserts a validation problem whose `errors` hold exactly `message` on `field`, and whose
/// detail holds it.
#[track_caller]
fn assert_field_problem(got: &(u16, Value, String), status: u16, field: &str, message: &str, ctx: &str) {
    let p = assert_problem(got, status);
    let errs = p["errors"].as_array().unwrap_or_else(|| panic!("{ctx}: no errors[] in {p}"));
    assert!(
        errs.iter().any(|e| e["field"] == field && e["message"].as_str().is_some_and(|m| m.contains(message))),
        "{ctx}: no error '{message}' on {field}: {p}"
    );
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.contains(message), "{ctx}: detail '{detail}' lacks '{message}'");
    let slug = if status == 422 { "/unprocessable" } else { "/validation" };
    assert!(p["type"].as_str().unwrap().ends_with(slug), "{ctx}: {p}");
}

fn with(field: &str, value: Value) -> Value {
    let mut b = json!({"cohort_type": "acquisition", "group_by": "week", "metric": "retention",
                       "date_range": {"start": "2025-09-01", "end": "2025-09-30"}});
    b[field] = value;
    b
}

#[tokio::test]
async fn bad_bodies_get_precise_problems() {
    let app = TestApp::spawn().await;
    let tok = token("analyst", Some("acme"));
    let range = |start: &str, end: &str| json!({"start": start, "end": end});
    let periods = "periods is a whole number from 0 to 104";
    let cases: Vec<(Value, &str, &str)> = vec![
        (with("cohort_type", json!("behavioral")), "cohort_type", "unknown cohort_type 'behavioral'; use acquisition"),
        (with("group_by", json!("hour")), "group_by", "unknown group_by 'hour'; use day, week or month"),
        (with("group_by", json!("fortnight")), "group_by", "unknown group_by 'fortnight'; use day, week or month"),
        (with("periods", json!(105)), "periods", periods),
        (with("periods", json!(-1)), "periods", periods),
        (with("periods", json!(2.5)), "periods", periods),
        (with("periods", json!("8")), "periods", periods),
        (
            with("date_range", range("01/09/2025", "2025-09-30")),
            "date_range.start",
            "'01/09/2025' is not a date (YYYY-MM-DD)",
        ),
        (with("date_range", range("2025-09-01", "2025-13-01")), "date_range.end", "'2025-13-01' is not a date"),
        (with("date_range", json!({"start": 20250901})), "date_range.start", "a date bound is a string"),
        (with("date_range", json!("fortnight")), "date_range", "unknown date range 'fortnight'"),
        (
            with("date_range", json!(7)),
            "date_range",
            "a date range is a string such as \"-7d\" or an object {start, end}",
        ),
        (with("date_range", range("2025-09-30", "2025-09-01")), "date_range", "the date range ends before it starts"),
        // An end date is its whole day: ending the day before the start is empty.
        (
            with("date_range", range("2025-09-01", "2025-08-31")),
            "date_range",
            "the date range is empty: its end is its start",
        ),
        (with("date_range", range("2000-01-01", "2025-09-01")), "date_range", "a date range spans at most 3660 days"),
        (with("timezone", json!("Mars/Olympus")), "timezone", "unknown time zone 'Mars/Olympus'; use an IANA name"),
        (with("start_event", json!(5)), "start_event", "start_event is an event name"),
        (with("start_event", json!({"event": "signup"})), "start_event", "start_event is an event name"),
        (with("start_event", json!("")), "start_event", "start_event is an event name"),
        (with("return_event", json!("x".repeat(201))), "return_event", "return_event is an event name"),
        (with("return_event", json!(["purchase"])), "return_event", "return_event is an event name"),
        (json!([]), "body", "a cohort query is a JSON object"),
        (json!("week"), "body", "a cohort query is a JSON object"),
    ];
    for (body, field, message) in cases {
        let got = send(app.post(COHORTS).bearer_auth(&tok).json(&body)).await;
        assert_field_problem(&got, 400, field, message, &body.to_string());
    }
    // Every problem of a body at once, each on its field, the detail listing them all.
    let got = send(app.post(COHORTS).bearer_auth(&tok).json(&json!({
        "cohort_type": "behavioral", "group_by": "hour", "periods": 500, "timezone": "Mars/X",
        "start_event": 1, "return_event": false, "date_range": "fortnight"
    })))
    .await;
    let p = assert_problem(&got, 400);
    let fields: BTreeSet<String> = p["errors"].as_array().unwrap().iter().map(|e| s(&e["field"])).collect();
    let want: BTreeSet<String> =
        ["cohort_type", "group_by", "periods", "timezone", "start_event", "return_event", "date_range"]
            .iter()
            .map(|f| f.to_string())
            .collect();
    assert_eq!(fields, want, "{p}");
    let detail = p["detail"].as_str().unwrap();
    for e in p["errors"].as_array().unwrap() {
        assert!(detail.contains(e["message"].as_str().unwrap()), "{p}");
    }

    // Bodies that are not JSON documents.
    let p = assert_problem(
        &send(app.post(COHORTS).bearer_auth(&tok).header("content-type", "application/json").body("")).await,
        400,
    );
    assert_eq!(p["detail"], "the request body is empty; expected a JSON document", "{p}");
    assert!(p["type"].as_str().unwrap().ends_with("/malformed_body"), "{p}");
    let p = assert_problem(
        &send(app.post(COHORTS).bearer_auth(&tok).header("content-type", "application/json").body("{\"group_by\":"))
            .await,
        400,
    );
    assert!(p["detail"].as_str().unwrap().starts_with("the body is not valid JSON"), "{p}");
    let p = assert_problem(
        &send(app.post(COHORTS).bearer_auth(&tok).header("content-type", "text/plain").body("{}")).await,
        415,
    );
    assert_eq!(p["detail"], "expected Content-Type: application/json, got Content-Type 'text/plain'", "{p}");
    let p = assert_problem(&send(app.post(COHORTS).bearer_auth(&tok).body("{}")).await, 415);
    assert_eq!(p["detail"], "expected Content-Type: application/json, got no Content-Type", "{p}");
    assert!(p["type"].as_str().unwrap().ends_with("/unsupported_media_type"), "{p}");
    // Only POST.
    let (st, _, _) = send(app.get(COHORTS).bearer_auth(&tok)).await;
    assert_eq!(st, 405);
}

/// `metric` is a choice of one, like `cohort_type`: an unknown one is the same 400, not
/// the 422 of an unresolved metric name in `/query`.
#[tokio::test]
async fn an_unknown_metric_is_a_validation_error() {
    let app = TestApp::spawn().await;
    let tok = token("analyst", Some("acme"));
    let got = send(app.post(COHORTS).bearer_auth(&tok).json(&with("metric", json!("revenue")))).await;
    assert_field_problem(
        &got,
        400,
        "metric",
        "cohorts compute retention, not 'revenue'; use metric retention",
        "metric",
    );
    // With another bad field, the status stays that of a validation error.
    let mut body = with("metric", json!("revenue"));
    body["cohort_type"] = json!("behavioral");
    let got = send(app.post(COHORTS).bearer_auth(&tok).json(&body)).await;
    assert_field_problem(&got, 400, "cohort_type", "unknown cohort_type 'behavioral'", "both");
}

/// A number of periods beyond u32 is out of range, not read modulo 2^32.
#[tokio::test]
async fn periods_past_u32_are_refused() {
    let app = TestApp::spawn().await;
    let tok = token("analyst", Some("acme"));
    for n in [4_294_967_297u64, 4_294_967_296, u64::MAX] {
        let got = send(app.post(COHORTS).bearer_auth(&tok).json(&with("periods", json!(n)))).await;
        assert_field_problem(&got, 400, "periods", "periods is a whole number from 0 to 104", &n.to_string());
    }
}

/// A choice given as something other than a string is refused, not silently replaced by
/// its default (a weekly answer to `"group_by": 30`, a UTC one to `"timezone": -5`).
#[tokio::test]
async fn choices_that_are_not_strings_are_refused() {
    let app = TestApp::spawn().await;
    let tok = token("analyst", Some("acme"));
    for (field, value) in [
        ("cohort_type", json!(1)),
        ("metric", json!(true)),
        ("group_by", json!(30)),
        ("group_by", json!({"unit": "day"})),
        ("timezone", json!(-5)),
    ] {
        let got = send(app.post(COHORTS).bearer_auth(&tok).json(&with(field, value.clone()))).await;
        let p = assert_problem(&got, 400);
        assert!(
            p["errors"].as_array().is_some_and(|es| es.iter().any(|e| e["field"] == field)),
            "{field} {value}: {p}"
        );
    }
}
