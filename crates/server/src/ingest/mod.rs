//! The ingest path: request tasks validate events and hand them to one writer thread
//! through a bounded queue; the writer commits whatever has queued up in one transaction
//! (group commit) and only then answers each request. So an acknowledged event is a
//! committed event, and a burst costs a few large commits instead of many small ones.
//!
//! A keyed request (`Idempotency-Key`) hands its answer along with its events; the writer
//! keeps it ([`AnswerKeeper`]) right after the commit and before the request hears of it,
//! so no other thread has to wake up on the request's way.
//!
//! The queue is bounded: when it is full a request is refused at once ([`IngestError::Busy`],
//! a 503 with `Retry-After`) rather than queued without limit or dropped.

use crate::store::{AnswerKeeper, EventRow, EventSink, KeptAnswer};
use crate::telemetry::names;
use chrono::{DateTime, Utc};
use sightline_core::event::NewEvent;
use sightline_core::model::TenantId;
use sightline_core::query::field::{PropertyColumns, property_text};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// Work the writer runs on its own thread, with the sink.
type SinkTask = Box<dyn FnOnce(&mut dyn EventSink) + Send>;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("the ingest queue is full")]
    Busy,
    #[error("the service is shutting down")]
    Closed,
    #[error("commit failed: {0}")]
    Failed(String),
    /// The store refused the write for now ([`crate::store::WriteRefused`]).
    #[error("{0}")]
    Refused(String),
}

impl IngestError {
    /// A sink's error: a refusal for now, or a failure (with its whole chain of causes).
    fn of(e: &anyhow::Error) -> IngestError {
        match e.downcast_ref::<crate::store::WriteRefused>() {
            Some(r) => IngestError::Refused(r.to_string()),
            None => IngestError::Failed(format!("{e:#}")),
        }
    }
}

/// True when the store refused the write for now ([`crate::store::WriteRefused`]).
fn is_refusal(e: &anyhow::Error) -> bool {
    e.downcast_ref::<crate::store::WriteRefused>().is_some()
}

/// Turns a validated event into the row the writer appends. Serialization happens here,
/// on the request's task, so that the one writer thread does as little as possible.
pub fn to_row(tenant: &TenantId, ev: NewEvent, received_at: DateTime<Utc>) -> EventRow {
    to_row_with(tenant, ev, received_at, &PropertyColumns::default())
}

/// [`to_row`], extracting the properties kept in columns of their own.
pub fn to_row_with(tenant: &TenantId, ev: NewEvent, received_at: DateTime<Utc>, cols: &PropertyColumns) -> EventRow {
    let materialized = cols.slots().iter().map(|(k, _)| ev.properties.get(k).and_then(property_text)).collect();
    let context_json = (!ev.context.is_empty()).then(|| serde_json::Value::Object(ev.context).to_string());
    EventRow {
        id_key: EventRow::id_key(tenant, &ev.event_id),
        tenant_id: tenant.clone(),
        event_id: ev.event_id,
        name: ev.name,
        user_key: ev.user_id.as_deref().map(crate::store::user_key),
        user_id: ev.user_id,
        session_id: ev.session_id,
        timestamp: ev.timestamp,
        received_at,
        properties_json: serde_json::Value::Object(ev.properties).to_string(),
        context_json,
        materialized,
    }
}

struct Job {
    rows: Vec<EventRow>,
    /// A keyed request's answer, to keep once the rows are committed.
    answer: Option<KeptAnswer>,
    reply: oneshot::Sender<Result<(), IngestError>>,
}

enum Msg {
    Job(Job),
    /// Delete every event of a tenant, in order with the commits around it.
    DeleteTenant(TenantId, oneshot::Sender<anyhow::Result<u64>>),
    /// Any other write (metric records), in order with the commits around it.
    Run(SinkTask),
    /// Commit everything queued before it, checkpoint, and stop.
    Shutdown(oneshot::Sender<anyhow::Result<()>>),
}

/// The handle request tasks submit to. Cheap to clone.
#[derive(Clone)]
pub struct Ingestor {
    tx: mpsc::Sender<Msg>,
    depth: Arc<AtomicUsize>,
}

/// The writer thread, to be stopped with [`Ingestor::shutdown`] and then joined.
pub struct Writer(std::thread::JoinHandle<()>);

