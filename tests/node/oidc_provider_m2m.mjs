// A real third-party authorization server: oidc-provider (a certified OpenID provider), one
// process, issuing ES256 RFC 9068 JWT access tokens for client_credentials with resource
// indicators (RFC 8707). Used by the guard's external-issuer tests and as the baseline of
// bench/token_endpoint.py. Run with cwd=tests/node so that oidc-provider resolves.
// DPoP (RFC 9449) is on, as oidc-provider's default: a token request with a proof gets a
// DPoP-bound token (cnf.jkt). TOKEN_FORMAT=opaque in the environment issues opaque access
// tokens instead of JWTs (read through introspection, which then returns cnf).
// Usage: node oidc_provider_m2m.mjs PORT RESOURCE [CLIENT_ID CLIENT_SECRET]
import { generateKeyPairSync } from 'node:crypto';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(path.join(process.cwd(), 'package.json'));
const { default: Provider } = await import(require.resolve('oidc-provider'));

const [port, resource, clientId = 'agent', clientSecret = 'agent-secret-for-tests-only'] =
  process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;
const accessTokenFormat = process.env.TOKEN_FORMAT === 'opaque' ? 'opaque' : 'jwt';
const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'op-es256', alg: 'ES256', use: 'sig' };

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'ES256',
    },
  ],
  jwks: { keys: [jwk] },
  scopes: ['orders.read', 'orders.write', 'refund.admin'],
  ttl: { ClientCredentials: 900 },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    dPoP: { enabled: true },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, indicator) => {
        if (indicator !== resource) throw new Error('unknown resource');
        return {
          scope: 'orders.read orders.write refund.admin',
          audience: indicator,
          accessTokenTTL: 900,
          accessTokenFormat,
          jwt: { sign: { alg: 'ES256' } },
        };
      },
    },
  },
});
provider.proxy = false;
const server = provider.listen(Number(port), '127.0.0.1', () => {
  process.stdout.write(`ready ${issuer}\n`);
});
// Keep-alive connections from a load generator would hold server.close() open: give up
// waiting after 2 s.
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
});
