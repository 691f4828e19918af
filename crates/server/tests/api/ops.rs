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

/// A server of its own, in a child process: the metrics recorder is global to a
/// process, so in this test binary every app's requests would count together.
struct Child {
    proc: std::process::Child,
    addr: String,
}

impl Child {
    async fn start() -> Child {
        use std::io::BufRead;
        let mut proc = std::process::Command::new(env!("CARGO_BIN_EXE_sightline"))
            .args(["serve", "--in-memory", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .env("SIGHTLINE_JWT_SECRET", SECRET)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the sightline binary starts");
        // Logs go to stderr.
        let out = std::io::BufReader::new(proc.stderr.take().unwrap());
        let reading = tokio::task::spawn_blocking(move || {
            for line in out.lines().map_while(Result::ok) {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                if v["message"] == "listening" {
                    return v["address"].as_str().map(str::to_owned);
                }
            }
            None
        });
        let addr = match tokio::time::timeout(std::time::Duration::from_secs(30), reading).await {
            Ok(Ok(Some(addr))) => addr,
            _ => {
                let _ = proc.kill();
                panic!("the server did not log its address within 30 s");
            }
        };
        Child { proc, addr }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.proc.kill();
        let _ = self.proc.wait();
    }
}

#[tokio::test]
async fn metrics_count_exactly_this_servers_requests_and_events() {
    let child = Child::start().await;
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
