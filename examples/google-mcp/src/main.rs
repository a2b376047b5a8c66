//! `cargo run -p google-mcp [-- --config FILE]`: serves the Google MCP
//! server (Drive, Gmail, Calendar). With `GOOGLE_CLIENT_ID` and
//! `GOOGLE_CLIENT_SECRET` it serves the real Google; without them, an
//! embedded Google double with test users, so everything runs on one
//! machine with no account.

use mcp_auth_app::{Settings, cli};

const USAGE: &str = "usage: google-mcp [--config FILE]

Settings come from the environment, then from FILE (KEY=VALUE lines):
  GOOGLE_CLIENT_ID, GOOGLE_CLIENT_SECRET  your Google OAuth client (unset: the embedded double)
  MCP_PUBLIC_URL   the public origin, e.g. https://mcp.example.com (default http://MCP_LISTEN)
  MCP_LISTEN       the address to bind (default 127.0.0.1:8790)
  MCP_VAULT_KEY    32 random bytes in base64 (openssl rand -base64 32); required with Google
  MCP_VAULT_DIR    the encrypted vault's directory (default ./mcp-vault)
  REDIS_URL        share grants, sessions, limits and the vault with a fleet";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    cli::init_logging();
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("google-mcp: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let file = cli::config_argument(USAGE)?;
    let settings = Settings::load(&google_mcp::setting_names(), file.as_deref())?;
    let running = google_mcp::start(&settings, cli::bind(&settings).await?).await?;
    if let Some(double) = &running.double {
        let users = "alice@example.com or bob@example.com";
        eprintln!("{}", cli::double_banner("Google", users, &double.base));
    }
    println!("Google MCP server: {}", running.url);
    println!("Connect an MCP client (the MCP Inspector, Claude, VS Code) to that URL.");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