impl Writer {
    pub fn join(self) {
        if self.0.join().is_err() {
            tracing::error!("the ingest writer thread panicked");
        }
    }
}

impl Ingestor {
    /// Starts the writer thread on `sink`. `queue` bounds waiting requests; `max_batch`
    /// bounds the events of one commit; `keeper` keeps the answers of keyed requests.
    pub fn start(
        sink: impl EventSink,
        queue: usize,
        max_batch: usize,
        keeper: Box<dyn AnswerKeeper>,
    ) -> (Ingestor, Writer) {
        let (tx, rx) = mpsc::channel(queue);
        let depth = Arc::new(AtomicUsize::new(0));
        let d = depth.clone();
        let handle = std::thread::Builder::new()
            .name("sightline-writer".into())
            .spawn(move || writer_loop(sink, keeper, rx, d, max_batch))
            .expect("spawning the writer thread");
        (Ingestor { tx, depth }, Writer(handle))
    }

    /// Queues `rows` and waits until they are committed (or refused).
    pub async fn submit(&self, rows: Vec<EventRow>) -> Result<(), IngestError> {
        self.submit_answered(rows, None).await
    }

    /// [`Ingestor::submit`], and keeps `answer` (a keyed request's) once the rows are
    /// committed, before returning.
    pub async fn submit_answered(&self, rows: Vec<EventRow>, answer: Option<KeptAnswer>) -> Result<(), IngestError> {
        let (reply, answered) = oneshot::channel();
        // Counted before sending: the writer may take the job before try_send returns.
        let d = self.depth.fetch_add(1, Ordering::Relaxed) + 1;
        match self.tx.try_send(Msg::Job(Job { rows, answer, reply })) {
            Ok(()) => metrics::gauge!(names::INGEST_QUEUE_DEPTH).set(d as f64),
            Err(e) => {
                self.depth.fetch_sub(1, Ordering::Relaxed);
                return Err(match e {
                    mpsc::error::TrySendError::Full(_) => {
                        metrics::counter!(names::INGEST_REJECTED).increment(1);
                        IngestError::Busy
                    }
                    mpsc::error::TrySendError::Closed(_) => IngestError::Closed,
                });
            }
        }
        // The writer answers every job it takes; a dropped sender means it died.
        answered.await.unwrap_or(Err(IngestError::Closed))
    }

    /// Deletes a tenant's events once everything queued before is committed.
    pub async fn delete_tenant(&self, tenant: &TenantId) -> Result<u64, IngestError> {
        let (done, wait) = oneshot::channel();
        self.tx.send(Msg::DeleteTenant(tenant.clone(), done)).await.map_err(|_| IngestError::Closed)?;
        match wait.await {
            Ok(r) => r.map_err(|e| IngestError::of(&e)),
            Err(_) => Err(IngestError::Closed),
        }
    }

    /// Runs a write on the writer's connection, after what is queued before it.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn EventSink) -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T, IngestError> {
        let (done, wait) = oneshot::channel();
        let job: SinkTask = Box::new(move |sink| {
            let _ = done.send(f(sink));
        });
        self.tx.try_send(Msg::Run(job)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => IngestError::Busy,
            mpsc::error::TrySendError::Closed(_) => IngestError::Closed,
        })?;
        match wait.await {
            Ok(r) => r.map_err(|e| IngestError::of(&e)),
            Err(_) => Err(IngestError::Closed),
        }
    }

    /// Commits everything already queued, checkpoints the store, and stops the writer.
    pub async fn shutdown(&self) -> anyhow::Result<()> {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Shutdown(done)).await.is_err() {
            return Ok(()); // already stopped
        }
        wait.await.unwrap_or(Ok(()))
    }

    /// True when no more work is taken.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

