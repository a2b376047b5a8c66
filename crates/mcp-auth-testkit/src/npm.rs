//! Node.js test dependencies installed from a committed lock file.

use std::path::Path;
use std::process::Command;

/// Environment variable that makes a missing `node` or `npm` a failure.
pub const REQUIRE_NODE_ENV: &str = "MCP_AUTH_REQUIRE_NODE";

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Makes `dir`'s npm packages ready for a test: checks that `node` and
/// `npm` exist, and runs `npm ci` (from the committed `package-lock.json`)
/// when `dir/node_modules/<probe>` is missing.
///
/// Returns `false` after printing a `SKIPPED` banner naming `test` when node
/// or npm is missing, unless `MCP_AUTH_REQUIRE_NODE=1` (CI sets it), which
/// makes that a panic. Panics if `npm ci` fails.
pub fn npm_ready(dir: &Path, probe: &str, test: &str) -> bool {
    if !have("node") || !have("npm") {
        assert!(
            std::env::var(REQUIRE_NODE_ENV).as_deref() != Ok("1"),
            "{test}: node/npm missing and {REQUIRE_NODE_ENV}=1"
        );
        eprintln!("\n*** SKIPPED {test}: node or npm is not installed ***\n");
        return false;
    }
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
    true
}
