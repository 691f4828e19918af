//! The compiler: a [`Query`] and its resolved time window become one SQL statement and
//! its bound values. It is the only place SQL of analyses is written, so these hold for
//! every analysis:
//! - the tenant filter comes first in every scan, added here, never by a caller;
//! - identifiers come from enums (columns, functions) or from indexes (`l0`, `d1`);
//! - every value, property path included, is a bound parameter.
//!
//! Shape of the statement: one grouped scan per source the query reads (events, metric
//! records), computing each measure as `agg(x) FILTER (WHERE its filter)`; when both
//! sources are read, the scans are joined on the group columns; an outer SELECT computes
//! each series (formulas with `NULLIF` on divisors) and orders and limits the rows.

use super::field::{Field, FieldKind, PropertyColumns, Source};
use super::filter::{Condition, Filter, Op, Operand, Scalar};
use super::insight::{Kind, Query};
use super::metric::{Aggregation, BinOp, Expr, Measure};
use super::session::{Narrow, from_sessionized};
use super::time::{Granularity, MAX_BUCKETS, Window, offsets};
use crate::model::TenantId;
use crate::sql::{SqlBuilder, SqlValue};

pub use crate::sql::Dialect;

/// What the columns of a compiled query's rows mean, in order: the bucket (local wall
/// time as epoch microseconds), the breakdown values (text), whether the row belongs to
/// the current period (comparisons), then one number per series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub bucket: bool,
    pub dims: usize,
    pub period: bool,
    pub series: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Compiled {
    pub sql: String,
    pub params: Vec<SqlValue>,
    pub layout: Layout,
    /// Most rows the answer holds; the statement asks for one more, to tell a cut answer.
    pub max_rows: usize,
}

/// Compiles `q` for `tenant` over `window` (and, for a comparison, `previous`, which must
/// end where `window` starts). Asks for at most `row_cap + 1` rows, so that a caller can
/// tell a full answer from a cut one.
pub fn compile(
    q: &Query,
    tenant: &TenantId,
    window: Window,
    previous: Option<Window>,
    row_cap: usize,
    dialect: Dialect,
) -> Result<Compiled, String> {
    compile_with(q, tenant, window, previous, row_cap, dialect, &PropertyColumns::default())
}

