// The official MCP TypeScript SDK signs in to an MCP server whose
// authorization server proxies oidc-provider, then calls a tool that uses
// the upstream token. Usage: node client.mjs <mcp-url>
// Talks to the Rust test on stdout/stdin: prints "SIGNED_IN", "CALLED <text>"
// and waits for a line "GO" after each, so the test can inspect and change
// the servers between phases. Exits non-zero on the first failure.
import { createInterface } from "node:readline";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { auth, UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";

const [url] = process.argv.slice(2);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function waitGo() {
  const { value } = await lines.next();
  if (value !== "GO") fail(`expected GO, got ${value}`);
}
function fail(what) { console.error(`FAILED: ${what}`); process.exit(1); }
function check(ok, what) { if (!ok) fail(what); console.error(`ok: ${what}`); }

const redirectUrl = "http://localhost:48998/callback";
const provider = {
  get redirectUrl() { return redirectUrl; },
  get clientMetadata() {
    return { client_name: "TS SDK via the proxy", redirect_uris: [redirectUrl],
      grant_types: ["authorization_code", "refresh_token"], response_types: ["code"],
      token_endpoint_auth_method: "none" };
  },
  clientInformation() { return this.client; },
  saveClientInformation(info) { this.client = info; },
  tokens() { return this.saved; },
  saveTokens(tokens) { this.saved = tokens; },
  redirectToAuthorization(authorizationUrl) { this.authorizationUrl = authorizationUrl; },
  saveCodeVerifier(verifier) { this.verifier = verifier; },
  codeVerifier() { return this.verifier; },
};

// A browser across both sites: cookies per host, redirects followed by
// hand, forms filled: our consent (approve), oidc-provider's login and
// consent (development interactions).
const jars = new Map();
async function load(target, form) {
  const jar = jars.get(target.host) ?? new Map();
  jars.set(target.host, jar);
  const response = await fetch(target, {
    method: form ? "POST" : "GET", redirect: "manual",
    headers: { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join("; "),
      ...(form ? { "content-type": "application/x-www-form-urlencoded" } : {}) },
    body: form ? new URLSearchParams(form).toString() : undefined,
  });
  for (const line of response.headers.getSetCookie()) {
    const [pair] = line.split(";");
    const at = pair.indexOf("=");
    jar.set(pair.slice(0, at), pair.slice(at + 1));
  }
  return { status: response.status, location: response.headers.get("location"), html: await response.text() };
}
const unescape = (s) => s.replaceAll("&quot;", '"').replaceAll("&lt;", "<").replaceAll("&gt;", ">").replaceAll("&amp;", "&");
async function browse(start) {
  let at = new URL(start);
  let page = await load(at);
  const seen = [];
  for (let step = 0; step < 16; step++) {
    if (page.status >= 300 && page.status < 400) {
      const next = new URL(page.location, at);
      if (next.href.startsWith(redirectUrl)) return { callback: next, seen };
      at = next;
      page = await load(at);
      continue;
    }
    const form = page.html.match(/<form[^>]*>[\s\S]*?<\/form>/);
    if (!form) fail(`no form at ${at.href} (${page.status}): ${page.html.slice(0, 300)}`);
    const action = unescape(form[0].match(/action="([^"]*)"/)[1]);
    const fields = {};
    for (const input of form[0].matchAll(/<input[^>]*type="hidden"[^>]*>/g)) {
      const name = input[0].match(/name="([^"]*)"/)?.[1];
      const value = input[0].match(/value="([^"]*)"/)?.[1];
      if (name) fields[name] = unescape(value ?? "");
    }
    if (form[0].includes('value="approve"')) { fields.decision = "approve"; seen.push(`our consent at ${at.host}`); }
    else if (form[0].includes('name="login"')) { Object.assign(fields, { prompt: "login", login: "alice", password: "any" }); seen.push(`provider login at ${at.host}`); }
    else { fields.prompt = fields.prompt ?? "consent"; seen.push(`provider consent at ${at.host}`); }
    at = new URL(action, at);
    page = await load(at, fields);
  }
  fail("the browser never came back to the client");
}

// 1. Discovery, registration, the browser through our consent and the
// provider's login and consent, and the code exchange.
const first = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
try {
  await new Client({ name: "ts-sdk-proxy", version: "1" }).connect(first);
  fail("connected without signing in");
} catch (error) {
  check(error instanceof UnauthorizedError && provider.authorizationUrl, "the SDK asked for a browser sign-in");
}
const { callback, seen } = await browse(provider.authorizationUrl);
check(seen[0]?.startsWith("our consent"), `our consent came before the provider: ${seen.join(" → ")}`);
check(seen.some((s) => s.startsWith("provider login")), "the provider's login page");
await first.finishAuth(callback.searchParams.get("code"));
const ours = provider.saved;
check(typeof ours?.access_token === "string" && ours.refresh_token, "the SDK holds our access and refresh tokens");
const claims = JSON.parse(Buffer.from(ours.access_token.split(".")[1], "base64url"));
check(claims.sub === "oidc:alice", `our token's subject is the provider's, namespaced: ${claims.sub}`);
console.log(`SIGNED_IN ${JSON.stringify(ours)}`);
await waitGo();

// 2. A tool that calls the provider's userinfo with the upstream token
// (refreshed first: it is due).
const client = new Client({ name: "ts-sdk-proxy", version: "1" });
await client.connect(new StreamableHTTPClientTransport(new URL(url), { authProvider: provider }));
const { tools } = await client.listTools();
check(tools.some((t) => t.name === "upstream_profile"), `tools/list: ${tools.map((t) => t.name)}`);
const profile = await client.callTool({ name: "upstream_profile", arguments: {} });
check(!profile.isError && profile.content?.[0]?.text?.includes("alice@example.com"), `upstream_profile: ${profile.content?.[0]?.text}`);
console.log(`CALLED ${profile.content[0].text}`);
await waitGo();

// 3. The provider killed the refresh token: the tool says reconnect, and
// our grant is gone (the SDK's refresh fails).
const dead = await client.callTool({ name: "upstream_profile", arguments: {} });
check(dead.isError && /reconnect your oidc account/i.test(dead.content?.[0]?.text ?? ""), `after invalid_grant: ${dead.content?.[0]?.text}`);
await client.close();
let refreshed;
try {
  provider.saved = { ...provider.saved, access_token: "expired" };
  refreshed = await auth(provider, { serverUrl: url });
} catch (error) {
  refreshed = `error: ${error.message}`;
}
check(refreshed !== "AUTHORIZED", `our refresh token no longer works: ${refreshed}`);
console.log("DONE all checks passed");
process.exit(0);
