//! Bearer JWTs. HS256 with the shared secret (this server's own tokens, and an external
//! auth server that shares the secret, as seed 003 does); RS256 and ES256 with the keys
//! of a JWKS file, where the key named by `kid` fixes the algorithm, so a token cannot pick
//! another (no `alg: none`, no HS/RS confusion). Claims: `sub`, `role` or `roles` (array),
//! `tenant_id` (none means the default tenant), `exp` (required); `iss` and `aud` are
//! checked on RS256/ES256 tokens when configured.

use super::{AuthMethod, Principal};
use crate::error::Error as ApiError;
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

const UNKNOWN_KID: &str = "the token's key (kid) is not one this server knows";

fn parse_jwks(jwks: &str) -> anyhow::Result<Vec<ExternalKey>> {
    use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
    let set: JwkSet = serde_json::from_str(jwks).map_err(|e| anyhow::anyhow!("the JWKS is not a JWK set: {e}"))?;
    let mut out = Vec::new();
    for jwk in &set.keys {
        let alg = match (&jwk.common.key_algorithm, &jwk.algorithm) {
            (Some(KeyAlgorithm::RS256), _) => Algorithm::RS256,
            (Some(KeyAlgorithm::ES256), _) => Algorithm::ES256,
            (None, AlgorithmParameters::RSA(_)) => Algorithm::RS256,
            (None, AlgorithmParameters::EllipticCurve(p)) if p.curve == EllipticCurve::P256 => Algorithm::ES256,
            (other, _) => {
                anyhow::bail!("JWKS key {:?}: only RS256 and ES256 keys are accepted, not {other:?}", jwk.common.key_id)
            }
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| anyhow::anyhow!("JWKS key {:?}: {e}", jwk.common.key_id))?;
        out.push(ExternalKey { kid: jwk.common.key_id.clone(), alg, key });
    }
    Ok(out)
}

/// A public key of an external issuer.
struct ExternalKey {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
    external: std::sync::RwLock<Vec<ExternalKey>>,
    external_validation: std::collections::HashMap<Algorithm, Validation>,
    /// Where to fetch the keys again when a token names an unknown `kid`.
    jwks_url: Option<String>,
    refetch_every: std::time::Duration,
    last_fetch: tokio::sync::Mutex<Option<std::time::Instant>>,
    /// Claim names an external issuer uses for (role, roles, tenant), when not ours.
    claim_names: Option<(String, String, String)>,
}

fn validation(alg: Algorithm, issuer: Option<&str>, audience: Option<&str>) -> Validation {
    let mut v = Validation::new(alg);
    v.set_required_spec_claims(&["exp", "sub"]);
    v.leeway = 30;
    match issuer {
        Some(i) => v.set_issuer(&[i]),
        None => v.iss = None,
    }
    match audience {
        Some(a) => v.set_audience(&[a]),
        None => v.validate_aud = false,
    }
    v
}

impl JwtVerifier {
    pub fn hs256(secret: &[u8]) -> Self {
        Self {
            key: DecodingKey::from_secret(secret),
            validation: validation(Algorithm::HS256, None, None),
            external: Default::default(),
            external_validation: Default::default(),
            jwks_url: None,
            refetch_every: std::time::Duration::from_secs(30),
            last_fetch: tokio::sync::Mutex::new(None),
            claim_names: None,
        }
    }

    /// Reads role, roles and tenant from these claims (falling back to `role`, `roles`,
    /// `tenant_id`), for issuers that name them otherwise.
    pub fn with_claim_names(mut self, role: &str, roles: &str, tenant: &str) -> Self {
        if (role, roles, tenant) != ("role", "roles", "tenant_id") {
            self.claim_names = Some((role.to_owned(), roles.to_owned(), tenant.to_owned()));
        }
        self
    }

    /// Adds the RS256/ES256 keys of a JWKS document.
    pub fn with_jwks(mut self, jwks: &str, issuer: Option<&str>, audience: Option<&str>) -> anyhow::Result<Self> {
        self = self.with_external_rules(issuer, audience);
        let keys = parse_jwks(jwks)?;
        self.external.write().expect("jwks").extend(keys);
        Ok(self)
    }

