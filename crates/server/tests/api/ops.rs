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
    assert_eq!(r, json!({"status": "ready", "checks": {"database": "connected", "disk": "ok"}}));
    // In memory, no disk to watch: never low.
    assert_eq!(h["disk"]["status"], "ok", "{h}");
    assert_eq!(h["ingest"]["status"], "accepting", "{h}");
}

#[tokio::test]
async fn metrics_count_exactly_this_servers_requests_and_events() {
    let child = Child::start(&["--in-memory"], &[]).await;
    let client = reqwest::Client::new();
    let url = |p: &str| format!("http://{}{p}", child.addr);
    for i in 0..3 {
        let r = client
            .post(url("/api/v1/analytics/events"))
            .bearer_auth(admin())
            .json(&json!({"event_name": "m", "event_id": format!("m{i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // One duplicate (stored once), and one refused event.
    client
        .post(url("/api/v1/analytics/events"))
        .bearer_auth(admin())
        .json(&json!({"event_name": "m", "event_id": "m0"}))
        .send()
        .await
        .unwrap();
    let r = client.post(url("/api/v1/analytics/events")).bearer_auth(admin()).json(&json!({})).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let res = client.get(url("/metrics")).send().await.unwrap();
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = res.text().await.unwrap();
    let value = |series: &str| -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
            .to_owned()
    };
    assert_eq!(value("sightline_events_in_store"), "3");
    let posts = "sightline_http_requests_total{method=\"POST\",route=\"/api/v1/analytics/events\",status=";
    assert_eq!(value(&format!("{posts}\"200\"}}")), "4");
    assert_eq!(value(&format!("{posts}\"400\"}}")), "1");
    assert!(text.contains("sightline_ingest_commit_duration_seconds_bucket"), "{text}");
}
