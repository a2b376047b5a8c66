//! A remote, multi-user Google MCP server (Drive, Gmail, Calendar): each
//! person signs in with their own Google account (OpenID Connect: the user
//! is the verified ID token's issuer and subject) through this server's
//! authorization server and gets tools that act on their account only.
//! Sign-in, tokens, sessions, limits and secrets come from the mcp-auth
//! crates (through `mcp-auth-app`); this crate holds the provider profile,
//! the tools, the Google API calls and the text handling.

pub mod google;
pub mod text;
pub mod tools;

use mcp_auth_app::{Endpoints, ProviderProfile, ProviderQuirks, Serving, Settings, SubjectSource};
use mcp_auth_pkce::Provider;

pub use mcp_auth_app::StartError;

use crate::google::Google;
use crate::tools::{GoogleTools, SCOPES};

/// The no-account mode's Google double (`()` without the `no-account`
/// feature).
#[cfg(feature = "no-account")]
pub type Double = mcp_auth_testkit::google::GoogleDouble;
/// The no-account mode's Google double (`()` without the `no-account`
/// feature).
#[cfg(not(feature = "no-account"))]
pub type Double = ();

/// A running server (stops when dropped).
pub type Running = Serving<Double>;

/// Google: its endpoints, the person named by the verified ID token, its
/// quirks (offline access, incremental consent), our scopes and theirs,
/// and the double that stands in for it.
pub fn profile() -> ProviderProfile<Double> {
    let profile = ProviderProfile::new(
        "Google",
        Endpoints::Known(Provider::google()),
        "https://www.googleapis.com",
    )
    .console("the Google Cloud console")
    .subject(SubjectSource::IdToken)
    .base_scopes(["openid", "email"])
    .quirks(ProviderQuirks::google())
    .scopes(SCOPES);
    #[cfg(feature = "no-account")]
    let profile = profile
        .no_account("alice@example.com or bob@example.com", no_account::start)
        .shared_double(no_account::stand_in);
    profile
}

/// The settings this server reads (environment over the `--config` file).
pub fn setting_names() -> Vec<String> {
    profile().setting_names()
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
    double: Option<Double>,
) -> Result<Running, StartError> {
    profile()
        .start(settings, listener, double, |api| {
            GoogleTools::new(Google::new(api))
        })
        .await
}

#[cfg(feature = "no-account")]
mod no_account {
    use mcp_auth_app::{Endpoints, StandIn};
    use mcp_auth_testkit::google::{CLIENT_ID, CLIENT_SECRET, GoogleDouble};

    /// The double (reused when given), accepting `redirect_uri`; an OpenID
    /// provider found by discovery.
    pub(crate) async fn start(
        redirect_uri: String,
        reuse: Option<GoogleDouble>,
        listen: Option<std::net::SocketAddr>,
    ) -> Result<(GoogleDouble, StandIn), String> {
        let double = match reuse {
            Some(double) => {
                double.allow_redirect_uri(&redirect_uri);
                double
            }
            None => GoogleDouble::start_on(listen, &[&redirect_uri]).await?,
        };
        let stand_in = stand_in(&double.base);
        Ok((double, stand_in))
    }

    /// What the double at `base` (this process's, or another's:
    /// `MCP_DOUBLE_URL`) stands in for: an OpenID provider found by
    /// discovery.
    pub(crate) fn stand_in(base: &str) -> StandIn {
        let endpoints = Endpoints::Discover {
            name: "google".into(),
            issuer: base.to_owned(),
        };
        StandIn::new(endpoints, base, CLIENT_ID, CLIENT_SECRET)
    }
}
