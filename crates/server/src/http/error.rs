//! How failures leave: every [`crate::error::Error`] is rendered as RFC 9457
//! `application/problem+json`: `type`, `title`, `status`, `detail`, `instance`, and for
//! validation `errors[]` of `{field, message}`.

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sightline_core::code::FieldError;

pub const PROBLEM_JSON: &str = "application/problem+json";

pub use crate::error::{Error as ApiError, Result as ApiResult};

/// An RFC 9457 problem: what went wrong, for a client to branch on (`type`) and a person
/// to read (`detail`).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Problem)]
pub struct ProblemBody<'a> {
    /// A stable URI naming the kind of problem, such as `/problems/validation`.
    #[serde(rename = "type")]
    kind: String,
    /// The kind's short, fixed title.
    title: &'static str,
    /// The HTTP status.
    status: u16,
    /// What was wrong with this request, precisely.
    detail: &'a str,
    /// The path of the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    instance: Option<&'a str>,
    /// Each invalid field, for validation problems.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    #[schema(value_type = Vec<FieldError>)]
    errors: &'a [FieldError],
    /// The request's id (also in `X-Request-ID`), to find it in the server log.
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
}

impl ApiError {
    fn render(&self, instance: Option<&str>, request_id: Option<&str>) -> Response {
        let body = ProblemBody {
            kind: self.code.type_uri(),
            title: self.code.title(),
            status: self.code.status(),
            detail: &self.detail,
            instance,
            errors: &self.errors,
            request_id,
        };
        let status = StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut res = (status, serde_json::to_vec(&body).unwrap_or_default()).into_response();
        let h = res.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(secs) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.code == sightline_core::code::Code::Unauthorized {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res.extensions_mut().insert(self.clone());
        res
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.render(None, None)
    }
}

/// Fills in `instance` (the request's path) and `request_id` of every problem answer: the
/// handler that fails does not know them, the middleware does.
pub async fn complete_problems(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let request_id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let res = next.run(req).await;
    match res.extensions().get::<ApiError>() {
        Some(err) => {
            let mut out = err.render(Some(&path), request_id.as_deref());
            // Keep headers the handler or inner layers set (rate-limit headers, ...).
            for (k, v) in res.headers() {
                if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
                    out.headers_mut().insert(k.clone(), v.clone());
                }
            }
            out
        }
        None => res,
    }
}

/// The answer to a request whose handler panicked.
pub fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::internal("a request handler panicked").into_response()
}
