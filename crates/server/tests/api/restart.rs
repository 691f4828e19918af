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
