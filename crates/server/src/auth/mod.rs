//! Who is calling. A handler states what it needs in its signature: `Caller<CanRead>`
//! will not run for a caller without the read permission, so no handler can forget the
//! check. Credentials are HS256 JWTs (an external auth server shares the secret, as
//! seed 003 does) and API keys made by the CLI.

pub mod api_key;
pub mod jwt;
pub mod password;
pub mod session;

use crate::app::AppState;
use crate::error::Error as ApiError;
use crate::store::MetaStore;
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use sightline_core::model::{Permission, Role, TenantId};
use std::collections::HashSet;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

/// How a caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// A token from an external issuer.
    Jwt,
    /// An access token this server issued after a password sign-in.
    Password,
    ApiKey,
}

/// An authenticated caller, inside one tenant.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant: TenantId,
    /// The token's `sub`, or the API key's id.
    pub subject: String,
    /// The strongest role held, for display.
    pub role: Role,
    /// Every role held (a JWT's `roles` may name several); a permission of any counts.
    pub roles: Vec<Role>,
    /// May manage tenants and act in any tenant (`X-Tenant-ID`).
    pub superuser: bool,
    pub via: AuthMethod,
    /// The username, for a local user.
    pub username: Option<String>,
}

impl Principal {
    pub fn allows(&self, p: Permission) -> bool {
        self.roles.iter().any(|r| r.allows(p))
    }
}

/// What an endpoint demands of its caller, as a type.
pub trait Need: Send + Sync + 'static {
    /// The access level, as the route table lists it.
    const ACCESS: Access;
    const WHAT: &'static str;
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a credential (probes, sign-in).
    Public,
    /// Any valid credential.
    Signed,
    /// A credential whose role grants the permission.
    Role(Permission),
    /// A superuser.
    Superuser,
}

impl Access {
    pub fn admits(self, p: &Principal) -> bool {
        match self {
            Access::Public | Access::Signed => true,
            Access::Role(perm) => p.allows(perm),
            Access::Superuser => p.superuser,
        }
    }
}

macro_rules! need {
    ($name:ident, $access:expr, $what:literal) => {
        pub struct $name;
        impl Need for $name {
            const ACCESS: Access = $access;
            const WHAT: &'static str = $what;
        }
    };
}
need!(Signed, Access::Signed, "be signed in");
need!(CanIngest, Access::Role(Permission::Ingest), "send events");
need!(CanRead, Access::Role(Permission::Read), "read analytics");
need!(CanAuthor, Access::Role(Permission::Author), "create dashboards, reports and queries");
need!(CanManage, Access::Role(Permission::Manage), "manage the tenant");
need!(IsSuperuser, Access::Superuser, "manage tenants (superusers only)");

/// The extractor: an authenticated caller allowed `N`.
pub struct Caller<N: Need> {
    pub principal: Principal,
    _need: PhantomData<N>,
}

impl<N: Need> std::ops::Deref for Caller<N> {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.principal
    }
}

impl<N: Need> FromRequestParts<AppState> for Caller<N> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // The guard middleware may have authenticated this request already.
        let principal = match (parts.extensions.get::<Principal>(), parts.extensions.get::<AuthFailure>()) {
            (Some(p), _) => p.clone(),
            (None, Some(f)) => return Err(f.0.clone()),
            (None, None) => state.auth.authenticate(parts).await?,
        };
        if !N::ACCESS.admits(&principal) {
            return Err(ApiError::forbidden(format!(
                "role '{}' may not {}; this endpoint needs a role with that permission",
                principal.role,
                N::WHAT
            )));
        }
        Ok(Caller { principal, _need: PhantomData })
    }
}

/// A credential the guard already found bad, so it is not checked twice.
#[derive(Debug, Clone)]
pub struct AuthFailure(pub ApiError);

/// Checks credentials. Shared by all requests.
pub struct Authenticator {
    pub(crate) jwt: jwt::JwtVerifier,
    pub(crate) keys: api_key::KeyCache,
    meta: Arc<dyn MetaStore>,
    /// Tenants known to exist, so that a valid token for a new tenant creates it once.
    known_tenants: Mutex<HashSet<TenantId>>,
}

impl Authenticator {
    pub fn new(jwt: jwt::JwtVerifier, meta: Arc<dyn MetaStore>) -> Self {
        Self { jwt, keys: api_key::KeyCache::default(), meta, known_tenants: Mutex::new(HashSet::new()) }
    }

    pub async fn authenticate(&self, parts: &Parts) -> Result<Principal, ApiError> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::unauthorized(
                "no credential: send 'Authorization: Bearer <token>' with a JWT or an API key",
            ));
        };
        let value =
            value.to_str().map_err(|_| ApiError::unauthorized("the Authorization header is not visible ASCII"))?;
        let Some(token) = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).map(str::trim) else {
            return Err(ApiError::unauthorized("the Authorization header must use the Bearer scheme"));
        };
        if token.is_empty() {
            return Err(ApiError::unauthorized("the Bearer credential is empty"));
        }
        let mut principal = if api_key::looks_like_key(token) {
            self.keys.verify(token, self.meta.as_ref()).await?
        } else {
            self.jwt.verify(token).await?
        };
        if principal.via != AuthMethod::ApiKey {
            self.ensure_tenant(&principal.tenant).await?;
        }
        if let Some(h) = parts.headers.get("x-tenant-id") {
            let asked = h
                .to_str()
                .ok()
                .and_then(|s| TenantId::parse(s.trim()).ok())
                .ok_or_else(|| ApiError::field("X-Tenant-ID", "X-Tenant-ID is not a valid tenant id"))?;
            if asked != principal.tenant {
                if !principal.superuser {
                    return Err(ApiError::forbidden(format!(
                        "X-Tenant-ID '{asked}' differs from the credential's tenant"
                    )));
                }
                self.ensure_known(&asked).await?;
                principal.tenant = asked;
            }
        }
        Ok(principal)
    }

    /// Forgets cached knowledge of a tenant (after it is deleted).
    pub fn forget_tenant(&self, tenant: &TenantId) {
        self.known_tenants.lock().expect("tenant cache").remove(tenant);
        self.keys.clear();
    }

    async fn ensure_tenant(&self, tenant: &TenantId) -> Result<(), ApiError> {
        if self.known_tenants.lock().expect("tenant cache").contains(tenant) {
            return Ok(());
        }
        if self.meta.ensure_tenant(tenant, tenant.as_str()).await? {
            tracing::info!(tenant = %tenant, "tenant created on first valid token");
        }
        self.known_tenants.lock().expect("tenant cache").insert(tenant.clone());
        Ok(())
    }

    /// A superuser may switch only to a tenant that exists.
    async fn ensure_known(&self, tenant: &TenantId) -> Result<(), ApiError> {
        if self.known_tenants.lock().expect("tenant cache").contains(tenant) {
            return Ok(());
        }
        match self.meta.get_tenant(tenant).await? {
            Some(_) => {
                self.known_tenants.lock().expect("tenant cache").insert(tenant.clone());
                Ok(())
            }
            None => Err(ApiError::not_found(format!("no tenant '{tenant}'"))),
        }
    }
}
