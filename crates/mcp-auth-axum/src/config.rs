//! The protected resource's configuration.

use std::collections::HashMap;

use crate::ConfigError;

/// Scope that a challenge never advertises: asking for refresh tokens is the
/// client's business with its authorization server, not something a resource
/// server should prompt for (MCP authorization, scope selection).
pub const OFFLINE_ACCESS: &str = "offline_access";

/// Default cap on a request body the layer reads to find the JSON-RPC method
/// and tool name: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// Default cap on the number of messages in one JSON-RPC batch: 32.
pub const DEFAULT_MAX_BATCH: usize = 32;

/// What the layers need to know about the protected MCP server.
///
/// Build it with [`ResourceConfig::builder`]; [`ResourceConfigBuilder::build`]
/// validates everything at once.
#[derive(Debug, Clone)]
pub struct ResourceConfig {
    pub(crate) resource: String,
    pub(crate) resource_path: String,
    pub(crate) metadata_url: String,
    pub(crate) hsts: bool,
    pub(crate) authorization_servers: Vec<String>,
    pub(crate) scopes_supported: Vec<String>,
    pub(crate) required_scopes: Vec<String>,
    pub(crate) challenge_scopes: Vec<String>,
    pub(crate) tool_scopes: HashMap<String, Vec<String>>,
    pub(crate) resource_name: Option<String>,
    pub(crate) max_body_bytes: usize,
    pub(crate) max_batch: usize,
}

impl ResourceConfig {
    /// Starts a configuration for the MCP endpoint at `resource` (its public
    /// URL, e.g. `https://mcp.example.com/mcp`), whose tokens come from
    /// `authorization_server` (an issuer URL).
    pub fn builder(
        resource: impl Into<String>,
        authorization_server: impl Into<String>,
    ) -> ResourceConfigBuilder {
        ResourceConfigBuilder {
            resource: resource.into(),
            authorization_servers: vec![authorization_server.into()],
            scopes_supported: None,
            required_scopes: Vec::new(),
            challenge_scopes: None,
            tool_scopes: HashMap::new(),
            resource_name: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_batch: DEFAULT_MAX_BATCH,
        }
    }

    /// The resource URL: the audience every accepted token must carry.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The authorization servers (issuer URLs) whose tokens the resource
    /// accepts, as advertised in the metadata; the first is the one
    /// [`ResourceConfig::policy`] and [`ResourceConfig::introspection`] use.
    pub fn authorization_servers(&self) -> &[String] {
        &self.authorization_servers
    }

    /// The JWT acceptance policy this resource implies: tokens from the
    /// first authorization server, for this resource as audience. Give it
    /// to [`mcp_auth_jwks::Validator`] so issuer and audience are written
    /// once; tighten it further (`leeway`, claim rules) as needed. The
    /// required scopes stay here: the layer checks them, and answers with
    /// the `scope` the client must ask for.
    pub fn policy(&self) -> mcp_auth_jwks::Policy {
        mcp_auth_jwks::Policy::new(&*self.authorization_servers[0], &*self.resource)
    }

    /// An RFC 7662 introspection verifier for this resource: tokens must
    /// be for this resource and (from `iss`) from the first authorization
    /// server. `endpoint` is its introspection endpoint; `client_id` and
    /// `client_secret` authenticate this server to it.
    pub fn introspection(
        &self,
        endpoint: &str,
        client_id: &str,
        client_secret: impl Into<String>,
    ) -> mcp_auth_token::IntrospectionBuilder {
        mcp_auth_token::IntrospectionVerifier::builder(
            endpoint,
            &self.resource,
            client_id,
            client_secret,
        )
        .issuer(&self.authorization_servers[0])
    }

    /// The `Host` values clients use to reach this resource, for the MCP
    /// service's DNS-rebinding check: the resource URL's host, with its port
    /// when the URL names one. rmcp accepts only loopback hosts unless told
    /// otherwise, so a server deployed at `mcp.example.com` answers every
    /// request `403 Host header is not allowed` after every check here
    /// passed. Give rmcp this list:
    /// `StreamableHttpServerConfig::default().with_allowed_hosts(config.allowed_hosts())`.
    /// Behind a proxy that rewrites `Host`, add the name the proxy sends.
    pub fn allowed_hosts(&self) -> Vec<String> {
        let Ok(url) = url::Url::parse(&self.resource) else {
            return Vec::new();
        };
        let host = url.host_str().unwrap_or_default();
        match url.port() {
            Some(port) => vec![format!("{host}:{port}")],
            None => vec![host.to_owned()],
        }
    }

    /// The path the MCP endpoint is served on (the resource URL's path).
    pub fn resource_path(&self) -> &str {
        &self.resource_path
    }

