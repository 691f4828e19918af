//! Seed 000's metric records under `/api/v1/metrics`: CRUD, list filters and paging,
//! aggregates with and without `group_by`, time series, the tenant's vocabulary, bad
//! inputs and who may do what. Every answer is checked against a computation in the test
//! over the records the test itself made (from a seeded PRNG).

use crate::helpers::*;
use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, TimeZone, Timelike, Utc,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;

const METRICS: &str = "/api/v1/metrics";
const VOCAB: &str = "/api/v1/settings/metric-vocabulary";

const SEED_SERVICES: [&str; 6] = ["auth", "content", "partners_crm", "projects", "social_media", "notification"];
const SEED_TYPES: [&str; 9] = [
    "donation",
    "partner",
    "project",
    "beneficiary",
    "social_post",
    "notification",
    "engagement",
    "conversion",
    "revenue",
];

const SERVICES: [&str; 4] = ["partners_crm", "projects", "social_media", "auth"];
const TYPES: [&str; 3] = ["donation", "engagement", "revenue"];
const NAMES: [&str; 3] = ["total_donations", "page_views", "signups"];
const COUNTRIES: [Option<&str>; 4] = [Some("USA"), Some("Canada"), Some("UK"), None];

/// xorshift64*: small, seeded, the same on every machine.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// One record as the test made it; `id` is filled in from the POST answer.
#[derive(Clone, Debug)]
struct Rec {
    id: String,
    service: String,
    mtype: String,
    name: String,
    value: f64,
    ts: DateTime<Utc>,
    country: Option<String>,
    n: usize,
}

impl Rec {
    fn new(service: &str, mtype: &str, name: &str, value: f64, ts: DateTime<Utc>) -> Rec {
        Rec {
            id: String::new(),
            service: service.into(),
            mtype: mtype.into(),
            name: name.into(),
            value,
            ts,
            country: None,
            n: 0,
        }
    }

    fn dimensions(&self) -> Value {
        let mut d = json!({"partner_type": if self.n.is_multiple_of(2) { "individual" } else { "organization" }});
        if let Some(c) = &self.country {
            d["country"] = json!(c);
        }
        d
    }

    fn body(&self) -> Value {
        json!({
            "service_name": self.service,
            "metric_type": self.mtype,
            "metric_name": self.name,
            "value": self.value,
            "timestamp": iso(self.ts),
            "dimensions": self.dimensions(),
            "meta": {"n": self.n},
        })
    }

    fn date(&self) -> String {
        self.ts.format("%Y-%m-%d").to_string()
    }
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn at(y: i32, m: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, mi, s).unwrap()
}

/// `n` records between 2024-01-01 and 2024-06-30 (UTC), none in March, so day, week and
/// month series all have empty buckets. Values have cents, some are negative.
fn generate(seed: u64, n: usize) -> Vec<Rec> {
    let mut rng = Rng::new(seed);
    let base = at(2024, 1, 1, 0, 0, 0);
    (0..n)
        .map(|i| {
            // 2024 is a leap year: day 60 is March 1, day 90 is March 31, day 181 is June 30.
            let day = loop {
                let d = rng.below(182);
                if !(60..=90).contains(&d) {
                    break d;
                }
            };
            let ts = base + Duration::days(day as i64) + Duration::seconds(rng.below(86_400) as i64);
            let value = (rng.below(1_100_000) as f64 - 100_000.0) / 100.0;
            let mut r = Rec::new(rng.pick(&SERVICES), rng.pick(&TYPES), rng.pick(&NAMES), value, ts);
            r.country = rng.pick(&COUNTRIES).map(str::to_owned);
            r.n = i;
            r
        })
        .collect()
}

/// POSTs every record (64 at a time, concurrently) and keeps the ids the server gave.
async fn post_all(app: &TestApp, tok: &str, recs: &mut [Rec]) {
    for chunk in recs.chunks_mut(64) {
        let mut tasks = Vec::new();
        for r in chunk.iter() {
            let req = app.post(METRICS).bearer_auth(tok).json(&r.body());
            tasks.push(tokio::spawn(send(req)));
        }
        for (r, t) in chunk.iter_mut().zip(tasks) {
            let (s, b, _) = t.await.unwrap();
            assert_eq!(s, 200, "{b}");
            assert_eq!(b["value"].as_f64(), Some(r.value), "{b}");
            r.id = b["id"].as_str().unwrap().to_owned();
        }
    }
}

async fn get_json(app: &TestApp, tok: &str, path: &str) -> Value {
    let (s, b, _) = send(app.get(path).bearer_auth(tok)).await;
    assert_eq!(s, 200, "GET {path}: {b}");
    b
}

fn ids_of(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The ids of the records `keep` selects, in the list's order: oldest first, then by id.
fn expect_ids(recs: &[Rec], keep: impl Fn(&Rec) -> bool) -> Vec<String> {
    let mut v: Vec<&Rec> = recs.iter().filter(|r| keep(r)).collect();
    v.sort_by(|a, b| a.ts.cmp(&b.ts).then(a.id.cmp(&b.id)));
    v.into_iter().map(|r| r.id.clone()).collect()
}

struct Stats {
    sum: f64,
    avg: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
    count: u64,
}

fn stats<'a>(recs: impl IntoIterator<Item = &'a Rec>) -> Stats {
    let vals: Vec<f64> = recs.into_iter().map(|r| r.value).collect();
    let sum: f64 = vals.iter().sum();
    let count = vals.len() as u64;
    Stats {
        sum,
        avg: (count > 0).then(|| sum / count as f64),
        min: vals.iter().copied().reduce(f64::min),
        max: vals.iter().copied().reduce(f64::max),
        count,
    }
}

fn approx(got: &Value, want: f64, ctx: &str) {
    let g = got.as_f64().unwrap_or_else(|| panic!("{ctx}: {got} is not a number (want {want})"));
    assert!((g - want).abs() <= 1e-6 * want.abs().max(1.0), "{ctx}: got {g}, want {want}");
}

fn assert_stats(got: &Value, want: &Stats, ctx: &str) {
    assert_eq!(got["count"].as_u64(), Some(want.count), "{ctx} count: {got}");
    approx(&got["sum"], want.sum, &format!("{ctx} sum"));
    for (k, w) in [("avg", want.avg), ("min", want.min), ("max", want.max)] {
        match w {
            Some(w) => approx(&got[k], w, &format!("{ctx} {k}")),
            None => assert!(got[k].is_null(), "{ctx} {k}: {got}"),
        }
    }
}

/// Compares `groups` of an aggregate answer, keyed by `labels`, with the test's own groups.
fn assert_groups(got: &Value, labels: &[&str], recs: &[Rec], key: impl Fn(&Rec) -> Vec<Value>, ctx: &str) {
    let mut want: BTreeMap<String, Vec<&Rec>> = BTreeMap::new();
    for r in recs {
        want.entry(Value::Array(key(r)).to_string()).or_default().push(r);
    }
    let rows = got["groups"].as_array().unwrap_or_else(|| panic!("{ctx}: no groups in {got}"));
    let mut seen = BTreeMap::new();
    for row in rows {
        let k = Value::Array(labels.iter().map(|l| row[*l].clone()).collect()).to_string();
        assert!(seen.insert(k.clone(), row).is_none(), "{ctx}: group {k} twice in {got}");
    }
    assert_eq!(seen.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "{ctx}: group keys");
    for (k, rs) in &want {
        assert_stats(seen[k], &stats(rs.iter().copied()), &format!("{ctx} group {k}"));
    }
    let total: u64 = rows.iter().map(|r| r["count"].as_u64().unwrap()).sum();
    assert_eq!(total, recs.len() as u64, "{ctx}: group counts add up to the total");
}

// ---- time buckets, computed independently of the server ----

#[derive(Clone, Copy)]
enum Iv {
    Hour,
    Day,
    Week,
    Month,
}

fn truncate(t: NaiveDateTime, iv: Iv) -> NaiveDateTime {
    let d = t.date();
    match iv {
        Iv::Hour => d.and_hms_opt(t.hour(), 0, 0).unwrap(),
        Iv::Day => d.and_time(NaiveTime::MIN),
        Iv::Week => (d - Duration::days(d.weekday().num_days_from_monday() as i64)).and_time(NaiveTime::MIN),
        Iv::Month => NaiveDate::from_ymd_opt(d.year(), d.month(), 1).unwrap().and_time(NaiveTime::MIN),
    }
}

