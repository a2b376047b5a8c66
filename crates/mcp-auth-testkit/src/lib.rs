//! Test helpers shared by the `mcp-auth` crates' tests and benches.
//!
//! [`RedisServer`] starts a private `redis-server` on a free loopback port in
//! a temporary directory, can stop and restart it on the same port (to test
//! that clients fail closed and recover), and kills it when dropped.
//!
//! Tests that need it are marked `#[ignore = "needs redis-server"]`, so a
//! plain `cargo test` lists them as ignored (not run, never "passed"); the
//! full test command, `scripts/test-all.sh`, installs what they need and runs
//! them with `--include-ignored`. [`RedisServer::start`] panics when the
//! binary is missing: a test that asked for Redis fails without it.
//!
//! [`npm_ready`] installs a test's npm packages from its committed lock file.
//!
//! [`CapturedLog`] collects `tracing` output for tests that check logs.
//!
//! [`DevIssuer`] is a development OAuth issuer (ephemeral ES256 key,
//! discovery, JWKS and an open token mint) for demos and tests on loopback.
//!
//! [`spotify::SpotifyDouble`] is an in-process Spotify (accounts service
//! with a test-user login page, Web API) for tests and for the example
//! server's no-account mode.
//!
//! [`google::GoogleDouble`] is an in-process Google (OpenID Connect with
//! test users, Drive, Gmail, Calendar) for the Google example server.
//!
//! [`browser::Browser`] is a scripted browser for the authorization
//! server's pages (cookies by hand, forms read from the HTML);
//! [`webdriver::Chromium`] is a real one (headless Chromium through
//! chromedriver).
//!
//! ```no_run
//! let redis = mcp_auth_testkit::RedisServer::start("my_test");
//! println!("connect to {}", redis.url());
//! ```

pub mod browser;
pub mod clients;
pub mod cluster;
mod double;
pub mod fixtures;
pub mod google;
mod issuer;
mod log;
mod npm;
pub mod proxy;
pub mod sentinel;
pub mod spotify;
pub mod tls;
pub mod webdriver;

pub use issuer::{DEV_MINT_GRANT, DevIssuer};
pub use log::CapturedLog;
pub use npm::{npm_ready, oidc_provider, pip_ready};

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A private `redis-server` process on a loopback port; killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    binary: PathBuf,
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    persistent: bool,
    tls: Option<TlsServer>,
    replica_of: Option<u16>,
    /// `--cluster-enabled yes` with this cluster bus port.
    cluster_port: Option<u16>,
}

/// How a TLS-only server ([`RedisServer::start_tls`]) is set up.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// `requirepass`: clients must give it (in the URL).
    pub password: Option<String>,
    /// `tls-auth-clients yes`: clients must present a certificate signed
    /// by the server's CA.
    pub client_auth: bool,
}

#[derive(Debug)]
struct TlsServer {
    options: TlsOptions,
    ca_file: PathBuf,
    server: tls::IssuedFiles,
    client: tls::IssuedFiles,
}

impl RedisServer {
    /// Starts a server for the test `test_name`.
    ///
    /// Tests that call this are marked `#[ignore = "needs redis-server"]`,
    /// so a plain `cargo test` reports them as not run; the full test
    /// command (`scripts/test-all.sh`) installs `redis-server` and runs
    /// them with `--include-ignored`.
    ///
    /// # Panics
    /// If no `redis-server` binary is installed (a test that asked for
    /// Redis must fail, never pass without it), or if it does not come up.
    #[allow(clippy::panic)]
    pub fn start(test_name: &str) -> Self {
        match Self::try_start(test_name) {
            Some(server) => server,
            None => panic!(
                "{test_name} needs redis-server, which is not installed: install it \
                 (Debian: apt-get install -y redis-server) or run scripts/test-all.sh"
            ),
        }
    }

    /// Starts a server, or returns `None` (after a message naming `what`)
    /// when no `redis-server` binary is installed: for benches, whose
    /// Redis side is optional. Tests use [`RedisServer::start`].
    ///
    /// # Panics
    /// If the binary exists but the server does not come up.
    #[allow(clippy::panic)]
    pub fn try_start(what: &str) -> Option<Self> {
        let Some(binary) = find_binary() else {
            eprintln!("{what}: no `redis-server` binary on PATH; the Redis part does not run");
            return None;
        };
        let dir = match tempfile::tempdir() {
            Ok(dir) => dir,
            Err(e) => panic!("cannot create a temp dir for redis-server: {e}"),
        };
        let mut server = Self {
            binary,
            port: free_port(),
            dir,
            child: None,
            persistent: false,
            tls: None,
            replica_of: None,
            cluster_port: None,
        };
        server.spawn();
        Some(server)
    }

