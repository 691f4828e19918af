//! End-to-end tests of seed 001's customer analytics: `GET /api/v1/customers/rfm`,
//! `/api/v1/customers/insights` and `/api/v1/customers/segments`.
//!
//! Every answer is checked against a model in plain Rust written from the definitions at
//! the top of `crates/core/src/query/rfm.rs` and in `crates/server/src/http/customers.rs`,
//! not from their code:
//! - a customer is `properties.customer_id` of a `purchase` or `ticket_purchase` event,
//!   else its `user_id`; a purchase with neither belongs to nobody; other events never count;
//! - per customer: the last purchase, the number of purchases, the sum of `amount` (a
//!   missing or non-numeric amount adds 0);
//! - each score is a quintile as SQL's `ntile(5)` gives it, over all customers ordered by
//!   the value ascending and then by `customer_id`: over n rows, group k (1 to 5) has
//!   n / 5 rows, plus one for the first n % 5 groups;
//! - `rfm_score` is the digits R, F, M; the segment comes from R and F (the 5 × 5 grid in
//!   [`GRID`]).
//!
//! Purchases come from a seeded PRNG, at whole seconds within the last 200 days before the
//! test's `now`, never within two hours of an instant where an answer flips (30 and 90
//! days before now, and the starts of the periods asked for, for today and tomorrow, in
//! case the date changes while a test runs). Amounts are multiples of 0.25, so that every
//! sum is exact in floating point whatever order the database adds in, and ties in money
//! are real ties.

use crate::helpers::*;
use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, NaiveTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

const RFM: &str = "/api/v1/customers/rfm";
const INSIGHTS: &str = "/api/v1/customers/insights";
const SEGMENTS: &str = "/api/v1/customers/segments";
const BATCH: &str = "/api/v1/analytics/events/batch";
const DAY: i64 = 86_400;

// ---------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------

/// What `properties.amount` holds.
#[derive(Clone, Debug)]
enum Amount {
    /// No amount key.
    Missing,
    /// A float, in quarters: 4 is 1.0.
    Quarters(i64),
    /// A JSON integer.
    Whole(i64),
    /// Not a number: a word, an empty string, a boolean, an object, an array, null.
    Junk(Value),
}

#[derive(Clone, Debug)]
struct Ev {
    name: String,
    user: Option<String>,
    /// `properties.customer_id` as sent (a string, or JSON null).
    customer: Option<Value>,
    amount: Amount,
    ts: DateTime<Utc>,
    /// Seed 001's shape (`event_type`, `event_data`) instead of seed 004's.
    seed001: bool,
}

impl Ev {
    fn new(name: &str, user: Option<&str>, customer: Option<&str>, amount: Amount, ts: DateTime<Utc>) -> Ev {
        Ev {
            name: name.into(),
            user: user.map(str::to_owned),
            customer: customer.map(|c| json!(c)),
            amount,
            ts,
            seed001: false,
        }
    }
    fn seed001(mut self) -> Self {
        self.seed001 = true;
        self
    }
    fn null_customer(mut self) -> Self {
        self.customer = Some(Value::Null);
        self
    }

    fn json(&self) -> Value {
        let mut p = Map::new();
        p.insert("currency".into(), json!("USD"));
        if let Some(c) = &self.customer {
            p.insert("customer_id".into(), c.clone());
        }
        match &self.amount {
            Amount::Missing => {}
            Amount::Quarters(q) => {
                p.insert("amount".into(), json!(*q as f64 * 0.25));
            }
            Amount::Whole(n) => {
                p.insert("amount".into(), json!(n));
            }
            Amount::Junk(v) => {
                p.insert("amount".into(), v.clone());
            }
        }
        let ts = self.ts.to_rfc3339_opts(SecondsFormat::Secs, true);
        let mut o = if self.seed001 {
            json!({"event_type": self.name, "event_data": p, "timestamp": ts})
        } else {
            json!({"event_name": self.name, "properties": p, "timestamp": ts})
        };
        if let Some(u) = &self.user {
            o["user_id"] = json!(u);
        }
        o
    }

    /// Whose purchase this is, by the definition (None: nobody's, or not a purchase).
    fn customer_id(&self) -> Option<String> {
        if self.name != "purchase" && self.name != "ticket_purchase" {
            return None;
        }
        match &self.customer {
            Some(Value::String(s)) => Some(s.clone()),
            _ => self.user.clone(),
        }
    }

    /// What it adds to its customer's money, in quarters.
    fn quarters(&self) -> i64 {
        match self.amount {
            Amount::Quarters(q) => q,
            Amount::Whole(n) => 4 * n,
            Amount::Missing | Amount::Junk(_) => 0,
        }
    }
}

fn midnight(d: NaiveDate) -> DateTime<Utc> {
    d.and_time(NaiveTime::MIN).and_utc()
}

/// The test's `now` (whole seconds) and the instants no purchase may come near.
struct Clock {
    now: DateTime<Utc>,
    avoid: Vec<DateTime<Utc>>,
}

impl Clock {
    fn new() -> Clock {
        let now = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();
        let mut avoid = vec![now - Duration::days(30), now - Duration::days(90)];
        let today = now.date_naive();
        // Today's boundaries, and tomorrow's in case the date changes during the test.
        for d in [today, today + Duration::days(1)] {
            for n in [90, 30, 28] {
                avoid.push(midnight(d + Duration::days(1 - n)));
            }
            let month1 = d.with_day(1).unwrap();
            avoid.push(midnight(month1));
            avoid.push(midnight(month1.checked_sub_months(Months::new(1)).unwrap()));
            avoid.push(midnight(NaiveDate::from_ymd_opt(d.year(), 1, 1).unwrap()));
            avoid.push(midnight(d));
            avoid.push(midnight(d - Duration::days(1)));
        }
        Clock { now, avoid }
    }

    fn ok(&self, t: DateTime<Utc>) -> bool {
        t <= self.now - Duration::seconds(60)
            && t > self.now - Duration::days(200)
            && self.avoid.iter().all(|b| (t - *b).num_seconds().abs() > 2 * 3600)
    }

    /// An allowed instant between `lo` and `hi` seconds before now.
    fn draw(&self, r: &mut Rng, lo: i64, hi: i64) -> DateTime<Utc> {
        for attempt in 0.. {
            let (lo, hi) = if attempt < 50 { (lo, hi) } else { (60, 200 * DAY - 60) };
            let t = self.now - Duration::seconds(lo + r.below((hi - lo + 1) as u64) as i64);
            if self.ok(t) {
                return t;
            }
        }
        unreachable!()
    }

    fn days_ago(&self, d: i64) -> DateTime<Utc> {
        self.now - Duration::days(d)
    }
}

const JUNK: [&str; 7] = ["\"n/a\"", "\"twelve\"", "\"\"", "true", "{\"value\": 5}", "[5]", "null"];

