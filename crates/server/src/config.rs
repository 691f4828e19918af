//! Configuration, layered: built-in defaults < TOML file (`--config`) < `SIGHTLINE_*`
//! environment < command-line flags. Checked once at start; a bad value stops the
//! service with a message that names the setting.

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The convention properties analyses read most across all events (page views by page,
/// revenue, buyers, conversations). Each kept key costs about 1 % of batch ingest
/// throughput (`sightline bench ingest --keep`), so the default is short.
/// The analytics store's memory when the settings say nothing (see `duckdb_memory_limit`).
pub const DEFAULT_DUCKDB_MEMORY: &str = "256MB";
/// See `duckdb_checkpoint_threshold`.
pub const DEFAULT_CHECKPOINT_THRESHOLD: &str = "64MB";

pub const DEFAULT_MATERIALIZED: &[&str] = &["page", "amount", "customer_id", "conversation_id"];

/// A value that must never reach a log line: `Debug` and `Display` print `[redacted]`.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line, for machines.
    Json,
    /// Human-readable lines, for a terminal.
    Pretty,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// Folder of the embedded stores (`sightline.duckdb`, `sightline.sqlite`).
    pub data_dir: PathBuf,
    /// Keep everything in memory and write nothing to disk (tests, demos).
    pub in_memory: bool,
    /// HS256 secret shared with an external auth server. Without one, Sightline makes a
    /// random secret on first start and keeps it in the meta store.
    pub jwt_secret: Option<Secret>,
    /// A JWKS file of an external issuer's RS256/ES256 public keys.
    pub jwks_file: Option<PathBuf>,
    /// Or a JWKS URL, fetched at start and again when a token names an unknown `kid`.
    pub jwks_url: Option<String>,
    /// Fewest seconds between two fetches of `jwks_url`.
    pub jwks_refetch_secs: u64,
    /// When set, RS256/ES256 tokens must carry this `iss` ...
    pub jwt_issuer: Option<String>,
    /// ... and this `aud`.
    pub jwt_audience: Option<String>,
    /// Names of the claims that carry the role, the roles array and the tenant.
    pub jwt_role_claim: String,
    pub jwt_roles_claim: String,
    pub jwt_tenant_claim: String,
    /// On first start, create this admin in the default tenant.
    pub admin_username: Option<String>,
    pub admin_password: Option<Secret>,
    pub log_format: LogFormat,
    /// A tracing filter such as `info` or `sightline=debug,tower_http=info`.
    pub log_level: String,
    /// Ingest requests that may wait for the writer; beyond it a request gets 503.
    pub ingest_queue: usize,
    /// Most events the writer commits in one transaction.
    pub ingest_max_batch: usize,
    /// Analytics queries that may run at once.
    pub max_readers: usize,
    /// Memory DuckDB may use for the analytics store, as DuckDB writes it (`512MB`, `2GB`,
    /// `50%` of the machine's); a query that needs more spills to disk or fails with a 503
    /// instead of growing. 256MB by default: a 10M-event store answers every analysis of
    /// `sightline bench query` within it, and the process stays near 400 MB. `80%` is
    /// DuckDB's own default.
    pub duckdb_memory_limit: Option<String>,
    /// Threads one analytics query may use. Unset: one per core.
    pub duckdb_threads: Option<usize>,
    /// Write-ahead log size (`64MB`) at which DuckDB folds committed events into the main
    /// file. A checkpoint holds up commits while it runs, and costs more than its share of
    /// new rows, so fewer, larger ones ingest faster with shorter waits overall: measured
    /// with `sightline bench ingest` at 2M events, 16MB (DuckDB's default) took 115-120k
    /// events/s with a batch p99 of 225-235 ms, 32MB 147-149k and 106-140 ms, 64MB 152k and
    /// 21 ms. Larger keeps more uncompressed rows in memory and makes the log replayed
    /// after a crash longer.
    pub duckdb_checkpoint_threshold: String,
    /// Free space (MB) the data directory's disk must keep: under it, writes are refused
    /// with a 503 until space is freed (DuckDB that fills a disk mid-checkpoint stops
    /// taking writes until a restart). 0 turns the check off.
    pub min_free_disk_mb: u64,
    /// Event ids (16 bytes each) the dedupe keeps in memory before writing them to a run on
    /// disk, where a filter of about 10 bits per id stands for them.
    pub dedupe_ids_in_memory: usize,
    /// Top-level property keys events also keep in columns of their own, so that queries
    /// reading them skip the JSON (a breakdown by one runs several times faster). Keys
    /// only ever join: one kept before stays kept.
    pub materialized_properties: Vec<String>,
    /// Longest an analytics query may run before it is interrupted (a 504), in milliseconds.
    pub query_timeout_ms: u64,
    /// Seconds a shutdown waits for in-flight requests before it stops anyway.
    pub shutdown_grace_secs: u64,
    /// Seconds a client has to send a request's whole header; a keep-alive connection
    /// idle this long is closed too.
    pub header_read_timeout_secs: u64,
    /// Seconds a request body may stall (no bytes arriving) before the request fails.
    pub body_read_timeout_secs: u64,
    /// Most connections open at once; beyond it, new ones wait to be accepted.
    pub max_connections: usize,
    /// Lifetime of access tokens issued at sign-in, in seconds.
    pub access_token_ttl_secs: u64,
    /// Lifetime of refresh tokens, in seconds.
    pub refresh_token_ttl_secs: u64,
    /// Rate limits per tenant and endpoint class, as `COUNT/PERIOD` (second, minute, hour,
    /// day) or `off`. Defaults from seeds 001 and 004.
    pub limit_events: String,
    pub limit_batch: String,
    pub limit_queries: String,
    pub limit_reports: String,
    pub limit_dashboards: String,
    pub limit_export: String,
    /// Management endpoints (users, keys, tenants, audit).
    pub limit_api: String,
    /// Requests without a valid credential, per client address.
    pub limit_unauthenticated: String,
    /// Origins allowed to call the API from a browser (the tracking snippet), besides each
    /// tenant's own list. `*` allows any.
    pub cors_origins: Vec<String>,
    /// Networks the service's own requests (webhook deliveries, sync sources) may go to,
    /// as `10.0.0.0/8`; empty: any address but link-local (cloud metadata), unspecified
    /// and multicast ones, which are always refused.
    pub outbound_allow: Vec<String>,
    /// Routes the operator has marked deprecated; their answers carry `Deprecation` and
    /// `Sunset` headers.
    pub deprecated_routes: Vec<DeprecatedRoute>,
}

