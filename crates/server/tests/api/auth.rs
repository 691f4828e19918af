//! Authorization for every route of this issue: no credential, bad credentials, wrong
//! role, wrong tenant by header, another tenant's object.

use crate::helpers::*;
use chrono::Utc;
use serde_json::json;
use sightline::auth::jwt::Claims;

/// (method, path, body, roles allowed)
fn routes() -> Vec<(&'static str, &'static str, serde_json::Value, &'static [&'static str])> {
    vec![
        ("POST", "/api/v1/analytics/events", json!({"event_name": "a"}), &["admin", "ingest"]),
        ("POST", "/api/v1/analytics/events/batch", json!({"events": [{"event_name": "a"}]}), &["admin", "ingest"]),
        ("POST", "/api/v1/analytics/track/activity", json!({"activity_type": "a"}), &["admin", "ingest"]),
        ("GET", "/api/v1/analytics/events", json!(null), &["admin", "analyst", "viewer"]),
        ("GET", "/api/v1/analytics/events/some-id", json!(null), &["admin", "analyst", "viewer"]),
    ]
}

fn request(app: &TestApp, method: &str, path: &str, body: &serde_json::Value) -> reqwest::RequestBuilder {
    match method {
        "POST" => app.post(path).json(body),
        _ => app.get(path),
    }
}

