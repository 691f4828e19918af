//! API tests against a real server: real DuckDB, real SQLite, real HTTP.

mod helpers;

mod auth;
mod errors;
mod guarantees;
mod hygiene;
mod identity;
mod ingest;
mod jwks;
mod manage;
mod matrix;
mod ops;
mod read;
mod restart;
