//! Storage behind traits, so that a backend is an implementation and never a rewrite.
//!
//! Two stores, as DESIGN.md shapes them:
//! - the *analytics store* (events; metric records next): DuckDB embedded, ClickHouse in
//!   cluster mode. Written only by the ingest writer through [`EventSink`], read through
//!   [`EventReader`].
//! - the *meta store* (tenants, users, API keys, and later dashboards, reports...):
//!   SQLite embedded, PostgreSQL in cluster mode, through [`MetaStore`].
//!
//! Every method takes the tenant and every backend filters by it; a caller cannot forget.

pub mod duckdb;
mod events;
mod meta;
pub mod sqlite;

pub use events::*;
pub use meta::*;

/// Errors a store reports; anything but a conflict is a fault on our side.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint held: the thing already exists.
    #[error("conflict: {0}")]
    Conflict(String),
    #[error(transparent)]
    Backend(#[from] anyhow::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;
