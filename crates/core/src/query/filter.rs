//! Row filters: conditions on fields, combined with and/or. Parsed from JSON into typed
//! values; the compiler turns each into SQL with every value bound.

use super::field::{Field, FieldKind, Source};
use crate::code::FieldError;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    All(Vec<Filter>),
    Any(Vec<Filter>),
    Cond(Condition),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub field: Field,
    pub op: Op,
    pub operand: Operand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
    Contains,
    In,
    NotIn,
    IsSet,
    IsNotSet,
}

impl Op {
    pub const NAMES: &'static str = "eq, neq, gt, gte, lt, lte, contains, in, not_in, is_set, is_not_set";

    pub fn parse(s: &str) -> Option<Op> {
        Some(match s.trim().to_ascii_lowercase().replace([' ', '-'], "_").as_str() {
            "eq" | "=" | "==" | "equals" | "exact" | "is" => Op::Eq,
            "neq" | "!=" | "<>" | "ne" | "not_equals" | "is_not" => Op::Neq,
            "gt" | ">" => Op::Gt,
            "gte" | ">=" | "ge" => Op::Gte,
            "lt" | "<" => Op::Lt,
            "lte" | "<=" | "le" => Op::Lte,
            "contains" | "icontains" => Op::Contains,
            "in" => Op::In,
            "not_in" | "nin" => Op::NotIn,
            "is_set" | "exists" => Op::IsSet,
            "is_not_set" | "not_exists" => Op::IsNotSet,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Text(String),
    Number(f64),
    Bool(bool),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    None,
    One(Scalar),
    Many(Vec<Scalar>),
}

pub const MAX_FILTER_DEPTH: usize = 8;
pub const MAX_CONDITIONS: usize = 100;
pub const MAX_IN_VALUES: usize = 1000;

impl Filter {
    pub fn and(filters: impl IntoIterator<Item = Filter>) -> Option<Filter> {
        let mut all: Vec<Filter> = filters.into_iter().collect();
        match all.len() {
            0 => None,
            1 => all.pop(),
            _ => Some(Filter::All(all)),
        }
    }

    pub fn eq(field: Field, value: impl Into<String>) -> Filter {
        Filter::Cond(Condition { field, op: Op::Eq, operand: Operand::One(Scalar::Text(value.into())) })
    }

    /// Every field a filter reads.
    pub fn fields(&self) -> Vec<&Field> {
        match self {
            Filter::Cond(c) => vec![&c.field],
            Filter::All(v) | Filter::Any(v) => v.iter().flat_map(|f| f.fields()).collect(),
        }
    }
}

/// Parses a filter: `{"field", "op", "value"}`, `{"and": [...]}`, `{"or": [...]}`, or an
/// array (all must hold). `at` names the place in the request, for error messages.
pub fn parse_filter(v: &Value, source: Source, at: &str) -> Result<Filter, FieldError> {
    let mut count = 0;
    parse_at(v, source, at, 0, &mut count)
}

fn parse_at(v: &Value, source: Source, at: &str, depth: usize, count: &mut usize) -> Result<Filter, FieldError> {
    if depth > MAX_FILTER_DEPTH {
        return Err(FieldError::new(at, format!("filters nest at most {MAX_FILTER_DEPTH} deep")));
    }
    let list = |items: &Vec<Value>, key: &str, count: &mut usize| -> Result<Vec<Filter>, FieldError> {
        if items.is_empty() {
            return Err(FieldError::new(format!("{at}{key}"), "a filter group needs at least one filter"));
        }
        items
            .iter()
            .enumerate()
            .map(|(i, item)| parse_at(item, source, &format!("{at}{key}[{i}]"), depth + 1, count))
            .collect()
    };
    match v {
        Value::Array(items) => Ok(Filter::All(list(items, "", count)?)),
        Value::Object(obj) => {
            if let Some(inner) = obj.get("and") {
                let Value::Array(items) = inner else {
                    return Err(FieldError::new(format!("{at}.and"), "'and' takes an array of filters"));
                };
                return Ok(Filter::All(list(items, ".and", count)?));
            }
            if let Some(inner) = obj.get("or") {
                let Value::Array(items) = inner else {
                    return Err(FieldError::new(format!("{at}.or"), "'or' takes an array of filters"));
                };
                return Ok(Filter::Any(list(items, ".or", count)?));
            }
            *count += 1;
            if *count > MAX_CONDITIONS {
                return Err(FieldError::new(at, format!("a query has at most {MAX_CONDITIONS} filter conditions")));
            }
            let name = ["field", "property", "key"].iter().find_map(|k| obj.get(*k));
            let Some(Value::String(name)) = name else {
                return Err(FieldError::new(format!("{at}.field"), "a condition needs 'field' (a string)"));
            };
            let field = Field::parse(source, name).map_err(|m| FieldError::new(format!("{at}.field"), m))?;
            let op = match ["op", "operator"].iter().find_map(|k| obj.get(*k)) {
                None => Op::Eq,
                Some(Value::String(s)) => Op::parse(s).ok_or_else(|| {
                    FieldError::new(format!("{at}.op"), format!("unknown operator '{s}'; use one of {}", Op::NAMES))
                })?,
                Some(_) => return Err(FieldError::new(format!("{at}.op"), "op must be a string")),
            };
            let operand = operand(op, &field, obj.get("value"), &format!("{at}.value"))?;
            Ok(Filter::Cond(Condition { field, op, operand }))
        }
        _ => Err(FieldError::new(
            at,
            "a filter is an object ({\"field\", \"op\", \"value\"}, {\"and\"} or {\"or\"}) or an array",
        )),
    }
}

fn scalar(v: &Value, at: &str) -> Result<Scalar, FieldError> {
    match v {
        Value::String(s) => Ok(Scalar::Text(s.clone())),
        Value::Number(n) => n
            .as_f64()
            .filter(|f| f.is_finite())
            .map(Scalar::Number)
            .ok_or_else(|| FieldError::new(at, "the number is out of range")),
        Value::Bool(b) => Ok(Scalar::Bool(*b)),
        _ => Err(FieldError::new(at, "a filter value is a string, a number or a boolean")),
    }
}

fn operand(op: Op, field: &Field, v: Option<&Value>, at: &str) -> Result<Operand, FieldError> {
    let numeric_only = field.kind() == FieldKind::Number;
    let check = |s: &Scalar| -> Result<(), FieldError> {
        if numeric_only && !matches!(s, Scalar::Number(_)) {
            return Err(FieldError::new(at, format!("{field} is a number; compare it with a number")));
        }
        if field.kind() == FieldKind::Text && !matches!(s, Scalar::Text(_)) {
            return Err(FieldError::new(at, format!("{field} is text; compare it with a string")));
        }
        Ok(())
    };
    match op {
        Op::IsSet | Op::IsNotSet => match v {
            None | Some(Value::Null) | Some(Value::Bool(true)) => Ok(Operand::None),
            Some(_) => Err(FieldError::new(at, "is_set and is_not_set take no value")),
        },
        Op::In | Op::NotIn => {
            let Some(Value::Array(items)) = v else {
                return Err(FieldError::new(at, "in and not_in take an array of values"));
            };
            if items.is_empty() || items.len() > MAX_IN_VALUES {
                return Err(FieldError::new(at, format!("in and not_in take 1 to {MAX_IN_VALUES} values")));
            }
            let values = items
                .iter()
                .enumerate()
                .map(|(i, x)| scalar(x, &format!("{at}[{i}]")).and_then(|s| check(&s).map(|_| s)))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Operand::Many(values))
        }
        _ => {
            let Some(v) = v.filter(|v| !v.is_null()) else {
                return Err(FieldError::new(at, "this operator needs a value"));
            };
            let s = scalar(v, at)?;
            check(&s)?;
            if op == Op::Contains && !matches!(s, Scalar::Text(_)) {
                return Err(FieldError::new(at, "contains takes a string"));
            }
            Ok(Operand::One(s))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_groups_and_refuses_bad_ones() {
        let f = parse_filter(
            &json!({"or": [{"field": "plan", "op": "in", "value": ["pro", "team"]}, {"field": "properties.amount", "op": ">", "value": 10}]}),
            Source::Events,
            "filters",
        )
        .unwrap();
        assert!(matches!(f, Filter::Any(ref v) if v.len() == 2));
        let bad =
            parse_filter(&json!({"field": "plan", "op": "like", "value": "x"}), Source::Events, "filters").unwrap_err();
        assert_eq!(bad.field, "filters.op");
        assert!(bad.message.contains("not_in"), "{}", bad.message);
        let bad =
            parse_filter(&json!({"field": "value", "op": "eq", "value": "x"}), Source::MetricRecords, "f").unwrap_err();
        assert_eq!(bad.field, "f.value");
        let mut deep = json!({"field": "a", "value": 1});
        for _ in 0..10 {
            deep = json!({"and": [deep]});
        }
        assert!(parse_filter(&deep, Source::Events, "f").is_err());
    }
}
