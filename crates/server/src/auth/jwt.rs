//! HS256 bearer tokens. Claims: `sub`, `role` or `roles` (array), `tenant_id` (none means
//! the default tenant), `exp` (required).

use super::{AuthMethod, Principal};
use crate::http::error::ApiError;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};
use sightline_core::model::{Role, TenantId};

/// The role name that makes a superuser (and an admin of its tenant).
pub const SUPERUSER_ROLE: &str = "superuser";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// Set on tokens this server issues: the local user's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Set on tokens this server issues: `password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_method: Option<String>,
    /// Set on this server's tokens of superusers.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub superuser: bool,
    /// Issued at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Set on this server's tokens, so an access token is never taken for anything else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
}

pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl JwtVerifier {
    pub fn hs256(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 30;
        Self { key: DecodingKey::from_secret(secret), validation }
    }

    pub fn verify(&self, token: &str) -> Result<Principal, ApiError> {
        use jsonwebtoken::errors::ErrorKind;
        let data = decode::<Claims>(token, &self.key, &self.validation).map_err(|e| {
            ApiError::unauthorized(match e.kind() {
                ErrorKind::ExpiredSignature => "the token has expired".to_owned(),
                ErrorKind::InvalidSignature => "the token's signature does not verify".to_owned(),
                ErrorKind::InvalidAlgorithm => "the token must be signed with HS256".to_owned(),
                ErrorKind::MissingRequiredClaim(c) => format!("the token has no '{c}' claim"),
                _ => format!("the token is not valid: {e}"),
            })
        })?;
        let c = data.claims;
        let names: Vec<&str> =
            c.role.iter().map(String::as_str).chain(c.roles.iter().flatten().map(String::as_str)).collect();
        let local = c.auth_method.as_deref() == Some("password");
        // Only this server's own tokens may claim superuser with the flag; any token may
        // with the role name (an external issuer that shares the secret is trusted as us).
        let superuser = names.iter().any(|n| n.eq_ignore_ascii_case(SUPERUSER_ROLE)) || (local && c.superuser);
        let mut roles: Vec<Role> = names.iter().filter_map(|n| Role::parse(n).ok()).collect();
        if superuser && !roles.contains(&Role::Admin) {
            roles.push(Role::Admin);
        }
        let Some(role) = Role::strongest(roles.iter().copied()) else {
            return Err(ApiError::forbidden(
                "the token carries no Sightline role: set 'role' or 'roles' to admin, analyst, viewer or ingest",
            ));
        };
        let tenant = match c.tenant_id.as_deref() {
            None | Some("") => TenantId::default_tenant(),
            Some(t) => TenantId::parse(t)
                .map_err(|e| ApiError::unauthorized(format!("the token's tenant_id is invalid: {e}")))?,
        };
        if c.sub.is_empty() {
            return Err(ApiError::unauthorized("the token's 'sub' claim is empty"));
        }
        let via = if local { AuthMethod::Password } else { AuthMethod::Jwt };
        Ok(Principal { tenant, subject: c.sub, role, roles, superuser, via, username: c.username })
    }
}

/// Signs claims with HS256 (used by tests and, in the next issue, by the login endpoints).
pub fn sign_hs256(secret: &[u8], claims: &Claims) -> String {
    encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret))
        .expect("HS256 signing cannot fail")
}
