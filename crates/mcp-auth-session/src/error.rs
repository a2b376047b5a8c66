use thiserror::Error;

/// Everything that can go wrong in this crate.
///
/// Messages never contain a session id, session data or a store password.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SessionError {
    /// No live session has this id: it never existed, expired (idle or
    /// absolute timeout), was rotated away or was revoked. Deliberately one
    /// variant, so a client learns nothing about which.
    #[error("session not found, expired or revoked")]
    NotFound,
    /// The presented id is not the canonical 43-character form.
    #[error("malformed session id")]
    MalformedId,
    /// The user already has the configured maximum number of sessions and the
    /// policy is [`UserLimitPolicy::Refuse`](crate::UserLimitPolicy::Refuse).
    #[error("the user already has the maximum of {max} concurrent sessions")]
    UserLimitReached {
        /// The configured limit.
        max: u32,
    },
    /// The memory store holds its configured maximum of live sessions.
    #[error("session store is full ({capacity} live sessions)")]
    StoreFull {
        /// The store's capacity.
        capacity: usize,
    },
    /// Serialized session data is over the configured cap.
    #[error("session data is {len} bytes, over the {max}-byte cap")]
    DataTooLarge {
        /// Serialized length.
        len: usize,
        /// The configured cap.
        max: usize,
    },
    /// A client id or scope is empty, too long or has forbidden characters.
    #[error("invalid {field}: {reason}")]
    InvalidField {
        /// Which field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Session data could not be serialized or deserialized as the
    /// manager's data type (for example after a schema change).
    #[error(
        "session data does not (de)serialize as the expected type ({category} error at line {line}, column {column})"
    )]
    Data {
        /// serde_json's error category (`syntax`, `data`, `eof`, `io`).
        category: &'static str,
        /// Line in the JSON text.
        line: usize,
        /// Column in the JSON text.
        column: usize,
    },
    /// The configuration is unusable.
    #[error("invalid session configuration: {0}")]
    Config(mcp_auth_core::ConfigProblem),
    /// The store could not be reached or failed. No session is considered
    /// valid while this lasts (fail closed).
    #[error("session store unavailable: redis: {0}")]
    StoreUnavailable(&'static str),
    /// The store returned a record this crate did not write.
    #[error("session store returned a malformed record: {0}")]
    StoreCorrupt(&'static str),
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed")]
    Random,
}

impl SessionError {
    /// serde_json errors quote offending values, which may be secrets: keep
    /// only their category and position.
    pub(crate) fn data(e: &serde_json::Error) -> Self {
        use serde_json::error::Category;
        let category = match e.classify() {
            Category::Io => "io",
            Category::Syntax => "syntax",
            Category::Data => "data",
            Category::Eof => "eof",
        };
        Self::Data {
            category,
            line: e.line(),
            column: e.column(),
        }
    }
}
