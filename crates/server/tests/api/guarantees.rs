//! Idempotency keys and rate limits, as clients of seeds 001 and 004 rely on them.

use crate::helpers::*;
use serde_json::json;
use std::collections::HashMap;

const EVENTS: &str = "/api/v1/analytics/events";

#[tokio::test]
async fn the_same_key_and_body_replay_the_first_answer() {
    let app = TestApp::spawn().await;
    let body = json!({"event_name": "paid"}); // no client id: a retry would store it twice
    let first =
        app.post(EVENTS).bearer_auth(admin()).header("idempotency-key", "k-1").json(&body).send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: serde_json::Value = first.json().await.unwrap();
    for _ in 0..3 {
        let again =
            app.post(EVENTS).bearer_auth(admin()).header("idempotency-key", "k-1").json(&body).send().await.unwrap();
        assert_eq!(again.status(), 200);
        assert_eq!(again.headers()["idempotent-replayed"], "true");
        assert_eq!(again.headers()["content-type"], "application/json");
        assert_eq!(again.json::<serde_json::Value>().await.unwrap(), first);
    }
    let (_, list, _) = send(app.get(EVENTS).bearer_auth(admin())).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "stored once: {list}");

    // Same key, another body: 422.
    let p = assert_problem(
        &send(
            app.post(EVENTS)
                .bearer_auth(admin())
                .header("idempotency-key", "k-1")
                .json(&json!({"event_name": "other"})),
        )
        .await,
        422,
    );
    assert!(p["detail"].as_str().unwrap().contains("different request"), "{p}");
    // Keys are per tenant: another tenant may use k-1 for itself.
    let (s, other, _) =
        send(app.post(EVENTS).bearer_auth(token("admin", Some("t2"))).header("idempotency-key", "k-1").json(&body))
            .await;
    assert_eq!(s, 200);
    assert_ne!(other["event_id"], first["event_id"]);
    // A failed validation is an answer too, and is replayed.
    let bad = || app.post(EVENTS).bearer_auth(admin()).header("idempotency-key", "k-bad").json(&json!({}));
    assert_problem(&send(bad()).await, 400);
    let again = bad().send().await.unwrap();
    assert_eq!((again.status().as_u16(), again.headers()["idempotent-replayed"].to_str().unwrap()), (400, "true"));
    // Key length and shape.
    let long = "k".repeat(256);
    let p = assert_problem(
        &send(app.post(EVENTS).bearer_auth(admin()).header("idempotency-key", &long).json(&body)).await,
        400,
    );
    assert!(p["detail"].as_str().unwrap().contains("255"), "{p}");
    let ok = "k".repeat(255);
    assert_eq!(send(app.post(EVENTS).bearer_auth(admin()).header("idempotency-key", &ok).json(&body)).await.0, 200);
    assert_problem(&send(app.post(EVENTS).bearer_auth(admin()).header("idempotency-key", " ").json(&body)).await, 400);
    // GET ignores the header.
    assert_eq!(send(app.get(EVENTS).bearer_auth(admin()).header("idempotency-key", "k-1")).await.0, 200);
}

/// Off the ingest routes, the guard keeps the answer after the handler: a keyed create
/// runs once, and its retry replays the 201 with the same resource.
#[tokio::test]
async fn a_keyed_create_runs_once() {
    let app = TestApp::spawn().await;
    let create = || {
        app.post("/api/v1/api-keys")
            .bearer_auth(admin())
            .header("idempotency-key", "key-once")
            .json(&json!({"name": "once", "role": "viewer"}))
    };
    let (s, first, _) = send(create()).await;
    assert_eq!(s, 201, "{first}");
    let again = create().send().await.unwrap();
    assert_eq!((again.status().as_u16(), again.headers()["idempotent-replayed"].to_str().unwrap()), (201, "true"));
    assert_eq!(again.json::<serde_json::Value>().await.unwrap(), first);
    let (_, keys, _) = send(app.get("/api/v1/api-keys").bearer_auth(admin())).await;
    let named = keys["data"].as_array().unwrap().iter().filter(|k| k["name"] == "once").count();
    assert_eq!(named, 1, "{keys}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_while_the_first_runs_is_a_409_and_exactly_one_runs() {
    let app = TestApp::spawn().await;
    // A batch big enough that concurrent copies overlap in time.
    let events: Vec<_> =
        (0..1000).map(|i| json!({"event_name": "bulk", "properties": {"i": i, "pad": "x".repeat(200)}})).collect();
    let body = json!({"events": events});
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let req = app
            .post("/api/v1/analytics/events/batch")
            .bearer_auth(admin())
            .header("idempotency-key", "same")
            .json(&body);
        tasks.push(tokio::spawn(async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.headers().get("idempotent-replayed").is_some())
        }));
    }
    let mut outcomes: HashMap<(u16, bool), usize> = HashMap::new();
    for t in tasks {
        *outcomes.entry(t.await.unwrap()).or_default() += 1;
    }
    let ran = outcomes.get(&(200, false)).copied().unwrap_or(0);
    assert_eq!(ran, 1, "exactly one request ran: {outcomes:?}");
    for k in outcomes.keys() {
        assert!(matches!(k, (200, false) | (200, true) | (409, false)), "{outcomes:?}");
    }
    let (_, page, _) = send(app.get("/api/v1/analytics/events?page=1&limit=1").bearer_auth(admin())).await;
    assert_eq!(page["pagination"]["total"], 1000);
}

