//! Retention cohorts (seed 004's `POST /cohorts`): users grouped by the day, week or
//! month (in the query's time zone) they were acquired, and the share of each group
//! active again in each later period.
//!
//! Who counts, exactly (the tests compute the same by hand):
//! - Users are `user_id`s. A user is acquired at their first event ever (or their first
//!   `start_event`), and belongs to the cohort of that period if it lies in the date range.
//! - A cohort member is active in period k (k = 0, 1, ...) when they have an event (or a
//!   `return_event`) in the k-th period from their cohort's. Period 0 of plain acquisition
//!   is therefore 1.0.
//! - `retention` holds the share active in each period (`recurring`); `returning` the
//!   share active in that period or a later one up to `periods` (who came back at all).

use super::answer::Row;
use super::compile::{Compiled, Layout, local_bucket, local_period_index, period_index};
use super::time::{DateRange, Granularity, Window, parse_range, parse_tz, utc_to_local};
use crate::code::FieldError;
use crate::model::TenantId;
use crate::sql::{Dialect, SqlBuilder, SqlValue, Stored};
use chrono::{Duration, Months, NaiveDateTime};
use chrono_tz::Tz;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub struct Retention {
    pub granularity: Granularity,
    pub range: DateRange,
    pub tz: Tz,
    /// Periods after the cohort's own (period 0) to report.
    pub periods: u32,
    pub start_event: Option<String>,
    pub return_event: Option<String>,
}

pub const MAX_PERIODS: u32 = 104;

/// Reads seed 004's body: `{cohort_type, group_by, metric, date_range}` plus `periods`,
/// `start_event`, `return_event`, `timezone`.
pub fn parse_retention(v: &Value) -> Result<Retention, Vec<FieldError>> {
    let Value::Object(obj) = v else {
        return Err(vec![FieldError::new("body", "a cohort query is a JSON object")]);
    };
    let mut errors = Vec::new();
    // A choice given as anything but a string is refused, never read as its default.
    let choice = |k: &'static str, errors: &mut Vec<FieldError>| -> Option<String> {
        match obj.get(k) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                errors.push(FieldError::new(k, format!("{k} is a string")));
                None
            }
        }
    };
    match choice("cohort_type", &mut errors).as_deref() {
        None | Some("acquisition") => {}
        Some(other) => {
            errors.push(FieldError::new("cohort_type", format!("unknown cohort_type '{other}'; use acquisition")))
        }
    }
    match choice("metric", &mut errors).as_deref() {
        None | Some("retention") => {}
        Some(other) => errors
            .push(FieldError::new("metric", format!("cohorts compute retention, not '{other}'; use metric retention"))),
    }
    let group_by =
        choice("group_by", &mut errors).or_else(|| obj.get("period").and_then(Value::as_str).map(str::to_owned));
    let granularity = match group_by.as_deref() {
        None => Granularity::Week,
        Some(g) => match Granularity::parse(g).filter(|g| *g != Granularity::Hour) {
            Some(g) => g,
            None => {
                errors.push(FieldError::new("group_by", format!("unknown group_by '{g}'; use day, week or month")));
                Granularity::Week
            }
        },
    };
    let range = match obj.get("date_range").filter(|r| !r.is_null()) {
        None => DateRange::default(),
        Some(r) => parse_range(r, "date_range").unwrap_or_else(|e| {
            errors.push(e);
            DateRange::default()
        }),
    };
    let tz = match choice("timezone", &mut errors).as_deref() {
        None => Tz::UTC,
        Some(t) => parse_tz(t, "timezone").unwrap_or_else(|e| {
            errors.push(e);
            Tz::UTC
        }),
    };
    let periods = match obj.get("periods") {
        None | Some(Value::Null) => match granularity {
            Granularity::Day => 14,
            Granularity::Week => 8,
            _ => 6,
        },
        Some(p) => match p.as_u64() {
            Some(n) if n <= MAX_PERIODS as u64 => n as u32,
            _ => {
                errors.push(FieldError::new("periods", format!("periods is a whole number from 0 to {MAX_PERIODS}")));
                0
            }
        },
    };
    let event = |k: &str, errors: &mut Vec<FieldError>| match obj.get(k) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 200 => Some(s.clone()),
        Some(_) => {
            errors.push(FieldError::new(k, format!("{k} is an event name")));
            None
        }
    };
    let start_event = event("start_event", &mut errors);
    let return_event = event("return_event", &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Retention { granularity, range, tz, periods, start_event, return_event })
}

fn unit(g: Granularity) -> &'static str {
    match g {
        Granularity::Day => "day",
        Granularity::Week => "week",
        Granularity::Month => "month",
        Granularity::Hour => "hour",
    }
}

/// The end of period `periods` after the range's last cohort: how far activity is read.
pub fn activity_end(r: &Retention, range: Window) -> chrono::DateTime<chrono::Utc> {
    let extra = match r.granularity {
        Granularity::Day => Duration::days(r.periods as i64 + 1),
        Granularity::Week => Duration::weeks(r.periods as i64 + 1),
        _ => Duration::days(31 * (r.periods as i64 + 1)),
    };
    range.end + extra
}