/// [`compile`], reading the properties that `cols` keeps in columns of their own from
/// those columns instead of the JSON.
pub fn compile_with(
    q: &Query,
    tenant: &TenantId,
    window: Window,
    previous: Option<Window>,
    row_cap: usize,
    dialect: Dialect,
    cols: &PropertyColumns,
) -> Result<Compiled, String> {
    let period = match (q.kind, previous) {
        (Kind::Compare, Some(p)) => {
            if p.end > window.start || p.end <= p.start {
                return Err("the previous period must end before the current one starts".into());
            }
            Some(p)
        }
        (Kind::Compare, None) => return Err("a comparison needs the previous period".into()),
        _ => None,
    };
    let scan_window = match period {
        Some(p) => Window { start: p.start, end: window.end },
        None => window,
    };
    let bucket = q.granularity.filter(|_| matches!(q.kind, Kind::Trend | Kind::Breakdown));
    let layout =
        Layout { bucket: bucket.is_some(), dims: q.by.len(), period: period.is_some(), series: q.series.len() };

    // Leaves: each distinct measure once, numbered in order of first use.
    let mut leaves: Vec<&Measure> = Vec::new();
    for s in &q.series {
        for m in s.expr.measures() {
            if !leaves.contains(&m) {
                leaves.push(m);
            }
        }
    }
    let sources: Vec<Source> =
        [Source::Events, Source::MetricRecords].into_iter().filter(|s| leaves.iter().any(|m| m.source == *s)).collect();
    if sources.is_empty() {
        return Err("the query computes nothing: every series is a constant".into());
    }
    let group_cols: Vec<String> = {
        let mut g = Vec::new();
        if bucket.is_some() {
            g.push("b".to_owned());
        }
        g.extend((0..q.by.len()).map(|i| format!("d{i}")));
        if period.is_some() {
            g.push("p".to_owned());
        }
        g
    };

    let mut b = SqlBuilder::in_dialect(dialect, "SELECT ");
    // Outer select list: group columns, then series.
    let alias = |src: Source| if src == Source::Events { "e" } else { "m" };
    let mut first = true;
    let mut sep = |b: &mut SqlBuilder| {
        if !first {
            b.push(", ");
        }
        first = false;
    };
    for c in &group_cols {
        sep(&mut b);
        let col =
            if sources.len() == 2 { format!("coalesce(e.{c}, m.{c})") } else { format!("{}.{c}", alias(sources[0])) };
        if c == "b" {
            b.epoch_us(&col).push(" AS b");
        } else {
            b.push_trusted(&format!("{col} AS {c}"));
        }
    }
    for (i, s) in q.series.iter().enumerate() {
        sep(&mut b);
        series_sql(&mut b, &s.expr, &leaves, &alias);
        b.push_trusted(&format!(" AS s{i}"));
    }
    b.push(" FROM ");
    for (n, src) in sources.iter().enumerate() {
        if n == 1 {
            b.push(if group_cols.is_empty() { " CROSS JOIN " } else { " FULL OUTER JOIN " });
        }
        b.push("(");
        scan(&mut b, cols, *src, q, &leaves, tenant, scan_window, window, bucket, period);
        b.push_trusted(&format!(") {}", alias(*src)));
        if n == 1 && !group_cols.is_empty() {
            b.push_trusted(&format!(
                " ON {}",
                group_cols
                    .iter()
                    .map(|c| format!("e.{c} IS NOT DISTINCT FROM m.{c}"))
                    .collect::<Vec<_>>()
                    .join(" AND ")
            ));
        }
    }
    // Order: time first; a pure breakdown puts its largest rows first.
    let mut order: Vec<String> = Vec::new();
    if bucket.is_some() {
        order.push("b".into());
    }
    if q.kind == Kind::Breakdown && !q.series.is_empty() {
        order.push("s0 DESC NULLS LAST".into());
    }
    order.extend((0..q.by.len()).map(|i| format!("d{i} NULLS LAST")));
    if period.is_some() {
        order.push("p".into());
    }
    if !order.is_empty() {
        b.push_trusted(&format!(" ORDER BY {}", order.join(", ")));
    }
    // A trend answers every bucket (time::buckets bounds how many), for every breakdown
    // value (the answer keeps the `limit` largest); `limit` and the row cap bound the rows
    // of the other kinds.
    let max_rows = if q.kind == Kind::Trend { MAX_BUCKETS } else { q.limit.min(row_cap) };
    b.push(" LIMIT ").bind(SqlValue::Int(max_rows as i64 + 1));
    let (sql, params) = b.into_parts();
    Ok(Compiled { sql, params, layout, max_rows })
}

fn leaf_index(leaves: &[&Measure], m: &Measure) -> usize {
    leaves.iter().position(|l| *l == m).expect("every measure is a leaf")
}

fn series_sql(b: &mut SqlBuilder, e: &Expr, leaves: &[&Measure], alias: &impl Fn(Source) -> &'static str) {
    match e {
        Expr::Measure(m) => {
            let i = leaf_index(leaves, m);
            let col = format!("{}.l{i}", alias(m.source));
            // A source with no row for a group: a count or sum there is 0.
            if m.agg.is_additive() {
                b.push_trusted(&format!("coalesce({col}, 0)"));
            } else {
                b.push_trusted(&col);
            }
        }
        Expr::Num(n) => {
            b.push("CAST(").bind(SqlValue::Float(*n)).push(" AS DOUBLE)");
        }
        Expr::Bin(op, x, y) => {
            b.push("(");
            series_sql(b, x, leaves, alias);
            match op {
                BinOp::Add => b.push(" + "),
                BinOp::Sub => b.push(" - "),
                BinOp::Mul => b.push(" * "),
                BinOp::Div => b.push(" / NULLIF("),
            };
            series_sql(b, y, leaves, alias);
            if *op == BinOp::Div {
                b.push(", 0)");
            }
            b.push(")");
        }
    }
}

