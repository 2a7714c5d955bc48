//! Group commit: one task writes records for everyone, many requests to a
//! transaction. Callers that must not answer before their records are
//! durable wait on the receiver [`Writer::write`] returns; routing never waits.
//!
//! Failures never drop records. While the database is unavailable the writer
//! retries the same batch, in order, with a capped backoff; callers waiting
//! on it may give up and answer UNAVAILABLE, but their records stay queued
//! and are committed when the database returns. A batch refused for another
//! reason is split into its requests, so one bad request fails alone.
//!
//! The writer also knows whether the database answers: after every commit
//! attempt, and by a ping when it has been idle for [`PROBE_INTERVAL`], so
//! an outage is seen even when nothing is written ([`Writer::availability`]).

use super::Store;
use super::records::Record;
use crate::domain::WorkItemId;
use crate::error::{Error, Result};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};
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
    /// A work item whose creation must have been stored for this request
    /// to succeed (see [`Writer::after_created`]).
    requires: Option<WorkItemId>,
}

/// How many work items whose creation the store refused the writer
/// remembers, for [`Writer::after_created`].
const REFUSED_KEPT: usize = 10_000;

/// A handle to the writer task; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    requests: mpsc::UnboundedSender<Request>,
    pending: Arc<AtomicUsize>,
    /// Whether the database answered the last commit or ping.
    available: watch::Receiver<bool>,
    max_pending: usize,
}

