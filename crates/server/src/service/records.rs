//! Seed 000's metric records: stored data points, written through the ingest writer
//! (in order with the events around them), checked against the tenant's vocabulary of
//! service names and metric types.

use super::ingest::write_error;
use crate::app::AppState;
use crate::error::{Error, Result};
use crate::store::{MetricChange, MetricRecord};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sightline_core::code::Code;
use sightline_core::model::TenantId;

/// Seed 000's service names; a tenant may add its own (`/api/v1/settings/metric-vocabulary`).
pub const SERVICE_NAMES: &[&str] = &["auth", "content", "partners_crm", "projects", "social_media", "notification"];
/// Seed 000's metric types.
pub const METRIC_TYPES: &[&str] = &[
    "donation",
    "partner",
    "project",
    "beneficiary",
    "social_post",
    "notification",
    "engagement",
    "conversion",
    "revenue",
];
/// The tenant setting that holds its own names.
const VOCABULARY: &str = "metric_vocabulary";

/// The service names and metric types a tenant accepts: the seed's plus its own.
pub struct Vocabulary {
    pub services: Vec<String>,
    pub types: Vec<String>,
    pub own_services: Vec<String>,
    pub own_types: Vec<String>,
}

impl Vocabulary {
    pub async fn load(state: &AppState, tenant: &TenantId) -> Result<Vocabulary> {
        let own = state.meta.get_tenant_setting(tenant, VOCABULARY).await?.unwrap_or(Value::Null);
        let list = |k: &str| -> Vec<String> {
            own[k]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                .unwrap_or_default()
        };
        let (own_services, own_types) = (list("service_names"), list("metric_types"));
        let join = |base: &[&str], own: &[String]| -> Vec<String> {
            base.iter().map(|s| (*s).to_owned()).chain(own.iter().cloned()).collect()
        };
        Ok(Vocabulary {
            services: join(SERVICE_NAMES, &own_services),
            types: join(METRIC_TYPES, &own_types),
            own_services,
            own_types,
        })
    }

    /// A 422 listing the allowed values when `v` is not one of them.
    pub fn check(&self, field: &str, v: &str) -> Result<()> {
        let allowed = if field == "service_name" { &self.services } else { &self.types };
        if allowed.iter().any(|a| a == v) {
            return Ok(());
        }
        let msg = format!("{field} '{v}' is not allowed; use one of: {}", allowed.join(", "));
        let mut e = Error::field(field, msg);
        e.code = Code::Unprocessable;
        Err(e)
    }
}

/// Replaces the tenant's own names (validated already; the seed's are dropped, they are
/// always accepted) and answers the vocabulary now in force.
pub async fn set_vocabulary(
    state: &AppState,
    tenant: &TenantId,
    services: Vec<String>,
    types: Vec<String>,
) -> Result<Vocabulary> {
    let services: Vec<String> = services.into_iter().filter(|s| !SERVICE_NAMES.contains(&s.as_str())).collect();
    let types: Vec<String> = types.into_iter().filter(|s| !METRIC_TYPES.contains(&s.as_str())).collect();
    state
        .meta
        .put_tenant_setting(tenant, VOCABULARY, &json!({"service_names": services, "metric_types": types}))
        .await?;
    Vocabulary::load(state, tenant).await
}

/// Stores a new record once its service name and type are in the tenant's vocabulary.
pub async fn create(state: &AppState, tenant: &TenantId, record: MetricRecord) -> Result<MetricRecord> {
    let vocab = Vocabulary::load(state, tenant).await?;
    vocab.check("service_name", &record.service_name)?;
    vocab.check("metric_type", &record.metric_type)?;
    let (stored, tenant) = (record.clone(), tenant.clone());
    super::ingest::room_to_write(state)?;
    state.ingest.run(move |sink| sink.insert_metrics(&tenant, &[stored])).await.map_err(write_error)?;
    Ok(record)
}

pub async fn get(state: &AppState, tenant: &TenantId, id: &str) -> Result<MetricRecord> {
    state.metrics.get_metric(tenant, id).await?.ok_or_else(|| not_found(id))
}

/// Changes a record's value, time, dimensions or meta (at least one, checked already).
pub async fn update(
    state: &AppState,
    tenant: &TenantId,
    id: &str,
    change: MetricChange,
    at: DateTime<Utc>,
) -> Result<MetricRecord> {
    if change.value.is_none() && change.timestamp.is_none() && change.dimensions.is_none() && change.meta.is_none() {
        return Err(Error::field("body", "nothing to change: give value, timestamp, dimensions or meta"));
    }
    let (tenant, target) = (tenant.clone(), id.to_owned());
    super::ingest::room_to_write(state)?;
    let updated =
        state.ingest.run(move |sink| sink.update_metric(&tenant, &target, &change, at)).await.map_err(write_error)?;
    updated.ok_or_else(|| not_found(id))
}

pub async fn delete(state: &AppState, tenant: &TenantId, id: &str) -> Result<()> {
    let (tenant, target) = (tenant.clone(), id.to_owned());
    match state.ingest.run(move |sink| sink.delete_metric(&tenant, &target)).await.map_err(write_error)? {
        true => Ok(()),
        false => Err(not_found(id)),
    }
}

fn not_found(id: &str) -> Error {
    Error::not_found(format!("no metric with id '{id}'"))
}
