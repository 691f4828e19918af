//! Sightline's service: the HTTP API, authentication, ingest, stores and operations.
//! The domain (types, validation, error codes) lives in `sightline-core`.

pub mod app;
pub mod auth;
pub mod bench;
pub mod cli;
pub mod config;
pub mod disk;
pub mod engine;
pub mod error;
pub mod http;
pub mod ingest;
pub mod outbound;
pub mod service;
pub mod store;
pub mod telemetry;
