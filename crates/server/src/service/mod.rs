//! What Sightline does, apart from how it is asked. A handler (`http`) parses a request,
//! calls a service and shapes the answer; background jobs (alert checks, reports,
//! exports) call the same services. Services take typed values, return typed answers and
//! [`crate::error::Error`], whose `Code` decides a status; they build no SQL (the engine
//! does, `crate::engine`) and know nothing of HTTP.

pub mod accounts;
pub mod alerts;
pub mod analytics;
pub mod audit;
pub mod ingest;
pub mod metrics;
pub mod records;