/// 203 customers (not a multiple of 5): 122 known by `user_id` (`u0`, `u1`, ...), 81 by
/// `properties.customer_id` (`c3`, `c4`, ...) whose purchases are made by one of the `u`
/// users, by a guest who is never a customer, or by nobody. Frequencies 1 to 10, mostly
/// small (many ties); some customers share their last purchase's instant, and ties in
/// recency and money straddle each quintile boundary; some amounts are missing, junk or
/// 0. Plus events that never count.
fn population(seed: u64, clock: &Clock) -> Vec<Ev> {
    let mut r = Rng(seed);
    let ids: Vec<String> = (0..203).map(|k| if k % 5 < 3 { format!("u{k}") } else { format!("c{k}") }).collect();
    let users: Vec<String> = ids.iter().filter(|i| i.starts_with('u')).cloned().collect();
    let shared: Vec<DateTime<Utc>> = (0..3).map(|_| clock.draw(&mut r, 2 * DAY, 150 * DAY)).collect();
    let mut out = Vec::new();
    for id in &ids {
        let n = match r.below(100) {
            0..=34 => 1,
            35..=59 => 2,
            60..=74 => 3,
            75..=84 => 4,
            85..=92 => 5,
            _ => 6 + r.below(5),
        };
        let oldest = 120 + r.below((200 * DAY - 240) as u64) as i64;
        let newest = 60 + r.below((oldest - 60) as u64) as i64;
        let mut times: Vec<DateTime<Utc>> = (0..n).map(|_| clock.draw(&mut r, newest, oldest)).collect();
        if r.chance(12) {
            let s = r.pick(&shared);
            times = (0..n)
                .map(|i| {
                    if i == 0 {
                        return s;
                    }
                    let back = (clock.now - s).num_seconds();
                    clock.draw(&mut r, back + 1, (back + 10 * DAY).min(200 * DAY - 60))
                })
                .collect();
        }
        for ts in times {
            let name = if r.chance(30) { "ticket_purchase" } else { "purchase" };
            let mut e = if id.starts_with('u') {
                match r.below(100) {
                    0..=84 => Ev::new(name, Some(id), None, Amount::Missing, ts),
                    85..=94 => Ev::new(name, Some(id), Some(id), Amount::Missing, ts),
                    _ => Ev::new(name, Some(id), None, Amount::Missing, ts).null_customer(),
                }
            } else {
                let guest = format!("guest-{}", r.below(20));
                let by = match r.below(100) {
                    0..=69 => Some(r.pick(&users)),
                    70..=89 => None,
                    _ => Some(guest),
                };
                Ev::new(name, by.as_deref(), Some(id), Amount::Missing, ts)
            };
            e.amount = match r.below(100) {
                0..=64 => Amount::Quarters(1 + r.below(4000) as i64),
                65..=74 => Amount::Whole(1 + r.below(300) as i64),
                75..=84 => Amount::Missing,
                85..=92 => Amount::Junk(serde_json::from_str(r.pick(&JUNK)).unwrap()),
                _ => Amount::Quarters(0),
            };
            e.seed001 = r.chance(25);
            out.push(e);
        }
    }
    // Never counted: other event names (with amounts and customer ids), and purchases
    // of nobody.
    let others = ["page_view", "add_to_cart", "refund", "purchases", "ticket_purchased", "checkout_started"];
    for k in 0..80 {
        let ts = clock.draw(&mut r, 60, 200 * DAY - 60);
        let user = if r.chance(50) { r.pick(&ids) } else { format!("ghost{k}") };
        let customer = r.chance(50).then(|| if r.chance(50) { r.pick(&ids) } else { format!("ghost-c{k}") });
        let amount = Amount::Quarters(1 + r.below(4000) as i64);
        out.push(Ev::new(r.pick(&others), Some(&user), customer.as_deref(), amount, ts));
    }
    for _ in 0..12 {
        let ts = clock.draw(&mut r, 60, 200 * DAY - 60);
        let name = if r.chance(50) { "ticket_purchase" } else { "purchase" };
        out.push(Ev::new(name, None, None, Amount::Quarters(1 + r.below(4000) as i64), ts));
    }
    tie_at_boundaries(&mut out);
    // Shuffle, so that nothing depends on the order of ingestion.
    for i in (1..out.len()).rev() {
        let j = r.below(i as u64 + 1) as usize;
        out.swap(i, j);
    }
    out
}

/// Makes the last two customers before each quintile boundary, in the order of recency
/// and then of money, tie with the first after it, so that `customer_id` decides their
/// scores (frequency has ties enough of its own): the earlier one's last purchase moves
/// to the later one's instant, and its first purchase grows by the difference in money.
fn tie_at_boundaries(out: &mut [Ev]) {
    let cs = customers(out, None, None);
    let t = tiles(cs.len());
    let bounds: Vec<usize> = (1..cs.len()).filter(|&i| t[i] != t[i - 1]).collect();
    let mut order: Vec<&Cust> = cs.iter().collect();
    order.sort_by(|a, b| (a.last, &a.id).cmp(&(b.last, &b.id)));
    for &p in &bounds {
        let (a, at) = (order[p - 1].id.clone(), order[p].last);
        let e = out.iter_mut().filter(|e| e.customer_id() == Some(a.clone())).max_by_key(|e| e.ts).unwrap();
        e.ts = at;
    }
    order.sort_by(|a, b| (a.quarters, &a.id).cmp(&(b.quarters, &b.id)));
    for &p in &bounds {
        let (a, diff) = (order[p - 1].id.clone(), order[p].quarters - order[p - 1].quarters);
        let e = out.iter_mut().filter(|e| e.customer_id() == Some(a.clone())).min_by_key(|e| e.ts).unwrap();
        e.amount = Amount::Quarters(e.quarters() + diff);
    }
}

/// Whether, ordered by `key` and then id, two customers with the same key fall on both
/// sides of a quintile boundary.
fn tie_across_a_boundary(cs: &[Cust], key: fn(&Cust) -> i64) -> bool {
    let t = tiles(cs.len());
    let mut order: Vec<&Cust> = cs.iter().collect();
    order.sort_by(|a, b| (key(a), &a.id).cmp(&(key(b), &b.id)));
    (1..cs.len()).any(|i| t[i] != t[i - 1] && key(order[i]) == key(order[i - 1]))
}

async fn ingest(app: &TestApp, tenant: &str, evs: &[Ev]) {
    let tok = token("ingest", Some(tenant));
    for chunk in evs.chunks(1000) {
        let events: Vec<Value> = chunk.iter().map(Ev::json).collect();
        let (s, b, _) = send(app.post(BATCH).bearer_auth(&tok).json(&json!({ "events": events }))).await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["tracked"], chunk.len(), "{b}");
    }
}

// ---------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------

/// The 10 segments: id, name, R range, F range, in the order answers list them.
const SEGS: [(&str, &str, (u8, u8), (u8, u8)); 10] = [
    ("champions", "Champions", (5, 5), (4, 5)),
    ("loyal_customers", "Loyal Customers", (3, 4), (4, 5)),
    ("potential_loyalists", "Potential Loyalists", (4, 5), (2, 3)),
    ("new_customers", "New Customers", (5, 5), (1, 1)),
    ("promising", "Promising", (4, 4), (1, 1)),
    ("need_attention", "Need Attention", (3, 3), (3, 3)),
    ("about_to_sleep", "About to Sleep", (3, 3), (1, 2)),
    ("at_risk", "At Risk", (1, 2), (3, 4)),
    ("cant_lose_them", "Can't Lose Them", (1, 2), (5, 5)),
    ("hibernating", "Hibernating", (1, 2), (1, 2)),
];

/// The segment (index into [`SEGS`]) of each R (row, 5 first) and F (column, 1 first).
const GRID: [[usize; 5]; 5] = [
    // F: 1  2  3  4  5
    [3, 2, 2, 0, 0], // R5: new, potential, potential, champions, champions
    [4, 2, 2, 1, 1], // R4: promising, potential, potential, loyal, loyal
    [6, 6, 5, 1, 1], // R3: about to sleep, about to sleep, need attention, loyal, loyal
    [9, 9, 7, 7, 8], // R2: hibernating, hibernating, at risk, at risk, can't lose them
    [9, 9, 7, 7, 8], // R1
];

