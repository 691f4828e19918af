//! Sightline's domain, free of I/O: the types every layer shares, the parsing that turns
//! client input into them, and the stable error codes. Nothing here touches a database,
//! a socket or a clock it was not handed, so all of it is unit-testable without DuckDB.

pub mod code;
pub mod custom_sql;
pub mod event;
pub mod model;
pub mod query;
pub mod sql;

pub use code::{Code, FieldError};
