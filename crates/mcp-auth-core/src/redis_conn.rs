//! Redis connection set-up shared by the session store and the rate limiter.

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
    if prefix.is_empty() || prefix.chars().any(char::is_control) {
        return Err(RedisSetupError::BadPrefix);
    }
    let client = redis::Client::open(url).map_err(|_| RedisSetupError::BadUrl)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(connection_timeout))
        .set_response_timeout(Some(response_timeout))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_lazy_with_config(client, config)
        .map_err(|e| RedisSetupError::Unavailable(describe(&e)))
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
