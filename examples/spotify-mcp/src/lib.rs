//! A remote, multi-user Spotify MCP server: each person signs in with
//! their own Spotify account through this server's authorization server and
//! gets tools that act on their Spotify only. Everything about sign-in,
//! tokens, sessions, limits and secrets comes from the mcp-auth crates
//! (through `mcp-auth-app`); this crate holds the tools, the Spotify Web API
//! calls and the configuration.

pub mod spotify;
pub mod tools;

use mcp_auth_app::{
    App, AppConfig, AppError, AuthServer, ProviderApi, ProviderSetup, Quirks, Settings,
    SubjectSource, ToolSetup, UpstreamLogin,
};
use mcp_auth_pkce::Provider;
use mcp_auth_testkit::spotify::{CLIENT_ID, CLIENT_SECRET, SpotifyDouble};
use mcp_auth_vault::KeyMaterial;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use secrecy::SecretString;

use crate::spotify::Spotify;
use crate::tools::{PLAYBACK, PLAYLISTS, READ, SCOPE_MAP, SpotifyTools, TOOL_SCOPES};

/// The settings this server reads (environment over the `--config` file).
pub fn setting_names() -> Vec<&'static str> {
    let mut names = AppConfig::SETTINGS.to_vec();
    names.extend(["SPOTIFY_CLIENT_ID", "SPOTIFY_CLIENT_SECRET"]);
    names
}

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Settings are missing or wrong (each names its variable).
    #[error("configuration:\n  - {}", .0.join("\n  - "))]
    Config(Vec<String>),
    /// Assembly failed (a wrong vault key, a store down, ...).
    #[error(transparent)]
    App(#[from] AppError),
    /// Binding or serving failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A running server.
#[derive(Debug)]
pub struct Running {
    /// The MCP endpoint (`{public_url}/mcp`).
    pub url: String,
    /// The issuer (the public origin).
    pub issuer: String,
    /// The embedded Spotify double, when running without Spotify
    /// credentials.
    pub double: Option<SpotifyDouble>,
    /// The authorization server (operator actions).
    pub auth_server: AuthServer,
    task: tokio::task::JoinHandle<()>,
    _vault_dir: Option<tempfile::TempDir>,
}

impl Drop for Running {
    /// Stops serving (the listener closes).
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the server on `listener` with `settings`: against Spotify when
/// `SPOTIFY_CLIENT_ID` and `SPOTIFY_CLIENT_SECRET` are set, otherwise
/// against the embedded double (loudly).
pub async fn start(
    settings: &Settings,
    listener: tokio::net::TcpListener,
) -> Result<Running, StartError> {
    start_with(settings, listener, None).await
}

/// [`start`], against `double` when no Spotify credentials are set (a
/// double that outlives a restart, for tests).
pub async fn start_with(
    settings: &Settings,
    listener: tokio::net::TcpListener,
    double: Option<SpotifyDouble>,
) -> Result<Running, StartError> {
    let mut problems = Vec::new();
    let real = match (
        settings.get("SPOTIFY_CLIENT_ID"),
        settings.get("SPOTIFY_CLIENT_SECRET"),
    ) {
        (Some(id), Some(secret)) => Some((id.to_owned(), SecretString::from(secret.to_owned()))),
        (None, None) => None,
        (Some(_), None) => {
            problems.push(
                "set SPOTIFY_CLIENT_SECRET too (from the Spotify developer dashboard)".into(),
            );
            None
        }
        (None, Some(_)) => {
            problems
                .push("set SPOTIFY_CLIENT_ID too (from the Spotify developer dashboard)".into());
            None
        }
    };
    let mut config =
        match AppConfig::from_settings(settings, real.is_some() || !problems.is_empty()) {
            Ok(config) if problems.is_empty() => config,
            Ok(_) => return Err(StartError::Config(problems)),
            Err(more) => {
                problems.extend(more.0);
                return Err(StartError::Config(problems));
            }
        };
    let (setup, api, subject, double, vault_dir) = match real {
        Some((id, secret)) => (
            ProviderSetup::new(Provider::spotify(), id, Some(secret)),
            ProviderApi::new("Spotify", "https://api.spotify.com"),
            SubjectSource::spotify(),
            None,
            None,
        ),
        None => {
            let double = match double {
                Some(double) => {
                    double.allow_redirect_uri(&config.redirect_uri());
                    double
                }
                None => SpotifyDouble::start(&[&config.redirect_uri()]).await,
            };
            // No key given: a throwaway vault (the double's users only).
            let dir = if config.vault_key.is_none() {
                let dir = tempfile::tempdir()?;
                config.vault_dir = dir.path().join("vault");
                config.vault_key = Some(KeyMaterial::generate().map_err(AppError::from)?);
                Some(dir)
            } else {
                None
            };
            (
                ProviderSetup::new(
                    Provider::new(
                        "spotify",
                        double.authorization_endpoint(),
                        double.token_endpoint(),
                    ),
                    CLIENT_ID,
                    Some(SecretString::from(CLIENT_SECRET)),
                ),
                ProviderApi::new("Spotify", double.base.clone()),
                SubjectSource::user_info(double.me_endpoint(), "id"),
                Some(double),
                dir,
            )
        }
    };
    let api = api.map_err(|e| StartError::Config(vec![format!("HTTP client: {e}")]))?;
    let url = config.resource();
    let issuer = config.public_url.clone();
    let mut tool_setup = ToolSetup::new([READ, PLAYBACK, PLAYLISTS], [READ], [READ], [])
        .resource_name("Spotify MCP");
    tool_setup.tool_names = SpotifyTools::names();
    for (tool, scope) in TOOL_SCOPES {
        tool_setup = tool_setup.tool_scopes(*tool, [*scope]);
    }
    let app = App::build(
        config,
        listener,
        setup,
        |client, vault| {
            let mut login = UpstreamLogin::builder(client, vault)
                .display_name("Spotify")
                .namespace("spotify")
                .subject(subject)
                .quirks(Quirks::spotify());
            for (ours, theirs) in SCOPE_MAP {
                login = login.scope(*ours, theirs.iter().copied());
            }
            login.build()
        },
        tool_setup,
    )
    .await?;
    let rmcp = StreamableHttpServerConfig::default().with_allowed_hosts(app.allowed_hosts());
    let tools = SpotifyTools::new(Spotify::new(api));
    let mcp = StreamableHttpService::new(
        move || Ok(tools.clone()),
        std::sync::Arc::new(LocalSessionManager::default()),
        rmcp,
    );
    let auth_server = app.auth_server().clone();
    let router = app.router(mcp)?;
    let listener = app.into_listener();
    let task = tokio::spawn(async move {
        if let Err(e) = mcp_auth_app::serve(listener, router).await {
            tracing::error!("the server stopped: {e}");
        }
    });
    Ok(Running {
        url,
        issuer,
        double,
        auth_server,
        task,
        _vault_dir: vault_dir,
    })
}
