//! Sign-in and tokens, each as its seed's clients call it:
//! - seed 002 (simplejwt): `POST /api/token/` `{username, password}` → `{access, refresh}`;
//!   `POST /api/token/refresh/` `{refresh}` → `{access, refresh}`;
//! - seed 003 (OAuth2 password flow): `POST /auth/token`, form `username` + `password` →
//!   `{access_token, token_type: "bearer", expires_in}`;
//! - `GET /api/v1/auth/me`: who the caller is.
//!
//! The tenant of a sign-in is `tenant` in the body or `X-Tenant-ID`; the default tenant
//! otherwise.

use super::error::{ApiError, ApiResult};
use super::extract::{ApiForm, ApiJson, ClientIp};
use crate::app::AppState;
use crate::auth::session::Issued;
use crate::auth::{Caller, Signed};
use crate::service::audit;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sightline_core::code::FieldError;
use sightline_core::model::{Role, TenantId};

/// A sign-in: username and password, in a tenant (`X-Tenant-ID` also names it).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Credentials {
    username: Option<String>,
    password: Option<String>,
    /// The tenant; the default tenant when neither this nor `X-Tenant-ID` is given.
    tenant: Option<String>,
    /// OAuth2 sends it; only `password` is supported.
    grant_type: Option<String>,
}

fn tenant_of(body: &Option<String>, headers: &HeaderMap) -> ApiResult<TenantId> {
    let from_header = headers.get("x-tenant-id").and_then(|v| v.to_str().ok()).map(str::trim);
    match body.as_deref().or(from_header) {
        None | Some("") => Ok(TenantId::default_tenant()),
        Some(t) => TenantId::parse(t).map_err(|e| ApiError::field("tenant", e)),
    }
}

async fn sign_in(state: &AppState, c: Credentials, headers: &HeaderMap, ip: &Option<String>) -> ApiResult<Issued> {
    let mut errors = Vec::new();
    let username = c.username.unwrap_or_default();
    let password = c.password.unwrap_or_default();
    if username.trim().is_empty() {
        errors.push(FieldError::new("username", "username is required"));
    }
    if password.is_empty() {
        errors.push(FieldError::new("password", "password is required"));
    }
    if let Some(g) = c.grant_type.as_deref()
        && !g.is_empty()
        && g != "password"
    {
        errors.push(FieldError::new("grant_type", format!("grant_type '{g}' is not supported; use password")));
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let tenant = tenant_of(&c.tenant, headers)?;
    match state.sessions.sign_in(state.meta.as_ref(), &tenant, username.trim(), &password).await {
        Ok(issued) => {
            let actor = format!("{} ({})", issued.user.username, issued.user.id);
            audit::record(state, &tenant, &actor, "sign_in", Some(&issued.user.id), ip, json!({})).await;
            Ok(issued)
        }
        Err(e) => {
            // Only a tenant that exists can hold an audit line.
            if state.meta.get_tenant(&tenant).await.ok().flatten().is_some() {
                let details = json!({ "reason": e.detail });
                audit::record(state, &tenant, username.trim(), "sign_in_failed", None, ip, details).await;
            }
            Err(e)
        }
    }
}

/// `POST /api/token/` (seed 002).
pub async fn obtain_pair(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ApiJson(c): ApiJson<Credentials>,
) -> ApiResult<Json<TokenPair>> {
    let t = sign_in(&state, c, &headers, &ip).await?;
    Ok(Json(TokenPair { access: t.access, refresh: t.refresh }))
}

/// An access token and the refresh token that renews it (seed 002, simplejwt's shape).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenPair {
    /// A short-lived bearer token.
    access: String,
    /// A single-use token for `POST /api/token/refresh/`.
    refresh: String,
}

/// OAuth2's token answer (seed 003).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OAuthToken {
    access_token: String,
    /// Always `bearer`.
    token_type: &'static str,
    /// Seconds the access token lives.
    expires_in: u64,
    refresh_token: String,
}

/// Who a credential belongs to.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Me {
    /// The token's `sub`, or the API key's id.
    subject: String,
    /// The username, for a local user.
    username: Option<String>,
    #[schema(value_type = String)]
    tenant_id: TenantId,
    /// The strongest role held.
    role: Role,
    /// Every role held.
    roles: Vec<Role>,
    superuser: bool,
    auth_method: crate::auth::AuthMethod,
}

/// A refresh token to trade for a new pair.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct RefreshBody {
    refresh: Option<String>,
}

/// `POST /api/token/refresh/` (seed 002): rotates the refresh token.
pub async fn refresh_pair(
    State(state): State<AppState>,
    ApiJson(b): ApiJson<RefreshBody>,
) -> ApiResult<Json<TokenPair>> {
    let Some(token) = b.refresh.filter(|t| !t.is_empty()) else {
        return Err(ApiError::field("refresh", "refresh is required"));
    };
    let t = state.sessions.refresh(state.meta.as_ref(), &token).await?;
    Ok(Json(TokenPair { access: t.access, refresh: t.refresh }))
}

/// `POST /auth/token` (seed 003): OAuth2's password grant, form-encoded.
pub async fn oauth_token(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ApiForm(c): ApiForm<Credentials>,
) -> ApiResult<Json<OAuthToken>> {
    let t = sign_in(&state, c, &headers, &ip).await?;
    Ok(Json(OAuthToken {
        access_token: t.access,
        token_type: "bearer",
        expires_in: t.expires_in,
        refresh_token: t.refresh,
    }))
}

/// `GET /api/v1/auth/me`.
pub async fn me(caller: Caller<Signed>) -> Json<Me> {
    let p = caller.principal;
    Json(Me {
        subject: p.subject,
        username: p.username,
        tenant_id: p.tenant,
        role: p.role,
        roles: p.roles,
        superuser: p.superuser,
        auth_method: p.via,
    })
}