/// One grouped scan of `src` computing its leaves as `l{i}`.
#[allow(clippy::too_many_arguments)]
fn scan(
    b: &mut SqlBuilder,
    cols: &PropertyColumns,
    src: Source,
    q: &Query,
    leaves: &[&Measure],
    tenant: &TenantId,
    scan_window: Window,
    current: Window,
    bucket: Option<Granularity>,
    previous: Option<Window>,
) {
    let compare = previous.is_some();
    let mine: Vec<(usize, &Measure)> =
        leaves.iter().enumerate().filter(|(_, m)| m.source == src).map(|(i, m)| (i, *m)).collect();
    b.push("SELECT ");
    let mut n_cols = 0;
    if let Some(g) = bucket {
        bucket_sql(b, g, q, scan_window);
        b.push(" AS b");
        n_cols += 1;
    }
    for (i, d) in q.by.iter().enumerate() {
        if n_cols > 0 {
            b.push(", ");
        }
        let f = d.field(src).expect("a dimension is parsed for every source the query reads");
        text_sql(b, cols, f);
        b.push_trusted(&format!(" AS d{i}"));
        n_cols += 1;
    }
    if compare {
        if n_cols > 0 {
            b.push(", ");
        }
        b.push_bind("ts >= ", ts(current.start)).push(" AS p");
        n_cols += 1;
    }
    // With one measure, its filter narrows the scan; with several, each filters its own
    // aggregate, and the scan reads rows any of them wants.
    let single = mine.len() == 1;
    for (i, m) in &mine {
        if n_cols > 0 {
            b.push(", ");
        }
        agg_sql(b, cols, m, if single { None } else { m.filter.as_ref() });
        b.push_trusted(&format!(" AS l{i}"));
        n_cols += 1;
    }
    // Sessions are cut by inactivity over the events of the scanned window.
    if src == Source::Events && mine.iter().any(|(_, m)| m.field == Some(Field::Session)) {
        let narrow = Narrow { from: Some(scan_window.start), until: Some(scan_window.end), ..Narrow::default() };
        from_sessionized(b, tenant, narrow, "t");
    } else {
        b.from_tenant(src.stored(), tenant, "t");
    }
    b.push_bind(" WHERE ts >= ", ts(scan_window.start)).push_bind(" AND ts < ", ts(scan_window.end));
    // A previous period that stops short of the current one (month-to-date against the
    // same days of last month) leaves a gap the scan skips.
    if let Some(p) = previous.filter(|p| p.end < current.start) {
        b.push_bind(" AND (ts < ", ts(p.end)).push_bind(" OR ts >= ", ts(current.start)).push(")");
    }
    if single {
        if let Some(f) = &mine[0].1.filter {
            b.push(" AND (");
            filter_sql(b, cols, f);
            b.push(")");
        }
    } else if mine.iter().all(|(_, m)| m.filter.is_some()) {
        b.push(" AND (");
        for (n, (_, m)) in mine.iter().enumerate() {
            if n > 0 {
                b.push(" OR ");
            }
            b.push("(");
            filter_sql(b, cols, m.filter.as_ref().expect("checked"));
            b.push(")");
        }
        b.push(")");
    }
    let groups = bucket.is_some() as usize + q.by.len() + compare as usize;
    if groups > 0 {
        b.push(" GROUP BY ");
        b.push_trusted(&(1..=groups).map(|i| i.to_string()).collect::<Vec<_>>().join(", "));
    }
}

/// A time as the value it binds to.
pub(crate) fn ts(t: chrono::DateTime<chrono::Utc>) -> SqlValue {
    SqlValue::TimestampMicros(t.timestamp_micros())
}

/// The bucket of a row: `date_trunc` of its local wall time. The UTC offset comes from a
/// CASE over the offset's pieces in the window: plain arithmetic per row, where a time
/// zone conversion per row costs 15 times more.
fn bucket_sql(b: &mut SqlBuilder, g: Granularity, q: &Query, w: Window) {
    local_bucket(b, g, q.tz, w, "ts");
}

/// `date_trunc(unit, col + offset)`: the bucket of a UTC timestamp column in `tz`, with
/// the offsets `tz` has over `w`.
pub(crate) fn local_bucket(b: &mut SqlBuilder, g: Granularity, tz: chrono_tz::Tz, w: Window, col: &'static str) {
    b.push("date_trunc(").push(g.sql_unit()).push(", ").push(col);
    offset_secs(b, tz, w, col, " + to_seconds(", ")");
    b.push(")");
}

/// Pushes `before`, the offset of `tz` (seconds) at `col`, and `after`, unless the offset
/// is always 0.
fn offset_secs(
    b: &mut SqlBuilder,
    tz: chrono_tz::Tz,
    w: Window,
    col: &'static str,
    before: &'static str,
    after: &'static str,
) {
    let pieces = offsets(tz, w);
    match pieces.as_slice() {
        [(None, 0)] => return,
        [(None, secs)] => {
            b.push(before).bind(SqlValue::Int(*secs));
        }
        _ => {
            b.push(before).push("CASE");
            for (until, secs) in &pieces {
                match until {
                    Some(t) => {
                        b.push(" WHEN ").push(col).push_bind(" < ", ts(*t)).push_bind(" THEN ", SqlValue::Int(*secs));
                    }
                    None => {
                        b.push_bind(" ELSE ", SqlValue::Int(*secs));
                    }
                }
            }
            b.push(" END");
        }
    }
    b.push(after);
}

