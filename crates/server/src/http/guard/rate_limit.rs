//! Rate limits per (tenant or client address, endpoint class), in windows that open with
//! a key's first request and last one period. Within a window exactly `count` requests
//! pass, which is what a client reading `X-RateLimit-Remaining` expects.
//!
//! Kept in memory: a restart forgets the counts, and cluster mode will need a shared store.

use crate::config::{Config, Rate};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Endpoints that share a limit. Each route names its class in the route table
/// (`http::table`); the rule is written in `docs/limits.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitClass {
    Events,
    Batch,
    Queries,
    Reports,
    Dashboards,
    Export,
    /// Management: users, keys, tenants, audit, sign-in.
    Api,
    /// Probes and metrics: never limited.
    Exempt,
}

impl LimitClass {
    /// The class's name, as `limit_<name>` settings and the docs spell it.
    pub const fn name(self) -> &'static str {
        match self {
            LimitClass::Events => "events",
            LimitClass::Batch => "batch",
            LimitClass::Queries => "queries",
            LimitClass::Reports => "reports",
            LimitClass::Dashboards => "dashboards",
            LimitClass::Export => "export",
            LimitClass::Api => "api",
            LimitClass::Exempt => "exempt",
        }
    }
}

/// What a request may learn of its limit.
#[derive(Debug, Clone, Copy)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Unix time (seconds) when the window ends.
    pub reset_unix: u64,
    /// Seconds until then, at least 1.
    pub retry_after: u64,
}

struct Window {
    opened: Instant,
    count: u32,
}

pub struct Limiter {
    rates: HashMap<LimitClass, Rate>,
    unauthenticated: Option<Rate>,
    windows: Mutex<HashMap<(String, LimitClass), Window>>,
}

impl Limiter {
    pub fn from_config(cfg: &Config) -> anyhow::Result<Limiter> {
        let p = |s: &str| Rate::parse(s).map_err(|e| anyhow::anyhow!(e));
        let mut rates = HashMap::new();
        for (class, v) in [
            (LimitClass::Events, &cfg.limit_events),
            (LimitClass::Batch, &cfg.limit_batch),
            (LimitClass::Queries, &cfg.limit_queries),
            (LimitClass::Reports, &cfg.limit_reports),
            (LimitClass::Dashboards, &cfg.limit_dashboards),
            (LimitClass::Export, &cfg.limit_export),
            (LimitClass::Api, &cfg.limit_api),
        ] {
            if let Some(r) = p(v)? {
                rates.insert(class, r);
            }
        }
        Ok(Limiter { rates, unauthenticated: p(&cfg.limit_unauthenticated)?, windows: Mutex::new(HashMap::new()) })
    }

    /// Counts one request of `key` in `class`; `None` when the class is not limited.
    /// `key` is `tenant:<id>` or `ip:<address>`; unauthenticated keys use their own rate.
    pub fn check(&self, key: &str, class: LimitClass, unauthenticated: bool) -> Option<Decision> {
        if class == LimitClass::Exempt {
            return None;
        }
        let (rate, class) =
            if unauthenticated { (self.unauthenticated?, LimitClass::Api) } else { (*self.rates.get(&class)?, class) };
        let now = Instant::now();
        let mut windows = self.windows.lock().expect("rate windows");
        if windows.len() > 200_000 {
            windows.retain(|_, w| now.duration_since(w.opened) < rate.period);
        }
        let w = windows.entry((key.to_owned(), class)).or_insert(Window { opened: now, count: 0 });
        if now.duration_since(w.opened) >= rate.period {
            *w = Window { opened: now, count: 0 };
        }
        let allowed = w.count < rate.count;
        if allowed {
            w.count += 1;
        }
        let left = rate.period.saturating_sub(now.duration_since(w.opened));
        let unix_now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        Some(Decision {
            allowed,
            limit: rate.count,
            remaining: rate.count - w.count,
            reset_unix: (unix_now + left).as_secs_f64().ceil() as u64,
            retry_after: left.as_secs_f64().ceil().max(1.0) as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_count_pass_per_window_and_keys_are_separate() {
        let cfg = Config { limit_events: "3/second".into(), ..Config::default() };
        let l = Limiter::from_config(&cfg).unwrap();
        let passed: Vec<bool> =
            (0..5).map(|_| l.check("tenant:a", LimitClass::Events, false).unwrap().allowed).collect();
        assert_eq!(passed, [true, true, true, false, false]);
        assert!(l.check("tenant:b", LimitClass::Events, false).unwrap().allowed);
        let d = l.check("tenant:a", LimitClass::Events, false).unwrap();
        assert_eq!((d.limit, d.remaining, d.retry_after), (3, 0, 1));
        std::thread::sleep(Duration::from_millis(1050));
        assert!(l.check("tenant:a", LimitClass::Events, false).unwrap().allowed, "a new window");
        assert!(l.check("x", LimitClass::Exempt, false).is_none());
    }

    #[test]
    fn classes_follow_the_seeds() {
        use crate::http::spec_of;
        use axum::http::Method;
        let class = |m: Method, p: &str| spec_of(&m, p).unwrap_or_else(|| panic!("no route {m} {p}")).class;
        assert_eq!(class(Method::POST, "/api/v1/analytics/events"), LimitClass::Events);
        assert_eq!(class(Method::GET, "/api/v1/analytics/events"), LimitClass::Queries);
        assert_eq!(class(Method::POST, "/api/v1/analytics/events/batch"), LimitClass::Batch);
        assert_eq!(class(Method::GET, "/health"), LimitClass::Exempt);
        assert_eq!(class(Method::POST, "/api/v1/users"), LimitClass::Api);
        assert_eq!(class(Method::GET, "/api/v1/customers/rfm"), LimitClass::Queries);
        assert_eq!(class(Method::GET, "/api/v1/metrics/aggregate"), LimitClass::Queries);
    }
}
