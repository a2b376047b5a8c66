//! Client settings from the environment, with a `KEY=VALUE` file beneath it.

use std::collections::HashMap;
use std::path::Path;

use mcp_auth_core::{ConfigProblem, ConfigProblems};
use secrecy::SecretString;

use crate::{OAuthError, RedirectUri};

/// A client's registration with one provider: `<PREFIX>_CLIENT_ID`,
/// `<PREFIX>_CLIENT_SECRET` (optional for public clients),
/// `<PREFIX>_REDIRECT_URI`, and optional `<PREFIX>_SCOPES` (space
/// separated), e.g. `SPOTIFY_CLIENT_ID`.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The client id.
    pub client_id: String,
    /// The client secret, if any.
    pub client_secret: Option<SecretString>,
    /// The redirect URI.
    pub redirect_uri: RedirectUri,
    /// Scopes to request (empty: the provider's defaults).
    pub scopes: Vec<String>,
}

impl ClientConfig {
    /// Reads the process environment, then `file` (if given) for what the
    /// environment does not set.
    pub fn from_env(prefix: &str, file: Option<&Path>) -> Result<Self, OAuthError> {
        let contents = match file {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
                OAuthError::Config(
                    ConfigProblem::new(
                        path.display().to_string(),
                        format!("cannot be read: {}", e.kind()),
                    )
                    .into(),
                )
            })?),
            None => None,
        };
        Self::from_sources(prefix, |k| std::env::var(k).ok(), contents.as_deref())
    }

    /// The same from an explicit lookup and file contents (for tests and for
    /// other configuration systems). Every problem is reported at once, each
    /// naming the variable to set.
    pub fn from_sources(
        prefix: &str,
        env: impl Fn(&str) -> Option<String>,
        file: Option<&str>,
    ) -> Result<Self, OAuthError> {
        let file: HashMap<String, String> = file
            .map(|text| {
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .filter_map(|l| l.split_once('='))
                    .map(|(k, v)| (k.trim().to_owned(), unquote(v.trim()).to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let get = |name: &str| -> Option<String> {
            env(name)
                .or_else(|| file.get(name).cloned())
                .filter(|v| !v.trim().is_empty())
        };
        let var = |suffix: &str| format!("{prefix}_{suffix}");
        let mut problems = ConfigProblems::new();
        let client_id = get(&var("CLIENT_ID"));
        if client_id.is_none() {
            problems.push(ConfigProblem::new(
                var("CLIENT_ID"),
                "not set (the client id from the provider's console)",
            ));
        }
        let redirect =
            match get(&var("REDIRECT_URI")) {
                None => {
                    problems.push(ConfigProblem::new(
                        var("REDIRECT_URI"),
                        "not set (the exact redirect URI registered with the provider)",
                    ));
                    None
                }
                Some(uri) => match RedirectUri::new(uri) {
                    Ok(r) => Some(r),
                    Err(OAuthError::Config(p)) => {
                        problems.extend(p.into_iter().map(|p| {
                            ConfigProblem::new(var("REDIRECT_URI"), p.reason().to_owned())
                        }));
                        None
                    }
                    Err(e) => {
                        problems.push(ConfigProblem::new(var("REDIRECT_URI"), e.to_string()));
                        None
                    }
                },
            };
        let scopes = get(&var("SCOPES"))
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        match (client_id, redirect) {
            (Some(client_id), Some(redirect_uri)) if problems.is_empty() => Ok(Self {
                client_id,
                client_secret: get(&var("CLIENT_SECRET")).map(SecretString::from),
                redirect_uri,
                scopes,
            }),
            _ => Err(OAuthError::Config(problems)),
        }
    }
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_wins_over_the_file_and_problems_are_reported_together() {
        let file = "SPOTIFY_CLIENT_ID=from-file\nSPOTIFY_CLIENT_SECRET=\"file-secret\"\n# c\nSPOTIFY_REDIRECT_URI=http://127.0.0.1:8080/cb\n";
        let env = |k: &str| (k == "SPOTIFY_CLIENT_ID").then(|| "from-env".to_owned());
        let c = ClientConfig::from_sources("SPOTIFY", env, Some(file)).unwrap();
        assert_eq!(c.client_id, "from-env");
        assert_eq!(c.redirect_uri.as_str(), "http://127.0.0.1:8080/cb");
        assert!(!format!("{c:?}").contains("file-secret"));

        let err = ClientConfig::from_sources("GOOGLE", |_| None, None).unwrap_err();
        let OAuthError::Config(problems) = err else {
            panic!("config error expected")
        };
        assert_eq!(problems.0.len(), 2, "{problems:?}");
        assert!(
            problems.0[0].setting() == "GOOGLE_CLIENT_ID"
                && problems.0[1].setting() == "GOOGLE_REDIRECT_URI"
        );

        let env = |k: &str| match k {
            "G_CLIENT_ID" => Some("id".to_owned()),
            "G_REDIRECT_URI" => Some("http://example.com/cb".to_owned()),
            _ => None,
        };
        let OAuthError::Config(problems) = ClientConfig::from_sources("G", env, None).unwrap_err()
        else {
            panic!("config error expected")
        };
        assert!(
            problems.0[0].to_string().starts_with("G_REDIRECT_URI:"),
            "{problems:?}"
        );
    }
}