/// Rows: (cohort bucket, [kind, k], users) where kind is `size` (k = 0), `active` (users
/// active in period k) or `last` (users whose last active period is k).
pub fn compile_retention(r: &Retention, tenant: &TenantId, range: Window, d: Dialect) -> Compiled {
    let end = activity_end(r, range);
    // Activity is read from a period before the range: a return in the first cohort's own
    // period may come before the range's first day (a range starting on a Wednesday).
    let lead = match r.granularity {
        Granularity::Day => Duration::days(1),
        Granularity::Week => Duration::weeks(1),
        _ => Duration::days(31),
    };
    let wide = Window { start: range.start - lead, end };
    let micros = |x: chrono::DateTime<chrono::Utc>| SqlValue::TimestampMicros(x.timestamp_micros());
    // One pass over the tenant's events, grouped by user: the first event (acquisition)
    // and the periods the user was active in, as bits (bit i: period `lo + i`).
    // A DISTINCT over (user, period) made ten times the groups and ran 2x slower at 10M.
    let (lo, hi) = (period_index(r.granularity, r.tz, wide.start) - 2, period_index(r.granularity, r.tz, end) + 2);
    let mut b = SqlBuilder::in_dialect(d, "WITH u AS (SELECT user_key, min(ts) FILTER (WHERE ts < ");
    b.bind(micros(range.end));
    if let Some(e) = &r.start_event {
        b.push_bind(" AND event_name = ", SqlValue::Text(e.clone()));
    }
    // Up to 64 periods fit a UBIGINT, whose bit_or runs twice as fast as bitstring_agg.
    let narrow = hi - lo < 64;
    if narrow {
        // The shift is computed for rows the FILTER then drops too: kept in 0..=63.
        b.push(") AS t0, bit_or(CAST(1 AS UBIGINT) << CAST(least(greatest(");
        local_period_index(&mut b, r.granularity, r.tz, wide, "ts");
        b.push_trusted(&format!(" - {lo}, 0), 63) AS UBIGINT))"));
    } else {
        b.push(") AS t0, bitstring_agg(CAST(");
        local_period_index(&mut b, r.granularity, r.tz, wide, "ts");
        b.push_trusted(&format!(" AS INTEGER), {lo}, {hi})"));
    }
    b.push_bind(" FILTER (WHERE ts >= ", micros(range.start - lead));
    if let Some(e) = &r.return_event {
        b.push_bind(" AND event_name = ", SqlValue::Text(e.clone()));
    }
    b.push(") AS m");
    b.from_tenant(Stored::Events, tenant, "t").push(" WHERE user_key IS NOT NULL");
    b.push_bind(" AND ts < ", micros(end.max(range.end)));
    b.push(" GROUP BY user_key), cohort AS (SELECT user_key, m, ");
    local_bucket(&mut b, r.granularity, r.tz, wide, "t0");
    b.push(" AS c, ");
    local_period_index(&mut b, r.granularity, r.tz, wide, "t0");
    b.push_bind(" AS ci FROM u WHERE t0 >= ", micros(range.start));
    b.push("), k AS (SELECT user_key, c, p.k FROM cohort");
    b.push_bind(" CROSS JOIN range(0, ", SqlValue::Int(r.periods as i64 + 1));
    let bit = if narrow {
        format!("(m >> CAST(ci + p.k - {lo} AS UBIGINT)) & CAST(1 AS UBIGINT) = 1")
    } else {
        format!("get_bit(m, CAST(ci + p.k - {lo} AS INTEGER)) = 1")
    };
    b.push_trusted(&format!(") AS p(k) WHERE CASE WHEN m IS NOT NULL AND ci + p.k <= {hi} THEN {bit} ELSE false END)"));
    b.push(" SELECT ").epoch_us("c").push(", 'size', '0', CAST(count(*) AS DOUBLE) FROM cohort GROUP BY 1");
    b.push(" UNION ALL SELECT ")
        .epoch_us("c")
        .push(", 'active', CAST(k AS VARCHAR), CAST(count(*) AS DOUBLE) FROM k WHERE k <= ");
    b.bind(SqlValue::Int(r.periods as i64)).push(" GROUP BY 1, 3");
    b.push(" UNION ALL SELECT ").epoch_us("c");
    b.push(
        ", 'last', CAST(lastk AS VARCHAR), CAST(count(*) AS DOUBLE) FROM (SELECT c, max(k) AS lastk FROM k WHERE k <= ",
    );
    b.bind(SqlValue::Int(r.periods as i64));
    b.push(" GROUP BY user_key, c) GROUP BY 1, 3");
    let (sql, params) = b.into_parts();
    Compiled { sql, params, layout: Layout { bucket: true, dims: 2, period: false, series: 1 }, max_rows: usize::MAX }
}

