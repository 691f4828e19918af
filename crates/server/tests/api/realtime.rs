//! Seed 004's realtime activity at `/api/v1/analytics/realtime` and the alert rules at
//! `/api/v1/analytics/alerts`: the current figures, the trends against the same 5 minutes
//! a day earlier and the traffic alerts counted against a model of what the test sent,
//! rules that hold and rules that stay silent, bad rules, roles and tenants.
//!
//! Times: the current window is [now-5m, now); events go at now minus 1 to 3 minutes, the
//! previous window's a day earlier, the baseline's over the 24 hours before the current
//! window; none within 20 s of a window's edge.

use crate::helpers::*;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};
use std::collections::BTreeSet;

const BATCH: &str = "/api/v1/analytics/events/batch";
const REALTIME: &str = "/api/v1/analytics/realtime";
const ALERTS: &str = "/api/v1/analytics/alerts";
const CUSTOM: &str = "/api/v1/analytics/custom-metrics";
const RECORDS: &str = "/api/v1/metrics";

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// An event: name, user, time, properties.
fn ev(name: &str, user: Option<&str>, t: DateTime<Utc>, props: Value) -> Value {
    let mut e = json!({"event_name": name, "timestamp": rfc(t), "properties": props});
    if let Some(u) = user {
        e["user_id"] = json!(u);
    }
    e
}

async fn ingest(app: &TestApp, tenant: &str, events: &[Value]) {
    let tok = token("ingest", Some(tenant));
    for chunk in events.chunks(1000) {
        let (s, b, _) = send(app.post(BATCH).bearer_auth(&tok).json(&json!({"events": chunk}))).await;
        assert_eq!(s, 200, "{b}");
    }
}

async fn realtime(app: &TestApp, tok: &str) -> Value {
    let (s, b, ctype) = send(app.get(REALTIME).bearer_auth(tok)).await;
    assert_eq!(s, 200, "{b}");
    assert!(ctype.starts_with("application/json"), "{ctype}");
    b
}

async fn create_rule(app: &TestApp, tok: &str, body: Value) -> Value {
    let (s, b, _) = send(app.post(ALERTS).bearer_auth(tok).json(&body)).await;
    assert_eq!(s, 201, "{body}: {b}");
    b
}

/// `+12%`, `-8%`, `0%`, or None without a (non-zero) previous value.
fn pct(cur: Option<f64>, prev: Option<f64>) -> Value {
    match (cur, prev) {
        (Some(c), Some(p)) if p != 0.0 => {
            let r = ((c - p) / p.abs() * 100.0).round() as i64;
            json!(if r > 0 { format!("+{r}%") } else { format!("{r}%") })
        }
        _ => Value::Null,
    }
}

/// What the realtime page computes over one window's events.
struct Figures {
    users: f64,
    conversations: f64,
    messages: f64,
    response: Option<f64>,
    satisfaction: Option<f64>,
}

fn figures(events: &[Value]) -> Figures {
    let users: BTreeSet<&str> = events.iter().filter_map(|e| e["user_id"].as_str()).collect();
    let convs: BTreeSet<&str> = events.iter().filter_map(|e| e["properties"]["conversation_id"].as_str()).collect();
    let avg = |xs: Vec<f64>| (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64);
    Figures {
        users: users.len() as f64,
        conversations: convs.len() as f64,
        messages: events.iter().filter(|e| e["event_name"] == "message").count() as f64,
        response: avg(events.iter().filter_map(|e| e["properties"]["response_time_ms"].as_f64()).collect()),
        satisfaction: avg(events
            .iter()
            .filter(|e| e["event_name"] == "satisfaction")
            .filter_map(|e| e["properties"]["score"].as_f64())
            .collect()),
    }
}

/// `n` plain events spread evenly over the baseline [now-5m-1d, now-5m), a minute clear of
/// both ends.
fn baseline(now: DateTime<Utc>, n: usize) -> Vec<Value> {
    let span = 86400.0 - 180.0;
    (0..n)
        .map(|k| {
            let t = now - Duration::minutes(6) - Duration::milliseconds((k as f64 * span / n as f64 * 1000.0) as i64);
            ev("page_view", Some(&format!("b{}", k % 50)), t, json!({}))
        })
        .collect()
}

/// `n` plain events in the current window.
fn burst(now: DateTime<Utc>, n: usize) -> Vec<Value> {
    (0..n)
        .map(|k| ev("page_view", Some(&format!("r{k}")), now - Duration::seconds(60 + (k as i64 * 7) % 120), json!({})))
        .collect()
}

