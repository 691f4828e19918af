use crate::helpers::*;
use serde_json::{Value, json};
use std::collections::HashSet;

const EVENTS: &str = "/api/v1/analytics/events";
const BATCH: &str = "/api/v1/analytics/events/batch";

#[tokio::test]
async fn seed_001_and_seed_004_events_are_the_same_event() {
    let app = TestApp::spawn().await;
    // Seed 001's example, as written.
    let e001 = json!({
        "event_type": "ticket_purchase",
        "event_data": {"ticket_id": "uuid", "amount": 99.99, "currency": "USD"},
        "timestamp": "2026-01-03T09:00:00.000Z",
        "user_id": "uuid",
        "session_id": "string"
    });
    // Seed 004's example, as written.
    let e004 = json!({
        "event_name": "button_clicked",
        "user_id": "user123",
        "session_id": "sess_abc123",
        "properties": {"button_name": "submit", "page": "checkout", "value": 99.99},
        "timestamp": "2024-01-15T10:00:00Z"
    });
    let (s, a, _) = send(app.post(EVENTS).bearer_auth(admin()).json(&e001)).await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(a["success"], true);
    assert_eq!(a["tracked"], true);
    assert_eq!(a["timestamp"], "2026-01-03T09:00:00Z");
    let (s, b, _) = send(app.post(EVENTS).bearer_auth(admin()).json(&e004)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["timestamp"], "2024-01-15T10:00:00Z");

    let (_, got, _) =
        send(app.get(&format!("{EVENTS}/{}", a["event_id"].as_str().unwrap())).bearer_auth(admin())).await;
    assert_eq!(got["event_name"], "ticket_purchase");
    assert_eq!(got["event_type"], "ticket_purchase");
    assert_eq!(got["properties"], e001["event_data"]);
    assert_eq!(got["user_id"], "uuid");
    assert_eq!(got["session_id"], "string");
    assert_eq!(got["timestamp"], "2026-01-03T09:00:00Z");

    let (_, got, _) =
        send(app.get(&format!("{EVENTS}/{}", b["event_id"].as_str().unwrap())).bearer_auth(admin())).await;
    assert_eq!(got["event_name"], "button_clicked");
    assert_eq!(got["properties"], e004["properties"]);
    assert_eq!(got["session_id"], "sess_abc123");
}

