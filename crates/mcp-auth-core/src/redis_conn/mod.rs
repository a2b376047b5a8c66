//! Redis connection set-up: one [`RedisConfig`] for every Redis-backed
//! store of the workspace (sessions, rate limits, pending sign-ins, the
//! authorization server's records, the vault).

use std::time::Duration;

use std::sync::Arc;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

mod cluster;
mod sentinel;
use cluster::{ClusterLink, ClusterUrl};
use sentinel::{SentinelLink, SentinelUrl};

/// A connection every Redis-backed store uses: to one server (a
/// self-reconnecting connection manager), or to the primary a set of
/// sentinels names (`redis+sentinel://`), found again after a failover.
/// Cheap to clone; a `redis::aio::ConnectionLike`, so commands, pipelines
/// and scripts run on it as on any connection.
#[derive(Clone)]
pub struct RedisConnection(Link);

#[derive(Clone)]
enum Link {
    Direct(ConnectionManager),
    Sentinel(Arc<SentinelLink>),
    Cluster(Arc<ClusterLink>),
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Link::Direct(_) => f.write_str("RedisConnection(direct)"),
            Link::Sentinel(link) => write!(f, "RedisConnection(sentinel: {})", link.service),
            Link::Cluster(link) => write!(f, "RedisConnection(cluster: {} seed nodes)", link.seeds),
        }
    }
}

impl redis::aio::ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match &mut self.0 {
            Link::Direct(manager) => manager.req_packed_command(cmd),
            Link::Sentinel(link) => {
                let link = link.clone();
                Box::pin(async move {
                    let mut manager = link.manager().await?;
                    let result = manager.req_packed_command(cmd).await;
                    if let Err(e) = &result {
                        link.after(e).await;
                    }
                    result
                })
            }
            Link::Cluster(link) => {
                let link = link.clone();
                Box::pin(async move { link.connection().await?.req_packed_command(cmd).await })
            }
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match &mut self.0 {
            Link::Direct(manager) => manager.req_packed_commands(pipeline, offset, count),
            Link::Sentinel(link) => {
                let link = link.clone();
                Box::pin(async move {
                    let mut manager = link.manager().await?;
                    let result = manager.req_packed_commands(pipeline, offset, count).await;
                    if let Err(e) = &result {
                        link.after(e).await;
                    }
                    result
                })
            }
            Link::Cluster(link) => {
                let link = link.clone();
                Box::pin(async move {
                    link.connection()
                        .await?
                        .req_packed_commands(pipeline, offset, count)
                        .await
                })
            }
        }
    }

    fn get_db(&self) -> i64 {
        match &self.0 {
            Link::Direct(manager) => manager.get_db(),
            Link::Sentinel(link) => link.db,
            Link::Cluster(_) => 0,
        }
    }
}

impl RedisConnection {
    /// Runs `cmd`, a command that names no key (`SCAN`, `WAIT`), where
    /// `key` lives: on a cluster, on the primary that holds `key`'s slot
    /// (a store's keys share one slot, so a `SCAN` there sees them all);
    /// elsewhere, as any command.
    pub async fn query_where<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
        key: &str,
    ) -> redis::RedisResult<T> {
        use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
        match &self.0 {
            Link::Cluster(link) => {
                let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                    Route::with_key(key, SlotAddr::Master),
                ));
                let value = link
                    .connection()
                    .await?
                    .route_command(cmd.clone(), route)
                    .await?;
                redis::from_redis_value(value).map_err(Into::into)
            }
            _ => cmd.query_async(&mut self.clone()).await,
        }
    }

    /// Every key that starts with `prefix` (`SCAN … MATCH`, the prefix's
    /// glob characters escaped), on a cluster from the primary holding the
    /// prefix's slot: for a store's rare whole-keyspace steps (the
    /// emergency switch), never a request's path.
    pub async fn scan_prefix(&self, prefix: &str) -> redis::RedisResult<Vec<String>> {
        let pattern = format!("{}*", escape_glob(prefix));
        let mut found = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = self
                .query_where(
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000),
                    prefix,
                )
                .await?;
            found.extend(keys);
            if next == 0 {
                found.sort();
                found.dedup();
                return Ok(found);
            }
            cursor = next;
        }
    }
}

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
    /// The connection manager could not be created, or the server did not
    /// answer.
    #[error("redis: {0}")]
    Unavailable(&'static str),
    /// TLS settings with a `redis://` URL: TLS needs `rediss://`.
    #[error("TLS settings (a CA file, a client certificate) need a rediss:// URL")]
    TlsNeedsRediss,
    /// A TLS file (CA, client certificate or key) holds no usable PEM.
    #[error("the TLS {0} is not usable PEM")]
    BadTlsFile(&'static str),
    /// The server's certificate is not signed by a trusted CA (or does not
    /// name the host in the URL).
    #[error(
        "TLS: the Redis server's certificate is not trusted for this host (a private CA needs its CA file)"
    )]
    Untrusted,
    /// The server did not answer in TLS: a plain-text port behind a
    /// `rediss://` URL.
    #[error(
        "TLS: the Redis server did not answer in TLS (is the port plain text? use redis://, or its TLS port)"
    )]
    NotTls,
    /// The server refused the user name or password (or wants one).
    #[error("the Redis server refused the credentials: wrong user or password, or none given")]
    AuthFailed,
}

