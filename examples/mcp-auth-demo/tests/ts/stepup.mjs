// The official MCP TypeScript SDK through a step-up against the mcp-auth
// demo: sign in (the 401 names mcp:tools), read_note (403: notes:read),
// save_note (403: notes:write), read_note again. Each 403 makes the SDK
// call auth() with the challenge's scopes. The challenge names what the
// call needs plus what the token already has, so the last read_note needs
// no further consent: three consents in all.
// Usage: node stepup.mjs <mcp-url> <norefresh|refresh>
//   norefresh: the client is registered without the refresh_token grant:
//              the SDK goes through /authorize for each step-up.
//   refresh:   with a refresh token the SDK (1.32.2) refreshes without a
//              scope, gets the same scope back and reports "403 after
//              trying upscoping"; the application then drops its refresh
//              token and reconnects, and the SDK goes through /authorize
//              with the challenge's scopes. The script checks both.
// Prints one line per check; exits non-zero on the first failure.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport, StreamableHTTPError } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { browser as scriptedBrowser, field } from "./browser.mjs";

const [url, mode] = process.argv.slice(2);
const user = "ts-stepup@example.com";
function check(ok, what) {
  if (!ok) {
    console.error(`FAILED: ${what}`);
    process.exit(1);
  }
  console.log(`ok: ${what}`);
}

const redirectUrl = "http://localhost:48998/callback";
const provider = {
  get redirectUrl() { return redirectUrl; },
  get clientMetadata() {
    return {
      client_name: `TS SDK step-up (${mode})`,
      redirect_uris: [redirectUrl],
      grant_types: mode === "refresh" ? ["authorization_code", "refresh_token"] : ["authorization_code"],
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

let consents = 0;
let authorizations = 0;
// The browser part of a sign-in the SDK asked for: log in if asked, approve.
async function browser(transport) {
  authorizations += 1;
  const authorizationUrl = new URL(provider.authorizationUrl);
  let page = await load(authorizationUrl);
  if (page.html.includes('name="user"')) {
    page = await load(new URL("/login", authorizationUrl), {
      pending: field(page.html, "pending"), csrf: field(page.html, "csrf"), user,
    });
  }
  let back = page;
  if (page.status === 200) {
    check(page.html.includes("Allow"), `a consent page (${authorizationUrl.searchParams.get("scope")})`);
    consents += 1;
    back = await load(new URL("/consent", authorizationUrl), {
      pending: field(page.html, "pending"), csrf: field(page.html, "csrf"), decision: "approve",
    });
  }
  const callback = new URL(back.location);
  check(back.status === 303 && callback.searchParams.get("code"), "back at the client with a code");
  await transport.finishAuth(callback.searchParams.get("code"));
}

let transport;
let client;
async function connect() {
  transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
  client = new Client({ name: "ts-stepup", version: "1" });
  try {
    await client.connect(transport);
  } catch (error) {
    check(error instanceof UnauthorizedError, "the 401 asks for a sign-in");
    await browser(transport);
    transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
    client = new Client({ name: "ts-stepup", version: "1" });
    await client.connect(transport);
  }
}
await connect();
check(consents === 1, "signed in with one consent");

async function call(name, args) {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await client.callTool({ name, arguments: args });
    } catch (error) {
      if (error instanceof UnauthorizedError) {
        await browser(transport);
        continue;
      }
      if (error instanceof StreamableHTTPError && String(error.message).includes("after trying upscoping")) {
        check(mode === "refresh", `the SDK refreshed instead of re-authorizing (${error.message})`);
        // What an application does then: forget the refresh token and
        // reconnect, so the SDK goes through /authorize with the
        // challenge's scopes.
        provider.saved = { ...provider.saved, refresh_token: undefined };
        await client.close();
        await connect();
        continue;
      }
      throw error;
    }
  }
  throw new Error(`${name}: no success after three attempts`);
}

const first = await call("read_note", {});
check(!first.isError, `read_note after a step-up (${consents} consents)`);
const saved = await call("save_note", { text: "from the TypeScript SDK" });
check(!saved.isError, `save_note after a step-up (${consents} consents)`);
const before = authorizations;
const again = await call("read_note", {});
check(!again.isError && authorizations === before,
  `read_note again needs no further authorization: the challenge kept notes:read (${authorizations - before} more)`);
check(consents === 3, `read, write, read in three consents (${consents})`);
await client.close();
console.log("all checks passed");