fn writer_loop<S: EventSink>(
    mut sink: S,
    mut keeper: Box<dyn AnswerKeeper>,
    mut rx: mpsc::Receiver<Msg>,
    depth: Arc<AtomicUsize>,
    max_batch: usize,
) {
    let mut jobs: Vec<Job> = Vec::new();
    let mut rows: Vec<EventRow> = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        let mut stop = None;
        let mut delete = None;
        let mut run = None;
        let mut msg = Some(first);
        let mut taken = 0usize;
        // Take what is queued now, up to max_batch events: the group of this commit.
        while let Some(m) = msg.take() {
            match m {
                Msg::Job(job) => {
                    taken += 1;
                    rows.extend_from_slice(&job.rows);
                    jobs.push(job);
                }
                Msg::Shutdown(done) => {
                    stop = Some(done);
                    break;
                }
                Msg::DeleteTenant(t, done) => {
                    delete = Some((t, done));
                    break;
                }
                Msg::Run(job) => {
                    run = Some(job);
                    break;
                }
            }
            if rows.len() >= max_batch {
                break;
            }
            msg = rx.try_recv().ok();
        }
        let d = depth.fetch_sub(taken, Ordering::Relaxed).saturating_sub(taken);
        metrics::gauge!(names::INGEST_QUEUE_DEPTH).set(d as f64);
        if !jobs.is_empty() {
            commit_group(&mut sink, keeper.as_mut(), &mut jobs, &rows);
            rows.clear();
        }
        if let Some((tenant, done)) = delete {
            let _ = done.send(sink.delete_tenant(&tenant));
        }
        if let Some(job) = run {
            job(&mut sink);
        }
        if let Some(done) = stop {
            rx.close();
            // Jobs that raced in behind the shutdown are still committed.
            while let Ok(m) = rx.try_recv() {
                match m {
                    Msg::Job(job) => commit_one(&mut sink, keeper.as_mut(), job),
                    Msg::DeleteTenant(t, done) => {
                        let _ = done.send(sink.delete_tenant(&t));
                    }
                    Msg::Run(job) => job(&mut sink),
                    Msg::Shutdown(done) => {
                        let _ = done.send(Ok(()));
                    }
                }
            }
            let _ = done.send(sink.checkpoint());
            return;
        }
    }
    let _ = sink.checkpoint();
}

fn commit_group(sink: &mut impl EventSink, keeper: &mut dyn AnswerKeeper, jobs: &mut Vec<Job>, rows: &[EventRow]) {
    let started = Instant::now();
    match sink.commit(rows) {
        Ok(outcome) => {
            record(rows.len(), outcome.inserted, started);
            keeper.keep(jobs.iter_mut().filter_map(|j| j.answer.take()).collect());
            for job in jobs.drain(..) {
                let _ = job.reply.send(Ok(()));
            }
        }
        Err(e) if jobs.len() > 1 && !is_refusal(&e) => {
            // One request's rows may be what failed; retry each alone so that the
            // others still land and only the culprit hears of it.
            tracing::warn!(error = %e, jobs = jobs.len(), "group commit failed; committing requests one by one");
            for job in jobs.drain(..) {
                commit_one(sink, keeper, job);
            }
        }
        Err(e) => {
            log_failure(&e);
            for job in jobs.drain(..) {
                let _ = job.reply.send(Err(IngestError::of(&e)));
            }
        }
    }
}

fn commit_one(sink: &mut impl EventSink, keeper: &mut dyn AnswerKeeper, job: Job) {
    let started = Instant::now();
    let result = match sink.commit(&job.rows) {
        Ok(o) => {
            record(job.rows.len(), o.inserted, started);
            keeper.keep(job.answer.into_iter().collect());
            Ok(())
        }
        Err(e) => {
            log_failure(&e);
            Err(IngestError::of(&e))
        }
    };
    let _ = job.reply.send(result);
}

/// A refusal for now (a full disk) is a warning; any other failure an error.
fn log_failure(e: &anyhow::Error) {
    if is_refusal(e) {
        tracing::warn!(error = %e, "commit refused");
    } else {
        tracing::error!(error = %e, "commit failed");
    }
}

