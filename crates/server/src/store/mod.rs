//! Storage behind traits, so that a backend is an implementation and never a rewrite.
//!
//! Two stores, as DESIGN.md shapes them:
//! - the *analytics store* (events, metric records): DuckDB embedded, ClickHouse in
//!   cluster mode. Written only by the ingest writer through [`EventSink`], read through
//!   [`EventReader`] and [`MetricReader`]; every analysis goes through the engine
//!   ([`crate::engine::Engine`], here [`duckdb::DuckEngine`]), which runs its statements
//!   with the low-level [`QueryRunner`] that benches and compiler tests also use.
//! - the *meta store* (tenants, users, API keys, and later dashboards, reports...):
//!   SQLite embedded, PostgreSQL in cluster mode, through [`MetaStore`].
//!
//! Every method takes the tenant and every backend filters by it; a caller cannot forget.

pub mod duckdb;
mod events;
pub mod id_set;
mod meta;
mod metrics;
pub mod sqlite;

pub use events::*;
pub use meta::*;
pub use metrics::*;

/// Errors a store reports; anything but a conflict is a fault on our side.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint held: the thing already exists.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A query ran past its time limit and was interrupted.
    #[error("the query ran longer than its time limit of {0:?}")]
    Timeout(std::time::Duration),
    /// A query needed more memory than the store may use (`duckdb_memory_limit`).
    #[error("the query needed more memory than the analytics store may use")]
    OutOfMemory,
    /// DuckDB invalidated the database after a write failed past recovery (a checkpoint
    /// on a full disk); the writer is opening it again.
    #[error("the analytics store is being opened again after a failed write")]
    Reopening,
    #[error(transparent)]
    Backend(#[from] anyhow::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A write the analytics store refused for now, nothing of it stored: the client is told
/// to retry (503), not that the service failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteRefused {
    #[error("the disk is full: the analytics store could not write; free some space and retry")]
    DiskFull,
    #[error("{}", crate::error::REOPENING)]
    Reopening,
}
