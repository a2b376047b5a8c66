//! `cargo run -p google-mcp [-- --config FILE]`: serves the Google MCP
//! server (Drive, Gmail, Calendar). With `GOOGLE_CLIENT_ID` and
//! `GOOGLE_CLIENT_SECRET` it serves the real Google; without them (and with
//! the default `no-account` feature), an embedded Google double with test
//! users, so everything runs on one machine with no account. `--help`
//! lists the settings.

use google_mcp::google::Google;
use google_mcp::tools::GoogleTools;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    google_mcp::profile()
        .main(|api| GoogleTools::new(Google::new(api)))
        .await
}
