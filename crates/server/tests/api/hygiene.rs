//! CORS per tenant, security headers, deprecation headers.

use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn cors_follows_each_tenants_origin_list() {
    let mut cfg = config(None);
    cfg.cors_origins = vec!["https://console.example.com".into()];
    let app = TestApp::with_config(cfg).await;
    let shop = token("admin", Some("shop"));
    let (s, b, _) = send(
        app.request("PUT", "/api/v1/settings/cors")
            .bearer_auth(&shop)
            .json(&json!({"origins": ["https://Shop.example.com/", "http://localhost:3000"]})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["origins"], json!(["http://localhost:3000", "https://shop.example.com"]));
    assert_eq!(send(app.get("/api/v1/settings/cors").bearer_auth(&shop)).await.1["origins"], b["origins"]);

    let preflight = |origin: &str| {
        app.request("OPTIONS", "/api/v1/analytics/events")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization, content-type")
    };
    let res = preflight("https://shop.example.com").send().await.unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(res.headers()["access-control-allow-origin"], "https://shop.example.com");
    assert!(res.headers()["access-control-allow-headers"].to_str().unwrap().contains("authorization"));
    let res = preflight("https://evil.example.com").send().await.unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());

    // The real request: allowed for shop's own origin, not for another tenant's.
    let post = |tok: &str, origin: &str| {
        app.post("/api/v1/analytics/events")
            .bearer_auth(tok)
            .header("origin", origin)
            .json(&json!({"event_name": "view"}))
    };
    let res = post(&shop, "https://shop.example.com").send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["access-control-allow-origin"], "https://shop.example.com");
    assert!(res.headers()["access-control-expose-headers"].to_str().unwrap().contains("x-ratelimit-remaining"));
    let other = token("admin", Some("other"));
    let res = post(&other, "https://shop.example.com").send().await.unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none(), "shop's origin is not other's");
    // A global origin is allowed for every tenant.
    let res = post(&other, "https://console.example.com").send().await.unwrap();
    assert_eq!(res.headers()["access-control-allow-origin"], "https://console.example.com");

    for (bad, field) in [
        (json!({"origins": ["not an origin"]}), "origins[0]"),
        (json!({"origins": ["https://a.com/path"]}), "origins[0]"),
        (json!({}), "origins"),
    ] {
        let p =
            assert_problem(&send(app.request("PUT", "/api/v1/settings/cors").bearer_auth(&shop).json(&bad)).await, 400);
        assert_eq!(p["errors"][0]["field"], field, "{bad}");
    }
    assert_problem(
        &send(
            app.request("PUT", "/api/v1/settings/cors")
                .bearer_auth(token("analyst", Some("shop")))
                .json(&json!({"origins": []})),
        )
        .await,
        403,
    );
}

#[tokio::test]
async fn every_answer_carries_security_headers() {
    let app = TestApp::spawn().await;
    for res in [
        app.get("/health").send().await.unwrap(),
        app.get("/api/v1/analytics/events").bearer_auth(admin()).send().await.unwrap(),
        app.get("/api/v1/analytics/events").send().await.unwrap(),
        app.get("/no/such/route").send().await.unwrap(),
    ] {
        let h = res.headers();
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert!(h["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
    }
    let res = app.get("/api/v1/analytics/events").bearer_auth(admin()).send().await.unwrap();
    assert_eq!(res.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn deprecated_routes_say_so_and_others_do_not() {
    let mut cfg = config(None);
    cfg.deprecated_routes = vec![sightline::config::DeprecatedRoute {
        path: "/api/v1/analytics/track/activity".into(),
        deprecation: chrono::NaiveDate::from_ymd_opt(2027, 1, 1).unwrap(),
        sunset: Some(chrono::NaiveDate::from_ymd_opt(2027, 6, 30).unwrap()),
        link: Some("https://docs.example.com/changelog".into()),
    }];
    let app = TestApp::with_config(cfg).await;
    let res = app
        .post("/api/v1/analytics/track/activity")
        .bearer_auth(admin())
        .json(&json!({"activity_type": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["deprecation"], "Fri, 01 Jan 2027 00:00:00 GMT");
    assert_eq!(res.headers()["sunset"], "Wed, 30 Jun 2027 00:00:00 GMT");
    assert_eq!(res.headers()["link"], "<https://docs.example.com/changelog>; rel=\"deprecation\"");
    let res = app
        .post("/api/v1/analytics/events")
        .bearer_auth(admin())
        .json(&json!({"event_name": "x"}))
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("deprecation").is_none());
}