fn next(t: NaiveDateTime, iv: Iv) -> NaiveDateTime {
    match iv {
        Iv::Hour => t + Duration::hours(1),
        Iv::Day => t + Duration::days(1),
        Iv::Week => t + Duration::days(7),
        Iv::Month => {
            let (y, m) = if t.month() == 12 { (t.year() + 1, 1) } else { (t.year(), t.month() + 1) };
            NaiveDate::from_ymd_opt(y, m, 1).unwrap().and_time(NaiveTime::MIN)
        }
    }
}

fn label(t: NaiveDateTime, iv: Iv) -> String {
    match iv {
        Iv::Hour => t.format("%Y-%m-%dT%H:00:00").to_string(),
        _ => t.format("%Y-%m-%d").to_string(),
    }
}

/// Sums per bucket over [start, end), every bucket present (empty ones 0).
fn series(recs: &[&Rec], iv: Iv, start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let mut b = truncate(start.naive_utc(), iv);
    while b < end.naive_utc() {
        let e = next(b, iv);
        let v: f64 = recs
            .iter()
            .filter(|r| r.ts >= start && r.ts < end && r.ts.naive_utc() >= b && r.ts.naive_utc() < e)
            .map(|r| r.value)
            .sum();
        out.push((label(b, iv), v));
        b = e;
    }
    out
}

/// The series without dates: from the first record's bucket to the last record's.
fn series_all(recs: &[&Rec], iv: Iv) -> Vec<(String, f64)> {
    let lo = recs.iter().map(|r| r.ts).min().unwrap();
    let hi = recs.iter().map(|r| r.ts).max().unwrap();
    series(recs, iv, lo, next(truncate(hi.naive_utc(), iv), iv).and_utc())
}

fn assert_series(got: &Value, want: &[(String, f64)], ctx: &str) {
    let arr = got.as_array().unwrap_or_else(|| panic!("{ctx}: not an array: {got}"));
    let labels: Vec<&str> = arr.iter().map(|p| p["timestamp"].as_str().unwrap_or("?")).collect();
    let want_labels: Vec<&str> = want.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(labels, want_labels, "{ctx}: buckets");
    for (p, (l, v)) in arr.iter().zip(want) {
        assert_eq!(p.as_object().unwrap().len(), 2, "{ctx}: a point is {{timestamp, value}}: {p}");
        approx(&p["value"], *v, &format!("{ctx} at {l}"));
    }
}

// ---- 1. the seed's example, CRUD ----

#[tokio::test]
async fn seed_example_create_get_patch_delete() {
    let app = TestApp::spawn().await;
    let tok = token("admin", Some("acme"));
    // Seed 000's request body, as written.
    let body = json!({
      "service_name": "partners_crm",
      "metric_type": "donation",
      "metric_name": "total_donations",
      "value": 5000.50,
      "timestamp": "2024-12-24T10:00:00Z",
      "dimensions": {
        "partner_type": "individual",
        "country": "USA"
      },
      "meta": {
        "currency": "USD",
        "campaign_id": "winter-2024"
      }
    });
    let before = Utc::now() - Duration::seconds(5);
    let (s, created, ctype) = send(app.post(METRICS).bearer_auth(&tok).json(&body)).await;
    assert_eq!(s, 200, "{created}");
    assert!(ctype.starts_with("application/json"), "{ctype}");
    let id = created["id"].as_str().expect("an id").to_owned();
    let uuid = uuid::Uuid::parse_str(&id).expect("the id is a UUID");
    assert_eq!(uuid.hyphenated().to_string(), id, "canonical hyphenated lower-case UUID");
    assert_eq!(created["service_name"], "partners_crm");
    assert_eq!(created["metric_type"], "donation");
    assert_eq!(created["metric_name"], "total_donations");
    assert_eq!(created["value"].as_f64(), Some(5000.50));
    assert_eq!(created["timestamp"], "2024-12-24T10:00:00Z");
    assert_eq!(created["date"], "2024-12-24");
    assert_eq!(created["dimensions"], body["dimensions"], "dimensions echoed in full");
    assert_eq!(created["meta"], body["meta"], "meta echoed in full");
    let created_at = DateTime::parse_from_rfc3339(created["created_at"].as_str().expect("created_at"))
        .expect("created_at is RFC 3339")
        .with_timezone(&Utc);
    assert!(created_at >= before && created_at <= Utc::now() + Duration::seconds(5), "{created_at}");

    // GET by id: the same record.
    let got = get_json(&app, &tok, &format!("{METRICS}/{id}")).await;
    assert_eq!(got, created);

    // PATCH with the seed's body.
    let (s, patched, _) = send(
        app.request("PATCH", &format!("{METRICS}/{id}"))
            .bearer_auth(&tok)
            .json(&json!({"value": 6000.00, "dimensions": {"updated": true}})),
    )
    .await;
    assert_eq!(s, 200, "{patched}");
    assert_eq!(patched["value"].as_f64(), Some(6000.0));
    assert_eq!(patched["dimensions"], json!({"updated": true}));
    for k in ["id", "service_name", "metric_type", "metric_name", "timestamp", "date", "meta", "created_at"] {
        assert_eq!(patched[k], created[k], "PATCH leaves {k}");
    }
    let got = get_json(&app, &tok, &format!("{METRICS}/{id}")).await;
    assert_eq!(got, patched, "GET after PATCH answers the patched record");
    let list = get_json(&app, &tok, METRICS).await;
    assert_eq!(list, json!([patched]));

    // DELETE.
    let (s, del, _) = send(app.request("DELETE", &format!("{METRICS}/{id}")).bearer_auth(&tok)).await;
    assert_eq!((s, del), (200, json!({"message": "Metric deleted successfully"})));
    let p = assert_problem(&send(app.get(&format!("{METRICS}/{id}")).bearer_auth(&tok)).await, 404);
    assert_eq!(p["type"], "/problems/not_found");
    assert!(p["detail"].as_str().unwrap().contains(&id), "{p}");
    // Gone everywhere, and a second DELETE or a PATCH is a 404 too.
    assert_eq!(get_json(&app, &tok, METRICS).await, json!([]));
    assert_eq!(get_json(&app, &tok, &format!("{METRICS}/aggregate")).await["count"], 0);
    assert_problem(&send(app.request("DELETE", &format!("{METRICS}/{id}")).bearer_auth(&tok)).await, 404);
    assert_problem(
        &send(app.request("PATCH", &format!("{METRICS}/{id}")).bearer_auth(&tok).json(&json!({"value": 1}))).await,
        404,
    );
    // An id that never existed, and one that is not even a UUID.
    let missing = uuid::Uuid::new_v4();
    assert_problem(&send(app.get(&format!("{METRICS}/{missing}")).bearer_auth(&tok)).await, 404);
    assert_problem(&send(app.get(&format!("{METRICS}/not-a-uuid")).bearer_auth(&tok)).await, 404);
}

#[tokio::test]
async fn timestamps_are_kept_in_utc_and_default_to_now() {
    let app = TestApp::spawn().await;
    let tok = token("ingest", Some("acme"));
    let base = json!({"service_name": "projects", "metric_type": "project", "metric_name": "m", "value": 1});

    // An offset is converted to UTC, and `date` is the UTC date.
    let mut b = base.clone();
    b["timestamp"] = json!("2024-12-24T01:30:00+02:00");
    let (s, r, _) = send(app.post(METRICS).bearer_auth(&tok).json(&b)).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["timestamp"], "2024-12-23T23:30:00Z");
    assert_eq!(r["date"], "2024-12-23");
    // Without dimensions or meta: empty objects.
    assert_eq!(r["dimensions"], json!({}));
    assert_eq!(r["meta"], json!({}));

    // No timestamp: now.
    let before = Utc::now() - Duration::seconds(5);
    let (s, r, _) = send(app.post(METRICS).bearer_auth(&tok).json(&base)).await;
    assert_eq!(s, 200, "{r}");
    let t = DateTime::parse_from_rfc3339(r["timestamp"].as_str().unwrap()).unwrap().with_timezone(&Utc);
    assert!(t >= before && t <= Utc::now() + Duration::seconds(5), "{t}");
    assert_eq!(r["date"], t.format("%Y-%m-%d").to_string());

    // PATCH the timestamp: `date` follows it; other fields stay.
    let id = r["id"].as_str().unwrap();
    let (s, p, _) = send(
        app.request("PATCH", &format!("{METRICS}/{id}"))
            .bearer_auth(&tok)
            .json(&json!({"timestamp": "2024-12-25T23:30:00-02:00", "meta": {"k": "v"}})),
    )
    .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["timestamp"], "2024-12-26T01:30:00Z");
    assert_eq!(p["date"], "2024-12-26");
    assert_eq!(p["meta"], json!({"k": "v"}));
    assert_eq!(p["value"], r["value"]);
    assert_eq!(p["dimensions"], json!({}));
    assert_eq!(p["created_at"], r["created_at"]);
}

