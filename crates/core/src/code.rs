//! Stable error codes. Each code fixes an HTTP status, a title and a problem type, so a
//! client can branch on `type` and never on prose (RFC 9457).

use serde::Serialize;

/// Every way a request can fail, named once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// The request is malformed or a field is invalid.
    Validation,
    /// The body is not JSON, or not JSON of the expected shape.
    MalformedBody,
    /// The body's content type is not one the endpoint reads.
    UnsupportedMediaType,
    /// The body is larger than the endpoint allows.
    PayloadTooLarge,
    /// No credential, or one that does not verify.
    Unauthorized,
    /// A valid credential without the permission needed.
    Forbidden,
    /// No such resource for this tenant.
    NotFound,
    /// The route exists but not with this method.
    MethodNotAllowed,
    /// The request conflicts with the resource's state.
    Conflict,
    /// Well-formed, but breaks a business rule.
    Unprocessable,
    /// Too many requests in the current window.
    RateLimited,
    /// The service is overloaded or not ready; retry later.
    Unavailable,
    /// The work took longer than its time limit.
    Timeout,
    /// A fault on our side; details are in the server log, never in the answer.
    Internal,
}

impl Code {
    pub const fn status(self) -> u16 {
        match self {
            Code::Validation | Code::MalformedBody => 400,
            Code::Unauthorized => 401,
            Code::Forbidden => 403,
            Code::NotFound => 404,
            Code::MethodNotAllowed => 405,
            Code::Conflict => 409,
            Code::PayloadTooLarge => 413,
            Code::UnsupportedMediaType => 415,
            Code::Unprocessable => 422,
            Code::RateLimited => 429,
            Code::Internal => 500,
            Code::Unavailable => 503,
            Code::Timeout => 504,
        }
    }

    pub const fn title(self) -> &'static str {
        match self {
            Code::Validation => "Validation Error",
            Code::MalformedBody => "Malformed Request Body",
            Code::UnsupportedMediaType => "Unsupported Media Type",
            Code::PayloadTooLarge => "Payload Too Large",
            Code::Unauthorized => "Unauthorized",
            Code::Forbidden => "Forbidden",
            Code::NotFound => "Not Found",
            Code::MethodNotAllowed => "Method Not Allowed",
            Code::Conflict => "Conflict",
            Code::Unprocessable => "Unprocessable Entity",
            Code::RateLimited => "Too Many Requests",
            Code::Unavailable => "Service Unavailable",
            Code::Timeout => "Timeout",
            Code::Internal => "Internal Server Error",
        }
    }

    /// The last segment of the problem `type`; stable across releases.
    pub const fn slug(self) -> &'static str {
        match self {
            Code::Validation => "validation",
            Code::MalformedBody => "malformed_body",
            Code::UnsupportedMediaType => "unsupported_media_type",
            Code::PayloadTooLarge => "payload_too_large",
            Code::Unauthorized => "unauthorized",
            Code::Forbidden => "forbidden",
            Code::NotFound => "not_found",
            Code::MethodNotAllowed => "method_not_allowed",
            Code::Conflict => "conflict",
            Code::Unprocessable => "unprocessable",
            Code::RateLimited => "rate_limit",
            Code::Unavailable => "unavailable",
            Code::Timeout => "timeout",
            Code::Internal => "internal",
        }
    }

    /// The problem `type` URI. Relative, so it resolves against the server that answered;
    /// `GET /problems/{slug}` documents each one.
    /// What the problem means and what a client does about it, for `GET /problems/{slug}`.
    pub const fn description(self) -> &'static str {
        match self {
            Code::Validation => {
                "The request is malformed or a field is invalid. `errors` names each field with its message; fix them and send again."
            }
            Code::MalformedBody => "The body is not JSON, or not JSON of the shape the endpoint reads.",
            Code::UnsupportedMediaType => {
                "The body's content type is not one the endpoint reads; send application/json."
            }
            Code::PayloadTooLarge => {
                "The request is larger than the endpoint accepts (docs/limits.md lists each limit)."
            }
            Code::Unauthorized => "No credential, or one that does not verify: send a valid bearer token or API key.",
            Code::Forbidden => "The credential is valid but its role does not have the permission this needs.",
            Code::NotFound => "No such resource for this tenant.",
            Code::MethodNotAllowed => "The route exists, but not with this method; `Allow` lists the methods it takes.",
            Code::Conflict => {
                "The request conflicts with the resource's state (a name in use, a request with the same Idempotency-Key still running)."
            }
            Code::Unprocessable => {
                "Well-formed, but breaks a business rule: an unknown metric, a tenant over its quota, an Idempotency-Key used with another request."
            }
            Code::RateLimited => {
                "Too many requests in the current window; `Retry-After` says when the window opens again."
            }
            Code::Unavailable => "The service is overloaded or not ready; retry after `Retry-After` seconds.",
            Code::Timeout => "The work took longer than its time limit; narrow the query or ask for less.",
            Code::Internal => "A fault on our side; the server log has the details under the answer's request_id.",
        }
    }

    /// The code whose slug is `slug`.
    pub fn from_slug(slug: &str) -> Option<Code> {
        Code::ALL.into_iter().find(|c| c.slug() == slug)
    }

    /// Dereferenceable: `GET /problems/{slug}` describes the problem type.
    pub fn type_uri(self) -> String {
        format!("/problems/{}", self.slug())
    }

    pub const ALL: [Code; 14] = [
        Code::Validation,
        Code::MalformedBody,
        Code::UnsupportedMediaType,
        Code::PayloadTooLarge,
        Code::Unauthorized,
        Code::Forbidden,
        Code::NotFound,
        Code::MethodNotAllowed,
        Code::Conflict,
        Code::Unprocessable,
        Code::RateLimited,
        Code::Unavailable,
        Code::Timeout,
        Code::Internal,
    ];
}

/// One invalid field of a request, as RFC 9457's `errors[]` extension lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The field, as a path into the request (`events[3].timestamp`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
    /// The kind of problem when it is not a plain invalid value (an unresolved reference
    /// is `Unprocessable`), so that the answer's status never depends on the message.
    #[serde(skip)]
    pub code: Option<Code>,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into(), code: None }
    }

    pub fn with_code(field: impl Into<String>, message: impl Into<String>, code: Code) -> Self {
        Self { field: field.into(), message: message.into(), code: Some(code) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn slugs_are_unique_and_statuses_are_errors() {
        let slugs: HashSet<_> = Code::ALL.iter().map(|c| c.slug()).collect();
        assert_eq!(slugs.len(), Code::ALL.len());
        for c in Code::ALL {
            assert!((400..600).contains(&c.status()), "{c:?}");
        }
    }
}
