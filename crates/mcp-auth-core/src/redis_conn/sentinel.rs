//! Redis behind Sentinel: `redis+sentinel://` (or `rediss+sentinel://` for
//! TLS), the primary found through the sentinels and found again after a
//! failover.

use std::sync::Arc;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{ConnectionAddr, RedisError, TlsMode};

use super::{RedisSetupError, RedisTls};

/// `redis+sentinel://[user:password@]host:port[,host:port…]/service[/db]`,
/// parsed. Sentinel's default port is 26379.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct SentinelUrl {
    sentinels: Vec<(String, u16)>,
    service: String,
    db: i64,
    username: Option<String>,
    password: Option<String>,
    tls: bool,
}

impl SentinelUrl {
    /// `None` when `url` is not a sentinel URL; an error when it is one
    /// that does not parse.
    pub(super) fn parse(url: &str) -> Result<Option<Self>, RedisSetupError> {
        let (tls, rest) = if let Some(rest) = url.strip_prefix("redis+sentinel://") {
            (false, rest)
        } else if let Some(rest) = url.strip_prefix("rediss+sentinel://") {
            (true, rest)
        } else {
            return Ok(None);
        };
        let (authority, path) = rest.split_once('/').ok_or(RedisSetupError::BadUrl)?;
        let Authority {
            username,
            password,
            hosts: sentinels,
        } = Authority::parse(authority, 26379)?;
        let mut segments = path.split('/');
        let service = segments
            .next()
            .filter(|s| !s.is_empty())
            .ok_or(RedisSetupError::BadUrl)?;
        let db = match segments.next() {
            Some(db) if !db.is_empty() => db.parse().map_err(|_| RedisSetupError::BadUrl)?,
            _ => 0,
        };
        Ok(Some(Self {
            sentinels,
            service: decode(service)?,
            db,
            username,
            password,
            tls,
        }))
    }

    pub(super) fn is_tls(&self) -> bool {
        self.tls
    }

    pub(super) fn client(&self, tls: &RedisTls) -> Result<SentinelClient, RedisSetupError> {
        let addr = |(host, port): &(String, u16)| {
            if self.tls {
                ConnectionAddr::TcpTls {
                    host: host.clone(),
                    port: *port,
                    insecure: false,
                    tls_params: None,
                }
            } else {
                ConnectionAddr::Tcp(host.clone(), *port)
            }
        };
        let mut builder = SentinelClientBuilder::new(
            self.sentinels.iter().map(addr),
            &self.service,
            SentinelServerType::Master,
        )
        .map_err(|_| RedisSetupError::BadUrl)?
        .set_client_to_redis_db(self.db);
        if let Some(user) = &self.username {
            builder = builder.set_client_to_redis_username(user);
        }
        if let Some(password) = &self.password {
            builder = builder.set_client_to_redis_password(password);
        }
        if self.tls {
            builder = builder
                .set_client_to_redis_tls_mode(TlsMode::Secure)
                .set_client_to_sentinel_tls_mode(TlsMode::Secure);
            if !tls.is_empty() {
                builder = builder
                    .set_client_to_redis_certificates(tls.certificates())
                    .set_client_to_sentinel_certificates(tls.certificates());
            }
        } else if !tls.is_empty() {
            return Err(RedisSetupError::TlsNeedsRediss);
        }
        builder.build().map_err(|_| RedisSetupError::BadUrl)
    }
}

/// `[user[:password]@]host[:port][,host[:port]…]`: the part of a
/// multi-host URL (sentinels, cluster nodes) before the path.
pub(super) struct Authority {
    pub(super) username: Option<String>,
    pub(super) password: Option<String>,
    pub(super) hosts: Vec<(String, u16)>,
}

