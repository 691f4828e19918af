//! The analytics store on embedded DuckDB: one database, one writer connection owned by
//! the ingest thread, and a small pool of reader connections cloned from it.

mod migrations;
mod reader;
mod records;
mod runner;
mod sink;

pub use reader::DuckReader;
pub use sink::DuckSink;

use anyhow::Context;
use duckdb::{Config, Connection};
use std::path::Path;

/// Opens (or creates) the analytics database at `path`, or an in-memory one, and brings
/// its schema up to date.
pub fn open(path: Option<&Path>, max_readers: usize) -> anyhow::Result<(DuckSink, DuckReader)> {
    // No extension may be fetched at run time (no internet); the library's built-ins suffice.
    let config = || -> anyhow::Result<Config> {
        Ok(Config::default().enable_autoload_extension(false)?.with("autoinstall_known_extensions", "false")?)
    };
    let conn = match path {
        Some(p) => {
            Connection::open_with_flags(p, config()?).with_context(|| format!("opening DuckDB file {}", p.display()))?
        }
        None => Connection::open_in_memory_with_flags(config()?).context("opening in-memory DuckDB")?,
    };
    migrations::run(&conn)?;
    let reader_base = conn.try_clone()?;
    Ok((DuckSink::new(conn)?, DuckReader::new(reader_base, max_readers)))
}
