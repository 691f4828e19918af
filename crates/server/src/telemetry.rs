//! Logs (tracing) and metrics (Prometheus text at `/metrics`).

use crate::config::{Config, LogFormat};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use tracing_subscriber::EnvFilter;

/// Installs the log subscriber for the process. `RUST_LOG`, when set, wins over the
/// configured level.
pub fn init_logging(cfg: &Config) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cfg.log_level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match cfg.log_format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's metrics recorder, installed on first use. One per process, because the
/// `metrics` facade has one global recorder; several apps in one test process share it.
pub fn prometheus() -> &'static PrometheusHandle {
    PROMETHEUS.get_or_init(|| {
        let seconds = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
        let sizes = [1.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 5000.0, 20000.0];
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_events".into()), &sizes))
            .expect("static buckets are valid")
            .build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder is installed; then ours just records nothing.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Metric names, in one place so that dashboards and code agree.
pub mod names {
    pub const HTTP_REQUESTS: &str = "sightline_http_requests_total";
    pub const HTTP_DURATION: &str = "sightline_http_request_duration_seconds";
    pub const INGEST_QUEUE_DEPTH: &str = "sightline_ingest_queue_depth";
    pub const INGEST_REJECTED: &str = "sightline_ingest_rejected_total";
    pub const INGEST_COMMIT_DURATION: &str = "sightline_ingest_commit_duration_seconds";
    pub const INGEST_COMMIT_SIZE: &str = "sightline_ingest_commit_events";
    pub const EVENTS_STORED: &str = "sightline_events_stored_total";
    pub const EVENTS_DUPLICATE: &str = "sightline_events_duplicate_total";
    pub const EVENTS_IN_STORE: &str = "sightline_events_in_store";
    pub const QUERY_DURATION: &str = "sightline_query_duration_seconds";
}
