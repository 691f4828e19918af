//! The one error of the service: a stable [`Code`] (which fixes the status), a precise
//! `detail`, the invalid fields, and `Retry-After` for 429 and 503. Services and stores'
//! callers return it; `http::error` renders it as a problem. Nothing here knows HTTP.

use sightline_core::code::{Code, FieldError};

#[derive(Debug, Clone)]
pub struct Error {
    pub code: Code,
    pub detail: String,
    pub errors: Vec<FieldError>,
    /// Seconds, for 429 and 503.
    pub retry_after: Option<u64>,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(code: Code, detail: impl Into<String>) -> Self {
        Self { code, detail: detail.into(), errors: Vec::new(), retry_after: None }
    }

    pub fn validation(detail: impl Into<String>, errors: Vec<FieldError>) -> Self {
        Self { errors, ..Self::new(Code::Validation, detail) }
    }

    /// Several invalid fields; the detail lists every message.
    pub fn invalid(errors: Vec<FieldError>) -> Self {
        let detail = errors.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join("; ");
        Self::validation(detail, errors)
    }

    /// One invalid field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::validation(message.clone(), vec![FieldError::new(field, message)])
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(Code::Unauthorized, detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(Code::Forbidden, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(Code::NotFound, detail)
    }

    pub fn unavailable(detail: impl Into<String>, retry_after: u64) -> Self {
        Self { retry_after: Some(retry_after), ..Self::new(Code::Unavailable, detail) }
    }

    /// A fault on our side: logged in full, answered without internals.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "internal error");
        Self::new(Code::Internal, "an internal error occurred; the server log has the details")
    }
}

/// Why reads and writes wait while the analytics store is opened again.
pub const REOPENING: &str = "the analytics store could not finish a write (the disk may be full) and is being opened \
     again; nothing acknowledged is lost; retry after the Retry-After delay";

impl From<crate::store::StoreError> for Error {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Conflict(m) => Error::new(Code::Conflict, m),
            crate::store::StoreError::Timeout(limit) => Error::new(
                Code::Timeout,
                format!(
                    "the query ran longer than its time limit of {} ms and was stopped; narrow the date range or the breakdown",
                    limit.as_millis()
                ),
            ),
            crate::store::StoreError::OutOfMemory => Error::new(
                Code::Unavailable,
                "the query needed more memory than the analytics store may use (the duckdb_memory_limit setting) \
                 and was stopped; narrow the date range or the breakdown, or try again when fewer queries run",
            ),
            crate::store::StoreError::Reopening => Error::unavailable(REOPENING, 5),
            crate::store::StoreError::Backend(e) => Error::internal(format!("{e:#}")),
        }
    }
}
