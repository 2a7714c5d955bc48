//! Group lookup: the read twin of group commit. A submission must know
//! whether its interaction was submitted before, also before a restart, so
//! it asks the store; one task answers all such questions that arrive
//! while its previous query runs with one query, so that the store sees a
//! few queries a second however many submissions arrive.
//!
//! Most interactions are new, and most questions need no query at all: the
//! handles share a Bloom filter of every interaction the store may hold
//! (read from the store once at start, in the background, plus every
//! interaction asked about since), and answer "never submitted" at once,
//! without a word to the task, for one the filter has never seen. Until the
//! filter is read, and for every interaction it may have seen, the store is
//! asked. This holds while this server is the only one writing to its
//! database.

use super::Store;
use super::records::StoredWorkItem;
use crate::domain::InteractionId;
use crate::error::{Error, Result};
use crate::metrics::LookupMetrics;
use fastbloom::BloomFilter;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Most interactions asked about in one query.
const MAX_BATCH: usize = 1_000;

/// Interactions the first layer of a filter holds; each further layer
/// holds twice as many as the one before.
const FIRST_LAYER: usize = 65_536;

/// The chance that a layer answers "maybe seen" for an interaction it has
/// not seen (the store is then asked, and answers correctly).
const FALSE_POSITIVES: f64 = 0.001;

/// How long to wait before reading the store's interactions again after a
/// failure (the store is asked meanwhile).
const READ_RETRY: Duration = Duration::from_secs(5);

/// One question and who waits for its answer.
struct Question {
    interaction: InteractionId,
    answer: oneshot::Sender<Result<Option<StoredWorkItem>>>,
}

/// A handle to the lookup task; cheap to clone.
#[derive(Clone)]
pub struct Lookups {
    questions: mpsc::UnboundedSender<Question>,
    filter: Arc<Mutex<Filter>>,
    metrics: LookupMetrics,
}

impl Lookups {
    /// Starts the lookup task over `store`, and the read of the
    /// interactions it holds; they end once every handle is dropped.
    pub fn spawn(store: Arc<dyn Store>, metrics: LookupMetrics) -> Lookups {
        let (questions, queue) = mpsc::unbounded_channel();
        let (read, stored) = oneshot::channel();
        let filter = Arc::new(Mutex::new(Filter {
            seen: Seen::new(),
            complete: false,
        }));
        tokio::spawn(read_interactions(store.clone(), read));
        tokio::spawn(run(store, queue, stored, filter.clone()));
        Lookups {
            questions,
            filter,
            metrics,
        }
    }

    /// The first segment of an interaction, if the bridge submitted it before.
    pub async fn find(&self, interaction: InteractionId) -> Result<Option<StoredWorkItem>> {
        // A new interaction, the common case, costs no hop to the task.
        if lock(&self.filter).answers_never_submitted(&interaction) {
            self.metrics.by_filter.inc();
            return Ok(None);
        }
        self.metrics.by_store.inc();
        let (answer, answered) = oneshot::channel();
        let gone = || Error::Unavailable("the server is shutting down".into());
        self.questions
            .send(Question {
                interaction,
                answer,
            })
            .map_err(|_| gone())?;
        answered.await.map_err(|_| gone())?
    }
}

/// The filter the handles share with the lookup task.
struct Filter {
    /// Interactions asked about since start, and the stored ones once read.
    seen: Seen,
    /// Whether the stored interactions are in `seen`.
    complete: bool,
}

impl Filter {
    /// True when `interaction` was certainly never submitted; remembers it
    /// as maybe submitted from now on either way. A repeat is not inserted
    /// again: the layers fill with distinct interactions only.
    fn answers_never_submitted(&mut self, interaction: &InteractionId) -> bool {
        if self.seen.may_contain(interaction) {
            return false;
        }
        self.seen.insert(interaction);
        self.complete
    }
}

fn lock(filter: &Mutex<Filter>) -> MutexGuard<'_, Filter> {
    // A panic while holding the lock leaves a filter that still holds what
    // it held: at worst it sends a new interaction to the store.
    filter
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Interactions seen, as Bloom filters that grow a layer at a time, so that
/// none is sized in advance and each keeps its rate of false positives.
struct Seen {
    /// The filters, oldest first; only the last takes insertions.
    layers: Vec<BloomFilter>,
    /// How many interactions the last layer was sized for.
    last_capacity: usize,
    /// How many it holds.
    in_last: usize,
}

