//! Operations endpoints (seed 001): `/health`, `/live`, `/ready`, `/metrics`. They need no
//! credential, so that probes and scrapers work unconfigured.

use crate::app::AppState;
use crate::telemetry::{self, names};
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};
use std::time::Instant;

async fn timed<F: std::future::Future<Output = Result<(), crate::store::StoreError>>>(f: F) -> (bool, u64) {
    let t = Instant::now();
    let ok = f.await.is_ok();
    (ok, t.elapsed().as_millis() as u64)
}

fn check(ok: bool, latency: u64) -> Value {
    json!({ "status": if ok { "healthy" } else { "unhealthy" }, "latency": latency })
}

/// `GET /health`: each store's status and latency in milliseconds.
pub async fn health(State(state): State<AppState>) -> Response {
    let ((a_ok, a_ms), (m_ok, m_ms)) = tokio::join!(timed(state.events.ping()), timed(state.meta.ping()));
    let healthy = a_ok && m_ok && !state.ingest.is_closed();
    let body = json!({
        "status": if healthy { "healthy" } else { "unhealthy" },
        "service": "sightline",
        "version": env!("CARGO_PKG_VERSION"),
        "timestamp": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        "uptime": state.started.elapsed().as_secs(),
        "checks": {
            "analytics_store": check(a_ok, a_ms),
            "meta_store": check(m_ok, m_ms),
        },
        "ingest": { "status": if state.ingest.is_closed() { "stopped" } else { "accepting" } },
    });
    let status = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

/// `GET /live`: the process answers.
pub async fn live() -> Json<Value> {
    Json(json!({ "status": "alive" }))
}

/// `GET /ready`: the stores answer and the writer takes work.
pub async fn ready(State(state): State<AppState>) -> Response {
    let (a, m) = tokio::join!(state.events.ping(), state.meta.ping());
    let ok = a.is_ok() && m.is_ok() && !state.ingest.is_closed();
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "status": if ok { "ready" } else { "not_ready" },
        "checks": { "database": if a.is_ok() && m.is_ok() { "connected" } else { "disconnected" } },
    });
    (status, Json(body)).into_response()
}

/// `GET /metrics`: Prometheus text.
pub async fn metrics(State(state): State<AppState>) -> Response {
    if let Ok(n) = state.events.total_events().await {
        metrics::gauge!(names::EVENTS_IN_STORE).set(n as f64);
    }
    let text = telemetry::prometheus().render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}
