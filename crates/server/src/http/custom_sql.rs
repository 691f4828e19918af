//! Seed 004's custom SQL: `POST /api/v1/analytics/query` with `{query, parameters,
//! timeout_seconds}`. The sandbox (`sightline_core::custom_sql`) allows one SELECT over the
//! documented views and rewrites it to the caller's rows; it runs on a database that
//! cannot reach files, URLs or settings, under a time limit and a row cap.

use super::error::{ApiError, ApiResult};
use crate::app::AppState;
use crate::auth::Principal;
use crate::engine::SqlQuery;
use serde::Serialize;
use serde_json::{Map, Value};
use sightline_core::code::FieldError;
use sightline_core::sql::SqlValue;
use std::time::{Duration, Instant};

pub const DEFAULT_TIMEOUT_SECS: u64 = 10;
pub const MAX_TIMEOUT_SECS: u64 = 30;
/// Most rows one custom query answers.
pub const MAX_ROWS: usize = 10_000;
pub const MAX_PARAMETERS: usize = 100;

fn parameter(v: &Value, i: usize) -> Result<SqlValue, FieldError> {
    Ok(match v {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Bool(*b),
        Value::String(s) => SqlValue::Text(s.clone()),
        Value::Number(n) => match n.as_i64() {
            Some(i) => SqlValue::Int(i),
            None => SqlValue::Float(
                n.as_f64()
                    .filter(|f| f.is_finite())
                    .ok_or_else(|| FieldError::new(format!("parameters[{i}]"), "the number is out of range"))?,
            ),
        },
        _ => {
            return Err(FieldError::new(
                format!("parameters[{i}]"),
                "a parameter is a string, number, boolean or null",
            ));
        }
    })
}

/// A custom SQL result (seed 004): each row an object of its columns.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SqlAnswer {
    rows_returned: usize,
    results: Vec<Map<String, Value>>,
    columns: Vec<String>,
    execution_time_ms: u64,
    /// Rows were cut at 10,000.
    truncated: bool,
}

pub async fn run(caller: &Principal, state: &AppState, body: &Value) -> ApiResult<SqlAnswer> {
    let sql = body["query"].as_str().unwrap_or_default();
    let mut errors = Vec::new();
    let params: Vec<SqlValue> = match body.get("parameters") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if items.len() <= MAX_PARAMETERS => {
            items.iter().enumerate().filter_map(|(i, v)| parameter(v, i).map_err(|e| errors.push(e)).ok()).collect()
        }
        Some(_) => {
            errors.push(FieldError::new(
                "parameters",
                format!("parameters is an array of at most {MAX_PARAMETERS} values"),
            ));
            Vec::new()
        }
    };
    let timeout = match body.get("timeout_seconds") {
        None | Some(Value::Null) => DEFAULT_TIMEOUT_SECS as f64,
        Some(Value::Number(n)) => match n.as_f64() {
            Some(t) if t > 0.0 && t <= MAX_TIMEOUT_SECS as f64 => t,
            _ => {
                errors.push(FieldError::new(
                    "timeout_seconds",
                    format!("timeout_seconds is more than 0 and at most {MAX_TIMEOUT_SECS}"),
                ));
                0.0
            }
        },
        Some(_) => {
            errors.push(FieldError::new("timeout_seconds", "timeout_seconds is a number of seconds"));
            0.0
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let started = Instant::now();
    let q = SqlQuery { text: sql, params, max_rows: MAX_ROWS };
    let answer = state.engine.custom_sql(&caller.tenant, q, Duration::from_secs_f64(timeout)).await?;
    let elapsed = started.elapsed();
    let truncated = answer.truncated;
    let results: Vec<Map<String, Value>> = answer
        .rows
        .into_iter()
        .take(MAX_ROWS)
        .map(|row| {
            let mut o = Map::new();
            for (name, v) in answer.columns.iter().zip(row) {
                o.insert(name.clone(), v);
            }
            o
        })
        .collect();
    Ok(SqlAnswer {
        rows_returned: results.len(),
        results,
        columns: answer.columns,
        execution_time_ms: elapsed.as_millis() as u64,
        truncated,
    })
}
