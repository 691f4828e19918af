//! What was acknowledged survives a restart; what was sent during shutdown is either
//! acknowledged and stored, or refused; never lost after a 200.

use crate::helpers::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::with_config(config(Some(dir.path()))).await;
    let body = json!({"events": (0..500).map(|i| json!({"event_name": "p", "event_id": format!("p{i}")})).collect::<Vec<_>>()});
    let (s, _, _) = send(app.post("/api/v1/analytics/events/batch").bearer_auth(admin()).json(&body)).await;
    assert_eq!(s, 200);
    // Keep sending while the server stops; count what was acknowledged.
    let (client, url) = (app.client.clone(), app.url("/api/v1/analytics/events"));
    let acks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = acks.clone();
    let sender = tokio::spawn(async move {
        let mut acked = Vec::new();
        for i in 0..100_000 {
            let r = client
                .post(&url)
                .bearer_auth(admin())
                .json(&json!({"event_name": "late", "event_id": format!("l{i}")}))
                .send()
                .await;
            match r {
                Ok(r) if r.status() == 200 => {
                    acked.push(format!("l{i}"));
                    seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                Ok(r) => assert_eq!(r.status(), 503, "only a refusal is allowed"),
                Err(_) => break, // the server is gone
            }
        }
        acked
    });
    // Stop only once the sender is being answered, so the test always covers events
    // acknowledged just before and during shutdown.
    let answered = async {
        while acks.load(std::sync::atomic::Ordering::SeqCst) < 20 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), answered).await.expect("the sender is answered");
    app.stop().await;
    let acked = sender.await.unwrap();
    assert!(acked.len() >= 20, "the sender was acknowledged {} times", acked.len());
    assert!(std::fs::metadata(dir.path().join("sightline.duckdb")).is_ok());

    let app = TestApp::with_config(config(Some(dir.path()))).await;
    let (_, page, _) = send(app.get("/api/v1/analytics/events?event_name=p&page=1").bearer_auth(admin())).await;
    assert_eq!(page["pagination"]["total"], 500);
    for id in &acked {
        let (s, _, _) = send(app.get(&format!("/api/v1/analytics/events/{id}")).bearer_auth(admin())).await;
        assert_eq!(s, 200, "acknowledged {id} was lost");
    }
    // The same ids again are still stored once.
    send(app.post("/api/v1/analytics/events/batch").bearer_auth(admin()).json(&body)).await;
    let (_, page, _) = send(app.get("/api/v1/analytics/events?event_name=p&page=1").bearer_auth(admin())).await;
    assert_eq!(page["pagination"]["total"], 500);
    app.stop().await;
}

/// Keyed requests from many clients, then `kill -9`: after the restart, every key that
/// was answered replays its answer, and no replay stores its event again. The events
/// carry no id of their own, so a retry that ran again would store a second copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_retry_after_a_kill_replays_the_answer() {
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let env = [("SIGHTLINE_LIMIT_EVENTS", "off")];
    let child = Child::start(&["--data-dir", &data], &env).await;
    let url = format!("http://{}/api/v1/analytics/events", child.addr);
    let body = |key: &str| json!({"event_name": "keyed", "properties": {"key": key}});
    let acked: Arc<Mutex<Vec<(String, serde_json::Value)>>> = Arc::default();
    let mut senders = Vec::new();
    for t in 0..16 {
        let (url, acked) = (url.clone(), acked.clone());
        senders.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            for i in 0.. {
                let key = format!("k-{t}-{i}");
                let sent = client.post(&url).bearer_auth(admin()).header("idempotency-key", &key).json(&body(&key));
                match sent.send().await {
                    Ok(r) if r.status() == 200 => {
                        let Ok(answer) = r.json::<serde_json::Value>().await else { break };
                        acked.lock().unwrap().push((key, answer));
                    }
                    Ok(r) => panic!("{key}: {}", r.status()),
                    Err(_) => break, // killed
                }
            }
        }));
    }
    let answered = async {
        while acked.lock().unwrap().len() < 300 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), answered).await.expect("the senders are answered");
    child.kill();
    for s in senders {
        s.await.unwrap();
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());

    let child = Child::start(&["--data-dir", &data], &env).await;
    let base = format!("http://{}/api/v1/analytics/events", child.addr);
    let client = reqwest::Client::new();
    let stored = || async {
        let r = client.get(format!("{base}?event_name=keyed&page=1&limit=1")).bearer_auth(admin()).send().await;
        r.unwrap().json::<serde_json::Value>().await.unwrap()["pagination"]["total"].as_u64().unwrap()
    };
    let before = stored().await;
    assert!(before >= acked.len() as u64, "{before} stored, {} acknowledged", acked.len());
    for (key, answer) in &acked {
        let r = client.post(&base).bearer_auth(admin()).header("idempotency-key", key).json(&body(key)).send().await;
        let r = r.unwrap();
        assert_eq!(r.status(), 200, "{key}");
        assert_eq!(r.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap()), Some("true"), "{key}");
        assert_eq!(&r.json::<serde_json::Value>().await.unwrap(), answer, "{key}");
    }
    assert_eq!(stored().await, before, "a replay stored its event again");
}