fn traffic_alerts(body: &Value) -> Vec<Value> {
    body["alerts"].as_array().unwrap().iter().filter(|a| a["type"] != "rule").cloned().collect()
}

fn usual(baseline_events: usize) -> f64 {
    baseline_events as f64 / 288.0
}

// ---------------------------------------------------------------------------------------
// Realtime figures and trends
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn current_figures_and_trends_match_the_model() {
    let app = TestApp::spawn().await;
    let now = Utc::now();
    let m = |s: i64| now - Duration::seconds(s);
    let d = |s: i64| now - Duration::days(1) - Duration::seconds(s);
    let current = vec![
        ev("conversation_started", Some("u1"), m(170), json!({"conversation_id": "c1", "bot_id": "b1"})),
        ev("message", Some("u1"), m(160), json!({"conversation_id": "c1", "role": "user", "token_count": 10})),
        ev(
            "message",
            Some("u1"),
            m(150),
            json!({"conversation_id": "c1", "role": "assistant", "response_time_ms": 800}),
        ),
        ev("satisfaction", Some("u1"), m(140), json!({"conversation_id": "c1", "score": 4})),
        ev("message", Some("u2"), m(130), json!({"conversation_id": "c2", "role": "user"})),
        ev(
            "message",
            Some("u2"),
            m(120),
            json!({"conversation_id": "c2", "role": "assistant", "response_time_ms": 1201}),
        ),
        ev("satisfaction", Some("u2"), m(110), json!({"conversation_id": "c2", "score": 2})),
        ev("page_view", Some("u3"), m(100), json!({"page": "/"})),
        // No user: a message, not a user.
        ev("message", None, m(90), json!({"conversation_id": "c3", "role": "assistant", "response_time_ms": 500})),
        ev(
            "api_request",
            Some("u4"),
            m(80),
            json!({"endpoint": "/v1/chat", "status_code": 200, "response_time_ms": 300}),
        ),
        ev("message", Some("u4"), m(70), json!({"conversation_id": "c4", "role": "user"})),
    ];
    let previous = vec![
        ev("conversation_started", Some("u1"), d(170), json!({"conversation_id": "p1"})),
        ev("message", Some("u1"), d(160), json!({"conversation_id": "p1", "role": "user"})),
        ev("satisfaction", Some("u9"), d(100), json!({"conversation_id": "p1", "score": 5})),
        ev(
            "message",
            Some("u8"),
            d(90),
            json!({"conversation_id": "p2", "role": "assistant", "response_time_ms": 99999}),
        ),
    ];
    // Outside both windows (but inside the baseline): never counted as current or previous.
    let outside = vec![
        ev("message", Some("x1"), now - Duration::minutes(6), json!({"conversation_id": "x1", "response_time_ms": 1})),
        ev("satisfaction", Some("x2"), now - Duration::days(1) + Duration::minutes(1), json!({"score": 1})),
        ev("satisfaction", Some("x3"), now - Duration::days(1) - Duration::minutes(6), json!({"score": 1})),
        ev("message", Some("x4"), now - Duration::hours(3), json!({"conversation_id": "x4"})),
    ];
    let all: Vec<Value> = current.iter().chain(&previous).chain(&outside).cloned().collect();
    ingest(&app, "acme", &all).await;

    let (c, p) = (figures(&current), figures(&previous));
    let b = realtime(&app, &token("viewer", Some("acme"))).await;
    let cur = &b["current"];
    assert_eq!(cur["active_users"], json!(c.users as i64), "{b}");
    assert_eq!(c.users, 4.0);
    assert_eq!(cur["active_conversations"], json!(c.conversations as i64), "{b}");
    let mpm = (c.messages / 5.0 * 100.0).round() / 100.0;
    assert!((cur["messages_per_minute"].as_f64().unwrap() - mpm).abs() < 1e-9, "{b}: want {mpm}");
    assert_eq!(cur["average_response_time_ms"], json!(c.response.unwrap().round() as i64), "{b}");
    let trends = &b["trends"];
    assert_eq!(trends["users_change"], pct(Some(c.users), Some(p.users)), "{b}");
    assert_eq!(trends["users_change"], "+33%", "4 users against 3");
    assert_eq!(trends["conversations_change"], pct(Some(c.conversations), Some(p.conversations)), "{b}");
    assert_eq!(trends["conversations_change"], "+100%");
    assert_eq!(trends["satisfaction_change"], pct(c.satisfaction, p.satisfaction), "{b}");
    assert_eq!(trends["satisfaction_change"], "-40%", "3 against 5");
    assert_eq!(b["alerts"], json!([]), "{b}");
    assert_eq!(b["window_minutes"], 5);
    let ts = DateTime::parse_from_rfc3339(b["timestamp"].as_str().unwrap()).unwrap();
    assert!((ts.with_timezone(&Utc) - now).num_seconds().abs() < 60, "{b}");
}