/// TLS material beyond the system roots, in PEM: a CA that signs a
/// private Redis server's certificate (it then replaces the system roots:
/// only it is trusted), and a client certificate with its key for servers
/// that ask for one (`tls-auth-clients yes`). `Debug` shows which are set,
/// never the key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedisTls {
    ca: Option<Vec<u8>>,
    client: Option<(Vec<u8>, SecretPem)>,
}

/// A private key in PEM: wiped on drop, `[REDACTED]` in `Debug`.
type SecretPem = crate::Redacted<zeroize::Zeroizing<Vec<u8>>>;

impl RedisTls {
    /// Trust only the CA(s) in `pem`.
    #[must_use]
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca = Some(pem.into());
        self
    }

    /// Present `cert_pem` (a chain) with its private key `key_pem`.
    #[must_use]
    pub fn client_pem(mut self, cert_pem: impl Into<Vec<u8>>, key_pem: impl Into<Vec<u8>>) -> Self {
        self.client = Some((
            cert_pem.into(),
            crate::Redacted(zeroize::Zeroizing::new(key_pem.into())),
        ));
        self
    }

    /// Reads the CA file and the client certificate and key files that
    /// are given; each error names the setting (`ca_setting`, …) whose
    /// file is missing or unusable. The client certificate and key come
    /// together or not at all.
    pub fn from_files(
        ca: Option<(&'static str, &std::path::Path)>,
        client_cert: Option<(&'static str, &std::path::Path)>,
        client_key: Option<(&'static str, &std::path::Path)>,
    ) -> Result<Self, crate::ConfigProblems> {
        let mut problems = Vec::new();
        let mut read = |file: Option<(&'static str, &std::path::Path)>, what: &str| {
            let (setting, path) = file?;
            match std::fs::read(path) {
                Ok(bytes) if looks_like_pem(&bytes) => Some(bytes),
                Ok(_) => {
                    problems.push(crate::ConfigProblem::new(
                        setting,
                        format!("{} holds no PEM {what}", path.display()),
                    ));
                    None
                }
                Err(e) => {
                    problems.push(crate::ConfigProblem::new(
                        setting,
                        format!("cannot read {}: {e}", path.display()),
                    ));
                    None
                }
            }
        };
        let ca_pem = read(ca, "certificate");
        let cert_pem = read(client_cert, "certificate");
        let key_pem = read(client_key, "private key");
        let mut tls = Self::default();
        if let Some(pem) = ca_pem {
            tls = tls.ca_pem(pem);
        }
        match (client_cert, client_key, cert_pem, key_pem) {
            (_, _, Some(cert), Some(key)) => tls = tls.client_pem(cert, key),
            (Some((setting, _)), None, _, _) | (None, Some((setting, _)), _, _) => {
                problems.push(crate::ConfigProblem::new(
                    setting,
                    "a client certificate and its key are set together",
                ));
            }
            _ => {}
        }
        if problems.is_empty() {
            Ok(tls)
        } else {
            Err(crate::ConfigProblems(problems))
        }
    }

    /// Whether anything beyond the system roots is set.
    pub fn is_empty(&self) -> bool {
        self.ca.is_none() && self.client.is_none()
    }

    fn certificates(&self) -> redis::TlsCertificates {
        redis::TlsCertificates {
            client_tls: self
                .client
                .as_ref()
                .map(|(cert, key)| redis::ClientTlsConfig {
                    client_cert: cert.clone(),
                    client_key: key.0.to_vec(),
                }),
            root_cert: self.ca.clone(),
        }
    }
}

fn looks_like_pem(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok_and(|text| text.contains("-----BEGIN "))
}

/// How a component reaches Redis: the URL (which may carry a password, so
/// `Debug` never prints it), the prefix of every key it writes, and how
/// long connecting and one command may take (defaults 1 s and 2 s). Every
/// Redis-backed store takes one and connects with `connect_lazy(config)`
/// (nothing sent until the first command) or `connect(config).await`
/// (which also checks that the server answers). Stores name their keys
/// with [`key_prefix`](RedisConfig::key_prefix).
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
    tls: RedisTls,
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
            tls: RedisTls::default(),
        }
    }

    /// TLS material beyond the system roots (a `rediss://` URL is TLS with
    /// the system roots already).
    #[must_use]
    pub fn tls(mut self, tls: RedisTls) -> Self {
        self.tls = tls;
        self
    }

    /// Whether the connection is TLS (`rediss://`, `rediss+sentinel://`
    /// or `rediss+cluster://`).
    pub fn is_tls(&self) -> bool {
        ["rediss://", "rediss+sentinel://", "rediss+cluster://"]
            .iter()
            .any(|scheme| self.url.starts_with(scheme))
    }

    /// Whether the URL names sentinels (`redis+sentinel://` or
    /// `rediss+sentinel://`) rather than one server.
    pub fn is_sentinel(&self) -> bool {
        self.url.starts_with("redis+sentinel://") || self.url.starts_with("rediss+sentinel://")
    }

    /// Whether the URL names a Redis Cluster (`redis+cluster://` or
    /// `rediss+cluster://`) rather than one server.
    pub fn is_cluster(&self) -> bool {
        self.url.starts_with("redis+cluster://") || self.url.starts_with("rediss+cluster://")
    }

    /// The prefix a store puts before every key it writes: the
    /// [`prefix`](Self::prefix) as given, and on a cluster the prefix as a
    /// hash tag (`{prefix}`) unless it holds one already, so that every
    /// key of one store hashes to one slot and its scripts, transactions
    /// and pipelines run there (each store sits on one primary; the stores
    /// spread over the cluster's primaries).
    pub fn key_prefix(&self) -> String {
        if self.is_cluster() && !has_hash_tag(&self.prefix) {
            format!("{{{}}}", self.prefix)
        } else {
            self.prefix.clone()
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

    /// Checks the prefix and the URL without connecting.
    pub fn check(&self) -> Result<(), RedisSetupError> {
        check_prefix(&self.prefix)?;
        if let Some(cluster) = ClusterUrl::parse(&self.url)? {
            return if !cluster.is_tls() && !self.tls.is_empty() {
                Err(RedisSetupError::TlsNeedsRediss)
            } else {
                Ok(())
            };
        }
        match SentinelUrl::parse(&self.url)? {
            Some(sentinel) if !sentinel.is_tls() && !self.tls.is_empty() => {
                Err(RedisSetupError::TlsNeedsRediss)
            }
            Some(_) => Ok(()),
            None => redis::IntoConnectionInfo::into_connection_info(self.url.as_str())
                .map(|_| ())
                .map_err(|_| RedisSetupError::BadUrl),
        }
    }

    /// A client for the URL (with the TLS material, if any), the prefix
    /// checked first.
    /// Behind sentinels: a client for the primary they name now (asking
    /// them, blocking); call it again after a failover. On a cluster: a
    /// client for its first seed node (follow `MOVED` with
    /// [`node_client`](Self::node_client)).
    pub fn client(&self) -> Result<redis::Client, RedisSetupError> {
        check_prefix(&self.prefix)?;
        if let Some(cluster) = ClusterUrl::parse(&self.url)? {
            let (host, port) = cluster.nodes().first().ok_or(RedisSetupError::BadUrl)?;
            return cluster.node_client(host, *port, &self.tls);
        }
        if let Some(sentinel) = SentinelUrl::parse(&self.url)? {
            return sentinel
                .client(&self.tls)?
                .get_client()
                .map_err(|e| classify(&e));
        }
        if self.tls.is_empty() {
            return redis::Client::open(self.url.as_str()).map_err(|_| RedisSetupError::BadUrl);
        }
        if !self.is_tls() {
            return Err(RedisSetupError::TlsNeedsRediss);
        }
        let info = redis::IntoConnectionInfo::into_connection_info(self.url.as_str())
            .map_err(|_| RedisSetupError::BadUrl)?;
        redis::Client::build_with_tls(info, self.tls.certificates()).map_err(|e| {
            let text = e.to_string();
            RedisSetupError::BadTlsFile(if text.contains("root") || text.contains("trust") {
                "CA file"
            } else if text.contains("key") {
                "client key"
            } else {
                "client certificate"
            })
        })
    }

    /// On a cluster, a client for the node `host:port` (the address a
    /// `MOVED` answer names) with the URL's credentials and TLS material;
    /// elsewhere [`RedisSetupError::BadUrl`].
    pub fn node_client(&self, host: &str, port: u16) -> Result<redis::Client, RedisSetupError> {
        match ClusterUrl::parse(&self.url)? {
            Some(cluster) => cluster.node_client(host, port, &self.tls),
            None => Err(RedisSetupError::BadUrl),
        }
    }

    /// A cluster's seed nodes, in the URL's order; empty for any other URL.
    pub fn cluster_nodes(&self) -> Vec<(String, u16)> {
        match ClusterUrl::parse(&self.url) {
            Ok(Some(cluster)) => cluster.nodes().to_vec(),
            _ => Vec::new(),
        }
    }

    /// A lazily connecting, self-reconnecting connection: nothing is sent
    /// until the first command, every command times out after
    /// `response_timeout`, and after a failure the next command reconnects
    /// (2 retries, backoff capped at 500 ms). Behind sentinels, a failure
    /// that says the primary may have moved makes the next command ask the
    /// sentinels again. Must be called within a Tokio runtime.
    pub fn connect_lazy(&self) -> Result<RedisConnection, RedisSetupError> {
        check_prefix(&self.prefix)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connection_timeout))
            .set_response_timeout(Some(self.response_timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        if let Some(cluster) = ClusterUrl::parse(&self.url)? {
            let client =
                cluster.client(&self.tls, self.connection_timeout, self.response_timeout)?;
            return Ok(RedisConnection(Link::Cluster(Arc::new(ClusterLink::new(
                client,
                cluster.nodes().len(),
            )))));
        }
        if let Some(sentinel) = SentinelUrl::parse(&self.url)? {
            if !sentinel.is_tls() && !self.tls.is_empty() {
                return Err(RedisSetupError::TlsNeedsRediss);
            }
            return Ok(RedisConnection(Link::Sentinel(SentinelLink::new(
                &sentinel, &self.tls, config,
            )?)));
        }
        let client = self.client()?;
        ConnectionManager::new_lazy_with_config(client, config)
            .map(|manager| RedisConnection(Link::Direct(manager)))
            .map_err(|e| RedisSetupError::Unavailable(describe(&e)))
    }

    /// [`connect_lazy`](Self::connect_lazy), then `PING`: the server answers now.
    pub async fn connect(&self) -> Result<RedisConnection, RedisSetupError> {
        let conn = self.connect_lazy()?;
        match ping(&conn).await {
            // A plain-text server reads a TLS hello as the start of a
            // command and waits: the handshake times out. Ask it in plain
            // text to tell that apart from a server that is down.
            Err(RedisSetupError::Unavailable("timed out")) if self.answers_plain_text().await => {
                Err(RedisSetupError::NotTls)
            }
            Err(e) => Err(e),
            Ok(()) => Ok(conn),
        }
    }

    /// Whether a `rediss://` URL's host and port answer `PING` in plain
    /// text (`+PONG`, or `-NOAUTH` when a password is wanted).
    async fn answers_plain_text(&self) -> bool {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(info) = redis::IntoConnectionInfo::into_connection_info(self.url.as_str()) else {
            return false;
        };
        let redis::ConnectionAddr::TcpTls { host, port, .. } = info.addr() else {
            return false;
        };
        let probe = async {
            let mut stream = tokio::net::TcpStream::connect((host.as_str(), *port))
                .await
                .ok()?;
            stream.write_all(b"PING\r\n").await.ok()?;
            let mut reply = [0u8; 7];
            stream.read_exact(&mut reply).await.ok()?;
            Some(&reply == b"+PONG\r\n" || reply.starts_with(b"-NOAUTH"))
        };
        tokio::time::timeout(self.connection_timeout, probe)
            .await
            .ok()
            .flatten()
            .unwrap_or(false)
    }
}

/// Whether `prefix` holds a Redis hash tag: a `{` followed later by a `}`
/// with at least one character between (the first such pair counts).
fn has_hash_tag(prefix: &str) -> bool {
    prefix
        .find('{')
        .and_then(|open| prefix[open + 1..].find('}'))
        .is_some_and(|len| len > 0)
}

fn check_prefix(prefix: &str) -> Result<(), RedisSetupError> {
    if prefix.is_empty() || prefix.chars().any(char::is_control) {
        return Err(RedisSetupError::BadPrefix);
    }
    Ok(())
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
        RedisSetupError::TlsNeedsRediss | RedisSetupError::NotTls | RedisSetupError::AuthFailed => {
            crate::ConfigProblem::new("redis URL", error.to_string())
        }
        RedisSetupError::BadTlsFile(_) | RedisSetupError::Untrusted => {
            crate::ConfigProblem::new("redis TLS", error.to_string())
        }
    }
}

