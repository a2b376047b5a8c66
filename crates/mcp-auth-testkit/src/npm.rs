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
    if !dir.join("node_modules").join(probe).exists() {
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
}