#[tokio::test]
async fn an_empty_tenant_has_zeros_and_no_trends() {
    let app = TestApp::spawn().await;
    let b = realtime(&app, &token("analyst", Some("acme"))).await;
    assert_eq!(
        b["current"],
        json!({"active_users": 0, "active_conversations": 0, "messages_per_minute": 0, "average_response_time_ms": null}),
        "{b}"
    );
    assert_eq!(b["trends"], json!({"users_change": null, "conversations_change": null, "satisfaction_change": null}));
    assert_eq!(b["alerts"], json!([]));
}

#[tokio::test]
async fn trends_are_null_without_a_previous_value() {
    let app = TestApp::spawn().await;
    let now = Utc::now();
    // Previous window: a user, but no conversation and no satisfaction.
    let previous = vec![ev("page_view", Some("u1"), now - Duration::days(1) - Duration::seconds(120), json!({}))];
    let current = vec![
        ev("message", Some("u1"), now - Duration::seconds(120), json!({"conversation_id": "c1"})),
        ev("satisfaction", Some("u2"), now - Duration::seconds(100), json!({"conversation_id": "c1", "score": 5})),
    ];
    ingest(&app, "acme", &[previous, current].concat()).await;
    let b = realtime(&app, &token("viewer", Some("acme"))).await;
    assert_eq!(b["trends"]["users_change"], "+100%", "{b}");
    assert_eq!(b["trends"]["conversations_change"], Value::Null, "no conversation a day ago: {b}");
    assert_eq!(b["trends"]["satisfaction_change"], Value::Null, "no score a day ago: {b}");
    assert_eq!(b["current"]["average_response_time_ms"], Value::Null, "no response time: {b}");
    assert_eq!(b["current"]["messages_per_minute"].as_f64(), Some(0.2), "{b}");
    // Only a previous window: current zeros, -100 %.
    let app = TestApp::spawn().await;
    ingest(&app, "acme", &[ev("page_view", Some("u1"), now - Duration::days(1) - Duration::seconds(120), json!({}))])
        .await;
    let b = realtime(&app, &token("viewer", Some("acme"))).await;
    assert_eq!(b["current"]["active_users"], 0, "{b}");
    assert_eq!(b["trends"]["users_change"], "-100%", "{b}");
}

// ---------------------------------------------------------------------------------------
// Traffic alerts
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_burst_over_a_busy_baseline_is_high_traffic() {
    let app = TestApp::spawn().await;
    let now = Utc::now();
    let base = 600; // about 2.08 per five minutes
    ingest(&app, "acme", &[baseline(now, base), burst(now, 10)].concat()).await;
    let b = realtime(&app, &token("viewer", Some("acme"))).await;
    let ratio = 10.0 / usual(base);
    assert!(ratio >= 1.5);
    let want = format!("Traffic {}% above normal", ((ratio - 1.0) * 100.0).round() as i64);
    assert_eq!(traffic_alerts(&b), vec![json!({"type": "high_traffic", "message": want})], "{b}");
    // The baseline's events are not current.
    assert_eq!(b["current"]["active_users"], 10, "{b}");
}

#[tokio::test]
async fn just_under_half_again_is_no_alert() {
    let app = TestApp::spawn().await;
    let now = Utc::now();
    // 3 events against 2.08 usually (ratio 1.44): no alert.
    let base = 600;
    ingest(&app, "acme", &[baseline(now, base), burst(now, 3)].concat()).await;
    assert!(3.0 / usual(base) < 1.5);
    let b = realtime(&app, &token("viewer", Some("acme"))).await;
    assert_eq!(traffic_alerts(&b), Vec::<Value>::new(), "{b}");
    // One more event: 4 / 2.08 = 1.92, high.
    ingest(&app, "acme", &burst(now, 1)).await;
    let b = realtime(&app, &token("viewer", Some("acme"))).await;
    assert_eq!(traffic_alerts(&b).len(), 1, "{b}");
    assert_eq!(traffic_alerts(&b)[0]["type"], "high_traffic", "{b}");
}

