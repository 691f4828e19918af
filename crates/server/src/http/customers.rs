//! Seed 001's customer analytics under `/api/v1/customers`: RFM scores, the insights
//! summary and the segments, all from one scoring of every customer
//! (`sightline_core::query::rfm`).

use super::error::{ApiError, ApiResult};
use super::extract::ApiQuery;
use crate::app::AppState;
use crate::auth::{Caller, CanRead};
use crate::service::analytics;
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sightline_core::model::TenantId;
use sightline_core::query::rfm::{SEGMENTS, Scored, segment_of};
use sightline_core::query::segment::parse_conditions;
use sightline_core::query::time::{parse_range, parse_tz};

/// A customer with no purchase for this long counts as churned.
pub const CHURN_DAYS: i64 = 90;
pub const NEW_DAYS: i64 = 30;

async fn score_all(
    state: &AppState,
    tenant: &TenantId,
    period: Option<&str>,
    now: DateTime<Utc>,
) -> ApiResult<Vec<Scored>> {
    let (since, until) = match period.map(str::trim).filter(|p| !p.is_empty() && *p != "all") {
        None => (None, now),
        Some(p) => {
            let range = parse_range(&json!(p), "period").map_err(|e| ApiError::invalid(vec![e]))?;
            let (w, _) =
                range.resolve(parse_tz("UTC", "tz").expect("UTC"), now).map_err(|m| ApiError::field("period", m))?;
            // A period that has ended stops there; one still running stops now.
            (Some(w.start), w.end.min(now))
        }
    };
    state.engine.rfm(tenant, since, until, analytics::time_limit(state, None)).await
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Which customers' scores to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RfmParams {
    customer_id: Option<String>,
    /// A segment's id (`cant_lose_them`) or name (`Can't Lose Them`).
    segment: Option<String>,
    /// The least three-digit RFM score (111 to 555).
    min_score: Option<u32>,
    /// 1 to 1,000; 100 by default.
    limit: Option<usize>,
    /// The purchases scored: a named range such as `this_year` or `-365d`; all time by default.
    period: Option<String>,
}

/// One customer's RFM scores.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CustomerScore {
    customer_id: String,
    recency_score: u8,
    frequency_score: u8,
    monetary_score: u8,
    /// The three scores as digits: 100 R + 10 F + M.
    rfm_score: u32,
    segment: &'static str,
    /// `YYYY-MM-DD`.
    last_purchase: String,
    total_purchases: u64,
    total_spent: f64,
}

/// Figures over every scored customer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RfmSummary {
    total_customers: usize,
    avg_rfm_score: f64,
    /// Customers by segment name.
    segment_distribution: std::collections::BTreeMap<String, u64>,
}

/// Whether the list was cut, and when it was scored.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RfmMetadata {
    truncated: bool,
    as_of: String,
}

/// RFM scores (seed 001).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Rfm {
    data: Vec<CustomerScore>,
    summary: RfmSummary,
    metadata: RfmMetadata,
}

/// A segment as a client names it: its id (`cant_lose_them`) or its name, any case.
fn names_segment(asked: &str, id: &str, name: &str) -> bool {
    let norm = |s: &str| s.trim().to_ascii_lowercase().replace([' ', '-', '\''], "_");
    norm(asked) == id || norm(asked) == norm(name)
}

fn check_segment(s: &str) -> ApiResult<()> {
    if SEGMENTS.iter().any(|(id, name, ..)| names_segment(s, id, name)) {
        return Ok(());
    }
    let names: Vec<&str> = SEGMENTS.iter().map(|(_, n, ..)| *n).collect();
    Err(ApiError::field("segment", format!("unknown segment '{s}'; use one of {}", names.join(", "))))
}

fn segment_matches(asked: &str, r: u8, f: u8) -> bool {
    let (id, name) = segment_of(r, f);
    names_segment(asked, id, name)
}