// ---- 2. list filters, paging, by-service, by-type ----

#[tokio::test]
async fn list_filters_and_paging_match_an_independent_selection() {
    let app = TestApp::spawn().await;
    let tok = token("admin", Some("acme"));
    let mut recs = generate(7, 150);
    // Day boundaries for the date filters.
    for (i, ts) in
        [at(2024, 2, 9, 23, 59, 59), at(2024, 2, 10, 0, 0, 0), at(2024, 2, 10, 23, 59, 59), at(2024, 2, 11, 0, 0, 0)]
            .into_iter()
            .enumerate()
    {
        let mut r = Rec::new("content", "conversion", "boundary", i as f64, ts);
        r.n = 1000 + i;
        recs.push(r);
    }
    post_all(&app, &tok, &mut recs).await;
    let reader = token("viewer", Some("acme"));
    let q = |qs: String| {
        let (app, reader) = (&app, &reader);
        async move { get_json(app, reader, &format!("{METRICS}?{qs}")).await }
    };

    // Everything, oldest first; every record as the POST answered it.
    let all = q("limit=1000".into()).await;
    assert_eq!(ids_of(&all), expect_ids(&recs, |_| true));
    for (row, r) in all.as_array().unwrap().iter().zip({
        let mut v: Vec<&Rec> = recs.iter().collect();
        v.sort_by(|a, b| a.ts.cmp(&b.ts).then(a.id.cmp(&b.id)));
        v
    }) {
        assert_eq!(row["service_name"], r.service.as_str());
        assert_eq!(row["metric_type"], r.mtype.as_str());
        assert_eq!(row["metric_name"], r.name.as_str());
        assert_eq!(row["value"].as_f64(), Some(r.value));
        assert_eq!(row["timestamp"], iso(r.ts));
        assert_eq!(row["date"], r.date());
        assert_eq!(row["dimensions"], r.dimensions());
        assert_eq!(row["meta"], json!({"n": r.n}));
    }
    // Default limit: 100.
    assert_eq!(ids_of(&q(String::new()).await), expect_ids(&recs, |_| true)[..100].to_vec());

    // One filter at a time, then together.
    for s in SERVICES {
        assert_eq!(
            ids_of(&q(format!("service_name={s}&limit=1000")).await),
            expect_ids(&recs, |r| r.service == s),
            "{s}"
        );
    }
    for t in TYPES {
        assert_eq!(ids_of(&q(format!("metric_type={t}&limit=1000")).await), expect_ids(&recs, |r| r.mtype == t), "{t}");
    }
    for n in NAMES {
        assert_eq!(ids_of(&q(format!("metric_name={n}&limit=1000")).await), expect_ids(&recs, |r| r.name == n), "{n}");
    }
    assert_eq!(
        ids_of(&q("service_name=projects&metric_type=revenue&metric_name=signups&limit=1000".into()).await),
        expect_ids(&recs, |r| r.service == "projects" && r.mtype == "revenue" && r.name == "signups")
    );
    // A name nobody used: nothing.
    assert_eq!(q("metric_name=nobody".into()).await, json!([]));

    // Dates: a start date from its midnight, an end date through its whole day.
    let day = |y, m, d| at(y, m, d, 0, 0, 0);
    assert_eq!(
        ids_of(&q("start_date=2024-02-10&end_date=2024-02-10&metric_name=boundary".into()).await),
        expect_ids(&recs, |r| r.name == "boundary" && r.ts >= day(2024, 2, 10) && r.ts < day(2024, 2, 11))
    );
    assert_eq!(ids_of(&q("start_date=2024-02-10&end_date=2024-02-10&metric_name=boundary".into()).await).len(), 2);
    assert_eq!(
        ids_of(&q("start_date=2024-01-15&end_date=2024-04-20&limit=1000".into()).await),
        expect_ids(&recs, |r| r.ts >= day(2024, 1, 15) && r.ts < day(2024, 4, 21))
    );
    assert_eq!(
        ids_of(&q("start_date=2024-05-01&limit=1000".into()).await),
        expect_ids(&recs, |r| r.ts >= day(2024, 5, 1))
    );
    assert_eq!(
        ids_of(&q("end_date=2024-01-31&service_name=auth&limit=1000".into()).await),
        expect_ids(&recs, |r| r.ts < day(2024, 2, 1) && r.service == "auth")
    );
    // RFC 3339 bounds are instants: start inclusive, end exclusive.
    assert_eq!(
        ids_of(&q("start_date=2024-02-10T00:00:00Z&end_date=2024-02-11T00:00:00Z&metric_name=boundary".into()).await),
        expect_ids(&recs, |r| r.name == "boundary" && r.ts >= day(2024, 2, 10) && r.ts < day(2024, 2, 11))
    );

    // Paging: pages of 40 make up the whole list, in order, each record once.
    let want = expect_ids(&recs, |_| true);
    let mut paged = Vec::new();
    for skip in (0..want.len()).step_by(40) {
        let page = ids_of(&q(format!("skip={skip}&limit=40")).await);
        assert_eq!(page.len(), 40.min(want.len() - skip));
        paged.extend(page);
    }
    assert_eq!(paged, want);
    assert_eq!(ids_of(&q("skip=150&limit=3".into()).await), want[150..153].to_vec());
    assert_eq!(q(format!("skip={}", want.len())).await, json!([]));
    // Paging applies after the filters.
    let donations = expect_ids(&recs, |r| r.mtype == "donation");
    assert_eq!(ids_of(&q("metric_type=donation&skip=5&limit=7".into()).await), donations[5..12].to_vec());

    // by-service and by-type: the same as the filters, and take the other filters too.
    for s in SERVICES {
        let got = get_json(&app, &reader, &format!("{METRICS}/by-service/{s}?limit=1000")).await;
        assert_eq!(ids_of(&got), expect_ids(&recs, |r| r.service == s), "by-service {s}");
    }
    for t in TYPES {
        let got = get_json(&app, &reader, &format!("{METRICS}/by-type/{t}?limit=1000")).await;
        assert_eq!(ids_of(&got), expect_ids(&recs, |r| r.mtype == t), "by-type {t}");
    }
    let got =
        get_json(&app, &reader, &format!("{METRICS}/by-service/social_media?metric_type=engagement&limit=1000")).await;
    assert_eq!(ids_of(&got), expect_ids(&recs, |r| r.service == "social_media" && r.mtype == "engagement"));
    let got = get_json(&app, &reader, &format!("{METRICS}/by-type/revenue?start_date=2024-04-01&skip=2&limit=5")).await;
    let want = expect_ids(&recs, |r| r.mtype == "revenue" && r.ts >= day(2024, 4, 1));
    assert_eq!(ids_of(&got), want[2..7].to_vec());
    // A blank segment names nothing: refused, never every record.
    for path in ["by-service/%20", "by-type/%09"] {
        let got = send(app.get(&format!("{METRICS}/{path}")).bearer_auth(&reader)).await;
        assert_problem(&got, 400);
    }
    // Known but unused: an empty list, not an error.
    assert_eq!(get_json(&app, &reader, &format!("{METRICS}/by-service/notification")).await, json!([]));
    assert_eq!(get_json(&app, &reader, &format!("{METRICS}/by-type/beneficiary")).await, json!([]));
    // Records of the same instant: paging still answers each exactly once.
    let mut ties: Vec<Rec> =
        (0..5).map(|i| Rec::new("content", "conversion", "tie", i as f64, at(2024, 2, 20, 12, 0, 0))).collect();
    post_all(&app, &tok, &mut ties).await;
    let mut paged = Vec::new();
    for skip in 0..5 {
        paged.extend(ids_of(&q(format!("metric_name=tie&skip={skip}&limit=1")).await));
    }
    paged.sort();
    let mut want: Vec<String> = ties.iter().map(|r| r.id.clone()).collect();
    want.sort();
    assert_eq!(paged, want);
}