/// Days added before dividing, so that every index is positive (integer division then
/// floors as Rust's does) and weeks start on Mondays (1970-01-01 was a Thursday).
const INDEX_SHIFT_DAYS: i64 = 7 * 1_000_000 + 3;

/// The index of the day, week or month that holds a UTC timestamp column in `tz`, as an
/// integer: plain arithmetic per row (a tenth of `date_trunc` and `date_diff`'s cost).
/// [`period_index`] computes the same in Rust.
pub(crate) fn local_period_index(b: &mut SqlBuilder, g: Granularity, tz: chrono_tz::Tz, w: Window, col: &'static str) {
    const DAY_US: i64 = 86_400_000_000;
    match g {
        Granularity::Month => {
            // Months have no fixed length: the local time's year and month.
            b.push("((year(").push(col);
            offset_secs(b, tz, w, col, " + to_seconds(", ")");
            b.push(") - 1970) * 12 + month(").push(col);
            offset_secs(b, tz, w, col, " + to_seconds(", ")");
            b.push(") - 1)");
        }
        _ => {
            let unit = if g == Granularity::Week { 7 * DAY_US } else { DAY_US };
            b.push("((").epoch_us(col);
            offset_secs(b, tz, w, col, " + 1000000 * (", ")");
            b.push_trusted(&format!(" + {}) // {unit})", INDEX_SHIFT_DAYS * DAY_US));
        }
    }
}

/// [`local_period_index`] of a time, in Rust.
pub(crate) fn period_index(g: Granularity, tz: chrono_tz::Tz, t: chrono::DateTime<chrono::Utc>) -> i64 {
    use chrono::Datelike;
    const DAY_US: i64 = 86_400_000_000;
    let local = super::time::utc_to_local(tz, t);
    match g {
        Granularity::Month => (local.year() as i64 - 1970) * 12 + local.month0() as i64,
        _ => {
            let unit = if g == Granularity::Week { 7 * DAY_US } else { DAY_US };
            (local.and_utc().timestamp_micros() + INDEX_SHIFT_DAYS * DAY_US).div_euclid(unit)
        }
    }
}

/// An aggregate, with `FILTER (WHERE ...)` right after the call when it has its own rows.
fn agg_sql(b: &mut SqlBuilder, cols: &PropertyColumns, m: &Measure, own_rows: Option<&Filter>) {
    let field = || m.field.as_ref().expect("a field aggregation has a field");
    let cast = matches!(m.agg, Aggregation::Count | Aggregation::Users | Aggregation::CountDistinct);
    if cast {
        b.push("CAST(");
    }
    match m.agg {
        Aggregation::Count => {
            b.push("count(*)");
        }
        Aggregation::Users => {
            b.push("count(DISTINCT user_key)");
        }
        Aggregation::CountDistinct => {
            b.push("count(DISTINCT ");
            text_sql(b, cols, field());
            b.push(")");
        }
        Aggregation::Sum | Aggregation::Avg | Aggregation::Min | Aggregation::Max => {
            b.push(match m.agg {
                Aggregation::Sum => "sum(",
                Aggregation::Avg => "avg(",
                Aggregation::Min => "min(",
                _ => "max(",
            });
            number_sql(b, cols, field());
            b.push(")");
        }
        Aggregation::Percentile(p) => {
            b.push("quantile_cont(");
            number_sql(b, cols, field());
            b.push_bind(", ", SqlValue::Float(p as f64 / 100.0)).push(")");
        }
    }
    if let Some(f) = own_rows {
        b.push(" FILTER (WHERE ");
        filter_sql(b, cols, f);
        b.push(")");
    }
    if cast {
        b.push(" AS DOUBLE)");
    }
}

/// A field as text, for other compilers of this module (funnels, retention).
pub(crate) fn text_of(b: &mut SqlBuilder, cols: &PropertyColumns, f: &Field) {
    text_sql(b, cols, f)
}

