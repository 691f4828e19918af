//! Alert rules checked now: each rule's metric over its trailing window against its
//! threshold. `/realtime` reads the outcome today; the scheduled checks of the alerts
//! issue will call the same [`evaluate`].

use super::analytics::TenantCatalog;
use crate::app::AppState;
use crate::error::{Error, Result};
use crate::store::StoredResource;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sightline_core::model::TenantId;
use sightline_core::query::insight::Series;
use sightline_core::query::metric::{ResolveError, resolve};
use sightline_core::query::time::Window;

/// The kind of resource alert rules are stored as.
pub const KIND: &str = "alert_rule";

/// `threshold` by `condition` (`gt`, `gte`, `lt`, `lte`, `eq`) over the last
/// `window_secs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRule {
    #[serde(skip)]
    pub id: String,
    #[serde(skip)]
    pub name: String,
    pub metric: String,
    pub condition: String,
    pub threshold: f64,
    pub window_secs: i64,
}

impl AlertRule {
    pub fn of(r: &StoredResource) -> Result<AlertRule> {
        let rule = AlertRule::deserialize(&r.body).map_err(Error::internal)?;
        Ok(AlertRule { id: r.id.clone(), name: r.name.clone(), ..rule })
    }

    /// Whether `value` meets the rule.
    pub fn holds(&self, value: f64) -> bool {
        match self.condition.as_str() {
            "gt" => value > self.threshold,
            "gte" => value >= self.threshold,
            "lt" => value < self.threshold,
            "lte" => value <= self.threshold,
            _ => value == self.threshold,
        }
    }
}

/// A rule as checked now.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The metric's value meets the condition.
    Holds { rule: AlertRule, value: f64 },
    /// It does not, or the metric has no value over the window.
    Quiet { rule: AlertRule, value: Option<f64> },
    /// The rule's metric no longer resolves (a custom metric was deleted).
    Broken { rule: AlertRule, error: String },
}

/// Checks every rule of the tenant at `now`.
pub async fn evaluate(state: &AppState, tenant: &TenantId, now: DateTime<Utc>) -> Result<Vec<Outcome>> {
    let rules = state.meta.list_resources(tenant, KIND).await?;
    if rules.is_empty() {
        return Ok(Vec::new());
    }
    // One catalog for every rule; metric-record names are read only if a name needs them.
    let mut catalog = TenantCatalog::load(state, tenant).await?;
    let mut records_loaded = false;
    let mut out = Vec::with_capacity(rules.len());
    for stored in rules {
        let rule = AlertRule::of(&stored)?;
        let mut resolved = resolve(&rule.metric, &catalog);
        if !records_loaded && matches!(resolved, Err(ResolveError::Unknown(_))) {
            catalog.load_records(state, tenant).await?;
            records_loaded = true;
            resolved = resolve(&rule.metric, &catalog);
        }
        let expr = match resolved {
            Ok(e) => e,
            Err(e) => {
                out.push(Outcome::Broken { rule, error: e.to_string() });
                continue;
            }
        };
        let window = Window { start: now - Duration::seconds(rule.window_secs), end: now };
        let series = Series { label: rule.metric.clone(), expr };
        let value = super::metrics::value(state, tenant, series, window).await?;
        out.push(match value {
            Some(v) if rule.holds(v) => Outcome::Holds { rule, value: v },
            value => Outcome::Quiet { rule, value },
        });
    }
    Ok(out)
}
