//! The analytics store on embedded DuckDB: one database, one writer connection owned by
//! the ingest thread, and a small pool of reader connections cloned from it.

mod columns;
mod engine;
mod migrations;
mod reader;
mod records;
mod runner;
mod sink;

pub use engine::DuckEngine;
pub use reader::DuckReader;
pub use sink::DuckSink;

use crate::store::EventRow;
use crate::store::id_set::{self, IdSet, Recovery};
use anyhow::Context;
use duckdb::{Config, Connection};
use sightline_core::query::field::{PropertyColumns, PropertyPath};
use std::path::Path;

/// Opens (or creates) the analytics database at `path`, or an in-memory one, and brings
/// its schema up to date.
pub fn open(path: Option<&Path>, max_readers: usize) -> anyhow::Result<(DuckSink, DuckReader)> {
    let (sink, reader, _) = open_with(path, max_readers, &[], &Tuning::default())?;
    Ok((sink, reader))
}

/// The store's resources: DuckDB's memory, threads and checkpoint threshold (settings
/// `duckdb_memory_limit`, `duckdb_threads`, `duckdb_checkpoint_threshold`; unset, DuckDB's
/// defaults), and the event ids the dedupe keeps in
/// memory (`dedupe_ids_in_memory`).
#[derive(Debug, Clone)]
pub struct Tuning {
    /// As DuckDB writes it: `512MB`, `50%`.
    pub memory_limit: Option<String>,
    pub threads: Option<usize>,
    /// As DuckDB writes it (`64MB`); unset, DuckDB's default.
    pub checkpoint_threshold: Option<String>,
    pub ids_in_memory: usize,
}

impl Default for Tuning {
    fn default() -> Self {
        Self { memory_limit: None, threads: None, checkpoint_threshold: None, ids_in_memory: id_set::DEFAULT_FLUSH_AT }
    }
}

/// [`open`], and keeps each of `materialize` (top-level property keys) in a column of its
/// own: a key not kept yet gets a column, filled for the events already stored. Keys kept
/// earlier stay kept. Answers the columns, for the query compiler.
pub fn open_with(
    path: Option<&Path>,
    max_readers: usize,
    materialize: &[String],
    tuning: &Tuning,
) -> anyhow::Result<(DuckSink, DuckReader, PropertyColumns)> {
    let (conn, ids, columns) = open_parts(path, materialize, tuning)?;
    let reader = DuckReader::new(conn.try_clone()?, max_readers);
    let reopen = path.map(|p| sink::Reopen {
        path: p.to_owned(),
        materialize: materialize.to_vec(),
        tuning: tuning.clone(),
        pool: reader.inner.clone(),
    });
    Ok((DuckSink::new(conn, ids, columns.clone(), reopen), reader, columns))
}

/// The writer's connection to a database brought up to date, its id set and its kept
/// columns.
fn open_parts(
    path: Option<&Path>,
    materialize: &[String],
    tuning: &Tuning,
) -> anyhow::Result<(Connection, IdSet, PropertyColumns)> {
    let conn = match path {
        Some(p) => Connection::open_with_flags(p, config(tuning, Access::Locked)?)
            .with_context(|| format!("opening DuckDB file {}", p.display()))?,
        None => Connection::open_in_memory_with_flags(config(tuning, Access::Locked)?)
            .context("opening in-memory DuckDB")?,
    };
    let migrated = migrations::run(&conn)?;
    let conn = match path {
        Some(p) if migrated && mostly_free(&conn)? => {
            drop(conn);
            compact(p, tuning)?;
            Connection::open_with_flags(p, config(tuning, Access::Locked)?)
                .with_context(|| format!("opening DuckDB file {}", p.display()))?
        }
        _ => conn,
    };
    let columns = property_columns(&conn, materialize)?;
    let ids = open_ids(&conn, path, tuning.ids_in_memory)?;
    Ok((conn, ids, columns))
}

/// Who may do what on a connection.
#[derive(Clone, Copy, PartialEq)]
enum Access {
    /// The service's: no file but the database, no setting changed (custom SQL runs here).
    Locked,
    /// Compaction's, for one statement that writes a second database file.
    Files,
}

fn config(tuning: &Tuning, access: Access) -> anyhow::Result<Config> {
    let mut c = Config::default();
    if let Some(m) = &tuning.memory_limit {
        c = c.max_memory(m)?;
    }
    if let Some(t) = tuning.threads {
        c = c.threads(t as i64)?;
    }
    if let Some(t) = &tuning.checkpoint_threshold {
        c = c.with("checkpoint_threshold", t)?;
    }
    // No extension may be fetched at run time (no internet); the library's built-ins suffice.
    c = c.enable_autoload_extension(false)?.with("autoinstall_known_extensions", "false")?;
    if access == Access::Files {
        return Ok(c);
    }
    // Nor may any query read or write files, URLs or other databases, or change settings
    // (custom SQL runs here too): the database file is all this process opens.
    Ok(c.enable_external_access(false)?.with("lock_configuration", "true")?)
}