    /// Fetches keys from `url` (now, and again at most every `refetch_every` when a token
    /// names an unknown `kid`, as an issuer rotating keys needs).
    pub async fn with_jwks_url(
        mut self,
        url: &str,
        refetch_every: std::time::Duration,
        issuer: Option<&str>,
        audience: Option<&str>,
    ) -> Self {
        self = self.with_external_rules(issuer, audience);
        self.jwks_url = Some(url.to_owned());
        self.refetch_every = refetch_every;
        if let Err(e) = self.refetch().await {
            tracing::warn!(error = %e, url, "could not fetch the JWKS; tokens of its keys fail until it answers");
        }
        self
    }

    fn with_external_rules(mut self, issuer: Option<&str>, audience: Option<&str>) -> Self {
        for alg in [Algorithm::RS256, Algorithm::ES256] {
            self.external_validation.insert(alg, validation(alg, issuer, audience));
        }
        self
    }

    async fn refetch(&self) -> anyhow::Result<()> {
        let Some(url) = &self.jwks_url else { return Ok(()) };
        *self.last_fetch.lock().await = Some(std::time::Instant::now());
        let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(5)).build()?;
        let text = client.get(url).send().await?.error_for_status()?.text().await?;
        let keys = parse_jwks(&text)?;
        *self.external.write().expect("jwks") = keys;
        Ok(())
    }

    /// The key and rules for a token, chosen by its header; the key fixes the algorithm.
    fn key_for(&self, token: &str) -> Result<(DecodingKey, &Validation), ApiError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| ApiError::unauthorized(format!("the token is not a valid JWT: {e}")))?;
        match header.alg {
            Algorithm::HS256 => Ok((self.key.clone(), &self.validation)),
            Algorithm::RS256 | Algorithm::ES256 => {
                let external = self.external.read().expect("jwks");
                let key = match &header.kid {
                    Some(kid) => external.iter().find(|k| k.kid.as_deref() == Some(kid.as_str())),
                    None if external.len() == 1 => external.first(),
                    None => None,
                }
                .ok_or_else(|| ApiError::unauthorized(UNKNOWN_KID))?;
                if key.alg != header.alg {
                    return Err(ApiError::unauthorized(format!(
                        "the token says {:?} but its key is for {:?}",
                        header.alg, key.alg
                    )));
                }
                Ok((key.key.clone(), &self.external_validation[&key.alg]))
            }
            other => Err(ApiError::unauthorized(format!("tokens signed with {other:?} are not accepted"))),
        }
    }

    /// Verifies a token; an unknown `kid` makes it fetch the JWKS URL again first (at most
    /// once per `refetch_every`).
    pub async fn verify(&self, token: &str) -> Result<Principal, ApiError> {
        match self.verify_known(token) {
            Err(e) if e.detail == UNKNOWN_KID && self.jwks_url.is_some() => {
                let due = self.last_fetch.lock().await.is_none_or(|t| t.elapsed() >= self.refetch_every);
                if !due {
                    return Err(e);
                }
                if let Err(err) = self.refetch().await {
                    tracing::warn!(error = %err, "could not fetch the JWKS again");
                    return Err(e);
                }
                self.verify_known(token)
            }
            other => other,
        }
    }

    /// Verifies a token against the keys at hand.
    pub fn verify_known(&self, token: &str) -> Result<Principal, ApiError> {
        use jsonwebtoken::errors::ErrorKind;
        let (key, validation) = self.key_for(token)?;
        let data = decode::<serde_json::Map<String, serde_json::Value>>(token, &key, validation).map_err(|e| {
            ApiError::unauthorized(match e.kind() {
                ErrorKind::ExpiredSignature => "the token has expired".to_owned(),
                ErrorKind::InvalidSignature => "the token's signature does not verify".to_owned(),
                ErrorKind::InvalidAlgorithm => "the token's algorithm does not match its key".to_owned(),
                ErrorKind::InvalidIssuer => "the token's issuer (iss) is not the configured one".to_owned(),
                ErrorKind::InvalidAudience => "the token's audience (aud) is not the configured one".to_owned(),
                ErrorKind::MissingRequiredClaim(c) => format!("the token has no '{c}' claim"),
                _ => format!("the token is not valid: {e}"),
            })
        })?;
        let mut map = data.claims;
        if let Some((role, roles, tenant)) = &self.claim_names {
            for (from, to) in [(role, "role"), (roles, "roles"), (tenant, "tenant_id")] {
                if let Some(v) = map.get(from.as_str()).cloned() {
                    map.insert(to.to_owned(), v);
                }
            }
        }
        let c: Claims = serde_json::from_value(serde_json::Value::Object(map))
            .map_err(|e| ApiError::unauthorized(format!("the token's claims are not of the expected types: {e}")))?;
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
