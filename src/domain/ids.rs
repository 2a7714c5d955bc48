//! Newtypes for identifiers, so an agent id can never be passed where a queue
//! id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// Defines a cheaply clonable string identifier.
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Wraps a name; validation happens where input enters the system.
            pub fn new(name: impl AsRef<str>) -> Self {
                Self(Arc::from(name.as_ref()))
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(name: &str) -> Self {
                Self::new(name)
            }
        }

        impl From<String> for $name {
            fn from(name: String) -> Self {
                Self(Arc::from(name))
            }
        }
    };
}

string_id!(
    /// A skill's name, such as `billing` or `lang:fr`.
    SkillName
);
string_id!(
    /// A queue's name, chosen by the supervisor (`sales`, `support-fr`).
    QueueId
);
string_id!(
    /// An agent's id, chosen by the supervisor (usually the login name).
    AgentId
);
string_id!(
    /// The service address a consumer dialled or clicked, e.g. `sip:sales@contoso.example`.
    EntryPointAddress
);
string_id!(
    /// The interop bridge's own id for an interaction; submissions are idempotent on it.
    InteractionId
);

/// Switchboard's id for one work item (one routing segment of an interaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WorkItemId(pub uuid::Uuid);

impl WorkItemId {
    /// A new time-ordered id (UUIDv7), so ids sort roughly by creation.
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7())
    }
}

impl Default for WorkItemId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for WorkItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