    /// The URL of this resource's RFC 9728 metadata document, as advertised
    /// in `resource_metadata` of every challenge.
    pub fn metadata_url(&self) -> &str {
        &self.metadata_url
    }

    /// The paths the metadata document is served on: the RFC 9728
    /// path-suffixed form first, then the root form when they differ.
    pub fn metadata_paths(&self) -> Vec<String> {
        let root = "/.well-known/oauth-protected-resource".to_owned();
        if self.resource_path == "/" {
            vec![root]
        } else {
            vec![format!("{root}{}", self.resource_path), root]
        }
    }

    /// Whether `scope` is one of this resource's: required, a tool's, or
    /// listed in the metadata.
    pub fn knows_scope(&self, scope: &str) -> bool {
        self.scopes_supported.iter().any(|s| s == scope)
            || self.required_scopes.iter().any(|s| s == scope)
            || self.tool_scopes.values().flatten().any(|s| s == scope)
    }

    /// The scopes the 401 challenge names.
    pub fn challenge_scopes(&self) -> &[String] {
        &self.challenge_scopes
    }

    /// Scopes every request needs.
    pub fn required_scopes(&self) -> &[String] {
        &self.required_scopes
    }

    /// Every scope a call of `tool` needs: the scopes every request needs,
    /// then the tool's own.
    pub fn scopes_for_tool(&self, tool: &str) -> Vec<String> {
        let mut scopes = self.required_scopes.clone();
        if let Some(extra) = self.tool_scopes.get(tool) {
            for scope in extra {
                if !scopes.contains(scope) {
                    scopes.push(scope.clone());
                }
            }
        }
        scopes
    }

    /// The scopes `tool` needs beyond the required ones.
    pub fn tool_only_scopes(&self, tool: &str) -> &[String] {
        self.tool_scopes.get(tool).map_or(&[], Vec::as_slice)
    }

    /// The maximum request body the layer reads.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }
}

/// Builder for [`ResourceConfig`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until it is built"]
pub struct ResourceConfigBuilder {
    resource: String,
    authorization_servers: Vec<String>,
    scopes_supported: Option<Vec<String>>,
    required_scopes: Vec<String>,
    challenge_scopes: Option<Vec<String>>,
    tool_scopes: HashMap<String, Vec<String>>,
    resource_name: Option<String>,
    max_body_bytes: usize,
    max_batch: usize,
}

impl ResourceConfigBuilder {
    /// Adds another authorization server whose tokens the resource accepts.
    pub fn authorization_server(mut self, issuer: impl Into<String>) -> Self {
        self.authorization_servers.push(issuer.into());
        self
    }

