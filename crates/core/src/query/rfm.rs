//! RFM scores (seed 001's `/customers/rfm`, `/customers/insights`, `/customers/segments`).
//!
//! Who counts, exactly (the tests compute the same by hand):
//! - A customer is `properties.customer_id` of `purchase` and `ticket_purchase` events,
//!   else the event's `user_id`; purchases without either are not a customer's.
//! - Per customer: the last purchase (recency), the number of purchases (frequency) and
//!   the sum of `properties.amount` (monetary; a missing or non-numeric amount adds 0).
//! - Each score is the customer's quintile, 1 to 5, among all customers: SQL's
//!   `ntile(5)` ordered by the value ascending (recency: the last purchase, so the most
//!   recent buyers score 5), ties broken by `customer_id`.
//! - `rfm_score` is the three digits R, F, M (545). The segment is read off R and F, in
//!   the usual 10 names (see [`segment_of`]).

use super::answer::Row;
use super::compile::{Compiled, Layout};
use super::field::{Field, PropertyColumns, PropertyPath};
use super::metric::PURCHASE_EVENTS;
use crate::model::TenantId;
use crate::sql::{Dialect, SqlBuilder, SqlValue, Stored};
use chrono::{DateTime, Utc};

/// A segment: key, name, description, the R scores and the F scores it covers.
pub type SegmentRow = (&'static str, &'static str, &'static str, (u8, u8), (u8, u8));

/// The segments, each with the R and F scores it covers, in the order answers list them.
pub const SEGMENTS: &[SegmentRow] = &[
    ("champions", "Champions", "Bought recently, buy often", (5, 5), (4, 5)),
    ("loyal_customers", "Loyal Customers", "Buy often, fairly recently", (3, 4), (4, 5)),
    ("potential_loyalists", "Potential Loyalists", "Recent buyers with a few purchases", (4, 5), (2, 3)),
    ("new_customers", "New Customers", "Bought very recently, once", (5, 5), (1, 1)),
    ("promising", "Promising", "Recent buyers, one purchase", (4, 4), (1, 1)),
    ("need_attention", "Need Attention", "Middling recency and frequency", (3, 3), (3, 3)),
    ("about_to_sleep", "About to Sleep", "Not recent, few purchases", (3, 3), (1, 2)),
    ("at_risk", "At Risk", "Bought often, but long ago", (1, 2), (3, 4)),
    ("cant_lose_them", "Can't Lose Them", "Bought the most, but long ago", (1, 2), (5, 5)),
    ("hibernating", "Hibernating", "Long ago, few purchases", (1, 2), (1, 2)),
];

/// The segment (slug, name) of an R and F score. Every pair 1..=5 × 1..=5 has one.
pub fn segment_of(r: u8, f: u8) -> (&'static str, &'static str) {
    SEGMENTS
        .iter()
        .find(|(_, _, _, rr, ff)| (rr.0..=rr.1).contains(&r) && (ff.0..=ff.1).contains(&f))
        .map(|(id, name, ..)| (*id, *name))
        .unwrap_or(("hibernating", "Hibernating"))
}

/// One scored customer.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub customer_id: String,
    pub r: u8,
    pub f: u8,
    pub m: u8,
    pub first_purchase: DateTime<Utc>,
    pub last_purchase: DateTime<Utc>,
    pub purchases: u64,
    pub spent: f64,
}

impl Scored {
    pub fn rfm_score(&self) -> u32 {
        self.r as u32 * 100 + self.f as u32 * 10 + self.m as u32
    }
}

/// Every customer with their scores, purchases before `until` (and from `since`, when given).
pub fn compile_rfm(
    tenant: &TenantId,
    since: Option<DateTime<Utc>>,
    until: DateTime<Utc>,
    cols: &PropertyColumns,
    d: Dialect,
) -> Compiled {
    let amount = PropertyPath::parse("amount").expect("a valid key");
    let customer = PropertyPath::parse("customer_id").expect("a valid key");
    // A kept column when there is one, else the JSON.
    let read = |b: &mut SqlBuilder, p: &PropertyPath| super::compile::text_of(b, cols, &Field::Property(p.clone()));
    let mut b = SqlBuilder::in_dialect(d, "WITH p AS (SELECT coalesce(");
    read(&mut b, &customer);
    b.push(", user_id) AS customer_id, ts, ");
    super::compile::number_of(&mut b, cols, &Field::Property(amount));
    b.push(" AS amount");
    b.from_tenant(Stored::Events, tenant, "t");
    b.push(" WHERE event_name IN (");
    for (i, e) in PURCHASE_EVENTS.iter().enumerate() {
        if i > 0 {
            b.push(", ");
        }
        b.bind(SqlValue::Text((*e).to_owned()));
    }
    b.push(")");
    if let Some(s) = since {
        b.push_bind(" AND ts >= ", SqlValue::TimestampMicros(s.timestamp_micros()));
    }
    b.push_bind(" AND ts < ", SqlValue::TimestampMicros(until.timestamp_micros()));
    b.push("), c AS (SELECT customer_id, min(ts) AS first_ts, max(ts) AS last_ts, count(*) AS n, coalesce(sum(amount), 0) AS spent FROM p WHERE customer_id IS NOT NULL GROUP BY 1)");
    b.push(" SELECT customer_id, CAST(ntile(5) OVER (ORDER BY last_ts, customer_id) AS DOUBLE),");
    b.push(" CAST(ntile(5) OVER (ORDER BY n, customer_id) AS DOUBLE), CAST(ntile(5) OVER (ORDER BY spent, customer_id) AS DOUBLE),");
    b.push(" CAST(").epoch_us("first_ts").push(" AS DOUBLE), CAST(").epoch_us("last_ts");
    b.push(" AS DOUBLE), CAST(n AS DOUBLE), spent FROM c");
    let (sql, params) = b.into_parts();
    Compiled { sql, params, layout: Layout { bucket: false, dims: 1, period: false, series: 7 }, max_rows: usize::MAX }
}

/// Reads the rows of [`compile_rfm`].
pub fn scored(rows: &[Row]) -> Vec<Scored> {
    let at = |v: Option<f64>| DateTime::from_timestamp_micros(v.unwrap_or(0.0) as i64).unwrap_or_default();
    rows.iter()
        .filter_map(|r| {
            Some(Scored {
                customer_id: r.dims.first()?.clone()?,
                r: r.values[0]? as u8,
                f: r.values[1]? as u8,
                m: r.values[2]? as u8,
                first_purchase: at(r.values[3]),
                last_purchase: at(r.values[4]),
                purchases: r.values[5].unwrap_or(0.0) as u64,
                spent: r.values[6].unwrap_or(0.0),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_score_pair_has_exactly_one_segment() {
        for r in 1..=5u8 {
            for f in 1..=5u8 {
                let n = SEGMENTS
                    .iter()
                    .filter(|(_, _, _, rr, ff)| (rr.0..=rr.1).contains(&r) && (ff.0..=ff.1).contains(&f))
                    .count();
                assert_eq!(n, 1, "R{r} F{f}");
            }
        }
        assert_eq!(segment_of(5, 5).1, "Champions");
        assert_eq!(segment_of(1, 5).1, "Can't Lose Them");
        assert_eq!(segment_of(3, 3).1, "Need Attention");
    }

    #[test]
    fn compiles_with_bound_values() {
        let c =
            compile_rfm(&TenantId::parse("t").unwrap(), None, Utc::now(), &PropertyColumns::default(), Dialect::DuckDb);
        assert_eq!(c.sql.matches('?').count(), c.params.len());
        assert!(!c.sql.contains("purchase"));
    }
}