/// True when a third or more of the file's blocks are free, and they are 16 or more (4 MiB):
/// a new file is never worth copying.
fn mostly_free(conn: &Connection) -> anyhow::Result<bool> {
    // Blocks of a dropped table are free once a checkpoint has written the drop.
    conn.execute_batch("CHECKPOINT")?;
    let (total, free): (i64, i64) =
        conn.query_row("SELECT total_blocks, free_blocks FROM pragma_database_size()", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    Ok(free * 3 >= total && free >= 16)
}

/// Copies the database into a new file that then takes the old one's place. A migration
/// that rewrites the events leaves the old table's blocks free inside the file, which
/// DuckDB reuses for new rows but never gives back: 10M events in 473 MiB took 944 MiB
/// after the layout's migration, and 471 MiB once compacted. A crash on the way leaves the
/// old file whole (the copy is renamed over it only once written and synced).
fn compact(path: &Path, tuning: &Tuning) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let before = std::fs::metadata(path)?.len();
    let copy = path.with_extension("compacting");
    for stale in [copy.clone(), copy.with_extension("compacting.wal")] {
        std::fs::remove_file(stale).ok();
    }
    {
        let conn = Connection::open_with_flags(path, config(tuning, Access::Files)?)?;
        let name: String = conn.query_row("SELECT current_database()", [], |r| r.get(0))?;
        let target = copy.to_str().context("a database path in UTF-8")?.replace('\'', "''");
        conn.execute_batch(&format!(
            "ATTACH '{target}' AS sightline_compacted; \
             COPY FROM DATABASE \"{}\" TO sightline_compacted; \
             DETACH sightline_compacted;",
            name.replace('"', "\"\"")
        ))
        .context("copying the database into a compact file")?;
    }
    std::fs::File::open(&copy)?.sync_all()?;
    std::fs::rename(&copy, path).context("putting the compact file in place")?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    let mib = |b: u64| b / 1_048_576;
    let after = std::fs::metadata(path)?.len();
    tracing::info!(
        before_mib = mib(before),
        after_mib = mib(after),
        ms = started.elapsed().as_millis() as u64,
        "database file compacted after the migration"
    );
    Ok(())
}

/// The set of stored event ids, kept beside the database file (`<name>.ids/`), brought up
/// to date with the events: those received since its last run, or all of them when it is
/// missing (a file written before the set existed, or the set deleted).
fn open_ids(conn: &Connection, path: Option<&Path>, ids_in_memory: usize) -> anyhow::Result<IdSet> {
    let (mut ids, recovery) = match path {
        Some(p) => {
            let dir = p.with_extension("ids");
            IdSet::open(&dir, ids_in_memory).with_context(|| format!("opening the event id set {}", dir.display()))?
        }
        None => (IdSet::in_memory(), Recovery::All),
    };
    let started = std::time::Instant::now();
    // In row ranges: a statement's result is held whole in memory (101M ids took 3.7 GB
    // in one), and DuckDB reads only the row groups of a range.
    const CHUNK: i64 = 1_000_000;
    let last: i64 = conn.query_row("SELECT coalesce(max(rowid), -1) FROM events", [], |r| r.get(0))?;
    let mut stmt = conn.prepare(match recovery {
        Recovery::All => "SELECT tenant_id, event_id FROM events WHERE rowid >= ? AND rowid < ?",
        Recovery::Since(_) => {
            "SELECT tenant_id, event_id FROM events WHERE rowid >= ? AND rowid < ? AND received_at >= ?"
        }
    })?;
    let (mut read, mut added) = (0u64, 0u64);
    let mut keys = crate::store::id_set::KeySet::default();
    for from in (0..=last).step_by(CHUNK as usize) {
        let mut rows = match recovery {
            Recovery::All => stmt.query(duckdb::params![from, from + CHUNK])?,
            Recovery::Since(t) => stmt.query(duckdb::params![from, from + CHUNK, sink::micros(t)])?,
        };
        while let Some(row) = rows.next()? {
            let key = EventRow::id_key_of(&row.get::<_, String>(0)?, &row.get::<_, String>(1)?);
            read += 1;
            if !ids.contains(key)? {
                keys.insert(key);
            }
        }
        added += keys.len() as u64;
        ids.record(keys.drain());
        if recovery == Recovery::All && read > 0 {
            tracing::info!(events = read, "rebuilding the event id set");
        }
    }
    if path.is_some() && (recovery == Recovery::All || added > 0) {
        ids.flush()?;
    }
    if read > 0 {
        tracing::info!(read, added, ms = started.elapsed().as_millis() as u64, "event id set brought up to date");
    }
    Ok(ids)
}

