use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn health_live_ready_report_the_stores() {
    let app = TestApp::spawn().await;
    let (s, h, _) = send(app.get("/health")).await;
    assert_eq!(s, 200);
    assert_eq!(h["status"], "healthy");
    assert_eq!(h["service"], "sightline");
    assert_eq!(h["version"], env!("CARGO_PKG_VERSION"));
    assert!(h["uptime"].is_u64());
    assert!(chrono::DateTime::parse_from_rfc3339(h["timestamp"].as_str().unwrap()).is_ok());
    for store in ["analytics_store", "meta_store"] {
        assert_eq!(h["checks"][store]["status"], "healthy", "{h}");
        assert!(h["checks"][store]["latency"].is_u64(), "{h}");
    }
    assert_eq!(send(app.get("/live")).await.0, 200);
    let (s, r, _) = send(app.get("/ready")).await;
    assert_eq!(s, 200);
    assert_eq!(r, json!({"status": "ready", "checks": {"database": "connected"}}));
}

#[tokio::test]
async fn metrics_count_requests_and_stored_events() {
    let app = TestApp::spawn().await;
    for i in 0..3 {
        send(
            app.post("/api/v1/analytics/events")
                .bearer_auth(admin())
                .json(&json!({"event_name": "m", "event_id": format!("m{i}")})),
        )
        .await;
    }
    // One duplicate.
    send(app.post("/api/v1/analytics/events").bearer_auth(admin()).json(&json!({"event_name": "m", "event_id": "m0"})))
        .await;
    let res = app.get("/metrics").send().await.unwrap();
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = res.text().await.unwrap();
    // The recorder is shared by every app in this test process, so check what this app
    // alone decides: the gauge of rows in its own store.
    let line = text.lines().find(|l| l.starts_with("sightline_events_in_store ")).unwrap_or_else(|| panic!("{text}"));
    assert_eq!(line, "sightline_events_in_store 3");
    assert!(
        text.contains(
            "sightline_http_requests_total{method=\"POST\",route=\"/api/v1/analytics/events\",status=\"200\"}"
        ),
        "{text}"
    );
    assert!(text.contains("sightline_ingest_commit_duration_seconds_bucket"), "{text}");
}
