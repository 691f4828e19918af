//! Sign-in as seeds 002 and 003 show it, refresh rotation, and failure behaviour.

use crate::helpers::*;
use serde_json::json;
use std::time::Instant;

#[tokio::test]
async fn seed_002_token_pair_and_refresh() {
    let app = TestApp::with_admin().await;
    // POST /api/token/ with username and password.
    let (s, pair, _) =
        send(app.post("/api/token/").json(&json!({"username": ADMIN_USER, "password": ADMIN_PASSWORD}))).await;
    assert_eq!(s, 200, "{pair}");
    let access = pair["access"].as_str().unwrap();
    let refresh = pair["refresh"].as_str().unwrap();
    // Authorization: Bearer <your-access-token>
    let (s, me, _) = send(app.get("/api/v1/auth/me").bearer_auth(access)).await;
    assert_eq!(s, 200, "{me}");
    assert_eq!(me["username"], ADMIN_USER);
    assert_eq!(me["tenant_id"], "default");
    assert_eq!(me["role"], "admin");
    assert_eq!(me["superuser"], true);
    assert_eq!(me["auth_method"], "password");
    // The access token works on the API.
    assert_eq!(send(app.get("/api/v1/analytics/events").bearer_auth(access)).await.0, 200);

    // POST /api/token/refresh/ with the refresh token: a new pair.
    let (s, next, _) = send(app.post("/api/token/refresh/").json(&json!({"refresh": refresh}))).await;
    assert_eq!(s, 200, "{next}");
    let refresh2 = next["refresh"].as_str().unwrap();
    assert_ne!(refresh2, refresh, "refresh tokens rotate");
    assert_eq!(send(app.get("/api/v1/auth/me").bearer_auth(next["access"].as_str().unwrap())).await.0, 200);

    // The first refresh token again: a replay. It fails, and it revokes its family, so
    // the second one (the thief's or the owner's) fails too.
    let p = assert_problem(&send(app.post("/api/token/refresh/").json(&json!({"refresh": refresh}))).await, 401);
    assert!(p["detail"].as_str().unwrap().contains("already used"), "{p}");
    assert_problem(&send(app.post("/api/token/refresh/").json(&json!({"refresh": refresh2}))).await, 401);
    // Another sign-in is another family, unaffected.
    let (_, r3) = app.sign_in(ADMIN_USER, ADMIN_PASSWORD, None).await;
    assert_eq!(send(app.post("/api/token/refresh/").json(&json!({"refresh": r3}))).await.0, 200);

    for bad in [
        json!({}),
        json!({"refresh": ""}),
        json!({"refresh": "nope"}),
        json!({"refresh": format!("slr_{}", "0".repeat(64))}),
    ] {
        let got = send(app.post("/api/token/refresh/").json(&bad)).await;
        assert!(got.0 == 400 || got.0 == 401, "{bad}: {got:?}");
        assert_eq!(got.2, "application/problem+json");
    }
}

