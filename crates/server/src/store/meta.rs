//! The meta store's objects and the traits a backend implements, one per concern.
//! [`MetaStore`] is all of them: what the service holds.

use super::StoreResult;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sightline_core::model::{Role, TenantId};

/// A tenant: one customer's isolated data.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// A local user, who signs in with a password.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: String,
    pub tenant_id: TenantId,
    pub username: String,
    pub role: Role,
    /// May manage tenants and act in any of them.
    pub superuser: bool,
    pub created_at: DateTime<Utc>,
}

/// A user with the hash to check a password against.
#[derive(Debug, Clone)]
pub struct UserCredential {
    pub user: User,
    pub password_hash: String,
}

/// An API key, without the key itself.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ApiKey {
    pub id: String,
    pub tenant_id: TenantId,
    pub name: String,
    /// The key's first characters, to recognise it in a list; never enough to use it.
    pub prefix: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    pub tenant: &'a TenantId,
    pub username: &'a str,
    pub password_hash: &'a str,
    pub role: Role,
    pub superuser: bool,
}

/// What may change on a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserChange {
    pub role: Option<Role>,
    pub password_hash: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewApiKey<'a> {
    pub tenant: &'a TenantId,
    pub name: &'a str,
    pub prefix: &'a str,
    pub key_hash: &'a str,
    pub role: Role,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A refresh token as stored: only its hash, and the family of rotations it belongs to.
#[derive(Debug, Clone)]
pub struct RefreshToken {
    pub id: String,
    pub family_id: String,
    pub user_id: String,
    pub tenant_id: TenantId,
    pub expires_at: DateTime<Utc>,
}

/// What presenting a refresh token found.
#[derive(Debug, Clone)]
pub enum RefreshUse {
    /// Unused and now marked used: the caller may issue the next one of the family.
    Fresh(RefreshToken),
    /// Used before, or revoked: a replay. The whole family is now revoked.
    Replayed,
    Expired,
    Unknown,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: String,
    pub tenant_id: TenantId,
    pub at: DateTime<Utc>,
    /// Who: a user id, an API key id, a token subject, or the username tried.
    pub actor: String,
    /// What: `sign_in`, `sign_in_failed`, `user.create`, `api_key.revoke`, ...
    pub action: String,
    /// On what: the id of the object changed, when there is one.
    pub target: Option<String>,
    /// From where: the client address.
    pub ip: Option<String>,
    pub details: serde_json::Value,
}

#[async_trait]
pub trait TenantStore: Send + Sync {
    async fn create_tenant(&self, id: &TenantId, name: &str) -> StoreResult<Tenant>;
    /// Creates the tenant unless it exists; true when it was created.
    async fn ensure_tenant(&self, id: &TenantId, name: &str) -> StoreResult<bool>;
    async fn get_tenant(&self, id: &TenantId) -> StoreResult<Option<Tenant>>;
    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>>;
    async fn rename_tenant(&self, id: &TenantId, name: &str) -> StoreResult<Option<Tenant>>;
    /// Deletes the tenant and every object it owns here; false when there was none.
    async fn delete_tenant(&self, id: &TenantId) -> StoreResult<bool>;
    async fn get_tenant_setting(&self, id: &TenantId, name: &str) -> StoreResult<Option<serde_json::Value>>;
    async fn put_tenant_setting(&self, id: &TenantId, name: &str, value: &serde_json::Value) -> StoreResult<()>;
    /// One setting of every tenant that has it.
    async fn all_tenant_settings(&self, name: &str) -> StoreResult<Vec<(TenantId, serde_json::Value)>>;
}

