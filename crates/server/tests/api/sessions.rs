//! One definition of a session, seen the same by every analysis that counts sessions:
//! the `sessions` metric of the insights endpoint (aggregate and daily trend), one user's
//! analytics, a segment's members, and the custom-SQL `sessions` view. Each is checked
//! against a plain-Rust model of the rule as the docs write it (a client's `session_id`;
//! else a user's events without one, cut after more than 30 minutes; else no session).

use crate::helpers::*;
use chrono::{DateTime, Duration, SecondsFormat, TimeZone, Utc};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

const BATCH: &str = "/api/v1/analytics/events/batch";

#[derive(Debug, Clone)]
struct Ev {
    user: Option<String>,
    session: Option<String>,
    ts: DateTime<Utc>,
}

/// Each event's session, from the rule: `(key, user)` per event, `None` without one.
fn sessions_of(evs: &[Ev]) -> Vec<Option<String>> {
    let mut keys = vec![None; evs.len()];
    let mut per_user: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, e) in evs.iter().enumerate() {
        match (&e.session, &e.user) {
            (Some(s), _) => keys[i] = Some(format!("s:{s}")),
            (None, Some(u)) => per_user.entry(u).or_default().push(i),
            (None, None) => {}
        }
    }
    for (u, mut idx) in per_user {
        idx.sort_by_key(|&i| evs[i].ts);
        let (mut n, mut last) = (0, None::<DateTime<Utc>>);
        for i in idx {
            if last.is_none_or(|l| evs[i].ts - l > Duration::minutes(30)) {
                n += 1;
            }
            last = Some(evs[i].ts);
            keys[i] = Some(format!("u:{u}:{n}"));
        }
    }
    keys
}

/// Distinct sessions among the events `keep` selects.
fn count(evs: &[Ev], keys: &[Option<String>], keep: impl Fn(&Ev) -> bool) -> usize {
    evs.iter().zip(keys).filter(|(e, _)| keep(e)).filter_map(|(_, k)| k.clone()).collect::<BTreeSet<_>>().len()
}

