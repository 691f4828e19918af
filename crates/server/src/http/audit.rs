//! The audit log: sign-ins, failed sign-ins, and every change to users, keys and tenants,
//! with who, when and from where. Readable by the tenant's admin; written through
//! `service::audit`.

use super::error::ApiResult;
use super::extract::ApiQuery;
use crate::app::AppState;
use crate::auth::{Caller, CanManage};
use crate::store::AuditEntry;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

/// A page of the audit log.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Entries to return: 1 to 1000 (a larger value is clamped), 100 by default.
    limit: Option<u32>,
    /// Entries to skip, newest first.
    skip: Option<u32>,
}

/// A page of the audit log, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    data: Vec<AuditEntry>,
    limit: u32,
    skip: u32,
}

/// `GET /api/v1/audit`: newest first.
pub async fn list(
    caller: Caller<CanManage>,
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<AuditParams>,
) -> ApiResult<Json<AuditPage>> {
    let limit = p.limit.unwrap_or(100).clamp(1, 1000);
    let skip = p.skip.unwrap_or(0);
    let data = state.meta.list_audit(&caller.tenant, limit, skip).await?;
    Ok(Json(AuditPage { data, limit, skip }))
}
