//! Redis Cluster: `redis+cluster://` (or `rediss+cluster://` for TLS), the
//! slots found through the seed nodes and found again after a failover or
//! a resharding.
//!
//! Every key one script, transaction or pipeline touches must hash to one
//! slot: in cluster mode each store's keys share a hash tag made of its
//! prefix (see [`RedisConfig::key_prefix`](super::RedisConfig::key_prefix)).

use std::time::Duration;

use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisError, TlsMode};

use super::sentinel::Authority;
use super::{RedisSetupError, RedisTls};

/// `redis+cluster://[user:password@]host:port[,host:port…][/]`, parsed.
/// The default port is 6379; a cluster has only database 0.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct ClusterUrl {
    nodes: Vec<(String, u16)>,
    username: Option<String>,
    password: Option<String>,
    tls: bool,
}

impl ClusterUrl {
    /// `None` when `url` is not a cluster URL; an error when it is one
    /// that does not parse.
    pub(super) fn parse(url: &str) -> Result<Option<Self>, RedisSetupError> {
        let (tls, rest) = if let Some(rest) = url.strip_prefix("redis+cluster://") {
            (false, rest)
        } else if let Some(rest) = url.strip_prefix("rediss+cluster://") {
            (true, rest)
        } else {
            return Ok(None);
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if !matches!(path, "" | "0") {
            // Cluster has database 0 only.
            return Err(RedisSetupError::BadUrl);
        }
        let Authority {
            username,
            password,
            hosts,
        } = Authority::parse(authority, 6379)?;
        Ok(Some(Self {
            nodes: hosts,
            username,
            password,
            tls,
        }))
    }

    pub(super) fn is_tls(&self) -> bool {
        self.tls
    }

    fn addr(&self, host: &str, port: u16) -> ConnectionAddr {
        if self.tls {
            ConnectionAddr::TcpTls {
                host: host.to_owned(),
                port,
                insecure: false,
                tls_params: None,
            }
        } else {
            ConnectionAddr::Tcp(host.to_owned(), port)
        }
    }

    fn info(&self, host: &str, port: u16) -> Result<ConnectionInfo, RedisSetupError> {
        let mut settings = redis::RedisConnectionInfo::default();
        if let Some(user) = &self.username {
            settings = settings.set_username(user);
        }
        if let Some(password) = &self.password {
            settings = settings.set_password(password);
        }
        Ok(self
            .addr(host, port)
            .into_connection_info()
            .map_err(|_| RedisSetupError::BadUrl)?
            .set_redis_settings(settings))
    }

    /// The cluster client: seed nodes, credentials, TLS, timeouts.
    pub(super) fn client(
        &self,
        tls: &RedisTls,
        connection_timeout: Duration,
        response_timeout: Duration,
    ) -> Result<ClusterClient, RedisSetupError> {
        if !self.tls && !tls.is_empty() {
            return Err(RedisSetupError::TlsNeedsRediss);
        }
        let nodes = self
            .nodes
            .iter()
            .map(|(host, port)| self.info(host, *port))
            .collect::<Result<Vec<_>, _>>()?;
        let mut builder = ClusterClientBuilder::new(nodes)
            .connection_timeout(connection_timeout)
            .response_timeout(response_timeout)
            .retries(2)
            .max_retry_wait(500);
        if self.tls {
            builder = builder.tls(TlsMode::Secure);
            if !tls.is_empty() {
                builder = builder.certs(tls.certificates());
            }
        }
        builder.build().map_err(|_| RedisSetupError::BadUrl)
    }

    /// A client for one node `host:port` with the URL's credentials and
    /// TLS: for the synchronous vault store, whose transactions
    /// (`WATCH`/`MULTI`) go to the primary of its slot directly.
    pub(super) fn node_client(
        &self,
        host: &str,
        port: u16,
        tls: &RedisTls,
    ) -> Result<redis::Client, RedisSetupError> {
        let info = self.info(host, port)?;
        if tls.is_empty() {
            return redis::Client::open(info).map_err(|_| RedisSetupError::BadUrl);
        }
        if !self.tls {
            return Err(RedisSetupError::TlsNeedsRediss);
        }
        redis::Client::build_with_tls(info, tls.certificates())
            .map_err(|_| RedisSetupError::BadTlsFile("CA file or client certificate"))
    }

    /// The seed nodes, in the URL's order.
    pub(super) fn nodes(&self) -> &[(String, u16)] {
        &self.nodes
    }
}

/// The cluster connection, made at the first command (a cluster that is
/// down at start fails that command, not the start) and kept: redis-rs
/// follows `MOVED`/`ASK` and refreshes the slot map by itself.
pub(super) struct ClusterLink {
    client: ClusterClient,
    current: tokio::sync::Mutex<Option<ClusterConnection>>,
    pub(super) seeds: usize,
}

impl ClusterLink {
    pub(super) fn new(client: ClusterClient, seeds: usize) -> Self {
        Self {
            client,
            current: tokio::sync::Mutex::new(None),
            seeds,
        }
    }

    pub(super) async fn connection(&self) -> Result<ClusterConnection, RedisError> {
        let mut current = self.current.lock().await;
        if let Some(connection) = current.as_ref() {
            return Ok(connection.clone());
        }
        let connection = self.client.get_async_connection().await?;
        *current = Some(connection.clone());
        Ok(connection)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_parse_and_bad_ones_are_refused() {
        let url = ClusterUrl::parse("redis+cluster://ada:p%40ss@h1:7001,h2/")
            .unwrap()
            .unwrap();
        assert_eq!(
            url.nodes,
            [("h1".to_owned(), 7001), ("h2".to_owned(), 6379)]
        );
        assert_eq!(url.username.as_deref(), Some("ada"));
        assert_eq!(url.password.as_deref(), Some("p@ss"));
        assert!(!url.is_tls());
        assert!(
            ClusterUrl::parse("rediss+cluster://h:1")
                .unwrap()
                .unwrap()
                .is_tls()
        );
        assert!(ClusterUrl::parse("redis://h:6379/").unwrap().is_none());
        for bad in [
            "redis+cluster://h1:1/3",
            "redis+cluster://h1:x",
            "redis+cluster://:1",
            "redis+cluster://h1:1,",
        ] {
            assert!(ClusterUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
