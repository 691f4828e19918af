//! A tenant's own metric definitions (seed 004) at `/api/v1/analytics/custom-metrics`,
//! by name. A definition is checked on save: it parses, every name it uses resolves, it
//! does not reach itself, and no divisor is the constant 0.

use super::error::{ApiError, ApiResult};
use super::resource::Resource;
use crate::app::AppState;
use crate::service::analytics::{TenantCatalog, problem};
use crate::store::StoredResource;
use chrono::SecondsFormat;
use serde::Serialize;
use serde_json::{Map, Value};
use sightline_core::code::Code;
use sightline_core::model::TenantId;
use sightline_core::query::custom::{check_resolves, parse_custom_metric};
use sightline_core::query::metric::{BUILTINS, Definition, ResolveError};

/// Most custom metrics a tenant may keep.
pub const MAX_PER_TENANT: usize = 500;

/// A custom metric to define (seed 004): a formula over other metrics, or an inline
/// definition.
#[derive(utoipa::ToSchema)]
#[schema(as = CustomMetricIn, example = json!({"metric_name": "revenue_per_customer", "calculation": "revenue / customers", "description": "Average revenue per paying customer"}))]
#[allow(dead_code)]
pub struct CustomMetricShape {
    /// `[a-z0-9_]`, not a built-in's name (alias `name`).
    metric_name: String,
    /// A formula such as `revenue / customers` (alias `formula`); or give `definition`.
    calculation: Option<String>,
    /// Inline: `{event, aggregation, property, filters}`.
    definition: Option<Map<String, Value>>,
    description: Option<String>,
    /// Display format (`number`, `currency`, `percentage`...).
    format: Option<String>,
}

crate::json_body!(
    /// A custom metric (see `CustomMetricIn`).
    CustomMetricBody,
    CustomMetricShape
);

/// A custom metric as defined, with its times.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CustomMetricOut {
    /// The definition as given, normalized (`metric_name`, `calculation` or `definition`, ...).
    #[serde(flatten)]
    spec: Map<String, Value>,
    created_at: String,
    updated_at: String,
}

/// A built-in metric every tenant has.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BuiltinMetric {
    metric_name: &'static str,
    description: &'static str,
}

/// The tenant's custom metrics by name, and the built-ins.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CustomMetricList {
    data: Vec<CustomMetricOut>,
    builtin: Vec<BuiltinMetric>,
}

/// A tenant's own metric definitions, addressed by name.
pub struct CustomMetrics;

impl Resource for CustomMetrics {
    const KIND: &'static str = "custom_metric";
    const NOUN: &'static str = "custom metric";
    const PLURAL: &'static str = "custom metrics";
    const TAG: &'static str = "metric definitions";
    const MAX_PER_TENANT: usize = MAX_PER_TENANT;
    const UNIQUE_NAME: bool = true;
    const KEYED_BY_NAME: bool = true;
    const DELETED: &'static str = "Custom metric deleted successfully";
    type Body = CustomMetricBody;
    type Answer = CustomMetricOut;
    type List = CustomMetricList;

    async fn parse(
        state: &AppState,
        tenant: &TenantId,
        CustomMetricBody(body): CustomMetricBody,
        key: Option<&str>,
    ) -> ApiResult<(String, Value)> {
        checked(state, tenant, &body, key).await
    }

    async fn present(_: &AppState, _: &TenantId, r: StoredResource) -> ApiResult<CustomMetricOut> {
        let spec = match r.body {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        Ok(CustomMetricOut {
            spec,
            created_at: r.created_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            updated_at: r.updated_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        })
    }

    fn list(data: Vec<CustomMetricOut>) -> CustomMetricList {
        let builtin =
            BUILTINS.iter().map(|b| BuiltinMetric { metric_name: b.name, description: b.description }).collect();
        CustomMetricList { data, builtin }
    }

    /// Refused while another definition uses it.
    async fn before_delete(state: &AppState, tenant: &TenantId, r: &StoredResource) -> ApiResult<()> {
        let name = &r.name;
        let catalog = TenantCatalog::load(state, tenant).await?;
        let mut users: Vec<&String> = catalog
            .customs
            .iter()
            .filter(|(n, d)| *n != name && matches!(d, Definition::Formula(f) if f.refs().contains(&name.as_str())))
            .map(|(n, _)| n)
            .collect();
        users.sort();
        if users.is_empty() {
            return Ok(());
        }
        let list: Vec<&str> = users.iter().map(|s| s.as_str()).collect();
        Err(ApiError::new(
            Code::Conflict,
            format!("'{name}' is used by {}; change or delete those first", list.join(", ")),
        ))
    }

    fn sort(items: &mut [StoredResource]) {
        items.sort_by(|a, b| a.name.cmp(&b.name));
    }
}

/// Parses `body` and checks it against the tenant's other definitions (as they would be
/// after the save); answers the normalized spec.
async fn checked(
    state: &AppState,
    tenant: &TenantId,
    body: &Value,
    path_name: Option<&str>,
) -> ApiResult<(String, Value)> {
    let m = parse_custom_metric(body, path_name).map_err(ApiError::invalid)?;
    let mut catalog = TenantCatalog::load(state, tenant).await?;
    catalog.customs.insert(m.name.clone(), m.definition.clone());
    if let Err(e) = check_resolves(&m.name, &catalog) {
        // Only an unknown name may be a metric-record name worth loading.
        if !matches!(e, ResolveError::Unknown(_)) {
            return Err(problem(vec![e.at("calculation")]));
        }
        catalog.load_records(state, tenant).await?;
        check_resolves(&m.name, &catalog).map_err(|e| problem(vec![e.at("calculation")]))?;
    }
    Ok((m.name, m.spec))
}