/// A route marked deprecated: `[[deprecated_routes]] path = "/api/v1/..." deprecation =
/// "2027-01-01" sunset = "2027-06-30" link = "https://..."`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeprecatedRoute {
    pub path: String,
    /// The date (YYYY-MM-DD) from which the route is deprecated.
    pub deprecation: chrono::NaiveDate,
    /// The date it will be removed.
    pub sunset: Option<chrono::NaiveDate>,
    /// Where the change is explained.
    pub link: Option<String>,
}

fn http_date(d: chrono::NaiveDate) -> String {
    // RFC 7231's IMF-fixdate.
    d.and_hms_opt(0, 0, 0).expect("midnight").and_utc().format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

impl DeprecatedRoute {
    pub fn deprecation_header(&self) -> String {
        http_date(self.deprecation)
    }
    pub fn sunset_header(&self) -> Option<String> {
        self.sunset.map(http_date)
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("valid default address"),
            data_dir: PathBuf::from("./data"),
            in_memory: false,
            jwt_secret: None,
            jwks_file: None,
            jwks_url: None,
            jwks_refetch_secs: 30,
            jwt_issuer: None,
            jwt_audience: None,
            jwt_role_claim: "role".into(),
            jwt_roles_claim: "roles".into(),
            jwt_tenant_claim: "tenant_id".into(),
            admin_username: None,
            admin_password: None,
            log_format: LogFormat::Pretty,
            log_level: "info".into(),
            ingest_queue: 4096,
            ingest_max_batch: 20_000,
            max_readers: 4,
            duckdb_memory_limit: Some(DEFAULT_DUCKDB_MEMORY.to_owned()),
            duckdb_threads: None,
            duckdb_checkpoint_threshold: DEFAULT_CHECKPOINT_THRESHOLD.to_owned(),
            dedupe_ids_in_memory: crate::store::id_set::DEFAULT_FLUSH_AT,
            min_free_disk_mb: 256,
            query_timeout_ms: 10_000,
            materialized_properties: DEFAULT_MATERIALIZED.iter().map(|s| (*s).to_owned()).collect(),
            shutdown_grace_secs: 10,
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 30,
            max_connections: 10_000,
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 14 * 24 * 3600,
            limit_events: "1000/minute".into(),
            limit_batch: "100/minute".into(),
            limit_queries: "100/minute".into(),
            limit_reports: "10/minute".into(),
            limit_dashboards: "100/minute".into(),
            limit_export: "10/hour".into(),
            limit_api: "1000/minute".into(),
            limit_unauthenticated: "100/hour".into(),
            cors_origins: Vec::new(),
            outbound_allow: Vec::new(),
            deprecated_routes: Vec::new(),
        }
    }
}

