//! Admin commands. They open the meta store directly (never the analytics store, which a
//! running server holds), so they work while the service runs.

use crate::auth::{api_key, password};
use crate::config::Config;
use crate::store::{KeyStore, NewApiKey, NewUser, StoreError, TenantStore, UserStore, sqlite::SqliteMeta};
use clap::Subcommand;
use serde_json::json;
use sightline_core::model::{Role, TenantId};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum TenantCmd {
    /// Create a tenant and print it.
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
        /// Id to use (letters, digits, '_', '-', '.'); a UUID when omitted.
        #[arg(long)]
        id: Option<String>,
    },
    /// List tenants.
    List,
}

#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Create a user and print it.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        username: String,
        #[arg(long)]
        password: String,
        #[arg(long, value_parser = Role::parse)]
        role: Role,
        /// May manage tenants and act in any of them (needs --role admin).
        #[arg(long)]
        superuser: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    /// Create an API key and print it; the key is shown only this once.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long, value_parser = Role::parse)]
        role: Role,
        /// A label to recognise the key by.
        #[arg(long, default_value = "cli")]
        name: String,
    },
}

async fn meta(cfg: &Config) -> anyhow::Result<SqliteMeta> {
    std::fs::create_dir_all(&cfg.data_dir)?;
    let path: PathBuf = cfg.sqlite_path().expect("not in memory");
    let m = SqliteMeta::open(Some(&path)).await?;
    m.ensure_tenant(&TenantId::default_tenant(), "Default").await.map_err(err)?;
    Ok(m)
}

fn err(e: StoreError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

fn tenant_id(s: &str) -> anyhow::Result<TenantId> {
    TenantId::parse(s).map_err(|e| anyhow::anyhow!("--tenant: {e}"))
}

async fn existing_tenant(m: &SqliteMeta, s: &str) -> anyhow::Result<TenantId> {
    let id = tenant_id(s)?;
    if m.get_tenant(&id).await.map_err(err)?.is_none() {
        anyhow::bail!("no tenant '{id}'; create it with `sightline tenants create`");
    }
    Ok(id)
}

fn print(v: serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(&v).expect("json"));
}

pub async fn tenants(cfg: Config, cmd: TenantCmd) -> anyhow::Result<()> {
    let m = meta(&cfg).await?;
    match cmd {
        TenantCmd::Create { name, id } => {
            let id = match id {
                Some(s) => tenant_id(&s)?,
                None => TenantId::parse(&uuid::Uuid::now_v7().to_string()).expect("a uuid is a valid tenant id"),
            };
            if name.trim().is_empty() {
                anyhow::bail!("--name must not be empty");
            }
            let t = m.create_tenant(&id, name.trim()).await.map_err(|e| match e {
                StoreError::Conflict(_) => anyhow::anyhow!("a tenant with id '{id}' exists already"),
                e => err(e),
            })?;
            print(json!({ "tenant": t }));
        }
        TenantCmd::List => print(json!({ "tenants": m.list_tenants().await.map_err(err)? })),
    }
    Ok(())
}

pub async fn users(cfg: Config, cmd: UserCmd) -> anyhow::Result<()> {
    let m = meta(&cfg).await?;
    match cmd {
        UserCmd::Create { tenant, username, password: pw, role, superuser } => {
            if superuser && role != Role::Admin {
                anyhow::bail!("--superuser needs --role admin");
            }
            let tenant = existing_tenant(&m, &tenant).await?;
            if username.trim().is_empty() || username.len() > 150 {
                anyhow::bail!("--username must have 1 to 150 characters");
            }
            if pw.len() < 8 {
                anyhow::bail!("--password must have at least 8 characters");
            }
            let hash = password::hash(&pw)?;
            let user = m
                .create_user(NewUser {
                    tenant: &tenant,
                    username: username.trim(),
                    password_hash: &hash,
                    role,
                    superuser,
                })
                .await
                .map_err(|e| match e {
                    StoreError::Conflict(_) => anyhow::anyhow!("tenant '{tenant}' has a user '{username}' already"),
                    e => err(e),
                })?;
            print(json!({ "user": user }));
        }
    }
    Ok(())
}

pub async fn keys(cfg: Config, cmd: KeyCmd) -> anyhow::Result<()> {
    let m = meta(&cfg).await?;
    match cmd {
        KeyCmd::Create { tenant, role, name } => {
            let tenant = existing_tenant(&m, &tenant).await?;
            let (key, hash) = api_key::generate();
            let made = m
                .create_api_key(NewApiKey {
                    tenant: &tenant,
                    name: &name,
                    prefix: api_key::display_prefix(&key),
                    key_hash: &hash,
                    role,
                    expires_at: None,
                })
                .await
                .map_err(err)?;
            print(json!({ "api_key": made, "key": key, "note": "the key is shown only once; store it now" }));
        }
    }
    Ok(())
}
