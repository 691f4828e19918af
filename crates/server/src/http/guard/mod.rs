//! The guard every routed request passes, so that each endpoint gets these for free:
//! it authenticates once (the handler's `Caller` reuses the result), applies the rate
//! limit of the route's class, and honours `Idempotency-Key` on writes.

pub mod idempotency;
pub mod rate_limit;

use super::error::ApiError;
use crate::app::AppState;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rate_limit::{Decision, LimitClass};
use sightline_core::code::Code;
use std::net::SocketAddr;

pub async fn guard(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let path = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned()).unwrap_or_default();
    // Unrouted requests (404, 405) count as `api`.
    let class = super::spec_of(req.method(), &path).map_or(LimitClass::Api, |s| s.class);
    if class == LimitClass::Exempt {
        return next.run(req).await;
    }
    let principal = if req.headers().contains_key(header::AUTHORIZATION) {
        let (mut parts, body) = req.into_parts();
        let p = match state.auth.authenticate(&parts).await {
            Ok(p) => Some(p),
            Err(e) => {
                // The handler's extractor answers with this instead of checking again.
                parts.extensions.insert(crate::auth::AuthFailure(e));
                None
            }
        };
        req = Request::from_parts(parts, body);
        p
    } else {
        None
    };
    let scope = match &principal {
        Some(p) => format!("tenant:{}", p.tenant),
        None => {
            let ip = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string());
            format!("ip:{}", ip.unwrap_or_else(|| "unknown".into()))
        }
    };
    let decision = state.limiter.check(&scope, class, principal.is_none());
    if let Some(d) = decision.filter(|d| !d.allowed) {
        let mut e = ApiError::new(
            Code::RateLimited,
            format!("rate limit of {} requests per window reached; retry in {} s", d.limit, d.retry_after),
        );
        e.retry_after = Some(d.retry_after);
        let mut res = e.into_response();
        add_limit_headers(&mut res, &d);
        return res;
    }
    let writes = matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH | Method::DELETE);
    let key = req.headers().get("idempotency-key").cloned();
    let mut res = match (&principal, key) {
        (Some(p), Some(key)) if writes => {
            let tenant_scope = crate::store::tenant_scope(&p.tenant);
            req.extensions_mut().insert(p.clone());
            idempotency::run(&state, &tenant_scope, key, req, next).await
        }
        (Some(p), _) => {
            req.extensions_mut().insert(p.clone());
            next.run(req).await
        }
        (None, _) => next.run(req).await,
    };
    if let Some(d) = decision {
        add_limit_headers(&mut res, &d);
    }
    if let Some(p) = principal {
        res.extensions_mut().insert(super::hygiene::AnsweredFor(p.tenant));
    }
    res
}

fn add_limit_headers(res: &mut Response, d: &Decision) {
    let h = res.headers_mut();
    h.insert("x-ratelimit-limit", HeaderValue::from(d.limit));
    h.insert("x-ratelimit-remaining", HeaderValue::from(d.remaining));
    h.insert("x-ratelimit-reset", HeaderValue::from(d.reset_unix));
}