/// A size as DuckDB's `memory_limit` takes it: a number and a unit (B, KB, MB, GB, TB,
/// KiB, MiB, GiB, TiB), or a percentage of the machine's memory.
fn is_memory_size(s: &str) -> bool {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let units = ["b", "kb", "mb", "gb", "tb", "kib", "mib", "gib", "tib", "%"];
    number.parse::<f64>().is_ok_and(|n| n > 0.0) && units.contains(&unit.trim().to_ascii_lowercase().as_str())
}

/// A rate: `count` requests per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub period: std::time::Duration,
}

impl Rate {
    /// `1000/minute`, `10/hour`, `5/second`, `100/day`, or `off` (None).
    pub fn parse(s: &str) -> Result<Option<Rate>, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let err = || format!("'{s}' is not a rate such as 1000/minute or off");
        let (n, unit) = s.split_once('/').ok_or_else(err)?;
        let count: u32 = n.trim().parse().map_err(|_| err())?;
        let secs = match unit.trim().to_ascii_lowercase().as_str() {
            "s" | "sec" | "second" => 1,
            "m" | "min" | "minute" => 60,
            "h" | "hour" => 3600,
            "d" | "day" => 86_400,
            _ => return Err(err()),
        };
        if count == 0 {
            return Err(format!("'{s}': a rate allows at least 1 request; use off to disable"));
        }
        Ok(Some(Rate { count, period: std::time::Duration::from_secs(secs) }))
    }
}

/// Settings given on the command line; only those present override the layers below.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FlagOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_memory: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
}

/// Environment variables that start with `SIGHTLINE_` but are not settings: the dev
/// script's own.
const NOT_SETTINGS: [&str; 1] = ["SIGHTLINE_DUCKDB_DIR"];

impl Config {
    /// Loads every layer and validates the result.
    pub fn load(file: Option<&Path>, flags: &FlagOverrides) -> anyhow::Result<Config> {
        Self::from_figment(Self::figment(file, flags))
    }

