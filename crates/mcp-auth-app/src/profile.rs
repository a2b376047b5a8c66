//! A provider profile: everything a server in front of one provider needs
//! to know about it (where it is, who the person is, its scopes, its
//! quirks, its API, the double that stands in for it without an account),
//! so that a server is its profile, its tools and [`ProviderProfile::start`].

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use mcp_auth_core::{BoxFuture, ConfigProblem, ConfigProblems};
use mcp_auth_pkce::Provider;
use secrecy::SecretString;

use crate::{
    App, ProviderApi, ProviderQuirks, ProviderSetup, Serving, Settings, StartError, SubjectSource,
    ToolSetup, UpstreamLogin, cli, provider_config,
};

/// A start refused for one problem.
fn problem(
    setting: impl Into<std::borrow::Cow<'static, str>>,
    reason: impl Into<std::borrow::Cow<'static, str>>,
) -> StartError {
    StartError::Config(ConfigProblem::new(setting, reason).into())
}

/// Which tools one of our scopes opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guards {
    /// Every request needs it.
    EveryTool,
    /// These tools need it (a client without it gets 403
    /// `insufficient_scope` and signs in again for more).
    Tools(&'static [&'static str]),
}

/// One of our scopes: the provider's scopes it stands for and the tools it
/// guards, declared in one table next to the tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope {
    /// Our scope, as clients ask for it (e.g. `spotify:read`).
    pub name: &'static str,
    /// The provider's scopes it asks for.
    pub provider_scopes: &'static [&'static str],
    /// What it opens.
    pub guards: Guards,
    /// Asked for when a client names no scope.
    pub default: bool,
    /// What it lets an application do, in plain words, for the consent
    /// and connected-apps pages.
    pub description: Option<&'static str>,
}

impl Scope {
    /// A scope every request needs (asked for by default).
    pub const fn every_tool(name: &'static str, provider_scopes: &'static [&'static str]) -> Self {
        Self {
            name,
            provider_scopes,
            guards: Guards::EveryTool,
            default: true,
            description: None,
        }
    }

    /// A scope only `tools` need (asked for on step-up, unless
    /// [`by_default`](Self::by_default)).
    pub const fn tools(
        name: &'static str,
        provider_scopes: &'static [&'static str],
        tools: &'static [&'static str],
    ) -> Self {
        Self {
            name,
            provider_scopes,
            guards: Guards::Tools(tools),
            default: false,
            description: None,
        }
    }

    /// Asked for at the first sign-in too.
    pub const fn by_default(mut self) -> Self {
        self.default = true;
        self
    }

    /// What it lets an application do, in plain words ("Control what is
    /// playing"), shown to the person on the consent page.
    pub const fn described(mut self, text: &'static str) -> Self {
        self.description = Some(text);
        self
    }
}

/// Where a provider's endpoints come from.
#[derive(Debug, Clone)]
pub enum Endpoints {
    /// Known in advance (Google's, Spotify's presets).
    Known(Provider),
    /// OpenID Connect discovery from an issuer URL, at start.
    Discover {
        /// A short name for logs.
        name: String,
        /// The issuer.
        issuer: String,
    },
}

impl Endpoints {
    async fn provider(&self) -> Result<Provider, StartError> {
        match self {
            Self::Known(provider) => Ok(provider.clone()),
            Self::Discover { name, issuer } => {
                Provider::discover(name, issuer).await.map_err(|e| {
                    problem(
                        format!("{name} issuer"),
                        format!("discovery at {issuer}: {e}"),
                    )
                })
            }
        }
    }
}

/// What the no-account mode serves in the provider's place.
#[non_exhaustive]
pub struct StandIn {
    /// The double's endpoints.
    pub endpoints: Endpoints,
    /// The double's API base URL.
    pub api_base: String,
    /// Who the person is, when the double says it differently.
    pub subject: Option<SubjectSource>,
    /// The registration the double knows.
    pub client_id: String,
    /// Its secret.
    pub client_secret: SecretString,
}

impl std::fmt::Debug for StandIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandIn")
            .field("endpoints", &self.endpoints)
            .field("api_base", &self.api_base)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl StandIn {
    /// A double at `endpoints` with its API at `api_base`, knowing the
    /// client `client_id` / `client_secret`.
    pub fn new(
        endpoints: Endpoints,
        api_base: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        Self {
            endpoints,
            api_base: api_base.into(),
            subject: None,
            client_id: client_id.into(),
            client_secret: SecretString::from(client_secret.into()),
        }
    }

    /// Who the person is, at the double.
    pub fn subject(mut self, subject: SubjectSource) -> Self {
        self.subject = Some(subject);
        self
    }
}

