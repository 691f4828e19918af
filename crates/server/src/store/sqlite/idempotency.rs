//! Idempotency keys on the embedded meta store, at the speed of ingest.
//!
//! Embedded, one process owns the file, so a request that is running is a fact of this
//! process: claims live in memory ([`InFlight`]). A crash forgets them, and that is
//! right: nothing was answered for them, so the client's retry must run. What must
//! survive a crash is an answer once given: [`IdempotencyStore::complete_idempotency`]
//! returns only when the answer is committed.
//!
//! Answers are kept on a SQLite connection of their own (rusqlite, not the pool): every
//! keyed write waits for one, so it has to cost little. Whatever answers are waiting are
//! committed in one transaction with one prepared statement, by a thread of their own,
//! which also answers the look-ups (rare: [`RecentKeys`] spares every key never answered).
//! Keyed ingest requests do better still: the ingest writer keeps their answers itself,
//! on the same connection, right after it commits their events ([`Keeper`]), so that no
//! other thread has to be woken and scheduled on their way (on two busy cores, that wait
//! was most of what a key cost). SQLite's commit in WAL mode with `synchronous = NORMAL`
//! reaches the file before the request hears of it, so a retry after a kill -9 replays.
//!
//! In cluster mode several processes share the store, and a claim must be a row there
//! (PostgreSQL: an `INSERT ... ON CONFLICT DO NOTHING`); the trait allows both. Its
//! [`AnswerKeeper`] does what [`Keeper`] does here: one multi-row upsert per group of
//! ingest answers, on the ingest writer's side, after the events' insert.

use super::recent_keys::RecentKeys;
use super::{SqliteMeta, ts};
use crate::store::{
    AnswerKeeper, IdempotencyClaim, IdempotencyStore, KeptAnswer, StoreError, StoreResult, StoredResponse,
};
use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// Answers committed in one transaction at most.
const MAX_GROUP: usize = 256;
/// Every this many completions, expired entries are deleted.
const PURGE_EVERY: u64 = 1000;
/// The table, for a store kept in memory (the file's comes from the store's migrations;
/// a later migration of this table must be added here too).
const IN_MEMORY_SCHEMA: &str = include_str!("../../../migrations/sqlite/0003_idempotency.sql");

/// A request that holds its key now.
struct Claim {
    fingerprint: String,
    at: DateTime<Utc>,
    ttl: Duration,
}

