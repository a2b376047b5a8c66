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
    App, AppConfig, ProviderApi, ProviderSetup, Quirks, Serving, Settings, SubjectSource,
    ToolSetup, UpstreamLogin, provider_config,
};
use mcp_auth_pkce::Provider;
use mcp_auth_testkit::google::{CLIENT_ID, CLIENT_SECRET, GoogleDouble};
use secrecy::SecretString;

pub use mcp_auth_app::StartError;

use crate::google::Google;
use crate::tools::{CALENDAR, DRIVE, GMAIL, GMAIL_SEND_SCOPE, GoogleTools, SCOPE_MAP, TOOL_SCOPES};

/// A running server (stops when dropped).
pub type Running = Serving<GoogleDouble>;

/// The settings this server reads (environment over the `--config` file).
pub fn setting_names() -> Vec<&'static str> {
    let mut names = AppConfig::SETTINGS.to_vec();
    names.extend(["GOOGLE_CLIENT_ID", "GOOGLE_CLIENT_SECRET"]);
    names
}

/// Starts the server on `listener` with `settings`: against Google when
/// `GOOGLE_CLIENT_ID` and `GOOGLE_CLIENT_SECRET` are set, otherwise against
/// the embedded double.
pub async fn start(
    settings: &Settings,
    listener: tokio::net::TcpListener,
) -> Result<Running, StartError> {
    start_with(settings, listener, None).await
}

/// [`start`], against `double` when no Google credentials are set.
pub async fn start_with(
    settings: &Settings,
    listener: tokio::net::TcpListener,
    double: Option<GoogleDouble>,
) -> Result<Running, StartError> {
    let (mut config, credentials) =
        provider_config(settings, "GOOGLE", "the Google Cloud console")?;
    let (setup, api, double, vault_dir) = match credentials {
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
            // The double is an OpenID provider found by discovery.
            let provider = Provider::discover("google", &double.base)
                .await
                .map_err(|e| StartError::Config(vec![format!("the Google double: {e}")]))?;
            (
                ProviderSetup::new(provider, CLIENT_ID, Some(SecretString::from(CLIENT_SECRET))),
                ProviderApi::new("Google", double.base.clone()),
                Some(double),
                config.throwaway_vault_unless_keyed()?,
            )
        }
    };
    let api = api.map_err(|e| StartError::Config(vec![format!("HTTP client: {e}")]))?;
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
    let login = |client, vault| {
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
    };
    let app = App::build(config, listener, setup, login, tool_setup).await?;
    let tools = GoogleTools::new(Google::new(api));
    Ok(app.spawn(tools, double, vault_dir)?)
}
