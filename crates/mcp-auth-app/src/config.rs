//! The settings every server built with this crate shares.

use std::net::SocketAddr;
use std::path::PathBuf;

use mcp_auth_vault::KeyMaterial;

use mcp_auth_core::{ConfigProblem, ConfigProblems};

use crate::Settings;

/// Where the server is, where its vault is and with which key, and
/// whether it shares Redis with a fleet. `Debug` leaves the key out.
#[non_exhaustive]
pub struct AppConfig {
    /// The public origin clients reach (`MCP_PUBLIC_URL`, e.g.
    /// `https://mcp.example.com`): the issuer; the MCP endpoint is
    /// `{public_url}/mcp`. Default: `http://{listen}`.
    pub public_url: String,
    /// The address to bind (`MCP_LISTEN`, default `127.0.0.1:8790`).
    pub listen: SocketAddr,
    /// The vault key (`MCP_VAULT_KEY`, 32 bytes in base64: `openssl rand
    /// -base64 32`). `None` only when the caller allowed a missing key.
    pub vault_key: Option<KeyMaterial>,
    /// The vault directory (`MCP_VAULT_DIR`, default `./mcp-vault`), unless
    /// Redis holds the vault.
    pub vault_dir: PathBuf,
    /// Where one process keeps grants, refresh tokens, consents and
    /// registered clients across restarts (`MCP_DATA_DIR`, default
    /// `./mcp-data`), unless Redis holds them.
    pub data_dir: PathBuf,
    /// Redis for grants, sessions, limits, pending sign-ins and the vault
    /// (`REDIS_URL`); unset: one process, memory stores, the vault in a
    /// file.
    pub redis_url: Option<String>,
    /// TLS material for a `rediss://` Redis beyond the system roots.
    pub redis_tls: RedisTlsFiles,
    /// `REDIS_WAIT_REPLICAS` (default 0): how many replicas must have a
    /// redeemed code, a rotated refresh token or a revocation before the
    /// answer (Redis `WAIT`, 500 ms); fewer is a 503. See docs/deploy.md.
    pub redis_wait_replicas: usize,
    /// Whose address the per-address limits and the audit log see:
    /// `MCP_TRUSTED_PROXIES` (comma-separated CIDR ranges of the proxies in
    /// front, e.g. `10.0.0.0/8,::1`; unset: the TCP peer) and
    /// `MCP_CLIENT_IP_HEADER` (`cf-connecting-ip`, `fly-client-ip`,
    /// `x-real-ip` or `true-client-ip`, read from trusted proxies only;
    /// unset: `Forwarded` / `X-Forwarded-For`).
    pub client_address: mcp_auth_axum::ClientAddressPolicy,
    /// How often the signing keys are reloaded from the vault
    /// (`MCP_KEY_RELOAD_SECONDS`, default 60) and how long a verified
    /// token is cached (`MCP_TOKEN_CACHE_SECONDS`, default 60): together
    /// the longest an access token keeps working in another process of a
    /// fleet after the emergency switch.
    pub key_reload: std::time::Duration,
    /// See [`key_reload`](Self::key_reload).
    pub token_cache: std::time::Duration,
    /// The admin listener (`MCP_ADMIN_LISTEN`, e.g. `127.0.0.1:9464`;
    /// unset: none): `/metrics` in the Prometheus text format, `/healthz`
    /// and `/readyz`. Never on the public listener; bind it to an address
    /// only the monitoring reaches.
    pub admin_listen: Option<SocketAddr>,
}

/// Files for TLS to Redis: `REDIS_CA_FILE` (PEM: the CA of a private
/// Redis; when set only it is trusted, not the system roots), and
/// `REDIS_CLIENT_CERT` with `REDIS_CLIENT_KEY` (PEM) for a server that asks
/// clients for a certificate. All optional; they need a `rediss://` URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisTlsFiles {
    /// `REDIS_CA_FILE`.
    pub ca_file: Option<PathBuf>,
    /// `REDIS_CLIENT_CERT`.
    pub client_cert: Option<PathBuf>,
    /// `REDIS_CLIENT_KEY`.
    pub client_key: Option<PathBuf>,
}

impl RedisTlsFiles {
    /// Whether any file is set.
    pub fn is_empty(&self) -> bool {
        self.ca_file.is_none() && self.client_cert.is_none() && self.client_key.is_none()
    }
}

impl std::fmt::Debug for AppConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppConfig")
            .field("public_url", &self.public_url)
            .field("listen", &self.listen)
            .field(
                "vault_key",
                &self.vault_key.as_ref().map(|_| mcp_auth_core::REDACTED),
            )
            .field("vault_dir", &self.vault_dir)
            .field("data_dir", &self.data_dir)
            .field("redis", &self.redis_url.is_some())
            .field("redis_tls", &self.redis_tls)
            .field("redis_wait_replicas", &self.redis_wait_replicas)
            .field("client_address", &self.client_address)
            .field("key_reload", &self.key_reload)
            .field("token_cache", &self.token_cache)
            .field("admin_listen", &self.admin_listen)
            .finish()
    }
}

