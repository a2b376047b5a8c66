// The official MCP TypeScript SDK against the mcp-auth demo server.
// Usage: node interop.mjs <mcp-url> <bearer-token>
// Prints one line per check; exits non-zero on the first failure.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import {
  discoverOAuthProtectedResourceMetadata,
  extractWWWAuthenticateParams,
} from "@modelcontextprotocol/sdk/client/auth.js";
import { checkResourceAllowed } from "@modelcontextprotocol/sdk/shared/auth-utils.js";

const [url, token] = process.argv.slice(2);
if (!url || !token) {
  console.error("usage: node interop.mjs <mcp-url> <bearer-token>");
  process.exit(2);
}

function check(ok, what) {
  if (!ok) {
    console.error(`FAILED: ${what}`);
    process.exit(1);
  }
  console.log(`ok: ${what}`);
}

// 1. An unauthenticated request gets a 401 whose challenge the SDK parses.
const unauthenticated = await fetch(url, {
  method: "POST",
  headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
  body: JSON.stringify({
    jsonrpc: "2.0", id: 1, method: "initialize",
    params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "ts", version: "1" } },
  }),
});
check(unauthenticated.status === 401, `unauthenticated request: ${unauthenticated.status}`);
const { resourceMetadataUrl, scope } = extractWWWAuthenticateParams(unauthenticated);
check(resourceMetadataUrl instanceof URL, `challenge resource_metadata: ${resourceMetadataUrl}`);
check(scope === "mcp:tools", `challenge scope: ${scope}`);

// 2. The SDK's discovery, from the challenge's URL and from the server URL alone.
const fromChallenge = await discoverOAuthProtectedResourceMetadata(url, { resourceMetadataUrl });
check(fromChallenge.resource === url, `metadata resource: ${fromChallenge.resource}`);
check(
  checkResourceAllowed({ requestedResource: url, configuredResource: fromChallenge.resource }),
  "the SDK accepts the metadata's resource for this server URL",
);
check(
  Array.isArray(fromChallenge.authorization_servers) && fromChallenge.authorization_servers.length === 1,
  `authorization servers: ${fromChallenge.authorization_servers}`,
);
check(
  JSON.stringify(fromChallenge.bearer_methods_supported) === '["header"]',
  "bearer_methods_supported: header only",
);
const fromWellKnown = await discoverOAuthProtectedResourceMetadata(url);
check(fromWellKnown.resource === url, "path-aware well-known discovery finds the same document");

// 3. Connect with the token, list and call tools.
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${token}` } },
});
const client = new Client({ name: "mcp-auth-ts-interop", version: "1.0.0" });
await client.connect(transport);
check(true, `connected (session ${transport.sessionId ? "bound" : "none"})`);
const { tools } = await client.listTools();
const names = tools.map((t) => t.name).sort();
check(JSON.stringify(names) === '["echo","read_note","save_note","whoami"]', `tools/list: ${names}`);
const who = await client.callTool({ name: "whoami", arguments: {} });
check(who.content?.[0]?.text?.includes("alice@example.com"), `tools/call whoami: ${who.content?.[0]?.text}`);
const echo = await client.callTool({ name: "echo", arguments: { text: "from typescript" } });
check(echo.content?.[0]?.text === "from typescript", "tools/call echo");
await client.close();
console.log("TS SDK interop: all checks passed");
