//! `sightline bench query --serve`: the service itself on the generated file. It starts
//! `sightline serve` (this binary) on the file twice: the first start builds the event id
//! set (the events went in past the writer); the second is the cold start reported. Then
//! every case goes over HTTP, as clients send it, a few times from one client and then
//! from two at once, and the service's own peak resident memory (VmHWM) is read from
//! /proc: the figure the memory target is about, apart from the bench's.

use super::query::{Case, Model};
use crate::auth::jwt::{Claims, sign_hs256};
use anyhow::{Context, bail};
use chrono::Utc;
use serde_json::{Value, json};
use std::io::BufRead;
use std::path::Path;
use std::time::{Duration, Instant};

const SECRET: &str = "bench-serve-secret-0123456789abcdef";
/// Rounds of every case from one client; as many again from each of two clients at once.
const ROUNDS: usize = 3;

struct Served {
    proc: std::process::Child,
    addr: String,
    /// From spawning to listening.
    start: Duration,
}

impl Served {
    /// Starts the service on `dir` with the default settings (besides any `SIGHTLINE_*`
    /// variables this process has) and waits until it listens.
    fn start(dir: &Path) -> anyhow::Result<Served> {
        let started = Instant::now();
        let mut proc = std::process::Command::new(std::env::current_exe()?)
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json", "--data-dir"])
            .arg(dir)
            .env("SIGHTLINE_JWT_SECRET", SECRET)
            .env("SIGHTLINE_LIMIT_QUERIES", "off")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("starting sightline serve")?;
        let mut log = std::io::BufReader::new(proc.stderr.take().expect("piped"));
        let mut line = String::new();
        let addr = loop {
            line.clear();
            if log.read_line(&mut line)? == 0 {
                bail!("sightline serve stopped before it listened");
            }
            let v: Value = serde_json::from_str(&line).unwrap_or_default();
            if let Some(a) = v["fields"]["address"].as_str().or(v["address"].as_str()) {
                break a.to_owned();
            }
        };
        let start = started.elapsed();
        // The rest of the log is read and dropped: a full pipe would stop the service.
        std::thread::spawn(move || std::io::copy(&mut log, &mut std::io::sink()));
        Ok(Served { proc, addr, start })
    }

    /// A figure from the service's /proc status, in MiB.
    fn status_mib(&self, field: &str) -> f64 {
        super::proc_status_mib(&self.proc.id().to_string(), field)
    }

    /// Stops it as an operator would (SIGTERM) and waits for it to finish.
    fn stop(mut self) -> anyhow::Result<()> {
        let pid = rustix::process::Pid::from_raw(self.proc.id() as i32).context("a child's pid")?;
        rustix::process::kill_process(pid, rustix::process::Signal::TERM)?;
        let status = self.proc.wait()?;
        anyhow::ensure!(status.success(), "sightline serve exited with {status}");
        Ok(())
    }
}

/// The request a client sends for `c`.
fn request(client: &reqwest::Client, base: &str, token: &str, c: &Case) -> reqwest::RequestBuilder {
    let post = |path: &str, body: Value| client.post(format!("{base}{path}")).json(&body);
    let req = match c.model {
        Model::Insight => post("/api/v1/insights", c.query.clone()),
        Model::Funnel => post("/api/v1/analytics/funnels", c.query.clone()),
        Model::Retention => post("/api/v1/analytics/cohorts", c.query.clone()),
        Model::Rfm => client.get(format!("{base}/api/v1/customers/rfm")),
        Model::Sql => post("/api/v1/analytics/query", json!({ "query": c.query })),
    };
    req.bearer_auth(token).timeout(Duration::from_secs(600))
}

fn token(tenant: &str) -> String {
    sign_hs256(
        SECRET.as_bytes(),
        &Claims {
            sub: "bench".into(),
            exp: (Utc::now().timestamp() + 24 * 3600) as u64,
            role: Some("admin".into()),
            tenant_id: Some(tenant.into()),
            ..Default::default()
        },
    )
}

/// Sends every case once; `after` hears of each case done.
async fn every_case(
    client: &reqwest::Client,
    base: &str,
    cases: &[Case],
    mut after: impl FnMut(&Case),
) -> anyhow::Result<usize> {
    let mut sent = 0;
    for c in cases {
        let res = request(client, base, &token(c.tenant), c).send().await?;
        let status = res.status();
        if !status.is_success() {
            bail!("{}: the service answered {status}: {}", c.name, res.text().await.unwrap_or_default());
        }
        res.bytes().await?;
        after(c);
        sent += 1;
    }
    Ok(sent)
}

pub fn run(db: &Path, cases: &[Case]) -> anyhow::Result<()> {
    let dir = db.parent().context("the database's folder")?.join("serve");
    std::fs::create_dir_all(&dir)?;
    // A second name for the same file (not a symlink: DuckDB, denied external access,
    // would not follow one to its WAL).
    let file = dir.join("sightline.duckdb");
    if !file.exists() {
        std::fs::hard_link(db, &file).context("linking the database into the service's folder")?;
    }
    eprintln!("serve: first start on {} (builds the event id set) ...", dir.display());
    let first = Served::start(&dir)?;
    let first_start = first.start;
    first.stop()?;
    let served = Served::start(&dir)?;
    let cold = served.start;
    eprintln!("serve: cold start {} ms; sending every case {ROUNDS} times ...", cold.as_millis());
    let rss_at_start = served.status_mib("VmRSS");
    let base = format!("http://{}", served.addr);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut peak_one = f64::NAN;
    let sent = rt.block_on(async {
        let mut sent = 0;
        // The first round says what each case leaves resident.
        let report = |c: &Case| {
            let (rss, peak) = (served.status_mib("VmRSS"), served.status_mib("VmHWM"));
            eprintln!("  {}: service RSS {rss:.0} MiB, peak {peak:.0} MiB", c.name);
        };
        sent += every_case(&client, &base, cases, report).await?;
        for _ in 1..ROUNDS {
            sent += every_case(&client, &base, cases, |_| {}).await?;
        }
        peak_one = served.status_mib("VmHWM");
        for _ in 0..ROUNDS {
            let (a, b) =
                tokio::join!(every_case(&client, &base, cases, |_| {}), every_case(&client, &base, cases, |_| {}));
            sent += a? + b?;
        }
        anyhow::Ok(sent)
    })?;
    let secs = started.elapsed().as_secs_f64();
    let (rss, peak) = (served.status_mib("VmRSS"), served.status_mib("VmHWM"));
    served.stop()?;
    println!();
    println!("| sightline serve on the file | value |");
    println!("|---|---:|");
    println!("| first start (builds the id set), s | {:.1} |", first_start.as_secs_f64());
    println!("| cold start, ms | {} |", cold.as_millis());
    println!("| RSS after start, MiB | {rss_at_start:.0} |");
    println!("| requests (every case, 1 then 2 clients) | {sent} in {secs:.1} s |");
    println!("| RSS after, MiB | {rss:.0} |");
    println!("| peak RSS (VmHWM) after one client, MiB | {peak_one:.0} |");
    println!("| peak RSS (VmHWM) after two clients, MiB | {peak:.0} |");
    Ok(())
}
