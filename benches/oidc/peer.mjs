// npm oidc-provider as the authorization-server bench's peer: the same
// refresh grants the bench sends our server (a public client, rotation on,
// an ES256-signed JWT access token for one resource), on its in-memory
// adapter. Usage: node peer.mjs <port> <resource> <grants>
// Mints <grants> refresh tokens (each on its own grant, as a finished
// sign-in would leave them; no `openid` scope, so one signature per
// refresh, as ours) and prints "READY <issuer> <token> <token> …".
import { generateKeyPairSync } from "node:crypto";
import Provider from "oidc-provider";

const [port, resource, count] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
const jwk = { ...privateKey.export({ format: "jwk" }), kid: "bench-es256", alg: "ES256", use: "sig" };

const provider = new Provider(issuer, {
  clients: [{
    client_id: "bench",
    token_endpoint_auth_method: "none",
    redirect_uris: ["http://localhost:1/cb"],
    grant_types: ["authorization_code", "refresh_token"],
    response_types: ["code"],
    id_token_signed_response_alg: "ES256",
  }],
  jwks: { keys: [jwk] },
  scopes: ["openid", "offline_access"],
  features: {
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: "mcp:tools",
        audience: resource,
        accessTokenFormat: "jwt",
        jwt: { sign: { alg: "ES256" } },
      }),
    },
  },
  issueRefreshToken: async () => true,
  rotateRefreshToken: () => true,
  async findAccount(ctx, sub) {
    return { accountId: sub, async claims() { return { sub }; } };
  },
});
provider.proxy = false;

const client = await provider.Client.find("bench");
const tokens = [];
for (let i = 0; i < Number(count); i++) {
  const accountId = `bench-user-${i}`;
  const grant = new provider.Grant({ accountId, clientId: "bench" });
  grant.addOIDCScope("offline_access");
  grant.addResourceScope(resource, "mcp:tools");
  const grantId = await grant.save();
  const refresh = new provider.RefreshToken({
    client,
    accountId,
    grantId,
    gty: "authorization_code",
    scope: "offline_access",
    resource,
    authTime: Math.floor(Date.now() / 1000),
  });
  tokens.push(await refresh.save());
}
provider.listen(Number(port), "127.0.0.1", () => console.log(`READY ${issuer} ${tokens.join(" ")}`));
