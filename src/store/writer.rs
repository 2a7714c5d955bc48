//! Group commit: one task writes records for everyone, many requests to a
//! transaction. Callers that must not answer before their records are
//! durable wait on the receiver [`Writer::write`] returns; routing never waits.
//!
//! Failures never drop records. While the database is unavailable the writer
//! retries the same batch, in order, with a capped backoff; callers waiting
//! on it may give up and answer UNAVAILABLE, but their records stay queued
//! and are committed when the database returns. A batch refused for another
//! reason is split into its requests, so one bad request fails alone.

use super::Store;
use super::records::Record;
use crate::error::{Error, Result};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Tuning of the group-commit writer.
#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    /// Most records committed in one transaction (default 2,000).
    pub max_batch: usize,
    /// Records queued but not yet committed beyond which [`Writer::is_behind`]
    /// says so, and new submissions are refused (default 50,000).
    pub max_pending: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            max_batch: 2_000,
            max_pending: 50_000,
        }
    }
}

/// What the writer reports about each committed batch, for metrics.
pub trait CommitObserver: Send + Sync + 'static {
    /// A batch of `records` records committed in `elapsed`.
    fn committed(&self, records: usize, elapsed: Duration);
    /// The database became unavailable (`false`) or available again (`true`).
    fn availability(&self, available: bool);
}

/// The records of one request and who waits for them.
struct Request {
    records: Vec<Record>,
    done: Option<oneshot::Sender<Result<()>>>,
}

/// A handle to the writer task; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    requests: mpsc::UnboundedSender<Request>,
    pending: Arc<AtomicUsize>,
    available: Arc<AtomicBool>,
    max_pending: usize,
}

/// The first retry delay while the database is unavailable.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// The longest retry delay.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

impl Writer {
    /// Starts the writer task over `store`. The task ends, after committing
    /// everything queued, once every `Writer` handle is dropped.
    pub fn spawn(
        store: Arc<dyn Store>,
        config: WriterConfig,
        observer: Arc<dyn CommitObserver>,
    ) -> (Writer, JoinHandle<()>) {
        let (requests, queue) = mpsc::unbounded_channel();
        let pending = Arc::new(AtomicUsize::new(0));
        let available = Arc::new(AtomicBool::new(true));
        let task = WriterTask {
            store,
            queue,
            pending: pending.clone(),
            available: available.clone(),
            max_batch: config.max_batch.max(1),
            observer,
        };
        let handle = tokio::spawn(task.run());
        let writer = Writer {
            requests,
            pending,
            available,
            max_pending: config.max_pending,
        };
        (writer, handle)
    }

    /// Queues records; the receiver completes once they are committed.
    pub fn write(&self, records: Vec<Record>) -> oneshot::Receiver<Result<()>> {
        let (done, committed) = oneshot::channel();
        self.enqueue(records, Some(done));
        committed
    }

    /// Queues records nobody waits for (routing events).
    pub fn write_detached(&self, records: Vec<Record>) {
        if !records.is_empty() {
            self.enqueue(records, None);
        }
    }

    fn enqueue(&self, records: Vec<Record>, done: Option<oneshot::Sender<Result<()>>>) {
        self.pending.fetch_add(records.len(), Ordering::Relaxed);
        let count = records.len();
        if let Err(refused) = self.requests.send(Request { records, done }) {
            // Only after shutdown: the task is gone, so the records cannot be written.
            self.pending.fetch_sub(count, Ordering::Relaxed);
            if let Some(done) = refused.0.done {
                let _ = done.send(Err(Error::Unavailable(
                    "the server is shutting down".into(),
                )));
            }
        }
    }

    /// Records queued and not yet committed.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    /// True when more records wait than the configured bound: new work
    /// should be refused with UNAVAILABLE rather than grow memory.
    pub fn is_behind(&self) -> bool {
        self.pending() > self.max_pending
    }

    /// False while the last commit attempt found the database unavailable.
    pub fn is_available(&self) -> bool {
        self.available.load(Ordering::Relaxed)
    }
}

/// The writer task's state.
struct WriterTask {
    store: Arc<dyn Store>,
    queue: mpsc::UnboundedReceiver<Request>,
    pending: Arc<AtomicUsize>,
    available: Arc<AtomicBool>,
    max_batch: usize,
    observer: Arc<dyn CommitObserver>,
}

impl WriterTask {
    async fn run(mut self) {
        while let Some(first) = self.queue.recv().await {
            let mut batch = vec![first];
            let mut count = batch[0].records.len();
            while count < self.max_batch {
                let Ok(next) = self.queue.try_recv() else {
                    break;
                };
                count += next.records.len();
                batch.push(next);
            }
            self.commit(batch, count).await;
        }
    }

    /// Commits one batch, retrying while the database is unavailable.
    async fn commit(&mut self, batch: Vec<Request>, count: usize) {
        let mut records = Vec::with_capacity(count);
        let mut bounds = Vec::with_capacity(batch.len());
        let mut waiters = Vec::with_capacity(batch.len());
        for request in batch {
            let start = records.len();
            records.extend(request.records);
            bounds.push(start..records.len());
            waiters.push(request.done);
        }
        match self.append_until_available(&records).await {
            Ok(()) => {
                for done in waiters.into_iter().flatten() {
                    let _ = done.send(Ok(()));
                }
            }
            Err(error) => {
                tracing::warn!(%error, records = count, "batch refused; committing its requests one by one");
                for (range, done) in bounds.into_iter().zip(waiters) {
                    let result = self.append_until_available(&records[range]).await;
                    if let Err(error) = &result {
                        tracing::error!(%error, "records refused by the store");
                    }
                    if let Some(done) = done {
                        let _ = done.send(result);
                    }
                }
            }
        }
        self.pending.fetch_sub(count, Ordering::Relaxed);
    }

    /// Appends records, waiting out unavailability; returns other errors.
    async fn append_until_available(&self, records: &[Record]) -> Result<()> {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let started = Instant::now();
            match self.store.append(records).await {
                Ok(()) => {
                    self.observer.committed(records.len(), started.elapsed());
                    if !self.available.swap(true, Ordering::Relaxed) {
                        tracing::info!("the database is available again");
                        self.observer.availability(true);
                    }
                    return Ok(());
                }
                Err(Error::Unavailable(reason)) => {
                    if self.available.swap(false, Ordering::Relaxed) {
                        tracing::warn!(%reason, "the database is unavailable; holding records");
                        self.observer.availability(false);
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(error) => return Err(error),
            }
        }
    }
}
