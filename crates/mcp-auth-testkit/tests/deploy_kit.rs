//! The deployment kit in `deploy/`, tested as shipped: the nginx site (and
//! the Caddyfile, when caddy is installed) run with test certificates and
//! ports in front of a small upstream that reports the request head it
//! received and streams slowly; the systemd unit passes
//! `systemd-analyze verify`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a panic is how a test fails

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mcp_auth_testkit::tls::TestCa;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An HTTP/1.1 upstream: `/headers` answers with the request head it
/// received; `/stream` answers an event stream, one event at once and the
/// second two seconds later.
async fn upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                if head.starts_with("GET /stream ") {
                    let start = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                                 transfer-encoding: chunked\r\nconnection: close\r\n\r\n";
                    let chunk = |data: &str| format!("{:x}\r\n{data}\r\n", data.len());
                    let _ = stream.write_all(start.as_bytes()).await;
                    let _ = stream.write_all(chunk("data: first\n\n").as_bytes()).await;
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    let _ = stream.write_all(chunk("data: second\n\n").as_bytes()).await;
                    let _ = stream.write_all(b"0\r\n\r\n").await;
                } else {
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\
                         connection: close\r\n\r\n{head}",
                        head.len()
                    );
                    let _ = stream.write_all(reply.as_bytes()).await;
                }
            });
        }
    });
    addr
}

/// A client that trusts only the test CA.
fn client(ca: &TestCa) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.cert_pem().as_bytes()).unwrap()])
        .build()
        .unwrap()
}

/// The proxy in front of `upstream()` at `origin` passes Host and the
/// forwarded headers, and passes a stream on as it comes.
async fn check_proxy(origin: &str, ca: &TestCa) {
    let http = client(ca);
    let head = http
        .get(format!("{origin}/headers"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .to_ascii_lowercase();
    let host = origin.trim_start_matches("https://");
    assert!(head.contains(&format!("\r\nhost: {host}\r\n")), "{head}");
    assert!(head.contains("\r\nx-forwarded-for: 127.0.0.1"), "{head}");
    assert!(head.contains("\r\nx-forwarded-proto: https\r\n"), "{head}");

    let started = Instant::now();
    let mut response = http.get(format!("{origin}/stream")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let first = response.chunk().await.unwrap().unwrap();
    let first_at = started.elapsed();
    assert!(
        String::from_utf8_lossy(&first).contains("first"),
        "{first:?}"
    );
    assert!(
        first_at < Duration::from_millis(1500),
        "the first event waited for the second: {first_at:?} (a buffering proxy)"
    );
    let mut rest = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        rest.extend_from_slice(&chunk);
    }
    assert!(String::from_utf8_lossy(&rest).contains("second"));
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `port` accepts connections.
fn wait_for(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited at start: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on {port}");
}

fn program(name: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/usr/local/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nginx"]
async fn the_nginx_site_passes_host_forwarded_headers_and_streams() {
    let nginx =
        program("nginx").expect("nginx (apt-get install nginx-light, or scripts/test-all.sh)");
    let upstream = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("deploy kit CA");
    let cert = ca.issue_server(dir.path(), "site");
    let (tls_port, plain_port) = (free_port(), free_port());
    // The shipped site, with the test's certificate, ports and upstream.
    let path = mcp_auth_testkit::proxy::shipped_site_conf(
        dir.path(),
        &cert,
        tls_port,
        plain_port,
        &[upstream],
    );
    let check = Command::new(&nginx)
        .arg("-t")
        .arg("-c")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "nginx -t: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let mut child = Command::new(&nginx)
        .arg("-c")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    wait_for(tls_port, &mut child, "nginx");
    let _nginx = Killed(child);
    check_proxy(&format!("https://localhost:{tls_port}"), &ca).await;
    // Plain http is sent to https.
    let redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("http://localhost:{plain_port}/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), 301);
    assert_eq!(redirect.headers()["location"], "https://localhost/x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs caddy"]
async fn the_caddyfile_passes_host_forwarded_headers_and_streams() {
    let caddy = program("caddy").expect("caddy (apt-get install caddy, or scripts/test-all.sh)");
    let upstream = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("deploy kit CA");
    let cert = ca.issue_server(dir.path(), "site");
    let port = free_port();
    let shipped = std::fs::read_to_string(repo().join("deploy/caddy/Caddyfile")).unwrap();
    // The shipped site, with the test's certificate, port and upstream, and
    // without Caddy's admin endpoint and automatic certificates.
    let site = shipped
        .replace(
            "mcp.example.com {",
            &format!(
                "{{\n\tadmin off\n\tauto_https off\n\tstorage file_system {d}\n}}\n\nhttps://localhost:{port} {{\n\ttls {c} {k}",
                d = dir.path().display(),
                c = cert.cert.display(),
                k = cert.key.display()
            ),
        )
        .replace("reverse_proxy 127.0.0.1:8790", &format!("reverse_proxy {upstream}"));
    let directives: String = site
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        !directives.contains("8790") && !directives.contains("example.com {"),
        "{directives}"
    );
    let path = dir.path().join("Caddyfile");
    std::fs::write(&path, site).unwrap();
    let mut child = Command::new(&caddy)
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&path)
        .env("HOME", dir.path())
        .env("XDG_DATA_HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(port, &mut child, "caddy");
    let _caddy = Killed(child);
    check_proxy(&format!("https://localhost:{port}"), &ca).await;
}

#[test]
#[ignore = "needs systemd-analyze"]
fn the_systemd_unit_verifies_and_is_hardened() {
    let analyze = program("systemd-analyze").expect("systemd-analyze (Debian: systemd)");
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(repo().join("deploy/systemd/mcp-server.service")).unwrap();
    for hardening in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "StateDirectory=spotify-mcp",
        "KillSignal=SIGTERM",
    ] {
        assert!(unit.contains(hardening), "{hardening} missing");
    }
    // verify checks that ExecStart exists: point it at a real program.
    let binary = dir.path().join("spotify-mcp");
    std::fs::copy("/bin/true", &binary).unwrap();
    let unit = unit
        .replace("/usr/local/bin/spotify-mcp", &binary.display().to_string())
        .replace(
            "EnvironmentFile=/etc/spotify-mcp.env",
            "EnvironmentFile=-/etc/spotify-mcp.env",
        );
    let path = dir.path().join("spotify-mcp.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Only the unit's own lines count (a container's systemd may complain
    // about its own units).
    let own: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("spotify-mcp.service"))
        .collect();
    assert!(out.status.success() && own.is_empty(), "{text}");
}
