// A real third-party authorization server for the client tests: panva's oidc-provider
// (OpenID Certified), configured for MCP: DCR, PKCE S256, resource indicators (RFC 8707)
// becoming the JWT access token audience, rotating refresh tokens, client_credentials.
// Usage: node oidc_provider.mjs <config.json>; prints one "ready" JSON line on stdout.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const { default: Provider } = await import(
  pathToFileURL(join(config.node_modules, 'oidc-provider', 'lib', 'index.js')).href
);

const issuer = `http://127.0.0.1:${config.port}`;
const resourceScopes = config.scopes.join(' ');

const provider = new Provider(issuer, {
  clients: config.clients,
  scopes: ['openid', 'offline_access', ...config.scopes],
  pkce: { required: () => true },
  rotateRefreshToken: true,
  // Plain OAuth requests (no openid scope) get a refresh token whenever the client may use one.
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  ttl: {
    AccessToken: config.access_token_ttl ?? 900,
    ClientCredentials: config.access_token_ttl ?? 900,
    RefreshToken: 30 * 24 * 3600,
  },
  features: {
    devInteractions: { enabled: true },
    registration: { enabled: true },
    revocation: { enabled: true },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => config.resource,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resourceIndicator) => {
        if (resourceIndicator !== config.resource) throw new Error('unknown resource');
        return {
          scope: resourceScopes,
          audience: resourceIndicator,
          accessTokenTTL: config.access_token_ttl ?? 900,
          accessTokenFormat: 'jwt',
        };
      },
    },
  },
  // Consent for resource scopes is granted on the devInteractions confirm page.
  loadExistingGrant: undefined,
});
provider.proxy = false;

provider.listen(config.port, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ ready: true, issuer }) + '\n');
});