/// 1,100 records: `limit=5000` answers 1,000, and the rest is reachable with `skip`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_is_clamped_to_1000() {
    let app = TestApp::spawn().await;
    let tok = token("ingest", Some("acme"));
    let base = at(2024, 1, 1, 0, 0, 0);
    let mut recs: Vec<Rec> = (0..1100)
        .map(|i| {
            let mut r = Rec::new("auth", "engagement", "logins", i as f64, base + Duration::minutes(i as i64));
            r.n = i;
            r
        })
        .collect();
    post_all(&app, &tok, &mut recs).await;
    let reader = token("analyst", Some("acme"));
    let want = expect_ids(&recs, |_| true);
    let got = get_json(&app, &reader, &format!("{METRICS}?limit=5000")).await;
    assert_eq!(ids_of(&got), want[..1000].to_vec());
    let got = get_json(&app, &reader, &format!("{METRICS}?limit=5000&skip=1000")).await;
    assert_eq!(ids_of(&got), want[1000..].to_vec());
    let got = get_json(&app, &reader, &format!("{METRICS}?limit=1000&skip=50")).await;
    assert_eq!(ids_of(&got), want[50..1050].to_vec());
    let got = get_json(&app, &reader, &format!("{METRICS}/by-service/auth?limit=1001")).await;
    assert_eq!(ids_of(&got).len(), 1000);
    let got = get_json(&app, &reader, METRICS).await;
    assert_eq!(ids_of(&got).len(), 100, "default limit");
    // The aggregate is not paged: it sees all 1,100.
    let agg = get_json(&app, &reader, &format!("{METRICS}/aggregate")).await;
    assert_stats(&agg, &stats(&recs), "all 1100");
    assert!(agg.get("truncated").is_none(), "{agg}");
    // 1,100 groups: the answer holds 1,000 of them and says it is cut.
    let agg = get_json(&app, &reader, &format!("{METRICS}/aggregate?group_by=meta.n")).await;
    assert_stats(&agg, &stats(&recs), "totals of all 1100");
    assert_eq!(agg["groups"].as_array().unwrap().len(), 1000);
    assert_eq!(agg["truncated"], true);
    let agg = get_json(&app, &reader, &format!("{METRICS}/aggregate?group_by=service_name")).await;
    assert_eq!(agg["truncated"], false);
}

// ---- 3. aggregates and time series ----

#[tokio::test]
async fn aggregates_match_an_independent_computation() {
    let app = TestApp::spawn().await;
    let tok = token("admin", Some("acme"));
    let mut recs = generate(42, 180);
    post_all(&app, &tok, &mut recs).await;
    let reader = token("viewer", Some("acme"));
    let agg = |qs: &str| {
        let (app, reader) = (&app, &reader);
        let path = format!("{METRICS}/aggregate{}{qs}", if qs.is_empty() { "" } else { "?" });
        async move { get_json(app, reader, &path).await }
    };

    // No filter, no grouping: exactly the five statistics.
    let got = agg("").await;
    assert_stats(&got, &stats(&recs), "all");
    let mut keys: Vec<&String> = got.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["avg", "count", "max", "min", "sum"], "{got}");

    // Filters.
    for s in SERVICES {
        assert_stats(&agg(&format!("service_name={s}")).await, &stats(recs.iter().filter(|r| r.service == s)), s);
    }
    for t in TYPES {
        assert_stats(&agg(&format!("metric_type={t}")).await, &stats(recs.iter().filter(|r| r.mtype == t)), t);
    }
    for n in NAMES {
        assert_stats(&agg(&format!("metric_name={n}")).await, &stats(recs.iter().filter(|r| r.name == n)), n);
    }
    let (lo, hi) = (at(2024, 2, 1, 0, 0, 0), at(2024, 5, 16, 0, 0, 0));
    assert_stats(
        &agg("service_name=partners_crm&start_date=2024-02-01&end_date=2024-05-15").await,
        &stats(recs.iter().filter(|r| r.service == "partners_crm" && r.ts >= lo && r.ts < hi)),
        "partners_crm, Feb 1 to May 15",
    );
    // Nothing matches: count and sum 0, the rest null.
    let none = agg("metric_name=nobody").await;
    assert_stats(&none, &stats(std::iter::empty()), "nothing");

    // group_by=service_name.
    let got = agg("group_by=service_name").await;
    assert_stats(&got, &stats(&recs), "totals beside groups");
    assert_groups(&got, &["service_name"], &recs, |r| vec![json!(r.service)], "by service");
    for row in got["groups"].as_array().unwrap() {
        let mut k: Vec<&String> = row.as_object().unwrap().keys().collect();
        k.sort();
        assert_eq!(k, ["avg", "count", "max", "min", "service_name", "sum"], "{row}");
    }

    // A dimension; records without it form their own (null) group.
    let got = agg("group_by=dimensions.country").await;
    assert_groups(&got, &["dimensions.country"], &recs, |r| vec![json!(r.country)], "by country");
    assert!(got["groups"].as_array().unwrap().iter().any(|g| g["dimensions.country"].is_null()), "{got}");

    // Two keys, as a repeated parameter and comma separated: the same answer.
    let two = agg("group_by=service_name&group_by=metric_type").await;
    assert_groups(
        &two,
        &["service_name", "metric_type"],
        &recs,
        |r| vec![json!(r.service), json!(r.mtype)],
        "two keys",
    );
    let comma = agg("group_by=service_name,metric_type").await;
    assert_groups(&comma, &["service_name", "metric_type"], &recs, |r| vec![json!(r.service), json!(r.mtype)], "comma");

    // With filters: groups over the filtered records only.
    let filtered: Vec<Rec> =
        recs.iter().filter(|r| r.mtype == "donation" && r.ts >= lo && r.ts < hi).cloned().collect();
    let got = agg("metric_type=donation&start_date=2024-02-01&end_date=2024-05-15&group_by=dimensions.country").await;
    assert_stats(&got, &stats(&filtered), "filtered totals");
    assert_groups(&got, &["dimensions.country"], &filtered, |r| vec![json!(r.country)], "filtered by country");

    // group_by=date: one row per UTC day that has records.
    let got = agg("group_by=date").await;
    assert_groups(&got, &["date"], &recs, |r| vec![json!(r.date())], "by date");
    let got = agg("group_by=date&group_by=service_name&metric_name=page_views").await;
    let pv: Vec<Rec> = recs.iter().filter(|r| r.name == "page_views").cloned().collect();
    assert_groups(&got, &["date", "service_name"], &pv, |r| vec![json!(r.date()), json!(r.service)], "date, service");
}

