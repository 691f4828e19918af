//! Shaping the rows a compiled query returns into answers: buckets filled in the query's
//! time zone, numbers as JSON writes them, comparisons with their change.

use super::compile::Layout;
use super::insight::{Kind, Query};
use super::time::{Window, buckets};
use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};

/// A breakdown's values for one line (`None`: the value is missing).
type Dims = Vec<Option<String>>;

/// One row as the engine returned it, read by its [`Layout`].
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The bucket's local wall time, as if it were UTC.
    pub bucket: Option<NaiveDateTime>,
    pub dims: Vec<Option<String>>,
    /// For comparisons: whether the row is of the current period.
    pub current: Option<bool>,
    pub values: Vec<Option<f64>>,
}

/// A number as an answer shows it: whole numbers without a fraction, no NaN or infinity.
pub fn number(v: Option<f64>) -> Value {
    match v {
        Some(x) if x.is_finite() => {
            if x.fract() == 0.0 && x.abs() < 9.0e15 {
                json!(x as i64)
            } else {
                json!(x)
            }
        }
        _ => Value::Null,
    }
}

/// `(current - previous) / previous` in percent, to two decimals; `None` when previous is
/// 0 or either has no value (an average over no rows), so never a division by zero.
pub fn change_percent(current: Option<f64>, previous: Option<f64>) -> Option<f64> {
    let (c, p) = (current?, previous?);
    if p == 0.0 {
        return None;
    }
    Some(((c - p) / p.abs() * 100.0 * 100.0).round() / 100.0)
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A period, RFC 3339 in UTC, end exclusive.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Span {
    pub start: String,
    pub end: String,
}

impl Span {
    pub fn of(w: Window) -> Span {
        Span { start: rfc3339(w.start), end: rfc3339(w.end) }
    }
}

/// The answer of the insights endpoint: `series` for an aggregate (a `value` each), a
/// trend (`data` points each, and its `breakdown` values) or a comparison (`current`,
/// `previous`, `change_percent`); `rows` for a breakdown.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct InsightOut {
    /// `aggregate`, `trend`, `breakdown` or `compare`.
    pub kind: String,
    pub timezone: String,
    pub date_range: Span,
    /// A comparison's earlier period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_range: Option<Span>,
    /// `hour`, `day`, `week` or `month`, when bucketed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub granularity: Option<String>,
    /// The labels of the breakdown fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breakdown: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series: Option<Vec<SeriesOut>>,
    /// A breakdown's rows: the bucket under `date`, each breakdown value and each series
    /// under its label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<Vec<Map<String, Value>>>,
}

/// One series of an insight, by kind.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum SeriesOut {
    /// An aggregate's number.
    Value {
        label: String,
        #[serde(serialize_with = "as_number")]
        #[schema(value_type = Option<f64>, required = true)]
        value: Option<f64>,
    },
    /// A trend's line, one per series and breakdown value.
    Line {
        label: String,
        data: Vec<Point>,
        /// The breakdown's values of this line, by field label.
        #[serde(skip_serializing_if = "Option::is_none")]
        breakdown: Option<BTreeMap<String, Option<String>>>,
    },
    /// A comparison's two numbers.
    Change {
        label: String,
        #[serde(serialize_with = "as_number")]
        #[schema(value_type = Option<f64>, required = true)]
        current: Option<f64>,
        #[serde(serialize_with = "as_number")]
        #[schema(value_type = Option<f64>, required = true)]
        previous: Option<f64>,
        /// `null` when the previous value is 0 or missing.
        #[schema(required = true)]
        change_percent: Option<f64>,
    },
}

/// A bucket of a trend line.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Point {
    /// The bucket's local date (`2026-03-01`) or hour (`2026-03-01T14:00:00`).
    pub date: String,
    #[serde(serialize_with = "as_number")]
    #[schema(value_type = Option<f64>, required = true)]
    pub value: Option<f64>,
}

fn as_number<S: serde::Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    number(*v).serialize(s)
}