/// The keys of requests running in this process, by (scope, key).
#[derive(Default)]
pub(super) struct InFlight {
    claims: Mutex<HashMap<(String, String), Claim>>,
}

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Claim>> {
        // A poisoned lock holds a map that is still whole: every change is one insert or remove.
        self.claims.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// An answer to commit, and who waits for it.
struct Answer {
    kept: KeptAnswer,
    done: oneshot::Sender<Result<(), String>>,
}

/// A look-up of the answer kept for a key, and who waits for it.
struct Lookup {
    scope: String,
    key: String,
    now: DateTime<Utc>,
    found: oneshot::Sender<Result<Option<Kept>, String>>,
}

/// What the answers thread is asked.
enum Ask {
    Keep(Answer),
    Find(Lookup),
    /// Every answer of a scope (a deleted tenant's).
    ForgetScope(String, oneshot::Sender<Result<(), String>>),
}

/// An answer as kept, with the fingerprint of its request.
struct Kept {
    fingerprint: String,
    response: StoredResponse,
}

/// Answers kept so far, by either keeper: every [`PURGE_EVERY`], expired ones are deleted.
#[derive(Default)]
struct Written(AtomicU64);

impl Written {
    /// Counts `n` more; true when this crosses a multiple of [`PURGE_EVERY`].
    fn purge_due(&self, n: usize) -> bool {
        let before = self.0.fetch_add(n as u64, Ordering::Relaxed);
        before / PURGE_EVERY != (before + n as u64) / PURGE_EVERY
    }
}

fn lock(conn: &Mutex<rusqlite::Connection>) -> std::sync::MutexGuard<'_, rusqlite::Connection> {
    // A poisoned lock holds a connection whose transaction was rolled back when dropped.
    conn.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the answers thread and the ingest writer's [`Keeper`] share.
struct Shared {
    /// The connection answers are kept on.
    conn: Mutex<rusqlite::Connection>,
    written: Written,
    /// The keys that may have an answer.
    recent: RecentKeys,
    in_flight: InFlight,
}

impl Shared {
    /// Commits `answers` in one transaction, deleting expired ones now and then.
    fn keep(&self, answers: &[KeptAnswer]) -> anyhow::Result<()> {
        let purge = self.written.purge_due(answers.len());
        keep(&mut lock(&self.conn), answers, purge)
    }
}

/// The thread that keeps and finds answers (it ends when the store is dropped), and what
/// it shares with the ingest writer.
pub(super) struct Answers {
    asks: mpsc::Sender<Ask>,
    shared: Arc<Shared>,
}

impl Answers {
    /// Opens the thread's connection to the file at `path` (migrated already), or to a
    /// table of its own in memory; fills [`RecentKeys`] with the keys answered before (a
    /// restart), and starts the thread.
    pub(super) async fn start(path: Option<&Path>) -> anyhow::Result<Answers> {
        let path = path.map(Path::to_owned);
        let (conn, recent) = tokio::task::spawn_blocking(move || {
            let now = Utc::now();
            let recent = RecentKeys::new(now);
            open(path.as_deref()).and_then(|conn| fill(&conn, &recent, now).map(|()| (conn, recent)))
        })
        .await??;
        let shared = Arc::new(Shared {
            conn: Mutex::new(conn),
            written: Written::default(),
            recent,
            in_flight: InFlight::default(),
        });
        let (asks, rx) = mpsc::channel(4 * MAX_GROUP);
        let served = shared.clone();
        std::thread::Builder::new().name("sightline-answers".into()).spawn(move || serve(&served, rx))?;
        Ok(Answers { asks, shared })
    }

    /// Deletes every answer kept in `scope`.
    pub(super) async fn forget_scope(&self, scope: String) -> StoreResult<()> {
        let (done, forgotten) = oneshot::channel();
        self.ask(Ask::ForgetScope(scope, done), forgotten).await
    }

    async fn ask<T>(&self, ask: Ask, reply: oneshot::Receiver<Result<T, String>>) -> StoreResult<T> {
        let outcome = match self.asks.send(ask).await {
            Ok(()) => reply.await.unwrap_or_else(|_| Err("the answers thread stopped".into())),
            Err(_) => Err("the answers thread stopped".into()),
        };
        outcome.map_err(|e| StoreError::Backend(anyhow::anyhow!(e)))
    }
}

fn open(path: Option<&Path>) -> anyhow::Result<rusqlite::Connection> {
    let conn = match path {
        // The store's opening has switched the file to WAL; `synchronous` is per connection.
        Some(p) => rusqlite::Connection::open(p).context("opening the meta store for idempotency answers")?,
        None => {
            let conn = rusqlite::Connection::open_in_memory()?;
            conn.execute_batch(IN_MEMORY_SCHEMA)?;
            conn
        }
    };
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

/// Puts the keys answered within their day into `recent`, a page at a time, so that a
/// day of keys is never in memory at once.
fn fill(conn: &rusqlite::Connection, recent: &RecentKeys, now: DateTime<Utc>) -> anyhow::Result<()> {
    let mut page = conn.prepare(
        "SELECT rowid, scope, key FROM idempotency_keys WHERE rowid > ? AND state = 'done' AND expires_at > ? \
         ORDER BY rowid LIMIT 10000",
    )?;
    let mut after = 0i64;
    loop {
        let mut rows = page.query(params![after, ts(now)])?;
        let mut any = false;
        while let Some(row) = rows.next()? {
            any = true;
            after = row.get(0)?;
            recent.insert(&row.get::<_, String>(1)?, &row.get::<_, String>(2)?, now);
        }
        if !any {
            return Ok(());
        }
    }
}

/// The thread: takes what is asked, up to [`MAX_GROUP`] at once, commits the answers in
/// one transaction (under load one commit serves many requests; alone, a request waits
/// for its own commit only), then answers the look-ups.
fn serve(shared: &Shared, mut rx: mpsc::Receiver<Ask>) {
    while let Some(first) = rx.blocking_recv() {
        let (mut keeps, mut finds, mut forgets) = (Vec::new(), Vec::new(), Vec::new());
        let mut next = Some(first);
        while let Some(ask) = next.take() {
            match ask {
                Ask::Keep(a) => keeps.push(a),
                Ask::Find(l) => finds.push(l),
                Ask::ForgetScope(scope, done) => forgets.push((scope, done)),
            }
            if keeps.len() + finds.len() < MAX_GROUP {
                next = rx.try_recv().ok();
            }
        }
        if !keeps.is_empty() {
            let (kept, waiting): (Vec<_>, Vec<_>) = keeps.into_iter().map(|a| (a.kept, a.done)).unzip();
            let outcome = shared.keep(&kept).map_err(|e| format!("{e:#}"));
            for done in waiting {
                let _ = done.send(outcome.clone());
            }
        }
        for l in finds {
            let _ = l.found.send(find(&lock(&shared.conn), &l.scope, &l.key, l.now).map_err(|e| format!("{e:#}")));
        }
        for (scope, done) in forgets {
            let deleted = lock(&shared.conn).execute("DELETE FROM idempotency_keys WHERE scope = ?", [scope]);
            let _ = done.send(deleted.map(|_| ()).map_err(|e| e.to_string()));
        }
    }
}

fn keep(conn: &mut rusqlite::Connection, group: &[KeptAnswer], purge: bool) -> anyhow::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if purge {
        tx.execute("DELETE FROM idempotency_keys WHERE expires_at <= ?", [ts(Utc::now())])?;
    }
    {
        // A key taken over (expired, or left `running` by an earlier version) is replaced.
        let mut insert = tx.prepare_cached(
            "INSERT INTO idempotency_keys (scope, key, fingerprint, state, status, headers, body, created_at, expires_at) \
             VALUES (?, ?, ?, 'done', ?, ?, ?, ?, ?) \
             ON CONFLICT (scope, key) DO UPDATE SET fingerprint = excluded.fingerprint, state = 'done', \
             status = excluded.status, headers = excluded.headers, body = excluded.body, \
             created_at = excluded.created_at, expires_at = excluded.expires_at",
        )?;
        for a in group {
            insert.execute(params![
                a.scope,
                a.key,
                a.fingerprint,
                a.response.status,
                serde_json::to_string(&a.response.headers)?,
                a.response.body,
                ts(a.created_at),
                ts(a.expires_at),
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

fn find(conn: &rusqlite::Connection, scope: &str, key: &str, now: DateTime<Utc>) -> anyhow::Result<Option<Kept>> {
    // Stored times are RFC 3339 of one width, so text order is time order.
    let mut select = conn.prepare_cached(
        "SELECT fingerprint, status, headers, body FROM idempotency_keys \
         WHERE scope = ? AND key = ? AND state = 'done' AND expires_at > ?",
    )?;
    let row = select
        .query_row(params![scope, key, ts(now)], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, u16>(1)?, row.get::<_, Option<String>>(2)?, row.get(3)?))
        })
        .optional()?;
    let Some((fingerprint, status, headers, body)) = row else { return Ok(None) };
    let headers = serde_json::from_str(headers.as_deref().unwrap_or("[]"))?;
    Ok(Some(Kept { fingerprint, response: StoredResponse { status, headers, body } }))
}

/// Keeps answers on the ingest writer's thread (see the module's documentation).
struct Keeper(Arc<Shared>);

impl AnswerKeeper for Keeper {
    fn keep(&mut self, answers: Vec<KeptAnswer>) {
        if answers.is_empty() {
            return;
        }
        match self.0.keep(&answers) {
            // Known as kept before the claims end, so that a retry looks it up.
            Ok(()) => answers.iter().for_each(|a| self.0.recent.insert(&a.scope, &a.key, a.created_at)),
            Err(e) => tracing::error!(error = %format!("{e:#}"), "could not keep idempotent answers"),
        }
        let mut claims = self.0.in_flight.lock();
        for a in answers {
            claims.remove(&(a.scope, a.key));
        }
    }
}

#[async_trait]
impl IdempotencyStore for SqliteMeta {
    fn answer_keeper(&self) -> Box<dyn AnswerKeeper> {
        Box::new(Keeper(self.answers.shared.clone()))
    }

    async fn claim_idempotency(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
        ttl: Duration,
        stale: Duration,
    ) -> StoreResult<IdempotencyClaim> {
        let id = (scope.to_owned(), key.to_owned());
        {
            let mut claims = self.answers.shared.in_flight.lock();
            match claims.get(&id) {
                // A claim older than `stale` was abandoned (its request never ended).
                Some(c) if c.at > now - stale => {
                    return Ok(if c.fingerprint == fingerprint {
                        IdempotencyClaim::InProgress
                    } else {
                        IdempotencyClaim::Mismatch
                    });
                }
                _ => {}
            }
            if claims.len() >= 10_000 {
                claims.retain(|_, c| c.at > now - stale);
            }
            claims.insert(id.clone(), Claim { fingerprint: fingerprint.to_owned(), at: now, ttl });
        }
        // A key never answered (nearly every key) needs no look-up.
        if !self.answers.shared.recent.may_contain(scope, key) {
            return Ok(IdempotencyClaim::Claimed);
        }
        // An answer given before, within its day?
        let (reply, found) = oneshot::channel();
        let lookup = Lookup { scope: scope.to_owned(), key: key.to_owned(), now, found: reply };
        let claim = match self.answers.ask(Ask::Find(lookup), found).await {
            Ok(None) => return Ok(IdempotencyClaim::Claimed),
            Ok(Some(k)) if k.fingerprint == fingerprint => Ok(IdempotencyClaim::Replay(k.response)),
            Ok(Some(_)) => Ok(IdempotencyClaim::Mismatch),
            Err(e) => Err(e),
        };
        self.answers.shared.in_flight.lock().remove(&id);
        claim
    }

    async fn complete_idempotency(&self, scope: &str, key: &str, response: StoredResponse) -> StoreResult<()> {
        let id = (scope.to_owned(), key.to_owned());
        let (fingerprint, created_at, expires_at) = {
            let claims = self.answers.shared.in_flight.lock();
            let c = claims.get(&id).ok_or_else(|| {
                StoreError::Backend(anyhow::anyhow!("completing an idempotency key that holds no claim"))
            })?;
            (c.fingerprint.clone(), c.at, c.at + c.ttl)
        };
        let (done, committed) = oneshot::channel();
        let kept =
            KeptAnswer { scope: scope.to_owned(), key: key.to_owned(), fingerprint, created_at, expires_at, response };
        let answer = Answer { kept, done };
        let outcome = self.answers.ask(Ask::Keep(answer), committed).await;
        // Released once the answer is kept (or could not be): a retry then replays it, or
        // runs, and is never told "in progress" forever. Known as kept before that.
        if outcome.is_ok() {
            self.answers.shared.recent.insert(scope, key, created_at);
        }
        self.answers.shared.in_flight.lock().remove(&id);
        outcome
    }

    async fn release_idempotency(&self, scope: &str, key: &str) -> StoreResult<()> {
        self.answers.shared.in_flight.lock().remove(&(scope.to_owned(), key.to_owned()));
        Ok(())
    }
}
