//! The query model: every analysis is a [`Query`], a typed value built from parsed
//! input and handed to the compiler. Four shapes so far: an aggregate (one number per
//! series), a trend (a number per time bucket), a breakdown (a number per value of some
//! fields, optionally per bucket too) and a comparison (this period against the one before).

use super::field::{Field, Source};
use super::filter::{Filter, parse_filter};
use super::metric::{Aggregation, Catalog, Expr, Formula, Measure, records_of, resolve, resolve_formula};
use super::time::{DateRange, Granularity, parse_range, parse_tz};
use crate::code::FieldError;
use chrono_tz::Tz;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Aggregate,
    Trend,
    Breakdown,
    Compare,
}

impl Kind {
    pub const NAMES: &'static str = "aggregate, trend, breakdown, compare";

    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "aggregate" | "total" | "number" => Kind::Aggregate,
            "trend" | "trends" | "timeseries" | "time_series" => Kind::Trend,
            "breakdown" | "group_by" => Kind::Breakdown,
            "compare" | "comparison" | "period_comparison" => Kind::Compare,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Aggregate => "aggregate",
            Kind::Trend => "trend",
            Kind::Breakdown => "breakdown",
            Kind::Compare => "compare",
        }
    }
}

/// One computed number per row of the answer, under its label.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    pub expr: Expr,
}

/// A field to group by, read on each source the query touches.
#[derive(Debug, Clone, PartialEq)]
pub struct Dimension {
    /// The name the client wrote; the answer's key.
    pub label: String,
    pub on_events: Option<Field>,
    pub on_records: Option<Field>,
}

