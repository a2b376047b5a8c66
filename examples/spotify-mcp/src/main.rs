//! `cargo run -p spotify-mcp [-- --config FILE]`: serves the Spotify MCP
//! server. With `SPOTIFY_CLIENT_ID` and `SPOTIFY_CLIENT_SECRET` it serves
//! the real Spotify; without them (and with the default `no-account`
//! feature), an embedded Spotify double with test users, so everything runs
//! on one machine with no account. `--help` lists the settings.

use spotify_mcp::spotify::Spotify;
use spotify_mcp::tools::SpotifyTools;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    spotify_mcp::profile()
        .main(|api| SpotifyTools::new(Spotify::new(api)))
        .await
}
