//! `cargo run -p google-mcp [-- --config FILE]`: serves the Google MCP
//! server (Drive, Gmail, Calendar). With `GOOGLE_CLIENT_ID` and
//! `GOOGLE_CLIENT_SECRET` it serves the real Google; without them, an
//! embedded Google double with test users, so everything runs on one
//! machine with no account.

use std::path::PathBuf;

use mcp_auth_app::Settings;

const USAGE: &str = "usage: google-mcp [--config FILE]

Settings come from the environment, then from FILE (KEY=VALUE lines):
  GOOGLE_CLIENT_ID, GOOGLE_CLIENT_SECRET  your Google OAuth client (unset: the embedded double)
  MCP_PUBLIC_URL   the public origin, e.g. https://mcp.example.com (default http://MCP_LISTEN)
  MCP_LISTEN       the address to bind (default 127.0.0.1:8790)
  MCP_VAULT_KEY    32 random bytes in base64 (openssl rand -base64 32); required with Google
  MCP_VAULT_DIR    the encrypted vault's directory (default ./mcp-vault)
  REDIS_URL        share grants, sessions, limits and the vault with a fleet";

fn arguments() -> Result<Option<PathBuf>, String> {
    let mut args = std::env::args().skip(1);
    let mut config = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" => config = Some(PathBuf::from(args.next().ok_or("--config needs a file")?)),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}\n\n{USAGE}")),
        }
    }
    Ok(config)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("google-mcp: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let file = arguments()?;
    let names = google_mcp::setting_names();
    let settings = Settings::load(&names, file.as_deref())?;
    let listen = settings
        .get("MCP_LISTEN")
        .unwrap_or("127.0.0.1:8790")
        .to_owned();
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| format!("MCP_LISTEN {listen}: {e}"))?;
    let running = google_mcp::start(&settings, listener).await?;
    if let Some(double) = &running.double {
        eprintln!(
            "\n  ************************************************************\n  \
             NO GOOGLE CREDENTIALS: serving an EMBEDDED GOOGLE DOUBLE.\n  \
             Sign in as alice@example.com or bob@example.com (no password).\n  \
             Nothing here touches the real Google. Set GOOGLE_CLIENT_ID\n  \
             and GOOGLE_CLIENT_SECRET to serve the real one.\n  \
             (double at {})\n  \
             ************************************************************\n",
            double.base
        );
    }
    println!("Google MCP server: {}", running.url);
    println!("Connect an MCP client (the MCP Inspector, Claude, VS Code) to that URL.");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
