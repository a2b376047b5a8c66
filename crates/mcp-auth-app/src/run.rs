//! Starting a server: the provider credentials, the throwaway vault of the
//! no-account mode, the rmcp service, the task that serves, and the
//! binary's command line. What both example servers would otherwise write
//! twice.

use std::path::PathBuf;
use std::sync::Arc;

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use secrecy::SecretString;

use mcp_auth_core::{ConfigProblem, ConfigProblems};

use crate::{App, AppConfig, AppError, AuthServer, Settings};

/// Why a server did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// Settings are missing or wrong (each names its variable).
    #[error("configuration:\n{0}")]
    Config(ConfigProblems),
    /// Assembly failed (a wrong vault key, a store down, ...).
    #[error(transparent)]
    App(#[from] AppError),
    /// Binding or serving failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A provider's registration from `<PREFIX>_CLIENT_ID` and
/// `<PREFIX>_CLIENT_SECRET` (`console` says where they come from), and
/// the [`AppConfig`]: `Some` credentials when both are set, `None` when
/// neither is (no-account mode: `MCP_VAULT_KEY` becomes optional). Every
/// problem of both at once.
pub fn provider_config(
    settings: &Settings,
    prefix: &str,
    console: &str,
) -> Result<(AppConfig, Option<(String, SecretString)>), StartError> {
    let (id, secret) = (
        format!("{prefix}_CLIENT_ID"),
        format!("{prefix}_CLIENT_SECRET"),
    );
    let mut problems = ConfigProblems::new();
    let credentials = match (settings.get(&id), settings.get(&secret)) {
        (Some(i), Some(s)) => Some((i.to_owned(), SecretString::from(s.to_owned()))),
        (None, None) => None,
        (Some(_), None) => {
            problems.push(ConfigProblem::new(
                secret,
                format!("not set, but {id} is (both come from {console})"),
            ));
            None
        }
        (None, Some(_)) => {
            problems.push(ConfigProblem::new(
                id,
                format!("not set, but {secret} is (both come from {console})"),
            ));
            None
        }
    };
    let key_required = credentials.is_some() || !problems.is_empty();
    match AppConfig::from_settings(settings, key_required) {
        Ok(config) if problems.is_empty() => Ok((config, credentials)),
        Ok(_) => Err(StartError::Config(problems)),
        Err(more) => {
            problems.extend(more);
            Err(StartError::Config(problems))
        }
    }
}

impl AppConfig {
    /// With no `MCP_VAULT_KEY`: a generated key, and a vault and data
    /// directory in a temporary directory (gone with the returned guard),
    /// for the no-account mode.
    pub fn throwaway_vault_unless_keyed(
        &mut self,
    ) -> Result<Option<tempfile::TempDir>, StartError> {
        if self.vault_key.is_some() {
            return Ok(None);
        }
        let dir = tempfile::tempdir()?;
        self.vault_dir = dir.path().join("vault");
        self.data_dir = dir.path().join("data");
        self.vault_key = Some(mcp_auth_vault::KeyMaterial::generate().map_err(AppError::from)?);
        Ok(Some(dir))
    }
}

/// A server serving in a task; dropping it stops the server (the listener
/// closes). `D` is the provider double of the no-account mode.
#[derive(Debug)]
pub struct Serving<D> {
    /// The MCP endpoint (`{public_url}/mcp`).
    pub url: String,
    /// The issuer (the public origin).
    pub issuer: String,
    /// The provider double, when running without credentials.
    pub double: Option<D>,
    /// The authorization server (operator actions).
    pub auth_server: AuthServer,
    /// Started by [`shutdown`](Self::shutdown); `/readyz` answers 503 from
    /// then on.
    pub drain: mcp_auth_axum::Drain,
    /// Where the admin listener (`MCP_ADMIN_LISTEN`: `/metrics`,
    /// `/healthz`, `/readyz`) is bound, when it is on.
    pub admin_addr: Option<std::net::SocketAddr>,
    sessions: mcp_auth_axum::McpSessions,
    task: Option<tokio::task::JoinHandle<()>>,
    _vault_dir: Option<tempfile::TempDir>,
}

impl<D> Serving<D> {
    /// The emergency switch, for the whole fleet sharing this server's
    /// stores: [`AuthServer::revoke_everything`] (grants, provider tokens,
    /// browser sessions, signing keys) and every MCP session. Everyone must
    /// sign in again; in the other processes, access tokens stop working
    /// within `MCP_KEY_RELOAD_SECONDS` + `MCP_TOKEN_CACHE_SECONDS`.
    /// How many grants were revoked.
    pub async fn revoke_everything(&self) -> Result<usize, AppError> {
        let grants = self.auth_server.revoke_everything().await?;
        self.sessions
            .revoke_everything()
            .await
            .map_err(|e| AppError::Store(e.to_string()))?;
        Ok(grants)
    }

    /// Drains: stops accepting, answers what arrives with 503, lets the
    /// requests in progress finish (at most the drain timeout, 25 s), then
    /// returns.
    pub async fn shutdown(mut self) {
        self.drain.start();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl<D> Drop for Serving<D> {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl App {
    /// Serves the rmcp `tools` (streamable HTTP, sessions, the public host
    /// accepted) in a task.
    pub fn spawn<H, D>(
        self,
        tools: H,
        double: Option<D>,
        vault_dir: Option<tempfile::TempDir>,
    ) -> Result<Serving<D>, AppError>
    where
        H: rmcp::ServerHandler + Clone + Send + Sync + 'static,
    {
        // A fleet (REDIS_URL) answers MCP statelessly: the transport's
        // sessions live in one process's memory, and behind a proxy that
        // spreads requests the next one may reach another process. Each
        // request then stands alone (JSON answers; no server-to-client
        // stream), so any process answers any request.
        let fleet = self.is_fleet();
        let rmcp = StreamableHttpServerConfig::default()
            .with_allowed_hosts(self.allowed_hosts())
            .with_legacy_session_mode(!fleet)
            .with_json_response(fleet);
        let mcp = StreamableHttpService::new(
            move || Ok(tools.clone()),
            Arc::new(LocalSessionManager::default()),
            rmcp,
        );
        let auth_server = self.auth_server().clone();
        let sessions = self.mcp_sessions().clone();
        let url = self.resource_url();
        let issuer = auth_server.issuer().to_owned();
        let drain = mcp_auth_axum::Drain::new();
        let admin_addr = match self.admin_listen() {
            Some(addr) => Some(crate::admin::spawn(
                addr,
                auth_server.clone(),
                drain.clone(),
            )?),
            None => None,
        };
        let router = self
            .router(mcp)?
            .merge(crate::health::router(auth_server.clone(), drain.clone()));
        let listener = self.into_listener();
        let serving = drain.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = mcp_auth_axum::serve(listener, router).drain(serving).await {
                tracing::error!("the server stopped: {e}");
            }
        });
        Ok(Serving {
            url,
            issuer,
            double,
            auth_server,
            drain,
            admin_addr,
            sessions,
            task: Some(task),
            _vault_dir: vault_dir,
        })
    }
}

/// The binary's side: command line, logs, the listening socket.
pub mod cli {
    use super::*;

    /// `--config FILE` (or `-h`/`--help`, which prints `usage` and exits).
    pub fn config_argument(usage: &str) -> Result<Option<PathBuf>, String> {
        let mut args = std::env::args().skip(1);
        let mut config = None;
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--config" => {
                    config = Some(PathBuf::from(args.next().ok_or("--config needs a file")?))
                }
                "-h" | "--help" => {
                    println!("{usage}");
                    std::process::exit(0);
                }
                other => return Err(format!("unknown argument {other:?}\n\n{usage}")),
            }
        }
        Ok(config)
    }

    /// Logs to stderr, `RUST_LOG` or `info`.
    pub fn init_logging() {
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "info".into()),
            )
            .with_writer(std::io::stderr)
            .init();
    }

    /// Binds `MCP_LISTEN` (default `127.0.0.1:8790`).
    pub async fn bind(settings: &Settings) -> Result<tokio::net::TcpListener, String> {
        let listen = settings
            .get("MCP_LISTEN")
            .unwrap_or("127.0.0.1:8790")
            .to_owned();
        tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|e| format!("MCP_LISTEN {listen}: {e}"))
    }

    /// The banner of the no-account mode.
    pub fn double_banner(provider: &str, users: &str) -> String {
        let upper = provider.to_uppercase();
        format!(
            "\n  ************************************************************\n  \
             NO {upper} CREDENTIALS: serving an EMBEDDED {upper} DOUBLE.\n  \
             Sign in as a test user: {users}. No password.\n  \
             Nothing here touches the real {provider}. Set {upper}_CLIENT_ID\n  \
             and {upper}_CLIENT_SECRET to serve the real one.\n  \
             ************************************************************\n"
        )
    }
}
