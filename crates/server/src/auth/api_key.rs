//! API keys: `sl_` and 40 hex digits, made by `sightline keys create`. Only a SHA-256 of
//! the key is stored; a key is as random as a password hash would need to be strong,
//! so a fast hash is enough and lookups stay cheap.

use super::{AuthMethod, Principal};
use crate::error::Error as ApiError;
use crate::store::{ApiKey, MetaStore};
use chrono::Utc;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const PREFIX: &str = "sl_";
const SECRET_HEX: usize = 40;
/// How long a verified key is trusted without asking the meta store again.
const CACHE_TTL: Duration = Duration::from_secs(30);

pub fn looks_like_key(token: &str) -> bool {
    token.starts_with(PREFIX)
}

/// A new key: the full secret (shown once) and its hash (stored).
pub fn generate() -> (String, String) {
    let mut bytes = [0u8; SECRET_HEX / 2];
    getrandom::fill(&mut bytes).expect("the OS random source");
    let key = format!("{PREFIX}{}", hex::encode(bytes));
    let hash = hash(&key);
    (key, hash)
}

pub fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The part of a key shown in lists.
pub fn display_prefix(key: &str) -> &str {
    &key[..PREFIX.len() + 8]
}

#[derive(Default)]
pub struct KeyCache {
    verified: Mutex<HashMap<String, (ApiKey, Instant)>>,
    /// When each key's last use was written, so a busy key costs one write a minute.
    touched: Mutex<HashMap<String, Instant>>,
}

/// How often a key's `last_used_at` is written at most.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

impl KeyCache {
    /// Drops every cached key (after a revocation or a tenant's deletion).
    pub fn clear(&self) {
        self.verified.lock().expect("key cache").clear();
    }

    async fn note_use(&self, key: &ApiKey, meta: &dyn MetaStore) {
        {
            let mut touched = self.touched.lock().expect("key cache");
            if touched.get(&key.id).is_some_and(|t| t.elapsed() < TOUCH_EVERY) {
                return;
            }
            touched.insert(key.id.clone(), Instant::now());
        }
        if let Err(e) = meta.touch_api_key(&key.id, Utc::now()).await {
            tracing::warn!(error = %e, key = %key.id, "could not record an API key's use");
        }
    }

    pub async fn verify(&self, token: &str, meta: &dyn MetaStore) -> Result<Principal, ApiError> {
        let secret = &token[PREFIX.len()..];
        if secret.len() != SECRET_HEX || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::unauthorized("the API key is malformed"));
        }
        let h = hash(token);
        let cached = self
            .verified
            .lock()
            .expect("key cache")
            .get(&h)
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .map(|(k, _)| k.clone());
        let key = match cached {
            Some(k) => k,
            None => {
                let k =
                    meta.find_api_key(&h).await?.ok_or_else(|| ApiError::unauthorized("the API key is not known"))?;
                let mut cache = self.verified.lock().expect("key cache");
                if cache.len() > 10_000 {
                    cache.clear();
                }
                cache.insert(h, (k.clone(), Instant::now()));
                k
            }
        };
        if key.revoked_at.is_some() {
            return Err(ApiError::unauthorized("the API key has been revoked"));
        }
        if key.expires_at.is_some_and(|t| t <= Utc::now()) {
            return Err(ApiError::unauthorized("the API key has expired"));
        }
        self.note_use(&key, meta).await;
        Ok(Principal {
            tenant: key.tenant_id,
            subject: key.id,
            role: key.role,
            roles: vec![key.role],
            superuser: false,
            via: AuthMethod::ApiKey,
            username: None,
        })
    }
}