fn seg(r: u8, f: u8) -> usize {
    GRID[5 - r as usize][f as usize - 1]
}

#[derive(Debug, Clone)]
struct Cust {
    id: String,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
    n: u64,
    quarters: i64,
    r: u8,
    f: u8,
    m: u8,
}

impl Cust {
    fn score(&self) -> u32 {
        self.r as u32 * 100 + self.f as u32 * 10 + self.m as u32
    }
    fn seg(&self) -> usize {
        seg(self.r, self.f)
    }
    fn spent(&self) -> f64 {
        self.quarters as f64 * 0.25
    }
}

/// `ntile(5)` over `n` ordered rows: the tile of each row.
fn tiles(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n);
    for k in 0..5 {
        let size = n / 5 + usize::from(k < n % 5);
        out.extend(std::iter::repeat_n(k as u8 + 1, size));
    }
    out
}

/// Every customer with their scores, from purchases in `[from, to)`.
fn customers(evs: &[Ev], from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Vec<Cust> {
    let mut by: BTreeMap<String, Cust> = BTreeMap::new();
    for e in evs {
        if from.is_some_and(|f| e.ts < f) || to.is_some_and(|t| e.ts >= t) {
            continue;
        }
        let Some(id) = e.customer_id() else { continue };
        let c =
            by.entry(id.clone()).or_insert(Cust { id, first: e.ts, last: e.ts, n: 0, quarters: 0, r: 0, f: 0, m: 0 });
        c.first = c.first.min(e.ts);
        c.last = c.last.max(e.ts);
        c.n += 1;
        c.quarters += e.quarters();
    }
    let mut cs: Vec<Cust> = by.into_values().collect();
    let t = tiles(cs.len());
    let mut idx: Vec<usize> = (0..cs.len()).collect();
    idx.sort_by(|&a, &b| (cs[a].last, &cs[a].id).cmp(&(cs[b].last, &cs[b].id)));
    for (k, &i) in idx.iter().enumerate() {
        cs[i].r = t[k];
    }
    idx.sort_by(|&a, &b| (cs[a].n, &cs[a].id).cmp(&(cs[b].n, &cs[b].id)));
    for (k, &i) in idx.iter().enumerate() {
        cs[i].f = t[k];
    }
    idx.sort_by(|&a, &b| (cs[a].quarters, &cs[a].id).cmp(&(cs[b].quarters, &cs[b].id)));
    for (k, &i) in idx.iter().enumerate() {
        cs[i].m = t[k];
    }
    cs
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn percent(n: usize, total: usize) -> f64 {
    if total == 0 { 0.0 } else { round2(n as f64 * 100.0 / total as f64) }
}

fn mean_spent(cs: &[&Cust]) -> f64 {
    if cs.is_empty() { 0.0 } else { round2(cs.iter().map(|c| c.quarters).sum::<i64>() as f64 * 0.25 / cs.len() as f64) }
}

/// One row of `data`, as seed 001 spells it.
fn rfm_row(c: &Cust) -> Value {
    json!({
        "customer_id": c.id,
        "recency_score": c.r,
        "frequency_score": c.f,
        "monetary_score": c.m,
        "rfm_score": c.score(),
        "segment": SEGS[c.seg()].1,
        "last_purchase": c.last.format("%Y-%m-%d").to_string(),
        "total_purchases": c.n,
        "total_spent": c.spent(),
    })
}

/// The customers an rfm request answers, in order: rfm_score descending, then id.
fn chosen<'a>(cs: &'a [Cust], keep: &dyn Fn(&Cust) -> bool) -> Vec<&'a Cust> {
    let mut v: Vec<&Cust> = cs.iter().filter(|c| keep(c)).collect();
    v.sort_by(|a, b| b.score().cmp(&a.score()).then_with(|| a.id.cmp(&b.id)));
    v
}

fn summary(cs: &[Cust]) -> Value {
    let mut dist = Map::new();
    for (i, (_, name, ..)) in SEGS.iter().enumerate() {
        dist.insert((*name).into(), json!(cs.iter().filter(|c| c.seg() == i).count()));
    }
    let avg =
        if cs.is_empty() { 0.0 } else { cs.iter().map(|c| c.score() as u64).sum::<u64>() as f64 / cs.len() as f64 };
    json!({"total_customers": cs.len(), "avg_rfm_score": round2(avg), "segment_distribution": dist})
}

/// `/customers/insights` over `pick`, at `now`.
fn insights_want(pick: &[&Cust], now: DateTime<Utc>) -> Value {
    let total = pick.len();
    let new = pick.iter().filter(|c| c.first >= now - Duration::days(30)).count();
    let churned = pick.iter().filter(|c| c.last < now - Duration::days(90)).count();
    let segments: Vec<Value> = SEGS
        .iter()
        .enumerate()
        .map(|(i, (id, name, ..))| {
            let n = pick.iter().filter(|c| c.seg() == i).count();
            json!({"id": id, "name": name, "count": n, "percentage": percent(n, total)})
        })
        .collect();
    json!({
        "total_customers": total,
        "new_customers_30d": new,
        "churn_rate": percent(churned, total),
        "average_ltv": mean_spent(pick),
        "segments": segments,
    })
}