fn claims(role: &str) -> Claims {
    Claims {
        sub: "u".into(),
        exp: (Utc::now().timestamp() + 600) as u64,
        role: Some(role.into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn every_route_refuses_missing_and_bad_credentials() {
    let app = TestApp::spawn().await;
    let forged = sightline::auth::jwt::sign_hs256(b"another-secret-0123456789", &claims("admin"));
    let expired = token_with(Claims { exp: (Utc::now().timestamp() - 3600) as u64, ..claims("admin") });
    // alg: none, hand-made.
    let b64 = |v: serde_json::Value| b64url(&serde_json::to_vec(&v).unwrap());
    let none_alg = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"})),
        b64(serde_json::to_value(claims("admin")).unwrap())
    );
    let no_exp = {
        let mut c = serde_json::to_value(claims("admin")).unwrap();
        c.as_object_mut().unwrap().remove("exp");
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &c,
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    };
    let bad: Vec<(&str, Option<String>)> = vec![
        ("no credential", None),
        ("not bearer", Some("Basic YWRtaW46YWRtaW4=".into())),
        ("empty bearer", Some("Bearer ".into())),
        ("garbage", Some("Bearer not.a.jwt".into())),
        ("forged", Some(format!("Bearer {forged}"))),
        ("expired", Some(format!("Bearer {expired}"))),
        ("alg none", Some(format!("Bearer {none_alg}"))),
        ("no exp", Some(format!("Bearer {no_exp}"))),
        ("unknown key", Some(format!("Bearer sl_{}", "0".repeat(40)))),
        ("malformed key", Some("Bearer sl_xyz".into())),
    ];
    for (method, path, body, _) in routes() {
        for (case, header) in &bad {
            let mut req = request(&app, method, path, &body);
            if let Some(h) = header {
                req = req.header("authorization", h);
            }
            let got = send(req).await;
            let p = assert_problem(&got, 401);
            assert_eq!(p["type"], "/problems/unauthorized", "{method} {path} {case}");
        }
    }
}

#[tokio::test]
async fn every_route_checks_the_role() {
    let app = TestApp::spawn().await;
    for (method, path, body, allowed) in routes() {
        for role in ["admin", "analyst", "viewer", "ingest"] {
            let got = send(request(&app, method, path, &body).bearer_auth(token(role, None))).await;
            if allowed.contains(&role) {
                assert!(
                    got.0 == 200 || (got.0 == 404 && path.ends_with("some-id")),
                    "{role} {method} {path}: {:?}",
                    got
                );
            } else {
                let p = assert_problem(&got, 403);
                assert!(p["detail"].as_str().unwrap().contains(role), "{p}");
            }
        }
    }
    // A token with no role we know.
    let got = send(app.get("/api/v1/analytics/events").bearer_auth(token("root", None))).await;
    assert_problem(&got, 403);
    // `roles` array: the strongest counts.
    let t = token_with(Claims { role: None, roles: Some(vec!["viewer".into(), "ingest".into()]), ..claims("x") });
    assert_eq!(send(app.get("/api/v1/analytics/events").bearer_auth(&t)).await.0, 200);
    assert_eq!(
        send(app.post("/api/v1/analytics/events").bearer_auth(&t).json(&json!({"event_name": "a"}))).await.0,
        200
    );
}

#[tokio::test]
async fn a_tenant_header_must_match_and_other_tenants_objects_are_absent() {
    let app = TestApp::spawn().await;
    let a = token("admin", Some("tenant-a"));
    let b = token("admin", Some("tenant-b"));
    for (method, path, body, _) in routes() {
        let got = send(request(&app, method, path, &body).bearer_auth(&a).header("x-tenant-id", "tenant-b")).await;
        assert_problem(&got, 403);
        // The matching header is fine.
        let got = send(request(&app, method, path, &body).bearer_auth(&a).header("x-tenant-id", "tenant-a")).await;
        assert_ne!(got.0, 403, "{method} {path}");
    }
    let (_, made, _) =
        send(app.post("/api/v1/analytics/events").bearer_auth(&a).json(&json!({"event_name": "secret"}))).await;
    let id = made["event_id"].as_str().unwrap();
    assert_eq!(send(app.get(&format!("/api/v1/analytics/events/{id}")).bearer_auth(&a)).await.0, 200);
    let got = send(app.get(&format!("/api/v1/analytics/events/{id}")).bearer_auth(&b)).await;
    assert_problem(&got, 404);
    let (_, list, _) = send(app.get("/api/v1/analytics/events").bearer_auth(&b)).await;
    assert_eq!(list, json!([]));
}

#[tokio::test]
async fn api_keys_made_by_the_cli_authenticate_in_their_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_sightline");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(bin).args(args).env("SIGHTLINE_DATA_DIR", dir.path()).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let t = run(&["tenants", "create", "--name", "Acme", "--id", "acme"]);
    assert_eq!(t["tenant"]["id"], "acme");
    let k = run(&["keys", "create", "--tenant", "acme", "--role", "ingest"]);
    let key = k["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("sl_") && key.len() == 43, "{key}");
    assert!(key.starts_with(k["api_key"]["prefix"].as_str().unwrap()));
    let u = run(&[
        "users",
        "create",
        "--tenant",
        "acme",
        "--username",
        "ann",
        "--password",
        "pw-long-enough",
        "--role",
        "analyst",
    ]);
    assert_eq!(u["user"]["role"], "analyst");
    assert!(u["user"].get("password_hash").is_none(), "{u}");

    // Errors of the CLI are clear and exit non-zero.
    let out = std::process::Command::new(bin)
        .args(["keys", "create", "--tenant", "nope", "--role", "admin"])
        .env("SIGHTLINE_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no tenant 'nope'"));

    let app = TestApp::with_config(config(Some(dir.path()))).await;
    let (s, made, _) =
        send(app.post("/api/v1/analytics/events").bearer_auth(&key).json(&json!({"event_name": "via-key"}))).await;
    assert_eq!(s, 200, "{made}");
    // An ingest key may not read.
    assert_problem(&send(app.get("/api/v1/analytics/events").bearer_auth(&key)).await, 403);
    // The event landed in acme, not in default.
    let acme_admin = token("admin", Some("acme"));
    let got = send(
        app.get(&format!("/api/v1/analytics/events/{}", made["event_id"].as_str().unwrap())).bearer_auth(&acme_admin),
    )
    .await;
    assert_eq!(got.0, 200);
    let got =
        send(app.get(&format!("/api/v1/analytics/events/{}", made["event_id"].as_str().unwrap())).bearer_auth(admin()))
            .await;
    assert_eq!(got.0, 404);
    // A key with a header naming another tenant is refused.
    let got = send(
        app.post("/api/v1/analytics/events")
            .bearer_auth(&key)
            .header("x-tenant-id", "default")
            .json(&json!({"event_name": "x"})),
    )
    .await;
    assert_problem(&got, 403);
    app.stop().await;
}