/// The answer of the insights endpoint.
pub fn shape(q: &Query, layout: Layout, rows: &[Row], window: Window, previous: Option<Window>) -> InsightOut {
    let empty = |i: usize| if q.series[i].expr.is_additive() { Some(0.0) } else { None };
    let mut out = InsightOut {
        kind: q.kind.name().to_owned(),
        timezone: q.tz.name().to_owned(),
        date_range: Span::of(window),
        previous_range: None,
        granularity: None,
        breakdown: None,
        series: None,
        rows: None,
    };
    let labels = || q.by.iter().map(|d| d.label.clone()).collect::<Vec<_>>();
    match q.kind {
        Kind::Aggregate => {
            let row = rows.first();
            let series = q
                .series
                .iter()
                .enumerate()
                .map(|(i, s)| SeriesOut::Value {
                    label: s.label.clone(),
                    value: row.and_then(|r| r.values[i]).or_else(|| empty(i)),
                })
                .collect();
            out.series = Some(series);
        }
        Kind::Trend => {
            let g = q.granularity.expect("a trend has a granularity");
            let all = buckets(window, g, q.tz).unwrap_or_default();
            // One line per breakdown value (one in all without a breakdown), the `limit`
            // with the largest total of the first series first.
            let mut groups: Vec<(Dims, HashMap<NaiveDateTime, &Row>)> = Vec::new();
            for r in rows {
                let Some(b) = r.bucket else { continue };
                match groups.iter_mut().find(|(d, _)| *d == r.dims) {
                    Some((_, m)) => {
                        m.insert(b, r);
                    }
                    None => groups.push((r.dims.clone(), HashMap::from([(b, r)]))),
                }
            }
            if groups.is_empty() && q.by.is_empty() {
                groups.push((Vec::new(), HashMap::new()));
            }
            let total = |m: &HashMap<NaiveDateTime, &Row>| {
                m.values().filter_map(|r| r.values.first().copied().flatten()).sum::<f64>()
            };
            groups.sort_by(|a, b| {
                total(&b.1).partial_cmp(&total(&a.1)).unwrap_or(std::cmp::Ordering::Equal).then_with(|| a.0.cmp(&b.0))
            });
            groups.truncate(q.limit.max(1));
            let mut series = Vec::new();
            for (dims, by_bucket) in &groups {
                for (i, s) in q.series.iter().enumerate() {
                    let data = all
                        .iter()
                        .map(|b| Point {
                            date: g.label(*b),
                            value: by_bucket.get(b).and_then(|r| r.values[i]).or_else(|| empty(i)),
                        })
                        .collect();
                    let breakdown = (!q.by.is_empty())
                        .then(|| q.by.iter().zip(dims).map(|(d, v)| (d.label.clone(), v.clone())).collect());
                    series.push(SeriesOut::Line { label: s.label.clone(), data, breakdown });
                }
            }
            out.granularity = Some(granularity_name(g).to_owned());
            if !q.by.is_empty() {
                out.breakdown = Some(labels());
            }
            out.series = Some(series);
        }
        Kind::Breakdown => {
            out.breakdown = Some(labels());
            out.granularity = q.granularity.map(|g| granularity_name(g).to_owned());
            out.rows = Some(objects(q, layout, rows, "date"));
        }
        Kind::Compare => {
            let prev = previous.expect("a comparison has a previous period");
            let find = |cur: bool| rows.iter().find(|r| r.current == Some(cur));
            let (c, p) = (find(true), find(false));
            let series = q
                .series
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let current = c.and_then(|r| r.values[i]).or_else(|| empty(i));
                    let previous = p.and_then(|r| r.values[i]).or_else(|| empty(i));
                    SeriesOut::Change {
                        label: s.label.clone(),
                        current,
                        previous,
                        change_percent: change_percent(current, previous),
                    }
                })
                .collect();
            out.previous_range = Some(Span::of(prev));
            out.series = Some(series);
        }
    }
    out
}

fn granularity_name(g: super::time::Granularity) -> &'static str {
    use super::time::Granularity::*;
    match g {
        Hour => "hour",
        Day => "day",
        Week => "week",
        Month => "month",
    }
}

/// Rows as objects: the bucket under `bucket_key`, each breakdown value under its label,
/// each series under its label (seed 001's `{"date", "event_type", "revenue"}`).
pub fn objects(q: &Query, layout: Layout, rows: &[Row], bucket_key: &str) -> Vec<Map<String, Value>> {
    rows.iter()
        .map(|r| {
            let mut o = Map::new();
            if let (true, Some(b), Some(g)) = (layout.bucket, r.bucket, q.granularity) {
                o.insert(bucket_key.to_owned(), json!(g.label(b)));
            }
            for (d, v) in q.by.iter().zip(&r.dims) {
                o.insert(d.label.clone(), v.clone().map(Value::String).unwrap_or(Value::Null));
            }
            for (s, v) in q.series.iter().zip(&r.values) {
                o.insert(s.label.clone(), number(*v));
            }
            o
        })
        .collect()
}

/// Reads a bucket column (epoch microseconds of a local wall time).
pub fn bucket_time(micros: i64) -> Option<NaiveDateTime> {
    DateTime::from_timestamp_micros(micros).map(|t| t.naive_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_never_divides_by_zero() {
        assert_eq!(change_percent(Some(50000.0), Some(45000.0)), Some(11.11));
        assert_eq!(change_percent(Some(5.0), Some(0.0)), None);
        assert_eq!(change_percent(Some(5.0), None), None);
        assert_eq!(change_percent(None, Some(4.0)), None);
        assert_eq!(change_percent(Some(0.0), Some(4.0)), Some(-100.0));
        assert_eq!(number(Some(3.0)), json!(3));
        assert_eq!(number(Some(2.5)), json!(2.5));
        assert_eq!(number(Some(f64::NAN)), Value::Null);
    }
}
