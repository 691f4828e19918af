//! Running analyses for a tenant: the catalog a metric name resolves against (the
//! tenant's custom metrics, its metric-record names), and the compile-run-shape path that
//! every endpoint computing numbers goes through (seed 000's aggregates, seed 001's query
//! and summary, the insights endpoint; dashboards and reports later).

use crate::app::AppState;
use crate::error::{Error as ApiError, Result as ApiResult};
use sightline_core::code::{Code, FieldError};
use sightline_core::model::TenantId;
use sightline_core::query::compile::Compiled;
use sightline_core::query::custom::parse_custom_metric;
use sightline_core::query::insight::Query;
use sightline_core::query::metric::{Catalog, Definition};
use sightline_core::query::time::Window;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// What a tenant's names resolve against besides the built-ins.
#[derive(Default)]
pub struct TenantCatalog {
    pub customs: HashMap<String, Definition>,
    /// The tenant's metric-record names; loaded only when a name is otherwise unknown.
    pub records: HashSet<String>,
}

impl Catalog for TenantCatalog {
    fn custom(&self, name: &str) -> Option<Definition> {
        self.customs.get(name).cloned()
    }
    fn has_records(&self, name: &str) -> bool {
        self.records.contains(name)
    }
}

impl TenantCatalog {
    /// The tenant's custom metrics (record names not loaded).
    pub async fn load(state: &AppState, tenant: &TenantId) -> ApiResult<TenantCatalog> {
        let mut customs = HashMap::new();
        let stored = crate::http::resource::all::<crate::http::custom_metrics::CustomMetrics>(state, tenant).await?;
        for c in stored {
            match parse_custom_metric(&c.body, Some(&c.name)) {
                Ok(m) => {
                    customs.insert(m.name, m.definition);
                }
                Err(e) => tracing::warn!(name = %c.name, errors = ?e, "a stored custom metric no longer parses"),
            }
        }
        Ok(TenantCatalog { customs, records: HashSet::new() })
    }

    pub async fn load_records(&mut self, state: &AppState, tenant: &TenantId) -> ApiResult<()> {
        self.records = state.metrics.metric_names(tenant).await?.into_iter().collect();
        Ok(())
    }
}

/// Parses with the tenant's catalog. Metric-record names are loaded only when a name is
/// unknown without them, so most queries cost one SQLite read before they run.
pub async fn parse_with<T>(
    state: &AppState,
    tenant: &TenantId,
    parse: impl Fn(&dyn Catalog) -> Result<T, Vec<FieldError>>,
) -> ApiResult<T> {
    let mut catalog = TenantCatalog::load(state, tenant).await?;
    let errors = match parse(&catalog) {
        Ok(t) => return Ok(t),
        Err(e) => e,
    };
    // An unresolved name may be a metric-record name: load those and try once more.
    if errors.iter().any(|e| e.code == Some(Code::Unprocessable)) {
        catalog.load_records(state, tenant).await?;
        return parse(&catalog).map_err(problem);
    }
    Err(problem(errors))
}

/// Parse errors as a problem: 422 when a name does not resolve, else 400.
pub fn problem(errors: Vec<FieldError>) -> ApiError {
    let code =
        if errors.iter().any(|e| e.code == Some(Code::Unprocessable)) { Code::Unprocessable } else { Code::Validation };
    let mut e = ApiError::invalid(errors);
    e.code = code;
    e
}

use crate::engine::Outcome;

/// Runs `q` through the engine, under the configured time limit (or a shorter one the
/// caller asks for) and the row cap.
pub async fn execute(
    state: &AppState,
    tenant: &TenantId,
    q: &Query,
    window: Window,
    previous: Option<Window>,
    timeout: Option<Duration>,
) -> ApiResult<Outcome> {
    state.engine.insight(tenant, q, window, previous, time_limit(state, timeout)).await
}

/// The configured time limit of a query, or a shorter one the caller asks for.
pub fn time_limit(state: &AppState, asked: Option<Duration>) -> Duration {
    let limit = Duration::from_millis(state.config.query_timeout_ms);
    asked.map_or(limit, |t| t.min(limit))
}

/// The compiled SQL and its values, for `explain`.
pub fn explain(c: &Compiled) -> serde_json::Value {
    use sightline_core::sql::SqlValue;
    let params: Vec<serde_json::Value> = c
        .params
        .iter()
        .map(|p| match p {
            SqlValue::Text(s) => serde_json::json!(s),
            SqlValue::Int(i) => serde_json::json!(i),
            SqlValue::Float(f) => serde_json::json!(f),
            SqlValue::Bool(b) => serde_json::json!(b),
            SqlValue::Null => serde_json::Value::Null,
            SqlValue::TimestampMicros(us) => serde_json::json!(
                chrono::DateTime::from_timestamp_micros(*us).map(|t| t.to_rfc3339()).unwrap_or_default()
            ),
        })
        .collect();
    serde_json::json!({"sql": c.sql, "params": params})
}