fn record(rows: usize, inserted: u64, started: Instant) {
    metrics::histogram!(names::INGEST_COMMIT_DURATION).record(started.elapsed().as_secs_f64());
    metrics::histogram!(names::INGEST_COMMIT_SIZE).record(rows as f64);
    metrics::counter!(names::EVENTS_STORED).increment(inserted);
    metrics::counter!(names::EVENTS_DUPLICATE).increment(rows as u64 - inserted.min(rows as u64));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::CommitOutcome;
    use std::sync::Mutex;

    /// A sink that waits on a gate before each commit and records group sizes: enough to
    /// watch the queue fill and the groups form.
    struct GatedSink {
        gate: Arc<Mutex<std::sync::mpsc::Receiver<()>>>,
        groups: Arc<Mutex<Vec<usize>>>,
        fail_on: Option<&'static str>,
    }

    impl EventSink for GatedSink {
        fn commit(&mut self, rows: &[EventRow]) -> anyhow::Result<CommitOutcome> {
            self.gate.lock().unwrap().recv().ok();
            if let Some(bad) = self.fail_on
                && rows.iter().any(|r| r.name == bad)
            {
                anyhow::bail!("refused");
            }
            self.groups.lock().unwrap().push(rows.len());
            Ok(CommitOutcome { inserted: rows.len() as u64 })
        }
        fn delete_tenant(&mut self, _: &TenantId) -> anyhow::Result<u64> {
            Ok(0)
        }
        fn checkpoint(&mut self) -> anyhow::Result<()> {
            Ok(())
        }
        fn insert_metrics(&mut self, _: &TenantId, _: &[crate::store::MetricRecord]) -> anyhow::Result<()> {
            Ok(())
        }
        fn update_metric(
            &mut self,
            _: &TenantId,
            _: &str,
            _: &crate::store::MetricChange,
            _: DateTime<Utc>,
        ) -> anyhow::Result<Option<crate::store::MetricRecord>> {
            Ok(None)
        }
        fn delete_metric(&mut self, _: &TenantId, _: &str) -> anyhow::Result<bool> {
            Ok(false)
        }
    }

    fn row(name: &str) -> EventRow {
        let t = TenantId::default_tenant();
        let ev = NewEvent {
            event_id: uuid::Uuid::now_v7().to_string(),
            name: name.into(),
            user_id: None,
            session_id: None,
            timestamp: Utc::now(),
            properties: Default::default(),
            context: Default::default(),
        };
        to_row(&t, ev, Utc::now())
    }

    fn gated(fail_on: Option<&'static str>) -> (GatedSink, std::sync::mpsc::Sender<()>, Arc<Mutex<Vec<usize>>>) {
        let (open, gate) = std::sync::mpsc::channel();
        let groups = Arc::new(Mutex::new(Vec::new()));
        (GatedSink { gate: Arc::new(Mutex::new(gate)), groups: groups.clone(), fail_on }, open, groups)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_refuses_and_queued_jobs_share_a_commit() {
        let (sink, open, groups) = gated(None);
        let (ing, writer) = Ingestor::start(sink, 3, 1000, Box::new(crate::store::NoKeeper));
        // The first job is taken by the writer, which then blocks on the gate.
        let first = tokio::spawn({
            let ing = ing.clone();
            async move { ing.submit(vec![row("a")]).await }
        });
        // Give the writer time to take it off the queue and block on the gate.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_eq!(ing.depth.load(Ordering::Relaxed), 0);
        // Three more fill the queue; the fifth is refused.
        let mut waiting = Vec::new();
        for _ in 0..3 {
            let ing = ing.clone();
            waiting.push(tokio::spawn(async move { ing.submit(vec![row("b"), row("c")]).await }));
        }
        while ing.depth.load(Ordering::Relaxed) < 3 {
            tokio::task::yield_now().await;
        }
        assert!(matches!(ing.submit(vec![row("d")]).await, Err(IngestError::Busy)));
        open.send(()).unwrap();
        open.send(()).unwrap();
        first.await.unwrap().unwrap();
        for w in waiting {
            w.await.unwrap().unwrap();
        }
        // One commit for the first job, one for the three that queued behind it.
        assert_eq!(*groups.lock().unwrap(), vec![1, 6]);
        ing.shutdown().await.unwrap();
        writer.join();
        assert!(matches!(ing.submit(vec![row("e")]).await, Err(IngestError::Closed)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_request_does_not_sink_its_group() {
        let (sink, open, groups) = gated(Some("poison"));
        let (ing, writer) = Ingestor::start(sink, 16, 1000, Box::new(crate::store::NoKeeper));
        for _ in 0..10 {
            open.send(()).unwrap();
        }
        let good = {
            let ing = ing.clone();
            tokio::spawn(async move { ing.submit(vec![row("ok"), row("ok")]).await })
        };
        let bad = {
            let ing = ing.clone();
            tokio::spawn(async move { ing.submit(vec![row("poison")]).await })
        };
        assert!(good.await.unwrap().is_ok());
        assert!(matches!(bad.await.unwrap(), Err(IngestError::Failed(_))));
        assert_eq!(groups.lock().unwrap().iter().sum::<usize>(), 2);
        ing.shutdown().await.unwrap();
        writer.join();
    }
}