/// `GET /customers/rfm`: scores, filtered by `customer_id`, `segment`, `min_score`; the
/// `summary` covers every customer.
pub async fn rfm(
    caller: Caller<CanRead>,
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<RfmParams>,
) -> ApiResult<Json<Rfm>> {
    let limit = p.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::field("limit", "limit is 1 to 1000"));
    }
    if let Some(s) = &p.segment {
        check_segment(s)?;
    }
    let now = Utc::now();
    let all = score_all(&state, &caller.tenant, p.period.as_deref(), now).await?;
    let mut distribution = std::collections::BTreeMap::new();
    for (_, name, ..) in SEGMENTS {
        distribution.insert((*name).to_owned(), 0u64);
    }
    for c in &all {
        let (_, name) = segment_of(c.r, c.f);
        *distribution.get_mut(name).expect("every segment listed") += 1;
    }
    let avg =
        if all.is_empty() { 0.0 } else { all.iter().map(|c| c.rfm_score() as f64).sum::<f64>() / all.len() as f64 };
    let mut chosen: Vec<&Scored> = all
        .iter()
        .filter(|c| p.customer_id.as_ref().is_none_or(|id| &c.customer_id == id))
        .filter(|c| p.segment.as_ref().is_none_or(|s| segment_matches(s, c.r, c.f)))
        .filter(|c| p.min_score.is_none_or(|m| c.rfm_score() >= m))
        .collect();
    chosen.sort_by(|a, b| b.rfm_score().cmp(&a.rfm_score()).then_with(|| a.customer_id.cmp(&b.customer_id)));
    let truncated = chosen.len() > limit;
    let data = chosen
        .iter()
        .take(limit)
        .map(|c| CustomerScore {
            customer_id: c.customer_id.clone(),
            recency_score: c.r,
            frequency_score: c.f,
            monetary_score: c.m,
            rfm_score: c.rfm_score(),
            segment: segment_of(c.r, c.f).1,
            last_purchase: c.last_purchase.format("%Y-%m-%d").to_string(),
            total_purchases: c.purchases,
            total_spent: round2(c.spent),
        })
        .collect();
    Ok(Json(Rfm {
        data,
        summary: RfmSummary {
            total_customers: all.len(),
            avg_rfm_score: round2(avg),
            segment_distribution: distribution,
        },
        metadata: RfmMetadata { truncated, as_of: now.to_rfc3339_opts(SecondsFormat::Secs, true) },
    }))
}

/// Which customers to summarize.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InsightParams {
    /// Only this segment (id or name).
    segment: Option<String>,
    /// The purchases scored; all time by default.
    period: Option<String>,
}

/// A segment's share of the customers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SegmentShare {
    id: &'static str,
    name: &'static str,
    count: usize,
    percentage: f64,
}

/// Customer insights (seed 001).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CustomerInsights {
    total_customers: usize,
    /// First purchase in the last 30 days.
    new_customers_30d: usize,
    /// Percent with no purchase in 90 days.
    churn_rate: f64,
    average_ltv: f64,
    segments: Vec<SegmentShare>,
}

/// A segment's bounds: seed 001's three-digit scores, and the R and F ranges that decide;
/// a tenant's own segment carries its conditions instead.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Criteria {
    Rfm { rfm_min: u32, rfm_max: u32, recency_score: ScoreRange, frequency_score: ScoreRange },
    Own { conditions: Value },
}

/// A range of one score, 1 to 5.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScoreRange {
    min: u8,
    max: u8,
}

/// A customer segment: an RFM one, or one of the tenant's own (`custom: true`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CustomerSegment {
    id: String,
    name: String,
    description: Option<String>,
    criteria: Criteria,
    customer_count: u64,
    avg_revenue: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    custom: Option<bool>,
}

/// Customer segments (seed 001).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CustomerSegments {
    segments: Vec<CustomerSegment>,
}

