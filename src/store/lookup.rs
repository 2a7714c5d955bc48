//! Group lookup: the read twin of group commit. A submission must know
//! whether its interaction was submitted before, also before a restart, so
//! it asks the store; one task answers all such questions that arrive
//! while its previous query runs with one query, so that the store sees a
//! few queries a second however many submissions arrive.

use super::Store;
use super::records::StoredWorkItem;
use crate::domain::InteractionId;
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Most interactions asked about in one query.
const MAX_BATCH: usize = 1_000;

/// One question and who waits for its answer.
struct Question {
    interaction: InteractionId,
    answer: oneshot::Sender<Result<Option<StoredWorkItem>>>,
}

/// A handle to the lookup task; cheap to clone.
#[derive(Clone)]
pub struct Lookups {
    questions: mpsc::UnboundedSender<Question>,
}

impl Lookups {
    /// Starts the lookup task over `store`; it ends once every handle is dropped.
    pub fn spawn(store: Arc<dyn Store>) -> Lookups {
        let (questions, queue) = mpsc::unbounded_channel();
        tokio::spawn(run(store, queue));
        Lookups { questions }
    }

    /// The first segment of an interaction, if the bridge submitted it before.
    pub async fn find(&self, interaction: InteractionId) -> Result<Option<StoredWorkItem>> {
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

/// Answers questions a batch at a time until every handle is dropped.
async fn run(store: Arc<dyn Store>, mut queue: mpsc::UnboundedReceiver<Question>) {
    let mut batch = Vec::new();
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let interactions: Vec<InteractionId> = batch
            .iter()
            .map(|question| question.interaction.clone())
            .collect();
        match store.find_work_items(&interactions).await {
            Ok(found) => {
                let mut by_interaction: HashMap<InteractionId, StoredWorkItem> = found
                    .into_iter()
                    .map(|stored| (stored.item.interaction_id.clone(), stored))
                    .collect();
                for question in batch.drain(..) {
                    // The same interaction may be asked about twice in a batch.
                    let stored = by_interaction.get(&question.interaction).cloned();
                    let _ = question.answer.send(Ok(stored));
                }
                by_interaction.clear();
            }
            Err(error) => {
                for question in batch.drain(..) {
                    let _ = question.answer.send(Err(error.clone()));
                }
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
        let url = format!("sqlite://{}", dir.path().join("l.db").display());
        let store: Arc<dyn Store> = Arc::new(
            crate::store::SqliteStore::connect(&url)
                .await
                .expect("the store opens"),
        );
        let at = Timestamp::from_millis(1);
        let mut records = submission(1, "sales", at).to_vec();
        records.extend(submission(2, "sales", at));
        store.append(&records).await.expect("the items are stored");
        let lookups = Lookups::spawn(store);
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

    /// Awaits the futures concurrently, so their questions share a batch.
    async fn futures_join<F: std::future::Future>(futures: [F; 4]) -> Vec<F::Output> {
        let [a, b, c, d] = futures;
        let (a, b, c, d) = tokio::join!(a, b, c, d);
        vec![a, b, c, d]
    }
}
