//! Idempotency keys on the embedded meta store, at the speed of ingest.
//!
//! Embedded, one process owns the file, so a request that is running is a fact of this
//! process: claims live in memory ([`InFlight`]). A crash forgets them, and that is
//! right: nothing was answered for them, so the client's retry must run. What must
//! survive a crash is an answer once given: [`IdempotencyStore::complete_idempotency`]
//! returns only when the answer is committed. Both the look-up of an earlier answer and
//! the commit of a new one are done for concurrent requests together ([`read_answers`],
//! [`write_answers`]): each statement is a round trip to SQLite's thread, and one serves
//! many requests.
//!
//! In cluster mode several processes share the store, and a claim must be a row there
//! (PostgreSQL: an `INSERT ... ON CONFLICT DO NOTHING`); the trait allows both.

use super::recent_keys::RecentKeys;
use super::{SqliteMeta, ts};
use crate::store::{IdempotencyClaim, IdempotencyStore, StoreError, StoreResult, StoredResponse};
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use sqlx::{Row, SqlitePool};
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::{mpsc, oneshot};

/// Answers committed in one transaction at most.
const MAX_GROUP: usize = 256;
/// Every this many completions, expired entries are deleted.
const PURGE_EVERY: u64 = 1000;

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
pub(super) struct Answer {
    scope: String,
    key: String,
    fingerprint: String,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    response: StoredResponse,
    done: oneshot::Sender<Result<(), String>>,
}

/// A look-up of the answer kept for a key, and who waits for it.
pub(super) struct Lookup {
    scope: String,
    key: String,
    now: DateTime<Utc>,
    found: oneshot::Sender<Result<Option<Kept>, String>>,
}

/// An answer as kept, with the fingerprint of its request.
#[derive(Clone)]
struct Kept {
    fingerprint: String,
    response: StoredResponse,
    expires_at: String,
}

/// The two tasks that read and write answers in groups (they end when the store is
/// dropped), and the keys that may have an answer.
pub(super) struct Answers {
    lookups: mpsc::Sender<Lookup>,
    writes: mpsc::Sender<Answer>,
    recent: RecentKeys,
}

impl Answers {
    /// Starts the tasks, with the keys answered before (a restart) in `recent`.
    pub(super) async fn start(reader: SqlitePool, writer: SqlitePool) -> anyhow::Result<Answers> {
        let now = Utc::now();
        let recent = RecentKeys::new(now);
        // In pages, so that a day of keys is never in memory at once.
        let mut after = 0i64;
        loop {
            let page = sqlx::query(
                "SELECT rowid, scope, key FROM idempotency_keys WHERE rowid > ? AND state = 'done' AND expires_at > ? \
                 ORDER BY rowid LIMIT 10000",
            )
            .bind(after)
            .bind(ts(now))
            .fetch_all(&reader)
            .await?;
            let Some(last) = page.last() else { break };
            after = last.try_get("rowid")?;
            for row in &page {
                recent.insert(row.try_get("scope")?, row.try_get("key")?, now);
            }
        }
        let (lookups, lrx) = mpsc::channel(4 * MAX_GROUP);
        let (writes, wrx) = mpsc::channel(4 * MAX_GROUP);
        tokio::spawn(read_answers(reader, lrx));
        tokio::spawn(write_answers(writer, wrx));
        Ok(Answers { lookups, writes, recent })
    }
}

/// Takes the first of `rx` and whatever else waits, up to [`MAX_GROUP`].
async fn next_group<T>(rx: &mut mpsc::Receiver<T>) -> Option<Vec<T>> {
    let mut group = vec![rx.recv().await?];
    while group.len() < MAX_GROUP {
        match rx.try_recv() {
            Ok(t) => group.push(t),
            Err(_) => break,
        }
    }
    Some(group)
}

/// Finds the answers kept for a group of keys with one statement.
async fn read_answers(reader: SqlitePool, mut rx: mpsc::Receiver<Lookup>) {
    while let Some(group) = next_group(&mut rx).await {
        let mut select = sqlx::QueryBuilder::new(
            "SELECT scope, key, fingerprint, status, headers, body, expires_at FROM idempotency_keys \
             WHERE state = 'done' AND (scope, key) IN (",
        );
        select.push_values(&group, |mut row, l| {
            row.push_bind(&l.scope).push_bind(&l.key);
        });
        select.push(")");
        let kept: Result<HashMap<(String, String), Kept>, String> = async {
            let rows = select.build().fetch_all(&reader).await.map_err(|e| e.to_string())?;
            rows.iter().map(kept).collect::<Result<_, _>>().map_err(|e| e.to_string())
        }
        .await;
        for l in group {
            let found = kept.as_ref().map_err(Clone::clone).map(|k| {
                // Stored times are RFC 3339 of one width, so text order is time order.
                k.get(&(l.scope.clone(), l.key.clone())).filter(|k| k.expires_at > ts(l.now)).cloned()
            });
            let _ = l.found.send(found);
        }
    }
}

