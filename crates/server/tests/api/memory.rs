//! The analytics store's memory is bounded (`duckdb_memory_limit`): a query that would
//! need more is stopped with a problem that says why, and the service goes on answering.

use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn a_query_past_the_memory_limit_is_refused_and_the_service_goes_on() {
    let mut cfg = config(None);
    cfg.duckdb_memory_limit = Some("64MB".into());
    let app = TestApp::with_config(cfg).await;
    let padding = "x".repeat(200);
    let events: Vec<_> = (0..3_000)
        .map(|i| json!({"event_name": "e", "event_id": format!("e{i}"), "properties": {"pad": padding}}))
        .collect();
    for chunk in events.chunks(1_000) {
        let body = json!({"events": chunk});
        let (s, _, _) = send(app.post("/api/v1/analytics/events/batch").bearer_auth(admin()).json(&body)).await;
        assert_eq!(s, 200);
    }
    // Nine million joined rows of about 500 bytes each, gathered into one list: gigabytes.
    let greedy = "SELECT len(list(a.properties || b.properties)) AS n FROM events a CROSS JOIN events b";
    let got = send(app.post("/api/v1/analytics/query").bearer_auth(admin()).json(&json!({"query": greedy}))).await;
    let problem = assert_problem(&got, 503);
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("more memory") && detail.contains("duckdb_memory_limit"), "{problem}");
    assert!(!detail.contains("Out of Memory Error"), "DuckDB's own words stay in the log: {problem}");
    // The memory was given back: the next query is answered.
    let small = "SELECT count(*) AS n FROM events";
    let (s, body, _) =
        send(app.post("/api/v1/analytics/query").bearer_auth(admin()).json(&json!({"query": small}))).await;
    assert_eq!(s, 200, "{body}");
    assert!(body.to_string().contains("3000"), "{body}");
}