#[tokio::test]
async fn concurrent_refreshes_of_one_token_let_exactly_one_through() {
    let app = TestApp::with_admin().await;
    let (_, refresh) = app.sign_in(ADMIN_USER, ADMIN_PASSWORD, None).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let req = app.post("/api/token/refresh/").json(&json!({"refresh": refresh}));
        tasks.push(tokio::spawn(async move { req.send().await.unwrap().status().as_u16() }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 7, "{statuses:?}");
}

#[tokio::test]
async fn seed_003_oauth_password_flow_as_curl_python_and_fetch_send_it() {
    let app = TestApp::with_admin().await;
    // curl -X POST /auth/token -H "Content-Type: application/x-www-form-urlencoded" -d "username=admin&password=adminpass"
    let (s, b, _) = send(
        app.post("/auth/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .body("username=admin&password=adminpass"),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["token_type"], "bearer");
    assert_eq!(b["expires_in"], 900);
    let token = b["access_token"].as_str().unwrap();
    assert_eq!(send(app.get("/api/v1/auth/me").bearer_auth(token)).await.1["username"], "admin");
    // requests.post(..., data={...}) and fetch with URLSearchParams send the same form;
    // reqwest's .form() is that encoding, with extra OAuth2 fields a client may add.
    let (s, _, _) = send(app.post("/auth/token").form(&[
        ("grant_type", "password"),
        ("username", "admin"),
        ("password", "adminpass"),
    ]))
    .await;
    assert_eq!(s, 200);
    // Wrong content type, wrong grant, missing fields.
    assert_problem(
        &send(app.post("/auth/token").json(&json!({"username": "admin", "password": "adminpass"}))).await,
        415,
    );
    let p = assert_problem(
        &send(app.post("/auth/token").form(&[
            ("grant_type", "client_credentials"),
            ("username", "admin"),
            ("password", "x"),
        ]))
        .await,
        400,
    );
    assert_eq!(p["errors"][0]["field"], "grant_type");
    let p = assert_problem(&send(app.post("/auth/token").form(&[("username", "admin")])).await, 400);
    assert_eq!(p["errors"][0]["field"], "password");
}

#[tokio::test]
async fn wrong_password_and_unknown_user_fail_alike_and_repeats_are_slowed() {
    let app = TestApp::with_admin().await;
    let attempt = |user: &'static str| {
        let req = app.post("/api/token/").json(&json!({"username": user, "password": "wrong-password"}));
        async move {
            let t = Instant::now();
            let got = send(req).await;
            (got, t.elapsed())
        }
    };
    let (wrong, t_wrong) = attempt(ADMIN_USER).await;
    let (unknown, t_unknown) = attempt("nobody-at-all").await;
    let pw = assert_problem(&wrong, 401);
    let pu = assert_problem(&unknown, 401);
    assert_eq!(pw["detail"], pu["detail"]);
    assert_eq!(pw["type"], pu["type"]);
    // Both verify one argon2 hash; neither answers at once. (A loose bound: the machine
    // is shared, but an unknown user skipping the hash would be ~100x faster.)
    let (a, b) = (t_wrong.as_secs_f64(), t_unknown.as_secs_f64());
    assert!(a / b < 5.0 && b / a < 5.0, "wrong password {a:.4}s vs unknown user {b:.4}s");

    // Four more failures (five in all) lock the username for a while: 429 + Retry-After,
    // even with the right password.
    for _ in 0..4 {
        assert_eq!(attempt(ADMIN_USER).await.0.0, 401);
    }
    let res = app
        .post("/api/token/")
        .json(&json!({"username": ADMIN_USER, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert!(res.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    // Another username is not affected.
    assert_eq!(attempt("someone-else").await.0.0, 401);

    // Failed and successful sign-ins are in the audit log.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (access, _) = app.sign_in(ADMIN_USER, ADMIN_PASSWORD, None).await;
    let (_, log, _) = send(app.get("/api/v1/audit").bearer_auth(&access)).await;
    let actions: Vec<&str> = log["data"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions.iter().filter(|a| **a == "sign_in").count(), 1, "{log}");
    assert!(actions.iter().filter(|a| **a == "sign_in_failed").count() >= 6, "{log}");
    assert!(log["data"][0]["ip"].as_str().unwrap().starts_with("127.0.0.1"), "{log}");
}

#[tokio::test]
async fn sign_in_is_per_tenant() {
    let app = TestApp::with_admin().await;
    let su = superuser();
    send(app.post("/api/v1/tenants").bearer_auth(&su).json(&json!({"id": "acme", "name": "Acme"}))).await;
    let acme_admin = token("admin", Some("acme"));
    let (s, _, _) = send(
        app.post("/api/v1/users")
            .bearer_auth(&acme_admin)
            .json(&json!({"username": "ann", "password": "ann-password", "role": "viewer"})),
    )
    .await;
    assert_eq!(s, 201);
    // ann exists in acme only.
    assert_problem(
        &send(app.post("/api/token/").json(&json!({"username": "ann", "password": "ann-password"}))).await,
        401,
    );
    let (access, _) = app.sign_in("ann", "ann-password", Some("acme")).await;
    let (_, me, _) = send(app.get("/api/v1/auth/me").bearer_auth(&access)).await;
    assert_eq!(
        (me["tenant_id"].as_str(), me["role"].as_str(), me["superuser"].as_bool()),
        (Some("acme"), Some("viewer"), Some(false))
    );
    // The tenant may come from X-Tenant-ID too (seed 001).
    let (s, _, _) = send(
        app.post("/api/token/")
            .header("x-tenant-id", "acme")
            .json(&json!({"username": "ann", "password": "ann-password"})),
    )
    .await;
    assert_eq!(s, 200);
    // A viewer may read but not ingest.
    assert_eq!(send(app.get("/api/v1/analytics/events").bearer_auth(&access)).await.0, 200);
    assert_problem(
        &send(app.post("/api/v1/analytics/events").bearer_auth(&access).json(&json!({"event_name": "x"}))).await,
        403,
    );
}
