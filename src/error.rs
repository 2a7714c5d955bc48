//! The domain error: what went wrong in the caller's terms. The gRPC layer
//! maps it to a status code in one place (`grpc::status`).

/// An error a caller can act on. Messages are lowercase, without trailing
/// punctuation, and never carry database details.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The named thing does not exist.
    #[error("{what} {id} not found")]
    NotFound {
        /// The kind of thing (`queue`, `agent`, …).
        what: &'static str,
        /// The id that was looked up.
        id: String,
    },
    /// A thing with this id exists already.
    #[error("{what} {id} already exists")]
    AlreadyExists {
        /// The kind of thing.
        what: &'static str,
        /// The id that clashed.
        id: String,
    },
    /// A field of the request is wrong.
    #[error("{field}: {reason}")]
    InvalidArgument {
        /// The path of the offending field, e.g. `steps[1].requirements[0].min_level`.
        field: String,
        /// Why it is wrong.
        reason: String,
    },
    /// The request is well formed but the system's state forbids it now.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A limit was reached (queue full, writer behind).
    #[error("{0}")]
    ResourceExhausted(String),
    /// A dependency (the database) cannot be reached now; retrying later may work.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected failure; details are in the server's log only.
    #[error("internal error")]
    Internal,
}

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::NotFound`].
    pub fn not_found(what: &'static str, id: impl ToString) -> Self {
        Error::NotFound {
            what,
            id: id.to_string(),
        }
    }
}

/// Results throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;
