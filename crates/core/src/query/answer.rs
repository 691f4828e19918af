//! Shaping the rows a compiled query returns into answers: buckets filled in the query's
//! time zone, numbers as JSON writes them, comparisons with their change.

use super::compile::Layout;
use super::insight::{Kind, Query};
use super::time::{Window, buckets};
use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

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

/// The answer of the insights endpoint.
pub fn shape(q: &Query, layout: Layout, rows: &[Row], window: Window, previous: Option<Window>) -> Map<String, Value> {
    let empty = |i: usize| if q.series[i].expr.is_additive() { Some(0.0) } else { None };
    let mut out = Map::new();
    out.insert("kind".into(), json!(q.kind.name()));
    out.insert("timezone".into(), json!(q.tz.name()));
    out.insert("date_range".into(), json!({"start": rfc3339(window.start), "end": rfc3339(window.end)}));
    match q.kind {
        Kind::Aggregate => {
            let row = rows.first();
            let series: Vec<Value> = q
                .series
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let v = row.and_then(|r| r.values[i]).or_else(|| empty(i));
                    json!({"label": s.label, "value": number(v)})
                })
                .collect();
            out.insert("series".into(), Value::Array(series));
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
                    let data: Vec<Value> = all
                        .iter()
                        .map(|b| {
                            let v = by_bucket.get(b).and_then(|r| r.values[i]).or_else(|| empty(i));
                            json!({"date": g.label(*b), "value": number(v)})
                        })
                        .collect();
                    let mut line = json!({"label": s.label, "data": data});
                    if !q.by.is_empty() {
                        let values: Map<String, Value> =
                            q.by.iter()
                                .zip(dims)
                                .map(|(d, v)| (d.label.clone(), v.clone().map(Value::String).unwrap_or(Value::Null)))
                                .collect();
                        line["breakdown"] = Value::Object(values);
                    }
                    series.push(line);
                }
            }
            out.insert("granularity".into(), json!(granularity_name(g)));
            if !q.by.is_empty() {
                out.insert("breakdown".into(), json!(q.by.iter().map(|d| d.label.clone()).collect::<Vec<_>>()));
            }
            out.insert("series".into(), Value::Array(series));
        }
        Kind::Breakdown => {
            out.insert("breakdown".into(), json!(q.by.iter().map(|d| d.label.clone()).collect::<Vec<_>>()));
            if let Some(g) = q.granularity {
                out.insert("granularity".into(), json!(granularity_name(g)));
            }
            out.insert("rows".into(), objects(q, layout, rows, "date").into_iter().map(Value::Object).collect());
        }
        Kind::Compare => {
            let prev = previous.expect("a comparison has a previous period");
            let find = |cur: bool| rows.iter().find(|r| r.current == Some(cur));
            let (c, p) = (find(true), find(false));
            let series: Vec<Value> = q
                .series
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let cv = c.and_then(|r| r.values[i]).or_else(|| empty(i));
                    let pv = p.and_then(|r| r.values[i]).or_else(|| empty(i));
                    json!({"label": s.label, "current": number(cv), "previous": number(pv),
                           "change_percent": change_percent(cv, pv)})
                })
                .collect();
            out.insert("previous_range".into(), json!({"start": rfc3339(prev.start), "end": rfc3339(prev.end)}));
            out.insert("series".into(), Value::Array(series));
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
