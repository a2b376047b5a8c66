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
