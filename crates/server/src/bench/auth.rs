//! `sightline bench auth`: what credentials cost. Times, per operation, HS256 access-token
//! issue and verify, an API key check (cached and not), and argon2id password checks
//! (what one sign-in costs).

use crate::auth::jwt::{Claims, JwtVerifier, sign_hs256};
use crate::auth::{api_key, password};
use crate::store::{KeyStore, NewApiKey, TenantStore};
use chrono::Utc;
use clap::Args;
use sightline_core::model::{Role, TenantId};
use std::time::Instant;

#[derive(Debug, Args)]
pub struct AuthArgs {
    /// Repetitions of each fast operation.
    #[arg(long, default_value_t = 20_000)]
    pub iterations: u32,
}

fn time<T>(n: u32, mut f: impl FnMut() -> T) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(f());
    }
    t.elapsed().as_secs_f64() * 1e6 / n as f64
}

pub fn run(args: AuthArgs, rt: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    let n = args.iterations.max(1);
    let secret = b"bench-secret-0123456789abcdef";
    let claims = Claims {
        sub: "user-1".into(),
        exp: (Utc::now().timestamp() + 600) as u64,
        role: Some("analyst".into()),
        tenant_id: Some("acme".into()),
        ..Default::default()
    };
    let verifier = JwtVerifier::hs256(secret);
    let token = sign_hs256(secret, &claims);
    let issue = time(n, || sign_hs256(secret, &claims));
    let verify = time(n, || verifier.verify_known(&token).expect("valid"));

    let (cached, uncached) = rt.block_on(async {
        let meta = crate::store::sqlite::SqliteMeta::open(None).await?;
        let tenant = TenantId::parse("acme").expect("valid");
        meta.create_tenant(&tenant, "Acme").await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let (key, hash) = api_key::generate();
        meta.create_api_key(NewApiKey {
            tenant: &tenant,
            name: "bench",
            prefix: api_key::display_prefix(&key),
            key_hash: &hash,
            role: Role::Ingest,
            expires_at: None,
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let cache = api_key::KeyCache::default();
        let t = Instant::now();
        for _ in 0..n {
            cache.verify(&key, &meta).await.expect("valid");
        }
        let cached = t.elapsed().as_secs_f64() * 1e6 / n as f64;
        let m = (n / 20).max(1);
        let t = Instant::now();
        for _ in 0..m {
            cache.clear();
            cache.verify(&key, &meta).await.expect("valid");
        }
        anyhow::Ok((cached, t.elapsed().as_secs_f64() * 1e6 / m as f64))
    })?;

    let hash = password::hash("correct horse battery")?;
    let pw = time(10, || password::verify("correct horse battery", &hash)) / 1000.0;

    println!("| operation | time |");
    println!("|---|---:|");
    println!("| issue HS256 access token | {issue:.1} us |");
    println!("| verify HS256 token (signature, exp, claims) | {verify:.1} us |");
    println!("| API key check, cached | {cached:.1} us |");
    println!("| API key check, from SQLite | {uncached:.1} us |");
    println!("| argon2id password check (one sign-in) | {pw:.1} ms |");
    Ok(())
}
