//! `Idempotency-Key` (seed 001): the same key with the same request replays the first
//! answer with `Idempotent-Replayed: true`; with another request it is a 422; while the
//! first is still running, a 409. Keys are per tenant and kept 24 hours. Answers that
//! failed on our side (5xx) or were refused for load (429) are not kept, so a retry runs.
//!
//! The guard keeps a handler's answer after the handler. An ingest handler does better: it
//! takes the request's [`Ticket`] and hands its answer to the ingest writer with its events
//! (`crate::ingest`); its response then carries [`AnswerKept`], and the guard has nothing
//! left to do.

use crate::app::AppState;
use crate::http::error::ApiError;
use crate::store::{IdempotencyClaim, KeptAnswer, StoredResponse};
use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use sightline_core::code::Code;

pub const MAX_KEY_LEN: usize = 255;
/// Largest body a keyed request may have (the batch limit).
const MAX_BODY: usize = crate::http::events::MAX_BATCH_BYTES;
/// Response headers worth replaying.
const KEPT_HEADERS: [&str; 2] = ["content-type", "location"];

/// A keyed request's claim, in its extensions: what its handler needs to keep its answer.
#[derive(Debug, Clone)]
pub struct Ticket {
    scope: String,
    key: String,
    fingerprint: String,
    at: DateTime<Utc>,
}

impl Ticket {
    /// The answer to keep for this request.
    pub fn answer(self, response: StoredResponse) -> KeptAnswer {
        KeptAnswer {
            scope: self.scope,
            key: self.key,
            fingerprint: self.fingerprint,
            created_at: self.at,
            expires_at: self.at + ttl(),
            response,
        }
    }
}

/// On a response: its answer is kept already, and its claim ended (through a [`Ticket`]).
#[derive(Debug, Clone, Copy)]
pub struct AnswerKept;

pub fn ttl() -> Duration {
    Duration::hours(24)
}

/// A claim older than this whose request never finished (a crash) is free again.
fn stale() -> Duration {
    Duration::minutes(5)
}

pub async fn run(state: &AppState, scope: &str, key: HeaderValue, req: Request, next: Next) -> Response {
    let key = match key.to_str() {
        Ok(k) if !k.trim().is_empty() && k.len() <= MAX_KEY_LEN => k.to_owned(),
        Ok(k) if k.trim().is_empty() => {
            return ApiError::field("Idempotency-Key", "Idempotency-Key is empty").into_response();
        }
        Ok(_) => {
            return ApiError::field(
                "Idempotency-Key",
                format!("Idempotency-Key is longer than {MAX_KEY_LEN} characters"),
            )
            .into_response();
        }
        Err(_) => return ApiError::field("Idempotency-Key", "Idempotency-Key must be visible ASCII").into_response(),
    };
    let (parts, body) = req.into_parts();
    let bytes = match to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(Code::PayloadTooLarge, "the request body is larger than this endpoint accepts")
                .into_response();
        }
    };
    let mut h = Sha256::new();
    h.update(parts.method.as_str().as_bytes());
    h.update(b"\n");
    h.update(parts.uri.path().as_bytes());
    h.update(b"\n");
    h.update(parts.uri.query().unwrap_or("").as_bytes());
    h.update(b"\n");
    h.update(&bytes);
    let fingerprint = hex::encode(h.finalize());
    let now = Utc::now();
    let claim = state.meta.claim_idempotency(scope, &key, &fingerprint, now, ttl(), stale()).await;
    match claim {
        Err(e) => ApiError::from(e).into_response(),
        Ok(IdempotencyClaim::Mismatch) => ApiError::new(
            Code::Unprocessable,
            "this Idempotency-Key was used with a different request; use a new key for a new request",
        )
        .into_response(),
        Ok(IdempotencyClaim::InProgress) => {
            let mut e =
                ApiError::new(Code::Conflict, "a request with this Idempotency-Key is still running; retry later");
            e.retry_after = Some(1);
            e.into_response()
        }
        Ok(IdempotencyClaim::Replay(stored)) => replay(stored),
        Ok(IdempotencyClaim::Claimed) => {
            let mut parts = parts;
            parts.extensions.insert(Ticket { scope: scope.to_owned(), key: key.clone(), fingerprint, at: now });
            let res = next.run(Request::from_parts(parts, Body::from(bytes))).await;
            if res.extensions().get::<AnswerKept>().is_some() {
                return res;
            }
            let status = res.status();
            if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                if let Err(e) = state.meta.release_idempotency(scope, &key).await {
                    tracing::error!(error = %e, "could not release an idempotency key");
                }
                return res;
            }
            let (rparts, rbody) = res.into_parts();
            let body = match to_bytes(rbody, usize::MAX).await {
                Ok(b) => b,
                Err(e) => return ApiError::internal(e).into_response(),
            };
            let stored = StoredResponse {
                status: status.as_u16(),
                headers: KEPT_HEADERS
                    .iter()
                    .filter_map(|n| {
                        rparts.headers.get(*n).and_then(|v| v.to_str().ok()).map(|v| ((*n).to_owned(), v.to_owned()))
                    })
                    .collect(),
                body: body.to_vec(),
            };
            if let Err(e) = state.meta.complete_idempotency(scope, &key, stored).await {
                tracing::error!(error = %e, "could not keep an idempotent answer");
            }
            Response::from_parts(rparts, Body::from(body))
        }
    }
}

fn replay(stored: StoredResponse) -> Response {
    let mut res = Response::new(Body::from(stored.body));
    *res.status_mut() = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    for (n, v) in stored.headers {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(n), HeaderValue::try_from(v)) {
            res.headers_mut().insert(n, v);
        }
    }
    res.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    res
}
