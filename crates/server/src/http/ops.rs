//! Operations endpoints (seed 001): `/health`, `/live`, `/ready`, `/metrics`. They need no
//! credential, so that probes and scrapers work unconfigured.

use crate::app::AppState;
use crate::telemetry::{self, names};
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{SecondsFormat, Utc};
use serde::Serialize;
use std::time::Instant;

async fn timed<F: std::future::Future<Output = Result<(), crate::store::StoreError>>>(f: F) -> (bool, u64) {
    let t = Instant::now();
    let ok = f.await.is_ok();
    (ok, t.elapsed().as_millis() as u64)
}

/// One store's state.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Check {
    /// `healthy` or `unhealthy`.
    status: &'static str,
    /// Milliseconds the store took to answer.
    latency: u64,
}

fn check(ok: bool, latency: u64) -> Check {
    Check { status: if ok { "healthy" } else { "unhealthy" }, latency }
}

/// The stores checked by `/health`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Checks {
    analytics_store: Check,
    meta_store: Check,
}

/// Whether the writer takes events.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IngestState {
    /// `accepting`, `refused` (the disk is under its free-space floor) or `stopped`.
    status: &'static str,
}

/// The data directory's disk.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DiskState {
    /// `ok`, or `low`: under the free-space floor (`min_free_disk_mb`), writes are refused.
    status: &'static str,
    /// Bytes free; absent for in-memory stores.
    #[serde(skip_serializing_if = "Option::is_none")]
    free_bytes: Option<u64>,
    floor_bytes: u64,
}

fn disk_state(state: &AppState) -> DiskState {
    let (free_bytes, floor_bytes, low) = state.disk.status();
    DiskState { status: if low { "low" } else { "ok" }, free_bytes, floor_bytes }
}

/// The service's health: each store and the ingest writer (503 when any is down).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `healthy` or `unhealthy`.
    status: &'static str,
    service: &'static str,
    version: &'static str,
    /// RFC 3339, now.
    timestamp: String,
    /// Seconds since start.
    uptime: u64,
    checks: Checks,
    ingest: IngestState,
    disk: DiskState,
}

/// `GET /health`: each store's status and latency in milliseconds.
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let ((a_ok, a_ms), (m_ok, m_ms)) = tokio::join!(timed(state.events.ping()), timed(state.meta.ping()));
    let disk = disk_state(&state);
    let healthy = a_ok && m_ok && !state.ingest.is_closed() && disk.status == "ok";
    let body = Health {
        status: if healthy { "healthy" } else { "unhealthy" },
        service: "sightline",
        version: env!("CARGO_PKG_VERSION"),
        timestamp: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        uptime: state.started.elapsed().as_secs(),
        checks: Checks { analytics_store: check(a_ok, a_ms), meta_store: check(m_ok, m_ms) },
        ingest: IngestState {
            status: match (state.ingest.is_closed(), disk.status) {
                (true, _) => "stopped",
                (false, "ok") => "accepting",
                _ => "refused",
            },
        },
        disk,
    };
    let status = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body))
}

/// The process answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Live {
    /// `alive`.
    status: &'static str,
}

/// `GET /live`: the process answers.
pub async fn live() -> Json<Live> {
    Json(Live { status: "alive" })
}

/// Whether the database answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReadyChecks {
    /// `connected` or `disconnected`.
    database: &'static str,
    /// `ok`, or `low`: reads are served, writes refused until disk space is freed.
    disk: &'static str,
}

/// Whether the service takes work (503 when not).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Ready {
    /// `ready` or `not_ready`.
    status: &'static str,
    checks: ReadyChecks,
}

/// `GET /ready`: the stores answer and the writer takes work.
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Ready>) {
    let (a, m) = tokio::join!(state.events.ping(), state.meta.ping());
    let ok = a.is_ok() && m.is_ok() && !state.ingest.is_closed();
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = Ready {
        status: if ok { "ready" } else { "not_ready" },
        checks: ReadyChecks {
            database: if a.is_ok() && m.is_ok() { "connected" } else { "disconnected" },
            disk: disk_state(&state).status,
        },
    };
    (status, Json(body))
}

/// `GET /metrics`: Prometheus text.
pub async fn metrics(State(state): State<AppState>) -> Response {
    if let Ok(n) = state.events.total_events().await {
        metrics::gauge!(names::EVENTS_IN_STORE).set(n as f64);
    }
    let text = telemetry::prometheus().render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

/// A problem type, as `type` in a problem+json answer names it (RFC 9457 §3.1.1).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProblemType {
    /// This problem type's URI, as answers carry it.
    #[serde(rename = "type")]
    kind: String,
    title: &'static str,
    status: u16,
    description: &'static str,
}

/// `GET /problems/{slug}`: what a problem type means; 404 for a slug that is none.
pub async fn problem_type(
    super::extract::ApiPath(slug): super::extract::ApiPath<String>,
) -> super::error::ApiResult<Json<ProblemType>> {
    let code = sightline_core::code::Code::from_slug(&slug)
        .ok_or_else(|| super::error::ApiError::not_found(format!("no problem type '{slug}'")))?;
    Ok(Json(ProblemType {
        kind: code.type_uri(),
        title: code.title(),
        status: code.status(),
        description: code.description(),
    }))
}
