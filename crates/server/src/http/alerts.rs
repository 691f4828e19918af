//! A tenant's alert rules at `/api/v1/analytics/alerts` (seed 004's realtime `alerts`): a
//! metric over a trailing window compared with a threshold. Rules are checked whenever
//! `/realtime` is read; a rule that holds is one of its `alerts`.

use super::error::{ApiError, ApiResult};
use super::resource::Resource;
use crate::app::AppState;
use crate::service::analytics::parse_with;
use crate::store::StoredResource;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;
use sightline_core::code::FieldError;
use sightline_core::model::TenantId;
use sightline_core::query::answer::number;
use sightline_core::query::metric::resolve;

pub const MAX_RULES: usize = 100;
const CONDITIONS: &str = "gt, gte, lt, lte, eq";

fn condition(s: &str) -> Option<&'static str> {
    Some(match s.trim() {
        "gt" | ">" | "above" => "gt",
        "gte" | ">=" => "gte",
        "lt" | "<" | "below" => "lt",
        "lte" | "<=" => "lte",
        "eq" | "=" | "==" => "eq",
        _ => return None,
    })
}

/// `5m`, `1h`, `1d` or a number of seconds; 1 minute to 7 days.
fn window_secs(v: &Value) -> Result<i64, String> {
    let bad = || "window is a duration such as \"5m\", \"1h\" or \"1d\" (1 minute to 7 days), or seconds".to_string();
    let secs = match v {
        Value::Number(n) => n.as_i64().ok_or_else(bad)?,
        Value::String(s) => {
            let s = s.trim();
            let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
            let n: i64 = s[..split].parse().map_err(|_| bad())?;
            n * match &s[split..] {
                "s" => 1,
                "m" | "min" => 60,
                "h" => 3600,
                "d" => 86400,
                _ => return Err(bad()),
            }
        }
        _ => return Err(bad()),
    };
    if !(60..=7 * 86400).contains(&secs) {
        return Err(bad());
    }
    Ok(secs)
}

/// An alert rule as stored: `metric` over the trailing `window_secs`, compared with
pub use crate::service::alerts::AlertRule;

/// An alert rule to save.
#[derive(utoipa::ToSchema)]
#[schema(as = AlertRuleIn, example = json!({"name": "traffic spike", "metric": "events", "condition": "gt", "threshold": 1000, "window": "5m"}))]
#[allow(dead_code)]
pub struct AlertRuleShape {
    /// 1 to 200 characters; the metric when left out.
    name: Option<String>,
    /// Any metric the tenant can query (a built-in, a custom metric, a record name).
    metric: String,
    /// `gt`, `gte`, `lt`, `lte` or `eq` (or `>`, `>=`, `<`, `<=`, `=`, `above`, `below`).
    condition: String,
    threshold: f64,
    /// `5m`, `1h`, `1d` or seconds, 1 minute to 7 days; 5 minutes by default (alias
    /// `window_seconds`).
    window: Option<Value>,
}

crate::json_body!(
    /// An alert rule (see `AlertRuleIn`).
    AlertRuleBody,
    AlertRuleShape
);

/// An alert rule.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertRuleOut {
    id: String,
    name: String,
    metric: String,
    condition: String,
    threshold: f64,
    window_seconds: i64,
    created_at: String,
    updated_at: String,
}

/// The tenant's alert rules, oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertRuleList {
    data: Vec<AlertRuleOut>,
}

/// The tenant's alert rules (seed 004's realtime `alerts`).
pub struct AlertRules;

impl Resource for AlertRules {
    const KIND: &'static str = crate::service::alerts::KIND;
    const NOUN: &'static str = "alert rule";
    const PLURAL: &'static str = "alert rules";
    const TAG: &'static str = "alerts";
    const MAX_PER_TENANT: usize = MAX_RULES;
    const UNIQUE_NAME: bool = false;
    const DELETED: &'static str = "Alert rule deleted successfully";
    type Body = AlertRuleBody;
    type Answer = AlertRuleOut;
    type List = AlertRuleList;

    async fn parse(
        state: &AppState,
        tenant: &TenantId,
        AlertRuleBody(body): AlertRuleBody,
        _: Option<&str>,
    ) -> ApiResult<(String, Value)> {
        let rule = parse_rule(state, tenant, &body).await?;
        Ok((rule.name.clone(), serde_json::to_value(&rule).map_err(ApiError::internal)?))
    }