#[tokio::test]
async fn no_traffic_alert_without_a_baseline_or_with_a_thin_one() {
    let app = TestApp::spawn().await;
    let now = Utc::now();
    ingest(&app, "acme", &burst(now, 40)).await;
    let b = realtime(&app, &token("viewer", Some("acme"))).await;
    assert_eq!(b["alerts"], json!([]), "no baseline: {b}");
    // 100 events a day is 0.35 per window: a burst of 40 is not an alert.
    ingest(&app, "acme", &baseline(now, 100)).await;
    let b = realtime(&app, &token("viewer", Some("acme"))).await;
    assert_eq!(b["alerts"], json!([]), "thin baseline: {b}");
}

#[tokio::test]
async fn a_quiet_window_after_a_large_baseline_is_low_traffic() {
    let app = TestApp::spawn().await;
    let now = Utc::now();
    let base = 6000; // 20.83 per five minutes
    ingest(&app, "acme", &[baseline(now, base), burst(now, 5)].concat()).await;
    let b = realtime(&app, &token("viewer", Some("acme"))).await;
    let ratio = 5.0 / usual(base);
    let want = format!("Traffic {}% below normal", ((1.0 - ratio) * 100.0).round() as i64);
    assert_eq!(traffic_alerts(&b), vec![json!({"type": "low_traffic", "message": want})], "{b}");
    // 15 events is 72 % of usual: no alert.
    ingest(&app, "acme", &burst(now, 10)).await;
    let b = realtime(&app, &token("viewer", Some("acme"))).await;
    assert_eq!(traffic_alerts(&b), Vec::<Value>::new(), "{b}");
}

#[tokio::test]
async fn a_quiet_window_after_a_modest_baseline_is_no_alert() {
    let app = TestApp::spawn().await;
    let now = Utc::now();
    // 10 per window usually (under 20): even an empty window is no low_traffic.
    ingest(&app, "acme", &baseline(now, 2880)).await;
    let b = realtime(&app, &token("viewer", Some("acme"))).await;
    assert_eq!(b["alerts"], json!([]), "{b}");
}

// ---------------------------------------------------------------------------------------
// Alert rules
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn rules_are_created_listed_read_replaced_and_deleted() {
    let app = TestApp::spawn().await;
    let tok = token("analyst", Some("acme"));
    let before = Utc::now() - Duration::seconds(2);
    let r = create_rule(
        &app,
        &tok,
        json!({"name": "Busy bot", "metric": "messages", "condition": ">", "threshold": 2, "window": "5m"}),
    )
    .await;
    assert_eq!(r["name"], "Busy bot");
    assert_eq!(r["metric"], "messages");
    assert_eq!(r["condition"], "gt", "symbols are stored as names: {r}");
    assert_eq!(r["threshold"].as_f64(), Some(2.0));
    assert_eq!(r["window_seconds"], 300);
    let id = r["id"].as_str().unwrap().to_owned();
    let created = DateTime::parse_from_rfc3339(r["created_at"].as_str().unwrap()).unwrap();
    assert!(created >= before && created <= Utc::now() + Duration::seconds(2), "{r}");
    // Defaults: name is the metric, window 300 s.
    let r2 = create_rule(&app, &tok, json!({"metric": "events", "condition": "lte", "threshold": 0.5})).await;
    assert_eq!((r2["name"].as_str(), r2["window_seconds"].as_i64()), (Some("events"), Some(300)), "{r2}");
    for (w, secs) in
        [(json!("1h"), 3600), (json!("1d"), 86400), (json!(60), 60), (json!("7d"), 604800), (json!("90s"), 90)]
    {
        let r =
            create_rule(&app, &tok, json!({"metric": "events", "condition": "gt", "threshold": 1, "window": w})).await;
        assert_eq!(r["window_seconds"], secs, "{w}: {r}");
    }
    let (s, list, _) = send(app.get(ALERTS).bearer_auth(token("viewer", Some("acme")))).await;
    assert_eq!(s, 200, "{list}");
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), 7, "{list}");
    assert_eq!(data[0], r, "oldest first");
    let (s, got, _) = send(app.get(&format!("{ALERTS}/{id}")).bearer_auth(token("viewer", Some("acme")))).await;
    assert_eq!((s, &got), (200, &r));

    let (s, put, _) = send(app.request("PUT", &format!("{ALERTS}/{id}")).bearer_auth(&tok).json(&json!({
        "name": "Very busy", "metric": "messages", "condition": ">=", "threshold": 3, "window": "1h"
    })))
    .await;
    assert_eq!(s, 200, "{put}");
    assert_eq!(put["id"], r["id"]);
    assert_eq!(put["created_at"], r["created_at"], "replace keeps created_at");
    assert_eq!((put["name"].as_str(), put["condition"].as_str()), (Some("Very busy"), Some("gte")));
    assert_eq!((put["threshold"].as_f64(), put["window_seconds"].as_i64()), (Some(3.0), Some(3600)));
    let (_, got, _) = send(app.get(&format!("{ALERTS}/{id}")).bearer_auth(&tok)).await;
    assert_eq!(got, put);
    // A bad replacement changes nothing.
    assert_problem(
        &send(app.request("PUT", &format!("{ALERTS}/{id}")).bearer_auth(&tok).json(&json!({
            "metric": "messages", "condition": "between", "threshold": 3
        })))
        .await,
        400,
    );
    let (_, got, _) = send(app.get(&format!("{ALERTS}/{id}")).bearer_auth(&tok)).await;
    assert_eq!(got, put);

    let (s, del, _) = send(app.request("DELETE", &format!("{ALERTS}/{id}")).bearer_auth(&tok)).await;
    assert_eq!(s, 200, "{del}");
    assert_eq!(del["id"], id.as_str());
    assert_problem(&send(app.get(&format!("{ALERTS}/{id}")).bearer_auth(&tok)).await, 404);
    assert_problem(&send(app.request("DELETE", &format!("{ALERTS}/{id}")).bearer_auth(&tok)).await, 404);
    assert_problem(
        &send(app.request("PUT", &format!("{ALERTS}/{id}")).bearer_auth(&tok).json(&json!({
            "metric": "messages", "condition": "gt", "threshold": 3
        })))
        .await,
        404,
    );
    let (_, list, _) = send(app.get(ALERTS).bearer_auth(&tok)).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 6);
}

