//! Acknowledgements on session streams. A request is answered once what it
//! changed is stored, in the order the requests arrived, by a task of its
//! own: the session goes on reading requests and passing on offers and
//! instructions while earlier requests wait for their commit, so requests
//! share group commits and a slow store never stalls a session.

use crate::error::Error;
use crate::live::PendingCommit;
use crate::proto::v1 as pb;
use tokio::sync::mpsc;
use tonic::Status;

/// The ack answering a request on a session stream.
pub fn ack(request_id: u64, result: Result<(), Status>) -> pb::Ack {
    match result {
        Ok(()) => pb::Ack {
            request_id,
            code: 0,
            message: String::new(),
        },
        Err(status) => pb::Ack {
            request_id,
            code: status.code() as i32,
            message: status.message().to_string(),
        },
    }
}

/// A request a session has handled: its id, and the commit its answer
/// waits for (`None` when it changed nothing), or the error it met.
pub type Handled = (u64, Result<Option<PendingCommit>, Error>);

/// Starts the task that acknowledges a session's requests on `out`, each
/// wrapped by `wrap` into the stream's message type. It ends once the
/// returned sender is dropped and every ack is sent, or the client is gone.
pub fn spawn_acks<T: Send + 'static>(
    out: mpsc::UnboundedSender<Result<T, Status>>,
    wrap: fn(pb::Ack) -> T,
) -> mpsc::UnboundedSender<Handled> {
    let (handled, mut waiting) = mpsc::unbounded_channel::<Handled>();
    tokio::spawn(async move {
        while let Some((request_id, result)) = waiting.recv().await {
            let answer = match result {
                Ok(Some(pending)) => pending.committed().await,
                Ok(None) => Ok(()),
                Err(error) => Err(error),
            };
            if out
                .send(Ok(wrap(ack(request_id, answer.map_err(Status::from)))))
                .is_err()
            {
                return;
            }
        }
    });
    handled
}
