//! Named metrics over periods: a value, or a value against the period before. The
//! period summary uses them, and so will dashboards' metric widgets and reports' KPI
//! tables.

use super::analytics;
use crate::app::AppState;
use crate::error::Result;
use sightline_core::model::TenantId;
use sightline_core::query::answer::change_percent;
use sightline_core::query::insight::{Kind, Query, Series};
use sightline_core::query::time::{DateRange, Window};

/// A series over a period, against the period before.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricChange {
    pub label: String,
    pub current: Option<f64>,
    pub previous: Option<f64>,
    /// `None` when the previous value is 0 or missing.
    pub change_percent: Option<f64>,
}

/// Each series over `current` and over `previous` (which ends where `current` starts, or
/// before), in one query. A count or sum with no rows is 0; an average with none is
/// missing.
pub async fn compare(
    state: &AppState,
    tenant: &TenantId,
    series: Vec<Series>,
    current: Window,
    previous: Window,
    tz: chrono_tz::Tz,
) -> Result<Vec<MetricChange>> {
    let q = Query {
        kind: Kind::Compare,
        series,
        by: Vec::new(),
        granularity: None,
        range: DateRange::default(),
        tz,
        limit: 2,
    };
    let out = analytics::execute(state, tenant, &q, current, Some(previous), None).await?;
    let find = |cur: bool| out.rows.iter().find(|r| r.current == Some(cur));
    Ok(q.series
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let empty = s.expr.is_additive().then_some(0.0);
            let current = find(true).and_then(|r| r.values[i]).or(empty);
            let previous = find(false).and_then(|r| r.values[i]).or(empty);
            MetricChange {
                label: s.label.clone(),
                current,
                previous,
                change_percent: change_percent(current, previous),
            }
        })
        .collect())
}

/// One series over `window`, as [`compare`] counts it.
pub async fn value(state: &AppState, tenant: &TenantId, series: Series, window: Window) -> Result<Option<f64>> {
    let empty = series.expr.is_additive().then_some(0.0);
    let q = Query {
        kind: Kind::Aggregate,
        series: vec![series],
        by: Vec::new(),
        granularity: None,
        range: DateRange::default(),
        tz: chrono_tz::Tz::UTC,
        limit: 1,
    };
    let out = analytics::execute(state, tenant, &q, window, None, None).await?;
    Ok(out.rows.first().and_then(|row| row.values[0]).or(empty))
}