#[tokio::test]
async fn time_series_match_an_independent_computation() {
    let app = TestApp::spawn().await;
    let tok = token("admin", Some("acme"));
    let mut recs = generate(1234, 160);
    post_all(&app, &tok, &mut recs).await;
    let reader = token("analyst", Some("acme"));
    let ts = |qs: String| {
        let (app, reader) = (&app, &reader);
        async move { get_json(app, reader, &format!("{METRICS}/time-series?{qs}")).await }
    };
    let pv: Vec<&Rec> = recs.iter().filter(|r| r.name == "page_views").collect();
    assert!(pv.len() > 30, "enough page_views: {}", pv.len());
    let (jan1, jul1) = (at(2024, 1, 1, 0, 0, 0), at(2024, 7, 1, 0, 0, 0));

    // Day (the default), with dates: every day of the range, empty days 0.
    let want = series(&pv, Iv::Day, jan1, jul1);
    assert_eq!(want.len(), 182);
    assert!(want.iter().filter(|(_, v)| *v == 0.0).count() > 31, "the data has empty days");
    assert_series(&ts("metric_name=page_views&start_date=2024-01-01&end_date=2024-06-30".into()).await, &want, "day");
    assert_series(
        &ts("metric_name=page_views&interval=day&start_date=2024-01-01&end_date=2024-06-30".into()).await,
        &want,
        "interval=day",
    );

    // Week (weeks start on Monday; 2024-01-01 is one), with dates.
    let want = series(&pv, Iv::Week, jan1, at(2024, 6, 3, 0, 0, 0));
    assert!(want.iter().any(|(_, v)| *v == 0.0), "the data has empty weeks");
    assert_series(
        &ts("metric_name=page_views&interval=week&start_date=2024-01-01&end_date=2024-06-02".into()).await,
        &want,
        "week",
    );

    // Month, with dates: March is empty.
    let want = series(&pv, Iv::Month, jan1, jul1);
    assert_eq!(want.len(), 6);
    assert_eq!(want[2], ("2024-03-01".to_owned(), 0.0));
    assert_series(
        &ts("metric_name=page_views&interval=month&start_date=2024-01-01&end_date=2024-06-30".into()).await,
        &want,
        "month",
    );

    // Without dates: from the first record's bucket to the last one's.
    for (iv, name) in [(Iv::Day, "day"), (Iv::Week, "week"), (Iv::Month, "month")] {
        let want = series_all(&pv, iv);
        assert!(want.iter().any(|(_, v)| *v == 0.0), "{name}: gaps");
        assert_series(
            &ts(format!("metric_name=page_views&interval={name}")).await,
            &want,
            &format!("{name}, no dates"),
        );
    }

    // A narrower range with a service filter.
    let proj: Vec<&Rec> = pv.iter().copied().filter(|r| r.service == "projects").collect();
    let (lo, hi) = (at(2024, 2, 1, 0, 0, 0), at(2024, 4, 16, 0, 0, 0));
    assert_series(
        &ts("metric_name=page_views&service_name=projects&start_date=2024-02-01&end_date=2024-04-15".into()).await,
        &series(&proj, Iv::Day, lo, hi),
        "projects, Feb 1 to Apr 15",
    );
    assert_series(
        &ts("metric_name=page_views&service_name=projects&interval=month".into()).await,
        &series_all(&proj, Iv::Month),
        "projects by month",
    );
    // Only a start date: from it to the last record.
    let after: Vec<&Rec> = pv.iter().copied().filter(|r| r.ts >= at(2024, 5, 1, 0, 0, 0)).collect();
    let hi = after.iter().map(|r| r.ts).max().unwrap();
    assert_series(
        &ts("metric_name=page_views&start_date=2024-05-01".into()).await,
        &series(&after, Iv::Day, at(2024, 5, 1, 0, 0, 0), next(truncate(hi.naive_utc(), Iv::Day), Iv::Day).and_utc()),
        "from May 1",
    );

    // Only an end date: from the first record to the end of that day.
    let before: Vec<&Rec> = pv.iter().copied().filter(|r| r.ts < at(2024, 2, 16, 0, 0, 0)).collect();
    let lo = before.iter().map(|r| r.ts).min().unwrap();
    assert_series(
        &ts("metric_name=page_views&end_date=2024-02-15".into()).await,
        &series(&before, Iv::Day, lo, at(2024, 2, 16, 0, 0, 0)),
        "to Feb 15",
    );

    // `aggregation=count` counts instead of summing.
    let got =
        ts("metric_name=page_views&interval=month&aggregation=count&start_date=2024-01-01&end_date=2024-06-30".into())
            .await;
    let counts: Vec<u64> = got.as_array().unwrap().iter().map(|p| p["value"].as_u64().unwrap()).collect();
    let want: Vec<u64> = (1..=6).map(|m| pv.iter().filter(|r| r.ts.month() == m).count() as u64).collect();
    assert_eq!(counts, want);

    // A name without records: zeros over a dated range, nothing without dates.
    let got = ts("metric_name=nobody&interval=month&start_date=2024-01-01&end_date=2024-03-31".into()).await;
    assert_eq!(
        got,
        json!([{"timestamp": "2024-01-01", "value": 0}, {"timestamp": "2024-02-01", "value": 0}, {"timestamp": "2024-03-01", "value": 0}])
    );
    assert_eq!(ts("metric_name=nobody".into()).await, json!([]));
}

#[tokio::test]
async fn hourly_time_series() {
    let app = TestApp::spawn().await;
    let tok = token("ingest", Some("acme"));
    let mut recs: Vec<Rec> = [
        ("auth", at(2024, 5, 1, 3, 0, 0), 1.5),
        ("auth", at(2024, 5, 1, 3, 59, 59), 2.25),
        ("auth", at(2024, 5, 1, 7, 30, 0), -4.0),
        ("auth", at(2024, 5, 1, 20, 0, 0), 10.0),
        // The next day, and another service.
        ("auth", at(2024, 5, 2, 0, 0, 0), 100.0),
        ("content", at(2024, 5, 1, 5, 0, 0), 1000.0),
    ]
    .into_iter()
    .map(|(s, t, v)| Rec::new(s, "engagement", "hits", v, t))
    .collect();
    post_all(&app, &tok, &mut recs).await;
    let reader = token("viewer", Some("acme"));
    let all: Vec<&Rec> = recs.iter().collect();
    let auth: Vec<&Rec> = recs.iter().filter(|r| r.service == "auth").collect();

    // One day: 24 hours, the next day's record out.
    let got = get_json(
        &app,
        &reader,
        &format!("{METRICS}/time-series?metric_name=hits&interval=hour&start_date=2024-05-01&end_date=2024-05-01"),
    )
    .await;
    let want = series(&all, Iv::Hour, at(2024, 5, 1, 0, 0, 0), at(2024, 5, 2, 0, 0, 0));
    assert_eq!(want.len(), 24);
    assert_eq!(want[3], ("2024-05-01T03:00:00".to_owned(), 3.75));
    assert_eq!(want[5], ("2024-05-01T05:00:00".to_owned(), 1000.0));
    assert_series(&got, &want, "hour, one day");

    // Without dates, one service: 03:00 on May 1 through 00:00 on May 2.
    let got =
        get_json(&app, &reader, &format!("{METRICS}/time-series?metric_name=hits&interval=hour&service_name=auth"))
            .await;
    let want = series_all(&auth, Iv::Hour);
    assert_eq!(want.len(), 22);
    assert_eq!(want.first().unwrap().0, "2024-05-01T03:00:00");
    assert_eq!(want.last().unwrap(), &("2024-05-02T00:00:00".to_owned(), 100.0));
    assert_series(&got, &want, "hour, auth, no dates");

    // RFC 3339 bounds.
    let got = get_json(
        &app,
        &reader,
        &format!(
            "{METRICS}/time-series?metric_name=hits&interval=hour&start_date=2024-05-01T03:30:00Z&end_date=2024-05-01T08:00:00Z"
        ),
    )
    .await;
    let want = series(&all, Iv::Hour, at(2024, 5, 1, 3, 30, 0), at(2024, 5, 1, 8, 0, 0));
    assert_eq!(want[0], ("2024-05-01T03:00:00".to_owned(), 2.25));
    assert_series(&got, &want, "hour, instants");
}

/// The API accepts any past timestamp, so a record from before 1970 must count in the
/// aggregate as it does in the list.
#[tokio::test]
async fn records_before_1970_count_in_aggregates() {
    let app = TestApp::spawn().await;
    let tok = token("admin", Some("acme"));
    let mut recs = vec![
        Rec::new("projects", "project", "landings", 1.0, at(1969, 7, 20, 20, 17, 0)),
        Rec::new("projects", "project", "landings", 2.0, at(2024, 1, 1, 0, 0, 0)),
    ];
    post_all(&app, &tok, &mut recs).await;
    let list = get_json(&app, &tok, METRICS).await;
    assert_eq!(ids_of(&list), expect_ids(&recs, |_| true));
    let agg = get_json(&app, &tok, &format!("{METRICS}/aggregate")).await;
    assert_stats(&agg, &stats(&recs), "both records");
    let agg = get_json(&app, &tok, &format!("{METRICS}/aggregate?group_by=date")).await;
    assert_groups(&agg, &["date"], &recs, |r| vec![json!(r.date())], "by date");
}

/// `skip` is read as an unsigned 64-bit number; one past `i64::MAX` must be an empty page
/// or a 400 naming `skip`, never a 500.
#[tokio::test]
async fn a_huge_skip_is_not_a_server_error() {
    let app = TestApp::spawn().await;
    let tok = token("admin", Some("acme"));
    let mut recs = vec![Rec::new("auth", "engagement", "logins", 1.0, at(2024, 1, 1, 0, 0, 0))];
    post_all(&app, &tok, &mut recs).await;
    for skip in ["9223372036854775807", "9223372036854775808", "18446744073709551615"] {
        for path in [format!("{METRICS}?skip={skip}"), format!("{METRICS}/by-service/auth?skip={skip}")] {
            let got = send(app.get(&path).bearer_auth(&tok)).await;
            assert_ne!(got.0, 500, "{path}: {}", got.1);
            if got.0 == 200 {
                assert_eq!(got.1, json!([]), "{path}");
            } else {
                let p = assert_problem(&got, 400);
                assert!(p["detail"].as_str().unwrap().contains("skip"), "{path}: {p}");
            }
        }
    }
}

