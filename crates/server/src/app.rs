//! Wiring: opens the stores, starts the writer, builds the router, serves, and shuts down
//! in order (stop taking requests, drain the queue, checkpoint).

use crate::auth::Authenticator;
use crate::config::Config;
use crate::engine::Engine;
use crate::ingest::{Ingestor, Writer};
use crate::store::{EventReader, MetaStore, MetricReader, NewUser, StoreError, duckdb, sqlite};
use anyhow::Context;
use sightline_core::model::{Role, TenantId};
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// What every handler may reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

pub struct Services {
    pub config: Config,
    pub meta: Arc<dyn MetaStore>,
    pub events: Arc<dyn EventReader>,
    pub metrics: Arc<dyn MetricReader>,
    /// Every analysis goes through the engine.
    pub engine: Arc<dyn Engine>,
    /// Properties events keep in columns of their own (the compiler reads those).
    pub property_columns: sightline_core::query::field::PropertyColumns,
    pub ingest: Ingestor,
    pub auth: Authenticator,
    pub sessions: crate::auth::session::Sessions,
    pub limiter: crate::http::guard::rate_limit::Limiter,
    pub cors: crate::http::hygiene::CorsPolicy,
    /// Where the service's own requests may go.
    pub outbound: crate::outbound::OutboundPolicy,
    /// The free-space floor that writes check.
    pub disk: Arc<crate::disk::DiskGuard>,
    pub started: Instant,
}

impl Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The stores, opened and migrated.
pub struct Stores {
    pub meta: Arc<dyn MetaStore>,
    pub events: Arc<dyn EventReader>,
    pub metrics: Arc<dyn MetricReader>,
    pub engine: Arc<dyn Engine>,
    pub property_columns: sightline_core::query::field::PropertyColumns,
    pub sink: duckdb::DuckSink,
}

/// The analytics store's resources, as the settings give them.
pub fn store_tuning(cfg: &Config) -> duckdb::Tuning {
    duckdb::Tuning {
        memory_limit: cfg.duckdb_memory_limit.clone(),
        threads: cfg.duckdb_threads,
        checkpoint_threshold: Some(cfg.duckdb_checkpoint_threshold.clone()),
        ids_in_memory: cfg.dedupe_ids_in_memory,
    }
}

pub async fn open_stores(cfg: &Config) -> anyhow::Result<Stores> {
    if !cfg.in_memory {
        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("creating data dir {}", cfg.data_dir.display()))?;
    }
    let meta = sqlite::SqliteMeta::open(cfg.sqlite_path().as_deref()).await?;
    let duck_path = cfg.duckdb_path();
    let readers = cfg.max_readers;
    let keep = cfg.materialized_properties.clone();
    let tuning = store_tuning(cfg);
    let (sink, reader, property_columns) =
        tokio::task::spawn_blocking(move || duckdb::open_with(duck_path.as_deref(), readers, &keep, &tuning)).await??;
    let reader = Arc::new(reader);
    Ok(Stores {
        meta: Arc::new(meta),
        events: reader.clone(),
        metrics: reader.clone(),
        engine: Arc::new(duckdb::DuckEngine::new(reader, property_columns.clone())),
        property_columns,
        sink,
    })
}

/// A built service, bound to its address, not yet serving.
pub struct App {
    state: AppState,
    writer: Writer,
    listener: TcpListener,
}

