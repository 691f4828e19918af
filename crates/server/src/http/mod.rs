//! The HTTP layer: routes, middleware, error rendering. Handlers are thin: they parse,
//! call a store or the ingest queue, and shape the answer.

pub mod error;
pub mod events;
pub mod extract;
pub mod ops;

use crate::app::AppState;
use crate::telemetry::names;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, Method};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use error::ApiError;
use sightline_core::code::Code;
use std::time::Instant;
use tower::ServiceBuilder;
use tower_http::normalize_path::NormalizePathLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The API's routes, without the outer layers.
pub fn routes() -> Router<AppState> {
    let analytics = Router::new()
        .route(
            "/events",
            post(events::track_event).get(events::list_events).layer(DefaultBodyLimit::max(events::MAX_EVENT_BYTES)),
        )
        .route("/events/batch", post(events::track_batch).layer(DefaultBodyLimit::max(events::MAX_BATCH_BYTES)))
        .route("/events/{id}", get(events::get_event))
        .route("/track/activity", post(events::track_activity).layer(DefaultBodyLimit::max(events::MAX_EVENT_BYTES)));
    Router::new()
        .nest("/api/v1/analytics", analytics)
        .route("/health", get(ops::health))
        .route("/live", get(ops::live))
        .route("/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

async fn not_found(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(Code::MethodNotAllowed, format!("{method} is not allowed on {}", uri.path()))
}

/// Counts and times each request by its route template (never the raw path, which would
/// make one series per event id).
async fn record_metrics(req: Request, next: Next) -> Response {
    let route =
        req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned()).unwrap_or_else(|| "unmatched".into());
    let method = req.method().as_str().to_owned();
    let started = Instant::now();
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    metrics::counter!(names::HTTP_REQUESTS, "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!(names::HTTP_DURATION, "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    res
}

/// The whole service: routes plus request ids, tracing, metrics, problem completion and
/// trailing-slash tolerance (`/health/` is `/health`).
pub fn service(state: AppState) -> NormalizePath {
    let router = routes()
        .route_layer(middleware::from_fn(record_metrics))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(X_REQUEST_ID.clone(), MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
                    let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
                    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
                }))
                .layer(PropagateRequestIdLayer::new(X_REQUEST_ID.clone()))
                .layer(middleware::from_fn(error::complete_problems)),
        )
        .with_state(state);
    // Outside the router, so the path is normalized before routing.
    ServiceBuilder::new().layer(NormalizePathLayer::trim_trailing_slash()).service(router)
}

pub type NormalizePath = tower_http::normalize_path::NormalizePath<Router>;