impl Authority {
    pub(super) fn parse(authority: &str, default_port: u16) -> Result<Self, RedisSetupError> {
        let (credentials, hosts) = match authority.rsplit_once('@') {
            Some((credentials, hosts)) => (Some(credentials), hosts),
            None => (None, authority),
        };
        let (username, password) = match credentials {
            None => (None, None),
            Some(c) => match c.split_once(':') {
                Some((user, password)) => (
                    Some(decode(user)?).filter(|u| !u.is_empty()),
                    Some(decode(password)?),
                ),
                None => (Some(decode(c)?), None),
            },
        };
        let mut parsed = Vec::new();
        for host in hosts.split(',') {
            let (name, port) = match host.rsplit_once(':') {
                Some((name, port)) => (name, port.parse().map_err(|_| RedisSetupError::BadUrl)?),
                None => (host, default_port),
            };
            if name.is_empty() {
                return Err(RedisSetupError::BadUrl);
            }
            parsed.push((name.to_owned(), port));
        }
        Ok(Self {
            username,
            password,
            hosts: parsed,
        })
    }
}

/// Percent-decoding of a URL part.
fn decode(text: &str) -> Result<String, RedisSetupError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3).ok_or(RedisSetupError::BadUrl)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| RedisSetupError::BadUrl)?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| RedisSetupError::BadUrl)
}

/// The primary as the sentinels name it, connected lazily, and forgotten
/// after an error that says it may no longer be the primary (the next
/// command asks the sentinels again).
pub(super) struct SentinelLink {
    client: tokio::sync::Mutex<SentinelClient>,
    current: tokio::sync::Mutex<Option<ConnectionManager>>,
    config: ConnectionManagerConfig,
    pub(super) db: i64,
    pub(super) service: String,
}

impl SentinelLink {
    pub(super) fn new(
        url: &SentinelUrl,
        tls: &RedisTls,
        config: ConnectionManagerConfig,
    ) -> Result<Arc<Self>, RedisSetupError> {
        Ok(Arc::new(Self {
            client: tokio::sync::Mutex::new(url.client(tls)?),
            current: tokio::sync::Mutex::new(None),
            config,
            db: url.db,
            service: url.service.clone(),
        }))
    }

    /// The connection to the primary, asking the sentinels when there is
    /// none.
    pub(super) async fn manager(&self) -> Result<ConnectionManager, RedisError> {
        let mut current = self.current.lock().await;
        if let Some(manager) = current.as_ref() {
            return Ok(manager.clone());
        }
        let client = self.client.lock().await.async_get_client().await?;
        let manager = ConnectionManager::new_lazy_with_config(client, self.config.clone())?;
        *current = Some(manager.clone());
        Ok(manager)
    }

    /// After `error`: forget the primary if it may have changed.
    pub(super) async fn after(&self, error: &RedisError) {
        let moved = error.is_connection_refusal()
            || error.is_connection_dropped()
            || error.is_io_error()
            || error.is_timeout()
            || matches!(error.code(), Some("READONLY" | "MASTERDOWN" | "LOADING"));
        if moved {
            self.current.lock().await.take();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_urls_parse_and_bad_ones_are_refused() {
        let url = SentinelUrl::parse("redis+sentinel://:p%40ss@h1:26380,h2/mymaster/3")
            .unwrap()
            .unwrap();
        assert_eq!(
            url.sentinels,
            [("h1".to_owned(), 26380), ("h2".to_owned(), 26379)]
        );
        assert_eq!(url.service, "mymaster");
        assert_eq!(url.db, 3);
        assert_eq!(url.password.as_deref(), Some("p@ss"));
        assert_eq!(url.username, None);
        assert!(!url.is_tls());
        let tls = SentinelUrl::parse("rediss+sentinel://ada:pw@h:1/svc")
            .unwrap()
            .unwrap();
        assert!(tls.is_tls() && tls.username.as_deref() == Some("ada"));
        assert!(SentinelUrl::parse("redis://h:6379/").unwrap().is_none());
        for bad in [
            "redis+sentinel://h1",
            "redis+sentinel://h1:x/svc",
            "redis+sentinel:///svc",
            "redis+sentinel://h1:1/",
            "redis+sentinel://h1:1/svc/x",
            "redis+sentinel://:%zz@h1:1/svc",
        ] {
            assert!(SentinelUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
