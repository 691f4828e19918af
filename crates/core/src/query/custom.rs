//! A tenant's own metric definitions, in seed 004's shape:
//! `{"metric_name", "type", "calculation", "dimensions"}`, where `calculation` is a
//! formula over other metrics, or `definition` is one aggregation
//! (`{"event", "aggregation", "field", "filters"}`).

use super::field::Source;
use super::filter::parse_filter;
use super::insight::inline_measure;
use super::metric::{Aggregation, Catalog, Definition, Expr, Formula, check_custom_name, resolve};
use crate::code::FieldError;
use serde_json::{Map, Value, json};

/// How a value of the metric reads; display only, the number is what the definition computes.
pub const TYPES: &[&str] = &[
    "count",
    "counter",
    "sum",
    "average",
    "gauge",
    "percentage",
    "ratio",
    "currency",
    "duration",
    "histogram",
    "number",
];

#[derive(Debug, Clone, PartialEq)]
pub struct CustomMetric {
    pub name: String,
    pub kind: String,
    pub definition: Definition,
    /// The fields it is meant to be broken down by (`bot_id`, `channel`, ...).
    pub dimensions: Vec<String>,
    pub description: Option<String>,
    /// The spec as it is stored and answered.
    pub spec: Value,
}

/// Reads a definition; `name_from_path` is the name a PUT's path gives (the body may omit it).
pub fn parse_custom_metric(v: &Value, name_from_path: Option<&str>) -> Result<CustomMetric, Vec<FieldError>> {
    let Value::Object(obj) = v else {
        return Err(vec![FieldError::new("body", "a custom metric is a JSON object")]);
    };
    let mut errors = Vec::new();
    let text = |k: &str, errors: &mut Vec<FieldError>| -> Option<String> {
        match obj.get(k) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.trim().to_owned()),
            Some(_) => {
                errors.push(FieldError::new(k, format!("{k} must be a string")));
                None
            }
        }
    };
    let body_name = text("metric_name", &mut errors).or_else(|| text("name", &mut errors));
    let name = match (name_from_path, body_name) {
        (Some(p), Some(b)) if p != b => {
            errors.push(FieldError::new("metric_name", format!("metric_name '{b}' differs from the path's '{p}'")));
            None
        }
        (Some(p), _) => Some(p.to_owned()),
        (None, Some(b)) => Some(b),
        (None, None) => {
            errors.push(FieldError::new("metric_name", "metric_name is required"));
            None
        }
    };
    if let Some(n) = &name
        && let Err(m) = check_custom_name(n)
    {
        errors.push(FieldError::new("metric_name", m));
    }
    let kind = text("type", &mut errors).unwrap_or_else(|| "number".into()).to_ascii_lowercase();
    if !TYPES.contains(&kind.as_str()) {
        errors.push(FieldError::new("type", format!("unknown type '{kind}'; use one of {}", TYPES.join(", "))));
    }
    let definition =
        match (obj.get("calculation").filter(|c| !c.is_null()), obj.get("definition").filter(|d| !d.is_null())) {
            (Some(Value::String(f)), None) => match Formula::parse(f) {
                Ok(f) => Some(Definition::Formula(f)),
                Err(m) => {
                    errors.push(FieldError::new("calculation", m));
                    None
                }
            },
            (Some(_), None) => {
                errors.push(FieldError::new("calculation", "calculation is a formula string such as \"a / b\""));
                None
            }
            (None, Some(Value::Object(d))) => match measure_of(d) {
                Ok(def) => Some(def),
                Err(e) => {
                    errors.push(e);
                    None
                }
            },
            (None, Some(_)) => {
                errors.push(FieldError::new(
                    "definition",
                    "definition is an object {event, aggregation, field, filters}",
                ));
                None
            }
            (Some(_), Some(_)) => {
                errors.push(FieldError::new("calculation", "give calculation or definition, not both"));
                None
            }
            (None, None) => {
                errors.push(FieldError::new(
                    "calculation",
                    "calculation (a formula) or definition (an aggregation) is required",
                ));
                None
            }
        };
    let dimensions = match obj.get("dimensions") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if items.len() <= 20 => {
            let mut out = Vec::new();
            for (i, d) in items.iter().enumerate() {
                match d.as_str() {
                    Some(s) if !s.trim().is_empty() && s.len() <= 200 => out.push(s.trim().to_owned()),
                    _ => errors.push(FieldError::new(format!("dimensions[{i}]"), "a dimension is a non-empty string")),
                }
            }
            out
        }
        Some(_) => {
            errors.push(FieldError::new("dimensions", "dimensions is an array of at most 20 field names"));
            Vec::new()
        }
    };
    let description = text("description", &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    let name = name.expect("no errors");
    let mut spec = Map::new();
    spec.insert("metric_name".into(), json!(name));
    spec.insert("type".into(), json!(kind));
    if let Some(c) = obj.get("calculation").filter(|c| !c.is_null()) {
        spec.insert("calculation".into(), c.clone());
    }
    if let Some(d) = obj.get("definition").filter(|d| !d.is_null()) {
        spec.insert("definition".into(), d.clone());
    }
    spec.insert("dimensions".into(), json!(dimensions));
    if let Some(d) = &description {
        spec.insert("description".into(), json!(d));
    }
    Ok(CustomMetric {
        name,
        kind,
        definition: definition.expect("no errors"),
        dimensions,
        description,
        spec: Value::Object(spec),
    })
}

fn measure_of(d: &Map<String, Value>) -> Result<Definition, FieldError> {
    let agg = match d.get("aggregation").and_then(Value::as_str) {
        None => None,
        Some(a) => Some(Aggregation::parse(a).ok_or_else(|| {
            FieldError::new(
                "definition.aggregation",
                format!("unknown aggregation '{a}'; use one of {}", Aggregation::NAMES),
            )
        })?),
    };
    let (_, expr) = inline_measure(d, agg, "definition")?;
    let Expr::Measure(mut m) = expr else { unreachable!("an inline measure is a measure") };
    if let Some(f) = d.get("filters").filter(|f| !f.is_null()) {
        let source: Source = m.source;
        m = m.and(parse_filter(f, source, "definition.filters")?);
    }
    Ok(Definition::Measure(m))
}

/// Checks that a definition resolves among the tenant's others: every name it refers to
/// exists, and it does not refer to itself through them. `catalog` must already hold it.
pub fn check_resolves(name: &str, catalog: &dyn Catalog) -> Result<(), super::metric::ResolveError> {
    resolve(name, catalog).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn seed_004_shape_parses() {
        let m = parse_custom_metric(
            &json!({"metric_name": "conversion_rate", "type": "percentage",
                    "calculation": "completed_purchases / total_conversations",
                    "dimensions": ["bot_id", "channel", "user_segment"]}),
            None,
        )
        .unwrap();
        assert_eq!(m.name, "conversion_rate");
        assert!(matches!(m.definition, Definition::Formula(_)));
        assert_eq!(m.spec["dimensions"], json!(["bot_id", "channel", "user_segment"]));
    }

    #[test]
    fn bad_specs_name_every_problem() {
        let errs = parse_custom_metric(&json!({"metric_name": "revenue", "type": "pie", "calculation": "a / 0"}), None)
            .unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["metric_name", "type", "calculation"]);
        let m = parse_custom_metric(
            &json!({"metric_name": "big_orders", "definition": {"event": "purchase", "aggregation": "count",
                    "filters": [{"field": "amount", "op": "gt", "value": 100}]}}),
            None,
        )
        .unwrap();
        assert!(matches!(m.definition, Definition::Measure(_)));
    }
}
