//! The authorization matrix, generated from the router's own route table: every route ×
//! {no credential, bad signature, expired, alg none, each role, tenant header of another
//! tenant}. A route added without a guard, or with a guard other than the table says,
//! fails here.

use crate::helpers::*;
use chrono::Utc;
use serde_json::json;
use sightline::auth::Access;
use sightline::auth::jwt::Claims;
use sightline_core::model::Role;

fn claims(role: &str) -> Claims {
    Claims {
        sub: "m".into(),
        exp: (Utc::now().timestamp() + 600) as u64,
        role: Some(role.into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn every_route_against_every_credential_case() {
    let app = TestApp::spawn().await;
    let specs = sightline::http::route_specs();
    assert!(specs.len() >= 27, "the table lost routes: {}", specs.len());
    let forged = sightline::auth::jwt::sign_hs256(b"another-secret-0123456789", &claims("superuser"));
    let expired = token_with(Claims { exp: (Utc::now().timestamp() - 3600) as u64, ..claims("superuser") });
    let none_alg = format!(
        "{}.{}.",
        b64url(br#"{"alg":"none","typ":"JWT"}"#),
        b64url(&serde_json::to_vec(&claims("superuser")).unwrap())
    );
    let bad = [
        ("no credential", None),
        ("bad signature", Some(forged)),
        ("expired", Some(expired)),
        ("alg none", Some(none_alg)),
    ];
    let mut cases = 0;
    for spec in &specs {
        let path = spec.path.replace("{id}", "matrix-missing-id");
        let req = || {
            let r = app.request(spec.method.as_str(), &path);
            if matches!(spec.method.as_str(), "POST" | "PATCH" | "PUT") { r.json(&json!({})) } else { r }
        };
        let what = format!("{} {}", spec.method, spec.path);
        if spec.access == Access::Public {
            let got = send(req()).await;
            assert_ne!(got.0, 401, "{what} is public");
            assert_ne!(got.0, 403, "{what} is public");
            cases += 1;
            continue;
        }
        for (case, cred) in &bad {
            let mut r = req();
            if let Some(c) = cred {
                r = r.bearer_auth(c);
            }
            let got = send(r).await;
            assert_problem(&got, 401);
            cases += 1;
            let _ = case;
        }
        for role in Role::ALL {
            let got = send(req().bearer_auth(token(role.as_str(), Some("matrix")))).await;
            let allowed = match spec.access {
                Access::Signed => true,
                Access::Role(p) => role.allows(p),
                Access::Superuser => false,
                Access::Public => unreachable!(),
            };
            if allowed {
                assert!(got.0 != 401 && got.0 != 403, "{what} as {role}: {got:?}");
            } else {
                let p = assert_problem(&got, 403);
                assert!(p["detail"].as_str().unwrap().contains(role.as_str()), "{what} as {role}: {p}");
            }
            cases += 1;
        }
        // A superuser passes every guard.
        let got = send(req().bearer_auth(superuser())).await;
        assert!(got.0 != 401 && got.0 != 403, "{what} as superuser: {got:?}");
        // Another tenant by header: refused before anything else for a non-superuser.
        let got = send(req().bearer_auth(token("admin", Some("matrix"))).header("x-tenant-id", "someone-else")).await;
        assert_problem(&got, 403);
        cases += 2;
    }
    eprintln!("authorization matrix: {} routes, {cases} cases", specs.len());
}

/// Another tenant's object answers 404 on every route that names one.
#[tokio::test]
async fn another_tenants_objects_are_404_on_every_id_route() {
    let app = TestApp::spawn().await;
    let owner = token("admin", Some("owner"));
    let stranger = token("admin", Some("stranger"));
    let (_, ev, _) =
        send(app.post("/api/v1/analytics/events").bearer_auth(&owner).json(&json!({"event_name": "mine"}))).await;
    let (_, user, _) = send(
        app.post("/api/v1/users")
            .bearer_auth(&owner)
            .json(&json!({"username": "u", "password": "password-1", "role": "viewer"})),
    )
    .await;
    let (_, key, _) = send(app.post("/api/v1/api-keys").bearer_auth(&owner).json(&json!({"role": "viewer"}))).await;
    let (_, rec, _) = send(app.post("/api/v1/metrics").bearer_auth(&owner).json(&json!({
        "service_name": "auth", "metric_type": "engagement", "metric_name": "logins", "value": 1
    })))
    .await;
    let (s, _, _) = send(
        app.post("/api/v1/analytics/custom-metrics")
            .bearer_auth(&owner)
            .json(&json!({"metric_name": "mine", "calculation": "events / users"})),
    )
    .await;
    assert_eq!(s, 201);
    let (s, rule, _) = send(
        app.post("/api/v1/analytics/alerts")
            .bearer_auth(&owner)
            .json(&json!({"metric": "events", "condition": "gt", "threshold": 100})),
    )
    .await;
    assert_eq!(s, 201, "{rule}");
    let (s, seg, _) = send(app.post("/api/v1/analytics/segments").bearer_auth(&owner).json(&json!({
        "segment_name": "power_users", "conditions": [{"field": "total_events", "operator": ">", "value": 0}]
    })))
    .await;
    assert_eq!(s, 201, "{seg}");
    let ids = [
        ("/api/v1/analytics/events/{id}", ev["event_id"].as_str().unwrap()),
        ("/api/v1/users/{id}", user["id"].as_str().unwrap()),
        ("/api/v1/api-keys/{id}", key["id"].as_str().unwrap()),
        ("/api/v1/metrics/{id}", rec["id"].as_str().unwrap()),
        ("/api/v1/analytics/custom-metrics/{name}", "mine"),
        ("/api/v1/analytics/alerts/{id}", rule["id"].as_str().unwrap()),
        ("/api/v1/analytics/segments/{id}", seg["id"].as_str().unwrap()),
        ("/api/v1/analytics/segments/{id}/members", seg["id"].as_str().unwrap()),
    ];
    let mut checked = 0;
    for spec in sightline::http::route_specs()
        .iter()
        .filter(|s| (s.path.contains("{id}") || s.path.contains("{name}")) && !s.path.starts_with("/api/v1/tenants"))
    {
        let (_, id) =
            ids.iter().find(|(p, _)| *p == spec.path).unwrap_or_else(|| panic!("no object for {}", spec.path));
        let path = spec.path.replace("{id}", id).replace("{name}", id);
        let mut r = app.request(spec.method.as_str(), &path).bearer_auth(&stranger);
        if spec.method.as_str() == "PATCH" {
            let body =
                if spec.path.starts_with("/api/v1/metrics") { json!({"value": 1}) } else { json!({"role": "admin"}) };
            r = r.json(&body);
        }
        if spec.method.as_str() == "PUT" {
            r = r.json(&json!({"calculation": "events"}));
        }
        assert_problem(&send(r).await, 404);
        // And the owner still has it.
        assert_ne!(send(app.request("GET", &path).bearer_auth(&owner)).await.0, 404, "{path}");
        checked += 1;
    }
    assert!(checked >= 18, "{checked}");
}