    /// Scopes every request needs (also the `scope` of the 401 challenge).
    pub fn require_scopes<S: Into<String>>(mut self, scopes: impl IntoIterator<Item = S>) -> Self {
        self.required_scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Scopes a call of `tool` needs on top of the required ones. A call
    /// without them is refused with 403 `insufficient_scope` (MCP step-up).
    pub fn tool_scopes<S: Into<String>>(
        mut self,
        tool: impl Into<String>,
        scopes: impl IntoIterator<Item = S>,
    ) -> Self {
        self.tool_scopes
            .insert(tool.into(), scopes.into_iter().map(Into::into).collect());
        self
    }

    /// The scopes the 401 challenge names (default: the required scopes):
    /// what an MCP client asks for at its first sign-in. Name the
    /// least-privilege defaults (e.g. the read scopes) and leave the rest
    /// to step-up, which names them in its 403.
    pub fn challenge_scopes<S: Into<String>>(
        mut self,
        scopes: impl IntoIterator<Item = S>,
    ) -> Self {
        self.challenge_scopes = Some(scopes.into_iter().map(Into::into).collect());
        self
    }

    /// `scopes_supported` in the metadata. Default: the required scopes and
    /// every tool's scopes. MCP clients that find no scope in the 401 ask
    /// for these: list only the least-privilege defaults when some scopes
    /// should be asked for only on step-up.
    pub fn scopes_supported<S: Into<String>>(
        mut self,
        scopes: impl IntoIterator<Item = S>,
    ) -> Self {
        self.scopes_supported = Some(scopes.into_iter().map(Into::into).collect());
        self
    }

    /// `resource_name` in the metadata.
    pub fn resource_name(mut self, name: impl Into<String>) -> Self {
        self.resource_name = Some(name.into());
        self
    }

    /// The largest request body read to find the method and tool (default
    /// [`DEFAULT_MAX_BODY_BYTES`]); larger bodies get 413.
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// The most messages in one JSON-RPC batch (default
    /// [`DEFAULT_MAX_BATCH`]); larger batches get 400.
    pub fn max_batch(mut self, n: usize) -> Self {
        self.max_batch = n;
        self
    }

    /// Validates and builds the configuration.
    pub fn build(self) -> Result<ResourceConfig, ConfigError> {
        let resource = checked_url("resource", &self.resource)?;
        if resource.query().is_some() {
            return Err(ConfigError::Url {
                setting: "resource",
                reason: "the resource URL must not have a query",
            });
        }
        let hsts = resource.scheme() == "https";
        let resource_path = resource.path().to_owned();
        if !routable(&resource_path) {
            return Err(ConfigError::Url {
                setting: "resource",
                reason: "the resource path must not lie under /.well-known/ or have a \
                         segment starting with ':' or '*' (route syntax)",
            });
        }
        let origin = resource.origin().ascii_serialization();
        let suffix = if resource_path == "/" {
            ""
        } else {
            resource_path.as_str()
        };
        let metadata_url = format!("{origin}/.well-known/oauth-protected-resource{suffix}");
        // The resource identifier as the client will have it: no trailing
        // slash added for a root URL that was written without one.
        let resource_id = if resource_path == "/" && !self.resource.ends_with('/') {
            origin.clone()
        } else {
            resource.to_string()
        };

        if self.authorization_servers.is_empty() {
            return Err(ConfigError::Url {
                setting: "authorization_servers",
                reason: "at least one authorization server is required",
            });
        }
        let mut authorization_servers = Vec::new();
        for server in &self.authorization_servers {
            let url = checked_url("authorization_servers", server)?;
            if url.query().is_some() {
                return Err(ConfigError::Url {
                    setting: "authorization_servers",
                    reason: "an issuer URL must not have a query",
                });
            }
            authorization_servers.push(server.clone());
        }

        check_scopes("required_scopes", &self.required_scopes)?;
        let challenge_scopes = match self.challenge_scopes {
            Some(list) => {
                check_scopes("challenge_scopes", &list)?;
                list
            }
            None => self.required_scopes.clone(),
        };
        for scopes in self.tool_scopes.values() {
            check_scopes("tool_scopes", scopes)?;
        }
        let scopes_supported = match self.scopes_supported {
            Some(list) => {
                check_scopes("scopes_supported", &list)?;
                list
            }
            None => {
                let mut all = self.required_scopes.clone();
                let mut tools: Vec<_> = self.tool_scopes.iter().collect();
                tools.sort_by(|a, b| a.0.cmp(b.0));
                for (_, scopes) in tools {
                    for scope in scopes {
                        if !all.contains(scope) {
                            all.push(scope.clone());
                        }
                    }
                }
                all
            }
        };
        if self.max_body_bytes == 0 || self.max_body_bytes > 64 * 1024 * 1024 {
            return Err(ConfigError::Limit {
                setting: "max_body_bytes",
                reason: "must be between 1 byte and 64 MiB",
            });
        }
        if self.max_batch == 0 || self.max_batch > 1024 {
            return Err(ConfigError::Limit {
                setting: "max_batch",
                reason: "must be between 1 and 1024",
            });
        }
        Ok(ResourceConfig {
            resource: resource_id,
            resource_path,
            metadata_url,
            hsts,
            authorization_servers,
            scopes_supported,
            required_scopes: self.required_scopes,
            challenge_scopes,
            tool_scopes: self.tool_scopes,
            resource_name: self.resource_name,
            max_body_bytes: self.max_body_bytes,
            max_batch: self.max_batch,
        })
    }
}

/// The configured-URL rule of the HTTP seam
/// ([`mcp_auth_http::check_configured_url`]), as a [`ConfigError`].
pub(crate) fn checked_url(setting: &'static str, value: &str) -> Result<url::Url, ConfigError> {
    mcp_auth_http::check_configured_url(value).map_err(|refusal| ConfigError::Url {
        setting,
        reason: refusal.reason(),
    })
}

/// RFC 6749 section 3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
pub(crate) fn is_scope_token(scope: &str) -> bool {
    !scope.is_empty()
        && scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

fn check_scopes(setting: &'static str, scopes: &[String]) -> Result<(), ConfigError> {
    match scopes.iter().find(|s| !is_scope_token(s)) {
        Some(bad) => Err(ConfigError::Scope {
            setting,
            scope: bad.clone(),
        }),
        None => Ok(()),
    }
}

/// Whether `path` can be served as itself: an axum route pattern would read
/// `:x` and `*x` segments as captures, and `/.well-known/` holds the
/// metadata documents.
fn routable(path: &str) -> bool {
    !(path == "/.well-known"
        || path.starts_with("/.well-known/")
        || path
            .split('/')
            .any(|segment| segment.starts_with(':') || segment.starts_with('*')))
}
