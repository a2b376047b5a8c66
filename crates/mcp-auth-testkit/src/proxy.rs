//! Debian's nginx as the reverse proxy in front of a server under test: it
//! appends the client's address to `X-Forwarded-For`, does not buffer
//! streamed responses, and connects to the server from an address of its
//! own (so the server can trust it alone).

use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// An nginx process proxying to one upstream; killed on drop.
#[derive(Debug)]
pub struct Nginx {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Nginx {
    /// Proxies `127.0.0.1:<port>` to `upstream`, connecting from `from`
    /// (a loopback address such as `127.0.0.2`).
    ///
    /// # Panics
    /// When nginx is not installed (Debian: `apt-get install nginx-light`;
    /// the README's test command installs it) or does not come up.
    #[allow(clippy::panic)]
    pub fn start(upstream: SocketAddr, from: IpAddr) -> Self {
        let binary = crate::find_program("nginx").unwrap_or_else(|| {
            panic!("this test needs nginx (apt-get install nginx-light, or scripts/test-all.sh)")
        });
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let port = free_port();
        let d = dir.path().display();
        let conf = format!(
            "daemon off; master_process off; worker_processes 1;\n\
             pid {d}/nginx.pid; error_log {d}/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n\
               access_log off;\n\
               client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
               upstream app {{ server {upstream}; keepalive 32; }}\n\
               server {{\n\
                 listen 127.0.0.1:{port};\n\
                 location / {{\n\
                   proxy_pass http://app;\n\
                   proxy_bind {from};\n\
                   proxy_http_version 1.1;\n\
                   proxy_set_header Connection \"\";\n\
                   proxy_set_header Host $host;\n\
                   proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
                   proxy_set_header X-Forwarded-Proto $scheme;\n\
                   proxy_buffering off;\n\
                 }}\n\
               }}\n\
             }}\n"
        );
        let path = dir.path().join("nginx.conf");
        if let Err(e) = std::fs::write(&path, conf) {
            panic!("nginx config: {e}");
        }
        let child = Command::new(binary)
            .arg("-c")
            .arg(&path)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start nginx: {e}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                panic!("nginx did not listen on {port}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            port,
            _dir: dir,
        }
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The repository's shipped nginx site (`deploy/nginx/mcp-server.conf`)
/// made into a whole nginx configuration for a test: the certificate,
/// loopback ports (`tls_port`, and `plain_port` for the redirect to https)
/// and `upstreams` swapped in for the site's examples, the rest as shipped.
/// Written to `dir/nginx.conf`; its path.
///
/// # Panics
/// When the site cannot be read, or an example value is left in it (the
/// site changed and this no longer swaps everything).
#[allow(clippy::panic)]
pub fn shipped_site_conf(
    dir: &std::path::Path,
    cert: &crate::tls::IssuedFiles,
    tls_port: u16,
    plain_port: u16,
    upstreams: &[SocketAddr],
) -> std::path::PathBuf {
    let shipped =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/nginx/mcp-server.conf");
    let site =
        std::fs::read_to_string(&shipped).unwrap_or_else(|e| panic!("{}: {e}", shipped.display()));
    let example_upstream = "server 127.0.0.1:8790 max_fails=1 fail_timeout=2s;";
    let servers: Vec<String> = upstreams
        .iter()
        .map(|u| format!("server {u} max_fails=1 fail_timeout=2s;"))
        .collect();
    let site = site
        .replace("server_name mcp.example.com;", "server_name localhost;")
        .replace(
            "/etc/letsencrypt/live/mcp.example.com/fullchain.pem",
            &cert.cert.display().to_string(),
        )
        .replace(
            "/etc/letsencrypt/live/mcp.example.com/privkey.pem",
            &cert.key.display().to_string(),
        )
        .replace(example_upstream, &servers.join("\n    "))
        .replace(
            "listen 443 ssl http2;",
            &format!("listen 127.0.0.1:{tls_port} ssl http2;"),
        )
        .replace("listen [::]:443 ssl http2;", "")
        .replace("listen 80;", &format!("listen 127.0.0.1:{plain_port};"))
        .replace("listen [::]:80;", "");
    let directives: Vec<&str> = site
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    for example in ["mcp.example.com/", ":443", "8790"] {
        if directives.iter().any(|l| l.contains(example)) {
            panic!(
                "{example} left in the shipped site:\n{}",
                directives.join("\n")
            );
        }
    }
    let d = dir.display();
    let conf = format!(
        "daemon off; master_process off; worker_processes 1;\n\
         pid {d}/nginx.pid; error_log {d}/nginx-error.log error;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n access_log off;\n\
           client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
           {site}\n}}\n"
    );
    let path = dir.join("nginx.conf");
    if let Err(e) = std::fs::write(&path, conf) {
        panic!("{}: {e}", path.display());
    }
    path
}