#[tokio::test]
async fn idempotency_keys_expire_after_a_day() {
    // Expiry is checked against the stored time; the store is asked with "now" a day on.
    use sightline::store::{IdempotencyClaim, IdempotencyStore, StoredResponse};
    let meta = sightline::store::sqlite::SqliteMeta::open(None).await.unwrap();
    let now = chrono::Utc::now();
    let (ttl, stale) = (chrono::Duration::hours(24), chrono::Duration::minutes(5));
    assert_eq!(meta.claim_idempotency("t", "k", "fp", now, ttl, stale).await.unwrap(), IdempotencyClaim::Claimed);
    let r = StoredResponse { status: 200, headers: vec![], body: b"{}".to_vec() };
    meta.complete_idempotency("t", "k", r.clone()).await.unwrap();
    let later = now + chrono::Duration::hours(23);
    assert_eq!(meta.claim_idempotency("t", "k", "fp", later, ttl, stale).await.unwrap(), IdempotencyClaim::Replay(r));
    let next_day = now + chrono::Duration::hours(24) + chrono::Duration::seconds(1);
    assert_eq!(
        meta.claim_idempotency("t", "k", "other", next_day, ttl, stale).await.unwrap(),
        IdempotencyClaim::Claimed
    );
    // A claim abandoned by a crash frees itself after the stale time.
    assert_eq!(meta.claim_idempotency("t", "z", "fp", now, ttl, stale).await.unwrap(), IdempotencyClaim::Claimed);
    assert_eq!(meta.claim_idempotency("t", "z", "fp", now, ttl, stale).await.unwrap(), IdempotencyClaim::InProgress);
    let after = now + chrono::Duration::minutes(6);
    assert_eq!(meta.claim_idempotency("t", "z", "fp", after, ttl, stale).await.unwrap(), IdempotencyClaim::Claimed);
}