// ---- 4. bad inputs ----

fn field_error<'a>(p: &'a Value, field: &str) -> &'a str {
    let errs = p["errors"].as_array().unwrap_or_else(|| panic!("no errors[] in {p}"));
    errs.iter().find(|e| e["field"] == field).unwrap_or_else(|| panic!("no error for {field} in {p}"))["message"]
        .as_str()
        .unwrap()
}

#[tokio::test]
async fn bad_records_get_precise_errors_and_store_nothing() {
    let app = TestApp::spawn().await;
    let tok = token("admin", Some("acme"));
    let good = json!({"service_name": "auth", "metric_type": "engagement", "metric_name": "logins", "value": 3});
    let with = |k: &str, v: Value| {
        let mut b = good.clone();
        b[k] = v;
        b
    };
    let without = |k: &str| {
        let mut b = good.clone();
        b.as_object_mut().unwrap().remove(k);
        b
    };

    // Every missing field is named at once.
    let p = assert_problem(&send(app.post(METRICS).bearer_auth(&tok).json(&json!({}))).await, 400);
    assert_eq!(p["type"], "/problems/validation");
    for f in ["service_name", "metric_type", "metric_name", "value"] {
        assert!(field_error(&p, f).contains("required"), "{p}");
        assert!(p["detail"].as_str().unwrap().contains(&format!("{f} is required")), "{p}");
    }

    let cases: Vec<(Value, &str, &str)> = vec![
        (without("service_name"), "service_name", "required"),
        (without("metric_type"), "metric_type", "required"),
        (without("metric_name"), "metric_name", "required"),
        (without("value"), "value", "required"),
        (with("value", Value::Null), "value", "required"),
        (with("value", json!("5000.50")), "value", "number"),
        (with("value", json!("abc")), "value", "number"),
        (with("value", json!(true)), "value", "number"),
        (with("value", json!([1])), "value", "number"),
        (with("timestamp", json!("yesterday")), "timestamp", "RFC 3339"),
        (with("timestamp", json!("2024-12-24")), "timestamp", "RFC 3339"),
        (with("timestamp", json!("2024-12-24 10:00:00")), "timestamp", "RFC 3339"),
        (with("timestamp", json!(1_700_000_000)), "timestamp", "RFC 3339"),
        (with("timestamp", json!("2999-01-01T00:00:00Z")), "timestamp", "future"),
        (with("dimensions", json!([1, 2])), "dimensions", "object"),
        (with("dimensions", json!("country=USA")), "dimensions", "object"),
        (with("meta", json!(5)), "meta", "object"),
        (with("service_name", json!(5)), "service_name", "string"),
        (with("metric_type", json!({"a": 1})), "metric_type", "string"),
        (with("metric_name", json!("  ")), "metric_name", "empty"),
        (with("metric_name", json!("n".repeat(201))), "metric_name", "200"),
    ];
    for (body, field, needle) in cases {
        let p = assert_problem(&send(app.post(METRICS).bearer_auth(&tok).json(&body)).await, 400);
        assert_eq!(p["type"], "/problems/validation", "{body}: {p}");
        let msg = field_error(&p, field);
        assert!(msg.to_lowercase().contains(&needle.to_lowercase()), "{body}: '{msg}' lacks '{needle}'");
        assert!(p["detail"].as_str().unwrap().contains(msg), "{body}: detail names the error: {p}");
    }

    // The body itself.
    let p = assert_problem(&send(app.post(METRICS).bearer_auth(&tok).json(&json!([good.clone()]))).await, 400);
    assert!(field_error(&p, "body").contains("object"), "{p}");
    let p = assert_problem(
        &send(app.post(METRICS).bearer_auth(&tok).header("content-type", "application/json").body("")).await,
        400,
    );
    assert_eq!(p["type"], "/problems/malformed_body");
    assert!(p["detail"].as_str().unwrap().contains("empty"), "{p}");
    let p = assert_problem(
        &send(app.post(METRICS).bearer_auth(&tok).header("content-type", "application/json").body("{\"value\": 1,"))
            .await,
        400,
    );
    assert_eq!(p["type"], "/problems/malformed_body");
    assert!(p["detail"].as_str().unwrap().contains("not valid JSON"), "{p}");
    let p = assert_problem(
        &send(app.post(METRICS).bearer_auth(&tok).header("content-type", "text/plain").body(good.to_string())).await,
        415,
    );
    assert_eq!(p["type"], "/problems/unsupported_media_type");
    assert!(p["detail"].as_str().unwrap().contains("application/json"), "{p}");
    assert!(p["detail"].as_str().unwrap().contains("text/plain"), "{p}");
    let p = assert_problem(&send(app.post(METRICS).bearer_auth(&tok).body(good.to_string())).await, 415);
    assert!(p["detail"].as_str().unwrap().contains("no Content-Type"), "{p}");

    // Nothing of the above was stored; the good body is.
    assert_eq!(get_json(&app, &tok, METRICS).await, json!([]));
    let (s, b, _) = send(app.post(METRICS).bearer_auth(&tok).json(&good)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(ids_of(&get_json(&app, &tok, METRICS).await), vec![b["id"].as_str().unwrap().to_owned()]);
}

#[tokio::test]
async fn bad_patches_get_precise_errors_and_change_nothing() {
    let app = TestApp::spawn().await;
    let tok = token("admin", Some("acme"));
    let (_, r, _) = send(app.post(METRICS).bearer_auth(&tok).json(&json!({
        "service_name": "partners_crm", "metric_type": "donation", "metric_name": "total_donations",
        "value": 10.5, "timestamp": "2024-12-24T10:00:00Z", "dimensions": {"country": "USA"}
    })))
    .await;
    let path = format!("{METRICS}/{}", r["id"].as_str().unwrap());
    let patch = |body: Value| app.request("PATCH", &path).bearer_auth(&tok).json(&body);

    for fixed in ["service_name", "metric_type", "metric_name", "id"] {
        let p = assert_problem(&send(patch(json!({fixed: "projects", "value": 1}))).await, 400);
        let msg = field_error(&p, fixed);
        assert!(msg.contains("cannot change"), "{fixed}: {p}");
        assert!(p["detail"].as_str().unwrap().contains(msg), "{p}");
    }
    let p = assert_problem(&send(patch(json!({}))).await, 400);
    assert!(field_error(&p, "body").contains("nothing to change"), "{p}");
    let p = assert_problem(&send(patch(json!({"value": null}))).await, 400);
    assert!(p["detail"].as_str().unwrap().contains("nothing to change"), "{p}");
    for (body, field, needle) in [
        (json!({"value": "6000"}), "value", "number"),
        (json!({"timestamp": "soon"}), "timestamp", "RFC 3339"),
        (json!({"timestamp": "2999-01-01T00:00:00Z"}), "timestamp", "future"),
        (json!({"dimensions": [1]}), "dimensions", "object"),
        (json!({"meta": "x"}), "meta", "object"),
    ] {
        let p = assert_problem(&send(patch(body.clone())).await, 400);
        assert!(field_error(&p, field).contains(needle), "{body}: {p}");
    }
    let p = assert_problem(&send(patch(json!([1]))).await, 400);
    assert!(field_error(&p, "body").contains("object"), "{p}");
    let p = assert_problem(
        &send(app.request("PATCH", &path).bearer_auth(&tok).header("content-type", "application/json").body("")).await,
        400,
    );
    assert_eq!(p["type"], "/problems/malformed_body");
    let p = assert_problem(
        &send(app.request("PATCH", &path).bearer_auth(&tok).header("content-type", "text/plain").body("{\"value\":1}"))
            .await,
        415,
    );
    assert_eq!(p["type"], "/problems/unsupported_media_type");

    // Unchanged by any of it.
    assert_eq!(get_json(&app, &tok, &path).await, r);
}

#[tokio::test]
async fn bad_queries_get_precise_errors() {
    let app = TestApp::spawn().await;
    let tok = token("viewer", Some("acme"));
    let bad = |path: String, field: &'static str, needle: &'static str| {
        let (app, tok) = (&app, &tok);
        async move {
            let p = assert_problem(&send(app.get(&path).bearer_auth(tok)).await, 400);
            assert_eq!(p["type"], "/problems/validation", "{path}: {p}");
            let msg = field_error(&p, field);
            assert!(msg.contains(needle), "{path}: '{msg}' lacks '{needle}'");
            assert!(p["detail"].as_str().unwrap().contains(msg), "{path}: {p}");
        }
    };
    let ts = format!("{METRICS}/time-series");
    let agg = format!("{METRICS}/aggregate");

    // Time series.
    bad(ts.clone(), "metric_name", "required").await;
    bad(format!("{ts}?interval=day"), "metric_name", "required").await;
    bad(format!("{ts}?metric_name=%20"), "metric_name", "required").await;
    for iv in ["fortnight", "minute", "DAY", "days"] {
        let p =
            assert_problem(&send(app.get(&format!("{ts}?metric_name=m&interval={iv}")).bearer_auth(&tok)).await, 400);
        let msg = field_error(&p, "interval");
        for allowed in ["hour", "day", "week", "month"] {
            assert!(msg.contains(allowed), "{iv}: '{msg}' lacks {allowed}");
        }
        assert!(msg.contains(iv), "{iv}: '{msg}' names the bad value");
    }
    bad(format!("{ts}?metric_name=m&aggregation=bogus"), "aggregation", "sum").await;
    // More hours than an answer holds.
    bad(format!("{ts}?metric_name=m&interval=hour&start_date=2024-01-01&end_date=2024-12-31"), "interval", "at most")
        .await;

    // Dates, on every endpoint that takes them.
    for base in [
        format!("{METRICS}?"),
        format!("{agg}?"),
        format!("{ts}?metric_name=m&"),
        format!("{METRICS}/by-service/auth?"),
    ] {
        bad(format!("{base}start_date=2024-03-10&end_date=2024-03-09"), "end_date", "before start_date").await;
        bad(format!("{base}start_date=2024-03-10T12:00:00Z&end_date=2024-03-10T11:00:00Z"), "end_date", "before").await;
        bad(format!("{base}start_date=2024-13-01"), "start_date", "not a date").await;
        bad(format!("{base}end_date=yesterday"), "end_date", "not a date").await;
    }
    // The same day as start and end is one whole day, not an error.
    assert_eq!(get_json(&app, &tok, &format!("{METRICS}?start_date=2024-03-10&end_date=2024-03-10")).await, json!([]));

    // Paging.
    bad(format!("{METRICS}?limit=0"), "limit", "at least 1").await;

    for qs in ["limit=-1", "skip=-1", "limit=abc", "skip=1.5"] {
        let p = assert_problem(&send(app.get(&format!("{METRICS}?{qs}")).bearer_auth(&tok)).await, 400);
        let which = qs.split('=').next().unwrap();
        assert!(p["detail"].as_str().unwrap().contains(which), "{qs}: {p}");
    }

    // group_by.
    bad(format!("{agg}?group_by=value"), "group_by[0]", "value").await;
    bad(format!("{agg}?group_by=service_name&group_by=timestamp"), "group_by[1]", "timestamp").await;
    bad(format!("{agg}?group_by=dimensions.a..b"), "group_by[0]", "empty key").await;
    bad(format!("{agg}?group_by=service_name,metric_type,metric_name,country"), "group_by", "at most 3").await;
}

#[tokio::test]
async fn unknown_service_or_type_is_422_listing_the_allowed_ones() {
    let app = TestApp::spawn().await;
    let tok = token("admin", Some("acme"));
    let body = |s: &str, t: &str| json!({"service_name": s, "metric_type": t, "metric_name": "x", "value": 1});

    let p = assert_problem(&send(app.post(METRICS).bearer_auth(&tok).json(&body("billing", "donation"))).await, 422);
    assert_eq!(p["type"], "/problems/unprocessable");
    let msg = field_error(&p, "service_name");
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.contains("'billing'"), "{p}");
    for s in SEED_SERVICES {
        assert!(detail.contains(s) && msg.contains(s), "{s} not listed: {p}");
    }
    let p = assert_problem(&send(app.post(METRICS).bearer_auth(&tok).json(&body("auth", "latency"))).await, 422);
    let msg = field_error(&p, "metric_type");
    for t in SEED_TYPES {
        assert!(p["detail"].as_str().unwrap().contains(t) && msg.contains(t), "{t} not listed: {p}");
    }
    // Case matters: names are exact.
    assert_problem(&send(app.post(METRICS).bearer_auth(&tok).json(&body("Auth", "donation"))).await, 422);

    // Filters and paths check the same vocabulary.
    for path in [
        format!("{METRICS}?service_name=billing"),
        format!("{METRICS}?metric_type=latency"),
        format!("{METRICS}/by-service/billing"),
        format!("{METRICS}/by-type/latency"),
        format!("{METRICS}/aggregate?service_name=billing"),
        format!("{METRICS}/aggregate?metric_type=latency"),
        format!("{METRICS}/time-series?metric_name=x&service_name=billing"),
    ] {
        let p = assert_problem(&send(app.get(&path).bearer_auth(&tok)).await, 422);
        assert!(p["detail"].as_str().unwrap().contains("use one of"), "{path}: {p}");
    }
    assert_eq!(get_json(&app, &tok, METRICS).await, json!([]), "nothing stored");
}

