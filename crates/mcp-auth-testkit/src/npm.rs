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
