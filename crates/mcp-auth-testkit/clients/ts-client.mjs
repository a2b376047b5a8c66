// The official MCP TypeScript SDK (pinned in package-lock.json) in the
// client interop suite (mcp_auth_testkit::clients): it signs in, calls a
// tool, steps up, refreshes and is revoked, with its own discovery,
// registration, PKCE, code exchange and refresh. The person's part happens
// in headless Chromium, driven by the Rust side.
// Usage: node ts-client.mjs <mcp-url> <tool> <args-json> <step-up-tool> <args-json>
// Talks in lines. Out: "AUTHORIZE <url>" (in: "CALLBACK <url>"),
// "OK <step>: <detail>", "READY revoke" (in: "REVOKED"),
// "FAILED <step>: <detail>" (then exit 1), "DONE".
import { createInterface } from "node:readline";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport, StreamableHTTPError } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";

const [url, tool, toolArgs, stepUpTool, stepUpArgs] = process.argv.slice(2);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
let step = "sign-in";
function fail(detail) {
  console.log(`FAILED ${step}: ${detail}`);
  process.exit(1);
}
function ok(detail) { console.log(`OK ${step}: ${detail}`); }
async function expectLine(prefix) {
  const { value } = await lines.next();
  if (!value?.startsWith(prefix)) fail(`expected "${prefix}" from the test, got ${value}`);
  return value.slice(prefix.length).trim();
}

// A loopback redirect the client does not listen on: the test reads the
// callback URL from Chromium and hands it back on stdin.
const redirectUrl = "http://localhost:48990/callback";
let authorizations = 0;
let revoked = false;
let askedAfterRevocation = false;
const provider = {
  get redirectUrl() { return redirectUrl; },
  get clientMetadata() {
    return {
      client_name: "TypeScript SDK interop", redirect_uris: [redirectUrl],
      grant_types: ["authorization_code", "refresh_token"], response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  },
  clientInformation() { return this.client; },
  saveClientInformation(info) { this.client = info; },
  tokens() { return this.saved; },
  saveTokens(tokens) { this.saved = tokens; },
  redirectToAuthorization(authorizationUrl) {
    if (revoked) { askedAfterRevocation = true; return; }
    authorizations += 1;
    this.pending = authorizationUrl.href;
  },
  saveCodeVerifier(verifier) { this.verifier = verifier; },
  codeVerifier() { return this.verifier; },
  // The SDK calls this when the server refuses what it holds (a revoked
  // refresh token: invalid_grant), then starts a new authorization.
  invalidateCredentials(scope) {
    if (scope === "all" || scope === "tokens") this.saved = undefined;
    if (scope === "all" || scope === "client") this.client = undefined;
  },
};

let transport;
let client;
// The person's part of one authorization: Chromium, driven by the test.
async function person() {
  console.log(`AUTHORIZE ${provider.pending}`);
  const callback = new URL(await expectLine("CALLBACK "));
  const code = callback.searchParams.get("code");
  if (!code) fail(`the callback has no code: ${callback.search}`);
  await transport.finishAuth(code);
}
async function connect() {
  transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
  client = new Client({ name: "ts-sdk-interop", version: "1" });
  try {
    await client.connect(transport);
  } catch (error) {
    if (!(error instanceof UnauthorizedError)) throw error;
    await person();
    transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
    client = new Client({ name: "ts-sdk-interop", version: "1" });
    await client.connect(transport);
  }
}
async function call(name, args) {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await client.callTool({ name, arguments: args });
    } catch (error) {
      if (error instanceof UnauthorizedError && !revoked) {
        await person();
        continue;
      }
      if (error instanceof StreamableHTTPError && String(error.message).includes("after trying upscoping")) {
        // The SDK (1.32.2) answers a 403 by refreshing, which cannot widen
        // a grant; what an application does then: forget the refresh token
        // and reconnect, so the SDK asks with the challenge's scopes.
        provider.saved = { ...provider.saved, refresh_token: undefined };
        await client.close();
        await connect();
        continue;
      }
      throw error;
    }
  }
  fail(`${name}: no success after three attempts`);
}
function succeeded(result, name) {
  if (result.isError) fail(`${name} answered an error: ${JSON.stringify(result.content)}`);
}

try {
  await connect();
  ok(`signed in with scope "${provider.saved?.scope}"`);
  step = "tool call";
  succeeded(await call(tool, JSON.parse(toolArgs)), tool);
  ok(`${tool} answered`);

  step = "step-up";
  const before = authorizations;
  succeeded(await call(stepUpTool, JSON.parse(stepUpArgs)), stepUpTool);
  if (authorizations !== before + 1) fail(`expected one more authorization, saw ${authorizations - before}`);
  ok(`${stepUpTool} answered after one more authorization, scope now "${provider.saved?.scope}"`);

  step = "refresh";
  // The access token runs out (the server answers 401 as for an expired
  // one): the SDK must refresh, without the person.
  const oldRefresh = provider.saved.refresh_token;
  provider.saved = { ...provider.saved, access_token: "expired" };
  const asked = authorizations;
  succeeded(await call(tool, JSON.parse(toolArgs)), tool);
  if (authorizations !== asked) fail("the SDK sent the person to sign in again instead of refreshing");
  if (!provider.saved.refresh_token || provider.saved.refresh_token === oldRefresh)
    fail("the refresh token was not rotated");
  ok(`${tool} answered after a refresh (the refresh token rotated)`);

  step = "revocation";
  console.log("READY revoke");
  await expectLine("REVOKED");
  revoked = true;
  // Access tokens already issued live until they expire; let this one run
  // out, as time would: the refresh must now be refused.
  provider.saved = { ...provider.saved, access_token: "expired" };
  try {
    const result = await client.callTool({ name: tool, arguments: JSON.parse(toolArgs) });
    fail(`a call after revocation answered: ${JSON.stringify(result.content).slice(0, 200)}`);
  } catch (error) {
    if (!(error instanceof UnauthorizedError)) fail(`expected a sign-in to be asked, got ${error}`);
  }
  if (!askedAfterRevocation) fail("the SDK did not ask the person to sign in again");
  ok("the refresh was refused and the SDK asked the person to sign in again");
  await client.close().catch(() => {});
  console.log("DONE");
  process.exit(0);
} catch (error) {
  fail(`${error?.stack ?? error}`);
}
