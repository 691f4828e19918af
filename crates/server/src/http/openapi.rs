//! The OpenAPI 3.1 document, generated from the route table: each route's parameters,
//! body, answers, errors (problem+json), security and required role. Served at
//! `/openapi.json` and `/api/schema/` (JSON, or YAML on `?format=yaml`), and committed as
//! `docs/openapi.json` (CI regenerates it and fails on a difference).

use super::error::{ApiError, ApiResult, ProblemBody};
use super::extract::ApiQuery;
use super::route::{RouteSpec, SchemaSink};
use crate::auth::Access;
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sightline_core::code::Code;
use sightline_core::model::Permission;
use std::collections::BTreeSet;
use std::sync::OnceLock;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ComponentsBuilder, Content, InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Ref, Required, ResponseBuilder,
};
use utoipa::{PartialSchema, ToSchema};

const JWT: &str = "bearerJwt";
const API_KEY: &str = "apiKey";

/// The document of every route in `specs`.
pub fn document(specs: &[RouteSpec]) -> OpenApi {
    let mut schemas: SchemaSink = vec![(ProblemBody::name().into_owned(), ProblemBody::schema())];
    ProblemBody::schemas(&mut schemas);
    let mut paths = PathsBuilder::new().build();
    let mut tags = BTreeSet::new();
    for spec in specs {
        tags.insert(spec.doc.tag);
        let op = operation(spec, &mut schemas);
        paths.add_path_operation(spec.path, vec![http_method(&spec.method)], op);
    }
    let mut components = ComponentsBuilder::new()
        .security_scheme(
            JWT,
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from a sign-in (`/api/token/`, `/auth/token`), or a JWT of an external issuer",
                    ))
                    .build(),
            ),
        )
        .security_scheme(
            API_KEY,
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("sl_ API key")
                    .description(Some("An API key (`sl_` and 40 hex digits), sent as a bearer credential"))
                    .build(),
            ),
        );
    schemas.sort_by(|a, b| a.0.cmp(&b.0));
    schemas.dedup_by(|a, b| a.0 == b.0);
    for (name, schema) in schemas {
        components = components.schema(name, schema);
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Sightline API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Self-hosted product analytics. Every error is RFC 9457 `application/problem+json`. \
                     Credentials: `Authorization: Bearer <JWT or API key>`; a superuser may act in another \
                     tenant with `X-Tenant-ID`. Rate-limit classes and limits: `docs/limits.md`.",
                ))
                .build(),
        )
        .paths(paths)
        .components(Some(components.build()))
        .tags(Some(tags.into_iter().filter(|t| !t.is_empty()).map(|t| TagBuilder::new().name(t).build())))
        .build()
}

fn http_method(m: &Method) -> HttpMethod {
    match *m {
        Method::POST => HttpMethod::Post,
        Method::PUT => HttpMethod::Put,
        Method::PATCH => HttpMethod::Patch,
        Method::DELETE => HttpMethod::Delete,
        _ => HttpMethod::Get,
    }
}

/// `post /api/v1/analytics/events/{id}` gives `post_api_v1_analytics_events_id`.
fn operation_id(spec: &RouteSpec) -> String {
    let path: String =
        spec.path.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    let path = path.split('_').filter(|s| !s.is_empty()).collect::<Vec<_>>().join("_");
    format!("{}_{path}", spec.method.as_str().to_ascii_lowercase())
}

/// Who may call, in words and as a role name.
fn access_words(access: Access) -> (&'static str, &'static str) {
    match access {
        Access::Public => ("public", "No credential needed."),
        Access::Signed => ("any", "Any valid credential."),
        Access::Role(Permission::Ingest) => ("ingest", "Roles: admin, ingest."),
        Access::Role(Permission::Read) => ("viewer", "Roles: admin, analyst, viewer."),
        Access::Role(Permission::Author) => ("analyst", "Roles: admin, analyst."),
        Access::Role(Permission::Manage) => ("admin", "Role: admin."),
        Access::Superuser => ("superuser", "Superusers only."),
    }
}

