// A real, OpenID Certified provider (panva/oidc-provider) for the upstream sign-in tests.
// Usage: node oidc_provider.mjs PORT CLIENT_ID CLIENT_SECRET REDIRECT_URI
// Any login/password is accepted by its development interactions; the account id is the
// login typed, and its email is <login>@corp.example (verified).
// Run with cwd = tests/node: the package is resolved from there, not from this file.
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const requireFromCwd = createRequire(`${process.cwd()}/`);
const entry = requireFromCwd.resolve('oidc-provider');
const { default: Provider } = await import(pathToFileURL(entry).href);

const [port, clientId, clientSecret, redirectUri] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'],
  },
  conformIdTokenClaims: false,
  cookies: { keys: ['mcpward-test-cookie-key'] },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          email: `${id}@corp.example`,
          email_verified: true,
          name: `User ${id}`,
          groups: id.startsWith('admin') ? ['mcp-admins'] : ['staff'],
        };
      },
    };
  },
});

const server = provider.listen(Number(port), '127.0.0.1', () => {
  process.stdout.write('READY\n');
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
