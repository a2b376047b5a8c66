//! A remote, multi-user Google MCP server (Drive, Gmail, Calendar): each
//! person signs in with their own Google account (OpenID Connect: the user
//! is the verified ID token's issuer and subject) through this server's
//! authorization server and gets tools that act on their account only.
//! Sign-in, tokens, sessions, limits and secrets come from the mcp-auth
//! crates (through `mcp-auth-app`); this crate holds the tools, the Google
//! API calls, the text handling and the configuration.

pub mod google;
pub mod text;
pub mod tools;

use mcp_auth_app::{
    App, AppConfig, AppError, AuthServer, ProviderApi, ProviderSetup, Quirks, Settings,
    SubjectSource, ToolSetup, UpstreamLogin,
};
use mcp_auth_pkce::Provider;
use mcp_auth_testkit::google::{CLIENT_ID, CLIENT_SECRET, GoogleDouble};
use mcp_auth_vault::KeyMaterial;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use secrecy::SecretString;

use crate::google::Google;
use crate::tools::{CALENDAR, DRIVE, GMAIL, GMAIL_SEND_SCOPE, GoogleTools, SCOPE_MAP, TOOL_SCOPES};

/// The settings this server reads (environment over the `--config` file).
pub fn setting_names() -> Vec<&'static str> {
    let mut names = AppConfig::SETTINGS.to_vec();
    names.extend(["GOOGLE_CLIENT_ID", "GOOGLE_CLIENT_SECRET"]);
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
    /// The embedded Google double, when running without Google
    /// credentials.
    pub double: Option<GoogleDouble>,
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

/// Starts the server on `listener` with `settings`: against Google when
/// `GOOGLE_CLIENT_ID` and `GOOGLE_CLIENT_SECRET` are set, otherwise against
/// the embedded double (loudly).
pub async fn start(
    settings: &Settings,
    listener: tokio::net::TcpListener,
) -> Result<Running, StartError> {
    start_with(settings, listener, None).await
}

/// [`start`], against `double` when no Google credentials are set (a
/// double that outlives a restart, for tests).
pub async fn start_with(
    settings: &Settings,
    listener: tokio::net::TcpListener,
    double: Option<GoogleDouble>,
) -> Result<Running, StartError> {
    let mut problems = Vec::new();
    let real = match (
        settings.get("GOOGLE_CLIENT_ID"),
        settings.get("GOOGLE_CLIENT_SECRET"),
    ) {
        (Some(id), Some(secret)) => Some((id.to_owned(), SecretString::from(secret.to_owned()))),
        (None, None) => None,
        (Some(_), None) => {
            problems.push("set GOOGLE_CLIENT_SECRET too (from the Google Cloud console)".into());
            None
        }
        (None, Some(_)) => {
            problems.push("set GOOGLE_CLIENT_ID too (from the Google Cloud console)".into());
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
    let (setup, api, double, vault_dir) = match real {
        Some((id, secret)) => (
            ProviderSetup::new(Provider::google(), id, Some(secret)),
            ProviderApi::new("Google", "https://www.googleapis.com"),
            None,
            None,
        ),
        None => {
            let double = match double {
                Some(double) => {
                    double.allow_redirect_uri(&config.redirect_uri());
                    double
                }
                None => GoogleDouble::start(&[&config.redirect_uri()]).await,
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
            // The double is an OpenID provider found by discovery.
            let provider = Provider::discover("google", &double.base)
                .await
                .map_err(|e| StartError::Config(vec![format!("the Google double: {e}")]))?;
            (
                ProviderSetup::new(provider, CLIENT_ID, Some(SecretString::from(CLIENT_SECRET))),
                ProviderApi::new("Google", double.base.clone()),
                Some(double),
                dir,
            )
        }
    };
    let api = api.map_err(|e| StartError::Config(vec![format!("HTTP client: {e}")]))?;
    let url = config.resource();
    let issuer = config.public_url.clone();
    let mut tool_setup = ToolSetup::new(
        [DRIVE, GMAIL, GMAIL_SEND_SCOPE, CALENDAR],
        [DRIVE, GMAIL, CALENDAR],
        [],
        [],
    )
    .resource_name("Google MCP");
    tool_setup.tool_names = GoogleTools::names();
    for (tool, scope) in TOOL_SCOPES {
        tool_setup = tool_setup.tool_scopes(*tool, [*scope]);
    }
    let app = App::build(
        config,
        listener,
        setup,
        |client, vault| {
            let mut login = UpstreamLogin::builder(client, vault)
                .display_name("Google")
                .namespace("google")
                .subject(SubjectSource::IdToken)
                .base_scopes(["openid", "email"])
                .quirks(Quirks::google());
            for (ours, theirs) in SCOPE_MAP {
                login = login.scope(*ours, theirs.iter().copied());
            }
            login.build()
        },
        tool_setup,
    )
    .await?;
    let rmcp = StreamableHttpServerConfig::default().with_allowed_hosts(app.allowed_hosts());
    let tools = GoogleTools::new(Google::new(api));
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
