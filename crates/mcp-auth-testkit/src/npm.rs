//! Node.js test dependencies installed from a committed lock file.

use std::path::Path;
use std::process::Command;

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Makes `dir`'s npm packages ready for the test named `test`: checks that
/// `node` and `npm` exist, and runs `npm ci` (from the committed
/// `package-lock.json`) when `dir/node_modules/<probe>` is missing.
///
/// Tests that call this are marked `#[ignore = "needs node and npm"]`, so a
/// plain `cargo test` lists them as not run; `scripts/test-all.sh` brings
/// Node.js 22 or newer and runs them with `--include-ignored`.
///
/// # Panics
/// When `node` or `npm` is missing (a test that needs them fails without
/// them, never passes), or when `npm ci` fails.
pub fn npm_ready(dir: &Path, probe: &str, test: &str) {
    assert!(
        have("node") && have("npm"),
        "{test} needs node (22 or newer) and npm, which are not installed: \
         run scripts/test-all.sh, which brings them"
    );
    // Tests of one binary run in parallel threads, and several binaries may
    // share a directory: one `npm ci` at a time per directory (a second one
    // would delete what the first is writing), the others wait and find it
    // done. npm writes `node_modules/.package-lock.json` last.
    let key: u64 = dir
        .to_string_lossy()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
    let lock_path = std::env::temp_dir().join(format!("mcp-auth-npm-{key:016x}.lock"));
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .expect("the npm lock file can be opened");
    lock.lock().expect("the npm lock can be taken");
    let modules = dir.join("node_modules");
    let installed = modules.join(probe).exists() && modules.join(".package-lock.json").exists();
    if !installed {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--ignore-scripts"])
            .current_dir(dir)
            .status()
            .expect("npm can be started");
        assert!(
            status.success(),
            "{test}: npm ci failed in {}",
            dir.display()
        );
    }
    drop(lock);
}

/// The npm `oidc-provider` of `dir` (a `provider.mjs` that prints
/// `READY <issuer>` once it listens) on a free loopback port, accepting
/// `redirect_uri` for its client `mcp-proxy` / `mcp-proxy-client-secret`.
/// Its issuer, and the process (killed when dropped; its later output is
/// drained).
///
/// # Panics
/// When node cannot start it or it is not ready within 30 s.
pub async fn oidc_provider(dir: &Path, redirect_uri: &str) -> (String, tokio::process::Child) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"));
    let mut child = tokio::process::Command::new("node")
        .args(["provider.mjs", &port.to_string(), redirect_uri])
        .current_dir(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("node provider.mjs did not start: {e}"));
    let Some(stdout) = child.stdout.take() else {
        panic!("node provider.mjs has no stdout")
    };
    let mut lines = BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("oidc-provider did not start in 30 s"))
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("oidc-provider ended before it was ready"));
    let Some(issuer) = ready.strip_prefix("READY ") else {
        panic!("oidc-provider said {ready:?}, not READY <issuer>")
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (issuer.to_owned(), child)
}

/// A Python virtual environment at `dir/.venv` with `dir/requirements.txt`
/// installed (every package pinned), made once and reused; returns its
/// `python`. Panics with the reason when `python3` is missing or the
/// install fails (a test that needs it fails; it is never skipped).
#[allow(clippy::panic, clippy::expect_used)]
pub fn pip_ready(dir: &Path, test: &str) -> std::path::PathBuf {
    assert!(
        have("python3"),
        "{test} needs python3 (3.10 or newer) with venv, which is not installed: \
         run scripts/test-all.sh, which brings it"
    );
    let lock_path = std::env::temp_dir().join("mcp-auth-pip.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .expect("the pip lock file can be opened");
    lock.lock().expect("the pip lock can be taken");
    let venv = dir.join(".venv");
    let python = venv.join("bin/python");
    let marker = venv.join(".installed");
    let wanted = std::fs::read(dir.join("requirements.txt")).expect("requirements.txt");
    if std::fs::read(&marker).ok().as_deref() != Some(wanted.as_slice()) {
        let _ = std::fs::remove_dir_all(&venv);
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 can be started");
        assert!(made.success(), "{test}: python3 -m venv failed");
        let installed = Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(dir.join("requirements.txt"))
            .status()
            .expect("pip can be started");
        assert!(
            installed.success(),
            "{test}: pip install failed in {}",
            dir.display()
        );
        std::fs::write(&marker, &wanted).expect("the venv marker");
    }
    drop(lock);
    python
}
