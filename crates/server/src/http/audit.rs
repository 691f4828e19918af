//! The audit log: sign-ins, failed sign-ins, and every change to users, keys and tenants,
//! with who, when and from where. Readable by the tenant's admin.

use super::error::ApiResult;
use super::extract::ApiQuery;
use crate::app::AppState;
use crate::auth::{Caller, CanManage, Principal};
use crate::store::AuditEntry;
use axum::Json;
use axum::extract::State;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sightline_core::model::TenantId;

/// Records one entry. A failure to record is logged, never turned into a failed request:
/// the change it describes has happened.
pub async fn record(
    state: &AppState,
    tenant: &TenantId,
    actor: &str,
    action: &str,
    target: Option<&str>,
    ip: &Option<String>,
    details: Value,
) {
    let entry = AuditEntry {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: tenant.clone(),
        at: Utc::now(),
        actor: actor.to_owned(),
        action: action.to_owned(),
        target: target.map(str::to_owned),
        ip: ip.clone(),
        details,
    };
    if let Err(e) = state.meta.record_audit(&entry).await {
        tracing::error!(error = %e, action, "could not write an audit entry");
    }
}

/// Who did it, as the log names them.
pub fn actor(p: &Principal) -> String {
    match &p.username {
        Some(u) => format!("{u} ({})", p.subject),
        None => p.subject.clone(),
    }
}

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
