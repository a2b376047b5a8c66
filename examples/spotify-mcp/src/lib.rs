//! A remote, multi-user Spotify MCP server: each person signs in with
//! their own Spotify account through this server's authorization server and
//! gets tools that act on their Spotify only. Everything about sign-in,
//! tokens, sessions, limits and secrets comes from the mcp-auth crates
//! (through `mcp-auth-app`); this crate holds the tools, the Spotify Web API
//! calls and the configuration.

pub mod spotify;
pub mod tools;

use mcp_auth_app::{
    App, AppConfig, ProviderApi, ProviderSetup, Quirks, Serving, Settings, SubjectSource,
    ToolSetup, UpstreamLogin, provider_config,
};
use mcp_auth_pkce::Provider;
use mcp_auth_testkit::spotify::{CLIENT_ID, CLIENT_SECRET, SpotifyDouble};
use secrecy::SecretString;

pub use mcp_auth_app::StartError;

use crate::spotify::Spotify;
use crate::tools::{PLAYBACK, PLAYLISTS, READ, SCOPE_MAP, SpotifyTools, TOOL_SCOPES};

/// A running server (stops when dropped).
pub type Running = Serving<SpotifyDouble>;

/// The settings this server reads (environment over the `--config` file).
pub fn setting_names() -> Vec<&'static str> {
    let mut names = AppConfig::SETTINGS.to_vec();
    names.extend(["SPOTIFY_CLIENT_ID", "SPOTIFY_CLIENT_SECRET"]);
    names
}

/// Starts the server on `listener` with `settings`: against Spotify when
/// `SPOTIFY_CLIENT_ID` and `SPOTIFY_CLIENT_SECRET` are set, otherwise
/// against the embedded double.
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
    let (mut config, credentials) =
        provider_config(settings, "SPOTIFY", "the Spotify developer dashboard")?;
    let (setup, api, subject, double, vault_dir) = match credentials {
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
            let provider = Provider::new(
                "spotify",
                double.authorization_endpoint(),
                double.token_endpoint(),
            );
            (
                ProviderSetup::new(provider, CLIENT_ID, Some(SecretString::from(CLIENT_SECRET))),
                ProviderApi::new("Spotify", double.base.clone()),
                SubjectSource::user_info(double.me_endpoint(), "id"),
                Some(double),
                config.throwaway_vault_unless_keyed()?,
            )
        }
    };
    let api = api.map_err(|e| StartError::Config(vec![format!("HTTP client: {e}")]))?;
    let mut tool_setup = ToolSetup::new([READ, PLAYBACK, PLAYLISTS], [READ], [READ], [])
        .resource_name("Spotify MCP");
    tool_setup.tool_names = SpotifyTools::names();
    for (tool, scope) in TOOL_SCOPES {
        tool_setup = tool_setup.tool_scopes(*tool, [*scope]);
    }
    let login = |client, vault| {
        let mut login = UpstreamLogin::builder(client, vault)
            .display_name("Spotify")
            .namespace("spotify")
            .subject(subject)
            .quirks(Quirks::spotify());
        for (ours, theirs) in SCOPE_MAP {
            login = login.scope(*ours, theirs.iter().copied());
        }
        login.build()
    };
    let app = App::build(config, listener, setup, login, tool_setup).await?;
    let tools = SpotifyTools::new(Spotify::new(api));
    Ok(app.spawn(tools, double, vault_dir)?)
}
