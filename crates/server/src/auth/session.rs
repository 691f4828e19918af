//! Local sign-in: a username and password buy a short-lived access JWT and a refresh
//! token. Refresh tokens rotate: each is single-use, and presenting a used one revokes
//! its whole family (the sign-in it came from), since one of the two holders is a thief.

use super::jwt::{Claims, sign_hs256};
use super::password;
use crate::error::Error as ApiError;
use crate::store::{MetaStore, RefreshToken, RefreshUse, User};
use chrono::{Duration as ChronoDuration, Utc};
use sha2::{Digest, Sha256};
use sightline_core::code::Code;
use sightline_core::model::TenantId;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const REFRESH_PREFIX: &str = "slr_";
/// Failures of one username before its sign-ins are slowed down.
const FREE_FAILURES: u32 = 5;
const MAX_LOCK: Duration = Duration::from_secs(300);

/// Tokens handed out by one sign-in or refresh.
#[derive(Debug, Clone)]
pub struct Issued {
    pub access: String,
    pub refresh: String,
    /// Seconds the access token is valid.
    pub expires_in: u64,
    pub user: User,
}

struct Failures {
    count: u32,
    locked_until: Option<Instant>,
}

pub struct Sessions {
    secret: Vec<u8>,
    access_ttl: Duration,
    refresh_ttl: Duration,
    /// Verified when the user does not exist, so that an unknown user costs what a wrong
    /// password costs and the answer's timing tells nothing.
    dummy_hash: String,
    failures: Mutex<HashMap<String, Failures>>,
}

/// Why a sign-in failed; every kind answers the same 401 to the client.
pub const BAD_CREDENTIALS: &str = "invalid username or password";

impl Sessions {
    pub fn new(secret: &str, access_ttl: Duration, refresh_ttl: Duration) -> anyhow::Result<Self> {
        Ok(Self {
            secret: secret.as_bytes().to_vec(),
            access_ttl,
            refresh_ttl,
            dummy_hash: password::hash("sightline-dummy-password")?,
            failures: Mutex::new(HashMap::new()),
        })
    }

    fn throttle_key(tenant: &TenantId, username: &str) -> String {
        format!("{tenant}/{}", username.to_lowercase())
    }

    fn check_lock(&self, key: &str) -> Result<(), ApiError> {
        let failures = self.failures.lock().expect("failures");
        if let Some(until) = failures.get(key).and_then(|f| f.locked_until) {
            let now = Instant::now();
            if until > now {
                let secs = (until - now).as_secs().max(1);
                let mut e = ApiError::new(
                    Code::RateLimited,
                    format!("too many failed sign-ins for this username; retry in {secs} s"),
                );
                e.retry_after = Some(secs);
                return Err(e);
            }
        }
        Ok(())
    }

    fn note_failure(&self, key: &str) {
        let mut failures = self.failures.lock().expect("failures");
        if failures.len() > 100_000 {
            failures.clear(); // bounded memory under a spray of usernames
        }
        let f = failures.entry(key.to_owned()).or_insert(Failures { count: 0, locked_until: None });
        f.count += 1;
        if f.count >= FREE_FAILURES {
            let secs = 1u64 << (f.count - FREE_FAILURES).min(16);
            f.locked_until = Some(Instant::now() + Duration::from_secs(secs).min(MAX_LOCK));
        }
    }

    /// Checks a password and issues tokens. Unknown user and wrong password fail alike.
    pub async fn sign_in(
        &self,
        meta: &dyn MetaStore,
        tenant: &TenantId,
        username: &str,
        password_given: &str,
    ) -> Result<Issued, ApiError> {
        let key = Self::throttle_key(tenant, username);
        self.check_lock(&key)?;
        let found = meta.find_user(tenant, username).await?;
        let (hash, user) = match found {
            Some(c) => (c.password_hash, Some(c.user)),
            None => (self.dummy_hash.clone(), None),
        };
        let given = password_given.to_owned();
        let ok =
            tokio::task::spawn_blocking(move || password::verify(&given, &hash)).await.map_err(ApiError::internal)?;
        match user {
            Some(user) if ok => {
                self.failures.lock().expect("failures").remove(&key);
                let family = uuid::Uuid::now_v7().to_string();
                self.issue(meta, user, family).await
            }
            _ => {
                self.note_failure(&key);
                Err(ApiError::unauthorized(BAD_CREDENTIALS))
            }
        }
    }

    /// Trades a refresh token for new tokens.
    pub async fn refresh(&self, meta: &dyn MetaStore, token: &str) -> Result<Issued, ApiError> {
        if !token.starts_with(REFRESH_PREFIX) {
            return Err(ApiError::unauthorized("the refresh token is not valid"));
        }
        let found = match meta.use_refresh_token(&hash(token), Utc::now()).await? {
            RefreshUse::Fresh(t) => t,
            RefreshUse::Replayed => {
                tracing::warn!("a used refresh token was presented again; its family is revoked");
                return Err(ApiError::unauthorized(
                    "the refresh token was already used; every token of this sign-in is now revoked",
                ));
            }
            RefreshUse::Expired => return Err(ApiError::unauthorized("the refresh token has expired")),
            RefreshUse::Unknown => return Err(ApiError::unauthorized("the refresh token is not valid")),
        };
        let Some(user) = meta.get_user(&found.tenant_id, &found.user_id).await? else {
            return Err(ApiError::unauthorized("the refresh token's user no longer exists"));
        };
        self.issue(meta, user, found.family_id).await
    }

    async fn issue(&self, meta: &dyn MetaStore, user: User, family_id: String) -> Result<Issued, ApiError> {
        let now = Utc::now();
        let claims = Claims {
            sub: user.id.clone(),
            exp: (now.timestamp() as u64) + self.access_ttl.as_secs(),
            iat: Some(now.timestamp() as u64),
            role: Some(user.role.as_str().to_owned()),
            tenant_id: Some(user.tenant_id.to_string()),
            username: Some(user.username.clone()),
            auth_method: Some("password".into()),
            superuser: user.superuser,
            token_type: Some("access".into()),
            ..Default::default()
        };
        let access = sign_hs256(&self.secret, &claims);
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(ApiError::internal)?;
        let refresh = format!("{REFRESH_PREFIX}{}", hex::encode(bytes));
        let record = RefreshToken {
            id: uuid::Uuid::now_v7().to_string(),
            family_id,
            user_id: user.id.clone(),
            tenant_id: user.tenant_id.clone(),
            expires_at: now + ChronoDuration::from_std(self.refresh_ttl).map_err(ApiError::internal)?,
        };
        meta.create_refresh_token(&record, &hash(&refresh)).await?;
        Ok(Issued { access, refresh, expires_in: self.access_ttl.as_secs(), user })
    }
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}