    pub fn figment(file: Option<&Path>, flags: &FlagOverrides) -> Figment {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            fig = fig.merge(Toml::file_exact(path));
        }
        // Only variables that name a setting: client tools read SIGHTLINE_URL and the like,
        // and those must not stop the service (`unknown_env_vars` warns of them instead).
        // An unknown key in the TOML file still fails.
        let known = setting_names();
        fig.merge(Env::prefixed("SIGHTLINE_").filter(move |k| known.iter().any(|n| k == n.as_str())))
            .merge(Serialized::defaults(flags))
    }

    pub fn from_figment(fig: Figment) -> anyhow::Result<Config> {
        let cfg: Config = fig.extract().map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> anyhow::Result<()> {
        let bad = |name: &str, why: &str| Err(anyhow::anyhow!("invalid configuration: {name} {why}"));
        if let Some(s) = &self.jwt_secret
            && s.expose().len() < 16
        {
            return bad("jwt_secret (SIGHTLINE_JWT_SECRET)", "must be at least 16 characters");
        }
        match (&self.admin_username, &self.admin_password) {
            (Some(_), None) | (None, Some(_)) => {
                return bad("admin_username / admin_password", "must be given together");
            }
            (Some(u), Some(p)) => {
                if u.trim().is_empty() {
                    return bad("admin_username (SIGHTLINE_ADMIN_USERNAME)", "must not be empty");
                }
                if p.expose().len() < 8 {
                    return bad("admin_password (SIGHTLINE_ADMIN_PASSWORD)", "must be at least 8 characters");
                }
            }
            (None, None) => {}
        }
        if let Err(e) = crate::outbound::OutboundPolicy::new(&self.outbound_allow) {
            return bad("outbound_allow (SIGHTLINE_OUTBOUND_ALLOW)", &e);
        }
        if self.ingest_queue == 0 {
            return bad("ingest_queue", "must be at least 1");
        }
        if self.ingest_max_batch == 0 {
            return bad("ingest_max_batch", "must be at least 1");
        }
        if self.access_token_ttl_secs < 10 || self.access_token_ttl_secs > 24 * 3600 {
            return bad("access_token_ttl_secs", "must be 10 to 86400");
        }
        if self.refresh_token_ttl_secs < self.access_token_ttl_secs {
            return bad("refresh_token_ttl_secs", "must be at least access_token_ttl_secs");
        }
        for (name, v) in self.limit_settings() {
            if let Err(e) = Rate::parse(v) {
                return bad(name, &e);
            }
        }
        for d in &self.deprecated_routes {
            if !d.path.starts_with('/') {
                return bad("deprecated_routes", &format!("path '{}' must start with /", d.path));
            }
            if d.sunset.is_some_and(|s| s < d.deprecation) {
                return bad("deprecated_routes", &format!("{}: sunset comes before deprecation", d.path));
            }
        }
        if self.header_read_timeout_secs == 0 || self.header_read_timeout_secs > 3600 {
            return bad("header_read_timeout_secs", "must be 1 to 3600");
        }
        if self.body_read_timeout_secs == 0 || self.body_read_timeout_secs > 3600 {
            return bad("body_read_timeout_secs", "must be 1 to 3600");
        }
        if self.max_connections == 0 {
            return bad("max_connections", "must be at least 1");
        }
        if self.max_readers == 0 {
            return bad("max_readers", "must be at least 1");
        }
        if let Some(m) = &self.duckdb_memory_limit
            && !is_memory_size(m)
        {
            return bad("duckdb_memory_limit", "must be a size such as 512MB, 2GB or 50%");
        }
        if !is_memory_size(&self.duckdb_checkpoint_threshold) || self.duckdb_checkpoint_threshold.ends_with('%') {
            return bad("duckdb_checkpoint_threshold", "must be a size such as 64MB or 1GB");
        }
        if self.duckdb_threads.is_some_and(|t| t == 0 || t > 1024) {
            return bad("duckdb_threads", "must be 1 to 1024");
        }
        if !(1_000..=100_000_000).contains(&self.dedupe_ids_in_memory) {
            return bad("dedupe_ids_in_memory", "must be 1000 to 100000000");
        }
        if self.materialized_properties.len() > 64 {
            return bad("materialized_properties", "at most 64 keys");
        }
        for k in &self.materialized_properties {
            if k.is_empty() || k.contains('.') || sightline_core::query::field::PropertyPath::parse(k).is_err() {
                return bad("materialized_properties", &format!("'{k}' is not a top-level property key"));
            }
        }
        if self.query_timeout_ms == 0 || self.query_timeout_ms > 600_000 {
            return bad("query_timeout_ms", "must be 1 to 600000 (ten minutes)");
        }
        Ok(())
    }

    pub fn limit_settings(&self) -> [(&'static str, &str); 8] {
        [
            ("limit_events", &self.limit_events),
            ("limit_batch", &self.limit_batch),
            ("limit_queries", &self.limit_queries),
            ("limit_reports", &self.limit_reports),
            ("limit_dashboards", &self.limit_dashboards),
            ("limit_export", &self.limit_export),
            ("limit_api", &self.limit_api),
            ("limit_unauthenticated", &self.limit_unauthenticated),
        ]
    }

    /// Every rate limit set to `off` (benchmarks of the bare path).
    pub fn without_limits(mut self) -> Self {
        for v in [
            &mut self.limit_events,
            &mut self.limit_batch,
            &mut self.limit_queries,
            &mut self.limit_reports,
            &mut self.limit_dashboards,
            &mut self.limit_export,
            &mut self.limit_api,
            &mut self.limit_unauthenticated,
        ] {
            *v = "off".into();
        }
        self
    }

    pub fn duckdb_path(&self) -> Option<PathBuf> {
        (!self.in_memory).then(|| self.data_dir.join("sightline.duckdb"))
    }

    pub fn sqlite_path(&self) -> Option<PathBuf> {
        (!self.in_memory).then(|| self.data_dir.join("sightline.sqlite"))
    }
}

/// Every setting's name, as the TOML file spells it.
fn setting_names() -> Vec<String> {
    serde_json::to_value(Config::default())
        .ok()
        .and_then(|v| v.as_object().map(|o| o.keys().cloned().collect()))
        .unwrap_or_default()
}

/// `SIGHTLINE_*` variables that name no setting: a typo or another tool's, worth a warning.
pub fn unknown_env_vars() -> Vec<String> {
    let known: Vec<String> = setting_names().iter().map(|k| format!("SIGHTLINE_{}", k.to_uppercase())).collect();
    std::env::vars()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("SIGHTLINE_"))
        .filter(|k| !known.contains(k) && !NOT_SETTINGS.contains(&k.as_str()))
        .collect()
}