    async fn present(_: &AppState, _: &TenantId, r: StoredResource) -> ApiResult<AlertRuleOut> {
        let rule = AlertRule::of(&r)?;
        Ok(AlertRuleOut {
            id: rule.id,
            name: rule.name,
            metric: rule.metric,
            condition: rule.condition,
            threshold: rule.threshold,
            window_seconds: rule.window_secs,
            created_at: r.created_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            updated_at: r.updated_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        })
    }

    fn list(data: Vec<AlertRuleOut>) -> AlertRuleList {
        AlertRuleList { data }
    }
}

/// Reads and checks a rule; its metric must resolve for the tenant.
async fn parse_rule(state: &AppState, tenant: &TenantId, body: &Value) -> ApiResult<AlertRule> {
    let mut errors = Vec::new();
    let text = |k: &str, errors: &mut Vec<FieldError>| match body.get(k) {
        Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 200 => Some(s.trim().to_owned()),
        None | Some(Value::Null) => {
            errors.push(FieldError::new(k, format!("{k} is required")));
            None
        }
        Some(_) => {
            errors.push(FieldError::new(k, format!("{k} is a string of 1 to 200 characters")));
            None
        }
    };
    let metric = text("metric", &mut errors);
    let name = match body.get("name") {
        None | Some(Value::Null) => metric.clone(),
        _ => text("name", &mut errors),
    };
    let cond = match body.get("condition").and_then(Value::as_str) {
        Some(c) => condition(c).or_else(|| {
            errors.push(FieldError::new("condition", format!("unknown condition '{c}'; use one of {CONDITIONS}")));
            None
        }),
        None => {
            errors.push(FieldError::new("condition", format!("condition is required: one of {CONDITIONS}")));
            None
        }
    };
    let threshold = match body.get("threshold").and_then(Value::as_f64).filter(|f| f.is_finite()) {
        Some(t) => Some(t),
        None => {
            errors.push(FieldError::new("threshold", "threshold is a number"));
            None
        }
    };
    let window = match body.get("window").or(body.get("window_seconds")) {
        None | Some(Value::Null) => Some(300),
        Some(w) => window_secs(w).map_err(|m| errors.push(FieldError::new("window", m))).ok(),
    };
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let metric = metric.expect("checked");
    let m = metric.clone();
    parse_with(state, tenant, move |cat| resolve(&m, cat).map(|_| ()).map_err(|e| vec![e.at("metric")])).await?;
    Ok(AlertRule {
        id: String::new(),
        name: name.expect("checked"),
        metric,
        condition: cond.expect("checked").into(),
        threshold: threshold.expect("checked"),
        window_secs: window.expect("checked"),
    })
}

/// The tenant's rules that hold now, as realtime `alerts`. A rule whose metric no longer
/// resolves (a custom metric deleted since) is reported as such rather than dropped.
pub async fn firing(
    state: &AppState,
    tenant: &TenantId,
    now: DateTime<Utc>,
) -> ApiResult<Vec<super::realtime::RealtimeAlert>> {
    use super::realtime::RealtimeAlert;
    use crate::service::alerts::{Outcome, evaluate};
    let mut out = Vec::new();
    for outcome in evaluate(state, tenant, now).await? {
        match outcome {
            Outcome::Broken { rule, error } => out.push(RealtimeAlert {
                rule_id: Some(rule.id),
                name: Some(rule.name),
                ..RealtimeAlert::new("rule_error", error)
            }),
            Outcome::Holds { rule, value } => {
                let message = format!(
                    "{} is {} ({} {} over the last {} s)",
                    rule.metric,
                    number(Some(value)),
                    rule.condition,
                    rule.threshold,
                    rule.window_secs
                );
                out.push(RealtimeAlert {
                    rule_id: Some(rule.id),
                    name: Some(rule.name),
                    metric: Some(rule.metric),
                    value: Some(number(Some(value))),
                    condition: Some(rule.condition),
                    threshold: Some(rule.threshold),
                    ..RealtimeAlert::new("rule", message)
                });
            }
            Outcome::Quiet { .. } => {}
        }
    }
    Ok(out)
}
