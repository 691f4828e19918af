//! Read-back: filters, order, paging, checked against the events the test itself sent.

use crate::helpers::*;
use chrono::{Duration, TimeZone, Utc};
use serde_json::{Value, json};

struct Sent {
    id: String,
    name: &'static str,
    user: String,
    session: String,
    ts: chrono::DateTime<Utc>,
}

async fn seed(app: &TestApp) -> Vec<Sent> {
    let base = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
    let names = ["view", "click", "buy"];
    let sent: Vec<Sent> = (0..60)
        .map(|i| Sent {
            id: format!("r{i}"),
            name: names[i % 3],
            user: format!("u{}", i % 4),
            session: format!("s{}", i % 5),
            // Shuffled times, one hour apart.
            ts: base + Duration::hours(((i * 37) % 60) as i64),
        })
        .collect();
    let events: Vec<Value> = sent
        .iter()
        .map(|s| json!({"event_id": s.id, "event_name": s.name, "user_id": s.user, "session_id": s.session, "timestamp": s.ts.to_rfc3339()}))
        .collect();
    let (st, b, _) =
        send(app.post("/api/v1/analytics/events/batch").bearer_auth(admin()).json(&json!({"events": events}))).await;
    assert_eq!((st, b["tracked"].clone()), (200, json!(60)));
    sent
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|e| e["event_id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn filters_order_and_paging_match_an_independent_selection() {
    let app = TestApp::spawn().await;
    let sent = seed(&app).await;
    let base = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
    let start = base + Duration::hours(10);
    let end = base + Duration::hours(40);
    let expect = |f: &dyn Fn(&Sent) -> bool| {
        let mut v: Vec<&Sent> = sent.iter().filter(|s| f(s)).collect();
        v.sort_by(|a, b| b.ts.cmp(&a.ts).then(b.id.cmp(&a.id)));
        v.into_iter().map(|s| s.id.clone()).collect::<Vec<_>>()
    };
    let app = &app;
    let q = |qs: String| async move {
        send(app.get(&format!("/api/v1/analytics/events?{qs}")).bearer_auth(admin())).await.1
    };

    assert_eq!(ids(&q("limit=1000".into()).await), expect(&|_| true));
    assert_eq!(ids(&q("event_name=click".into()).await), expect(&|s| s.name == "click"));
    assert_eq!(ids(&q("event_type=buy&user_id=u1".into()).await), expect(&|s| s.name == "buy" && s.user == "u1"));
    assert_eq!(ids(&q("session_id=s3".into()).await), expect(&|s| s.session == "s3"));
    let range = format!(
        "start_date={}&end_date={}",
        start.to_rfc3339().replace('+', "%2B"),
        end.to_rfc3339().replace('+', "%2B")
    );
    assert_eq!(ids(&q(range).await), expect(&|s| s.ts >= start && s.ts < end));
    assert_eq!(ids(&q("start_date=2026-06-02".into()).await), expect(&|s| s.ts >= base + Duration::days(1)));

    let all = expect(&|_| true);
    assert_eq!(ids(&q("skip=5&limit=7".into()).await), all[5..12].to_vec());
    let page = q("page=3&limit=25".into()).await;
    assert_eq!(ids(&page["data"]), all[50..60].to_vec());
    assert_eq!(page["pagination"], json!({"page": 3, "limit": 25, "total": 60, "total_pages": 3}));
    // Default limit 100; limit clamped to 1000.
    let page = q("page=1&limit=5000".into()).await;
    assert_eq!(page["pagination"]["limit"], 1000);
}

#[tokio::test]
async fn bad_read_parameters_are_400s() {
    let app = TestApp::spawn().await;
    for (qs, field) in [
        ("limit=0", "limit"),
        ("limit=ten", "limit"),
        ("skip=-1", "skip"),
        ("page=0", "page"),
        ("start_date=soon", "start_date"),
        ("start_date=2026-02-01&end_date=2026-01-01", "end_date"),
    ] {
        let p =
            assert_problem(&send(app.get(&format!("/api/v1/analytics/events?{qs}")).bearer_auth(admin())).await, 400);
        assert!(p["detail"].as_str().unwrap().contains(field), "{qs}: {p}");
    }
    let p = assert_problem(&send(app.get("/api/v1/analytics/events/nope").bearer_auth(admin())).await, 404);
    assert!(p["detail"].as_str().unwrap().contains("nope"));
}