#[cfg(test)]
// figment's Jail closures return its own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn layers_override_in_order() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "s.toml",
                "listen = \"127.0.0.1:9000\"\ndata_dir = \"/tmp/from-file\"\nmax_readers = 2\n",
            )?;
            jail.set_env("SIGHTLINE_DATA_DIR", "/tmp/from-env");
            jail.set_env("SIGHTLINE_JWT_SECRET", "0123456789abcdef0123");
            let flags = FlagOverrides { listen: Some("127.0.0.1:9100".parse().unwrap()), ..Default::default() };
            let cfg = Config::load(Some(Path::new("s.toml")), &flags).map_err(|e| e.to_string())?;
            assert_eq!(cfg.listen.port(), 9100, "flag beats file");
            assert_eq!(cfg.data_dir, PathBuf::from("/tmp/from-env"), "env beats file");
            assert_eq!(cfg.max_readers, 2, "file beats default");
            assert_eq!(cfg.ingest_queue, Config::default().ingest_queue, "default stays");
            assert_eq!(format!("{:?}", cfg.jwt_secret), "Some([redacted])");
            Ok(())
        });
    }

    #[test]
    fn unknown_variables_are_ignored_but_unknown_file_keys_fail() {
        Jail::expect_with(|jail| {
            jail.set_env("SIGHTLINE_URL", "http://127.0.0.1:8080");
            jail.set_env("SIGHTLINE_MAX_READERS", "3");
            let cfg = Config::load(None, &FlagOverrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(cfg.max_readers, 3, "known variables still apply");
            assert!(unknown_env_vars().contains(&"SIGHTLINE_URL".to_owned()));
            jail.create_file("s.toml", "url = \"x\"\n")?;
            let err = Config::load(Some(Path::new("s.toml")), &FlagOverrides::default()).unwrap_err().to_string();
            assert!(err.contains("url"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn outbound_networks_come_from_the_environment_and_bad_ones_stop_the_start() {
        Jail::expect_with(|jail| {
            jail.set_env("SIGHTLINE_OUTBOUND_ALLOW", r#"["127.0.0.0/8", "::1"]"#);
            let cfg = Config::load(None, &FlagOverrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(cfg.outbound_allow, vec!["127.0.0.0/8".to_owned(), "::1".to_owned()]);
            jail.set_env("SIGHTLINE_OUTBOUND_ALLOW", r#"["127.0.0.0/40"]"#);
            let err = Config::load(None, &FlagOverrides::default()).unwrap_err().to_string();
            assert!(err.contains("SIGHTLINE_OUTBOUND_ALLOW") && err.contains("127.0.0.0/40"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn duckdb_memory_and_threads_are_checked() {
        Jail::expect_with(|jail| {
            jail.set_env("SIGHTLINE_DUCKDB_MEMORY_LIMIT", "512MB");
            jail.set_env("SIGHTLINE_DUCKDB_THREADS", "2");
            let cfg = Config::load(None, &FlagOverrides::default()).map_err(|e| e.to_string())?;
            assert_eq!((cfg.duckdb_memory_limit.as_deref(), cfg.duckdb_threads), (Some("512MB"), Some(2)));
            for ok in ["1GiB", "2.5 GB", "50%", "100000b"] {
                assert!(is_memory_size(ok), "{ok}");
            }
            for bad in ["", "GB", "12", "-1GB", "0MB", "1 parsec", "1GB; SET x"] {
                jail.set_env("SIGHTLINE_DUCKDB_MEMORY_LIMIT", bad);
                let err = Config::load(None, &FlagOverrides::default()).unwrap_err().to_string();
                assert!(err.to_lowercase().contains("duckdb_memory_limit"), "{bad}: {err}");
            }
            jail.set_env("SIGHTLINE_DUCKDB_MEMORY_LIMIT", "1GB");
            jail.set_env("SIGHTLINE_DUCKDB_THREADS", "0");
            let err = Config::load(None, &FlagOverrides::default()).unwrap_err().to_string();
            assert!(err.contains("duckdb_threads"), "{err}");
            jail.set_env("SIGHTLINE_DUCKDB_THREADS", "2");
            for bad in ["50%", "0MB", "lots"] {
                jail.set_env("SIGHTLINE_DUCKDB_CHECKPOINT_THRESHOLD", bad);
                let err = Config::load(None, &FlagOverrides::default()).unwrap_err().to_string();
                assert!(err.contains("duckdb_checkpoint_threshold"), "{bad}: {err}");
            }
            jail.set_env("SIGHTLINE_DUCKDB_CHECKPOINT_THRESHOLD", "128MB");
            let cfg = Config::load(None, &FlagOverrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(cfg.duckdb_checkpoint_threshold, "128MB");
            Ok(())
        });
    }

    #[test]
    fn bad_values_name_the_setting() {
        Jail::expect_with(|jail| {
            jail.set_env("SIGHTLINE_LISTEN", "not-an-address");
            let err = Config::load(None, &FlagOverrides::default()).unwrap_err().to_string();
            assert!(err.to_lowercase().contains("listen"), "{err}");
            jail.set_env("SIGHTLINE_LISTEN", "127.0.0.1:1");
            jail.set_env("SIGHTLINE_JWT_SECRET", "short");
            let err = Config::load(None, &FlagOverrides::default()).unwrap_err().to_string();
            assert!(err.contains("SIGHTLINE_JWT_SECRET"), "{err}");
            jail.set_env("SIGHTLINE_JWT_SECRET", "0123456789abcdef0123");
            jail.set_env("SIGHTLINE_ADMIN_USERNAME", "root");
            let err = Config::load(None, &FlagOverrides::default()).unwrap_err().to_string();
            assert!(err.contains("together"), "{err}");
            Ok(())
        });
    }
}