fn generate(rng: &mut Rng, start: DateTime<Utc>) -> Vec<Ev> {
    let mut evs = Vec::new();
    for u in 0..12 {
        let user = format!("user-{u}");
        let mut t = start + Duration::minutes(rng.below(600) as i64);
        for _ in 0..(5 + rng.below(40)) {
            // Gaps around the 30-minute edge, exactly on it, well inside and far beyond.
            let gap = match rng.below(6) {
                0 => Duration::minutes(30),
                1 => Duration::minutes(30) + Duration::seconds(1),
                2 => Duration::seconds(rng.below(1800) as i64),
                3 => Duration::zero(),
                4 => Duration::hours(1 + rng.below(30) as i64),
                _ => Duration::minutes(29) + Duration::seconds(59),
            };
            t += gap;
            let session = rng.chance(30).then(|| format!("client-{}", rng.below(8)));
            evs.push(Ev { user: Some(user.clone()), session, ts: t });
        }
    }
    // Anonymous events: with a client session they count, without one they do not.
    for i in 0..20 {
        let session = (i % 2 == 0).then(|| format!("anon-{}", i % 6));
        evs.push(Ev { user: None, session, ts: start + Duration::minutes(37 * i) });
    }
    evs
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

#[tokio::test]
async fn every_analysis_counts_the_same_sessions() {
    let app = TestApp::spawn().await;
    let tok = token("admin", Some("sess"));
    let start = Utc.with_ymd_and_hms(2026, 1, 3, 0, 0, 0).unwrap();
    let mut rng = Rng(0x5e55_1075);
    let evs = generate(&mut rng, start);
    let keys = sessions_of(&evs);
    assert!(evs.iter().all(|e| e.ts < Utc::now()), "the data lies in the past, as segments read up to now");
    let body: Vec<Value> = evs
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let mut o = json!({"event_name": "page_view", "event_id": format!("e{i}"), "timestamp": iso(e.ts)});
            if let Some(u) = &e.user {
                o["user_id"] = json!(u);
            }
            if let Some(s) = &e.session {
                o["session_id"] = json!(s);
            }
            o
        })
        .collect();
    let (s, b, _) = send(app.post(BATCH).bearer_auth(&tok).json(&json!({ "events": body }))).await;
    assert_eq!((s, &b["tracked"]), (200, &json!(evs.len())), "{b}");
    // Another tenant's events with the same users and ids never count.
    let (s, _, _) =
        send(app.post(BATCH).bearer_auth(token("admin", Some("other"))).json(&json!({ "events": body }))).await;
    assert_eq!(s, 200);

    // The insights metric over the whole range, and day by day (a session that crosses
    // midnight counts on both days).
    let (first, last) = (start.date_naive(), evs.iter().map(|e| e.ts).max().unwrap().date_naive());
    let range = json!({"start": first.to_string(), "end": last.to_string()});
    let q = json!({"kind": "aggregate", "series": ["sessions"], "date_range": range});
    let (s, b, _) = send(app.post("/api/v1/insights").bearer_auth(&tok).json(&q)).await;
    assert_eq!(s, 200, "{b}");
    let total = count(&evs, &keys, |_| true);
    assert!(total > 50, "enough sessions to tell definitions apart: {total}");
    assert_eq!(b["series"][0]["value"], json!(total), "{b}");
    let q = json!({"kind": "trend", "series": ["sessions"], "granularity": "day", "date_range": range});
    let (s, b, _) = send(app.post("/api/v1/insights").bearer_auth(&tok).json(&q)).await;
    assert_eq!(s, 200, "{b}");
    for point in b["series"][0]["data"].as_array().unwrap() {
        let day = point["date"].as_str().unwrap();
        let want = count(&evs, &keys, |e| e.ts.date_naive().to_string() == day);
        assert_eq!(point["value"], json!(want), "sessions on {day}");
    }

    // One user's analytics, over the same range.
    for u in ["user-0", "user-5", "user-11"] {
        let url = format!("/api/v1/analytics/users/{u}/analytics?start_date={first}&end_date={last}");
        let (s, b, _) = send(app.get(&url).bearer_auth(&tok)).await;
        assert_eq!(s, 200, "{b}");
        let want = count(&evs, &keys, |e| e.user.as_deref() == Some(u));
        assert_eq!(b["metrics"]["total_sessions"], json!(want), "{u}: {b}");
    }

    // A segment of every user: each member's total_sessions.
    let seg = json!({"segment_name": "all", "conditions": [{"field": "total_events", "operator": ">", "value": 0}]});
    let (s, b, _) = send(app.post("/api/v1/analytics/segments").bearer_auth(&tok).json(&seg)).await;
    assert_eq!(s, 201, "{b}");
    let id = b["id"].as_str().or(b["segment_id"].as_str()).unwrap().to_owned();
    let (s, m, _) =
        send(app.get(&format!("/api/v1/analytics/segments/{id}/members?limit=1000")).bearer_auth(&tok)).await;
    assert_eq!(s, 200, "{m}");
    let members = m["data"].as_array().unwrap();
    assert_eq!(members.len(), 12);
    for member in members {
        let u = member["user_id"].as_str().unwrap();
        let want = count(&evs, &keys, |e| e.user.as_deref() == Some(u));
        assert_eq!(member["total_sessions"], json!(want), "{u}");
    }

    // The custom-SQL view: one row per session, anonymous client sessions included.
    let sql = json!({"query": "SELECT count(*) AS n, count(DISTINCT session_id) AS d FROM sessions"});
    let (s, b, _) = send(app.post("/api/v1/analytics/query").bearer_auth(&tok).json(&sql)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["results"][0], json!({"n": total, "d": total}), "{b}");
}