/// `GET /customers/insights`: totals, customers new in 30 days, the share churned (no
/// purchase in 90 days), average lifetime value, and the segments with counts.
pub async fn insights(
    caller: Caller<CanRead>,
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<InsightParams>,
) -> ApiResult<Json<CustomerInsights>> {
    if let Some(s) = &p.segment {
        check_segment(s)?;
    }
    let now = Utc::now();
    let all = score_all(&state, &caller.tenant, p.period.as_deref(), now).await?;
    let pick: Vec<&Scored> =
        all.iter().filter(|c| p.segment.as_ref().is_none_or(|s| segment_matches(s, c.r, c.f))).collect();
    let total = pick.len();
    let new = pick.iter().filter(|c| c.first_purchase >= now - Duration::days(NEW_DAYS)).count();
    let churned = pick.iter().filter(|c| c.last_purchase < now - Duration::days(CHURN_DAYS)).count();
    let share = |n: usize| if total == 0 { 0.0 } else { round2(n as f64 * 100.0 / total as f64) };
    let ltv = if total == 0 { 0.0 } else { round2(pick.iter().map(|c| c.spent).sum::<f64>() / total as f64) };
    let segments = SEGMENTS
        .iter()
        .map(|(id, name, ..)| {
            let n = pick.iter().filter(|c| segment_of(c.r, c.f).0 == *id).count();
            SegmentShare { id, name, count: n, percentage: share(n) }
        })
        .collect();
    Ok(Json(CustomerInsights {
        total_customers: total,
        new_customers_30d: new,
        churn_rate: share(churned),
        average_ltv: ltv,
        segments,
    }))
}

/// `GET /customers/segments`: each RFM segment with its criteria, customers and their
/// average revenue.
pub async fn segments(caller: Caller<CanRead>, State(state): State<AppState>) -> ApiResult<Json<CustomerSegments>> {
    let all = score_all(&state, &caller.tenant, None, Utc::now()).await?;
    let list: Vec<CustomerSegment> = SEGMENTS
        .iter()
        .map(|(id, name, description, r, f)| {
            let members: Vec<&Scored> = all.iter().filter(|c| segment_of(c.r, c.f).0 == *id).collect();
            let avg = if members.is_empty() {
                0.0
            } else {
                round2(members.iter().map(|c| c.spent).sum::<f64>() / members.len() as f64)
            };
            CustomerSegment {
                id: (*id).to_owned(),
                name: (*name).to_owned(),
                description: Some((*description).to_owned()),
                // Seed 001's bounds of the three-digit score, and the R and F ranges that decide.
                criteria: Criteria::Rfm {
                    rfm_min: r.0 as u32 * 100 + f.0 as u32 * 10 + 1,
                    rfm_max: r.1 as u32 * 100 + f.1 as u32 * 10 + 5,
                    recency_score: ScoreRange { min: r.0, max: r.1 },
                    frequency_score: ScoreRange { min: f.0, max: f.1 },
                },
                customer_count: members.len() as u64,
                avg_revenue: avg,
                custom: None,
            }
        })
        .collect();
    // The tenant's own segments (`/api/v1/analytics/segments`) follow the RFM ones.
    let mut list = list;
    let limit = crate::service::analytics::time_limit(&state, None);
    for seg in super::resource::all::<super::segments::Segments>(&state, &caller.tenant).await? {
        let now = Utc::now();
        let conditions = seg.body.get("conditions").cloned().unwrap_or(Value::Null);
        let Ok(conds) = parse_conditions(&conditions, now) else { continue };
        let summary = state.engine.segment_summary(&caller.tenant, &conds, now, limit).await?;
        list.push(CustomerSegment {
            id: seg.id,
            name: seg.name,
            description: None,
            criteria: Criteria::Own { conditions },
            customer_count: summary.members,
            avg_revenue: round2(summary.average_spent),
            custom: Some(true),
        });
    }
    Ok(Json(CustomerSegments { segments: list }))
}