impl Seen {
    fn new() -> Self {
        Self {
            layers: Vec::new(),
            last_capacity: 0,
            in_last: 0,
        }
    }

    fn insert(&mut self, interaction: &InteractionId) {
        if self.in_last >= self.last_capacity {
            self.last_capacity = (self.last_capacity * 2).max(FIRST_LAYER);
            self.layers.push(
                BloomFilter::with_false_pos(FALSE_POSITIVES).expected_items(self.last_capacity),
            );
            self.in_last = 0;
        }
        if let Some(last) = self.layers.last_mut() {
            last.insert(interaction.as_str());
            self.in_last += 1;
        }
    }

    fn may_contain(&self, interaction: &InteractionId) -> bool {
        self.layers
            .iter()
            .any(|layer| layer.contains(interaction.as_str()))
    }

    /// Adds what `other` has seen.
    fn absorb(&mut self, other: Seen) {
        if self.layers.is_empty() {
            *self = other;
            return;
        }
        // This one's last layer goes on taking insertions.
        let mut layers = other.layers;
        layers.append(&mut self.layers);
        self.layers = layers;
    }
}

/// Reads every interaction the store holds into a filter, retrying until it
/// succeeds; stops as soon as nobody waits for it (the server stopping).
async fn read_interactions(store: Arc<dyn Store>, mut done: oneshot::Sender<Seen>) {
    loop {
        let mut seen = Seen::new();
        let mut keep = |interaction: InteractionId| seen.insert(&interaction);
        let result = tokio::select! {
            () = done.closed() => return,
            result = store.each_interaction(&mut keep) => result,
        };
        match result {
            Ok(()) => {
                let _ = done.send(seen);
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "reading the stored interactions failed; the store answers every lookup meanwhile");
            }
        }
        tokio::select! {
            () = done.closed() => return,
            () = tokio::time::sleep(READ_RETRY) => {}
        }
    }
}

/// Answers questions a batch at a time until every handle is dropped; adds
/// the stored interactions to the filter once they are read.
async fn run(
    store: Arc<dyn Store>,
    mut queue: mpsc::UnboundedReceiver<Question>,
    mut stored: oneshot::Receiver<Seen>,
    filter: Arc<Mutex<Filter>>,
) {
    let mut reading = true;
    let mut batch = Vec::new();
    loop {
        tokio::select! {
            outcome = &mut stored, if reading => {
                reading = false;
                // Only a read that failed for good (a panic) sends nothing;
                // every question then goes to the store.
                if let Ok(read) = outcome {
                    let mut filter = lock(&filter);
                    filter.seen.absorb(read);
                    filter.complete = true;
                }
                continue;
            }
            received = queue.recv_many(&mut batch, MAX_BATCH) => {
                if received == 0 {
                    return;
                }
            }
        }
        ask_store(store.as_ref(), &mut batch).await;
    }
}

