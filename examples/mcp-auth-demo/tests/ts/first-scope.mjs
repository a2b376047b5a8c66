// The official MCP TypeScript SDK meets a server for the first time: it
// reads the 401, discovers, registers, and builds the authorization URL
// with the scope its strategy picks (the challenge's, else the metadata's
// scopes_supported). Prints that URL on the last line; the caller
// completes the sign-in and checks what the provider was asked for.
// Usage: node first-scope.mjs <mcp-url>
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";

const [url] = process.argv.slice(2);
const redirectUrl = "http://localhost:48996/callback";
const provider = {
  get redirectUrl() { return redirectUrl; },
  get clientMetadata() {
    return {
      client_name: "TS SDK first sign-in",
      redirect_uris: [redirectUrl],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  },
  clientInformation() { return this.client; },
  saveClientInformation(info) { this.client = info; },
  tokens() { return undefined; },
  saveTokens() {},
  redirectToAuthorization(authorizationUrl) { this.authorizationUrl = authorizationUrl; },
  saveCodeVerifier(verifier) { this.verifier = verifier; },
  codeVerifier() { return this.verifier; },
};
try {
  await new Client({ name: "ts-first-scope", version: "1" })
    .connect(new StreamableHTTPClientTransport(new URL(url), { authProvider: provider }));
  console.error("FAILED: the server let an unauthenticated client in");
  process.exit(1);
} catch (error) {
  if (!(error instanceof UnauthorizedError) || !provider.authorizationUrl) {
    console.error(`FAILED: ${error}`);
    process.exit(1);
  }
}
console.log(`scope: ${new URL(provider.authorizationUrl).searchParams.get("scope")}`);
console.log(provider.authorizationUrl.toString());
