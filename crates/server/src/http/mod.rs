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
pub mod docs;
pub mod error;
pub mod events;
pub mod extract;
pub mod guard;
pub mod hygiene;
pub mod identity;
pub mod listener;
pub mod metric_records;
pub mod openapi;
pub mod ops;
pub mod query;
pub mod realtime;
pub mod resource;
pub mod route;
pub mod segments;
pub mod tenants;
pub mod user_analytics;
pub mod users;

use crate::app::AppState;
use crate::auth::{CanIngest, CanManage, CanRead, IsSuperuser, Signed};
use crate::telemetry::names;
use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, Method};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use error::ApiError;
use guard::rate_limit::LimitClass;
use sightline_core::code::Code;
use std::time::Instant;
use tower::ServiceBuilder;
use tower_http::normalize_path::NormalizePathLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub use route::RouteSpec;
use route::{Payload, Route, route};

const SMALL_BODY: usize = 64 * 1024;

/// Every route. The router, the guard (rate-limit class, body limit), the authorization
/// tests and the OpenAPI document are built from this table, so a route cannot be added
/// without saying who may call it and what it counts against.
fn table() -> Vec<Route> {
    use LimitClass::{Batch, Events, Exempt, Queries};
    use Method as M;
    let manage = |m: Method, path: &'static str, h: MethodRouter<AppState>| route(m, path, h).access::<CanManage>();
    // Reads of analytics data: any reader, counted as queries.
    let read =
        |m: Method, path: &'static str, h: MethodRouter<AppState>| route(m, path, h).access::<CanRead>().class(Queries);
    let mut rows = vec![
        // Ingest and read-back (seeds 001, 003, 004).
        route(M::POST, "/api/v1/analytics/events", post(events::track_event))
            .access::<CanIngest>()
            .class(Events)
            .body::<events::EventBody>(events::MAX_EVENT_BYTES)
            .answers::<events::Tracked>(200)
            .errors(&[503])
            .summary("events", "Send one event"),
        read(M::GET, "/api/v1/analytics/events", get(events::list_events))
            .query::<events::ListParams>()
            .answers::<events::EventList>(200)
            .summary("events", "List events"),
        route(M::POST, "/api/v1/analytics/events/batch", post(events::track_batch))
            .access::<CanIngest>()
            .class(Batch)
            .body::<events::BatchBody>(events::MAX_BATCH_BYTES)
            .answers::<events::BatchTracked>(200)
            .errors(&[503])
            .summary("events", "Send a batch of events"),
        read(M::GET, "/api/v1/analytics/events/{id}", get(events::get_event))
            .answers::<events::EventOut>(200)
            .summary("events", "Read one event"),
        route(M::POST, "/api/v1/analytics/track/activity", post(events::track_activity))
            .access::<CanIngest>()
            .class(Events)
            .body::<events::ActivityBody>(events::MAX_EVENT_BYTES)
            .answers::<events::ActivityTracked>(200)
            .errors(&[503])
            .summary("events", "Send a user activity (seed 003)"),
        // Metric records (seed 000).
        route(M::POST, "/api/v1/metrics", post(metric_records::create))
            .access::<CanIngest>()
            .class(Events)
            .body::<metric_records::RecordBody>(SMALL_BODY)
            .answers::<metric_records::RecordOut>(200)
            .errors(&[503])
            .summary("metric records", "Record a business metric"),
        read(M::GET, "/api/v1/metrics", get(metric_records::list))
            .query::<metric_records::ListParams>()
            .answers_payload(200, Some(Payload::list_of::<metric_records::RecordOut>()))
            .errors(&[422])
            .summary("metric records", "List metric records"),
        read(M::GET, "/api/v1/metrics/aggregate", get(metric_records::aggregate))
            .query::<metric_records::AggregateParams>()
            .answers::<metric_records::AggregateOut>(200)
            .errors(&[422, 503, 504])
            .summary("metric records", "Aggregate metric records"),
        read(M::GET, "/api/v1/metrics/time-series", get(metric_records::time_series))
            .query::<metric_records::SeriesParams>()
            .answers_payload(200, Some(Payload::list_of::<metric_records::SeriesPoint>()))
            .errors(&[422, 503, 504])
            .summary("metric records", "Metric records as a time series"),
        read(M::GET, "/api/v1/metrics/by-service/{service_name}", get(metric_records::by_service))
            .query::<metric_records::ListParams>()
            .answers_payload(200, Some(Payload::list_of::<metric_records::RecordOut>()))
            .errors(&[422])
            .summary("metric records", "Metric records of one service"),
        read(M::GET, "/api/v1/metrics/by-type/{metric_type}", get(metric_records::by_type))
            .query::<metric_records::ListParams>()
            .answers_payload(200, Some(Payload::list_of::<metric_records::RecordOut>()))
            .errors(&[422])
            .summary("metric records", "Metric records of one type"),
        read(M::GET, "/api/v1/metrics/{id}", get(metric_records::get))
            .answers::<metric_records::RecordOut>(200)
            .summary("metric records", "Read a metric record"),
        route(M::PATCH, "/api/v1/metrics/{id}", patch(metric_records::update))
            .access::<CanIngest>()
            .body::<metric_records::RecordPatchBody>(SMALL_BODY)
            .answers::<metric_records::RecordOut>(200)
            .errors(&[503])
            .summary("metric records", "Change a metric record"),
        route(M::DELETE, "/api/v1/metrics/{id}", delete(metric_records::delete))
            .access::<CanIngest>()
            .answers::<metric_records::Message>(200)
            .errors(&[503])
            .summary("metric records", "Delete a metric record"),
        route(M::GET, "/api/v1/settings/metric-vocabulary", get(metric_records::get_vocabulary))
            .access::<CanRead>()
            .answers::<metric_records::VocabularyOut>(200)
            .summary("settings", "The tenant's metric vocabulary"),
        manage(M::PUT, "/api/v1/settings/metric-vocabulary", put(metric_records::put_vocabulary))
            .body::<metric_records::VocabularyBody>(SMALL_BODY)
            .answers::<metric_records::VocabularyOut>(200)
            .summary("settings", "Replace the tenant's metric vocabulary"),
        // Analyses (seed 001's query and summary, the insights endpoint) and definitions (seed 004).
        read(M::POST, "/api/v1/analytics/query", post(query::analytics_query))
            .body::<query::AnalyticsQueryBody>(SMALL_BODY)
            .answers::<query::AnalyticsAnswer>(200)
            .errors(&[422, 503, 504])
            .summary("analyses", "Run a structured query (seed 001) or custom SQL (seed 004)"),
        read(M::GET, "/api/v1/analytics/metrics", get(query::summary))
            .query::<query::SummaryParams>()
            .answers::<query::Summary>(200)
            .errors(&[422, 503, 504])
            .summary("analyses", "Key metrics of a period against the previous one"),
        read(M::POST, "/api/v1/insights", post(query::insights))
            .body::<query::InsightBody>(SMALL_BODY)
            .answers::<query::InsightAnswer>(200)
            .errors(&[422, 503, 504])
            .summary("analyses", "Run an insight: aggregate, trend, breakdown or comparison"),
        read(M::POST, "/api/v1/analytics/funnels", post(behavior::funnel))
            .body::<behavior::FunnelBody>(SMALL_BODY)
            .answers::<behavior::FunnelAnalysis>(200)
            .errors(&[503, 504])
            .summary("analyses", "Funnel conversion"),
        read(M::GET, "/api/v1/analytics/conversations/analytics", get(conversations::analytics))
            .query::<conversations::Params>()
            .answers::<conversations::ConversationAnalytics>(200)
            .errors(&[503, 504])
            .summary("analyses", "Conversation analytics"),
        read(M::GET, "/api/v1/analytics/users/{user_id}/analytics", get(user_analytics::analytics))
            .query::<user_analytics::Params>()
            .answers::<user_analytics::UserAnalytics>(200)
            .errors(&[503, 504])
            .summary("analyses", "One user's analytics"),
        read(M::GET, "/api/v1/analytics/realtime", get(realtime::realtime))
            .answers::<realtime::Realtime>(200)
            .errors(&[503, 504])
            .summary("analyses", "Realtime figures and firing alerts"),
        read(M::GET, "/api/v1/analytics/segments/{id}/members", get(segments::members))
            .query::<segments::MemberParams>()
            .answers::<segments::Members>(200)
            .errors(&[503, 504])
            .summary("segments", "List a segment's members"),
        read(M::POST, "/api/v1/analytics/cohorts", post(behavior::cohorts))
            .body::<behavior::CohortsBody>(SMALL_BODY)
            .answers::<behavior::CohortsAnalysis>(200)
            .errors(&[503, 504])
            .summary("analyses", "Retention cohorts"),
        // Customers (seed 001).
        read(M::GET, "/api/v1/customers/rfm", get(customers::rfm))
            .query::<customers::RfmParams>()
            .answers::<customers::Rfm>(200)
            .errors(&[503, 504])
            .summary("customers", "RFM segmentation"),
        read(M::GET, "/api/v1/customers/insights", get(customers::insights))
            .query::<customers::InsightParams>()
            .answers::<customers::CustomerInsights>(200)
            .errors(&[503, 504])
            .summary("customers", "Customer insights"),
        read(M::GET, "/api/v1/customers/segments", get(customers::segments))
            .answers::<customers::CustomerSegments>(200)
            .errors(&[503, 504])
            .summary("customers", "Customer segments"),
        // Sign-in (seeds 002 and 003) and the caller.
        route(M::POST, "/api/token", post(identity::obtain_pair))
            .body::<identity::Credentials>(SMALL_BODY)
            .answers::<identity::TokenPair>(200)
            .errors(&[401])
            .summary("sign-in", "Sign in: an access and a refresh token (seed 002)"),
        route(M::POST, "/api/token/refresh", post(identity::refresh_pair))
            .body::<identity::RefreshBody>(SMALL_BODY)
            .answers::<identity::TokenPair>(200)
            .errors(&[401])
            .summary("sign-in", "Trade a refresh token for a new pair (seed 002)"),
        route(M::POST, "/auth/token", post(identity::oauth_token))
            .body_payload(
                Payload::of::<identity::Credentials>().with_content_type("application/x-www-form-urlencoded"),
                SMALL_BODY,
            )
            .answers::<identity::OAuthToken>(200)
            .errors(&[401])
            .summary("sign-in", "OAuth2 password grant (seed 003)"),
        route(M::GET, "/api/v1/auth/me", get(identity::me))
            .access::<Signed>()
            .answers::<identity::Me>(200)
            .summary("sign-in", "Who the credential belongs to"),
        // Tenants, users, keys, audit.
        route(M::GET, "/api/v1/tenants", get(tenants::list))
            .access::<IsSuperuser>()
            .answers::<tenants::TenantList>(200)
            .summary("tenants", "List tenants"),
        route(M::POST, "/api/v1/tenants", post(tenants::create))
            .access::<IsSuperuser>()
            .body::<tenants::TenantBody>(SMALL_BODY)
            .answers::<crate::store::Tenant>(201)
            .errors(&[409])
            .summary("tenants", "Create a tenant"),
        route(M::GET, "/api/v1/tenants/{id}", get(tenants::get))
            .access::<IsSuperuser>()
            .answers::<crate::store::Tenant>(200)
            .summary("tenants", "Read a tenant"),
        route(M::PATCH, "/api/v1/tenants/{id}", patch(tenants::rename))
            .access::<IsSuperuser>()
            .body::<tenants::TenantBody>(SMALL_BODY)
            .answers::<crate::store::Tenant>(200)
            .summary("tenants", "Rename a tenant"),
        route(M::DELETE, "/api/v1/tenants/{id}", delete(tenants::delete))
            .access::<IsSuperuser>()
            .answers::<tenants::TenantDeleted>(200)
            .errors(&[409, 503])
            .summary("tenants", "Delete a tenant and all its data"),
        manage(M::GET, "/api/v1/users", get(users::list))
            .answers::<users::UserList>(200)
            .summary("users", "List the tenant's users"),
        manage(M::POST, "/api/v1/users", post(users::create))
            .body::<users::NewUserBody>(SMALL_BODY)
            .answers::<crate::store::User>(201)
            .errors(&[409])
            .summary("users", "Create a user"),
        manage(M::GET, "/api/v1/users/{id}", get(users::get))
            .answers::<crate::store::User>(200)
            .summary("users", "Read a user"),
        manage(M::PATCH, "/api/v1/users/{id}", patch(users::update))
            .body::<users::UserPatch>(SMALL_BODY)
            .answers::<crate::store::User>(200)
            .summary("users", "Change a user's role or password"),
        manage(M::DELETE, "/api/v1/users/{id}", delete(users::delete))
            .answers_payload(204, None)
            .summary("users", "Delete a user"),
        manage(M::GET, "/api/v1/api-keys", get(api_keys::list))
            .answers::<api_keys::ApiKeyList>(200)
            .summary("api keys", "List API keys"),
        manage(M::POST, "/api/v1/api-keys", post(api_keys::create))
            .body::<api_keys::NewKeyBody>(SMALL_BODY)
            .answers::<api_keys::CreatedApiKey>(201)
            .summary("api keys", "Create an API key (shown once)"),
        manage(M::DELETE, "/api/v1/api-keys/{id}", delete(api_keys::revoke))
            .answers::<crate::store::ApiKey>(200)
            .summary("api keys", "Revoke an API key"),
        manage(M::GET, "/api/v1/audit", get(audit::list))
            .query::<audit::AuditParams>()
            .answers::<audit::AuditPage>(200)
            .summary("audit", "The audit log"),
        manage(M::GET, "/api/v1/settings/cors", get(hygiene::get_cors))
            .answers::<hygiene::CorsOrigins>(200)
            .summary("settings", "The tenant's allowed browser origins"),
        manage(M::PUT, "/api/v1/settings/cors", put(hygiene::put_cors))
            .body::<hygiene::CorsBody>(SMALL_BODY)
            .answers::<hygiene::CorsOrigins>(200)
            .summary("settings", "Replace the tenant's allowed browser origins"),
        // Operations.
        route(M::GET, "/health", get(ops::health))
            .class(Exempt)
            .answers::<ops::Health>(200)
            .answers::<ops::Health>(503)
            .summary("operations", "Health of each store"),
        route(M::GET, "/live", get(ops::live))
            .class(Exempt)
            .answers::<ops::Live>(200)
            .summary("operations", "Liveness"),
        route(M::GET, "/ready", get(ops::ready))
            .class(Exempt)
            .answers::<ops::Ready>(200)
            .answers::<ops::Ready>(503)
            .summary("operations", "Readiness"),
        route(M::GET, "/metrics", get(ops::metrics))
            .class(Exempt)
            .answers_payload(200, Some(Payload::text()))
            .summary("operations", "Prometheus metrics"),
        route(M::GET, "/problems/{slug}", get(ops::problem_type))
            .class(Exempt)
            .answers::<ops::ProblemType>(200)
            .errors(&[404])
            .summary("documentation", "What a problem type means (the `type` of an error answer)"),
        // The API's own description (seeds 000, 002 and 003).
        // The document is an OpenAPI document: its schema is OpenAPI's own, not repeated here.
        route(M::GET, "/openapi.json", get(openapi::serve))
            .class(Exempt)
            .query::<openapi::FormatParams>()
            .answers_payload(200, Some(Payload::free_form()))
            .summary("documentation", "This OpenAPI document"),
        route(M::GET, "/api/schema", get(openapi::serve))
            .class(Exempt)
            .query::<openapi::FormatParams>()
            .answers_payload(200, Some(Payload::free_form()))
            .summary("documentation", "This OpenAPI document (drf-spectacular's path)"),
    ];
    // Tenant-owned resources (seed 004): five routes each, made once in `resource`.
    rows.extend(resource::routes::<alerts::AlertRules>(
        "/api/v1/analytics/alerts",
        "/api/v1/analytics/alerts/{id}",
        SMALL_BODY,
    ));
    rows.extend(resource::routes::<segments::Segments>(
        "/api/v1/analytics/segments",
        "/api/v1/analytics/segments/{id}",
        SMALL_BODY,
    ));
    rows.extend(resource::routes::<custom_metrics::CustomMetrics>(
        "/api/v1/analytics/custom-metrics",
        "/api/v1/analytics/custom-metrics/{name}",
        SMALL_BODY,
    ));
    rows
}

/// Every route with who may call it.
pub fn route_specs() -> Vec<RouteSpec> {
    table().into_iter().map(|r| r.spec).collect()
}

/// The spec of a matched route, for the guard: its class and access. Looked up on every
/// request, so by hash rather than by walking the table.
pub fn spec_of(method: &Method, path: &str) -> Option<&'static RouteSpec> {
    type Specs = std::collections::HashMap<&'static str, Vec<RouteSpec>>;
    static SPECS: std::sync::OnceLock<Specs> = std::sync::OnceLock::new();
    let specs = SPECS.get_or_init(|| {
        let mut by_path = Specs::new();
        for s in route_specs() {
            by_path.entry(s.path).or_default().push(s);
        }
        by_path
    });
    specs.get(path)?.iter().find(|s| s.method == method)
}

/// The API's routes, without the outer layers.
pub fn routes() -> Router<AppState> {
    let mut router = Router::new();
    for row in table() {
        let (spec, method_router) = row.build();
        router = router.route(spec.path, method_router);
    }
    router.merge(docs::router()).fallback(not_found).method_not_allowed_fallback(method_not_allowed)
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