/// Seed 004's cohorts answer.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RetentionAnswer {
    pub cohorts: Vec<CohortOut>,
    /// `day`, `week` or `month`: the unit of the periods' names (`week_0`, `week_1`, ...).
    pub group_by: String,
    pub periods: u32,
}

/// One cohort: its users and, per period that has begun, the share of them active in it
/// (`retention`), active in it or later (`returning`), and their number (`counts`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CohortOut {
    /// The cohort's first day (or hour), in the query's time zone.
    pub cohort_date: String,
    pub users: u64,
    #[schema(value_type = std::collections::HashMap<String, f64>)]
    pub retention: ByPeriod<f64>,
    #[schema(value_type = std::collections::HashMap<String, f64>)]
    pub returning: ByPeriod<f64>,
    #[schema(value_type = std::collections::HashMap<String, u64>)]
    pub counts: ByPeriod<u64>,
}

/// Figures by period name, in period order (`week_0`, `week_1`, ..., `week_10`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ByPeriod<T>(pub Vec<(String, T)>);

impl<T: Serialize> Serialize for ByPeriod<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// Seed 004's answer: `{"cohorts": [{cohort_date, users, retention: {week_0: 1.0, ...},
/// returning: {...}, counts: {...}}]}`. Periods that have not ended by `now` are left out.
pub fn shape_retention(r: &Retention, rows: &[Row], now: chrono::DateTime<chrono::Utc>) -> RetentionAnswer {
    #[derive(Default)]
    struct Cohort {
        size: f64,
        active: BTreeMap<u32, f64>,
        last: BTreeMap<u32, f64>,
    }
    let mut cohorts: BTreeMap<NaiveDateTime, Cohort> = BTreeMap::new();
    for row in rows {
        let (Some(c), Some(kind), Some(k)) = (row.bucket, row.dims[0].as_deref(), row.dims[1].as_deref()) else {
            continue;
        };
        let k: u32 = k.parse().unwrap_or(0);
        let n = row.values[0].unwrap_or(0.0);
        let entry = cohorts.entry(c).or_default();
        match kind {
            "size" => entry.size += n,
            "active" => *entry.active.entry(k).or_default() += n,
            _ => *entry.last.entry(k).or_default() += n,
        }
    }
    let today = utc_to_local(r.tz, now);
    let name = unit(r.granularity);
    let list = cohorts
        .iter()
        .map(|(c, co)| {
            let (mut retention, mut returning, mut counts) =
                (ByPeriod::default(), ByPeriod::default(), ByPeriod::default());
            for k in 0..=r.periods {
                // A period that has not begun yet has no figure.
                let start = match r.granularity {
                    Granularity::Day => *c + Duration::days(k as i64),
                    Granularity::Week => *c + Duration::weeks(k as i64),
                    _ => c.checked_add_months(Months::new(k)).unwrap_or(*c),
                };
                if start > today {
                    break;
                }
                let active = co.active.get(&k).copied().unwrap_or(0.0);
                let later = co.last.range(k..).fold(0.0, |a, (_, n)| a + n);
                let share = |n: f64| if co.size > 0.0 { (n / co.size * 10000.0).round() / 10000.0 } else { 0.0 };
                let period = format!("{name}_{k}");
                retention.0.push((period.clone(), share(active)));
                returning.0.push((period.clone(), share(later)));
                counts.0.push((period, active as u64));
            }
            CohortOut { cohort_date: r.granularity.label(*c), users: co.size as u64, retention, returning, counts }
        })
        .collect();
    RetentionAnswer { cohorts: list, group_by: name.to_owned(), periods: r.periods }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn seed_004_body_parses_and_compiles() {
        let r = parse_retention(&json!({"cohort_type": "acquisition", "group_by": "week", "metric": "retention",
                                        "date_range": {"start": "2024-01-01", "end": "2024-01-31"}}))
        .unwrap();
        assert_eq!(r.granularity, Granularity::Week);
        let (w, _) = r.range.resolve(r.tz, chrono::Utc::now()).unwrap();
        let c = compile_retention(&r, &TenantId::parse("t").unwrap(), w, Dialect::DuckDb);
        assert_eq!(c.sql.matches('?').count(), c.params.len());
        // One pass over the tenant's events; a few weeks of periods fit an integer's bits.
        assert_eq!(c.sql.matches("tenant_id = ?").count(), 1);
        assert!(c.sql.contains("bit_or(") && !c.sql.contains("bitstring_agg("), "{}", c.sql);
        let long = Retention { granularity: Granularity::Day, periods: 104, ..r };
        let c = compile_retention(&long, &TenantId::parse("t").unwrap(), w, Dialect::DuckDb);
        assert!(c.sql.contains("bitstring_agg("), "{}", c.sql);
        let errs =
            parse_retention(&json!({"cohort_type": "behavioral", "group_by": "hour", "periods": 500})).unwrap_err();
        assert_eq!(errs.len(), 3);
    }
}
