//! `sightline bench ...`: benchmarks anyone can rerun, reporting ratios measured in one
//! run so that a shared machine's drift cancels out.

pub mod auth;
pub mod ingest;
pub mod query;
mod serve;
mod sustained;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum BenchCmd {
    /// Ingest throughput and latency: raw DuckDB Appender vs batches vs single events.
    Ingest(ingest::IngestArgs),
    /// What credentials cost: token issue and verify, API keys, password checks.
    Auth(auth::AuthArgs),
    /// Query-model cases against hand-written DuckDB SQL on the same generated events.
    Query(query::QueryArgs),
}

/// `cfg`: the settings (`--config`, `SIGHTLINE_*`); the query bench opens its store with
/// their DuckDB memory limit and threads, as `serve` would.
pub fn run(cmd: BenchCmd, cfg: crate::config::Config, rt: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    match cmd {
        BenchCmd::Ingest(args) => ingest::run(args, rt),
        BenchCmd::Auth(args) => auth::run(args, rt),
        BenchCmd::Query(args) => query::run(args, &cfg, rt),
    }
}

/// A memory figure of this process from /proc/self/status (Linux), in MiB: `VmHWM` (peak
/// resident) or `VmRSS` (resident now).
fn status_mib(field: &str) -> f64 {
    proc_status_mib("self", field)
}

/// [`status_mib`] of the process `pid` (`self` for this one).
fn proc_status_mib(pid: &str, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.strip_prefix(field).is_some_and(|rest| rest.starts_with(':')))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(f64::NAN)
}
