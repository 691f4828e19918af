//! The HTTP layer: routes, middleware, error rendering. Handlers are thin: they parse,
//! call a store or the ingest queue, and shape the answer.

pub mod alerts;
pub mod api_keys;
pub mod audit;
pub mod behavior;
pub mod conversations;
pub mod custom_metrics;
pub mod custom_sql;
pub mod customers;
pub mod error;
pub mod events;
pub mod extract;
pub mod guard;
pub mod hygiene;
pub mod identity;
pub mod metric_records;
pub mod ops;
pub mod query;
pub mod realtime;
pub mod segments;
pub mod tenants;
pub mod user_analytics;
pub mod users;

use crate::app::AppState;
use crate::auth::{Access, CanAuthor, CanIngest, CanManage, CanRead, IsSuperuser, Need, Signed};
use crate::telemetry::names;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, Method};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use error::ApiError;
use sightline_core::code::Code;
use std::time::Instant;
use tower::ServiceBuilder;
use tower_http::normalize_path::NormalizePathLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// One route: its method, its path template, and who may call it. The router is built
/// from this table, and the authorization tests walk it, so a route cannot be added
/// without saying who may call it, and a guard that does not hold fails a test.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
}

/// Who may call a route, from the guard type its handler takes.
fn access<N: Need>() -> Access {
    N::ACCESS
}

fn table() -> Vec<(RouteSpec, MethodRouter<AppState>)> {
    use Method as M;
    let r = |method: Method, path: &'static str, access: Access, mr: MethodRouter<AppState>| {
        (RouteSpec { method, path, access }, mr)
    };
    let one_event = DefaultBodyLimit::max(events::MAX_EVENT_BYTES);
    let small = DefaultBodyLimit::max(64 * 1024);
    let public = Access::Public;
    vec![
        // Ingest and read-back (seeds 001, 003, 004).
        r(M::POST, "/api/v1/analytics/events", access::<CanIngest>(), post(events::track_event).layer(one_event)),
        r(M::GET, "/api/v1/analytics/events", access::<CanRead>(), get(events::list_events)),
        r(
            M::POST,
            "/api/v1/analytics/events/batch",
            access::<CanIngest>(),
            post(events::track_batch).layer(DefaultBodyLimit::max(events::MAX_BATCH_BYTES)),
        ),
        r(M::GET, "/api/v1/analytics/events/{id}", access::<CanRead>(), get(events::get_event)),
        r(
            M::POST,
            "/api/v1/analytics/track/activity",
            access::<CanIngest>(),
            post(events::track_activity).layer(one_event),
        ),
        // Metric records (seed 000).
        r(M::POST, "/api/v1/metrics", access::<CanIngest>(), post(metric_records::create).layer(small)),
        r(M::GET, "/api/v1/metrics", access::<CanRead>(), get(metric_records::list)),
        r(M::GET, "/api/v1/metrics/aggregate", access::<CanRead>(), get(metric_records::aggregate)),
        r(M::GET, "/api/v1/metrics/time-series", access::<CanRead>(), get(metric_records::time_series)),
        r(M::GET, "/api/v1/metrics/by-service/{service_name}", access::<CanRead>(), get(metric_records::by_service)),
        r(M::GET, "/api/v1/metrics/by-type/{metric_type}", access::<CanRead>(), get(metric_records::by_type)),
        r(M::GET, "/api/v1/metrics/{id}", access::<CanRead>(), get(metric_records::get)),
        r(M::PATCH, "/api/v1/metrics/{id}", access::<CanIngest>(), patch(metric_records::update).layer(small)),
        r(M::DELETE, "/api/v1/metrics/{id}", access::<CanIngest>(), delete(metric_records::delete)),
        r(M::GET, "/api/v1/settings/metric-vocabulary", access::<CanRead>(), get(metric_records::get_vocabulary)),
        r(
            M::PUT,
            "/api/v1/settings/metric-vocabulary",
            access::<CanManage>(),
            put(metric_records::put_vocabulary).layer(small),
        ),
        // Analyses (seed 001's query and summary, the insights endpoint) and definitions (seed 004).
        r(M::POST, "/api/v1/analytics/query", access::<CanRead>(), post(query::analytics_query).layer(small)),
        r(M::GET, "/api/v1/analytics/metrics", access::<CanRead>(), get(query::summary)),
        r(M::POST, "/api/v1/insights", access::<CanRead>(), post(query::insights).layer(small)),
        r(M::POST, "/api/v1/analytics/funnels", access::<CanRead>(), post(behavior::funnel).layer(small)),
        r(M::GET, "/api/v1/analytics/conversations/analytics", access::<CanRead>(), get(conversations::analytics)),
        r(M::GET, "/api/v1/analytics/users/{user_id}/analytics", access::<CanRead>(), get(user_analytics::analytics)),
        r(M::GET, "/api/v1/analytics/realtime", access::<CanRead>(), get(realtime::realtime)),
        r(M::GET, "/api/v1/analytics/alerts", access::<CanRead>(), get(alerts::list)),
        r(M::POST, "/api/v1/analytics/alerts", access::<CanAuthor>(), post(alerts::create).layer(small)),
        r(M::GET, "/api/v1/analytics/alerts/{id}", access::<CanRead>(), get(alerts::get)),
        r(M::PUT, "/api/v1/analytics/alerts/{id}", access::<CanAuthor>(), put(alerts::replace).layer(small)),
        r(M::DELETE, "/api/v1/analytics/alerts/{id}", access::<CanAuthor>(), delete(alerts::delete)),
        r(M::GET, "/api/v1/analytics/segments", access::<CanRead>(), get(segments::list)),
        r(M::POST, "/api/v1/analytics/segments", access::<CanAuthor>(), post(segments::create).layer(small)),
        r(M::GET, "/api/v1/analytics/segments/{id}", access::<CanRead>(), get(segments::get)),
        r(M::PUT, "/api/v1/analytics/segments/{id}", access::<CanAuthor>(), put(segments::replace).layer(small)),
        r(M::DELETE, "/api/v1/analytics/segments/{id}", access::<CanAuthor>(), delete(segments::delete)),
        r(M::GET, "/api/v1/analytics/segments/{id}/members", access::<CanRead>(), get(segments::members)),
        r(M::POST, "/api/v1/analytics/cohorts", access::<CanRead>(), post(behavior::cohorts).layer(small)),
        r(M::GET, "/api/v1/analytics/custom-metrics", access::<CanRead>(), get(custom_metrics::list)),
        r(
            M::POST,
            "/api/v1/analytics/custom-metrics",
            access::<CanAuthor>(),
            post(custom_metrics::create).layer(small),
        ),
        r(M::GET, "/api/v1/analytics/custom-metrics/{name}", access::<CanRead>(), get(custom_metrics::get)),
        r(
            M::PUT,
            "/api/v1/analytics/custom-metrics/{name}",
            access::<CanAuthor>(),
            put(custom_metrics::replace).layer(small),
        ),
        r(M::DELETE, "/api/v1/analytics/custom-metrics/{name}", access::<CanAuthor>(), delete(custom_metrics::delete)),
        // Customers (seed 001).
        r(M::GET, "/api/v1/customers/rfm", access::<CanRead>(), get(customers::rfm)),
        r(M::GET, "/api/v1/customers/insights", access::<CanRead>(), get(customers::insights)),
        r(M::GET, "/api/v1/customers/segments", access::<CanRead>(), get(customers::segments)),
        // Sign-in (seeds 002 and 003) and the caller.
        r(M::POST, "/api/token", public, post(identity::obtain_pair).layer(small)),
        r(M::POST, "/api/token/refresh", public, post(identity::refresh_pair).layer(small)),
        r(M::POST, "/auth/token", public, post(identity::oauth_token).layer(small)),
        r(M::GET, "/api/v1/auth/me", access::<Signed>(), get(identity::me)),
        // Tenants, users, keys, audit.
        r(M::GET, "/api/v1/tenants", access::<IsSuperuser>(), get(tenants::list)),
        r(M::POST, "/api/v1/tenants", access::<IsSuperuser>(), post(tenants::create).layer(small)),
        r(M::GET, "/api/v1/tenants/{id}", access::<IsSuperuser>(), get(tenants::get)),
        r(M::PATCH, "/api/v1/tenants/{id}", access::<IsSuperuser>(), patch(tenants::rename).layer(small)),
        r(M::DELETE, "/api/v1/tenants/{id}", access::<IsSuperuser>(), delete(tenants::delete)),
        r(M::GET, "/api/v1/users", access::<CanManage>(), get(users::list)),
        r(M::POST, "/api/v1/users", access::<CanManage>(), post(users::create).layer(small)),
        r(M::GET, "/api/v1/users/{id}", access::<CanManage>(), get(users::get)),
        r(M::PATCH, "/api/v1/users/{id}", access::<CanManage>(), patch(users::update).layer(small)),
        r(M::DELETE, "/api/v1/users/{id}", access::<CanManage>(), delete(users::delete)),
        r(M::GET, "/api/v1/api-keys", access::<CanManage>(), get(api_keys::list)),
        r(M::POST, "/api/v1/api-keys", access::<CanManage>(), post(api_keys::create).layer(small)),
        r(M::DELETE, "/api/v1/api-keys/{id}", access::<CanManage>(), delete(api_keys::revoke)),
        r(M::GET, "/api/v1/audit", access::<CanManage>(), get(audit::list)),
        r(M::GET, "/api/v1/settings/cors", access::<CanManage>(), get(hygiene::get_cors)),
        r(M::PUT, "/api/v1/settings/cors", access::<CanManage>(), put(hygiene::put_cors).layer(small)),
        // Operations.
        r(M::GET, "/health", public, get(ops::health)),
        r(M::GET, "/live", public, get(ops::live)),
        r(M::GET, "/ready", public, get(ops::ready)),
        r(M::GET, "/metrics", public, get(ops::metrics)),
    ]
}