fn kept(row: &sqlx::sqlite::SqliteRow) -> anyhow::Result<((String, String), Kept)> {
    let headers: Option<String> = row.try_get("headers")?;
    let headers: Vec<(String, String)> = serde_json::from_str(headers.as_deref().unwrap_or("[]"))?;
    Ok((
        (row.try_get("scope")?, row.try_get("key")?),
        Kept {
            fingerprint: row.try_get("fingerprint")?,
            response: StoredResponse {
                status: row.try_get::<i64, _>("status")? as u16,
                headers,
                body: row.try_get("body")?,
            },
            expires_at: row.try_get("expires_at")?,
        },
    ))
}

/// Commits whatever answers are waiting, up to [`MAX_GROUP`] at once: under load one
/// commit serves many requests; alone, a request waits for its own commit only.
async fn write_answers(writer: SqlitePool, mut rx: mpsc::Receiver<Answer>) {
    let mut written = 0u64;
    while let Some(group) = next_group(&mut rx).await {
        let purge = written / PURGE_EVERY != (written + group.len() as u64) / PURGE_EVERY;
        written += group.len() as u64;
        let outcome = commit(&writer, &group, purge).await.map_err(|e| e.to_string());
        for a in group {
            let _ = a.done.send(outcome.clone());
        }
    }
}

async fn commit(writer: &SqlitePool, group: &[Answer], purge: bool) -> Result<(), sqlx::Error> {
    if purge {
        sqlx::query("DELETE FROM idempotency_keys WHERE expires_at <= ?").bind(ts(Utc::now())).execute(writer).await?;
    }
    // One statement for the group, committed by itself (a statement is its own
    // transaction): each statement is a round trip to SQLite's thread.
    let mut insert = sqlx::QueryBuilder::new(
        "INSERT INTO idempotency_keys (scope, key, fingerprint, state, status, headers, body, created_at, expires_at) ",
    );
    insert.push_values(group, |mut row, a| {
        let headers = serde_json::to_string(&a.response.headers).unwrap_or_else(|_| "[]".into());
        row.push_bind(&a.scope)
            .push_bind(&a.key)
            .push_bind(&a.fingerprint)
            .push_bind("done")
            .push_bind(a.response.status as i64)
            .push_bind(headers)
            .push_bind(&a.response.body)
            .push_bind(ts(a.created_at))
            .push_bind(ts(a.expires_at));
    });
    // A key taken over (expired, or left `running` by an earlier version) is replaced.
    insert.push(
        " ON CONFLICT (scope, key) DO UPDATE SET fingerprint = excluded.fingerprint, state = 'done', \
         status = excluded.status, headers = excluded.headers, body = excluded.body, \
         created_at = excluded.created_at, expires_at = excluded.expires_at",
    );
    insert.build().execute(writer).await.map(|_| ())
}

#[async_trait]
impl IdempotencyStore for SqliteMeta {
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
            let mut claims = self.in_flight.lock();
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
        if !self.answers.recent.may_contain(scope, key) {
            return Ok(IdempotencyClaim::Claimed);
        }
        // An answer given before, within its day?
        let (reply, found) = oneshot::channel();
        let lookup = Lookup { scope: scope.to_owned(), key: key.to_owned(), now, found: reply };
        let found = match self.answers.lookups.send(lookup).await {
            Ok(()) => found.await.unwrap_or_else(|_| Err("the answer reader stopped".into())),
            Err(_) => Err("the answer reader stopped".into()),
        };
        let claim = match found {
            Ok(None) => return Ok(IdempotencyClaim::Claimed),
            Ok(Some(k)) if k.fingerprint == fingerprint => Ok(IdempotencyClaim::Replay(k.response)),
            Ok(Some(_)) => Ok(IdempotencyClaim::Mismatch),
            Err(e) => Err(StoreError::Backend(anyhow::anyhow!(e))),
        };
        self.in_flight.lock().remove(&id);
        claim
    }

    async fn complete_idempotency(&self, scope: &str, key: &str, response: StoredResponse) -> StoreResult<()> {
        let id = (scope.to_owned(), key.to_owned());
        let (fingerprint, created_at, expires_at) = {
            let claims = self.in_flight.lock();
            let c = claims.get(&id).ok_or_else(|| {
                StoreError::Backend(anyhow::anyhow!("completing an idempotency key that holds no claim"))
            })?;
            (c.fingerprint.clone(), c.at, c.at + c.ttl)
        };
        let (done, committed) = oneshot::channel();
        let answer = Answer {
            scope: scope.to_owned(),
            key: key.to_owned(),
            fingerprint,
            created_at,
            expires_at,
            response,
            done,
        };
        let outcome = match self.answers.writes.send(answer).await {
            Ok(()) => committed.await.unwrap_or_else(|_| Err("the answer writer stopped".into())),
            Err(_) => Err("the answer writer stopped".into()),
        };
        // Released once the answer is kept (or could not be): a retry then replays it, or
        // runs, and is never told "in progress" forever. Known as kept before that.
        if outcome.is_ok() {
            self.answers.recent.insert(scope, key, created_at);
        }
        self.in_flight.lock().remove(&id);
        outcome.map_err(|e| StoreError::Backend(anyhow::anyhow!(e)))
    }

    async fn release_idempotency(&self, scope: &str, key: &str) -> StoreResult<()> {
        self.in_flight.lock().remove(&(scope.to_owned(), key.to_owned()));
        Ok(())
    }
}