#[tokio::test]
async fn a_client_id_is_kept_and_a_repeated_id_is_stored_once() {
    let app = TestApp::spawn().await;
    for key in ["event_id", "uuid", "messageId"] {
        let id = format!("client-{key}");
        for _ in 0..3 {
            let (s, b, _) =
                send(app.post(EVENTS).bearer_auth(admin()).json(&json!({"event_name": "x", key: id}))).await;
            assert_eq!(s, 200);
            assert_eq!(b["event_id"], id.as_str());
        }
    }
    let (_, list, _) = send(app.get(EVENTS).bearer_auth(admin())).await;
    let ids: Vec<&str> = list.as_array().unwrap().iter().map(|e| e["event_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 3, "{list}");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 3);

    // The same id in another tenant is another event.
    let other = token("admin", Some("t-other"));
    send(app.post(EVENTS).bearer_auth(&other).json(&json!({"event_name": "y", "event_id": "client-uuid"}))).await;
    let (_, got, _) = send(app.get(&format!("{EVENTS}/client-uuid")).bearer_auth(&other)).await;
    assert_eq!(got["event_name"], "y");
    let (_, got, _) = send(app.get(&format!("{EVENTS}/client-uuid")).bearer_auth(admin())).await;
    assert_eq!(got["event_name"], "x");
}

#[tokio::test]
async fn a_batch_stores_good_items_and_reports_bad_ones_by_index() {
    let app = TestApp::spawn().await;
    // Seed 004's example first.
    let body = json!({"events": [
        {"event_name": "page_view", "user_id": "user123", "properties": {"page": "home"}},
        {"event_name": "search", "user_id": "user123", "properties": {"query": "help"}}
    ]});
    let (s, b, _) = send(app.post(BATCH).bearer_auth(admin()).json(&body)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["tracked"], 2);
    assert_eq!(b["failed"], 0);
    assert_eq!(b["event_ids"].as_array().unwrap().len(), 2);

    let body = json!({"events": [
        {"event_name": "ok1"},
        {"event_name": ""},
        {"event_type": "ok2", "event_data": {"a": 1}},
        {"event_name": "bad", "properties": "nope"},
        "not an object",
        {"event_name": "late", "timestamp": "2999-01-01T00:00:00Z"},
    ]});
    let (s, b, _) = send(app.post(BATCH).bearer_auth(admin()).json(&body)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["tracked"], 2);
    assert_eq!(b["failed"], 4);
    let idx: Vec<u64> = b["errors"].as_array().unwrap().iter().map(|e| e["index"].as_u64().unwrap()).collect();
    assert_eq!(idx, vec![1, 3, 4, 5], "{b}");
    assert_eq!(b["errors"][1]["field"], "events[3].properties");
    let (_, list, _) = send(app.get(EVENTS).bearer_auth(admin())).await;
    let mut names: Vec<&str> = list.as_array().unwrap().iter().map(|e| e["event_name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, vec!["ok1", "ok2", "page_view", "search"]);
}

#[tokio::test]
async fn bad_events_get_precise_errors_and_store_nothing() {
    let app = TestApp::spawn().await;
    let long = "n".repeat(201);
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({}), "event_name", "required"),
        (json!({"event_type": null}), "event_type", "required"),
        (json!({"event_name": "   "}), "event_name", "empty"),
        (json!({"event_name": long}), "event_name", "200"),
        (json!({"event_name": 5}), "event_name", "string"),
        (json!({"event_name": "a", "properties": [1]}), "properties", "object"),
        (json!({"event_type": "a", "event_data": "x"}), "event_data", "object"),
        (json!({"event_name": "a", "timestamp": "yesterday"}), "timestamp", "RFC 3339"),
        (json!({"event_name": "a", "timestamp": "2999-01-01T00:00:00Z"}), "timestamp", "future"),
        (json!({"event_name": "a", "timestamp": 1700000000}), "timestamp", "RFC 3339"),
        (json!({"event_name": "a", "user_id": {"x": 1}}), "user_id", "string"),
        (json!([1, 2]), "body", "object"),
    ];
    for (body, field, needle) in cases {
        let got = send(app.post(EVENTS).bearer_auth(admin()).json(&body)).await;
        let p = assert_problem(&got, 400);
        assert_eq!(p["type"], "/problems/validation", "{body}: {p}");
        let errs = p["errors"].as_array().unwrap_or_else(|| panic!("{body}: no errors[] in {p}"));
        assert!(errs.iter().any(|e| e["field"] == field), "{body}: {p}");
        let msg = errs.iter().find(|e| e["field"] == field).unwrap()["message"].as_str().unwrap();
        assert!(msg.to_lowercase().contains(&needle.to_lowercase()), "{body}: '{msg}' lacks '{needle}'");
    }
    let (_, list, _) = send(app.get(EVENTS).bearer_auth(admin())).await;
    assert_eq!(list, json!([]), "nothing half-written");
}

#[tokio::test]
async fn size_limits_are_clear_4xx() {
    let app = TestApp::spawn().await;
    // Over 1 MB for one event.
    let big = json!({"event_name": "a", "properties": {"blob": "x".repeat(1024 * 1024)}});
    let got = send(app.post(EVENTS).bearer_auth(admin()).json(&big)).await;
    assert_problem(&got, 413);
    // Under 10 MB but over 1 MB is fine for a batch.
    let body = json!({"events": (0..3).map(|i| json!({"event_name": "a", "properties": {"blob": "x".repeat(600_000), "i": i}})).collect::<Vec<_>>()});
    let (s, b, _) = send(app.post(BATCH).bearer_auth(admin()).json(&body)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["tracked"], 3);
    // Over 10 MB for a batch.
    let body = json!({"events": (0..11).map(|_| json!({"event_name": "a", "properties": {"blob": "x".repeat(1024 * 1024)}})).collect::<Vec<_>>()});
    assert_problem(&send(app.post(BATCH).bearer_auth(admin()).json(&body)).await, 413);
    // Over 1,000 events.
    let body = json!({"events": (0..1001).map(|_| json!({"event_name": "a"})).collect::<Vec<_>>()});
    let p = assert_problem(&send(app.post(BATCH).bearer_auth(admin()).json(&body)).await, 413);
    assert!(p["detail"].as_str().unwrap().contains("1000"), "{p}");
    // Exactly 1,000 is accepted.
    let body = json!({"events": (0..1000).map(|i| json!({"event_name": "a", "event_id": format!("k{i}")})).collect::<Vec<_>>()});
    let (s, b, _) = send(app.post(BATCH).bearer_auth(admin()).json(&body)).await;
    assert_eq!((s, b["tracked"].clone()), (200, json!(1000)));
    // Envelope errors.
    for (body, field) in [
        (json!({}), "events"),
        (json!({"events": []}), "events"),
        (json!({"events": {}}), "events"),
        (json!([]), "body"),
    ] {
        let p = assert_problem(&send(app.post(BATCH).bearer_auth(admin()).json(&body)).await, 400);
        assert_eq!(p["errors"][0]["field"], field, "{body}: {p}");
    }
    // A batch with no valid event is a 400 listing each.
    let p = assert_problem(
        &send(app.post(BATCH).bearer_auth(admin()).json(&json!({"events": [{}, {"event_name": ""}]}))).await,
        400,
    );
    assert_eq!(p["errors"].as_array().unwrap().len(), 2, "{p}");
}

#[tokio::test]
async fn activity_of_seed_003_is_an_event_of_the_caller() {
    let app = TestApp::spawn().await;
    let body = json!({"activity_type": "custom_action", "metadata": {"key": "value"}});
    let (s, b, _) = send(app.post("/api/v1/analytics/track/activity").bearer_auth(admin()).json(&body)).await;
    assert_eq!(s, 200, "{b}");
    let (_, got, _) =
        send(app.get(&format!("{EVENTS}/{}", b["event_id"].as_str().unwrap())).bearer_auth(admin())).await;
    assert_eq!(got["event_name"], "custom_action");
    assert_eq!(got["user_id"], "admin-user");
    assert_eq!(got["properties"], json!({"key": "value"}));
    let p = assert_problem(
        &send(app.post("/api/v1/analytics/track/activity").bearer_auth(admin()).json(&json!({"metadata": {}}))).await,
        400,
    );
    assert_eq!(p["errors"][0]["field"], "activity_type");
}

/// Many clients at once, with overlapping ids: every acknowledged event is stored, each
/// id exactly once. 32 tasks send 3,840 events; pairs of tasks share ids, so 1,920 are new.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_ingest_stores_each_id_exactly_once() {
    let app = TestApp::spawn().await;
    let tok = admin();
    let mut tasks = Vec::new();
    for c in 0..32 {
        let (client, url, burl, tok) = (app.client.clone(), app.url(EVENTS), app.url(BATCH), tok.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..20 {
                // Tasks c and c^1 send the same ids.
                let id = format!("e{}", (c / 2) * 20 + i);
                let r = client
                    .post(&url)
                    .bearer_auth(&tok)
                    .json(&json!({"event_name": "c", "event_id": id}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
            }
            let evs: Vec<Value> =
                (0..100).map(|i| json!({"event_name": "b", "event_id": format!("b{}", (c / 2) * 100 + i)})).collect();
            let r = client.post(&burl).bearer_auth(&tok).json(&json!({"events": evs})).send().await.unwrap();
            assert_eq!(r.status(), 200);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut ids = Vec::new();
    for page in 1..=2 {
        let (_, body, _) = send(app.get(&format!("{EVENTS}?page={page}&limit=1000")).bearer_auth(&tok)).await;
        assert_eq!(body["pagination"]["total"], 320 + 1600, "{}", body["pagination"]);
        ids.extend(body["data"].as_array().unwrap().iter().map(|e| e["event_id"].as_str().unwrap().to_owned()));
    }
    assert_eq!(ids.len(), 1920, "no id twice across pages");
    let ids: HashSet<String> = ids.into_iter().collect();
    let expected: HashSet<String> =
        (0..320).map(|i| format!("e{i}")).chain((0..1600).map(|i| format!("b{i}"))).collect();
    assert_eq!(ids, expected);
}