/// Starts (or, given one, reuses) the double for a redirect URI, on the
/// address `MCP_DOUBLE_LISTEN` names (a free loopback port when unset).
type StartDouble<D> = Arc<
    dyn Fn(
            String,
            Option<D>,
            Option<std::net::SocketAddr>,
        ) -> BoxFuture<'static, Result<(D, StandIn), String>>
        + Send
        + Sync,
>;

/// What another process's double at a base URL (`MCP_DOUBLE_URL`) stands
/// in for.
type RemoteDouble = Arc<dyn Fn(&str) -> StandIn + Send + Sync>;

/// The tools an rmcp server offers, by name (for per-tool limits and the
/// scope table's check).
pub trait McpTools: rmcp::ServerHandler + Clone + Send + Sync + 'static {
    /// The tools' names.
    fn tool_names(&self) -> Vec<String>;
}

/// The names of the tools `router` routes (for [`McpTools::tool_names`]).
pub fn tool_names<S: Send + Sync + 'static>(
    router: &rmcp::handler::server::router::tool::ToolRouter<S>,
) -> Vec<String> {
    router
        .list_all()
        .iter()
        .map(|tool| tool.name.to_string())
        .collect()
}

/// Everything about one provider. `D` is the double of the no-account
/// mode (`()` when there is none).
pub struct ProviderProfile<D = ()> {
    display: String,
    namespace: String,
    prefix: String,
    console: String,
    endpoints: Endpoints,
    api_base: String,
    subject: SubjectSource,
    base_scopes: Vec<String>,
    quirks: ProviderQuirks,
    scopes: &'static [Scope],
    resource_name: String,
    no_account: Option<(StartDouble<D>, String)>,
    shared_double: Option<RemoteDouble>,
    http: Option<Arc<dyn mcp_auth_http::HttpClient>>,
}

impl<D> std::fmt::Debug for ProviderProfile<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderProfile")
            .field("display", &self.display)
            .field("api_base", &self.api_base)
            .field("scopes", &self.scopes)
            .field("no_account", &self.no_account.is_some())
            .finish_non_exhaustive()
    }
}

