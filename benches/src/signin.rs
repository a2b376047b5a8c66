//! What the token-endpoint benches (`benches/benches/oauth_server.rs`,
//! `benches/examples/token_instructions.rs`) do before they measure: a
//! public client registered, and the `/authorize` request it makes.

use mcp_auth_testkit::browser::Pkce;

/// The redirect URI every bench client registers (never visited: the
/// benches read the code from the redirect).
pub const REDIRECT: &str = "http://localhost:1/cb";

/// Registers a public client named `name` at `issuer`: its `client_id`.
///
/// # Panics
/// When the registration fails.
#[allow(clippy::expect_used)]
pub async fn register(http: &reqwest::Client, issuer: &str, name: &str) -> String {
    let registered: serde_json::Value = http
        .post(format!("{issuer}/register"))
        .json(
            &serde_json::json!({"client_name": name, "redirect_uris": [REDIRECT],
                                  "token_endpoint_auth_method": "none"}),
        )
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("registration");
    registered["client_id"]
        .as_str()
        .expect("a client_id")
        .to_owned()
}

/// The `/authorize` URL of a code request for `resource` with PKCE.
///
/// # Panics
/// When `issuer` is not a URL.
#[allow(clippy::expect_used)]
pub fn authorize_url(issuer: &str, resource: &str, client_id: &str, pkce: &Pkce) -> String {
    let mut url = url::Url::parse(&format!("{issuer}/authorize")).expect("issuer URL");
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("code_challenge", &pkce.challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("resource", resource);
    url.to_string()
}
