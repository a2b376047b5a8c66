// oidc-provider on loopback as the upstream identity provider of the
// mcp-auth-oauth-server proxy. Usage: node provider.mjs <port> <redirect_uri>
// Prints "READY <issuer>". Development interactions: any login/password.
import { generateKeyPairSync } from "node:crypto";
import Provider from "oidc-provider";

const [port, redirectUri] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
const jwk = { ...privateKey.export({ format: "jwk" }), kid: "upstream-es256", alg: "ES256", use: "sig" };

const provider = new Provider(issuer, {
  clients: [{
    client_id: "mcp-proxy",
    client_secret: "mcp-proxy-client-secret",
    redirect_uris: [redirectUri],
    grant_types: ["authorization_code", "refresh_token"],
    response_types: ["code"],
    token_endpoint_auth_method: "client_secret_basic",
    id_token_signed_response_alg: "ES256",
  }],
  jwks: { keys: [jwk] },
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true }, revocation: { enabled: true } },
  scopes: ["openid", "offline_access", "email"],
  claims: { openid: ["sub"], email: ["email"] },
  issueRefreshToken: async () => true,
  rotateRefreshToken: () => true,
  async findAccount(ctx, sub) {
    return { accountId: sub, async claims() { return { sub, email: `${sub}@example.com` }; } };
  },
});
provider.proxy = false;
provider.listen(Number(port), "127.0.0.1", () => console.log(`READY ${issuer}`));