impl Dimension {
    pub fn field(&self, source: Source) -> Option<&Field> {
        match source {
            Source::Events => self.on_events.as_ref(),
            Source::MetricRecords => self.on_records.as_ref(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub kind: Kind,
    pub series: Vec<Series>,
    /// Breakdown fields (only for breakdowns).
    pub by: Vec<Dimension>,
    /// Time buckets: always for a trend, optional for a breakdown.
    pub granularity: Option<Granularity>,
    pub range: DateRange,
    pub tz: Tz,
    /// Most rows of the answer.
    pub limit: usize,
}

pub const MAX_SERIES: usize = 10;
pub const MAX_DIMENSIONS: usize = 3;
/// The most rows any query answers (the row cap).
pub const MAX_LIMIT: usize = 1000;
pub const DEFAULT_LIMIT: usize = 100;

impl Query {
    /// The sources the query reads.
    pub fn sources(&self) -> Vec<Source> {
        sources_of(self.series.iter().map(|s| &s.expr))
    }
}

/// The sources some computations read, each once, in order of first use.
pub fn sources_of<'a>(exprs: impl IntoIterator<Item = &'a Expr>) -> Vec<Source> {
    let mut out = Vec::new();
    for e in exprs {
        for m in e.measures() {
            if !out.contains(&m.source) {
                out.push(m.source);
            }
        }
    }
    out
}

/// Reads a series: a metric name, or an object with `metric`, `formula`, or an inline
/// measure (`event`/`source`, `aggregation`, `field`), each with optional `filters`,
/// `label` and (for a named metric) an `aggregation` that replaces the definition's.
pub fn parse_series(v: &Value, catalog: &dyn Catalog, at: &str) -> Result<Series, FieldError> {
    let err = |field: &str, m: String| FieldError::new(format!("{at}{field}"), m);
    match v {
        Value::String(name) => {
            let expr = resolve(name.trim(), catalog).map_err(|e| e.at(at.to_owned()))?;
            Ok(Series { label: name.trim().to_owned(), expr })
        }
        Value::Object(obj) => {
            let text = |k: &str| -> Result<Option<String>, FieldError> {
                match obj.get(k) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
                    Some(_) => Err(err(&format!(".{k}"), format!("{k} must be a string"))),
                }
            };
            let aggregation = match text("aggregation")?.or(text("math")?) {
                None => None,
                Some(a) => Some(Aggregation::parse(&a).ok_or_else(|| {
                    err(".aggregation", format!("unknown aggregation '{a}'; use one of {}", Aggregation::NAMES))
                })?),
            };
            let (label, expr) = if let Some(formula) = text("formula")? {
                let f = Formula::parse(&formula).map_err(|m| err(".formula", m))?;
                let expr = resolve_formula(&f, catalog).map_err(|e| e.at(format!("{at}.formula")))?;
                (formula, expr)
            } else if let Some(name) = text("metric")? {
                let expr = resolve(&name, catalog).map_err(|e| e.at(format!("{at}.metric")))?;
                let expr = match aggregation {
                    Some(a) => with_aggregation(expr, a, &name).map_err(|m| err(".aggregation", m))?,
                    None => expr,
                };
                (name, expr)
            } else {
                inline_measure(obj, aggregation, at)?
            };
            let label = text("label")?.or(text("name")?).unwrap_or(label);
            let expr = match obj.get("filters").or(obj.get("properties")).filter(|f| !f.is_null()) {
                Some(f) => and_filters(expr, f, &format!("{at}.filters"))?,
                None => expr,
            };
            Ok(Series { label, expr })
        }
        _ => Err(err("", "a series is a metric name or an object".into())),
    }
}

/// `{"event": "purchase", "aggregation": "sum", "field": "properties.amount"}` or
/// `{"source": "metric_records", "metric_name": "x", "aggregation": "avg"}`.
pub(crate) fn inline_measure(
    obj: &Map<String, Value>,
    agg: Option<Aggregation>,
    at: &str,
) -> Result<(String, Expr), FieldError> {
    let err = |field: &str, m: String| FieldError::new(format!("{at}{field}"), m);
    let source = match obj.get("source").and_then(Value::as_str) {
        None | Some("events") => Source::Events,
        Some("metric_records" | "metrics" | "records") => Source::MetricRecords,
        Some(other) => return Err(err(".source", format!("unknown source '{other}'; use events or metric_records"))),
    };
    let agg = agg.unwrap_or(Aggregation::Count);
    if source == Source::MetricRecords {
        let Some(Value::String(name)) = obj.get("metric_name") else {
            return Err(err(".metric_name", "a series over metric_records needs metric_name".into()));
        };
        if agg == Aggregation::Users {
            return Err(err(
                ".aggregation",
                "metric records have no users; use count or an aggregation of value".into(),
            ));
        }
        match obj.get("field") {
            None | Some(Value::Null) => {}
            Some(Value::String(f)) if f == "value" => {}
            Some(_) => return Err(err(".field", "a series over metric_records aggregates value".into())),
        }
        let label = format!("{}({name})", agg.name());
        return Ok((label, Expr::Measure(records_of(name, agg))));
    }
    let field = match obj.get("field") {
        None | Some(Value::Null) => None,
        Some(Value::String(f)) => Some(Field::parse(source, f).map_err(|m| err(".field", m))?),
        Some(_) => return Err(err(".field", "field must be a string".into())),
    };
    let event = match obj.get("event").or(obj.get("event_name")) {
        None | Some(Value::Null) => None,
        Some(Value::String(e)) if !e.is_empty() => Some(e.clone()),
        Some(_) => return Err(err(".event", "event must be a non-empty string".into())),
    };
    let filter = event.as_ref().map(|e| Filter::eq(Field::EventName, e.clone()));
    let m = Measure::new(source, agg, field.clone(), filter).map_err(|m| err(".aggregation", m))?;
    let label = match (&event, &field) {
        (Some(e), Some(f)) if agg.needs_field() => format!("{}({f}) of {e}", agg.name()),
        (Some(e), _) => format!("{}({e})", agg.name()),
        (None, Some(f)) if agg.needs_field() => format!("{}({f})", agg.name()),
        (None, _) => agg.name(),
    };
    Ok((label, Expr::Measure(m)))
}

/// Replaces the aggregation of a named measure (seed 001's `aggregation`): `revenue` with
/// `avg` is the average purchase. A count (of rows, users or distinct values) keeps its
/// meaning under `count` and `sum` (a sum of counts), so `customers` with `sum` is still
/// the distinct customers.
pub fn with_aggregation(expr: Expr, agg: Aggregation, name: &str) -> Result<Expr, String> {
    let Expr::Measure(m) = expr else {
        // A formula's result is already a number per bucket; its aggregation is its own.
        return Ok(expr);
    };
    let counts = matches!(m.agg, Aggregation::Count | Aggregation::Users | Aggregation::CountDistinct);
    Ok(Expr::Measure(match (counts, agg) {
        (true, Aggregation::Count | Aggregation::Sum) => m,
        (_, Aggregation::Users) if m.source == Source::Events => Measure { agg, field: None, ..m },
        (false, Aggregation::Count) => Measure { agg, field: None, ..m },
        (false, a) if a.needs_field() => Measure { agg, ..m },
        (_, other) => {
            return Err(format!(
                "'{name}' counts rows, users or distinct values; aggregation '{}' needs a metric over a numeric field (use count or sum)",
                other.name()
            ));
        }
    }))
}

/// ANDs a filter, parsed for each measure's source, into every measure.
pub fn and_filters(expr: Expr, filters: &Value, at: &str) -> Result<Expr, FieldError> {
    let mut failure = None;
    let out = expr.map_measures(&mut |m| match parse_filter(filters, m.source, at) {
        Ok(f) => Ok(m.and(f)),
        Err(e) => {
            let text = e.message.clone();
            failure = Some(e);
            Err(text)
        }
    });
    match (out, failure) {
        (Ok(e), _) => Ok(e),
        (Err(_), Some(f)) => Err(f),
        (Err(m), None) => Err(FieldError::new(at, m)),
    }
}

/// Reads a breakdown field for every source the series read.
pub fn parse_dimension(name: &str, sources: &[Source], at: &str) -> Result<Dimension, FieldError> {
    let mut d = Dimension { label: name.trim().to_owned(), on_events: None, on_records: None };
    for s in sources {
        let f = Field::parse(*s, name).map_err(|m| FieldError::new(at, m))?;
        match s {
            Source::Events => d.on_events = Some(f),
            Source::MetricRecords => d.on_records = Some(f),
        }
    }
    Ok(d)
}

/// Reads `limit`: 1 to [`MAX_LIMIT`].
pub fn parse_limit(v: Option<&Value>, at: &str) -> Result<usize, FieldError> {
    match v {
        None | Some(Value::Null) => Ok(DEFAULT_LIMIT),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(0) | None => Err(FieldError::new(at, "limit is a whole number of at least 1")),
            Some(n) if n as usize > MAX_LIMIT => {
                Err(FieldError::new(at, format!("limit is at most {MAX_LIMIT}; {n} is over it")))
            }
            Some(n) => Ok(n as usize),
        },
        Some(_) => Err(FieldError::new(at, "limit is a whole number")),
    }
}

