//! A remote, multi-user Spotify MCP server: each person signs in with
//! their own Spotify account through this server's authorization server and
//! gets tools that act on their Spotify only. Everything about sign-in,
//! tokens, sessions, limits and secrets comes from the mcp-auth crates
//! (through `mcp-auth-app`); this crate holds the provider profile, the
//! tools and the Spotify Web API calls.

pub mod spotify;
pub mod tools;

use mcp_auth_app::{Endpoints, ProviderProfile, ProviderQuirks, Serving, Settings, SubjectSource};
use mcp_auth_pkce::Provider;

pub use mcp_auth_app::StartError;

use crate::spotify::Spotify;
use crate::tools::{SCOPES, SpotifyTools};

/// The no-account mode's Spotify double (`()` without the `no-account`
/// feature).
#[cfg(feature = "no-account")]
pub type Double = mcp_auth_testkit::spotify::SpotifyDouble;
/// The no-account mode's Spotify double (`()` without the `no-account`
/// feature).
#[cfg(not(feature = "no-account"))]
pub type Double = ();

/// A running server (stops when dropped).
pub type Running = Serving<Double>;

/// Spotify: its endpoints, who the person is (`/v1/me`), its quirks, our
/// scopes and theirs, and the double that stands in for it.
pub fn profile() -> ProviderProfile<Double> {
    let profile = ProviderProfile::new(
        "Spotify",
        Endpoints::Known(Provider::spotify()),
        "https://api.spotify.com",
    )
    .console("the Spotify developer dashboard")
    .subject(SubjectSource::spotify())
    .quirks(ProviderQuirks::spotify())
    .scopes(SCOPES);
    #[cfg(feature = "no-account")]
    let profile = profile
        .no_account("alice, bob (Premium) or carol (free)", no_account::start)
        .shared_double(no_account::stand_in);
    profile
}

/// The settings this server reads (environment over the `--config` file).
pub fn setting_names() -> Vec<String> {
    profile().setting_names()
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
    double: Option<Double>,
) -> Result<Running, StartError> {
    profile()
        .start(settings, listener, double, |api| {
            SpotifyTools::new(Spotify::new(api))
        })
        .await
}

#[cfg(feature = "no-account")]
mod no_account {
    use mcp_auth_app::{Endpoints, StandIn, SubjectSource};
    use mcp_auth_pkce::Provider;
    use mcp_auth_testkit::spotify::{CLIENT_ID, CLIENT_SECRET, SpotifyDouble};

    /// The double (reused when given; on `listen` when given), accepting
    /// `redirect_uri`.
    pub(crate) async fn start(
        redirect_uri: String,
        reuse: Option<SpotifyDouble>,
        listen: Option<std::net::SocketAddr>,
    ) -> Result<(SpotifyDouble, StandIn), String> {
        let double = match reuse {
            Some(double) => {
                double.allow_redirect_uri(&redirect_uri);
                double
            }
            None => SpotifyDouble::start_on(listen, &[&redirect_uri]).await?,
        };
        let stand_in = stand_in(&double.base);
        Ok((double, stand_in))
    }

    /// What the double at `base` (this process's, or another's:
    /// `MCP_DOUBLE_URL`) stands in for.
    pub(crate) fn stand_in(base: &str) -> StandIn {
        let endpoints = Endpoints::Known(Provider::new(
            "spotify",
            format!("{base}/authorize"),
            format!("{base}/api/token"),
        ));
        StandIn::new(endpoints, base, CLIENT_ID, CLIENT_SECRET)
            .subject(SubjectSource::user_info(format!("{base}/v1/me"), "id"))
    }
}
