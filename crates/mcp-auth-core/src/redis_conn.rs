//! Redis connection set-up: one [`RedisConfig`] for every Redis-backed
//! store of the workspace (sessions, rate limits, pending sign-ins, the
//! authorization server's records, the vault).

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// Why a Redis-backed component could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisSetupError {
    /// The key prefix is empty or has control characters.
    #[error("the Redis key prefix must be non-empty, without control characters")]
    BadPrefix,
    /// The URL does not parse. The URL itself is not repeated: it may hold a password.
    #[error("the Redis URL does not parse (redis://host:port/db)")]
    BadUrl,
    /// The connection manager could not be created.
    #[error("redis: {0}")]
    Unavailable(&'static str),
}

/// How a component reaches Redis: the URL (which may carry a password, so
/// `Debug` never prints it), the prefix of every key it writes, and how
/// long connecting and one command may take (defaults 1 s and 2 s). Every
/// Redis-backed store takes one and connects with `connect_lazy(config)`
/// (nothing sent until the first command) or `connect(config).await`
/// (which also checks that the server answers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    url: crate::Redacted<String>,
    /// Prefix of every key (each store has its own default; give each
    /// application sharing a Redis its own).
    pub prefix: String,
    /// How long connecting may take (default 1 s).
    pub connection_timeout: Duration,
    /// How long one command may take (default 2 s).
    pub response_timeout: Duration,
}

impl RedisConfig {
    /// Redis at `url` (`redis://[user:password@]host:port/db`), keys under
    /// `default_prefix` unless [`prefix`](Self::prefix) says otherwise.
    pub fn new(url: impl Into<String>, default_prefix: &str) -> Self {
        Self {
            url: crate::Redacted(url.into()),
            prefix: default_prefix.to_owned(),
            connection_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(2),
        }
    }

    /// Another key prefix.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long connecting may take.
    #[must_use]
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// How long one command may take.
    #[must_use]
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// The URL, for the one place it must go (the client).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The same Redis under `prefix`: for a component that keeps its keys
    /// apart from another's on one server.
    pub fn with_prefix(&self, prefix: impl Into<String>) -> Self {
        self.clone().prefix(prefix)
    }

    /// A client for the URL, the prefix checked first.
    pub fn client(&self) -> Result<redis::Client, RedisSetupError> {
        check_prefix(&self.prefix)?;
        redis::Client::open(self.url.as_str()).map_err(|_| RedisSetupError::BadUrl)
    }

    /// A lazily connecting, self-reconnecting connection manager
    /// ([`lazy_connection`]). Must be called within a Tokio runtime.
    pub fn connect_lazy(&self) -> Result<ConnectionManager, RedisSetupError> {
        lazy_connection(
            &self.url,
            &self.prefix,
            self.connection_timeout,
            self.response_timeout,
        )
    }

    /// [`connect_lazy`](Self::connect_lazy), then `PING`: the server answers now.
    pub async fn connect(&self) -> Result<ConnectionManager, RedisSetupError> {
        let conn = self.connect_lazy()?;
        ping(&conn).await?;
        Ok(conn)
    }
}

fn check_prefix(prefix: &str) -> Result<(), RedisSetupError> {
    if prefix.is_empty() || prefix.chars().any(char::is_control) {
        return Err(RedisSetupError::BadPrefix);
    }
    Ok(())
}

/// A lazily connecting, self-reconnecting connection manager for `url`:
/// nothing is sent until the first command, every command times out after
/// `response_timeout`, and after a failure the next command reconnects
/// (2 retries, backoff capped at 500 ms). Must be called within a Tokio runtime.
pub fn lazy_connection(
    url: &str,
    prefix: &str,
    connection_timeout: Duration,
    response_timeout: Duration,
) -> Result<ConnectionManager, RedisSetupError> {
    check_prefix(prefix)?;
    let client = redis::Client::open(url).map_err(|_| RedisSetupError::BadUrl)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(connection_timeout))
        .set_response_timeout(Some(response_timeout))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_lazy_with_config(client, config)
        .map_err(|e| RedisSetupError::Unavailable(describe(&e)))
}

/// A set-up error that is the caller's configuration (the URL or the
/// prefix), as a [`ConfigProblem`](crate::ConfigProblem) naming the setting.
/// The URL itself is never repeated: it may hold a password.
pub fn redis_problem(error: &RedisSetupError) -> crate::ConfigProblem {
    match error {
        RedisSetupError::BadPrefix => crate::ConfigProblem::new(
            "redis prefix",
            "must be non-empty, without control characters",
        ),
        RedisSetupError::BadUrl => crate::ConfigProblem::new(
            "redis URL",
            "does not parse (redis://[user:password@]host:port/db)",
        ),
        RedisSetupError::Unavailable(what) => crate::ConfigProblem::new("redis", *what),
    }
}

/// Sends `PING` and waits for the answer: proof that the server is reachable now.
pub async fn ping(conn: &ConnectionManager) -> Result<(), RedisSetupError> {
    let _: String = redis::cmd("PING")
        .query_async(&mut conn.clone())
        .await
        .map_err(|e| RedisSetupError::Unavailable(describe(&e)))?;
    Ok(())
}

/// What failed, in words that never echo the URL or credentials.
pub fn describe(e: &redis::RedisError) -> &'static str {
    if e.is_timeout() {
        "timed out"
    } else if e.is_connection_refusal() {
        "connection refused"
    } else if e.is_connection_dropped() || e.is_io_error() {
        "connection lost"
    } else {
        "command failed"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_never_shows_in_debug_and_the_prefix_is_checked() {
        let config = RedisConfig::new("redis://:hunter2-secret@127.0.0.1:6379/0", "app:");
        let text = format!("{config:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("app:"), "{text}");
        assert!(matches!(
            config.with_prefix("").client(),
            Err(RedisSetupError::BadPrefix)
        ));
        assert!(matches!(
            RedisConfig::new("not a url", "p").client(),
            Err(RedisSetupError::BadUrl)
        ));
        assert_eq!(config.with_prefix("other:").prefix, "other:");
        assert_eq!(config.connection_timeout, Duration::from_secs(1));
        assert_eq!(config.response_timeout, Duration::from_secs(2));
    }
}