impl App {
    pub async fn build(config: Config) -> anyhow::Result<App> {
        crate::telemetry::prometheus();
        let stores = open_stores(&config).await?;
        let secret = match &config.jwt_secret {
            Some(s) => s.expose().to_owned(),
            None => stores.meta.setting_or_init("jwt_secret", &random_secret).await.map_err(anyhow_of)?,
        };
        bootstrap_admin(&config, stores.meta.as_ref()).await?;
        let keeper = stores.meta.answer_keeper();
        let (ingest, writer) = Ingestor::start(stores.sink, config.ingest_queue, config.ingest_max_batch, keeper);
        let listener = TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
        let limiter = crate::http::guard::rate_limit::Limiter::from_config(&config)?;
        let cors = crate::http::hygiene::CorsPolicy::load(&config.cors_origins, stores.meta.as_ref()).await?;
        let mut verifier = crate::auth::jwt::JwtVerifier::hs256(secret.as_bytes()).with_claim_names(
            &config.jwt_role_claim,
            &config.jwt_roles_claim,
            &config.jwt_tenant_claim,
        );
        if let Some(path) = &config.jwks_file {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("reading jwks_file {}", path.display()))?;
            verifier = verifier
                .with_jwks(&text, config.jwt_issuer.as_deref(), config.jwt_audience.as_deref())
                .with_context(|| format!("jwks_file {}", path.display()))?;
        }
        if let Some(url) = &config.jwks_url {
            let every = Duration::from_secs(config.jwks_refetch_secs);
            verifier =
                verifier.with_jwks_url(url, every, config.jwt_issuer.as_deref(), config.jwt_audience.as_deref()).await;
        }
        let auth = Authenticator::new(verifier, stores.meta.clone());
        let sessions = crate::auth::session::Sessions::new(
            &secret,
            Duration::from_secs(config.access_token_ttl_secs),
            Duration::from_secs(config.refresh_token_ttl_secs),
        )?;
        let outbound = crate::outbound::OutboundPolicy::new(&config.outbound_allow).map_err(anyhow::Error::msg)?;
        let disk = crate::disk::DiskGuard::watch(
            (!config.in_memory).then_some(config.data_dir.as_path()),
            config.min_free_disk_mb,
        );
        let state = AppState(Arc::new(Services {
            config,
            meta: stores.meta,
            events: stores.events,
            metrics: stores.metrics,
            engine: stores.engine,
            property_columns: stores.property_columns,
            ingest,
            auth,
            sessions,
            limiter,
            cors,
            outbound,
            disk,
            started: Instant::now(),
        }));
        Ok(App { state, writer, listener })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests (up to the
    /// grace period), commits what is queued and checkpoints.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let App { state, writer, listener } = self;
        let service = crate::http::service(state.clone());
        let grace = Duration::from_secs(state.config.shutdown_grace_secs);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let limits = crate::http::listener::ConnectionLimits {
            header_read_timeout: Duration::from_secs(state.config.header_read_timeout_secs),
            body_read_timeout: Duration::from_secs(state.config.body_read_timeout_secs),
            max_connections: state.config.max_connections,
        };
        let server = crate::http::listener::serve(listener, service, limits, async move {
            shutdown.await;
            let _ = stop_tx.send(());
        });
        let serving = tokio::spawn(async move {
            server.await;
            anyhow::Ok(())
        });
        // A store a failed write left unusable is opened again even while nothing is
        // written, so that reads recover too (a no-op message to the writer otherwise).
        let ingest = state.ingest.clone();
        let recovering = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(2));
            loop {
                every.tick().await;
                let _ = ingest.run(|sink| sink.recover()).await;
            }
        });
        let mut serving = serving;
        tokio::select! {
            r = &mut serving => { r??; }
            _ = async { let _ = stop_rx.await; tokio::time::sleep(grace).await; } => {
                tracing::warn!("in-flight requests outlived the grace period; stopping anyway");
                serving.abort();
            }
        }
        recovering.abort();
        tracing::info!("draining the ingest queue and checkpointing");
        state.ingest.shutdown().await.context("final commit and checkpoint")?;
        tokio::task::spawn_blocking(move || writer.join()).await?;
        tracing::info!("stopped");
        Ok(())
    }
}

fn random_secret() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the OS random source");
    hex::encode(b)
}

fn anyhow_of(e: StoreError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// Creates the configured admin in the default tenant on first start; later starts leave
/// the user (and a password changed since) alone.
async fn bootstrap_admin(cfg: &Config, meta: &dyn MetaStore) -> anyhow::Result<()> {
    let tenant = TenantId::default_tenant();
    meta.ensure_tenant(&tenant, "Default").await.map_err(anyhow_of)?;
    let (Some(user), Some(password)) = (&cfg.admin_username, &cfg.admin_password) else {
        return Ok(());
    };
    if meta.find_user(&tenant, user).await.map_err(anyhow_of)?.is_some() {
        return Ok(());
    }
    let hash = crate::auth::password::hash(password.expose())?;
    // The operator's admin is the first superuser: it can create the other tenants.
    meta.create_user(NewUser {
        tenant: &tenant,
        username: user,
        password_hash: &hash,
        role: Role::Admin,
        superuser: true,
    })
    .await
    .map_err(anyhow_of)?;
    tracing::info!(username = %user, "created the configured admin in the default tenant");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed when this is called, not
/// when the future is first polled: a SIGTERM sent as soon as the service says it listens
/// must stop it gracefully, not kill it.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    #[cfg(unix)]
    let int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
    async move {
        #[cfg(unix)]
        {
            let wait = |s: std::io::Result<tokio::signal::unix::Signal>| async move {
                match s {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(_) => std::future::pending().await,
                }
            };
            tokio::select! { _ = wait(int) => {}, _ = wait(term) => {} }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutdown signal received");
    }
}
