//! Tenant-owned resources, written once: a kind of resource (a segment, an alert rule, a
//! custom metric; dashboards, reports and webhooks next) is a type that implements
//! [`Resource`] — how a body becomes the stored JSON, and how the stored JSON is shown —
//! and gets its five routes (list, create, read, replace, delete), their documentation,
//! the per-tenant limit and the name conflicts from here. Every kind is stored by
//! [`crate::store::ResourceStore`] in one table, so PostgreSQL implements it once.

use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiPath};
use super::guard::rate_limit::LimitClass;
use super::route::{Route, route};
use crate::app::AppState;
use crate::auth::{Caller, CanAuthor, CanRead};
use crate::store::{StoreError, StoredResource};
use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::routing::{delete, get, post, put};
use chrono::Utc;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sightline_core::code::Code;
use sightline_core::model::TenantId;
use std::future::Future;

/// A kind of tenant-owned resource.
pub trait Resource: Send + Sync + 'static {
    /// The stored kind.
    const KIND: &'static str;
    /// What a client calls one, and several, in messages and the document.
    const NOUN: &'static str;
    const PLURAL: &'static str;
    /// The tag of its operations in the document.
    const TAG: &'static str;
    /// Most a tenant may keep.
    const MAX_PER_TENANT: usize;
    /// Whether two of a tenant's may share a name.
    const UNIQUE_NAME: bool;
    /// Addressed by its name (`/custom-metrics/{name}`): its id is its name.
    const KEYED_BY_NAME: bool = false;
    /// The `message` of a deletion's answer.
    const DELETED: &'static str;

    /// A create or replace body.
    type Body: DeserializeOwned + utoipa::ToSchema + Send + 'static;
    /// One resource as answered.
    type Answer: Serialize + utoipa::ToSchema + Send + 'static;
    /// The list's answer.
    type List: Serialize + utoipa::ToSchema + Send + 'static;

    /// Checks a body: the resource's name and the JSON to store. `key` is the path's id
    /// or name on a replace.
    fn parse(
        state: &AppState,
        tenant: &TenantId,
        body: Self::Body,
        key: Option<&str>,
    ) -> impl Future<Output = ApiResult<(String, Value)>> + Send;

    /// One stored resource as answered.
    fn present(
        state: &AppState,
        tenant: &TenantId,
        r: StoredResource,
    ) -> impl Future<Output = ApiResult<Self::Answer>> + Send;

    /// The list's answer around its items.
    fn list(items: Vec<Self::Answer>) -> Self::List;

    /// Refuses a deletion that would break something (a 409 saying what).
    fn before_delete(
        _state: &AppState,
        _tenant: &TenantId,
        _r: &StoredResource,
    ) -> impl Future<Output = ApiResult<()>> + Send {
        async { Ok(()) }
    }

    /// The order lists answer in: oldest first unless a kind says otherwise.
    fn sort(_items: &mut [StoredResource]) {}
}

/// A deletion's answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Deleted {
    message: &'static str,
    /// The deleted resource's id.
    id: String,
    /// The deleted metric's name (custom metrics).
    #[serde(skip_serializing_if = "Option::is_none")]
    metric_name: Option<String>,
}

fn not_found<R: Resource>(key: &str) -> ApiError {
    if R::KEYED_BY_NAME {
        ApiError::not_found(format!("no {} named '{key}'", R::NOUN))
    } else {
        ApiError::not_found(format!("no {} with id '{key}'", R::NOUN))
    }
}

fn conflict<R: Resource>(name: &str) -> impl Fn(StoreError) -> ApiError + '_ {
    move |e| match e {
        StoreError::Conflict(_) => {
            ApiError::new(Code::Conflict, format!("a {} named '{name}' exists already", R::NOUN))
        }
        other => other.into(),
    }
}

/// A tenant's resources of kind `R`, in `R`'s order.
pub async fn all<R: Resource>(state: &AppState, tenant: &TenantId) -> ApiResult<Vec<StoredResource>> {
    let mut items = state.meta.list_resources(tenant, R::KIND).await?;
    R::sort(&mut items);
    Ok(items)
}

/// One of a tenant's resources of kind `R`, or a 404.
pub async fn one<R: Resource>(state: &AppState, tenant: &TenantId, key: &str) -> ApiResult<StoredResource> {
    state.meta.get_resource(tenant, R::KIND, key).await?.ok_or_else(|| not_found::<R>(key))
}

async fn list<R: Resource>(caller: Caller<CanRead>, State(state): State<AppState>) -> ApiResult<Json<R::List>> {
    let mut out = Vec::new();
    for r in all::<R>(&state, &caller.tenant).await? {
        out.push(R::present(&state, &caller.tenant, r).await?);
    }
    Ok(Json(R::list(out)))
}