/// A field as a number, for other compilers of this module.
pub(crate) fn number_of(b: &mut SqlBuilder, cols: &PropertyColumns, f: &Field) {
    number_sql(b, cols, f)
}

/// A filter as a condition, for other compilers of this module.
pub(crate) fn filter_of(b: &mut SqlBuilder, cols: &PropertyColumns, f: &Filter) {
    filter_sql(b, cols, f)
}

/// A field as text (plain columns as they are; JSON values as their text).
fn text_sql(b: &mut SqlBuilder, cols: &PropertyColumns, f: &Field) {
    match f {
        Field::CustomerId => {
            b.push("coalesce(").json_text("properties", "customer_id").push(", user_id)");
        }
        Field::Value => {
            b.push("CAST(value AS VARCHAR)");
        }
        Field::Property(p) if cols.column(p).is_some() => {
            b.push_trusted(&cols.column(p).expect("checked"));
        }
        _ => match f.column() {
            (col, None) => {
                b.push(col);
            }
            (col, Some(path)) => {
                let f = b.dialect().json_text_fn();
                b.push_trusted(f).push("(").push(col).push_bind(", ", SqlValue::Text(path.json_path())).push(")");
            }
        },
    }
}

/// A field as a number (NULL where it is not one).
fn number_sql(b: &mut SqlBuilder, cols: &PropertyColumns, f: &Field) {
    match f.kind() {
        FieldKind::Number => {
            b.push(f.column().0);
        }
        _ if let Field::Property(p) = f
            && let Some(col) = cols.number_column(p) =>
        {
            b.push_trusted(&col);
        }
        _ => {
            b.push("TRY_CAST(");
            text_sql(b, cols, f);
            b.push(" AS DOUBLE)");
        }
    }
}

fn filter_sql(b: &mut SqlBuilder, cols: &PropertyColumns, f: &Filter) {
    match f {
        Filter::Cond(c) => cond_sql(b, cols, c),
        Filter::All(fs) | Filter::Any(fs) => {
            let joiner = if matches!(f, Filter::All(_)) { " AND " } else { " OR " };
            b.push("(");
            for (i, x) in fs.iter().enumerate() {
                if i > 0 {
                    b.push(joiner);
                }
                filter_sql(b, cols, x);
            }
            b.push(")");
        }
    }
}

fn scalar_text(s: &Scalar) -> SqlValue {
    match s {
        Scalar::Text(t) => SqlValue::Text(t.clone()),
        Scalar::Number(n) => SqlValue::Text(format_number(*n)),
        Scalar::Bool(v) => SqlValue::Text(v.to_string()),
    }
}

/// A number as JSON writes it: integers without a fraction.
fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 9.0e15 { format!("{}", n as i64) } else { n.to_string() }
}

