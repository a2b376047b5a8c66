// The official MCP TypeScript SDK in the deployment rehearsal: it signs in
// to the fleet over https through the proxy (its own discovery,
// registration, PKCE and code exchange); the person's part happens in
// headless Chromium, driven by the Rust test. Trusts the rehearsal's CA
// through NODE_EXTRA_CA_CERTS.
// Usage: node rehearsal-client.mjs <mcp-url>
// On stdout: "AUTHORIZE <url>", then it reads "CALLBACK <url>" on stdin,
// then "CALLED <n>" after n tool calls, and exits 0; "FAILED: …" and 1.
import { createInterface } from "node:readline";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";

const [url] = process.argv.slice(2);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
function fail(what) { console.log(`FAILED: ${what}`); process.exit(1); }

const redirectUrl = "http://localhost:48783/callback";
const provider = {
  get redirectUrl() { return redirectUrl; },
  get clientMetadata() {
    return { client_name: "TS SDK in the rehearsal", redirect_uris: [redirectUrl],
      grant_types: ["authorization_code", "refresh_token"], response_types: ["code"],
      token_endpoint_auth_method: "none", scope: "spotify:read" };
  },
  clientInformation() { return this.client; },
  saveClientInformation(info) { this.client = info; },
  tokens() { return this.saved; },
  saveTokens(tokens) { this.saved = tokens; },
  redirectToAuthorization(authorizationUrl) { console.log(`AUTHORIZE ${authorizationUrl.href}`); },
  saveCodeVerifier(verifier) { this.verifier = verifier; },
  codeVerifier() { return this.verifier; },
};

try {
  const first = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
  try {
    await new Client({ name: "ts-sdk-rehearsal", version: "1" }).connect(first);
    fail("connected without signing in");
  } catch (error) {
    if (!(error instanceof UnauthorizedError)) fail(`the first connect: ${error}`);
  }
  const { value } = await lines.next();
  if (!value?.startsWith("CALLBACK ")) fail(`expected CALLBACK, got ${value}`);
  const callback = new URL(value.slice("CALLBACK ".length));
  await first.finishAuth(callback.searchParams.get("code"));
  const client = new Client({ name: "ts-sdk-rehearsal", version: "1" });
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { authProvider: provider }));
  let called = 0;
  for (let i = 0; i < 4; i++) {
    const result = await client.callTool({ name: "now_playing", arguments: {} });
    if (result.isError) fail(`now_playing: ${JSON.stringify(result.content)}`);
    called++;
  }
  await client.close();
  console.log(`CALLED ${called}`);
  process.exit(0);
} catch (error) {
  fail(`${error}`);
}
