//! API tests against a real server: real DuckDB, real SQLite, real HTTP.

mod helpers;

mod auth;
mod errors;
mod ingest;
mod ops;
mod read;
mod restart;
