//! API tests against a real server: real DuckDB, real SQLite, real HTTP.

// Tables of cases are written as tuples on purpose.
#![allow(clippy::type_complexity)]

mod helpers;

mod analytics_query;
mod auth;
mod cohorts;
mod compiler_props;
mod connections;
mod conversations;
mod custom_sql;
mod customers;
mod dedupe;
mod disk;
mod errors;
mod funnels;
mod guarantees;
mod hygiene;
mod identity;
mod ingest;
mod jwks;
mod manage;
mod matrix;
mod memory;
mod metric_records;
mod openapi;
mod ops;
mod read;
mod realtime;
mod restart;
mod segments;
mod sessions;
mod user_analytics;
