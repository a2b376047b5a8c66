//! `cargo run -p spotify-mcp [-- --config FILE]`: serves the Spotify MCP
//! server. With `SPOTIFY_CLIENT_ID` and `SPOTIFY_CLIENT_SECRET` it serves
//! the real Spotify; without them, an embedded Spotify double with test
//! users, so everything runs on one machine with no account.

use mcp_auth_app::{Settings, cli};

const USAGE: &str = "usage: spotify-mcp [--config FILE]

Settings come from the environment, then from FILE (KEY=VALUE lines):
  SPOTIFY_CLIENT_ID, SPOTIFY_CLIENT_SECRET  your Spotify app (unset: the embedded double)
  MCP_PUBLIC_URL   the public origin, e.g. https://mcp.example.com (default http://MCP_LISTEN)
  MCP_LISTEN       the address to bind (default 127.0.0.1:8790)
  MCP_VAULT_KEY    32 random bytes in base64 (openssl rand -base64 32); required with Spotify
  MCP_VAULT_DIR    the encrypted vault's directory (default ./mcp-vault)
  REDIS_URL        share grants, sessions, limits and the vault with a fleet";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    cli::init_logging();
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("spotify-mcp: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let file = cli::config_argument(USAGE)?;
    let settings = Settings::load(&spotify_mcp::setting_names(), file.as_deref())?;
    let running = spotify_mcp::start(&settings, cli::bind(&settings).await?).await?;
    if let Some(double) = &running.double {
        let users = "alice, bob (Premium) or carol (free)";
        eprintln!("{}", cli::double_banner("Spotify", users, &double.base));
    }
    println!("Spotify MCP server: {}", running.url);
    println!("Connect an MCP client (the MCP Inspector, Claude, VS Code) to that URL.");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
