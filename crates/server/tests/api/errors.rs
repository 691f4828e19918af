//! The shape of failure: every error is problem+json, whatever went wrong.

use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn malformed_bodies_and_wrong_content_types() {
    let app = TestApp::spawn().await;
    let url = "/api/v1/analytics/events";
    let p = assert_problem(
        &send(app.post(url).bearer_auth(admin()).header("content-type", "application/json").body("{\"event_name\": "))
            .await,
        400,
    );
    assert!(p["detail"].as_str().unwrap().contains("line 1"), "{p}");
    assert_eq!(p["instance"], url);
    assert_problem(
        &send(app.post(url).bearer_auth(admin()).header("content-type", "application/json").body("")).await,
        400,
    );
    let p = assert_problem(
        &send(app.post(url).bearer_auth(admin()).header("content-type", "text/plain").body("{}")).await,
        415,
    );
    assert!(p["detail"].as_str().unwrap().contains("text/plain"), "{p}");
    assert_problem(&send(app.post(url).bearer_auth(admin()).body("{}")).await, 415);
    // A JSON content type with parameters is fine.
    let (s, _, _) = send(
        app.post(url)
            .bearer_auth(admin())
            .header("content-type", "application/json; charset=utf-8")
            .body("{\"event_name\":\"a\"}"),
    )
    .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods() {
    let app = TestApp::spawn().await;
    let p = assert_problem(&send(app.get("/api/v1/nothing-here")).await, 404);
    assert_eq!(p["type"], "/problems/not_found");
    let p =
        assert_problem(&send(app.client.delete(app.url("/api/v1/analytics/events")).bearer_auth(admin())).await, 405);
    assert_eq!(p["type"], "/problems/method_not_allowed");
    assert_problem(&send(app.client.put(app.url("/health"))).await, 405);
}

#[tokio::test]
async fn request_ids_are_echoed_or_made() {
    let app = TestApp::spawn().await;
    let res = app.get("/live").header("x-request-id", "abc-123").send().await.unwrap();
    assert_eq!(res.headers()["x-request-id"], "abc-123");
    let res = app.get("/live").send().await.unwrap();
    let made = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(made.len(), 36, "{made}");
    // A problem names its request.
    let res = app.get("/nope").header("x-request-id", "trace-me").send().await.unwrap();
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["request_id"], "trace-me");
}

#[tokio::test]
async fn trailing_slashes_never_matter() {
    let app = TestApp::spawn().await;
    for path in ["/health/", "/ready/", "/live/", "/metrics/"] {
        assert_eq!(send(app.get(path)).await.0, 200, "{path}");
    }
    let (s, b, _) =
        send(app.post("/api/v1/analytics/events/").bearer_auth(admin()).json(&json!({"event_name": "slash"}))).await;
    assert_eq!(s, 200, "{b}");
    let (s, list, _) = send(app.get("/api/v1/analytics/events/").bearer_auth(admin())).await;
    assert_eq!(s, 200);
    assert_eq!(list[0]["event_name"], "slash");
}

/// Every problem's `type` can be followed: `GET /problems/{slug}` describes it with the
/// same title and status the answers carry, without a credential.
#[tokio::test]
async fn problem_types_can_be_followed() {
    let app = TestApp::spawn().await;
    // Answers of several kinds, each followed to its type.
    let answers = [
        send(app.get("/api/v1/analytics/events")).await,
        send(app.get("/api/v1/analytics/events").bearer_auth(token("ingest", None))).await,
        send(app.get("/api/v1/analytics/events/nope").bearer_auth(admin())).await,
        send(app.post("/api/v1/analytics/events").bearer_auth(admin()).json(&serde_json::json!({}))).await,
    ];
    let mut seen = std::collections::HashSet::new();
    for answer in &answers {
        let p = &answer.1;
        let uri = p["type"].as_str().unwrap_or_else(|| panic!("no type in {p}"));
        let (s, t, ctype) = send(app.get(uri)).await;
        assert_eq!(s, 200, "{uri}: {t}");
        assert!(ctype.starts_with("application/json"), "{ctype}");
        assert_eq!((&t["type"], &t["title"], &t["status"]), (&p["type"], &p["title"], &p["status"]), "{uri}");
        assert!(t["description"].as_str().is_some_and(|d| d.len() > 20), "{t}");
        seen.insert(uri.to_owned());
    }
    assert_eq!(seen.len(), 4, "four kinds of problem: {seen:?}");
    let p = assert_problem(&send(app.get("/problems/no_such_thing")).await, 404);
    assert!(p["detail"].as_str().unwrap().contains("no_such_thing"), "{p}");
}