impl AppConfig {
    /// The settings this reads.
    pub const SETTINGS: &'static [&'static str] = &[
        "MCP_PUBLIC_URL",
        "MCP_LISTEN",
        "MCP_VAULT_KEY",
        "MCP_VAULT_DIR",
        "MCP_DATA_DIR",
        "REDIS_URL",
        "REDIS_WAIT_REPLICAS",
        "MCP_TRUSTED_PROXIES",
        "MCP_KEY_RELOAD_SECONDS",
        "MCP_TOKEN_CACHE_SECONDS",
        "MCP_CLIENT_IP_HEADER",
        "MCP_ADMIN_LISTEN",
        "REDIS_CA_FILE",
        "REDIS_CLIENT_CERT",
        "REDIS_CLIENT_KEY",
    ];

    /// Reads and checks the settings; every problem at once. With
    /// `key_required` false a missing `MCP_VAULT_KEY` is allowed (the
    /// caller supplies a development key).
    pub fn from_settings(settings: &Settings, key_required: bool) -> Result<Self, ConfigProblems> {
        let mut problems = ConfigProblems::new();
        let listen = match settings
            .get("MCP_LISTEN")
            .unwrap_or("127.0.0.1:8790")
            .parse()
        {
            Ok(addr) => Some(addr),
            Err(_) => {
                problems.push(ConfigProblem::new(
                    "MCP_LISTEN",
                    "not an address like 127.0.0.1:8790",
                ));
                None
            }
        };
        let public_url = match (settings.get("MCP_PUBLIC_URL"), listen) {
            (Some(url), _) => {
                let trimmed = url.trim_end_matches('/');
                match mcp_auth_http::check_configured_url(trimmed) {
                    Ok(parsed) if parsed.path() == "/" && parsed.query().is_none() => {
                        Some(trimmed.to_owned())
                    }
                    Ok(_) => {
                        problems.push(ConfigProblem::new(
                            "MCP_PUBLIC_URL",
                            "the origin only (https://mcp.example.com), no path",
                        ));
                        None
                    }
                    Err(e) => {
                        problems.push(ConfigProblem::new("MCP_PUBLIC_URL", e.to_string()));
                        None
                    }
                }
            }
            (None, Some(addr)) => Some(format!("http://{addr}")),
            (None, None) => None,
        };
        let vault_key = match settings.get("MCP_VAULT_KEY") {
            Some(encoded) => match KeyMaterial::from_base64(encoded) {
                Ok(key) => Some(key),
                Err(e) => {
                    problems.push(ConfigProblem::new("MCP_VAULT_KEY", e.to_string()));
                    None
                }
            },
            None if key_required => {
                problems.push(ConfigProblem::new(
                    "MCP_VAULT_KEY",
                    "not set (32 random bytes in base64: openssl rand -base64 32)",
                ));
                None
            }
            None => None,
        };
        let redis_url = settings.get("REDIS_URL").map(str::to_owned);
        if let Some(url) = &redis_url
            && ![
                "redis://",
                "rediss://",
                "redis+sentinel://",
                "rediss+sentinel://",
                "redis+cluster://",
                "rediss+cluster://",
            ]
            .iter()
            .any(|scheme| url.starts_with(scheme))
        {
            problems.push(ConfigProblem::new(
                "REDIS_URL",
                "must start with redis://, rediss://, redis+sentinel://, rediss+sentinel://, \
                 redis+cluster:// or rediss+cluster://",
            ));
        }
        let path = |name: &str| settings.get(name).map(PathBuf::from);
        let redis_tls = RedisTlsFiles {
            ca_file: path("REDIS_CA_FILE"),
            client_cert: path("REDIS_CLIENT_CERT"),
            client_key: path("REDIS_CLIENT_KEY"),
        };
        if !redis_tls.is_empty()
            && !redis_url
                .as_deref()
                .is_some_and(|u| u.starts_with("rediss:") || u.starts_with("rediss+"))
        {
            problems.push(ConfigProblem::new(
                "REDIS_CA_FILE",
                "TLS files (REDIS_CA_FILE, REDIS_CLIENT_CERT, REDIS_CLIENT_KEY) need REDIS_URL=rediss://…",
            ));
        }
        let redis_wait_replicas = match settings.get("REDIS_WAIT_REPLICAS").map(str::parse) {
            None => 0,
            Some(Ok(n)) => n,
            Some(Err(_)) => {
                problems.push(ConfigProblem::new(
                    "REDIS_WAIT_REPLICAS",
                    "a number of replicas (0: do not wait)",
                ));
                0
            }
        };
        let trusted = match settings.get("MCP_TRUSTED_PROXIES") {
            None => Vec::new(),
            Some(list) => {
                mcp_auth_axum::ClientAddressPolicy::parse_ranges(list).unwrap_or_else(|e| {
                    problems.push(ConfigProblem::new("MCP_TRUSTED_PROXIES", e));
                    Vec::new()
                })
            }
        };
        let mut client_address = mcp_auth_axum::ClientAddressPolicy::behind(trusted.clone());
        if let Some(header) = settings.get("MCP_CLIENT_IP_HEADER") {
            let header = header.trim().to_ascii_lowercase();
            if ![
                "cf-connecting-ip",
                "fly-client-ip",
                "x-real-ip",
                "true-client-ip",
            ]
            .contains(&header.as_str())
            {
                problems.push(ConfigProblem::new(
                    "MCP_CLIENT_IP_HEADER",
                    "one of cf-connecting-ip, fly-client-ip, x-real-ip, true-client-ip",
                ));
            } else if trusted.is_empty() {
                problems.push(ConfigProblem::new(
                    "MCP_CLIENT_IP_HEADER",
                    "read only from trusted proxies: set MCP_TRUSTED_PROXIES too",
                ));
            } else if let Ok(name) = axum::http::HeaderName::from_bytes(header.as_bytes()) {
                client_address = client_address.platform_header(name);
            }
        }
        let mut seconds = |name: &'static str| match settings.get(name).map(str::parse::<u64>) {
            None => std::time::Duration::from_secs(60),
            Some(Ok(n)) if n > 0 => std::time::Duration::from_secs(n),
            Some(_) => {
                problems.push(ConfigProblem::new(name, "a number of seconds, at least 1"));
                std::time::Duration::from_secs(60)
            }
        };
        let key_reload = seconds("MCP_KEY_RELOAD_SECONDS");
        let token_cache = seconds("MCP_TOKEN_CACHE_SECONDS");
        let admin_listen = match settings
            .get("MCP_ADMIN_LISTEN")
            .map(str::parse::<SocketAddr>)
        {
            None => None,
            Some(Ok(addr)) => Some(addr),
            Some(Err(_)) => {
                problems.push(ConfigProblem::new(
                    "MCP_ADMIN_LISTEN",
                    "an address and port, e.g. 127.0.0.1:9464",
                ));
                None
            }
        };
        match (listen, public_url) {
            (Some(listen), Some(public_url)) if problems.is_empty() => Ok(Self {
                public_url,
                listen,
                vault_key,
                vault_dir: PathBuf::from(settings.get("MCP_VAULT_DIR").unwrap_or("./mcp-vault")),
                data_dir: PathBuf::from(settings.get("MCP_DATA_DIR").unwrap_or("./mcp-data")),
                redis_url,
                redis_tls,
                redis_wait_replicas,
                client_address,
                key_reload,
                token_cache,
                admin_listen,
            }),
            _ => Err(problems),
        }
    }

    /// The MCP endpoint: `{public_url}/mcp`.
    pub fn resource(&self) -> String {
        format!("{}/mcp", self.public_url)
    }

    /// The provider redirect URI to register: `{public_url}/login`.
    pub fn redirect_uri(&self) -> String {
        format!("{}/login", self.public_url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_sources(
            AppConfig::SETTINGS,
            |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()),
            None,
        )
        .unwrap()
    }

    #[test]
    fn defaults_and_every_problem_at_once() {
        let c = AppConfig::from_settings(&settings(&[]), false).unwrap();
        assert_eq!(c.public_url, "http://127.0.0.1:8790");
        assert_eq!(c.resource(), "http://127.0.0.1:8790/mcp");
        assert!(c.vault_key.is_none() && c.redis_url.is_none());

        let err = AppConfig::from_settings(
            &settings(&[
                ("MCP_LISTEN", "nowhere"),
                ("MCP_VAULT_KEY", "short"),
                ("REDIS_URL", "http://x"),
            ]),
            true,
        )
        .unwrap_err();
        assert_eq!(err.0.len(), 3, "{err}");
        assert_eq!(err.0[0].setting(), "MCP_LISTEN");
        assert_eq!(err.0[1].setting(), "MCP_VAULT_KEY");
        assert_eq!(err.0[2].setting(), "REDIS_URL");

        let err = AppConfig::from_settings(
            &settings(&[("MCP_PUBLIC_URL", "http://mcp.example.com/x")]),
            true,
        )
        .unwrap_err();
        assert_eq!(err.0.len(), 2, "{err}");
        assert_eq!(err.0[0].setting(), "MCP_PUBLIC_URL", "{err}");
        assert_eq!(err.0[1].setting(), "MCP_VAULT_KEY", "{err}");
    }
}
