//! Recording the audit log: sign-ins, failed sign-ins, and every change to users, keys,
//! tenants and settings, with who, when and from where.

use crate::app::AppState;
use crate::auth::Principal;
use crate::store::AuditEntry;
use chrono::Utc;
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
