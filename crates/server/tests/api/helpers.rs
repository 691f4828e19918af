//! The test harness: a real server on 127.0.0.1 port 0 with fresh stores (in memory, or
//! in a temp dir when a test restarts it), and a client that mints credentials.

use chrono::Utc;
use serde_json::Value;
use sightline::app::App;
use sightline::auth::jwt::{Claims, sign_hs256};
use sightline::config::{Config, Secret};
use std::net::SocketAddr;
use std::path::Path;

pub const SECRET: &str = "test-secret-0123456789abcdef";

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// A fresh config. Rate limits are raised far above what any test sends, except in the
/// tests of rate limits, which set their own.
pub fn config(data_dir: Option<&Path>) -> Config {
    let high = || "1000000/minute".to_owned();
    Config {
        limit_events: high(),
        limit_batch: high(),
        limit_queries: high(),
        limit_api: high(),
        limit_unauthenticated: high(),
        listen: "127.0.0.1:0".parse().unwrap(),
        in_memory: data_dir.is_none(),
        data_dir: data_dir.map(Path::to_path_buf).unwrap_or_default(),
        jwt_secret: Some(Secret::new(SECRET)),
        log_level: "warn".into(),
        ..Config::default()
    }
}

pub const ADMIN_USER: &str = "admin";
pub const ADMIN_PASSWORD: &str = "adminpass";

impl TestApp {
    /// With the configured admin (seed 003's `admin` / `adminpass`), a superuser of the
    /// default tenant.
    pub async fn with_admin() -> TestApp {
        let mut cfg = config(None);
        cfg.admin_username = Some(ADMIN_USER.into());
        cfg.admin_password = Some(Secret::new(ADMIN_PASSWORD));
        Self::with_config(cfg).await
    }

    pub async fn spawn() -> TestApp {
        Self::with_config(config(None)).await
    }

    pub async fn with_config(cfg: Config) -> TestApp {
        let app = App::build(cfg).await.expect("app builds");
        let addr = app.local_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        TestApp { addr, client: reqwest::Client::new(), stop: Some(stop), server: Some(server) }
    }

    /// Stops as a SIGTERM would: in-flight requests finish, the queue drains, the store
    /// checkpoints.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.server.take().unwrap().await.unwrap().unwrap();
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(self.url(path))
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.post(self.url(path))
    }

    pub fn request(&self, method: &str, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method.parse().unwrap(), self.url(path))
    }

    /// Signs in through seed 002's endpoint and returns (access, refresh).
    pub async fn sign_in(&self, username: &str, password: &str, tenant: Option<&str>) -> (String, String) {
        let mut body = serde_json::json!({"username": username, "password": password});
        if let Some(t) = tenant {
            body["tenant"] = t.into();
        }
        let (s, b, _) = send(self.post("/api/token/").json(&body)).await;
        assert_eq!(s, 200, "sign-in of {username}: {b}");
        (b["access"].as_str().unwrap().to_owned(), b["refresh"].as_str().unwrap().to_owned())
    }
}

/// A JWT for `role` in `tenant` (None: the default tenant), valid for an hour.
pub fn token(role: &str, tenant: Option<&str>) -> String {
    token_with(Claims {
        sub: format!("{role}-user"),
        exp: (Utc::now().timestamp() + 3600) as u64,
        role: Some(role.into()),
        tenant_id: tenant.map(str::to_owned),
        ..Default::default()
    })
}

pub fn token_with(claims: Claims) -> String {
    sign_hs256(SECRET.as_bytes(), &claims)
}

/// A superuser's JWT (role `superuser`) in the default tenant.
pub fn superuser() -> String {
    token("superuser", None)
}

pub fn admin() -> String {
    token("admin", None)
}

/// Sends and returns (status, body as JSON, content type).
pub async fn send(req: reqwest::RequestBuilder) -> (u16, Value, String) {
    let res = req.send().await.expect("request is sent");
    let status = res.status().as_u16();
    let ctype = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let text = res.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body, ctype)
}

/// Asserts an RFC 9457 problem with this status, and returns it.
pub fn assert_problem(got: &(u16, Value, String), status: u16) -> Value {
    let (s, body, ctype) = got;
    assert_eq!(*s, status, "status; body: {body}");
    assert_eq!(ctype, "application/problem+json", "content type; body: {body}");
    assert_eq!(body["status"], status, "{body}");
    for f in ["type", "title", "detail", "instance"] {
        assert!(body[f].is_string(), "problem lacks {f}: {body}");
    }
    assert!(!body["detail"].as_str().unwrap().is_empty());
    body.clone()
}

/// base64url without padding (JWT segments, JWK members).
pub fn b64url(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (*b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// splitmix64: a small seeded generator, so that tests spread their data the same way on
/// every run.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True `percent` times out of 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<T: Clone>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize].clone()
    }
}

/// A server of its own, in a child process: for a kill -9, and for the metrics recorder,
/// which is global to a process (in this test binary every app's requests would count
/// together).
pub struct Child {
    proc: std::process::Child,
    pub addr: String,
    /// The log lines written before it listened (start-up: migrations, recovery).
    pub startup_log: Vec<serde_json::Value>,
}

impl Child {
    /// `sightline serve` with `args` and `env` besides its address and log format.
    pub async fn start(args: &[&str], env: &[(&str, &str)]) -> Child {
        use std::io::BufRead;
        let mut proc = std::process::Command::new(env!("CARGO_BIN_EXE_sightline"))
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .args(args)
            .envs(env.iter().copied())
            .env("SIGHTLINE_JWT_SECRET", SECRET)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the sightline binary starts");
        // Logs go to stderr.
        let out = std::io::BufReader::new(proc.stderr.take().unwrap());
        let (found, found_rx) = std::sync::mpsc::channel();
        // Reads the log to its end: the start-up lines until it listens, then the rest to
        // the test's own output (shown when a test fails), so the pipe never fills or breaks.
        std::thread::spawn(move || {
            let mut log = Vec::new();
            let mut found = Some(found);
            for line in out.lines().map_while(Result::ok) {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                if let Some(tx) = found.take_if(|_| v["message"] == "listening") {
                    let _ = tx.send(v["address"].as_str().map(|a| (a.to_owned(), std::mem::take(&mut log))));
                } else if found.is_some() {
                    log.push(v);
                } else {
                    eprintln!("[server] {line}");
                }
            }
            if let Some(tx) = found {
                let _ = tx.send(None);
            }
        });
        let reading = tokio::task::spawn_blocking(move || found_rx.recv().ok().flatten());
        let (addr, startup_log) = match tokio::time::timeout(std::time::Duration::from_secs(60), reading).await {
            Ok(Ok(Some(found))) => found,
            _ => {
                let _ = proc.kill();
                panic!("the server did not log its address within 60 s");
            }
        };
        Child { proc, addr, startup_log }
    }
}

impl Child {
    /// Stops the process at once, as `kill -9` does.
    pub fn kill(mut self) {
        let _ = self.proc.kill();
        let _ = self.proc.wait();
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.proc.kill();
        let _ = self.proc.wait();
    }
}