/// How long the writer may sit idle before it pings the database, so that an
/// outage is noticed (and health turns NOT_SERVING) with nothing to write.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// How long the writer keeps retrying once the server is stopping and the
/// database is still unavailable. Then it gives up, logging what it could
/// not write, so that a stop always ends; acknowledged records were
/// committed before their acknowledgement, and the next start rebuilds open
/// items from what is stored.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

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
        let (availability, available) = watch::channel(true);
        let task = WriterTask {
            store,
            queue,
            pending: pending.clone(),
            availability,
            max_batch: config.max_batch.max(1),
            observer,
            stopping_since: None,
            refused: VecDeque::new(),
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
        self.write_then(records, done);
        committed
    }

    /// Queues records and tells `done` once they are committed: for a
    /// caller that made the channel before it knew the records.
    pub fn write_then(&self, records: Vec<Record>, done: oneshot::Sender<Result<()>>) {
        self.enqueue(records, Some(done), None);
    }

    /// Completes once every record queued before this call has been through
    /// the writer: the answer to a request that repeats an earlier one and
    /// changes nothing, which must not be acknowledged before what the
    /// earlier one changed is stored.
    pub fn after_queued(&self) -> oneshot::Receiver<Result<()>> {
        self.write(Vec::new())
    }

    /// Like [`Writer::after_queued`], told to `done`, but fails if the
    /// store refused to create `item`: a repeated submission is
    /// acknowledged only once the first one's work item is stored.
    pub fn after_created(&self, item: WorkItemId, done: oneshot::Sender<Result<()>>) {
        self.enqueue(Vec::new(), Some(done), Some(item));
    }

    /// Queues records nobody waits for (routing events).
    pub fn write_detached(&self, records: Vec<Record>) {
        if !records.is_empty() {
            self.enqueue(records, None, None);
        }
    }

    fn enqueue(
        &self,
        records: Vec<Record>,
        done: Option<oneshot::Sender<Result<()>>>,
        requires: Option<WorkItemId>,
    ) {
        self.pending.fetch_add(records.len(), Ordering::Relaxed);
        let count = records.len();
        let request = Request {
            records,
            done,
            requires,
        };
        if let Err(refused) = self.requests.send(request) {
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

    /// False while the last commit attempt or ping found the database unavailable.
    pub fn is_available(&self) -> bool {
        *self.available.borrow()
    }

    /// Follows the database's availability as the writer sees it; the
    /// sender closes when the writer task ends.
    pub fn availability(&self) -> watch::Receiver<bool> {
        self.available.clone()
    }
}

/// The writer task's state.
struct WriterTask {
    store: Arc<dyn Store>,
    queue: mpsc::UnboundedReceiver<Request>,
    pending: Arc<AtomicUsize>,
    availability: watch::Sender<bool>,
    max_batch: usize,
    observer: Arc<dyn CommitObserver>,
    /// When the writer first found the database unavailable after every
    /// handle was dropped (the server stopping).
    stopping_since: Option<Instant>,
    /// Work items whose creation the store refused, oldest first.
    refused: VecDeque<WorkItemId>,
}

impl WriterTask {
    async fn run(mut self) {
        loop {
            let first = match tokio::time::timeout(PROBE_INTERVAL, self.queue.recv()).await {
                Ok(Some(first)) => first,
                Ok(None) => break,
                Err(_idle) => {
                    self.probe().await;
                    continue;
                }
            };
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
            waiters.push((request.done, request.requires));
        }
        match self.append_until_available(&records).await {
            Ok(()) => {
                for (done, requires) in waiters {
                    self.answer(done, requires, Ok(()));
                }
            }
            Err(error @ Error::Unavailable(_)) => {
                // Given up at shutdown. Not split: the batch may have been
                // committed unanswered, and a part written again would be
                // stored twice.
                for (done, requires) in waiters {
                    self.answer(done, requires, Err(error.clone()));
                }
            }
            Err(error) => {
                tracing::warn!(%error, records = count, "batch refused; committing its requests one by one");
                for (range, (done, requires)) in bounds.into_iter().zip(waiters) {
                    let result = self.append_until_available(&records[range.clone()]).await;
                    if let Err(error) = &result {
                        tracing::error!(%error, "records refused by the store");
                        self.remember_refused(&records[range]);
                    }
                    self.answer(done, requires, result);
                }
            }
        }
        self.pending.fetch_sub(count, Ordering::Relaxed);
    }

    /// Answers a request, failing one that requires a work item whose
    /// creation was refused.
    fn answer(
        &self,
        done: Option<oneshot::Sender<Result<()>>>,
        requires: Option<WorkItemId>,
        result: Result<()>,
    ) {
        let Some(done) = done else { return };
        let result = match requires {
            Some(item) if result.is_ok() && self.refused.contains(&item) => {
                tracing::error!(%item, "a repeat of a submission the store refused");
                Err(Error::Internal)
            }
            _ => result,
        };
        let _ = done.send(result);
    }

    /// Remembers the work items that refused records would have created.
    fn remember_refused(&mut self, records: &[Record]) {
        for record in records {
            if let Record::Created(item) = record {
                if self.refused.len() == REFUSED_KEPT {
                    self.refused.pop_front();
                }
                self.refused.push_back(item.id);
            }
        }
    }

    /// Pings the database and records whether it answered.
    async fn probe(&self) {
        match self.store.ping().await {
            Ok(()) => self.set_available(true, ""),
            Err(Error::Unavailable(reason)) => self.set_available(false, &reason),
            Err(error) => tracing::warn!(%error, "pinging the database failed"),
        }
    }

    /// Records a change of the database's availability, once per change.
    fn set_available(&self, available: bool, reason: &str) {
        let changed = self.availability.send_if_modified(|was| {
            let changed = *was != available;
            *was = available;
            changed
        });
        if !changed {
            return;
        }
        if available {
            tracing::info!("the database is available again");
        } else {
            tracing::warn!(%reason, "the database is unavailable; holding records");
        }
        self.observer.availability(available);
    }

    /// Appends records, waiting out unavailability (for at most
    /// [`SHUTDOWN_GRACE`] once the server is stopping); returns other errors.
    async fn append_until_available(&mut self, records: &[Record]) -> Result<()> {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let started = Instant::now();
            match self.store.append(records).await {
                Ok(()) => {
                    self.observer.committed(records.len(), started.elapsed());
                    self.set_available(true, "");
                    return Ok(());
                }
                Err(Error::Unavailable(reason)) => {
                    self.set_available(false, &reason);
                    if self.queue.is_closed() {
                        let since = *self.stopping_since.get_or_insert_with(Instant::now);
                        if since.elapsed() >= SHUTDOWN_GRACE {
                            tracing::error!(
                                records = records.len(),
                                "the database is still unavailable at shutdown; these records are not written"
                            );
                            return Err(Error::Unavailable(reason));
                        }
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(error) => return Err(error),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Channel, Timestamp};
    use crate::store::records::WorkItemRecord;
    use std::sync::Mutex;

    /// Remembers the batch sizes the writer reports.
    #[derive(Default)]
    struct Batches(Mutex<Vec<usize>>);

    impl CommitObserver for Batches {
        fn committed(&self, records: usize, _: Duration) {
            self.0.lock().expect("not poisoned").push(records);
        }

        fn availability(&self, _: bool) {}
    }

    fn created(n: usize) -> Record {
        Record::Created(WorkItemRecord {
            id: WorkItemId::new(),
            interaction_id: format!("call-{n}").into(),
            segment: 0,
            channel: Channel::Voice,
            from_address: "sip:jane@consumer.example".into(),
            to_address: "sip:sales@contoso.example".into(),
            display_name: String::new(),
            entry_point: None,
            language: None,
            attributes: Default::default(),
            required_skills: Vec::new(),
            priority: 0,
            is_transfer: false,
            queue: "sales".into(),
            arrived_at: Timestamp::from_millis(1),
            enqueued_at: Timestamp::from_millis(1),
        })
    }

    #[tokio::test]
    async fn requests_queued_together_commit_in_one_batch_and_relieve_back_pressure() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = crate::store::sqlite_in(&dir).await;
        let batches = Arc::new(Batches::default());
        let config = WriterConfig {
            max_batch: 1_000,
            max_pending: 10,
        };
        let (writer, task) = Writer::spawn(store.clone(), config, batches.clone());
        let mut commits = Vec::new();
        for n in 0..20 {
            commits.push(writer.write(vec![created(n)]));
        }
        // On this single-threaded runtime the writer has not run yet: 20 records wait.
        assert_eq!(writer.pending(), 20);
        assert!(writer.is_behind(), "more than 10 pending records is behind");
        for commit in commits {
            commit
                .await
                .expect("the writer answers")
                .expect("the records commit");
        }
        assert_eq!(writer.pending(), 0);
        assert!(!writer.is_behind());
        assert_eq!(
            *batches.0.lock().unwrap(),
            vec![20],
            "one transaction for all twenty"
        );
        assert_eq!(store.open_work_items().await.unwrap().len(), 20);
        drop(writer);
        task.await
            .expect("the writer ends once its handles are gone");
    }

    /// A writer with the default settings over `store`, and its task.
    fn default_writer(store: &Arc<dyn Store>) -> (Writer, tokio::task::JoinHandle<()>) {
        Writer::spawn(
            store.clone(),
            WriterConfig::default(),
            Arc::new(Batches::default()),
        )
    }

    #[tokio::test]
    async fn after_queued_completes_once_what_was_queued_before_is_stored() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = crate::store::sqlite_in(&dir).await;
        let (writer, task) = default_writer(&store);
        writer.write_detached(vec![created(1)]);
        writer
            .after_queued()
            .await
            .expect("the writer answers")
            .expect("nothing is refused");
        // Read before anything else runs on this single-threaded runtime.
        assert_eq!(writer.pending(), 0, "the record queued before is committed");
        assert_eq!(store.open_work_items().await.unwrap().len(), 1);
        drop(writer);
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_refused_request_fails_alone() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = crate::store::sqlite_in(&dir).await;
        let (writer, task) = default_writer(&store);
        let duplicate = created(1);
        let first = writer.write(vec![duplicate.clone()]);
        let again = writer.write(vec![duplicate]);
        let other = writer.write(vec![created(2)]);
        assert!(first.await.unwrap().is_ok());
        assert!(
            again.await.unwrap().is_err(),
            "the same work item cannot be created twice"
        );
        assert!(
            other.await.unwrap().is_ok(),
            "a bad request does not sink its batch"
        );
        assert_eq!(store.open_work_items().await.unwrap().len(), 2);
        drop(writer);
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_repeat_is_answered_as_its_first_creation_was() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = crate::store::sqlite_in(&dir).await;
        let (writer, task) = default_writer(&store);
        let id_of = |record: &Record| match record {
            Record::Created(item) => item.id,
            _ => unreachable!("created() makes creations"),
        };
        let stored = created(1);
        // Another work item for the same interaction: the store refuses it.
        let refused = created(1);
        let (stored_id, refused_id) = (id_of(&stored), id_of(&refused));
        let first = writer.write(vec![stored]);
        let second = writer.write(vec![refused]);
        let (stored_repeat, stored_answer) = oneshot::channel();
        let (refused_repeat, refused_answer) = oneshot::channel();
        writer.after_created(stored_id, stored_repeat);
        writer.after_created(refused_id, refused_repeat);
        assert!(first.await.unwrap().is_ok());
        assert!(second.await.unwrap().is_err());
        assert!(
            stored_answer.await.unwrap().is_ok(),
            "a repeat of a stored item is acknowledged"
        );
        assert!(
            matches!(refused_answer.await.unwrap(), Err(Error::Internal)),
            "a repeat of a refused item is not"
        );
        drop(writer);
        task.await.unwrap();
    }
}