#[tokio::test]
async fn a_tenant_extends_its_vocabulary() {
    let app = TestApp::spawn().await;
    let admin = token("admin", Some("acme"));
    let ingest = token("ingest", Some("acme"));
    let body = json!({"service_name": "billing", "metric_type": "latency", "metric_name": "p99_ms", "value": 12.5});

    let v = get_json(&app, &admin, VOCAB).await;
    assert_eq!(v["service_names"], json!(SEED_SERVICES));
    assert_eq!(v["metric_types"], json!(SEED_TYPES));
    assert_eq!(v["custom_service_names"], json!([]));
    assert_eq!(v["custom_metric_types"], json!([]));
    assert_problem(&send(app.post(METRICS).bearer_auth(&ingest).json(&body)).await, 422);

    // Only an admin may PUT.
    let put = json!({"service_names": ["billing", "auth", "billing"], "metric_types": ["latency"]});
    for role in ["viewer", "analyst", "ingest"] {
        let p = assert_problem(
            &send(app.request("PUT", VOCAB).bearer_auth(token(role, Some("acme"))).json(&put)).await,
            403,
        );
        assert_eq!(p["type"], "/problems/forbidden");
    }
    assert_problem(&send(app.request("PUT", VOCAB).json(&put)).await, 401);
    // Bad values are refused by index.
    let p = assert_problem(
        &send(app.request("PUT", VOCAB).bearer_auth(&admin).json(&json!({"service_names": ["ok", "bad name!"]}))).await,
        400,
    );
    assert!(field_error(&p, "service_names[1]").contains("[A-Za-z0-9_.-]"), "{p}");
    assert_eq!(get_json(&app, &admin, VOCAB).await["custom_service_names"], json!([]), "a refused PUT stores nothing");

    let (s, v, _) = send(app.request("PUT", VOCAB).bearer_auth(&admin).json(&put)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["custom_service_names"], json!(["billing"]), "seed names and repeats dropped");
    assert_eq!(v["custom_metric_types"], json!(["latency"]));
    let mut want: Vec<&str> = SEED_SERVICES.to_vec();
    want.push("billing");
    assert_eq!(v["service_names"], json!(want));
    assert_eq!(get_json(&app, &token("viewer", Some("acme")), VOCAB).await, v);

    // Now accepted, filterable and listed in 422s.
    let (s, r, _) = send(app.post(METRICS).bearer_auth(&ingest).json(&body)).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["service_name"], "billing");
    let got = get_json(&app, &admin, &format!("{METRICS}/by-service/billing")).await;
    assert_eq!(ids_of(&got), vec![r["id"].as_str().unwrap().to_owned()]);
    let agg = get_json(&app, &admin, &format!("{METRICS}/aggregate?metric_type=latency")).await;
    assert_eq!((agg["count"].as_u64(), agg["sum"].as_f64()), (Some(1), Some(12.5)));
    let p = assert_problem(
        &send(
            app.post(METRICS)
                .bearer_auth(&ingest)
                .json(&json!({"service_name": "shipping", "metric_type": "latency", "metric_name": "x", "value": 1})),
        )
        .await,
        422,
    );
    assert!(p["detail"].as_str().unwrap().contains("billing"), "{p}");

    // Another tenant's vocabulary is its own.
    let other = token("admin", Some("globex"));
    assert_eq!(get_json(&app, &other, VOCAB).await["custom_service_names"], json!([]));
    assert_problem(&send(app.post(METRICS).bearer_auth(&other).json(&body)).await, 422);

    // A PUT replaces the tenant's list: billing is gone again.
    let (s, _, _) =
        send(app.request("PUT", VOCAB).bearer_auth(&admin).json(&json!({"metric_types": ["latency"]}))).await;
    assert_eq!(s, 200);
    assert_problem(&send(app.post(METRICS).bearer_auth(&ingest).json(&body)).await, 422);

    // What a GET answers may be PUT back: its `custom_*` names are read, not ignored.
    let got = get_json(&app, &admin, VOCAB).await;
    let back = json!({"custom_service_names": ["billing"], "custom_metric_types": got["custom_metric_types"]});
    let (s, v, _) = send(app.request("PUT", VOCAB).bearer_auth(&admin).json(&back)).await;
    assert_eq!((s, &v["custom_service_names"]), (200, &json!(["billing"])), "{v}");
    assert_eq!(v["custom_metric_types"], json!(["latency"]));
    // An unknown member is a 400 naming it, not silently dropped.
    let got = send(app.request("PUT", VOCAB).bearer_auth(&admin).json(&json!({"metric_type": ["x"]}))).await;
    assert!(assert_problem(&got, 400)["detail"].as_str().unwrap().contains("metric_type"));
}