/// Sends `PING` and waits for the answer: proof that the server is reachable now.
pub async fn ping(conn: &RedisConnection) -> Result<(), RedisSetupError> {
    let _: String = redis::cmd("PING")
        .query_async(&mut conn.clone())
        .await
        .map_err(|e| classify(&e))?;
    Ok(())
}

/// What a failed connection says about the configuration: an untrusted
/// certificate, a plain-text server behind `rediss://`, refused
/// credentials; else [`RedisSetupError::Unavailable`] with [`describe`].
pub fn classify(e: &redis::RedisError) -> RedisSetupError {
    if e.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("NOAUTH" | "WRONGPASS"))
    {
        return RedisSetupError::AuthFailed;
    }
    match tls_error(e) {
        Some(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented) => {
            RedisSetupError::Untrusted
        }
        Some(rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. }) => {
            RedisSetupError::NotTls
        }
        _ => RedisSetupError::Unavailable(describe(e)),
    }
}

/// The TLS error under `e`, if a handshake failed. redis-rs keeps the
/// I/O error behind an `Arc<dyn Error>`, so each link is looked at as
/// itself and as that `Arc`.
fn tls_error(e: &redis::RedisError) -> Option<&rustls::Error> {
    type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;
    fn as_tls<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        let io = err.downcast_ref::<std::io::Error>().or_else(|| {
            err.downcast_ref::<Shared>()
                .and_then(|shared| shared.as_ref().downcast_ref::<std::io::Error>())
        })?;
        io.get_ref()?.downcast_ref::<rustls::Error>()
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(err) = source {
        if let Some(tls) = as_tls(err) {
            return Some(tls);
        }
        source = err.source();
    }
    None
}

