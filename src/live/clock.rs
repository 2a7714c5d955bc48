//! The router's clock: wall-clock milliseconds for the engine, advanced by
//! tokio's clock so that tests can pause and advance time.

use crate::domain::Timestamp;
use tokio::time::Instant;

/// Maps tokio instants to engine timestamps and back.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// The tokio instant at which the clock started.
    origin: Instant,
    /// The wall-clock time at that instant.
    origin_time: Timestamp,
}

impl Clock {
    /// A clock starting at the current wall-clock time.
    pub fn start() -> Self {
        Self {
            origin: Instant::now(),
            origin_time: Timestamp::now(),
        }
    }

    /// The current time as the engine sees it.
    pub fn now(&self) -> Timestamp {
        self.origin_time + self.origin.elapsed()
    }

    /// The tokio instant at which `at` falls (now, if it is already past).
    pub fn instant(&self, at: Timestamp) -> Instant {
        self.origin + at.since(self.origin_time)
    }
}