/// Every route with who may call it.
pub fn route_specs() -> Vec<RouteSpec> {
    table().into_iter().map(|(spec, _)| spec).collect()
}

/// The API's routes, without the outer layers.
pub fn routes() -> Router<AppState> {
    let mut router = Router::new();
    for (spec, method_router) in table() {
        router = router.route(spec.path, method_router);
    }
    router.fallback(not_found).method_not_allowed_fallback(method_not_allowed)
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
        .route_layer(middleware::from_fn_with_state(state.clone(), guard::guard))
        .route_layer(middleware::from_fn(record_metrics))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(X_REQUEST_ID.clone(), MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
                    let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
                    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
                }))
                .layer(PropagateRequestIdLayer::new(X_REQUEST_ID.clone()))
                .layer(middleware::from_fn_with_state(state.clone(), hygiene::security_headers))
                .layer(middleware::from_fn_with_state(state.clone(), hygiene::cors))
                .layer(middleware::from_fn(error::complete_problems))
                // A panic in a handler is a bug; the client still gets a problem, not a reset.
                .layer(tower_http::catch_panic::CatchPanicLayer::custom(error::panic_response)),
        )
        .with_state(state);
    // Outside the router, so the path is normalized before routing.
    ServiceBuilder::new().layer(NormalizePathLayer::trim_trailing_slash()).service(router)
}

pub type NormalizePath = tower_http::normalize_path::NormalizePath<Router>;