// ---- 5. who may do what ----

#[tokio::test]
async fn roles_credentials_and_tenants() {
    let app = TestApp::spawn().await;
    let t = |role: &str| token(role, Some("acme"));
    let body = json!({"service_name": "auth", "metric_type": "engagement", "metric_name": "logins", "value": 7,
                      "timestamp": "2024-06-01T12:00:00Z", "dimensions": {"country": "UK"}});

    // ingest and admin may write; viewer and analyst may not.
    let (s, by_ingest, _) = send(app.post(METRICS).bearer_auth(t("ingest")).json(&body)).await;
    assert_eq!(s, 200, "{by_ingest}");
    let (s, by_admin, _) = send(app.post(METRICS).bearer_auth(t("admin")).json(&body)).await;
    assert_eq!(s, 200, "{by_admin}");
    let id = by_ingest["id"].as_str().unwrap().to_owned();
    let one = format!("{METRICS}/{id}");
    for role in ["viewer", "analyst"] {
        let p = assert_problem(&send(app.post(METRICS).bearer_auth(t(role)).json(&body)).await, 403);
        assert_eq!(p["type"], "/problems/forbidden");
        assert_problem(&send(app.request("PATCH", &one).bearer_auth(t(role)).json(&json!({"value": 1}))).await, 403);
        assert_problem(&send(app.request("DELETE", &one).bearer_auth(t(role))).await, 403);
    }

    // viewer, analyst and admin may read; ingest may not.
    let reads = [
        METRICS.to_owned(),
        one.clone(),
        format!("{METRICS}/aggregate"),
        format!("{METRICS}/aggregate?group_by=service_name"),
        format!("{METRICS}/time-series?metric_name=logins"),
        format!("{METRICS}/by-service/auth"),
        format!("{METRICS}/by-type/engagement"),
        VOCAB.to_owned(),
    ];
    for path in &reads {
        for role in ["viewer", "analyst", "admin"] {
            let (s, b, _) = send(app.get(path).bearer_auth(t(role))).await;
            assert_eq!(s, 200, "{role} GET {path}: {b}");
        }
        let p = assert_problem(&send(app.get(path).bearer_auth(t("ingest"))).await, 403);
        assert_eq!(p["type"], "/problems/forbidden", "{path}");
        // No credential, or a bad one: 401.
        let p = assert_problem(&send(app.get(path)).await, 401);
        assert_eq!(p["type"], "/problems/unauthorized", "{path}");
        assert_problem(&send(app.get(path).bearer_auth("not-a-token")).await, 401);
    }
    assert_problem(&send(app.post(METRICS).json(&body)).await, 401);
    assert_problem(&send(app.request("PATCH", &one).json(&json!({"value": 1}))).await, 401);
    assert_problem(&send(app.request("DELETE", &one)).await, 401);
    let with_bad = token_with(sightline::auth::jwt::Claims {
        sub: "x".into(),
        exp: (Utc::now().timestamp() - 60) as u64,
        role: Some("admin".into()),
        tenant_id: Some("acme".into()),
        ..Default::default()
    });
    assert_problem(&send(app.get(METRICS).bearer_auth(with_bad)).await, 401);

    // ingest may PATCH and DELETE.
    let (s, p, _) = send(app.request("PATCH", &one).bearer_auth(t("ingest")).json(&json!({"value": 8}))).await;
    assert_eq!((s, p["value"].as_f64()), (200, Some(8.0)), "{p}");

    // Another tenant: 404 on the record, and nothing of acme's in its lists or sums.
    let other = token("admin", Some("globex"));
    for req in [
        app.get(&one).bearer_auth(&other),
        app.request("PATCH", &one).bearer_auth(&other).json(&json!({"value": 999})),
        app.request("DELETE", &one).bearer_auth(&other),
    ] {
        let p = assert_problem(&send(req).await, 404);
        assert_eq!(p["type"], "/problems/not_found");
    }
    assert_eq!(get_json(&app, &other, METRICS).await, json!([]));
    assert_eq!(get_json(&app, &other, &format!("{METRICS}/by-service/auth")).await, json!([]));
    assert_eq!(get_json(&app, &other, &format!("{METRICS}/by-type/engagement")).await, json!([]));
    assert_stats(&get_json(&app, &other, &format!("{METRICS}/aggregate")).await, &stats(std::iter::empty()), "globex");
    let g = get_json(&app, &other, &format!("{METRICS}/aggregate?group_by=service_name")).await;
    assert_eq!(g["groups"], json!([]));
    assert_eq!(get_json(&app, &other, &format!("{METRICS}/time-series?metric_name=logins")).await, json!([]));
    let z = get_json(
        &app,
        &other,
        &format!("{METRICS}/time-series?metric_name=logins&start_date=2024-06-01&end_date=2024-06-01"),
    )
    .await;
    assert_eq!(z, json!([{"timestamp": "2024-06-01", "value": 0}]));

    // globex's own record does not show in acme, and acme's record survived globex's tries.
    let (s, theirs, _) = send(app.post(METRICS).bearer_auth(&other).json(&body)).await;
    assert_eq!(s, 200);
    let acme_list = get_json(&app, &t("viewer"), &format!("{METRICS}?limit=1000")).await;
    let mut want = vec![id.clone(), by_admin["id"].as_str().unwrap().to_owned()];
    want.sort();
    let mut got = ids_of(&acme_list);
    got.sort();
    assert_eq!(got, want);
    assert!(!got.contains(&theirs["id"].as_str().unwrap().to_owned()));
    assert_problem(
        &send(app.get(&format!("{METRICS}/{}", theirs["id"].as_str().unwrap())).bearer_auth(t("admin"))).await,
        404,
    );
    let mine = get_json(&app, &t("viewer"), &one).await;
    assert_eq!(mine["value"].as_f64(), Some(8.0));
    let agg = get_json(&app, &t("viewer"), &format!("{METRICS}/aggregate")).await;
    assert_eq!((agg["count"].as_u64(), agg["sum"].as_f64()), (Some(2), Some(15.0)));
    let series = get_json(
        &app,
        &t("viewer"),
        &format!("{METRICS}/time-series?metric_name=logins&start_date=2024-06-01&end_date=2024-06-01"),
    )
    .await;
    assert_eq!(series, json!([{"timestamp": "2024-06-01", "value": 15}]));

    // ingest deletes acme's record.
    let (s, d, _) = send(app.request("DELETE", &one).bearer_auth(t("ingest"))).await;
    assert_eq!((s, d), (200, json!({"message": "Metric deleted successfully"})));
    assert_eq!(get_json(&app, &other, &format!("{METRICS}/aggregate")).await["count"], 1, "globex's stays");
}