/// Loads the kept keys, adding (and backfilling) the ones asked for that are new.
fn property_columns(conn: &Connection, materialize: &[String]) -> anyhow::Result<PropertyColumns> {
    let load = || -> anyhow::Result<Vec<(String, u32)>> {
        let mut stmt = conn.prepare("SELECT key, slot FROM property_columns ORDER BY slot")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?)))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    };
    let mut slots = load()?;
    for key in materialize {
        if slots.iter().any(|(k, _)| k == key) {
            continue;
        }
        let path = PropertyPath::parse(key).map_err(anyhow::Error::msg)?;
        let slot = slots.iter().map(|(_, s)| *s).max().unwrap_or(0) + 1;
        let col = PropertyColumns::column_name(slot);
        let started = std::time::Instant::now();
        conn.execute_batch("BEGIN")?;
        let number = PropertyColumns::number_column_name(slot);
        let added = (|| -> duckdb::Result<()> {
            conn.execute_batch(&format!(
                "ALTER TABLE events ADD COLUMN {col} VARCHAR; ALTER TABLE events ADD COLUMN {number} DOUBLE"
            ))?;
            conn.execute(
                &format!(
                    "UPDATE events SET {col} = json_extract_string(properties, ?), \
                     {number} = TRY_CAST(json_extract_string(properties, ?) AS DOUBLE)"
                ),
                [path.json_path(), path.json_path()],
            )?;
            conn.execute("INSERT INTO property_columns (slot, key) VALUES (?, ?)", duckdb::params![slot, key])?;
            Ok(())
        })();
        match added {
            Ok(()) => conn.execute_batch("COMMIT")?,
            Err(e) => {
                conn.execute_batch("ROLLBACK").ok();
                return Err(e).with_context(|| format!("keeping property '{key}' in a column"));
            }
        }
        tracing::info!(key = %key, column = %col, ms = started.elapsed().as_millis() as u64, "property kept in a column");
        slots.push((key.clone(), slot));
    }
    Ok(PropertyColumns::new(slots))
}

#[cfg(test)]
mod tests {
    #[test]
    fn memory_and_threads_are_what_the_settings_say() {
        let tuning = super::Tuning { memory_limit: Some("256MB".into()), threads: Some(1), ..Default::default() };
        let (_sink, reader, _) = super::open_with(None, 1, &[], &tuning).unwrap();
        let conn = reader.connection().unwrap();
        let (memory, threads): (String, i64) = conn
            .query_row("SELECT current_setting('memory_limit'), current_setting('threads')", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        // DuckDB answers in its own units: 256 MB is 244.1 MiB.
        assert!(memory.starts_with("244"), "{memory}");
        assert_eq!(threads, 1);
        // Locked: a query cannot raise it.
        assert!(conn.execute_batch("SET memory_limit = '10GB'").is_err());
    }

    /// A file whose free blocks lie between used ones (DuckDB truncates only a free tail)
    /// is copied compact, with every row of what is left.
    #[test]
    fn a_file_half_free_is_compacted_with_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.duckdb");
        let tuning = super::Tuning::default();
        {
            let conn = duckdb::Connection::open(&path).unwrap();
            conn.execute_batch("CREATE TABLE kept (i BIGINT, s VARCHAR); CREATE TABLE dropped (i BIGINT, s VARCHAR);")
                .unwrap();
            // Interleaved: each checkpoint writes a slice of each table.
            for k in 0..8 {
                conn.execute_batch(&format!(
                    "INSERT INTO kept SELECT i, md5(i::VARCHAR) FROM range({k} * 200000, ({k} + 1) * 200000) t(i);
                     INSERT INTO dropped SELECT i, md5(i::VARCHAR) FROM range({k} * 200000, ({k} + 1) * 200000) t(i);
                     CHECKPOINT;"
                ))
                .unwrap();
            }
            conn.execute_batch("DROP TABLE dropped").unwrap();
            assert!(super::mostly_free(&conn).unwrap(), "half the blocks are free");
        }
        let before = std::fs::metadata(&path).unwrap().len();
        super::compact(&path, &tuning).unwrap();
        let after = std::fs::metadata(&path).unwrap().len();
        assert!(after * 3 < before * 2, "{before} bytes became {after}");
        let conn = duckdb::Connection::open(&path).unwrap();
        let (n, sum): (i64, i128) = conn
            .query_row("SELECT count(*), sum(i) FROM kept WHERE s = md5(i::VARCHAR)", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((n, sum), (1_600_000, (0..1_600_000i128).sum()));
        assert!(!super::mostly_free(&conn).unwrap());
        assert!(!path.with_extension("compacting").exists());
    }
}