/// A burst ten times over the limit from many tasks: exactly the limit passes, and every
/// answer says so in its headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_the_limit_lets_exactly_the_limit_through() {
    let mut cfg = config(None);
    cfg.limit_events = "50/hour".into();
    cfg.limit_unauthenticated = "20/hour".into();
    let app = TestApp::with_config(cfg).await;
    let tok = admin();
    let mut tasks = Vec::new();
    // The window is bounded by the clock before the first request and after the last
    // answer: on a loaded machine the burst can take longer than a second.
    let before = chrono::Utc::now().timestamp() as u64;
    for i in 0..500 {
        let req = app.post(EVENTS).bearer_auth(&tok).json(&json!({"event_name": "burst", "event_id": format!("b{i}")}));
        tasks.push(tokio::spawn(async move {
            let r = req.send().await.unwrap();
            let h = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_owned());
            (
                r.status().as_u16(),
                h("x-ratelimit-limit"),
                h("x-ratelimit-remaining"),
                h("x-ratelimit-reset"),
                h("retry-after"),
            )
        }));
    }
    let mut ok = 0;
    let mut remaining_seen = Vec::new();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    let after = chrono::Utc::now().timestamp() as u64;
    for (status, limit, remaining, reset, retry) in answers {
        assert_eq!(limit.as_deref(), Some("50"));
        let reset: u64 = reset.unwrap().parse().unwrap();
        assert!(reset > before && reset <= after + 3601, "reset {reset} outside ({before}, {after} + 3601]");
        match status {
            200 => {
                ok += 1;
                remaining_seen.push(remaining.unwrap().parse::<u32>().unwrap());
                assert!(retry.is_none());
            }
            429 => {
                assert_eq!(remaining.as_deref(), Some("0"));
                let r: u64 = retry.unwrap().parse().unwrap();
                assert!((1..=3600).contains(&r), "{r}");
            }
            s => panic!("unexpected {s}"),
        }
    }
    assert_eq!(ok, 50);
    remaining_seen.sort();
    assert_eq!(remaining_seen, (0..50).collect::<Vec<_>>(), "each pass saw its own remaining count");
    let (_, page, _) = send(app.get("/api/v1/analytics/events?page=1&limit=1").bearer_auth(&tok)).await;
    assert_eq!(page["pagination"]["total"], 50, "only passed requests were stored");
    // The limit is per tenant: another tenant is not affected.
    assert_eq!(
        send(app.post(EVENTS).bearer_auth(token("admin", Some("t2"))).json(&json!({"event_name": "x"}))).await.0,
        200
    );
    // Reads are another class.
    assert_eq!(send(app.get(EVENTS).bearer_auth(&tok)).await.0, 200);
    // A 429 is a problem.
    let p = assert_problem(&send(app.post(EVENTS).bearer_auth(&tok).json(&json!({"event_name": "x"}))).await, 429);
    assert_eq!(p["type"], "/problems/rate_limit");

    // Unauthenticated requests: per client address.
    let mut statuses = Vec::new();
    for i in 0..30 {
        // A new username each time, so the per-username sign-in throttle stays out of it.
        statuses
            .push(send(app.post("/api/token/").json(&json!({"username": format!("x{i}"), "password": "y"}))).await.0);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 20, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 10, "{statuses:?}");
    // Probes are never limited.
    for _ in 0..30 {
        assert_eq!(send(app.get("/live")).await.0, 200);
    }
}

/// Look-ups of many keys at once are answered together: each caller gets its own key's
/// answer, whatever else the group held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_each_get_their_own_keys_answer() {
    use sightline::store::{IdempotencyClaim, IdempotencyStore, StoredResponse};
    let dir = tempfile::tempdir().unwrap();
    let meta = std::sync::Arc::new(
        sightline::store::sqlite::SqliteMeta::open(Some(&dir.path().join("meta.db"))).await.unwrap(),
    );
    let now = chrono::Utc::now();
    let (ttl, stale) = (chrono::Duration::hours(24), chrono::Duration::minutes(5));
    let answer =
        |i: usize| StoredResponse { status: 200, headers: vec![], body: format!("{{\"i\":{i}}}").into_bytes() };
    for i in 0..60 {
        let key = format!("k{i}");
        assert_eq!(meta.claim_idempotency("t", &key, "fp", now, ttl, stale).await.unwrap(), IdempotencyClaim::Claimed);
        meta.complete_idempotency("t", &key, answer(i)).await.unwrap();
    }
    let mut tasks = Vec::new();
    for i in 0..120 {
        let meta = meta.clone();
        tasks.push(tokio::spawn(async move {
            // k0..k59 are kept; half of them asked with another request; k60.. are new;
            // and the same key in another scope is another key.
            let (scope, fp) = match i % 4 {
                0 => ("t", "fp"),
                1 => ("t", "other"),
                2 => ("t2", "fp"),
                _ => ("t", "fp"),
            };
            let key = format!("k{}", i % 80);
            (i, meta.claim_idempotency(scope, &key, fp, now, ttl, stale).await.unwrap())
        }));
    }
    for t in tasks {
        let (i, got) = t.await.unwrap();
        let kept = i % 80 < 60;
        let want = match (i % 4, kept) {
            (2, _) | (_, false) => IdempotencyClaim::Claimed,
            (1, true) => IdempotencyClaim::Mismatch,
            _ => IdempotencyClaim::Replay(answer(i % 80)),
        };
        // Tasks i and i + 80 ask the same: while one holds the key (claimed, or looking
        // up its answer), the other may be told it is in progress.
        let twin = i % 80 < 40;
        if twin && got == IdempotencyClaim::InProgress {
            continue;
        }
        assert_eq!(got, want, "task {i}");
    }
}
