// The official MCP TypeScript SDK's own OAuth flow against the mcp-auth
// demo: discovery from our 401, client registration (dynamic registration,
// or a client ID metadata document), the authorization URL, a scripted
// browser step (development login + consent), the token exchange, tool
// calls with the token, and a refresh.
// Usage: node signin.mjs <mcp-url> <dcr|cimd> [client-metadata-url]
// Prints one line per check; exits non-zero on the first failure.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { auth, UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { browser as scriptedBrowser, field } from "./browser.mjs";

const [url, mode, metadataUrl] = process.argv.slice(2);
const user = "ts-sdk-user@example.com";
function check(ok, what) {
  if (!ok) {
    console.error(`FAILED: ${what}`);
    process.exit(1);
  }
  console.log(`ok: ${what}`);
}

const redirectUrl = "http://localhost:48999/callback";
const provider = {
  get redirectUrl() { return redirectUrl; },
  clientMetadataUrl: mode === "cimd" ? metadataUrl : undefined,
  get clientMetadata() {
    return {
      client_name: "TS SDK interop",
      redirect_uris: [redirectUrl],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  },
  clientInformation() { return this.client; },
  saveClientInformation(info) { this.client = info; },
  tokens() { return this.saved; },
  saveTokens(tokens) { this.saved = tokens; },
  redirectToAuthorization(authorizationUrl) { this.authorizationUrl = authorizationUrl; },
  saveCodeVerifier(verifier) { this.verifier = verifier; },
  codeVerifier() { return this.verifier; },
};

const { load } = scriptedBrowser();

// 1. The SDK meets our 401, discovers, registers and asks for the user.
const first = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
let redirected = false;
try {
  await new Client({ name: "ts-sdk-oauth", version: "1" }).connect(first);
} catch (error) {
  redirected = error instanceof UnauthorizedError;
  if (!redirected) console.error(error);
}
check(redirected && provider.authorizationUrl, "the SDK discovered the server and asked for a browser sign-in");
if (mode === "cimd") {
  check(provider.client?.client_id === metadataUrl, `the client ID is the metadata document URL (${provider.client?.client_id})`);
} else {
  check(typeof provider.client?.client_id === "string" && provider.client.client_id.startsWith("mcp-"),
    `dynamic registration gave a client ID (${provider.client?.client_id})`);
}
const authorizationUrl = new URL(provider.authorizationUrl);
check(authorizationUrl.searchParams.get("code_challenge_method") === "S256", "PKCE S256");
check(authorizationUrl.searchParams.get("resource") === url, `resource indicator: ${authorizationUrl.searchParams.get("resource")}`);

// 2. The browser: login, consent, back to the client with the code.
const login = await load(authorizationUrl);
check(login.status === 200 && field(login.html, "pending"), "the login page");
const consent = await load(new URL("/login", authorizationUrl), {
  pending: field(login.html, "pending"), csrf: field(login.html, "csrf"), user,
});
check(consent.status === 200 && consent.html.includes("TS SDK interop"), "the consent page names the client");
const back = await load(new URL("/consent", authorizationUrl), {
  pending: field(consent.html, "pending"), csrf: field(consent.html, "csrf"), decision: "approve",
});
const callback = new URL(back.location);
check(back.status === 303 && callback.href.startsWith(redirectUrl), `redirected to the client: ${back.status}`);
check(callback.searchParams.get("iss") === authorizationUrl.origin, "RFC 9207 iss in the callback");

// 3. The SDK exchanges the code, then connects and calls tools.
await first.finishAuth(callback.searchParams.get("code"));
check(typeof provider.saved?.access_token === "string" && provider.saved.refresh_token, "the SDK holds an access and a refresh token");
const client = new Client({ name: "ts-sdk-oauth", version: "1" });
await client.connect(new StreamableHTTPClientTransport(new URL(url), { authProvider: provider }));
const { tools } = await client.listTools();
check(tools.some((t) => t.name === "whoami"), `tools/list: ${tools.map((t) => t.name)}`);
const who = await client.callTool({ name: "whoami", arguments: {} });
check(who.content?.[0]?.text?.includes(user), `whoami: ${who.content?.[0]?.text}`);
await client.close();

// 4. A refresh through the SDK's own auth(): rotated, and the new token works.
const before = provider.saved.refresh_token;
provider.saved = { ...provider.saved, access_token: "expired" };
const result = await auth(provider, { serverUrl: url });
check(result === "AUTHORIZED" && provider.saved.refresh_token !== before, "refresh with rotation through auth()");
const again = new Client({ name: "ts-sdk-oauth", version: "1" });
await again.connect(new StreamableHTTPClientTransport(new URL(url), { authProvider: provider }));
const whoAgain = await again.callTool({ name: "whoami", arguments: {} });
check(whoAgain.content?.[0]?.text?.includes(user), "the refreshed token calls tools");
await again.close();
console.log(`TS SDK OAuth (${mode}): all checks passed`);
