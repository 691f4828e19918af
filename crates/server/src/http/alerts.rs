//! A tenant's alert rules at `/api/v1/analytics/alerts` (seed 004's realtime `alerts`): a
//! metric over a trailing window compared with a threshold. Rules are checked whenever
//! `/realtime` is read; a rule that holds is one of its `alerts`.

use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiPath};
use crate::analytics::{self, TenantCatalog, parse_with};
use crate::app::AppState;
use crate::auth::{Caller, CanAuthor, CanRead};
use crate::store::AlertRule;
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};
use sightline_core::code::FieldError;
use sightline_core::model::TenantId;
use sightline_core::query::answer::number;
use sightline_core::query::insight::{Kind, Query, Series};
use sightline_core::query::metric::resolve;
use sightline_core::query::time::{DateRange, Window};

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

fn rule_json(r: &AlertRule) -> Value {
    json!({
        "id": r.id, "name": r.name, "metric": r.metric, "condition": r.condition, "threshold": r.threshold,
        "window_seconds": r.window_secs,
        "created_at": r.created_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        "updated_at": r.updated_at.to_rfc3339_opts(SecondsFormat::Secs, true),
    })
}

/// Reads and checks a rule; its metric must resolve for the tenant.
async fn parse_rule(
    state: &AppState,
    tenant: &TenantId,
    body: &Value,
    id: String,
    created: DateTime<Utc>,
) -> ApiResult<AlertRule> {
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
    parse_with(state, tenant, move |cat| resolve(&m, cat).map(|_| ()).map_err(|e| vec![FieldError::new("metric", e)]))
        .await?;
    Ok(AlertRule {
        id,
        name: name.expect("checked"),
        metric,
        condition: cond.expect("checked").into(),
        threshold: threshold.expect("checked"),
        window_secs: window.expect("checked"),
        created_at: created,
        updated_at: Utc::now(),
    })
}

pub async fn list(caller: Caller<CanRead>, State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let rules = state.meta.list_alert_rules(&caller.tenant).await?;
    Ok(Json(json!({"data": rules.iter().map(rule_json).collect::<Vec<_>>()})))
}

pub async fn create(
    caller: Caller<CanAuthor>,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(axum::http::StatusCode, Json<Value>)> {
    let rule = parse_rule(&state, &caller.tenant, &body, uuid::Uuid::now_v7().to_string(), Utc::now()).await?;
    if state.meta.list_alert_rules(&caller.tenant).await?.len() >= MAX_RULES {
        return Err(ApiError::new(
            sightline_core::code::Code::Unprocessable,
            format!("a tenant keeps at most {MAX_RULES} alert rules"),
        ));
    }
    state.meta.create_alert_rule(&caller.tenant, &rule).await?;
    Ok((axum::http::StatusCode::CREATED, Json(rule_json(&rule))))
}

pub async fn get(
    caller: Caller<CanRead>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    match state.meta.get_alert_rule(&caller.tenant, &id).await? {
        Some(r) => Ok(Json(rule_json(&r))),
        None => Err(ApiError::not_found(format!("no alert rule with id '{id}'"))),
    }
}

pub async fn replace(
    caller: Caller<CanAuthor>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let Some(old) = state.meta.get_alert_rule(&caller.tenant, &id).await? else {
        return Err(ApiError::not_found(format!("no alert rule with id '{id}'")));
    };
    let rule = parse_rule(&state, &caller.tenant, &body, id.clone(), old.created_at).await?;
    if !state.meta.replace_alert_rule(&caller.tenant, &rule).await? {
        return Err(ApiError::not_found(format!("no alert rule with id '{id}'")));
    }
    Ok(Json(rule_json(&rule)))
}

pub async fn delete(
    caller: Caller<CanAuthor>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    if state.meta.delete_alert_rule(&caller.tenant, &id).await? {
        Ok(Json(json!({"message": "Alert rule deleted successfully", "id": id})))
    } else {
        Err(ApiError::not_found(format!("no alert rule with id '{id}'")))
    }
}

/// The tenant's rules that hold now, as realtime `alerts`. A rule whose metric no longer
/// resolves (a custom metric deleted since) is reported as such rather than dropped.
pub async fn firing(
    state: &AppState,
    tenant: &TenantId,
    now: DateTime<Utc>,
) -> ApiResult<Vec<super::realtime::RealtimeAlert>> {
    use super::realtime::RealtimeAlert;
    let rules = state.meta.list_alert_rules(tenant).await?;
    if rules.is_empty() {
        return Ok(Vec::new());
    }
    // One catalog for every rule; metric-record names are read only if a name needs them.
    let mut catalog = TenantCatalog::load(state, tenant).await?;
    let mut records_loaded = false;
    let mut out = Vec::new();
    for r in rules {
        let mut resolved = resolve(&r.metric, &catalog);
        if !records_loaded && resolved.as_ref().is_err_and(|m| m.starts_with("unknown metric")) {
            catalog.load_records(state, tenant).await?;
            records_loaded = true;
            resolved = resolve(&r.metric, &catalog);
        }
        let expr = match resolved {
            Ok(e) => e,
            Err(message) => {
                out.push(RealtimeAlert {
                    rule_id: Some(r.id),
                    name: Some(r.name),
                    ..RealtimeAlert::new("rule_error", message)
                });
                continue;
            }
        };
        let window = Window { start: now - Duration::seconds(r.window_secs), end: now };
        let q = Query {
            kind: Kind::Aggregate,
            series: vec![Series { label: r.metric.clone(), expr }],
            by: Vec::new(),
            granularity: None,
            range: DateRange::default(),
            tz: chrono_tz::Tz::UTC,
            limit: 1,
        };
        let done = analytics::execute(state, tenant, &q, window, None, None).await?;
        let value = done.rows.first().and_then(|row| row.values[0]).or(q.series[0].expr.is_additive().then_some(0.0));
        let Some(v) = value else { continue };
        let holds = match r.condition.as_str() {
            "gt" => v > r.threshold,
            "gte" => v >= r.threshold,
            "lt" => v < r.threshold,
            "lte" => v <= r.threshold,
            _ => v == r.threshold,
        };
        if holds {
            let message = format!(
                "{} is {} ({} {} over the last {} s)",
                r.metric,
                number(Some(v)),
                r.condition,
                r.threshold,
                r.window_secs
            );
            out.push(RealtimeAlert {
                rule_id: Some(r.id),
                name: Some(r.name),
                metric: Some(r.metric),
                value: Some(number(Some(v))),
                condition: Some(r.condition),
                threshold: Some(r.threshold),
                ..RealtimeAlert::new("rule", message)
            });
        }
    }
    Ok(out)
}