/// What failed, in words that never echo the URL or credentials. Every
/// Redis failure a store reports passes here, so it is also counted:
/// `mcp_auth_redis_errors_total{kind}` (the words, a fixed set).
pub fn describe(e: &redis::RedisError) -> &'static str {
    let what = if e.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("NOAUTH" | "WRONGPASS"))
    {
        "credentials refused"
    } else if tls_error(e).is_some() {
        "TLS handshake failed"
    } else if e.is_timeout() {
        "timed out"
    } else if e.is_connection_refusal() {
        "connection refused"
    } else if e.is_connection_dropped() || e.is_io_error() {
        "connection lost"
    } else {
        "command failed"
    };
    metrics::counter!("mcp_auth_redis_errors_total", "kind" => what).increment(1);
    what
}

/// `literal` with Redis glob metacharacters escaped, for `SCAN MATCH` on a
/// key prefix.
pub fn escape_glob(literal: &str) -> String {
    let mut out = String::with_capacity(literal.len());
    for c in literal.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
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

    #[test]
    fn tls_files_are_checked_and_the_key_never_shows() {
        let dir = std::env::temp_dir().join(format!("mcp-auth-core-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pem = dir.join("ca.pem");
        std::fs::write(
            &pem,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let key = dir.join("client.key");
        std::fs::write(
            &key,
            "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleQ==\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not pem at all").unwrap();
        let missing = dir.join("missing.pem");

        let tls = RedisTls::from_files(
            Some(("CA", &pem)),
            Some(("CERT", &pem)),
            Some(("KEY", &key)),
        )
        .unwrap();
        let text = format!("{tls:?}");
        assert!(
            !text.contains("c2VjcmV0") && text.contains("[REDACTED]"),
            "{text}"
        );

        let problems =
            RedisTls::from_files(Some(("CA", &missing)), None, Some(("KEY", &junk))).unwrap_err();
        let settings: Vec<&str> = problems.0.iter().map(|p| p.setting()).collect();
        assert_eq!(settings, ["CA", "KEY", "KEY"], "{problems}");
        assert!(problems.to_string().contains("cannot read"), "{problems}");
        assert!(problems.to_string().contains("no PEM"), "{problems}");

        let plain = RedisConfig::new("redis://127.0.0.1:6379/", "p:").tls(tls.clone());
        assert!(matches!(
            plain.client(),
            Err(RedisSetupError::TlsNeedsRediss)
        ));
        let broken = RedisConfig::new("rediss://127.0.0.1:6379/", "p:").tls(tls);
        assert!(matches!(
            broken.client(),
            Err(RedisSetupError::BadTlsFile(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
