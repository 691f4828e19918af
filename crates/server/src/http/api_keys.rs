//! `/api/v1/api-keys`: a tenant's admin makes, lists and revokes API keys. A new key is
//! shown once; lists show its prefix.

use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiPath, ClientIp};
use crate::app::AppState;
use crate::auth::{Caller, CanManage};
use crate::service::accounts;
use crate::service::audit;
use crate::store::ApiKey;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sightline_core::code::FieldError;
use sightline_core::event::parse_timestamp;
use sightline_core::model::Role;

/// An API key to create.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyBody {
    /// 1 to 100 characters; `api key` when left out.
    name: Option<String>,
    /// `admin`, `analyst`, `viewer` or `ingest`.
    role: Option<String>,
    /// RFC 3339, in the future; none: the key does not expire.
    expires_at: Option<String>,
}

/// A new API key, with the key itself: shown this once, only its hash is kept.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    made: ApiKey,
    /// `sl_` and 40 hex digits; send it as `Authorization: Bearer <key>`.
    key: String,
}

/// The tenant's API keys, without the keys.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiKeyList {
    data: Vec<ApiKey>,
}

pub async fn create(
    caller: Caller<CanManage>,
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(b): ApiJson<NewKeyBody>,
) -> ApiResult<(StatusCode, Json<CreatedApiKey>)> {
    let mut errors = Vec::new();
    let name = b.name.unwrap_or_else(|| "api key".into()).trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 {
        errors.push(FieldError::new("name", "name must have 1 to 100 characters"));
    }
    let role = match b.role.as_deref().map(Role::parse) {
        None => {
            errors.push(FieldError::new("role", "role is required: admin, analyst, viewer or ingest"));
            None
        }
        Some(Ok(r)) => Some(r),
        Some(Err(e)) => {
            errors.push(FieldError::new("role", e));
            None
        }
    };
    let now = Utc::now();
    let expires_at: Option<DateTime<Utc>> = match b.expires_at.as_deref() {
        None => None,
        Some(s) => match parse_timestamp(s, now + chrono::Duration::days(36_500)) {
            Ok(t) if t <= now => {
                errors.push(FieldError::new("expires_at", "expires_at must lie in the future"));
                None
            }
            Ok(t) => Some(t),
            Err(m) => {
                errors.push(FieldError::new("expires_at", m));
                None
            }
        },
    };
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let (made, key) =
        accounts::create_api_key(&state, &caller.tenant, &name, role.expect("checked"), expires_at).await?;
    let details = json!({ "name": made.name, "role": made.role, "expires_at": made.expires_at });
    audit::record(&state, &caller.tenant, &audit::actor(&caller), "api_key.create", Some(&made.id), &ip, details).await;
    Ok((StatusCode::CREATED, Json(CreatedApiKey { made, key })))
}

pub async fn list(caller: Caller<CanManage>, State(state): State<AppState>) -> ApiResult<Json<ApiKeyList>> {
    Ok(Json(ApiKeyList { data: state.meta.list_api_keys(&caller.tenant).await? }))
}

/// `DELETE /api/v1/api-keys/{id}`: revokes; the key stays listed, marked revoked.
pub async fn revoke(
    caller: Caller<CanManage>,
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ApiKey>> {
    let key = accounts::revoke_api_key(&state, &caller.tenant, &id).await?;
    audit::record(&state, &caller.tenant, &audit::actor(&caller), "api_key.revoke", Some(&id), &ip, json!({})).await;
    Ok(Json(key))
}
