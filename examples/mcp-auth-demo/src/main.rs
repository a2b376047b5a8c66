//! The mcp-auth demo: a protected MCP server on embedded defaults.
//!
//! ```text
//! cargo run -p mcp-auth-demo              # serve until Ctrl-C, print a token and commands
//! cargo run -p mcp-auth-demo -- --smoke   # scripted client session; exit 0 only if every step behaved
//! cargo run -p mcp-auth-demo -- --tour    # token validation and vault walk-through, no HTTP
//! ```

mod tour;

use std::process::ExitCode;

use mcp_auth_demo::{BASE_SCOPE, DEMO_USER, DemoOptions, READ_SCOPE, smoke, start};

fn usage() -> ExitCode {
    eprintln!("usage: mcp-auth-demo [--smoke | --tour] [--port N]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut mode = "serve";
    let mut port = 8787u16;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--smoke" => mode = "smoke",
            "--tour" => mode = "tour",
            "--port" => {
                i += 1;
                match args.get(i).and_then(|p| p.parse().ok()) {
                    Some(p) => port = p,
                    None => return usage(),
                }
            }
            _ => return usage(),
        }
        i += 1;
    }
    if mode == "tour" {
        return tour::main();
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,mcp_auth::audit=info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("demo failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        if mode == "smoke" {
            let demo = start(DemoOptions::default()).await?;
            println!("mcp-auth demo smoke run against {}", demo.url);
            smoke::run(&demo).await?;
            println!("smoke run: every step behaved");
            Ok(())
        } else {
            serve(port).await
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(port: u16) -> Result<(), mcp_auth_demo::BoxError> {
    let demo = start(DemoOptions {
        port,
        ..DemoOptions::default()
    })
    .await?;
    let token = demo.token(DEMO_USER, &[BASE_SCOPE, READ_SCOPE]);
    let issuer = demo.issuer.issuer();
    let signin = demo.auth_server.issuer();
    let url = &demo.url;
    println!(
        r#"mcp-auth demo: a protected MCP server (rmcp, streamable HTTP), its authorization server, and a dev token mint.

  MCP endpoint     {url}
  sign-in server   {signin}   (OAuth 2.1: /authorize, /token, /register; development login: any name)
  dev token mint   {issuer}   (ephemeral key; POST /token, for curl)
  metadata         {metadata}

Connect a real MCP client and sign in through the browser:

  npx @modelcontextprotocol/inspector               # Streamable HTTP, URL {url}, "Connect":
                                                    # the browser opens the sign-in page; type any name, Approve

A token for {DEMO_USER} with scopes "{BASE_SCOPE} {READ_SCOPE}" (valid 10 minutes):

  export TOKEN={token}

Try:

  curl -i {url}                                   # 401 + WWW-Authenticate: Bearer resource_metadata=...
  curl -s {metadata}
  curl -s -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
       -H 'Accept: application/json, text/event-stream' {url} \
       -d '{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"protocolVersion":"2025-06-18","capabilities":{{}},"clientInfo":{{"name":"curl","version":"1"}}}}}}' -i
  # a token with notes:write too (save_note needs it; without it you get 403):
  curl -s {issuer}/token -d sub={DEMO_USER} -d 'scope={BASE_SCOPE} {READ_SCOPE} notes:write'
  npx @modelcontextprotocol/inspector               # or connect with the bearer token above

  cargo run -p mcp-auth-demo -- --smoke             # the scripted check of all of this

Ctrl-C (or SIGTERM) stops the server."#,
        metadata = format!(
            "http://{}/.well-known/oauth-protected-resource/mcp",
            demo.addr
        ),
    );
    let signal = mcp_auth_axum::shutdown_signal().await;
    eprintln!("{signal}: stopping");
    Ok(())
}