/// The error statuses a route may answer: those every route of its kind can give (see
/// the guard, the extractors and the idempotency layer), plus the ones the row names.
pub fn error_statuses(spec: &RouteSpec) -> BTreeSet<u16> {
    let mut out: BTreeSet<u16> = spec.doc.errors.iter().copied().collect();
    out.insert(500);
    let authed = spec.access != Access::Public;
    let writes = matches!(spec.method, Method::POST | Method::PUT | Method::PATCH | Method::DELETE);
    if spec.class != super::guard::rate_limit::LimitClass::Exempt {
        out.insert(429);
    }
    if authed {
        // 400: a malformed X-Tenant-ID; 404: a superuser's X-Tenant-ID names no tenant.
        out.extend([400, 401, 403, 404]);
        if writes {
            // Idempotency-Key: in flight (409), reused with another body (422).
            out.extend([409, 422]);
        }
    }
    if spec.doc.body.is_some() {
        out.extend([400, 413, 415, 422]);
    }
    if spec.doc.query.is_some() || !spec.path_params().is_empty() {
        out.insert(400);
    }
    if !spec.path_params().is_empty() {
        out.insert(404);
    }
    out
}

fn problem_response(status: u16) -> utoipa::openapi::Response {
    let code = Code::ALL.iter().find(|c| c.status() == status).copied().unwrap_or(Code::Internal);
    let mut r = ResponseBuilder::new()
        .description(code.title())
        .content(super::error::PROBLEM_JSON, Content::new(Some(Ref::from_schema_name(ProblemBody::name()))));
    if matches!(status, 429 | 503) {
        r = r.header(
            "Retry-After",
            utoipa::openapi::header::HeaderBuilder::new()
                .schema(Some(u64::schema()))
                .description(Some("Seconds to wait before retrying"))
                .build(),
        );
    }
    r.build()
}

fn operation(spec: &RouteSpec, schemas: &mut SchemaSink) -> utoipa::openapi::path::Operation {
    let (role, who) = access_words(spec.access);
    let mut op = OperationBuilder::new()
        .operation_id(Some(operation_id(spec)))
        .summary(Some(spec.doc.summary.to_string()))
        .description(Some(format!("{who} Rate-limit class: `{}`.", spec.class.name())))
        // One extension only: utoipa keeps extensions in a HashMap, whose order would make
        // the committed document differ from run to run.
        .extensions(Some(Extensions::builder().add("x-required-role", role).build()));
    if !spec.doc.tag.is_empty() {
        op = op.tag(spec.doc.tag);
    }
    for name in spec.path_params() {
        op = op.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(String::schema())),
        );
    }
    if let Some(query) = spec.doc.query {
        for p in query() {
            op = op.parameter(p);
        }
    }
    if let Some(body) = &spec.doc.body {
        (body.register)(schemas);
        op = op.request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content(body.content_type, Content::new(Some((body.schema)())))
                .build(),
        ));
    }
    for (status, payload) in &spec.doc.answers {
        let mut r = ResponseBuilder::new().description(match status {
            201 => "Created",
            202 => "Accepted",
            204 => "No content",
            _ => "OK",
        });
        if let Some(p) = payload {
            (p.register)(schemas);
            r = r.content(p.content_type, Content::new(Some((p.schema)())));
        }
        op = op.response(status.to_string(), r.build());
    }
    for status in error_statuses(spec).into_iter().filter(|s| !spec.doc.answers.iter().any(|(a, _)| a == s)) {
        op = op.response(status.to_string(), problem_response(status));
    }
    if spec.access != Access::Public {
        op = op.securities(Some([
            SecurityRequirement::new::<_, _, &str>(JWT, []),
            SecurityRequirement::new::<_, _, &str>(API_KEY, []),
        ]));
    }
    op.build()
}

/// The document of the running service, made once.
pub fn served() -> &'static OpenApi {
    static DOC: OnceLock<OpenApi> = OnceLock::new();
    DOC.get_or_init(|| document(&super::route_specs()))
}

/// The committed form: pretty JSON with a final newline.
pub fn pretty_json() -> String {
    let mut s = served().to_pretty_json().expect("the document serializes");
    s.push('\n');
    s
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct FormatParams {
    /// `json` (the default) or `yaml`.
    format: Option<String>,
}

/// `GET /openapi.json`, `GET /api/schema/`: the document, as JSON or (`?format=yaml`) YAML.
pub async fn serve(ApiQuery(p): ApiQuery<FormatParams>) -> ApiResult<Response> {
    static JSON: OnceLock<String> = OnceLock::new();
    static YAML: OnceLock<String> = OnceLock::new();
    let (body, ctype) = match p.format.as_deref().unwrap_or("json") {
        "json" | "openapi" | "openapi-json" => (JSON.get_or_init(pretty_json).as_str(), "application/json"),
        "yaml" | "openapi-yaml" => {
            (YAML.get_or_init(|| served().to_yaml().expect("the document serializes")).as_str(), "application/yaml")
        }
        other => return Err(ApiError::field("format", format!("format '{other}' is not json or yaml"))),
    };
    let mut res = body.into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(res)
}
