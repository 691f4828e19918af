//! Tenants, users and API keys as resources, and their audit trail.

use crate::helpers::*;
use serde_json::{Value, json};

fn actions(log: &Value) -> Vec<String> {
    log["data"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn a_tenant_admin_manages_its_users() {
    let app = TestApp::spawn().await;
    let adm = token("admin", Some("t1"));
    let (s, u, _) = send(
        app.post("/api/v1/users")
            .bearer_auth(&adm)
            .json(&json!({"username": "bob", "password": "bob-password", "role": "analyst"})),
    )
    .await;
    assert_eq!(s, 201, "{u}");
    assert!(u.get("password_hash").is_none() && u.get("password").is_none(), "{u}");
    let id = u["id"].as_str().unwrap().to_owned();
    // Duplicate name: 409.
    let got = send(
        app.post("/api/v1/users")
            .bearer_auth(&adm)
            .json(&json!({"username": "bob", "password": "bob-password", "role": "viewer"})),
    )
    .await;
    assert_problem(&got, 409);
    // Bad inputs, each named.
    for (body, field) in [
        (json!({"password": "long-enough", "role": "viewer"}), "username"),
        (json!({"username": "c", "password": "short", "role": "viewer"}), "password"),
        (json!({"username": "c", "password": "long-enough", "role": "root"}), "role"),
        (json!({"username": "c", "password": "long-enough"}), "role"),
    ] {
        let p = assert_problem(&send(app.post("/api/v1/users").bearer_auth(&adm).json(&body)).await, 400);
        assert_eq!(p["errors"][0]["field"], field, "{body}: {p}");
    }
    let p = assert_problem(
        &send(
            app.post("/api/v1/users")
                .bearer_auth(&adm)
                .json(&json!({"username": "c", "password": "long-enough", "role": "viewer", "superuser": true})),
        )
        .await,
        400,
    );
    assert!(p["detail"].as_str().unwrap().contains("superuser"), "unknown fields are refused: {p}");

    let (_, list, _) = send(app.get("/api/v1/users").bearer_auth(&adm)).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let (s, got, _) = send(app.get(&format!("/api/v1/users/{id}")).bearer_auth(&adm)).await;
    assert_eq!((s, got["username"].as_str()), (200, Some("bob")));

    // A new password works, the old one no longer; sessions of the old one end.
    let (_, old_refresh) = app.sign_in("bob", "bob-password", Some("t1")).await;
    let (s, got, _) = send(
        app.request("PATCH", &format!("/api/v1/users/{id}"))
            .bearer_auth(&adm)
            .json(&json!({"password": "new-password", "role": "viewer"})),
    )
    .await;
    assert_eq!((s, got["role"].as_str()), (200, Some("viewer")), "{got}");
    assert_problem(
        &send(app.post("/api/token/").json(&json!({"username": "bob", "password": "bob-password", "tenant": "t1"})))
            .await,
        401,
    );
    app.sign_in("bob", "new-password", Some("t1")).await;
    assert_problem(&send(app.post("/api/token/refresh/").json(&json!({"refresh": old_refresh}))).await, 401);
    assert_problem(
        &send(app.request("PATCH", &format!("/api/v1/users/{id}")).bearer_auth(&adm).json(&json!({}))).await,
        400,
    );

    // Another tenant's admin sees nothing of it: 404, not 403.
    let other = token("admin", Some("t2"));
    assert_problem(&send(app.get(&format!("/api/v1/users/{id}")).bearer_auth(&other)).await, 404);
    assert_problem(&send(app.request("DELETE", &format!("/api/v1/users/{id}")).bearer_auth(&other)).await, 404);
    assert_problem(
        &send(app.request("PATCH", &format!("/api/v1/users/{id}")).bearer_auth(&other).json(&json!({"role": "admin"})))
            .await,
        404,
    );
    assert_eq!(send(app.get("/api/v1/users").bearer_auth(&other)).await.1["data"], json!([]));

    assert_eq!(send(app.request("DELETE", &format!("/api/v1/users/{id}")).bearer_auth(&adm)).await.0, 204);
    assert_problem(&send(app.get(&format!("/api/v1/users/{id}")).bearer_auth(&adm)).await, 404);

    let (_, log, _) = send(app.get("/api/v1/audit").bearer_auth(&adm)).await;
    let a = actions(&log);
    for want in ["user.create", "user.update", "user.delete", "sign_in"] {
        assert!(a.iter().any(|x| x == want), "{want} missing from {a:?}");
    }
    assert_eq!(log["data"][0]["action"], "user.delete", "newest first");
    assert_eq!(log["data"][0]["actor"], "admin-user");
    assert_eq!(log["data"][0]["target"], id.as_str());
    // Audit lines stay in their tenant.
    assert!(actions(&send(app.get("/api/v1/audit").bearer_auth(&other)).await.1).is_empty());
}

#[tokio::test]
async fn api_keys_are_shown_once_listed_by_prefix_and_revocable() {
    let app = TestApp::spawn().await;
    let adm = token("admin", Some("k1"));
    let (s, made, _) =
        send(app.post("/api/v1/api-keys").bearer_auth(&adm).json(&json!({"name": "ios app", "role": "ingest"}))).await;
    assert_eq!(s, 201, "{made}");
    let key = made["key"].as_str().unwrap().to_owned();
    let id = made["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with(made["prefix"].as_str().unwrap()));
    let (_, list, _) = send(app.get("/api/v1/api-keys").bearer_auth(&adm)).await;
    let listed = &list["data"][0];
    assert!(listed.get("key").is_none(), "a list never shows the key: {listed}");
    assert!(listed["last_used_at"].is_null());
    assert!(!list.to_string().contains(&key));

    // The key works, its use is recorded.
    let (s, _, _) =
        send(app.post("/api/v1/analytics/events").bearer_auth(&key).json(&json!({"event_name": "k"}))).await;
    assert_eq!(s, 200);
    let (_, list, _) = send(app.get("/api/v1/api-keys").bearer_auth(&adm)).await;
    assert!(list["data"][0]["last_used_at"].is_string(), "{list}");

    // Another tenant cannot revoke it.
    assert_problem(
        &send(app.request("DELETE", &format!("/api/v1/api-keys/{id}")).bearer_auth(token("admin", Some("k2")))).await,
        404,
    );
    let (s, revoked, _) = send(app.request("DELETE", &format!("/api/v1/api-keys/{id}")).bearer_auth(&adm)).await;
    assert_eq!(s, 200);
    assert!(revoked["revoked_at"].is_string());
    let p = assert_problem(
        &send(app.post("/api/v1/analytics/events").bearer_auth(&key).json(&json!({"event_name": "k"}))).await,
        401,
    );
    assert!(p["detail"].as_str().unwrap().contains("revoked"), "{p}");

    // Expiry: in the past is refused; a key past its expiry fails.
    let p = assert_problem(
        &send(
            app.post("/api/v1/api-keys")
                .bearer_auth(&adm)
                .json(&json!({"role": "viewer", "expires_at": "2020-01-01T00:00:00Z"})),
        )
        .await,
        400,
    );
    assert_eq!(p["errors"][0]["field"], "expires_at");
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(1)).to_rfc3339();
    let (_, made, _) =
        send(app.post("/api/v1/api-keys").bearer_auth(&adm).json(&json!({"role": "viewer", "expires_at": soon}))).await;
    let short = made["key"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let p = assert_problem(&send(app.get("/api/v1/analytics/events").bearer_auth(&short)).await, 401);
    assert!(p["detail"].as_str().unwrap().contains("expired"), "{p}");
    for (body, field) in
        [(json!({}), "role"), (json!({"role": "boss"}), "role"), (json!({"role": "viewer", "name": ""}), "name")]
    {
        let p = assert_problem(&send(app.post("/api/v1/api-keys").bearer_auth(&adm).json(&body)).await, 400);
        assert_eq!(p["errors"][0]["field"], field, "{body}");
    }
    let a = actions(&send(app.get("/api/v1/audit").bearer_auth(&adm)).await.1);
    assert!(a.contains(&"api_key.create".to_owned()) && a.contains(&"api_key.revoke".to_owned()), "{a:?}");
}

#[tokio::test]
async fn superusers_manage_tenants_and_deleting_one_deletes_its_data() {
    let app = TestApp::spawn().await;
    let su = superuser();
    let (s, t, _) =
        send(app.post("/api/v1/tenants").bearer_auth(&su).json(&json!({"name": "Gone Soon", "id": "gone"}))).await;
    assert_eq!(s, 201, "{t}");
    assert_problem(
        &send(app.post("/api/v1/tenants").bearer_auth(&su).json(&json!({"name": "Again", "id": "gone"}))).await,
        409,
    );
    assert_problem(
        &send(app.post("/api/v1/tenants").bearer_auth(&su).json(&json!({"name": "", "id": "x"}))).await,
        400,
    );
    assert_problem(
        &send(app.post("/api/v1/tenants").bearer_auth(&su).json(&json!({"name": "Bad", "id": "a b"}))).await,
        400,
    );
    let (s, auto, _) = send(app.post("/api/v1/tenants").bearer_auth(&su).json(&json!({"name": "Auto id"}))).await;
    assert_eq!(s, 201);
    assert_eq!(auto["id"].as_str().unwrap().len(), 36);

    let (s, t, _) =
        send(app.request("PATCH", "/api/v1/tenants/gone").bearer_auth(&su).json(&json!({"name": "Renamed"}))).await;
    assert_eq!((s, t["name"].as_str()), (200, Some("Renamed")));
    let (_, list, _) = send(app.get("/api/v1/tenants").bearer_auth(&su)).await;
    assert!(list["data"].as_array().unwrap().iter().any(|t| t["id"] == "gone"));

    // A superuser acts in a tenant with X-Tenant-ID.
    let (s, _, _) = send(
        app.post("/api/v1/analytics/events")
            .bearer_auth(&su)
            .header("x-tenant-id", "gone")
            .header("idempotency-key", "k-gone")
            .json(&json!({"event_name": "doomed", "event_id": "d1"})),
    )
    .await;
    assert_eq!(s, 200);
    let gone_admin = token("admin", Some("gone"));
    assert_eq!(send(app.get("/api/v1/analytics/events/d1").bearer_auth(&gone_admin)).await.0, 200);
    let (_, key, _) =
        send(app.post("/api/v1/api-keys").bearer_auth(&gone_admin).json(&json!({"role": "viewer"}))).await;
    let key = key["key"].as_str().unwrap().to_owned();
    assert_eq!(send(app.get("/api/v1/analytics/events").bearer_auth(&key)).await.0, 200);
    // ... but only in a tenant that exists.
    assert_problem(
        &send(app.get("/api/v1/analytics/events").bearer_auth(&su).header("x-tenant-id", "no-such")).await,
        404,
    );
    // An event in another tenant, which must survive.
    send(
        app.post("/api/v1/analytics/events")
            .bearer_auth(admin())
            .json(&json!({"event_name": "kept", "event_id": "d1"})),
    )
    .await;

    let (s, del, _) = send(app.request("DELETE", "/api/v1/tenants/gone").bearer_auth(&su)).await;
    assert_eq!(s, 200, "{del}");
    assert_eq!(del["events_deleted"], 1);
    assert_problem(&send(app.get("/api/v1/tenants/gone").bearer_auth(&su)).await, 404);
    assert_problem(&send(app.request("DELETE", "/api/v1/tenants/gone").bearer_auth(&su)).await, 404);
    // Its keys died with it; its events too (a token for it now sees a fresh, empty tenant).
    assert_problem(&send(app.get("/api/v1/analytics/events").bearer_auth(&key)).await, 401);
    assert_problem(&send(app.get("/api/v1/analytics/events/d1").bearer_auth(&gone_admin)).await, 404);
    assert_eq!(send(app.get("/api/v1/analytics/events/d1").bearer_auth(admin())).await.1["event_name"], "kept");
    // Its idempotency keys too: the tenant made again (by its token above) may use the key
    // for another request.
    let (s, again, _) = send(
        app.post("/api/v1/analytics/events")
            .bearer_auth(&su)
            .header("x-tenant-id", "gone")
            .header("idempotency-key", "k-gone")
            .json(&json!({"event_name": "reborn", "event_id": "d2"})),
    )
    .await;
    assert_eq!((s, again["event_id"].as_str()), (200, Some("d2")), "{again}");
    // A superuser cannot delete the tenant it stands in.
    assert_problem(&send(app.request("DELETE", "/api/v1/tenants/default").bearer_auth(&su)).await, 409);
    let a = actions(&send(app.get("/api/v1/audit").bearer_auth(&su)).await.1);
    for want in ["tenant.create", "tenant.rename", "tenant.delete"] {
        assert!(a.iter().any(|x| x == want), "{want} missing from {a:?}");
    }
    // A tenant admin is not a superuser.
    assert_problem(&send(app.get("/api/v1/tenants").bearer_auth(admin())).await, 403);
}

#[tokio::test]
async fn an_admin_cannot_delete_or_demote_itself_but_may_another_admin() {
    let app = TestApp::with_admin().await;
    let (me_token, _) = app.sign_in(ADMIN_USER, ADMIN_PASSWORD, None).await;
    let (_, me, _) = send(app.get("/api/v1/auth/me").bearer_auth(&me_token)).await;
    let me_id = me["subject"].as_str().unwrap().to_owned();
    let got = send(app.request("DELETE", &format!("/api/v1/users/{me_id}")).bearer_auth(&me_token)).await;
    assert!(assert_problem(&got, 409)["detail"].as_str().unwrap().contains("yourself"));
    let demote = json!({"role": "viewer"});
    let got = send(app.request("PATCH", &format!("/api/v1/users/{me_id}")).bearer_auth(&me_token).json(&demote)).await;
    assert_problem(&got, 409);
    // A new password for oneself is fine; the account is still an admin afterwards.
    let (s, u, _) = send(
        app.request("PATCH", &format!("/api/v1/users/{me_id}"))
            .bearer_auth(&me_token)
            .json(&json!({"password": "another-long-password"})),
    )
    .await;
    assert_eq!((s, u["role"].as_str()), (200, Some("admin")), "{u}");
    // Another admin may remove this one.
    let (s, other, _) = send(
        app.post("/api/v1/users")
            .bearer_auth(&me_token)
            .json(&json!({"username": "second", "password": "second-password", "role": "admin"})),
    )
    .await;
    assert_eq!(s, 201, "{other}");
    let (second, _) = app.sign_in("second", "second-password", None).await;
    let (s, _, _) = send(app.request("DELETE", &format!("/api/v1/users/{me_id}")).bearer_auth(&second)).await;
    assert_eq!(s, 204);
}