async fn create<R: Resource>(
    caller: Caller<CanAuthor>,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<R::Body>,
) -> ApiResult<(StatusCode, Json<R::Answer>)> {
    let (name, doc) = R::parse(&state, &caller.tenant, body, None).await?;
    let now = Utc::now();
    let id = if R::KEYED_BY_NAME { name.clone() } else { uuid::Uuid::now_v7().to_string() };
    let r = StoredResource { id, name: name.clone(), body: doc, created_at: now, updated_at: now };
    let inserted = state
        .meta
        .insert_resource(&caller.tenant, R::KIND, &r, R::UNIQUE_NAME, R::MAX_PER_TENANT)
        .await
        .map_err(conflict::<R>(&name))?;
    if !inserted {
        return Err(ApiError::new(
            Code::Unprocessable,
            format!("a tenant keeps at most {} {}", R::MAX_PER_TENANT, R::PLURAL),
        ));
    }
    Ok((StatusCode::CREATED, Json(R::present(&state, &caller.tenant, r).await?)))
}

async fn read<R: Resource>(
    caller: Caller<CanRead>,
    State(state): State<AppState>,
    ApiPath(key): ApiPath<String>,
) -> ApiResult<Json<R::Answer>> {
    let r = one::<R>(&state, &caller.tenant, &key).await?;
    Ok(Json(R::present(&state, &caller.tenant, r).await?))
}

async fn replace<R: Resource>(
    caller: Caller<CanAuthor>,
    State(state): State<AppState>,
    ApiPath(key): ApiPath<String>,
    ApiJson(body): ApiJson<R::Body>,
) -> ApiResult<Json<R::Answer>> {
    let old = one::<R>(&state, &caller.tenant, &key).await?;
    let (name, doc) = R::parse(&state, &caller.tenant, body, Some(&key)).await?;
    let r = StoredResource { name: name.clone(), body: doc, updated_at: Utc::now(), ..old };
    if !state.meta.replace_resource(&caller.tenant, R::KIND, &r, R::UNIQUE_NAME).await.map_err(conflict::<R>(&name))? {
        return Err(not_found::<R>(&key));
    }
    Ok(Json(R::present(&state, &caller.tenant, r).await?))
}

async fn remove<R: Resource>(
    caller: Caller<CanAuthor>,
    State(state): State<AppState>,
    ApiPath(key): ApiPath<String>,
) -> ApiResult<Json<Deleted>> {
    let r = one::<R>(&state, &caller.tenant, &key).await?;
    R::before_delete(&state, &caller.tenant, &r).await?;
    if !state.meta.delete_resource(&caller.tenant, R::KIND, &key).await? {
        return Err(not_found::<R>(&key));
    }
    let metric_name = R::KEYED_BY_NAME.then(|| r.name.clone());
    Ok(Json(Deleted { message: R::DELETED, id: r.id, metric_name }))
}

/// The five routes of kind `R` at `collection` and `item` (`{id}` or `{name}`), each a
/// `queries`-class route: readers list and read, authors change.
pub fn routes<R: Resource>(collection: &'static str, item: &'static str, body_limit: usize) -> Vec<Route> {
    let (noun, plural) = (R::NOUN, R::PLURAL);
    let conflicts: &[u16] = if R::UNIQUE_NAME { &[409] } else { &[] };
    vec![
        route(Method::GET, collection, get(list::<R>))
            .access::<CanRead>()
            .class(LimitClass::Queries)
            .answers::<R::List>(200)
            .errors(&[504])
            .summary(R::TAG, format!("List {plural}")),
        route(Method::POST, collection, post(create::<R>))
            .access::<CanAuthor>()
            .class(LimitClass::Queries)
            .body::<R::Body>(body_limit)
            .answers::<R::Answer>(201)
            .errors(conflicts)
            .errors(&[504])
            .summary(R::TAG, format!("Create a {noun}")),
        route(Method::GET, item, get(read::<R>))
            .access::<CanRead>()
            .class(LimitClass::Queries)
            .answers::<R::Answer>(200)
            .errors(&[504])
            .summary(R::TAG, format!("Read a {noun}")),
        route(Method::PUT, item, put(replace::<R>))
            .access::<CanAuthor>()
            .class(LimitClass::Queries)
            .body::<R::Body>(body_limit)
            .answers::<R::Answer>(200)
            .errors(conflicts)
            .errors(&[504])
            .summary(R::TAG, format!("Replace a {noun}")),
        route(Method::DELETE, item, delete(remove::<R>))
            .access::<CanAuthor>()
            .class(LimitClass::Queries)
            .answers::<Deleted>(200)
            .summary(R::TAG, format!("Delete a {noun}")),
    ]
}
