// The official MCP TypeScript SDK client against examples/minimal-server
// (stateful mode). Usage: node client.mjs <mcp-url> <bearer-token>
// Prints one line per check; exits non-zero on the first failure.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, token] = process.argv.slice(2);
function check(ok, what) {
  if (!ok) {
    console.error(`FAILED: ${what}`);
    process.exit(1);
  }
  console.log(`ok: ${what}`);
}

// Without a token: 401, which the SDK reports as an error.
const anonymous = new Client({ name: "ts-anonymous", version: "1" });
let refused = false;
try {
  await anonymous.connect(new StreamableHTTPClientTransport(new URL(url)));
} catch (error) {
  refused = /401|nauthorized/.test(String(error));
}
check(refused, "without a token the connection is refused (401)");

const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${token}` } },
});
const client = new Client({ name: "ts-minimal", version: "1" });
await client.connect(transport);
check(typeof transport.sessionId === "string" && transport.sessionId.length === 43,
  `stateful: a bound session id (${transport.sessionId?.length} chars)`);
const { tools } = await client.listTools();
check(tools.map((t) => t.name).join(",") === "whoami", `tools: ${tools.map((t) => t.name)}`);
const result = await client.callTool({ name: "whoami", arguments: {} });
const text = result.content?.[0]?.text;
check(text === "You are alice", `whoami: ${text}`);
await transport.terminateSession();
await client.close();
console.log("minimal-server TS client: all checks passed");