/// Fires the realtime read and returns the rule alerts by name: name -> value.
async fn fired(app: &TestApp, tok: &str) -> Vec<Value> {
    let b = realtime(app, tok).await;
    let mut out: Vec<Value> =
        b["alerts"].as_array().unwrap().iter().filter(|a| a["type"] != "high_traffic").cloned().collect();
    out.sort_by_key(|a| a["name"].as_str().unwrap_or("").to_owned());
    out
}

fn names(alerts: &[Value]) -> Vec<&str> {
    alerts.iter().map(|a| a["name"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn rules_that_hold_fire_and_the_others_stay_silent() {
    let app = TestApp::spawn().await;
    let tok = token("analyst", Some("acme"));
    let now = Utc::now();
    // 3 messages in the last 5 minutes, 2 more half an hour ago; no response times.
    let mut events: Vec<Value> = (0..3)
        .map(|k| ev("message", Some("u1"), now - Duration::seconds(70 + 40 * k), json!({"conversation_id": "c1"})))
        .collect();
    events.extend(
        (0..2).map(|k| ev("message", Some("u2"), now - Duration::minutes(30) - Duration::seconds(k), json!({}))),
    );
    ingest(&app, "acme", &events).await;
    let rules = [
        // (name, metric, condition, threshold, window, fires, value)
        ("a_gt_2", "messages", "gt", 2.0, "5m", true, 3.0),
        ("b_gt_3", "messages", "gt", 3.0, "5m", false, 3.0),
        ("c_gte_3", "messages", "gte", 3.0, "5m", true, 3.0),
        ("d_gte_4", "messages", ">=", 4.0, "5m", false, 3.0),
        ("e_lt_3", "messages", "lt", 3.0, "5m", false, 3.0),
        ("f_lt_4", "messages", "<", 4.0, "5m", true, 3.0),
        ("g_lte_3", "messages", "<=", 3.0, "5m", true, 3.0),
        ("h_lte_2", "messages", "lte", 2.0, "5m", false, 3.0),
        ("i_eq_3", "messages", "eq", 3.0, "5m", true, 3.0),
        ("j_eq_2", "messages", "=", 2.0, "5m", false, 3.0),
        ("k_eq_5_1h", "messages", "eq", 5.0, "1h", true, 5.0),
        ("l_gt_5_1h", "messages", "gt", 5.0, "1h", false, 5.0),
        // An additive metric with nothing in the window is 0.
        ("m_no_requests", "api_requests", "eq", 0.0, "5m", true, 0.0),
        // An average with nothing to average has no value: silent whatever the condition.
        ("n_no_response", "avg_response_time", "lt", 1e9, "5m", false, 0.0),
        ("o_users", "users", "eq", 1.0, "5m", true, 1.0),
    ];
    let mut ids = std::collections::BTreeMap::new();
    for (name, metric, cond, threshold, window, _, _) in rules {
        let r = create_rule(
            &app,
            &tok,
            json!({"name": name, "metric": metric, "condition": cond, "threshold": threshold, "window": window}),
        )
        .await;
        ids.insert(name, r["id"].as_str().unwrap().to_owned());
    }
    let got = fired(&app, &token("viewer", Some("acme"))).await;
    let want: Vec<&str> = rules.iter().filter(|r| r.5).map(|r| r.0).collect();
    assert_eq!(names(&got), want, "{got:?}");
    for a in &got {
        let name = a["name"].as_str().unwrap();
        let (_, metric, cond, threshold, window, _, value) = rules.iter().find(|r| r.0 == name).unwrap();
        assert_eq!(a["type"], "rule");
        assert_eq!(a["rule_id"], ids[name].as_str());
        assert_eq!(a["metric"], *metric);
        assert_eq!(a["value"].as_f64(), Some(*value), "{a}");
        let cond = match *cond {
            ">" => "gt",
            ">=" => "gte",
            "<" => "lt",
            "<=" => "lte",
            "=" => "eq",
            c => c,
        };
        assert_eq!(a["condition"], cond);
        assert_eq!(a["threshold"].as_f64(), Some(*threshold));
        let msg = a["message"].as_str().unwrap();
        assert!(msg.contains(metric) && msg.contains(&format!("{}", *value as i64)), "{a}");
        let secs = if *window == "1h" { 3600 } else { 300 };
        assert!(msg.contains(&secs.to_string()), "{a}");
    }
    // A deleted rule no longer fires.
    let (s, _, _) = send(app.request("DELETE", &format!("{ALERTS}/{}", ids["a_gt_2"])).bearer_auth(&tok)).await;
    assert_eq!(s, 200);
    let got = fired(&app, &token("viewer", Some("acme"))).await;
    assert!(!names(&got).contains(&"a_gt_2"), "{got:?}");
    assert_eq!(got.len(), want.len() - 1);
}

#[tokio::test]
async fn rules_over_a_custom_metric_and_over_metric_records() {
    let app = TestApp::spawn().await;
    let tok = token("analyst", Some("acme"));
    let admin = token("admin", Some("acme"));
    let now = Utc::now();
    // A formula: messages per conversation over the rule's window.
    let (s, b, _) = send(app.post(CUSTOM).bearer_auth(&tok).json(&json!({
        "metric_name": "msgs_per_conv", "type": "ratio", "calculation": "messages / conversations"
    })))
    .await;
    assert_eq!(s, 201, "{b}");
    let mut events =
        vec![ev("conversation_started", Some("u1"), now - Duration::seconds(170), json!({"conversation_id": "c1"}))];
    events.extend(
        (0..3).map(|k| {
            ev("message", Some("u1"), now - Duration::seconds(150 - 20 * k), json!({"conversation_id": "c1"}))
        }),
    );
    ingest(&app, "acme", &events).await;
    let fires = create_rule(
        &app,
        &tok,
        json!({"name": "chatty", "metric": "msgs_per_conv", "condition": "gte", "threshold": 3}),
    )
    .await;
    create_rule(
        &app,
        &tok,
        json!({"name": "very_chatty", "metric": "msgs_per_conv", "condition": "gt", "threshold": 3}),
    )
    .await;

    // Metric records: a name only records carry is unknown until a record carries it.
    assert_problem(
        &send(
            app.post(ALERTS)
                .bearer_auth(&tok)
                .json(&json!({"metric": "queue_depth", "condition": "gt", "threshold": 10})),
        )
        .await,
        422,
    );
    for (value, t) in [(7.0, now - Duration::minutes(2)), (5.0, now - Duration::hours(2))] {
        let (s, b, _) = send(app.post(RECORDS).bearer_auth(&admin).json(&json!({
            "service_name": "partners_crm", "metric_type": "engagement", "metric_name": "queue_depth",
            "value": value, "timestamp": rfc(t)
        })))
        .await;
        assert_eq!(s, 200, "{b}");
    }
    create_rule(&app, &tok, json!({"name": "queue_5m", "metric": "queue_depth", "condition": "gt", "threshold": 10}))
        .await;
    let day = create_rule(
        &app,
        &tok,
        json!({"name": "queue_1d", "metric": "queue_depth", "condition": "gt", "threshold": 10, "window": "1d"}),
    )
    .await;
    let got = fired(&app, &token("viewer", Some("acme"))).await;
    assert_eq!(names(&got), vec!["chatty", "queue_1d"], "{got:?}");
    assert_eq!(got[0]["rule_id"], fires["id"]);
    assert_eq!(got[0]["value"].as_f64(), Some(3.0), "{got:?}");
    assert_eq!(got[1]["rule_id"], day["id"]);
    assert_eq!(got[1]["value"].as_f64(), Some(12.0), "7 + 5 over the day: {got:?}");
}

#[tokio::test]
async fn bad_rules_are_problems() {
    let app = TestApp::spawn().await;
    let tok = token("analyst", Some("acme"));
    let ok = json!({"metric": "messages", "condition": "gt", "threshold": 2});
    let with = |k: &str, v: Value| {
        let mut b = ok.clone();
        b[k] = v;
        b
    };
    let without = |k: &str| {
        let mut b = ok.clone();
        b.as_object_mut().unwrap().remove(k);
        b
    };
    let cases: Vec<(Value, u16, &str)> = vec![
        (without("metric"), 400, "metric"),
        (with("metric", json!("")), 400, "metric"),
        (with("metric", json!(5)), 400, "metric"),
        (without("condition"), 400, "condition"),
        (with("condition", json!("between")), 400, "condition"),
        (without("threshold"), 400, "threshold"),
        (with("threshold", json!("5")), 400, "threshold"),
        (with("threshold", json!(null)), 400, "threshold"),
        (with("window", json!("30s")), 400, "window"),
        (with("window", json!(59)), 400, "window"),
        (with("window", json!("8d")), 400, "window"),
        (with("window", json!(604801)), 400, "window"),
        (with("window", json!("5 parsecs")), 400, "window"),
        (with("window", json!(-300)), 400, "window"),
        (with("name", json!("x".repeat(201))), 400, "name"),
        (with("metric", json!("no_such_metric")), 422, "metric"),
    ];
    for (body, status, field) in cases {
        let p = assert_problem(&send(app.post(ALERTS).bearer_auth(&tok).json(&body)).await, status);
        let text = p.to_string();
        assert!(text.contains(field), "{body}: {p}");
    }
    // Not JSON at all.
    let got = send(app.post(ALERTS).bearer_auth(&tok).header("content-type", "application/json").body("{nope")).await;
    assert_problem(&got, 400);
    // Nothing was stored.
    let (_, list, _) = send(app.get(ALERTS).bearer_auth(&tok)).await;
    assert_eq!(list["data"], json!([]), "{list}");
    // A rule that does not exist.
    assert_problem(&send(app.get(&format!("{ALERTS}/no-such-id")).bearer_auth(&tok)).await, 404);
}

#[tokio::test]
async fn who_may_do_what() {
    let app = TestApp::spawn().await;
    let analyst = token("analyst", Some("acme"));
    let viewer = token("viewer", Some("acme"));
    let ingest_tok = token("ingest", Some("acme"));
    let body = json!({"metric": "events", "condition": "gt", "threshold": 1});
    assert_problem(&send(app.get(REALTIME)).await, 401);
    assert_problem(&send(app.get(ALERTS)).await, 401);
    assert_problem(&send(app.post(ALERTS).json(&body)).await, 401);
    assert_problem(&send(app.get(REALTIME).bearer_auth("not-a-token")).await, 401);
    assert_problem(&send(app.post(ALERTS).bearer_auth(&viewer).json(&body)).await, 403);
    assert_problem(&send(app.post(ALERTS).bearer_auth(&ingest_tok).json(&body)).await, 403);
    assert_problem(&send(app.get(REALTIME).bearer_auth(&ingest_tok)).await, 403);
    assert_problem(&send(app.get(ALERTS).bearer_auth(&ingest_tok)).await, 403);
    let r = create_rule(&app, &analyst, body.clone()).await;
    let path = format!("{ALERTS}/{}", r["id"].as_str().unwrap());
    assert_problem(&send(app.get(&path).bearer_auth(&ingest_tok)).await, 403);
    assert_problem(&send(app.request("PUT", &path).bearer_auth(&viewer).json(&body)).await, 403);
    assert_problem(&send(app.request("DELETE", &path).bearer_auth(&viewer)).await, 403);
    let (s, _, _) = send(app.get(&path).bearer_auth(&viewer)).await;
    assert_eq!(s, 200);
    realtime(&app, &viewer).await;
    // Admins author too.
    create_rule(&app, &token("admin", Some("acme")), body).await;
}

#[tokio::test]
async fn another_tenants_rules_and_events_never_appear() {
    let app = TestApp::spawn().await;
    let now = Utc::now();
    let acme = token("analyst", Some("acme"));
    let globex = token("analyst", Some("globex"));
    // globex: busy now, a busy baseline, and a rule that always holds.
    ingest(
        &app,
        "globex",
        &[
            baseline(now, 600),
            burst(now, 30),
            vec![ev(
                "message",
                Some("g1"),
                now - Duration::seconds(100),
                json!({"conversation_id": "gc", "response_time_ms": 5}),
            )],
        ]
        .concat(),
    )
    .await;
    let theirs =
        create_rule(&app, &globex, json!({"name": "always", "metric": "events", "condition": "gte", "threshold": 0}))
            .await;
    // acme: one user, one message.
    ingest(&app, "acme", &[ev("message", Some("a1"), now - Duration::seconds(120), json!({"conversation_id": "ac"}))])
        .await;
    let mine =
        create_rule(&app, &acme, json!({"name": "mine", "metric": "events", "condition": "eq", "threshold": 1})).await;

    let b = realtime(&app, &acme).await;
    assert_eq!(b["current"]["active_users"], 1, "{b}");
    assert_eq!(b["current"]["active_conversations"], 1, "{b}");
    assert_eq!(b["current"]["average_response_time_ms"], Value::Null, "{b}");
    let alerts = b["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{b}");
    assert_eq!(alerts[0]["rule_id"], mine["id"]);
    // globex sees its own.
    let g = realtime(&app, &globex).await;
    assert_eq!(g["current"]["active_users"], 31, "{g}");
    let types: Vec<&str> = g["alerts"].as_array().unwrap().iter().map(|a| a["type"].as_str().unwrap()).collect();
    assert_eq!(types, vec!["rule", "high_traffic"], "{g}");
    assert_eq!(g["alerts"][0]["rule_id"], theirs["id"]);
    // The resource: listed, read, replaced and deleted only by its tenant.
    let (_, list, _) = send(app.get(ALERTS).bearer_auth(&acme)).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["id"], mine["id"]);
    let path = format!("{ALERTS}/{}", theirs["id"].as_str().unwrap());
    assert_problem(&send(app.get(&path).bearer_auth(&acme)).await, 404);
    assert_problem(
        &send(
            app.request("PUT", &path)
                .bearer_auth(&acme)
                .json(&json!({"metric": "events", "condition": "gt", "threshold": 9})),
        )
        .await,
        404,
    );
    assert_problem(&send(app.request("DELETE", &path).bearer_auth(&acme)).await, 404);
    let (s, still, _) = send(app.get(&path).bearer_auth(&globex)).await;
    assert_eq!((s, &still), (200, &theirs));
}

#[tokio::test]
async fn a_rule_whose_custom_metric_is_gone_is_reported_and_limits_hold() {
    let app = TestApp::spawn().await;
    let tok = token("analyst", Some("acme"));
    let (s, b, _) = send(
        app.post(CUSTOM).bearer_auth(&tok).json(&json!({"metric_name": "starts", "calculation": "conversations"})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let r =
        create_rule(&app, &tok, json!({"name": "no starts", "metric": "starts", "condition": "eq", "threshold": 0}))
            .await;
    // Another tenant cannot name acme's custom metric.
    assert_problem(
        &send(
            app.post(ALERTS)
                .bearer_auth(token("analyst", Some("globex")))
                .json(&json!({"metric": "starts", "condition": "eq", "threshold": 0})),
        )
        .await,
        422,
    );
    let got = fired(&app, &tok).await;
    assert_eq!(names(&got), vec!["no starts"], "{got:?}");
    let (s, b, _) = send(app.request("DELETE", &format!("{CUSTOM}/starts")).bearer_auth(&tok)).await;
    assert_eq!(s, 200, "{b}");
    let b = realtime(&app, &tok).await;
    let alerts = b["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{b}");
    assert_eq!(alerts[0]["type"], "rule_error", "{b}");
    assert_eq!(alerts[0]["rule_id"], r["id"]);
    assert!(alerts[0]["message"].as_str().unwrap().contains("starts"), "{b}");
    // At most 100 rules a tenant.
    for _ in 1..100 {
        create_rule(&app, &tok, json!({"metric": "events", "condition": "gt", "threshold": 1e9})).await;
    }
    assert_problem(
        &send(app.post(ALERTS).bearer_auth(&tok).json(&json!({"metric": "events", "condition": "gt", "threshold": 1})))
            .await,
        422,
    );
    let (_, list, _) = send(app.get(ALERTS).bearer_auth(&tok)).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 100);
}