/// Reads a query value of the insights endpoint. Every problem is reported at once.
pub fn parse_query(v: &Value, catalog: &dyn Catalog) -> Result<Query, Vec<FieldError>> {
    let Value::Object(obj) = v else {
        return Err(vec![FieldError::new("body", "a query is a JSON object")]);
    };
    let mut errors = Vec::new();

    let granularity = match obj.get("granularity").or(obj.get("interval")) {
        None | Some(Value::Null) => None,
        Some(Value::String(g)) => keep(
            &mut errors,
            Granularity::parse(g).ok_or_else(|| {
                FieldError::new("granularity", format!("unknown granularity '{g}'; use one of {}", Granularity::NAMES))
            }),
        ),
        Some(_) => keep(&mut errors, Err(FieldError::new("granularity", "granularity is a string"))),
    };
    let kind = match obj.get("kind").or(obj.get("type")) {
        Some(Value::String(k)) => keep(
            &mut errors,
            Kind::parse(k)
                .ok_or_else(|| FieldError::new("kind", format!("unknown kind '{k}'; use one of {}", Kind::NAMES))),
        ),
        None | Some(Value::Null) => Some(if obj.get("breakdown").is_some_and(|b| !b.is_null()) {
            Kind::Breakdown
        } else if granularity.is_some() {
            Kind::Trend
        } else {
            Kind::Aggregate
        }),
        Some(_) => keep(&mut errors, Err(FieldError::new("kind", "kind is a string"))),
    };
    let raw_series: Vec<(String, &Value)> = match (obj.get("series"), obj.get("metric")) {
        (Some(Value::Array(items)), _) => items.iter().enumerate().map(|(i, s)| (format!("series[{i}]"), s)).collect(),
        (Some(other), _) if !other.is_null() => vec![("series".into(), other)],
        (_, Some(m)) if !m.is_null() => vec![("metric".into(), m)],
        _ => Vec::new(),
    };
    if raw_series.is_empty() {
        keep::<()>(&mut errors, Err(FieldError::new("series", "a query needs at least one series (or a metric)")));
    }
    if raw_series.len() > MAX_SERIES {
        keep::<()>(&mut errors, Err(FieldError::new("series", format!("a query has at most {MAX_SERIES} series"))));
    }
    let mut series = Vec::new();
    for (at, s) in raw_series.iter().take(MAX_SERIES) {
        if let Some(mut s) = keep(&mut errors, parse_series(s, catalog, at)) {
            if let Some(f) = obj.get("filters").filter(|f| !f.is_null()) {
                s.expr = match keep(&mut errors, and_filters(s.expr, f, "filters")) {
                    Some(e) => e,
                    None => continue,
                };
            }
            series.push(s);
        }
    }
    let sources = sources_of(series.iter().map(|s| &s.expr));
    let by_names: Vec<(String, &Value)> = match obj.get("breakdown").or(obj.get("dimensions")) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.iter().enumerate().map(|(i, v)| (format!("breakdown[{i}]"), v)).collect(),
        Some(other) => vec![("breakdown".into(), other)],
    };
    if by_names.len() > MAX_DIMENSIONS {
        keep::<()>(
            &mut errors,
            Err(FieldError::new("breakdown", format!("a breakdown has at most {MAX_DIMENSIONS} fields"))),
        );
    }
    let mut by = Vec::new();
    for (at, v) in by_names.iter().take(MAX_DIMENSIONS) {
        match v {
            Value::String(name) => {
                if let Some(d) = keep(&mut errors, parse_dimension(name, &sources, at)) {
                    by.push(d);
                }
            }
            _ => {
                keep::<()>(&mut errors, Err(FieldError::new(at.clone(), "a breakdown field is a string")));
            }
        }
    }
    let range = match obj.get("date_range").or(obj.get("range")) {
        None | Some(Value::Null) => Some(DateRange::default()),
        Some(r) => keep(&mut errors, parse_range(r, "date_range")),
    };
    let tz = match obj.get("timezone").or(obj.get("tz")) {
        None | Some(Value::Null) => Some(Tz::UTC),
        Some(Value::String(s)) => keep(&mut errors, parse_tz(s, "timezone")),
        Some(_) => keep(&mut errors, Err(FieldError::new("timezone", "timezone is a string"))),
    };
    let limit = keep(&mut errors, parse_limit(obj.get("limit"), "limit"));
    if let Some(k) = kind {
        match k {
            Kind::Breakdown if by_names.is_empty() => {
                keep::<()>(&mut errors, Err(FieldError::new("breakdown", "a breakdown needs at least one field")));
            }
            Kind::Aggregate | Kind::Compare if !by_names.is_empty() => {
                keep::<()>(
                    &mut errors,
                    Err(FieldError::new("breakdown", format!("a {} takes no breakdown; use kind breakdown", k.name()))),
                );
            }
            _ => {}
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let kind = kind.expect("no errors");
    let granularity = match kind {
        Kind::Trend => Some(granularity.unwrap_or(Granularity::Day)),
        Kind::Breakdown => granularity,
        Kind::Aggregate | Kind::Compare => None,
    };
    Ok(Query {
        kind,
        series,
        by,
        granularity,
        range: range.expect("no errors"),
        tz: tz.expect("no errors"),
        limit: limit.expect("no errors"),
    })
}

/// Keeps a good value; records a problem and gives `None`.
fn keep<T>(errors: &mut Vec<FieldError>, r: Result<T, FieldError>) -> Option<T> {
    r.map_err(|e| errors.push(e)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::metric::NoCatalog;
    use serde_json::json;

    #[test]
    fn a_trend_with_two_series_and_filters() {
        let q = parse_query(
            &json!({
                "kind": "trend", "granularity": "week", "timezone": "Europe/Paris", "date_range": "-30d",
                "series": ["events", {"event": "purchase", "aggregation": "sum", "field": "properties.amount", "label": "spend"},
                           {"formula": "revenue / purchases"}],
                "filters": [{"field": "properties.plan", "op": "eq", "value": "pro"}]
            }),
            &NoCatalog,
        )
        .unwrap();
        assert_eq!(q.kind, Kind::Trend);
        assert_eq!(q.granularity, Some(Granularity::Week));
        assert_eq!(q.series.len(), 3);
        assert_eq!(q.series[1].label, "spend");
        // The global filter reached every measure.
        for s in &q.series {
            for m in s.expr.measures() {
                assert!(m.filter.as_ref().unwrap().fields().iter().any(|f| f.label() == "properties.plan"), "{m:?}");
            }
        }
    }

    #[test]
    fn every_problem_is_reported() {
        let errs = parse_query(
            &json!({"kind": "breakdown", "series": ["nope"], "granularity": "fortnight", "limit": 5000, "timezone": "Mars/X"}),
            &NoCatalog,
        )
        .unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        for f in ["series[0]", "granularity", "limit", "timezone", "breakdown"] {
            assert!(fields.contains(&f), "{f} missing from {fields:?}");
        }
    }

    #[test]
    fn aggregation_override() {
        let rev = resolve("revenue", &NoCatalog).unwrap();
        let avg = with_aggregation(rev, Aggregation::Avg, "revenue").unwrap();
        assert!(matches!(avg, Expr::Measure(Measure { agg: Aggregation::Avg, .. })));
        let events = resolve("events", &NoCatalog).unwrap();
        assert!(with_aggregation(events.clone(), Aggregation::Sum, "events").is_ok());
        assert!(with_aggregation(events, Aggregation::Avg, "events").is_err());
        // A distinct count stays one under seed 001's "sum".
        let customers = resolve("customers", &NoCatalog).unwrap();
        assert_eq!(with_aggregation(customers.clone(), Aggregation::Sum, "customers").unwrap(), customers);
    }

    /// The canned pages of the seeds are insights (`crate::engine` of the server says
    /// so): top-N lists, per-entity lists and daily series each parse and compile.
    #[test]
    fn canned_pages_are_insights() {
        use crate::query::compile::{Dialect, compile};
        let pages = [
            // Top 10 pages by views.
            json!({"kind": "breakdown", "series": [{"event": "page_view", "aggregation": "count", "label": "views"}],
                   "breakdown": ["properties.page"], "limit": 10, "date_range": "-30d"}),
            // The most frequent events.
            json!({"kind": "breakdown", "series": ["events"], "breakdown": ["event_name"], "limit": 20}),
            // Per service and metric type: the average of a metric's records.
            json!({"kind": "breakdown", "series": [{"source": "metric_records", "metric_name": "latency", "aggregation": "avg"}],
                   "breakdown": ["service_name", "metric_type"], "date_range": "-7d"}),
            // Daily series: active users and revenue, in a time zone.
            json!({"kind": "trend", "series": ["users", "revenue"], "granularity": "day", "date_range": "-30d",
                   "timezone": "America/New_York"}),
        ];
        let tenant = crate::model::TenantId::parse("t").unwrap();
        for page in pages {
            let q = parse_query(&page, &NoCatalog).unwrap_or_else(|e| panic!("{page}: {e:?}"));
            let (w, _) = q.range.resolve(q.tz, chrono::Utc::now()).unwrap();
            let c = compile(&q, &tenant, w, None, MAX_LIMIT, Dialect::DuckDb).unwrap_or_else(|e| panic!("{page}: {e}"));
            assert_eq!(c.sql.matches('?').count(), c.params.len(), "{page}");
        }
    }
}