/// `/customers/segments`, each without its free-text `description`.
fn segments_want(cs: &[Cust]) -> Vec<Value> {
    SEGS.iter()
        .enumerate()
        .map(|(i, (id, name, r, f))| {
            let members: Vec<&Cust> = cs.iter().filter(|c| c.seg() == i).collect();
            json!({
                "id": id, "name": name,
                "criteria": {"recency_score": {"min": r.0, "max": r.1}, "frequency_score": {"min": f.0, "max": f.1},
                             "rfm_min": r.0 as u32 * 100 + f.0 as u32 * 10 + 1, "rfm_max": r.1 as u32 * 100 + f.1 as u32 * 10 + 5},
                "customer_count": members.len(),
                "avg_revenue": mean_spent(&members),
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Asking and checking
// ---------------------------------------------------------------------------------------

fn viewer(tenant: &str) -> String {
    token("viewer", Some(tenant))
}

async fn get_ok(app: &TestApp, tok: &str, path: &str, q: &[(&str, &str)]) -> Value {
    let (s, b, ct) = send(app.get(path).bearer_auth(tok).query(q)).await;
    assert_eq!(s, 200, "{path} {q:?}: {b}");
    assert!(ct.starts_with("application/json"), "{path} {q:?}: content type {ct}");
    b
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap_or_else(|| panic!("not an object: {v}")).keys().cloned().collect()
}

fn set(xs: &[&str]) -> BTreeSet<String> {
    xs.iter().map(|s| s.to_string()).collect()
}

/// Checks an rfm answer: `data` is the chosen customers up to `limit`, in order, each
/// exactly; `summary` covers `all`; `metadata` says whether rows were cut.
#[track_caller]
fn check_rfm(b: &Value, all: &[Cust], keep: &dyn Fn(&Cust) -> bool, limit: usize, ctx: &str) {
    assert_eq!(keys(b), set(&["data", "summary", "metadata"]), "{ctx}: {b}");
    let want = chosen(all, keep);
    let data = b["data"].as_array().unwrap_or_else(|| panic!("{ctx}: data is not an array: {b}"));
    let got_ids: Vec<&str> = data.iter().map(|r| r["customer_id"].as_str().unwrap_or("?")).collect();
    let want_ids: Vec<&str> = want.iter().take(limit).map(|c| c.id.as_str()).collect();
    assert_eq!(got_ids, want_ids, "{ctx}: the customers and their order");
    for (got, c) in data.iter().zip(&want) {
        assert_eq!(*got, rfm_row(c), "{ctx}: the row of {}", c.id);
    }
    assert_eq!(b["summary"], summary(all), "{ctx}: summary");
    assert_eq!(keys(&b["metadata"]), set(&["truncated", "as_of"]), "{ctx}: {}", b["metadata"]);
    assert_eq!(b["metadata"]["truncated"], want.len() > limit, "{ctx}: truncated ({} match)", want.len());
    let as_of = b["metadata"]["as_of"].as_str().unwrap_or_else(|| panic!("{ctx}: as_of: {b}"));
    DateTime::parse_from_rfc3339(as_of).unwrap_or_else(|e| panic!("{ctx}: as_of {as_of}: {e}"));
}

/// Checks a segments answer against the model.
#[track_caller]
fn check_segments(b: &Value, all: &[Cust], ctx: &str) {
    assert_eq!(keys(b), set(&["segments"]), "{ctx}: {b}");
    let got = b["segments"].as_array().unwrap_or_else(|| panic!("{ctx}: {b}"));
    let want = segments_want(all);
    assert_eq!(got.len(), want.len(), "{ctx}: {b}");
    for (g, w) in got.iter().zip(&want) {
        let mut g = g.clone();
        let d = g.as_object_mut().unwrap().remove("description");
        assert!(d.as_ref().and_then(Value::as_str).is_some_and(|d| !d.is_empty()), "{ctx}: description of {g}");
        assert_eq!(g, *w, "{ctx}");
    }
}

/// The population's customers, with the assumptions the tests rely on checked.
fn scored_population(evs: &[Ev], clock: &Clock) -> Vec<Cust> {
    let cs = customers(evs, None, None);
    assert_eq!(cs.len(), 203, "every generated customer bought");
    assert_ne!(cs.len() % 5, 0, "some quintiles have an extra row");
    assert!(tie_across_a_boundary(&cs, |c| c.last.timestamp()), "a tie in recency across quintiles");
    assert!(tie_across_a_boundary(&cs, |c| c.n as i64), "a tie in frequency across quintiles");
    assert!(tie_across_a_boundary(&cs, |c| c.quarters), "a tie in money across quintiles");
    let once = cs.iter().filter(|c| c.n == 1).count();
    assert!(once > 40, "many ties in frequency: {once}");
    let mut lasts: BTreeMap<DateTime<Utc>, usize> = BTreeMap::new();
    for c in &cs {
        *lasts.entry(c.last).or_default() += 1;
    }
    assert!(lasts.values().any(|n| *n >= 3), "customers share a last purchase");
    assert!(cs.iter().filter(|c| c.quarters == 0).count() >= 3, "customers who spent nothing");
    assert!(cs.iter().any(|c| c.id.starts_with('c')), "customers by customer_id");
    assert!(!cs.iter().any(|c| c.id.starts_with("guest") || c.id.starts_with("ghost")));
    let segs: BTreeSet<usize> = cs.iter().map(Cust::seg).collect();
    assert!(segs.len() >= 8, "segments with customers: {segs:?}");
    let now = clock.now;
    assert!(cs.iter().any(|c| c.first >= now - Duration::days(30)), "new customers");
    assert!(cs.iter().any(|c| c.last < now - Duration::days(90)), "churned customers");
    cs
}

struct World {
    app: TestApp,
    clock: Clock,
    evs: Vec<Ev>,
    all: Vec<Cust>,
}

/// A server with tenant `acme`'s population of `seed`.
async fn world(seed: u64) -> World {
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let evs = population(seed, &clock);
    ingest(&app, "acme", &evs).await;
    let all = scored_population(&evs, &clock);
    World { app, clock, evs, all }
}

// ---------------------------------------------------------------------------------------
// The model itself
// ---------------------------------------------------------------------------------------

#[test]
fn the_model_follows_the_definitions() {
    // ntile(5): the first n % 5 groups have one row more.
    assert_eq!(tiles(0), Vec::<u8>::new());
    assert_eq!(tiles(3), vec![1, 2, 3]);
    assert_eq!(tiles(5), vec![1, 2, 3, 4, 5]);
    assert_eq!(tiles(7), vec![1, 1, 2, 2, 3, 4, 5]);
    assert_eq!(tiles(12), vec![1, 1, 1, 2, 2, 2, 3, 3, 4, 4, 5, 5]);
    // The grid and the ranges say the same.
    for r in 1..=5u8 {
        for f in 1..=5u8 {
            let by_range: Vec<usize> = (0..10)
                .filter(|&i| {
                    let (_, _, rr, ff) = SEGS[i];
                    (rr.0..=rr.1).contains(&r) && (ff.0..=ff.1).contains(&f)
                })
                .collect();
            assert_eq!(by_range, vec![seg(r, f)], "R{r} F{f}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// /customers/rfm
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn rfm_scores_every_customer_in_quintiles_of_all_customers() {
    let w = world(1).await;
    let tok = viewer("acme");
    let before = Utc::now() - Duration::seconds(1);
    let b = get_ok(&w.app, &tok, RFM, &[("limit", "1000")]).await;
    let after = Utc::now() + Duration::seconds(1);
    check_rfm(&b, &w.all, &|_| true, 1000, "everyone");
    let as_of = DateTime::parse_from_rfc3339(b["metadata"]["as_of"].as_str().unwrap()).unwrap();
    assert!(as_of >= before && as_of <= after, "as_of {as_of} is now");

    // Every score is a quintile: each appears n / 5 or n / 5 + 1 times.
    let n = w.all.len();
    for key in ["recency_score", "frequency_score", "monetary_score"] {
        let mut counts = [0usize; 5];
        for row in b["data"].as_array().unwrap() {
            counts[row[key].as_u64().unwrap() as usize - 1] += 1;
        }
        let want: Vec<usize> = (0..5).map(|k| n / 5 + usize::from(k < n % 5)).collect();
        assert_eq!(counts.to_vec(), want, "{key}");
    }
    // The distribution names every segment, and adds up to every customer.
    let dist = b["summary"]["segment_distribution"].as_object().unwrap();
    assert_eq!(dist.keys().cloned().collect::<BTreeSet<_>>(), SEGS.iter().map(|s| s.1.to_owned()).collect());
    assert_eq!(dist.values().map(|v| v.as_u64().unwrap()).sum::<u64>(), n as u64);

    // Without a limit: 100 rows, and the rest cut.
    let b = get_ok(&w.app, &tok, RFM, &[]).await;
    check_rfm(&b, &w.all, &|_| true, 100, "default limit");
    assert_eq!(b["data"].as_array().unwrap().len(), 100);
    assert_eq!(b["metadata"]["truncated"], true);
}

#[tokio::test]
async fn rfm_limit_cuts_the_ordered_rows() {
    let w = world(2).await;
    let tok = viewer("acme");
    let n = w.all.len();
    let n_s = n.to_string();
    let under = (n - 1).to_string();
    for limit in ["1", "7", "100", under.as_str(), n_s.as_str(), "999", "1000"] {
        let l: usize = limit.parse().unwrap();
        let b = get_ok(&w.app, &tok, RFM, &[("limit", limit)]).await;
        check_rfm(&b, &w.all, &|_| true, l, &format!("limit {limit}"));
        assert_eq!(b["metadata"]["truncated"], l < n, "limit {limit} of {n}");
    }
    // A filter that matches exactly `limit` rows is not cut.
    let top = chosen(&w.all, &|_| true)[4].score();
    let matching = w.all.iter().filter(|c| c.score() >= top).count();
    let (min, lim) = (top.to_string(), matching.to_string());
    let b = get_ok(&w.app, &tok, RFM, &[("min_score", &min), ("limit", &lim)]).await;
    check_rfm(&b, &w.all, &|c| c.score() >= top, matching, "exactly the limit");
    assert_eq!(b["metadata"]["truncated"], false);
    let less = (matching - 1).to_string();
    let b = get_ok(&w.app, &tok, RFM, &[("min_score", &min), ("limit", &less)]).await;
    assert_eq!(b["metadata"]["truncated"], true);
}

#[tokio::test]
async fn rfm_filters_choose_rows_but_the_summary_covers_everyone() {
    let w = world(3).await;
    let tok = viewer("acme");
    let all = &w.all;

    // customer_id: customers known by user_id and by properties.customer_id.
    let by_user = all.iter().find(|c| c.id.starts_with('u')).unwrap().id.clone();
    let by_prop = all.iter().find(|c| c.id.starts_with('c')).unwrap().id.clone();
    for id in [&by_user, &by_prop] {
        let b = get_ok(&w.app, &tok, RFM, &[("customer_id", id)]).await;
        check_rfm(&b, all, &|c| &c.id == id, 100, &format!("customer_id {id}"));
        assert_eq!(b["data"].as_array().unwrap().len(), 1);
    }
    // A guest who only bought for others, a ghost with only other events, nobody.
    let guest = w.evs.iter().filter_map(|e| e.user.clone()).find(|u| u.starts_with("guest")).unwrap();
    for id in [guest.as_str(), "ghost1", "ghost-c1", "nobody", "U0"] {
        let b = get_ok(&w.app, &tok, RFM, &[("customer_id", id)]).await;
        check_rfm(&b, all, &|c| c.id == id, 100, &format!("customer_id {id}"));
        assert_eq!(b["data"], json!([]), "{id} is no customer");
    }

    // segment: by id and by name, in any case.
    for (i, (id, name, ..)) in SEGS.iter().enumerate() {
        for asked in [id.to_string(), name.to_string(), name.to_uppercase(), id.to_uppercase(), name.to_lowercase()] {
            let b = get_ok(&w.app, &tok, RFM, &[("segment", &asked), ("limit", "1000")]).await;
            check_rfm(&b, all, &|c| c.seg() == i, 1000, &format!("segment {asked}"));
            for row in b["data"].as_array().unwrap() {
                assert_eq!(row["segment"], *name, "segment {asked}");
            }
        }
    }

    // min_score: at least.
    for min in [0u32, 111, 250, 333, 345, 444, 500, 555, 556, 999] {
        let m = min.to_string();
        let b = get_ok(&w.app, &tok, RFM, &[("min_score", &m), ("limit", "1000")]).await;
        check_rfm(&b, all, &|c| c.score() >= min, 1000, &format!("min_score {min}"));
    }
    let exact = all.iter().map(Cust::score).max().unwrap();
    let b = get_ok(&w.app, &tok, RFM, &[("min_score", &exact.to_string())]).await;
    assert!(!b["data"].as_array().unwrap().is_empty(), "min_score equal to the best score keeps it");

    // Together.
    let b = get_ok(&w.app, &tok, RFM, &[("segment", "Hibernating"), ("min_score", "200"), ("limit", "3")]).await;
    check_rfm(&b, all, &|c| c.seg() == 9 && c.score() >= 200, 3, "segment + min_score + limit");
    let (s, id) = (SEGS[all[0].seg()].0, all[0].id.clone());
    let b = get_ok(&w.app, &tok, RFM, &[("segment", s), ("customer_id", &id)]).await;
    check_rfm(&b, all, &|c| c.id == id, 100, "segment + customer_id");
    assert_eq!(b["data"].as_array().unwrap().len(), 1);
    let other = SEGS[(all[0].seg() + 1) % 10].0;
    let b = get_ok(&w.app, &tok, RFM, &[("segment", other), ("customer_id", &id)]).await;
    assert_eq!(b["data"], json!([]), "{id} is not in {other}");
    assert_eq!(b["summary"], summary(all), "summary regardless of filters");
}

/// Hand-made customers whose scores are worked out on paper (not with the model).
fn hand_made(clock: &Clock) -> Vec<Ev> {
    let at = |d: i64| clock.days_ago(d);
    let tie = at(2) + Duration::seconds(17);
    use Amount::*;
    vec![
        // a: one purchase 100 days ago, 10. Its other events never count.
        Ev::new("purchase", Some("a"), None, Quarters(40), at(100)),
        Ev::new("refund", Some("a"), None, Whole(1000), at(1)),
        Ev::new("page_view", Some("a"), Some("a"), Whole(1000), at(1)),
        // b: 50 and 40 days ago, 5 and no amount.
        Ev::new("purchase", Some("b"), None, Whole(5), at(50)),
        Ev::new("ticket_purchase", Some("b"), None, Missing, at(40)).seed001(),
        // c: by customer_id, without a user, 20 days ago, a word for an amount.
        Ev::new("purchase", None, Some("c"), Junk(json!("n/a")), at(20)),
        // d: three purchases that user a made for d: 60, 25, 10 days ago, 10 each.
        Ev::new("purchase", Some("a"), Some("d"), Quarters(40), at(60)),
        Ev::new("purchase", Some("a"), Some("d"), Whole(10), at(25)),
        Ev::new("ticket_purchase", Some("a"), Some("d"), Quarters(40), at(10)).seed001(),
        // e: 5 days ago, customer_id null (so the user), no amount.
        Ev::new("purchase", Some("e"), None, Missing, at(5)).null_customer(),
        // f: 15 days ago 2.5, and 5 at the very instant of g's last purchase.
        Ev::new("purchase", Some("f"), None, Quarters(10), at(15)),
        Ev::new("ticket_purchase", Some("f"), None, Whole(5), tie),
        // g: five purchases of 20 (made by z, who buys nothing for itself).
        Ev::new("purchase", Some("z"), Some("g"), Whole(20), at(150)),
        Ev::new("purchase", Some("z"), Some("g"), Quarters(80), at(120)),
        Ev::new("ticket_purchase", Some("z"), Some("g"), Whole(20), at(80)).seed001(),
        Ev::new("purchase", None, Some("g"), Whole(20), at(45)),
        Ev::new("ticket_purchase", Some("g"), None, Whole(20), tie).seed001(),
        // Never anyone's: a purchase of nobody, and events of other names.
        Ev::new("purchase", None, None, Whole(50), at(3)),
        Ev::new("purchases", Some("h"), None, Whole(10), at(1)),
        Ev::new("ticket_purchased", Some("h"), Some("h"), Whole(10), at(1)),
    ]
}

#[tokio::test]
async fn rfm_of_hand_made_customers() {
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let evs = hand_made(&clock);
    ingest(&app, "hand", &evs).await;
    let b = get_ok(&app, &viewer("hand"), RFM, &[]).await;
    // Recency (oldest first): a b | c d | e | f | g (f and g tie at one instant: f first).
    // Frequency: a c e (1) b f (2) d (3) g (5): a c | e b | f | d | g.
    // Money: c e (0) b (5) f (7.5) a (10) d (30) g (100): c e | b f | a | d | g.
    let date = |d: i64| clock.days_ago(d).format("%Y-%m-%d").to_string();
    let tie_date = (clock.days_ago(2) + Duration::seconds(17)).format("%Y-%m-%d").to_string();
    let row = |id: &str, r: u8, f: u8, m: u8, seg: &str, last: String, n: u64, spent: f64| {
        json!({"customer_id": id, "recency_score": r, "frequency_score": f, "monetary_score": m,
               "rfm_score": r as u32 * 100 + f as u32 * 10 + m as u32, "segment": seg,
               "last_purchase": last, "total_purchases": n, "total_spent": spent})
    };
    let want = json!([
        row("g", 5, 5, 5, "Champions", tie_date.clone(), 5, 100.0),
        row("f", 4, 3, 2, "Potential Loyalists", tie_date, 2, 7.5),
        row("e", 3, 2, 1, "About to Sleep", date(5), 1, 0.0),
        row("d", 2, 4, 4, "At Risk", date(10), 3, 30.0),
        row("c", 2, 1, 1, "Hibernating", date(20), 1, 0.0),
        row("b", 1, 2, 2, "Hibernating", date(40), 2, 5.0),
        row("a", 1, 1, 3, "Hibernating", date(100), 1, 10.0),
    ]);
    assert_eq!(b["data"], want);
    let dist = json!({"Champions": 1, "Loyal Customers": 0, "Potential Loyalists": 1, "New Customers": 0,
        "Promising": 0, "Need Attention": 0, "About to Sleep": 1, "At Risk": 1, "Can't Lose Them": 0,
        "Hibernating": 3});
    // (555 + 432 + 321 + 244 + 211 + 122 + 113) / 7 = 285.428...
    assert_eq!(b["summary"], json!({"total_customers": 7, "avg_rfm_score": 285.43, "segment_distribution": dist}));
    assert_eq!(b["metadata"]["truncated"], false);
    // The model agrees with the paper.
    check_rfm(&b, &customers(&evs, None, None), &|_| true, 100, "hand-made");

    let b = get_ok(&app, &viewer("hand"), RFM, &[("min_score", "300")]).await;
    assert_eq!(b["data"], json!([want[0], want[1], want[2]]));
    let b = get_ok(&app, &viewer("hand"), RFM, &[("segment", "hibernating"), ("limit", "2")]).await;
    assert_eq!(b["data"], json!([want[4], want[5]]));
    assert_eq!(b["metadata"]["truncated"], true);
    let b = get_ok(&app, &viewer("hand"), RFM, &[("customer_id", "a")]).await;
    assert_eq!(b["data"], json!([want[6]]), "a's purchases for d are d's");
    for nobody in ["z", "h"] {
        let b = get_ok(&app, &viewer("hand"), RFM, &[("customer_id", nobody)]).await;
        assert_eq!(b["data"], json!([]), "{nobody}");
    }

    // Insights: c, e, f bought first within 30 days; a's last purchase is 100 days old.
    let b = get_ok(&app, &viewer("hand"), INSIGHTS, &[]).await;
    let s = |id: &str, name: &str, n: u64, p: f64| json!({"id": id, "name": name, "count": n, "percentage": p});
    assert_eq!(
        b,
        json!({
            "total_customers": 7, "new_customers_30d": 3, "churn_rate": 14.29,
            "average_ltv": 21.79, // 152.5 / 7
            "segments": [
                s("champions", "Champions", 1, 14.29), s("loyal_customers", "Loyal Customers", 0, 0.0),
                s("potential_loyalists", "Potential Loyalists", 1, 14.29), s("new_customers", "New Customers", 0, 0.0),
                s("promising", "Promising", 0, 0.0), s("need_attention", "Need Attention", 0, 0.0),
                s("about_to_sleep", "About to Sleep", 1, 14.29), s("at_risk", "At Risk", 1, 14.29),
                s("cant_lose_them", "Can't Lose Them", 0, 0.0), s("hibernating", "Hibernating", 3, 42.86),
            ],
        })
    );
    let b = get_ok(&app, &viewer("hand"), INSIGHTS, &[("segment", "Hibernating")]).await;
    assert_eq!(b["total_customers"], 3);
    assert_eq!(b["new_customers_30d"], 1, "c");
    assert_eq!(b["churn_rate"], 33.33, "a");
    assert_eq!(b["average_ltv"], 5.0, "(10 + 5 + 0) / 3");
    assert_eq!(b["segments"][9], s("hibernating", "Hibernating", 3, 100.0));
    assert_eq!(b["segments"][0], s("champions", "Champions", 0, 0.0));

    // Segments: members and their average spend.
    let b = get_ok(&app, &viewer("hand"), SEGMENTS, &[]).await;
    let counts: Vec<(u64, f64)> = b["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["customer_count"].as_u64().unwrap(), s["avg_revenue"].as_f64().unwrap()))
        .collect();
    assert_eq!(
        counts,
        vec![(1, 100.0), (0, 0.0), (1, 7.5), (0, 0.0), (0, 0.0), (0, 0.0), (1, 0.0), (1, 30.0), (0, 0.0), (3, 5.0)]
    );
    check_segments(&b, &customers(&evs, None, None), "hand-made");
}

#[tokio::test]
async fn rfm_of_few_or_no_customers() {
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let zeros: Map<String, Value> = SEGS.iter().map(|s| (s.1.to_owned(), json!(0))).collect();

    // Nobody: empty answers with every segment at 0.
    let b = get_ok(&app, &viewer("empty"), RFM, &[]).await;
    assert_eq!(b["data"], json!([]));
    assert_eq!(b["summary"], json!({"total_customers": 0, "avg_rfm_score": 0.0, "segment_distribution": zeros}));
    assert_eq!(b["metadata"]["truncated"], false);
    let b = get_ok(&app, &viewer("empty"), INSIGHTS, &[]).await;
    assert_eq!(b, insights_want(&[], clock.now));
    assert_eq!(b["churn_rate"], 0.0);
    assert_eq!(b["segments"].as_array().unwrap().len(), 10);
    let b = get_ok(&app, &viewer("empty"), SEGMENTS, &[]).await;
    check_segments(&b, &[], "empty");

    // One customer, who bought yesterday, is in the first quintile of everything.
    ingest(&app, "one", &[Ev::new("purchase", Some("solo"), None, Amount::Whole(9), clock.days_ago(1))]).await;
    let b = get_ok(&app, &viewer("one"), RFM, &[]).await;
    assert_eq!(b["data"][0]["rfm_score"], 111);
    assert_eq!(b["data"][0]["segment"], "Hibernating");
    assert_eq!(b["summary"]["avg_rfm_score"], 111.0);

    // Two: each their own tile.
    let two = vec![
        Ev::new("purchase", Some("p"), None, Amount::Whole(5), clock.days_ago(9)),
        Ev::new("purchase", Some("q"), None, Amount::Whole(1), clock.days_ago(3)),
        Ev::new("ticket_purchase", Some("q"), None, Amount::Missing, clock.days_ago(4)),
    ];
    ingest(&app, "two", &two).await;
    let b = get_ok(&app, &viewer("two"), RFM, &[]).await;
    let scores: Vec<(&str, u64)> = b["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["customer_id"].as_str().unwrap(), r["rfm_score"].as_u64().unwrap()))
        .collect();
    assert_eq!(scores, vec![("q", 221), ("p", 112)]);
    assert_eq!(b["summary"]["avg_rfm_score"], 166.5);
    check_rfm(&b, &customers(&two, None, None), &|_| true, 100, "two");
}

// ---------------------------------------------------------------------------------------
// /customers/insights
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn insights_count_new_churned_lifetime_value_and_segments() {
    let w = world(4).await;
    let tok = viewer("acme");
    let everyone: Vec<&Cust> = w.all.iter().collect();
    let b = get_ok(&w.app, &tok, INSIGHTS, &[]).await;
    assert_eq!(
        keys(&b),
        set(&["total_customers", "new_customers_30d", "churn_rate", "average_ltv", "segments"]),
        "{b}"
    );
    for s in b["segments"].as_array().unwrap() {
        assert_eq!(keys(s), set(&["id", "name", "count", "percentage"]), "{s}");
    }
    assert_eq!(b, insights_want(&everyone, w.clock.now));
    let want = insights_want(&everyone, w.clock.now);
    assert!(want["new_customers_30d"].as_u64().unwrap() > 0 && want["churn_rate"].as_f64().unwrap() > 0.0);

    // segment: the population is the segment's customers, asked by id or by name.
    for (i, (id, name, ..)) in SEGS.iter().enumerate() {
        let members: Vec<&Cust> = w.all.iter().filter(|c| c.seg() == i).collect();
        for asked in [id.to_string(), name.to_string(), name.to_uppercase()] {
            let b = get_ok(&w.app, &tok, INSIGHTS, &[("segment", &asked)]).await;
            assert_eq!(b, insights_want(&members, w.clock.now), "segment {asked}");
            if !members.is_empty() {
                assert_eq!(b["segments"][i]["percentage"], 100.0, "segment {asked}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// /customers/segments
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn segments_list_criteria_members_and_average_revenue() {
    let w = world(5).await;
    let tok = viewer("acme");
    let b = get_ok(&w.app, &tok, SEGMENTS, &[]).await;
    for s in b["segments"].as_array().unwrap() {
        assert_eq!(keys(s), set(&["id", "name", "description", "criteria", "customer_count", "avg_revenue"]), "{s}");
    }
    check_segments(&b, &w.all, "everyone");
    let total: u64 = b["segments"].as_array().unwrap().iter().map(|s| s["customer_count"].as_u64().unwrap()).sum();
    assert_eq!(total, w.all.len() as u64);
    // The same members as /rfm's segment filter.
    let rfm = get_ok(&w.app, &tok, RFM, &[("limit", "1000")]).await;
    for s in b["segments"].as_array().unwrap() {
        let n = rfm["data"].as_array().unwrap().iter().filter(|r| r["segment"] == s["name"]).count();
        assert_eq!(s["customer_count"], n, "{s}");
        assert_eq!(rfm["summary"]["segment_distribution"][s["name"].as_str().unwrap()], n);
    }
}

// ---------------------------------------------------------------------------------------
// period
// ---------------------------------------------------------------------------------------

/// Where a period word starts, by the README: `-Nd` is today and the N - 1 days before,
/// `-Nw` the same in weeks, calendar words at their local (UTC) midnight.
fn period_start(p: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let today = now.date_naive();
    let back = |days: i64| Some(midnight(today + Duration::days(1 - days)));
    match p {
        "" | "all" => None,
        "-90d" => back(90),
        "-30d" => back(30),
        "-4w" => back(28),
        "this_month" => Some(midnight(today.with_day(1).unwrap())),
        "this_year" => Some(midnight(NaiveDate::from_ymd_opt(today.year(), 1, 1).unwrap())),
        _ => unreachable!("{p}"),
    }
}

#[tokio::test]
async fn a_period_restricts_the_purchases_scored() {
    let w = world(6).await;
    let tok = viewer("acme");
    let earliest = w.evs.iter().map(|e| e.ts).min().unwrap();
    let mut sizes = BTreeSet::new();
    for p in ["-90d", "-30d", "-4w", "this_month", "this_year", "all", ""] {
        let since = period_start(p, w.clock.now);
        let cs = customers(&w.evs, since, None);
        sizes.insert(cs.len());
        let b = get_ok(&w.app, &tok, RFM, &[("period", p), ("limit", "1000")]).await;
        check_rfm(&b, &cs, &|_| true, 1000, &format!("period {p}"));
        // Filters still choose within the period's customers; the summary covers them all.
        let b = get_ok(&w.app, &tok, RFM, &[("period", p), ("min_score", "400"), ("limit", "5")]).await;
        check_rfm(&b, &cs, &|c| c.score() >= 400, 5, &format!("period {p} + min_score"));

        let pick: Vec<&Cust> = cs.iter().collect();
        let mut want = insights_want(&pick, w.clock.now);
        let mut got = get_ok(&w.app, &tok, INSIGHTS, &[("period", p)]).await;
        if since.is_some_and(|s| s > earliest) {
            // Whether "new" means a first purchase ever or within the period is open
            // (see the report); everything else is checked.
            want.as_object_mut().unwrap().remove("new_customers_30d");
            got.as_object_mut().unwrap().remove("new_customers_30d");
        }
        assert_eq!(got, want, "insights, period {p}");
        if let Some(s) = since.filter(|s| *s > w.clock.now - Duration::days(90)) {
            assert_eq!(got["churn_rate"], 0.0, "nobody in a period from {s} is churned");
        }
        let seg = SEGS[pick.first().map_or(0, |c| c.seg())].1;
        let members: Vec<&Cust> = cs.iter().filter(|c| SEGS[c.seg()].1 == seg).collect();
        let mut want = insights_want(&members, w.clock.now);
        let mut got = get_ok(&w.app, &tok, INSIGHTS, &[("period", p), ("segment", seg)]).await;
        want.as_object_mut().unwrap().remove("new_customers_30d");
        got.as_object_mut().unwrap().remove("new_customers_30d");
        assert_eq!(got, want, "insights, period {p}, segment {seg}");
    }
    assert!(sizes.len() >= 4, "the periods hold different customers: {sizes:?}");
}

// ---------------------------------------------------------------------------------------
// Tenants
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn another_tenants_purchases_never_count() {
    let w = world(7).await;
    // The same customer ids in another tenant, and big purchases for acme's customers.
    let mut theirs = population(8, &w.clock);
    for c in w.all.iter().take(20) {
        theirs.push(Ev::new("purchase", Some(&c.id), None, Amount::Whole(100_000), w.clock.days_ago(3)));
        theirs.push(Ev::new("purchase", Some("someone"), Some(&c.id), Amount::Whole(100_000), w.clock.days_ago(2)));
    }
    theirs.push(Ev::new("purchase", Some("only-theirs"), None, Amount::Whole(7), w.clock.days_ago(3)));
    ingest(&w.app, "rival", &theirs).await;
    let rival = customers(&theirs, None, None);

    for (tenant, all) in [("acme", &w.all), ("rival", &rival)] {
        let tok = viewer(tenant);
        let b = get_ok(&w.app, &tok, RFM, &[("limit", "1000")]).await;
        check_rfm(&b, all, &|_| true, 1000, tenant);
        let b = get_ok(&w.app, &tok, INSIGHTS, &[]).await;
        assert_eq!(b, insights_want(&all.iter().collect::<Vec<_>>(), w.clock.now), "{tenant}");
        let b = get_ok(&w.app, &tok, SEGMENTS, &[]).await;
        check_segments(&b, all, tenant);
    }
    let b = get_ok(&w.app, &viewer("acme"), RFM, &[("customer_id", "only-theirs")]).await;
    assert_eq!(b["data"], json!([]));
    assert_ne!(summary(&w.all), summary(&rival));
    // A credential of one tenant naming the other is refused.
    let p = assert_problem(&send(w.app.get(RFM).bearer_auth(viewer("rival")).header("X-Tenant-ID", "acme")).await, 403);
    assert!(p["type"].as_str().unwrap().ends_with("/forbidden"), "{p}");
}

// ---------------------------------------------------------------------------------------
// Bad inputs
// ---------------------------------------------------------------------------------------

/// A 400 validation problem whose detail holds every one of `needles`; when `field` is
/// given, `errors` names it.
#[track_caller]
fn assert_bad(got: &(u16, Value, String), path: &str, field: Option<&str>, needles: &[&str], ctx: &str) {
    let p = assert_problem(got, 400);
    assert!(p["type"].as_str().unwrap().ends_with("/validation"), "{ctx}: {p}");
    assert!(p["instance"].as_str().unwrap().starts_with(path), "{ctx}: {p}");
    let detail = p["detail"].as_str().unwrap();
    for n in needles {
        assert!(detail.contains(n), "{ctx}: detail '{detail}' lacks '{n}'");
    }
    if let Some(f) = field {
        let errs = p["errors"].as_array().unwrap_or_else(|| panic!("{ctx}: no errors in {p}"));
        assert!(errs.iter().any(|e| e["field"] == f), "{ctx}: no error on {f}: {p}");
    }
}

#[tokio::test]
async fn bad_customer_queries_are_problems() {
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    ingest(&app, "acme", &hand_made(&clock)).await;
    let tok = viewer("acme");
    let names: Vec<&str> = SEGS.iter().map(|s| s.1).collect();
    let mut unknown = vec!["unknown segment 'vip'"];
    unknown.extend(&names);
    let cases: Vec<(&str, &[(&str, &str)], Option<&str>, Vec<&str>)> = vec![
        (RFM, &[("limit", "0")], Some("limit"), vec!["1000"]),
        (RFM, &[("limit", "1001")], Some("limit"), vec!["1000"]),
        (RFM, &[("limit", "-1")], None, vec!["limit"]),
        (RFM, &[("limit", "ten")], None, vec!["limit"]),
        (RFM, &[("limit", "2.5")], None, vec!["limit"]),
        (RFM, &[("segment", "vip")], Some("segment"), unknown.clone()),
        (RFM, &[("segment", "vip"), ("limit", "5")], Some("segment"), unknown.clone()),
        (RFM, &[("min_score", "high")], None, vec!["min_score"]),
        (RFM, &[("min_score", "4.5")], None, vec!["min_score"]),
        (RFM, &[("min_score", "-1")], None, vec!["min_score"]),
        (RFM, &[("period", "fortnight")], Some("period"), vec!["unknown date range 'fortnight'", "this_year"]),
        (RFM, &[("period", "-0d")], Some("period"), vec!["unknown date range '-0d'"]),
        (RFM, &[("period", "-20y")], Some("period"), vec!["at most 3660 days"]),
        (INSIGHTS, &[("period", "fortnight")], Some("period"), vec!["unknown date range 'fortnight'"]),
        (INSIGHTS, &[("period", "-20y")], Some("period"), vec!["at most 3660 days"]),
    ];
    for (path, q, field, needles) in cases {
        let got = send(app.get(path).bearer_auth(&tok).query(q)).await;
        assert_bad(&got, path, field, &needles, &format!("{path} {q:?}"));
    }
    // The limits themselves are allowed.
    for limit in ["1", "1000"] {
        let b = get_ok(&app, &tok, RFM, &[("limit", limit)]).await;
        assert_eq!(b["summary"]["total_customers"], 7, "limit {limit}");
    }
}

// ---------------------------------------------------------------------------------------
// Authorization
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn customer_endpoints_need_a_reading_role() {
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    let evs = hand_made(&clock);
    ingest(&app, "acme", &evs).await;
    let all = customers(&evs, None, None);
    for path in [RFM, INSIGHTS, SEGMENTS] {
        let p = assert_problem(&send(app.get(path)).await, 401);
        assert!(p["type"].as_str().unwrap().ends_with("/unauthorized"), "{path}: {p}");
        let p = assert_problem(&send(app.get(path).bearer_auth("not-a-token")).await, 401);
        assert!(p["type"].as_str().unwrap().ends_with("/unauthorized"), "{path}: {p}");
        let p = assert_problem(&send(app.get(path).bearer_auth(token("ingest", Some("acme")))).await, 403);
        assert!(p["type"].as_str().unwrap().ends_with("/forbidden"), "{path}: {p}");
        for role in ["viewer", "analyst", "admin"] {
            let b = get_ok(&app, &token(role, Some("acme")), path, &[]).await;
            match path {
                RFM => check_rfm(&b, &all, &|_| true, 100, role),
                INSIGHTS => assert_eq!(b, insights_want(&all.iter().collect::<Vec<_>>(), clock.now), "{role}"),
                _ => check_segments(&b, &all, role),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Bugs
// ---------------------------------------------------------------------------------------

/// `/customers/rfm` refuses a segment it does not know, listing the names;
/// `/customers/insights` takes the same `segment` and should too, instead of answering
/// zeros as if the segment existed and were empty.
#[tokio::test]
async fn insights_refuse_an_unknown_segment() {
    let app = TestApp::spawn().await;
    let clock = Clock::new();
    ingest(&app, "acme", &hand_made(&clock)).await;
    let got = send(app.get(INSIGHTS).bearer_auth(viewer("acme")).query(&[("segment", "vip")])).await;
    let mut needles = vec!["unknown segment 'vip'"];
    needles.extend(SEGS.iter().map(|s| s.1));
    assert_bad(&got, INSIGHTS, Some("segment"), &needles, "insights segment vip");
}

/// A period restricts purchases to the period: `last_month` is last month, not last month
/// until now; `yesterday` ends at today's midnight.
#[tokio::test]
async fn a_period_that_has_ended_excludes_later_purchases() {
    let w = world(9).await;
    let tok = viewer("acme");
    let today = w.clock.now.date_naive();
    let month1 = today.with_day(1).unwrap();
    let periods = [
        ("last_month", midnight(month1.checked_sub_months(Months::new(1)).unwrap()), midnight(month1)),
        ("yesterday", midnight(today - Duration::days(1)), midnight(today)),
    ];
    for (p, start, end) in periods {
        let cs = customers(&w.evs, Some(start), Some(end));
        let b = get_ok(&w.app, &tok, RFM, &[("period", p), ("limit", "1000")]).await;
        check_rfm(&b, &cs, &|_| true, 1000, &format!("period {p}"));
        let mut got = get_ok(&w.app, &tok, INSIGHTS, &[("period", p)]).await;
        let mut want = insights_want(&cs.iter().collect::<Vec<_>>(), w.clock.now);
        want.as_object_mut().unwrap().remove("new_customers_30d");
        got.as_object_mut().unwrap().remove("new_customers_30d");
        assert_eq!(got, want, "insights, period {p}");
    }
}

/// Seed 001 gives a segment's criteria as `{"rfm_min", "rfm_max"}`; the answer has only
/// R and F ranges, so a client written to the seed finds no criteria. Whatever bounds a
/// fix chooses, every member's rfm_score must lie within them.
#[tokio::test]
async fn segment_criteria_carry_the_seeds_rfm_bounds() {
    let w = world(10).await;
    let tok = viewer("acme");
    let b = get_ok(&w.app, &tok, SEGMENTS, &[]).await;
    for (i, s) in b["segments"].as_array().unwrap().iter().enumerate() {
        let c = &s["criteria"];
        let (Some(lo), Some(hi)) = (c["rfm_min"].as_u64(), c["rfm_max"].as_u64()) else {
            panic!("criteria without rfm_min/rfm_max: {s}");
        };
        assert!((111..=555).contains(&lo) && lo <= hi && hi <= 555, "{s}");
        for m in w.all.iter().filter(|m| m.seg() == i) {
            assert!((lo..=hi).contains(&(m.score() as u64)), "{} ({}) outside {s}", m.id, m.score());
        }
    }
}