    /// Starts a TLS-only server (`--port 0 --tls-port …`) for the test
    /// `test_name`, its certificate signed by a CA made for it (see
    /// [`ca_file`](Self::ca_file)); [`url`](Self::url) is `rediss://`.
    ///
    /// # Panics
    /// As [`start`](Self::start).
    pub fn start_tls(test_name: &str, options: TlsOptions) -> Self {
        let mut server = Self::start(test_name);
        server.stop();
        let dir = server.dir.path();
        let ca = tls::TestCa::new(&format!("{test_name} CA"));
        server.tls = Some(TlsServer {
            options,
            ca_file: ca.write_cert(dir, "ca"),
            server: ca.issue_server(dir, "redis-server"),
            client: ca.issue_client(dir, "redis-client"),
        });
        server.spawn();
        server
    }

    /// Starts a replica of the server on `primary`'s port, and waits until
    /// it has synchronised.
    ///
    /// # Panics
    /// As [`start`](Self::start), or when it does not synchronise in 15 s.
    #[allow(clippy::panic)]
    pub fn start_replica_of(test_name: &str, primary: u16) -> Self {
        let mut server = Self::start(test_name);
        server.stop();
        server.replica_of = Some(primary);
        server.spawn();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if command(server.port, &["INFO", "replication"])
                .is_some_and(|info| info.contains("master_link_status:up"))
            {
                return server;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the replica on port {} did not synchronise", server.port);
    }

    /// Starts an empty cluster node (`--cluster-enabled yes`, no slots
    /// yet): see [`cluster::RedisCluster`].
    ///
    /// # Panics
    /// As [`start`](Self::start).
    pub fn start_cluster_node(test_name: &str) -> Self {
        let mut server = Self::start(test_name);
        server.stop();
        server.cluster_port = Some(free_port());
        server.spawn();
        server
    }

    /// The cluster bus port of a cluster node.
    pub fn cluster_port(&self) -> Option<u16> {
        self.cluster_port
    }

    /// The CA that signed a TLS server's certificate (PEM file).
    pub fn ca_file(&self) -> Option<&std::path::Path> {
        self.tls.as_ref().map(|t| t.ca_file.as_path())
    }

    /// A client certificate and key the TLS server's CA signed.
    pub fn client_files(&self) -> Option<&tls::IssuedFiles> {
        self.tls.as_ref().map(|t| &t.client)
    }

    /// The configuration a store needs to reach this server under
    /// `prefix`: the URL, and for a TLS server its CA (and the client
    /// certificate when the server asks for one).
    #[allow(clippy::panic)]
    pub fn config(&self, prefix: &str) -> mcp_auth_core::RedisConfig {
        let config = mcp_auth_core::RedisConfig::new(self.url(), prefix);
        let Some(tls) = &self.tls else {
            return config;
        };
        let client = tls.options.client_auth.then_some(&tls.client);
        match mcp_auth_core::redis_conn::RedisTls::from_files(
            Some(("ca", &tls.ca_file)),
            client.map(|c| ("client cert", c.cert.as_path())),
            client.map(|c| ("client key", c.key.as_path())),
        ) {
            Ok(material) => config.tls(material),
            Err(e) => panic!("test TLS files: {e}"),
        }
    }

    /// Like [`start`](Self::start), with every write in an append-only
    /// file synced before it is acknowledged (`appendfsync always`), so a
    /// [`restart`](Self::restart) keeps the data, as a production Redis
    /// holding a vault must.
    pub fn start_persistent(test_name: &str) -> Self {
        let mut server = Self::start(test_name);
        server.stop();
        server.persistent = true;
        server.spawn();
        server
    }

    /// `redis://127.0.0.1:<port>/`, or for a TLS server
    /// `rediss://[:password@]127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        match &self.tls {
            None => format!("redis://127.0.0.1:{}/", self.port),
            Some(tls) => match &tls.options.password {
                Some(password) => format!("rediss://:{password}@127.0.0.1:{}/", self.port),
                None => format!("rediss://127.0.0.1:{}/", self.port),
            },
        }
    }

    /// The loopback port the server listens on (kept across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the server process is currently running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server (as a crash or network loss would look to clients).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Wait until the port no longer answers, so the next operation sees the outage.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && self.answers() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the server again on the same port (data is kept only when
    /// started with [`start_persistent`](Self::start_persistent)).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    #[allow(clippy::panic)]
    fn spawn(&mut self) {
        let persistence: &[&str] = if self.persistent {
            &["--appendonly", "yes", "--appendfsync", "always"]
        } else {
            &["--appendonly", "no"]
        };
        let mut command = Command::new(&self.binary);
        match &self.tls {
            None => {
                command.arg("--port").arg(self.port.to_string());
            }
            Some(tls) => {
                command
                    .args(["--port", "0", "--tls-port"])
                    .arg(self.port.to_string())
                    .arg("--tls-cert-file")
                    .arg(&tls.server.cert)
                    .arg("--tls-key-file")
                    .arg(&tls.server.key)
                    .arg("--tls-ca-cert-file")
                    .arg(&tls.ca_file)
                    .args([
                        "--tls-auth-clients",
                        if tls.options.client_auth { "yes" } else { "no" },
                    ])
                    // Readiness is checked over a Unix socket (no TLS).
                    .arg("--unixsocket")
                    .arg(self.dir.path().join("redis.sock"))
                    .args(["--unixsocketperm", "700"]);
                if let Some(password) = &tls.options.password {
                    command.arg("--requirepass").arg(password);
                }
            }
        }
        if let Some(primary) = self.replica_of {
            command
                .args(["--replicaof", "127.0.0.1"])
                .arg(primary.to_string());
        }
        if let Some(bus) = self.cluster_port {
            command
                .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
                .arg("--cluster-port")
                .arg(bus.to_string())
                .arg("--cluster-config-file")
                .arg(self.dir.path().join("nodes.conf"));
        }
        let child = command
            .args(["--bind", "127.0.0.1", "--save", ""])
            .args(persistence)
            .args(["--protected-mode", "yes", "--loglevel", "warning"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn();
        let mut child = match child {
            Ok(child) => child,
            Err(e) => panic!("cannot start {}: {e}", self.binary.display()),
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if self.ready() {
                self.child = Some(child);
                return;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("redis-server exited at start-up with {status}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        panic!(
            "redis-server did not answer PING on port {} within 15s",
            self.port
        );
    }
}

impl RedisServer {
    /// Whether the server answers: `PING` on its port, or for a TLS
    /// server a reply on its Unix socket.
    fn ready(&self) -> bool {
        match &self.tls {
            None => ping(self.port),
            Some(_) => ping_unix(&self.dir.path().join("redis.sock")),
        }
    }

    /// Whether anything still accepts connections on the port.
    fn answers(&self) -> bool {
        match &self.tls {
            None => ping(self.port),
            Some(_) => TcpStream::connect_timeout(
                &SocketAddr::from((Ipv4Addr::LOCALHOST, self.port)),
                Duration::from_millis(200),
            )
            .is_ok(),
        }
    }
}

/// True when a Redis server answers `PING` on the Unix socket (`+PONG`, or
/// `-NOAUTH` when it wants a password: it is up either way).
fn ping_unix(path: &std::path::Path) -> bool {
    let Ok(mut stream) = std::os::unix::net::UnixStream::connect(path) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok()
        && (&reply == b"+PONG\r\n" || reply.starts_with(b"-NOAUTH"))
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn find_binary() -> Option<PathBuf> {
    find_program("redis-server")
}

/// `name` on `PATH` or in the usual system directories.
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([
            "/usr/bin".into(),
            "/usr/local/bin".into(),
            "/usr/sbin".into(),
        ])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

#[allow(clippy::panic)]
fn free_port() -> u16 {
    match TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()) {
        Ok(addr) => addr.port(),
        Err(e) => panic!("cannot find a free loopback port: {e}"),
    }
}

/// Sends one command (RESP) to the server on `port` and returns what it
/// answered within half a second, as text; `None` when nothing answers.
pub fn command(port: u16, args: &[&str]) -> Option<String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    stream.write_all(request.as_bytes()).ok()?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                reply.extend_from_slice(&buf[..n]);
                if n < buf.len() {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    (!reply.is_empty()).then(|| String::from_utf8_lossy(&reply).into_owned())
}

/// Everything the Redis server on `port` holds, as text: every key, and
/// every value (strings, hashes, sets, sorted sets, lists), through
/// `redis-cli`. For tests that look for what must not be stored (a user id,
/// a token). Panics when `redis-cli` does not run.
#[allow(clippy::panic)]
pub fn everything_in(port: u16) -> String {
    let cli = |args: &[&str]| -> String {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &port.to_string(), "--raw"])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("redis-cli does not run: {e}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mut text = String::new();
    for key in cli(&["--scan"]).lines().filter(|k| !k.is_empty()) {
        let value = match cli(&["TYPE", key]).trim() {
            "string" => cli(&["GET", key]),
            "hash" => cli(&["HGETALL", key]),
            "set" => cli(&["SMEMBERS", key]),
            "zset" => cli(&["ZRANGE", key, "0", "-1"]),
            "list" => cli(&["LRANGE", key, "0", "-1"]),
            other => format!("<{other}>"),
        };
        text.push_str(&format!("{key} => {value}\n"));
    }
    text
}

/// True when a Redis server answers `PING` with `+PONG` on the port.
fn ping(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[ignore = "needs redis-server"]
    fn start_stop_restart_on_the_same_port() {
        let mut redis = RedisServer::start("testkit::start_stop_restart_on_the_same_port");
        let port = redis.port();
        assert!(ping(port));
        redis.stop();
        assert!(!ping(port));
        assert!(!redis.is_running());
        redis.restart();
        assert_eq!(redis.port(), port);
        assert!(ping(port));
        assert!(redis.url().contains(&port.to_string()));
    }
}