#[async_trait]
pub trait UserStore: Send + Sync {
    async fn create_user(&self, user: NewUser<'_>) -> StoreResult<User>;
    async fn find_user(&self, tenant: &TenantId, username: &str) -> StoreResult<Option<UserCredential>>;
    async fn get_user(&self, tenant: &TenantId, id: &str) -> StoreResult<Option<User>>;
    async fn list_users(&self, tenant: &TenantId) -> StoreResult<Vec<User>>;
    async fn update_user(&self, tenant: &TenantId, id: &str, change: UserChange) -> StoreResult<Option<User>>;
    async fn delete_user(&self, tenant: &TenantId, id: &str) -> StoreResult<bool>;
}

#[async_trait]
pub trait KeyStore: Send + Sync {
    async fn create_api_key(&self, key: NewApiKey<'_>) -> StoreResult<ApiKey>;
    /// Looks a key up by the hash of its secret, over all tenants: the key names its tenant.
    async fn find_api_key(&self, key_hash: &str) -> StoreResult<Option<ApiKey>>;
    async fn list_api_keys(&self, tenant: &TenantId) -> StoreResult<Vec<ApiKey>>;
    /// Revokes the key; `None` when the tenant has no such key.
    async fn revoke_api_key(&self, tenant: &TenantId, id: &str) -> StoreResult<Option<ApiKey>>;
    async fn touch_api_key(&self, id: &str, at: DateTime<Utc>) -> StoreResult<()>;
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn create_refresh_token(&self, token: &RefreshToken, token_hash: &str) -> StoreResult<()>;
    /// Marks the token used, atomically: of two concurrent uses exactly one is `Fresh`.
    async fn use_refresh_token(&self, token_hash: &str, now: DateTime<Utc>) -> StoreResult<RefreshUse>;
    /// Revokes every refresh token of a user (on delete or password change).
    async fn revoke_user_sessions(&self, tenant: &TenantId, user_id: &str) -> StoreResult<()>;
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn record_audit(&self, entry: &AuditEntry) -> StoreResult<()>;
    /// Newest first.
    async fn list_audit(&self, tenant: &TenantId, limit: u32, offset: u32) -> StoreResult<Vec<AuditEntry>>;
}

/// An answer kept for replay.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    pub status: u16,
    /// (name, value) pairs worth replaying (content type, location, ...).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What claiming an idempotency key found.
#[derive(Debug, Clone, PartialEq)]
pub enum IdempotencyClaim {
    /// First use: the caller runs the request and then completes or releases the key.
    Claimed,
    /// Done before with the same request: replay this.
    Replay(StoredResponse),
    /// Used before with a different request.
    Mismatch,
    /// The first request with this key is still running.
    InProgress,
}

/// The idempotency scope of a tenant's requests: keys are per tenant.
pub fn tenant_scope(tenant: &TenantId) -> String {
    format!("tenant:{tenant}")
}

/// An answer to keep for a key, with what identifies its request.
#[derive(Debug, Clone, PartialEq)]
pub struct KeptAnswer {
    pub scope: String,
    pub key: String,
    /// Of the request (method, path, query, body): another request with the key is a 422.
    pub fingerprint: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub response: StoredResponse,
}

/// Keeps the answers of keyed ingest requests on the ingest writer's thread, right after
/// their events are committed and before the requests hear of it: no other thread has to
/// wake up on a keyed request's way (see `crate::ingest`).
pub trait AnswerKeeper: Send {
    /// Keeps `answers` and ends their claims. A failure is logged: the events are stored,
    /// and a retry runs again instead of replaying.
    fn keep(&mut self, answers: Vec<KeptAnswer>);
}

/// Keeps nothing (the writer on its own, in tests and benches).
pub struct NoKeeper;

impl AnswerKeeper for NoKeeper {
    fn keep(&mut self, _: Vec<KeptAnswer>) {}
}

#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// The keeper for the ingest writer's thread.
    fn answer_keeper(&self) -> Box<dyn AnswerKeeper>;
    /// Claims `key` in `scope` for a request with this fingerprint. Entries older than
    /// `ttl` are gone; a `running` entry older than `stale` counts as abandoned.
    async fn claim_idempotency(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
        stale: chrono::Duration,
    ) -> StoreResult<IdempotencyClaim>;
    async fn complete_idempotency(&self, scope: &str, key: &str, response: StoredResponse) -> StoreResult<()>;
    /// Forgets a claim whose request should be retried for real (it failed on our side).
    async fn release_idempotency(&self, scope: &str, key: &str) -> StoreResult<()>;
}

/// A tenant-owned resource as stored: its kind's JSON with an id, a name and its times.
/// `http::resource` gives each kind its type and routes.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResource {
    pub id: String,
    pub name: String,
    pub body: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Tenant-owned resources of every kind: one implementation per backend.
#[async_trait]
pub trait ResourceStore: Send + Sync {
    /// Stores a new resource unless the tenant keeps `max` of its kind already (then
    /// `false`). Conflict when `unique_name` and the tenant has one of that kind and name.
    async fn insert_resource(
        &self,
        tenant: &TenantId,
        kind: &str,
        r: &StoredResource,
        unique_name: bool,
        max: usize,
    ) -> StoreResult<bool>;
    /// Oldest first.
    async fn list_resources(&self, tenant: &TenantId, kind: &str) -> StoreResult<Vec<StoredResource>>;
    async fn get_resource(&self, tenant: &TenantId, kind: &str, id: &str) -> StoreResult<Option<StoredResource>>;
    /// Replaces the name, body and update time; false when there is none.
    async fn replace_resource(
        &self,
        tenant: &TenantId,
        kind: &str,
        r: &StoredResource,
        unique_name: bool,
    ) -> StoreResult<bool>;
    async fn delete_resource(&self, tenant: &TenantId, kind: &str, id: &str) -> StoreResult<bool>;
}

/// Everything the meta store holds.
#[async_trait]
pub trait MetaStore:
    TenantStore + UserStore + KeyStore + SessionStore + AuditStore + IdempotencyStore + ResourceStore + 'static
{
    /// A server-wide setting, created with `make` the first time it is asked for.
    async fn setting_or_init(&self, name: &str, make: &(dyn Fn() -> String + Sync)) -> StoreResult<String>;
    async fn ping(&self) -> StoreResult<()>;
}
