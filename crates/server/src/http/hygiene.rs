//! Web hygiene for every answer: CORS (global origins plus each tenant's own list, since
//! the tracking snippet posts from the tenant's sites), security headers, and
//! `Deprecation` / `Sunset` headers on routes the operator marks deprecated (seed 001's
//! versioning section).

use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ClientIp};
use crate::app::AppState;
use crate::auth::{Caller, CanManage};
use crate::service::audit;
use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sightline_core::model::TenantId;
use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

/// The tenant an answer was for, left by the guard for the layers outside it.
#[derive(Debug, Clone)]
pub struct AnsweredFor(pub TenantId);

const SETTING: &str = "cors_origins";
const ALLOW_HEADERS: &str = "authorization, content-type, idempotency-key, x-tenant-id, x-request-id";
const EXPOSE_HEADERS: &str =
    "x-request-id, x-ratelimit-limit, x-ratelimit-remaining, x-ratelimit-reset, retry-after, idempotent-replayed";

pub struct CorsPolicy {
    global: HashSet<String>,
    any: bool,
    tenants: RwLock<HashMap<TenantId, HashSet<String>>>,
}

impl CorsPolicy {
    pub async fn load(global: &[String], meta: &dyn crate::store::MetaStore) -> anyhow::Result<CorsPolicy> {
        let mut tenants = HashMap::new();
        for (t, v) in meta.all_tenant_settings(SETTING).await.map_err(|e| anyhow::anyhow!("{e}"))? {
            let list: Vec<String> = serde_json::from_value(v).unwrap_or_default();
            tenants.insert(t, list.into_iter().collect());
        }
        Ok(CorsPolicy {
            any: global.iter().any(|o| o == "*"),
            global: global.iter().filter(|o| *o != "*").map(|o| normalize(o)).collect(),
            tenants: RwLock::new(tenants),
        })
    }

    /// May `origin` call for `tenant` (None: an answer tied to no tenant)?
    fn allows(&self, origin: &str, tenant: Option<&TenantId>) -> bool {
        if self.any || self.global.contains(origin) {
            return true;
        }
        let tenants = self.tenants.read().expect("cors");
        match tenants_of(&tenants, tenant) {
            Some(set) => set.contains(origin),
            None => false,
        }
    }

    /// A preflight carries no credential: it passes when any tenant allows the origin;
    /// the real request is then checked against its own tenant.
    fn allows_preflight(&self, origin: &str) -> bool {
        self.any
            || self.global.contains(origin)
            || self.tenants.read().expect("cors").values().any(|s| s.contains(origin))
    }

    fn set(&self, tenant: &TenantId, origins: HashSet<String>) {
        self.tenants.write().expect("cors").insert(tenant.clone(), origins);
    }
}

fn tenants_of<'a>(t: &'a HashMap<TenantId, HashSet<String>>, tenant: Option<&TenantId>) -> Option<&'a HashSet<String>> {
    tenant.and_then(|id| t.get(id))
}

fn normalize(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

/// Checks one origin: `scheme://host[:port]`, nothing else.
fn valid_origin(o: &str) -> Result<String, String> {
    let n = normalize(o);
    let rest = n.strip_prefix("https://").or_else(|| n.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains('/') && !host.contains('*') && !host.contains(' ') => Ok(n),
        _ => Err(format!("'{o}' is not an origin such as https://shop.example.com")),
    }
}

fn origin_of(h: &HeaderMap) -> Option<String> {
    h.get(header::ORIGIN).and_then(|v| v.to_str().ok()).map(normalize)
}

pub async fn cors(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let origin = origin_of(req.headers());
    let preflight =
        req.method() == Method::OPTIONS && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let mut res = StatusCode::NO_CONTENT.into_response();
        let h = res.headers_mut();
        h.insert(header::VARY, HeaderValue::from_static("origin"));
        if let Some(o) = origin.filter(|o| state.cors.allows_preflight(o))
            && let Ok(v) = HeaderValue::from_str(&o)
        {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
            h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE"));
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(ALLOW_HEADERS));
            h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        }
        return res;
    }
    let mut res = next.run(req).await;
    if let Some(o) = origin {
        let tenant = res.extensions().get::<AnsweredFor>().map(|a| a.0.clone());
        let h = res.headers_mut();
        h.append(header::VARY, HeaderValue::from_static("origin"));
        if state.cors.allows(&o, tenant.as_ref())
            && let Ok(v) = HeaderValue::from_str(&o)
        {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
            h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSE_HEADERS));
        }
    }
    res
}

/// Headers every answer carries: an API answer is never a page to frame, sniff or cache.
/// A route that serves a page keeps the policy it set.
pub async fn security_headers(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    // A route that serves a page (the documentation) sets its own policy and caching.
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        );
    }
    if (path.starts_with("/api/") || path.starts_with("/auth/")) && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    for d in &state.config.deprecated_routes {
        if path == d.path.trim_end_matches('/') {
            if let Ok(v) = HeaderValue::from_str(&d.deprecation_header()) {
                h.insert("deprecation", v);
            }
            if let Some(v) = d.sunset_header().and_then(|s| HeaderValue::from_str(&s).ok()) {
                h.insert("sunset", v);
            }
            if let Some(v) =
                d.link.as_deref().and_then(|l| HeaderValue::from_str(&format!("<{l}>; rel=\"deprecation\"")).ok())
            {
                h.insert(header::LINK, v);
            }
        }
    }
    res
}

/// The browser origins allowed to call for this tenant.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CorsBody {
    /// At most 100 origins such as `https://shop.example.com`.
    origins: Option<Vec<String>>,
}

/// The tenant's allowed browser origins, sorted.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CorsOrigins {
    origins: Vec<String>,
}

/// `GET /api/v1/settings/cors`.
pub async fn get_cors(caller: Caller<CanManage>, State(state): State<AppState>) -> ApiResult<Json<CorsOrigins>> {
    let v = state.meta.get_tenant_setting(&caller.tenant, SETTING).await?.unwrap_or(json!([]));
    Ok(Json(CorsOrigins { origins: serde_json::from_value(v).unwrap_or_default() }))
}

/// `PUT /api/v1/settings/cors` with `{"origins": [...]}`: replaces the tenant's list.
pub async fn put_cors(
    caller: Caller<CanManage>,
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(b): ApiJson<CorsBody>,
) -> ApiResult<Json<CorsOrigins>> {
    let Some(list) = b.origins else {
        return Err(ApiError::field("origins", "origins is required: an array of origins"));
    };
    if list.len() > 100 {
        return Err(ApiError::field("origins", "at most 100 origins"));
    }
    let mut errors = Vec::new();
    let mut set = HashSet::new();
    for (i, o) in list.iter().enumerate() {
        match valid_origin(o) {
            Ok(n) => {
                set.insert(n);
            }
            Err(m) => errors.push(sightline_core::code::FieldError::new(format!("origins[{i}]"), m)),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let mut sorted: Vec<String> = set.iter().cloned().collect();
    sorted.sort();
    let value = json!(sorted);
    state.meta.put_tenant_setting(&caller.tenant, SETTING, &value).await?;
    state.cors.set(&caller.tenant, set);
    audit::record(
        &state,
        &caller.tenant,
        &audit::actor(&caller),
        "settings.cors",
        None,
        &ip,
        json!({ "origins": value }),
    )
    .await;
    Ok(Json(CorsOrigins { origins: sorted }))
}