fn cond_sql(b: &mut SqlBuilder, cols: &PropertyColumns, c: &Condition) {
    // Compare as numbers when the field is numeric or every operand is a number.
    let numeric = c.field.kind() == FieldKind::Number
        || match &c.operand {
            Operand::One(Scalar::Number(_)) => c.op != Op::Contains,
            Operand::Many(v) => v.iter().all(|s| matches!(s, Scalar::Number(_))),
            _ => false,
        };
    let lhs = |b: &mut SqlBuilder| {
        if numeric { number_sql(b, cols, &c.field) } else { text_sql(b, cols, &c.field) }
    };
    let value = |s: &Scalar| match (numeric, s) {
        (true, Scalar::Number(n)) => SqlValue::Float(*n),
        _ => scalar_text(s),
    };
    let list = |b: &mut SqlBuilder, v: &[Scalar]| {
        b.push("(");
        for (i, s) in v.iter().enumerate() {
            if i > 0 {
                b.push(", ");
            }
            b.bind(value(s));
        }
        b.push(")");
    };
    match (&c.op, &c.operand) {
        (Op::IsSet, _) => {
            lhs(b);
            b.push(" IS NOT NULL");
        }
        (Op::IsNotSet, _) => {
            lhs(b);
            b.push(" IS NULL");
        }
        (Op::In, Operand::Many(v)) => {
            lhs(b);
            b.push(" IN ");
            list(b, v);
        }
        (Op::NotIn, Operand::Many(v)) => {
            b.push("(");
            lhs(b);
            b.push(" IS NULL OR ");
            lhs(b);
            b.push(" NOT IN ");
            list(b, v);
            b.push(")");
        }
        (Op::Contains, Operand::One(s)) => {
            b.push("contains(lower(");
            text_sql(b, cols, &c.field);
            b.push("), lower(").bind(scalar_text(s)).push("))");
        }
        (op, Operand::One(s)) => {
            lhs(b);
            b.push(match op {
                Op::Eq => " = ",
                Op::Neq => " IS DISTINCT FROM ",
                Op::Gt => " > ",
                Op::Gte => " >= ",
                Op::Lt => " < ",
                Op::Lte => " <= ",
                _ => unreachable!("handled above"),
            });
            b.bind(value(s));
        }
        // The parser gives every operator its operand shape; anything else matches nothing.
        _ => {
            b.push("FALSE");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::insight::parse_query;
    use crate::query::metric::NoCatalog;
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    fn compile_json(v: serde_json::Value) -> Compiled {
        let q = parse_query(&v, &NoCatalog).unwrap();
        let now = Utc.with_ymd_and_hms(2026, 3, 15, 12, 0, 0).unwrap();
        let (w, prev) = q.range.resolve(q.tz, now).unwrap();
        compile(&q, &TenantId::parse("t1").unwrap(), w, Some(prev), 1000, Dialect::DuckDb).unwrap()
    }

    #[test]
    fn a_simple_trend_is_the_hand_written_query() {
        let c = compile_json(json!({"kind": "trend", "series": ["events"], "granularity": "day"}));
        assert_eq!(
            c.sql,
            "SELECT epoch_us(e.b) AS b, coalesce(e.l0, 0) AS s0 FROM (SELECT date_trunc('day', ts) AS b, \
             CAST(count(*) AS DOUBLE) AS l0 FROM (SELECT * FROM events WHERE tenant_id = ?) AS t \
             WHERE ts >= ? AND ts < ? GROUP BY 1) e \
             ORDER BY b LIMIT ?"
        );
        assert_eq!(c.params[0], SqlValue::Text("t1".into()));
        assert_eq!(c.layout, Layout { bucket: true, dims: 0, period: false, series: 1 });
    }

    #[test]
    fn hostile_values_and_paths_only_ever_bind() {
        let hostile = ["'; DROP TABLE events; --", "a\"b", "x) OR 1=1 --", "/* c */", "ünï'cödé", "$.x[0]"];
        let mut shapes = std::collections::HashSet::new();
        for h in hostile {
            let path = h.replace(['"', '.'], "_");
            let c = compile_json(json!({
                "kind": "breakdown", "series": [{"event": h, "aggregation": "sum", "field": format!("properties.{path}")}],
                "breakdown": [format!("properties.{path}")],
                "filters": [{"field": format!("properties.{path}"), "op": "contains", "value": h}]
            }));
            assert!(!c.sql.contains(h) && !c.sql.contains(&path), "{}", c.sql);
            assert_eq!(c.sql.matches('?').count(), c.params.len());
            shapes.insert(c.sql);
        }
        assert_eq!(shapes.len(), 1, "hostile input changed the SQL's shape");
    }

    #[test]
    fn two_sources_join_and_formulas_guard_division() {
        struct Records;
        impl crate::query::metric::Catalog for Records {
            fn custom(&self, _: &str) -> Option<crate::query::metric::Definition> {
                None
            }
            fn has_records(&self, n: &str) -> bool {
                n == "signups"
            }
        }
        let q = parse_query(&json!({"kind": "trend", "series": [{"formula": "signups / users"}]}), &Records).unwrap();
        let now = Utc.with_ymd_and_hms(2026, 3, 15, 12, 0, 0).unwrap();
        let (w, _) = q.range.resolve(q.tz, now).unwrap();
        let c = compile(&q, &TenantId::parse("t1").unwrap(), w, None, 1000, Dialect::DuckDb).unwrap();
        assert!(c.sql.contains("FULL OUTER JOIN"), "{}", c.sql);
        assert!(c.sql.contains("/ NULLIF("), "{}", c.sql);
        assert_eq!(c.sql.matches("tenant_id = ?").count(), 2);
    }

    #[test]
    fn comparisons_scan_both_periods_once() {
        let c = compile_json(json!({"kind": "compare", "series": ["revenue"], "date_range": "this_month"}));
        assert!(c.layout.period);
        assert_eq!(c.sql.matches("FROM events WHERE tenant_id = ?").count(), 1);
        assert!(c.sql.contains("ts >= ? AS p"));
    }
}
