//! Test helpers shared by the `mcp-auth` crates' tests and benches.
//!
//! [`RedisServer`] starts a private `redis-server` on a free loopback port in
//! a temporary directory, can stop and restart it on the same port (to test
//! that clients fail closed and recover), and kills it when dropped.
//!
//! When no `redis-server` binary is installed, [`RedisServer::start`] prints a
//! loud `SKIPPED` banner to stderr and returns `None`, so the caller skips the
//! test instead of silently passing it. Set `MCP_AUTH_REQUIRE_REDIS=1` (CI does)
//! to turn a missing binary into a test failure instead.
//!
//! [`npm_ready`] installs a test's npm packages from its committed lock file.
//!
//! [`CapturedLog`] collects `tracing` output for tests that check logs.
//!
//! [`DevIssuer`] is a development OAuth issuer (ephemeral ES256 key,
//! discovery, JWKS and an open token mint) for demos and tests on loopback.
//!
//! ```no_run
//! let Some(redis) = mcp_auth_testkit::RedisServer::start("my_test") else { return };
//! println!("connect to {}", redis.url());
//! ```

mod issuer;
mod log;
mod npm;

pub use issuer::{DEV_MINT_GRANT, DevIssuer};
pub use log::CapturedLog;
pub use npm::{REQUIRE_NODE_ENV, npm_ready};

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Environment variable that makes a missing `redis-server` a failure.
pub const REQUIRE_REDIS_ENV: &str = "MCP_AUTH_REQUIRE_REDIS";

/// A private `redis-server` process on a loopback port; killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    binary: PathBuf,
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server, or returns `None` (after a loud message naming
    /// `test_name`) when no `redis-server` binary is available.
    ///
    /// # Panics
    /// If the binary exists but the server does not come up, or if the binary
    /// is missing and `MCP_AUTH_REQUIRE_REDIS=1`.
    #[allow(clippy::panic)]
    pub fn start(test_name: &str) -> Option<Self> {
        let Some(binary) = find_binary() else {
            let message = format!(
                "\n==================== SKIPPED: {test_name} ====================\n\
                 no `redis-server` binary on PATH; this Redis test did NOT run.\n\
                 Install it (Debian: apt-get install -y redis-server) to run it.\n\
                 =============================================================\n"
            );
            if std::env::var(REQUIRE_REDIS_ENV).is_ok_and(|v| v == "1") {
                panic!("{message}{REQUIRE_REDIS_ENV}=1, so a missing redis-server is a failure");
            }
            eprintln!("{message}");
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
        };
        server.spawn();
        Some(server)
    }

    /// `redis://127.0.0.1:<port>/`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
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
        while Instant::now() < deadline && ping(self.port) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the server again on the same port (data is not persisted).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    #[allow(clippy::panic)]
    fn spawn(&mut self) {
        let child = Command::new(&self.binary)
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
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
            if ping(self.port) {
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

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn find_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([
            "/usr/bin".into(),
            "/usr/local/bin".into(),
            "/usr/sbin".into(),
        ])
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| candidate.is_file())
}

#[allow(clippy::panic)]
fn free_port() -> u16 {
    match TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()) {
        Ok(addr) => addr.port(),
        Err(e) => panic!("cannot find a free loopback port: {e}"),
    }
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
    fn start_stop_restart_on_the_same_port() {
        let Some(mut redis) = RedisServer::start("testkit::start_stop_restart_on_the_same_port")
        else {
            return;
        };
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