impl<D: Clone + Send + Sync + 'static> ProviderProfile<D> {
    /// The provider shown as `display` (its lower case names subjects,
    /// `spotify:alice`; its upper case prefixes the credentials' settings,
    /// `SPOTIFY_CLIENT_ID`), at `endpoints`, with its API at `api_base`.
    /// The person is named by the ID token until [`subject`](Self::subject)
    /// says otherwise.
    pub fn new(display: &str, endpoints: Endpoints, api_base: &str) -> Self {
        Self {
            display: display.to_owned(),
            namespace: display.to_lowercase(),
            prefix: display.to_uppercase(),
            console: format!("{display}'s developer console"),
            endpoints,
            api_base: api_base.to_owned(),
            subject: SubjectSource::IdToken,
            base_scopes: Vec::new(),
            quirks: ProviderQuirks::default(),
            scopes: &[],
            resource_name: format!("{display} MCP"),
            no_account: None,
            shared_double: None,
            http: None,
        }
    }

    /// Where the operator gets the client id and secret (for messages).
    pub fn console(mut self, console: &str) -> Self {
        self.console = console.to_owned();
        self
    }

    /// Who the person is at the provider.
    pub fn subject(mut self, subject: SubjectSource) -> Self {
        self.subject = subject;
        self
    }

    /// Provider scopes asked for at every sign-in (e.g. `openid email`).
    pub fn base_scopes<S: Into<String>>(mut self, scopes: impl IntoIterator<Item = S>) -> Self {
        self.base_scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// The provider's quirks ([`ProviderQuirks::google`], [`ProviderQuirks::spotify`]).
    pub fn quirks(mut self, quirks: ProviderQuirks) -> Self {
        self.quirks = quirks;
        self
    }

    /// Our scopes, each with the provider's and the tools it guards.
    pub fn scopes(mut self, scopes: &'static [Scope]) -> Self {
        self.scopes = scopes;
        self
    }

    /// Everything sent to the provider goes through `http` (default
    /// [`provider_http`](crate::provider_http); tests give a recording one).
    pub fn http(mut self, http: Arc<dyn mcp_auth_http::HttpClient>) -> Self {
        self.http = Some(http);
        self
    }

    /// The name in the resource's metadata (default "`display` MCP").
    pub fn resource_name(mut self, name: &str) -> Self {
        self.resource_name = name.to_owned();
        self
    }

    /// The no-account mode: with no credentials set, `start` runs a double
    /// (given the redirect URI to accept, the double to reuse if the
    /// caller has one, and the address to listen on, `MCP_DOUBLE_LISTEN`)
    /// and signs people in there. `users` tells the banner whom to sign in
    /// as.
    pub fn no_account<F, Fut>(mut self, users: &str, start: F) -> Self
    where
        F: Fn(String, Option<D>, Option<std::net::SocketAddr>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(D, StandIn), String>> + Send + 'static,
    {
        let start: StartDouble<D> =
            Arc::new(move |uri, double, listen| Box::pin(start(uri, double, listen)));
        self.no_account = Some((start, users.to_owned()));
        self
    }

    /// A fleet in no-account mode: with `MCP_DOUBLE_URL` set (the base URL
    /// of the double one process of the fleet runs, on the address its
    /// `MCP_DOUBLE_LISTEN` names), a process starts no double of its own
    /// and signs people in at that one; `stand_in` says what the double at
    /// a base URL stands in for. The processes must share the public URL
    /// (the double accepts the redirect URI of the process that started
    /// it) and their stores (`REDIS_URL`, `MCP_VAULT_KEY`).
    pub fn shared_double<F>(mut self, stand_in: F) -> Self
    where
        F: Fn(&str) -> StandIn + Send + Sync + 'static,
    {
        self.shared_double = Some(Arc::new(stand_in));
        self
    }

    /// The settings this server reads: [`AppConfig::SETTINGS`](crate::AppConfig::SETTINGS),
    /// `<PREFIX>_CLIENT_ID`, `<PREFIX>_CLIENT_SECRET`, and with a
    /// no-account mode `MCP_DOUBLE_LISTEN` and `MCP_DOUBLE_URL`.
    pub fn setting_names(&self) -> Vec<String> {
        let mut names: Vec<String> = crate::AppConfig::SETTINGS
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        names.push(format!("{}_CLIENT_ID", self.prefix));
        names.push(format!("{}_CLIENT_SECRET", self.prefix));
        if self.no_account.is_some() {
            names.push("MCP_DOUBLE_LISTEN".to_owned());
            names.push("MCP_DOUBLE_URL".to_owned());
        }
        names
    }

    /// The tool setup the scope table describes, checked against `names`:
    /// a scope that names a tool the server does not have is an error.
    fn tool_setup(&self, names: Vec<String>) -> Result<ToolSetup, StartError> {
        let mut problems = ConfigProblems::new();
        let mut per_tool: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for scope in self.scopes {
            if let Guards::Tools(tools) = scope.guards {
                for tool in tools {
                    if !names.iter().any(|n| n == tool) {
                        problems.push(ConfigProblem::new(
                            format!("scope {}", scope.name),
                            format!("guards {tool:?}, which is not a tool of this server"),
                        ));
                    }
                    per_tool.entry(tool).or_default().push(scope.name);
                }
            }
        }
        if !problems.is_empty() {
            return Err(StartError::Config(problems));
        }
        let pick = |keep: fn(&Scope) -> bool| {
            self.scopes
                .iter()
                .filter(|s| keep(s))
                .map(|s| s.name)
                .collect::<Vec<_>>()
        };
        let mut setup = ToolSetup::new(
            pick(|_| true),
            pick(|s| s.default),
            pick(|s| s.guards == Guards::EveryTool),
            Vec::new(),
        )
        .resource_name(self.resource_name.clone());
        setup.tool_names = names;
        setup.scope_descriptions = self
            .scopes
            .iter()
            .filter_map(|s| Some((s.name.to_owned(), s.description?.to_owned())))
            .collect();
        for (tool, scopes) in per_tool {
            setup = setup.tool_scopes(tool, scopes);
        }
        Ok(setup)
    }

    /// Starts serving on `listener`: against the provider when its client
    /// id and secret are set, else against the no-account double (`double`
    /// reused when given). `tools` makes the server's tools from the
    /// provider's API client.
    pub async fn start<H: McpTools>(
        &self,
        settings: &Settings,
        listener: tokio::net::TcpListener,
        double: Option<D>,
        tools: impl FnOnce(ProviderApi) -> H,
    ) -> Result<Serving<D>, StartError> {
        let (mut config, credentials) = provider_config(settings, &self.prefix, &self.console)?;
        let (setup, api_base, subject, double, vault_dir) = match credentials {
            Some((id, secret)) => (
                ProviderSetup::new(self.endpoints.provider().await?, id, Some(secret)),
                self.api_base.clone(),
                self.subject.clone(),
                None,
                None,
            ),
            None => {
                let Some((start_double, _)) = &self.no_account else {
                    return Err(problem(
                        format!("{0}_CLIENT_ID, {0}_CLIENT_SECRET", self.prefix),
                        format!("not set (from {})", self.console),
                    ));
                };
                let (double, stand_in) = match settings.get("MCP_DOUBLE_URL") {
                    Some(url) => {
                        let Some(remote) = &self.shared_double else {
                            return Err(problem(
                                "MCP_DOUBLE_URL",
                                "this server's double cannot be shared",
                            ));
                        };
                        let url = url.trim_end_matches('/');
                        if !(url.starts_with("http://") || url.starts_with("https://")) {
                            return Err(problem(
                                "MCP_DOUBLE_URL",
                                "the base URL of another process's double, e.g. http://127.0.0.1:9700",
                            ));
                        }
                        (None, remote(url))
                    }
                    None => {
                        let listen = match settings.get("MCP_DOUBLE_LISTEN") {
                            None => None,
                            Some(addr) => Some(addr.parse().map_err(|_| {
                                problem(
                                    "MCP_DOUBLE_LISTEN",
                                    "an address and port, e.g. 127.0.0.1:9700",
                                )
                            })?),
                        };
                        let (double, stand_in) =
                            start_double(config.redirect_uri(), double, listen)
                                .await
                                .map_err(|e| problem(format!("the {} double", self.display), e))?;
                        (Some(double), stand_in)
                    }
                };
                let vault_dir = config.throwaway_vault_unless_keyed()?;
                (
                    ProviderSetup::new(
                        stand_in.endpoints.provider().await?,
                        stand_in.client_id,
                        Some(stand_in.client_secret),
                    ),
                    stand_in.api_base,
                    stand_in.subject.unwrap_or_else(|| self.subject.clone()),
                    double,
                    vault_dir,
                )
            }
        };
        let http = match &self.http {
            Some(http) => http.clone(),
            None => crate::provider_http().map_err(|e| problem("HTTP client", e.to_string()))?,
        };
        let api = ProviderApi::with_http(&self.display, api_base, http.clone());
        let setup = setup.http(http);
        let tools = tools(api);
        let tool_setup = self.tool_setup(tools.tool_names())?;
        let login = |client, vault, http| {
            let mut login = UpstreamLogin::builder(client, vault)
                .http(http)
                .display_name(&self.display)
                .namespace(&self.namespace)
                .subject(subject)
                .base_scopes(self.base_scopes.clone())
                .quirks(self.quirks.clone());
            for scope in self.scopes {
                login = login.scope(scope.name, scope.provider_scopes.iter().copied());
            }
            login.build()
        };
        let app = App::build(config, listener, setup, login, tool_setup).await?;
        Ok(app.spawn(tools, double, vault_dir)?)
    }

    /// The binary: `--config FILE`, logs, `MCP_LISTEN`, the banner of the
    /// no-account mode, then serving until Ctrl-C. Exits 1 with every
    /// problem named.
    pub async fn main<H: McpTools>(
        &self,
        tools: impl FnOnce(ProviderApi) -> H,
    ) -> std::process::ExitCode {
        cli::init_logging();
        let program = format!("{}-mcp", self.namespace);
        match self.run(&program, tools).await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{program}: {e}");
                std::process::ExitCode::FAILURE
            }
        }
    }

    fn usage(&self, program: &str) -> String {
        format!(
            "usage: {program} [--config FILE]\n       {program} admin revoke-everything [--config FILE]   (the emergency switch)\n       \
             {program} admin rotate-keys [--config FILE]\n       \
             {program} double [--config FILE]   (only the no-account double, on MCP_DOUBLE_LISTEN)\n\n\
             Settings come from the environment, then from FILE (KEY=VALUE lines):\n  \
             {p}_CLIENT_ID, {p}_CLIENT_SECRET  from {console}{double}\n  \
             MCP_PUBLIC_URL   the public origin, e.g. https://mcp.example.com (default http://MCP_LISTEN)\n  \
             MCP_LISTEN       the address to bind (default 127.0.0.1:8790)\n  \
             MCP_VAULT_KEY    32 random bytes in base64 (openssl rand -base64 32); required with {display}\n  \
             MCP_VAULT_DIR    the encrypted vault's directory (default ./mcp-vault)\n  \
             MCP_DATA_DIR     grants and refresh tokens of one process (default ./mcp-data)\n  \
             REDIS_URL        share grants, sessions, limits and the vault with a fleet (rediss:// for TLS,\n                  redis+sentinel://…/service for failover, redis+cluster://h:p,h:p for a cluster)\n  \
             MCP_ADMIN_LISTEN the admin listener, e.g. 127.0.0.1:9464: /metrics (Prometheus), /healthz, /readyz\n  \
             REDIS_CA_FILE    PEM CA of a private TLS Redis; REDIS_CLIENT_CERT, REDIS_CLIENT_KEY: a client certificate",
            p = self.prefix,
            console = self.console,
            display = self.display,
            double = if self.no_account.is_some() {
                " (unset: the embedded double)"
            } else {
                ""
            },
        )
    }

    /// `admin revoke-everything [--config FILE]`: the emergency switch
    /// for the fleet that shares this configuration's stores (Redis, or
    /// the data and vault directories of a single process, stopped).
    async fn admin<H: McpTools>(
        &self,
        program: &str,
        args: &[String],
        tools: impl FnOnce(ProviderApi) -> H,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let usage = format!(
            "usage: {program} admin revoke-everything [--config FILE]\n       \
             {program} admin rotate-keys [--config FILE]\n\n\
             revoke-everything: revokes every grant, the users' {display} tokens, every\n\
             session, and replaces the signing keys: everyone signs in again.\n\
             rotate-keys: the published next signing key starts signing and a new next key\n\
             is published; tokens signed before stay valid. The other processes of the\n\
             fleet follow within MCP_KEY_RELOAD_SECONDS.",
            display = self.display
        );
        let (command, file) = match args {
            [command] => (command.as_str(), None),
            [command, flag, file] if flag == "--config" => {
                (command.as_str(), Some(std::path::PathBuf::from(file)))
            }
            _ => return Err(usage.into()),
        };
        if !matches!(command, "revoke-everything" | "rotate-keys") {
            return Err(usage.into());
        }
        let settings = Settings::load(&self.setting_names(), file.as_deref())?;
        // Not serving: a listener of its own on a free loopback port.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let running = self.start(&settings, listener, None, tools).await?;
        if command == "rotate-keys" {
            running.auth_server.rotate_keys()?;
            println!(
                "rotated the signing keys; the other processes follow within MCP_KEY_RELOAD_SECONDS."
            );
            return Ok(());
        }
        let grants = running.revoke_everything().await?;
        println!(
            "revoked {grants} grants, the users' {} tokens and every session; the signing keys are new.",
            self.display
        );
        Ok(())
    }

    /// `double`: only the no-account double, on `MCP_DOUBLE_LISTEN`,
    /// accepting the redirect URI of `MCP_PUBLIC_URL`, until SIGTERM or
    /// SIGINT: the provider of a no-account fleet whose processes all set
    /// `MCP_DOUBLE_URL` (so that any of them can restart).
    async fn double(&self, args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
        let file = match args {
            [] => None,
            [flag, file] if flag == "--config" => Some(std::path::PathBuf::from(file)),
            _ => return Err("usage: double [--config FILE]".into()),
        };
        let settings = Settings::load(&self.setting_names(), file.as_deref())?;
        let Some((start_double, users)) = &self.no_account else {
            return Err(format!("{} has no double", self.display).into());
        };
        let listen = settings
            .get("MCP_DOUBLE_LISTEN")
            .ok_or("MCP_DOUBLE_LISTEN: not set (the address the double listens on)")?
            .parse()
            .map_err(|_| "MCP_DOUBLE_LISTEN: an address and port, e.g. 127.0.0.1:9700")?;
        let (config, _) = provider_config(&settings, &self.prefix, &self.console)?;
        let (double, stand_in) = start_double(config.redirect_uri(), None, Some(listen)).await?;
        eprintln!("{}", cli::double_banner(&self.display, users));
        println!(
            "{} double: {} (set MCP_DOUBLE_URL to it)",
            self.display, stand_in.api_base
        );
        let signal = mcp_auth_axum::shutdown_signal().await;
        eprintln!("{signal}: stopping");
        drop(double);
        Ok(())
    }

    async fn run<H: McpTools>(
        &self,
        program: &str,
        tools: impl FnOnce(ProviderApi) -> H,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        if args.first().map(String::as_str) == Some("admin") {
            return self.admin(program, &args[1..], tools).await;
        }
        if args.first().map(String::as_str) == Some("double") {
            return self.double(&args[1..]).await;
        }
        let file = cli::config_argument(&self.usage(program))?;
        let settings = Settings::load(&self.setting_names(), file.as_deref())?;
        let running = self
            .start(&settings, cli::bind(&settings).await?, None, tools)
            .await?;
        if let (Some(_), Some((_, users))) = (&running.double, &self.no_account) {
            eprintln!("{}", cli::double_banner(&self.display, users));
        }
        println!("{} MCP server: {}", self.display, running.url);
        println!("Connect an MCP client (the MCP Inspector, Claude, VS Code) to that URL.");
        let signal = mcp_auth_axum::shutdown_signal().await;
        eprintln!("{signal}: draining (at most 25 s)");
        running.shutdown().await;
        eprintln!("stopped");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCOPES: &[Scope] = &[
        Scope::every_tool("x:read", &["read"]),
        Scope::tools("x:write", &["write"], &["save", "delete"]),
        Scope::tools("x:mail", &["mail"], &["send"]).by_default(),
        Scope::tools("x:admin", &["admin"], &["delete"]),
    ];

    fn profile(scopes: &'static [Scope]) -> ProviderProfile {
        ProviderProfile::new(
            "Example",
            Endpoints::Discover {
                name: "x".into(),
                issuer: "https://login.example.com".into(),
            },
            "https://api.example.com",
        )
        .scopes(scopes)
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_scope_table_becomes_the_tool_setup() {
        let setup = profile(SCOPES)
            .tool_setup(names(&["list", "save", "delete", "send"]))
            .unwrap();
        assert_eq!(setup.scopes, ["x:read", "x:write", "x:mail", "x:admin"]);
        assert_eq!(setup.default_scopes, ["x:read", "x:mail"]);
        assert_eq!(setup.required_scopes, ["x:read"]);
        assert_eq!(setup.tool_names, ["list", "save", "delete", "send"]);
        let mut tool_scopes = setup.tool_scopes.clone();
        tool_scopes.sort();
        assert_eq!(
            tool_scopes,
            [
                ("delete".to_owned(), names(&["x:write", "x:admin"])),
                ("save".to_owned(), names(&["x:write"])),
                ("send".to_owned(), names(&["x:mail"])),
            ]
        );
    }

    #[test]
    fn a_scope_guarding_a_tool_the_server_lacks_stops_the_start() {
        let Err(StartError::Config(problems)) =
            profile(SCOPES).tool_setup(names(&["list", "save"]))
        else {
            panic!("accepted");
        };
        assert_eq!(problems.0.len(), 3, "{problems:?}");
        assert!(
            problems.0[0].reason().contains("\"delete\""),
            "{problems:?}"
        );
    }

    #[test]
    fn settings_are_named_after_the_provider() {
        let names = profile(SCOPES).setting_names();
        assert!(names.iter().any(|n| n == "EXAMPLE_CLIENT_ID"));
        assert!(names.iter().any(|n| n == "EXAMPLE_CLIENT_SECRET"));
        assert!(names.iter().any(|n| n == "MCP_PUBLIC_URL"));
    }

    #[tokio::test]
    async fn without_credentials_or_a_double_the_start_names_what_to_set() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let settings =
            Settings::from_sources(&profile(SCOPES).setting_names(), |_| None, None).unwrap();
        let Err(StartError::Config(problems)) = profile(SCOPES)
            .start(&settings, listener, None, |_| -> NoTools { unreachable!() })
            .await
        else {
            panic!("started");
        };
        assert!(
            problems.to_string().contains("EXAMPLE_CLIENT_ID")
                && problems.to_string().contains("EXAMPLE_CLIENT_SECRET"),
            "{problems:?}"
        );
    }

    #[derive(Clone)]
    struct NoTools;

    impl rmcp::ServerHandler for NoTools {}

    impl McpTools for NoTools {
        fn tool_names(&self) -> Vec<String> {
            Vec::new()
        }
    }
}