/// Asks the store about `questions` in one query and answers each.
async fn ask_store(store: &dyn Store, questions: &mut Vec<Question>) {
    let interactions: Vec<InteractionId> = questions
        .iter()
        .map(|question| question.interaction.clone())
        .collect();
    match store.find_work_items(&interactions).await {
        Ok(found) => {
            let by_interaction: HashMap<InteractionId, StoredWorkItem> = found
                .into_iter()
                .map(|stored| (stored.item.interaction_id.clone(), stored))
                .collect();
            for question in questions.drain(..) {
                // The same interaction may be asked about twice in a batch.
                let stored = by_interaction.get(&question.interaction).cloned();
                let _ = question.answer.send(Ok(stored));
            }
        }
        Err(error) => {
            for question in questions.drain(..) {
                let _ = question.answer.send(Err(error.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::ceiling::submission;
    use crate::domain::Timestamp;

    #[tokio::test]
    async fn questions_asked_together_are_each_answered() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = crate::store::sqlite_in(&dir).await;
        let at = Timestamp::from_millis(1);
        let mut records = submission(1, "sales", at).to_vec();
        records.extend(submission(2, "sales", at));
        store.append(&records).await.expect("the items are stored");
        let lookups = Lookups::spawn(store, test_metrics());
        let asked = ["raw-1", "raw-3", "raw-2", "raw-1"]
            .map(|interaction| lookups.find(interaction.into()));
        let mut answers = Vec::new();
        for answer in futures_join(asked).await {
            answers.push(
                answer
                    .expect("the store answers")
                    .map(|stored| stored.item.interaction_id.to_string()),
            );
        }
        assert_eq!(
            answers,
            [
                Some("raw-1".to_string()),
                None,
                Some("raw-2".to_string()),
                Some("raw-1".to_string())
            ]
        );
    }

    #[tokio::test]
    async fn once_the_stored_interactions_are_read_only_those_seen_are_looked_up() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = crate::store::sqlite_in(&dir).await;
        let at = Timestamp::from_millis(1);
        store
            .append(&submission(1, "sales", at))
            .await
            .expect("the item is stored");
        let metrics = test_metrics();
        let lookups = Lookups::spawn(store.clone(), metrics.clone());
        // Until the stored interactions are read, every question is a query.
        let mut probe = 100;
        let read = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                probe += 1;
                let before = metrics.by_store.get();
                let found = lookups.find(format!("probe-{probe}").as_str().into()).await;
                assert!(found.expect("the store answers").is_none());
                if metrics.by_store.get() == before {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(read.is_ok(), "the stored interactions were never read");

        let asked = metrics.by_store.get();
        let stored = lookups.find("raw-1".into()).await.expect("an answer");
        assert_eq!(
            stored.map(|stored| stored.item.interaction_id.to_string()),
            Some("raw-1".to_string()),
            "a stored interaction is found"
        );
        assert_eq!(metrics.by_store.get(), asked + 1, "and was looked up");

        // New interactions need no query, but for the filter's rare false
        // positive (one in a thousand).
        let by_filter = metrics.by_filter.get();
        for n in 2..12 {
            let new = lookups
                .find(format!("raw-{n}").as_str().into())
                .await
                .expect("an answer");
            assert!(new.is_none());
        }
        let answered_at_once = metrics.by_filter.get() - by_filter;
        assert!(answered_at_once >= 9, "{answered_at_once} of 10");

        // Once asked about, an interaction may be stored: asked again (a
        // bridge's retry), it is looked up and found.
        store
            .append(&submission(2, "sales", at))
            .await
            .expect("the item is stored");
        let asked = metrics.by_store.get();
        let again = lookups.find("raw-2".into()).await.expect("an answer");
        assert!(again.is_some(), "the repeat finds the stored submission");
        assert_eq!(metrics.by_store.get(), asked + 1);
    }

    #[test]
    fn the_filter_grows_a_layer_at_a_time_and_forgets_nothing() {
        let mut seen = Seen::new();
        let count = FIRST_LAYER + 1;
        for n in 0..count {
            seen.insert(&format!("i-{n}").as_str().into());
        }
        assert_eq!(seen.layers.len(), 2, "65,536, then room for 131,072 more");
        assert!((0..count).all(|n| seen.may_contain(&format!("i-{n}").as_str().into())));
        let false_positives = (0..10_000)
            .filter(|n| seen.may_contain(&format!("other-{n}").as_str().into()))
            .count();
        assert!(false_positives < 100, "{false_positives} of 10,000");

        // What was read from the store joins what was asked meanwhile.
        let mut asked = Seen::new();
        asked.insert(&"asked".into());
        asked.absorb(seen);
        asked.insert(&"later".into());
        for interaction in ["asked", "later", "i-0", "i-65536"] {
            assert!(asked.may_contain(&interaction.into()), "{interaction}");
        }
    }

    fn test_metrics() -> LookupMetrics {
        LookupMetrics::register(&prometheus::Registry::new()).expect("fresh metrics")
    }

    /// Awaits the futures concurrently, so their questions share a batch.
    async fn futures_join<F: std::future::Future>(futures: [F; 4]) -> Vec<F::Output> {
        let [a, b, c, d] = futures;
        let (a, b, c, d) = tokio::join!(a, b, c, d);
        vec![a, b, c, d]
    }
}
