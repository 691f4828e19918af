//! The command line: `serve`, admin commands that print what they made, and `bench`.

mod admin;

use crate::config::{Config, FlagOverrides, LogFormat};
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "sightline", version, about = "Self-hosted product analytics: one binary, DuckDB + SQLite embedded")]
pub struct Cli {
    /// A TOML file of settings (below SIGHTLINE_* variables and flags).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service.
    Serve(ServeArgs),
    /// Manage tenants.
    #[command(subcommand)]
    Tenants(admin::TenantCmd),
    /// Manage users.
    #[command(subcommand)]
    Users(admin::UserCmd),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(admin::KeyCmd),
    /// Print the OpenAPI document (as `docs/openapi.json` holds it).
    Openapi,
    /// Measure throughput and latency on this machine.
    #[command(subcommand)]
    Bench(crate::bench::BenchCmd),
}

#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// Address to listen on [env: SIGHTLINE_LISTEN] [default: 127.0.0.1:8080]
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Folder of the embedded stores [env: SIGHTLINE_DATA_DIR] [default: ./data]
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Keep all data in memory; nothing is written to disk.
    #[arg(long)]
    pub in_memory: bool,
    /// Log as JSON lines or pretty text [env: SIGHTLINE_LOG_FORMAT]
    #[arg(long, value_parser = parse_log_format)]
    pub log_format: Option<LogFormat>,
}

fn parse_log_format(s: &str) -> Result<LogFormat, String> {
    match s {
        "json" => Ok(LogFormat::Json),
        "pretty" => Ok(LogFormat::Pretty),
        _ => Err("expected json or pretty".into()),
    }
}

impl ServeArgs {
    fn overrides(&self) -> FlagOverrides {
        FlagOverrides {
            listen: self.listen,
            data_dir: self.data_dir.clone(),
            in_memory: self.in_memory.then_some(true),
            log_format: self.log_format,
        }
    }
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Serve(args) => {
            let cfg = Config::load(cli.config.as_deref(), &args.overrides())?;
            crate::telemetry::init_logging(&cfg);
            for var in crate::config::unknown_env_vars() {
                tracing::warn!(variable = %var, "unknown SIGHTLINE_ setting; ignored");
            }
            tracing::info!(config = ?cfg, "starting sightline {}", env!("CARGO_PKG_VERSION"));
            rt.block_on(async {
                let app = crate::app::App::build(cfg).await?;
                let stop = crate::app::shutdown_signal();
                tracing::info!(address = %app.local_addr(), "listening");
                app.run_until(stop).await
            })
        }
        Command::Tenants(cmd) => rt.block_on(admin::tenants(load_quiet(&cli.config)?, cmd)),
        Command::Users(cmd) => rt.block_on(admin::users(load_quiet(&cli.config)?, cmd)),
        Command::Keys(cmd) => rt.block_on(admin::keys(load_quiet(&cli.config)?, cmd)),
        Command::Bench(cmd) => {
            crate::bench::run(cmd, Config::load(cli.config.as_deref(), &FlagOverrides::default())?, &rt)
        }
        Command::Openapi => {
            print!("{}", crate::http::openapi::pretty_json());
            Ok(())
        }
    }
}

fn load_quiet(file: &Option<PathBuf>) -> anyhow::Result<Config> {
    let cfg = Config::load(file.as_deref(), &FlagOverrides::default())?;
    if cfg.in_memory {
        anyhow::bail!("admin commands change the stores in data_dir; in_memory is set, so there is nothing to change");
    }
    Ok(cfg)
}
