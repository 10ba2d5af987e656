// The enterprise IdP of the end-to-end tests: panva's oidc-provider (OpenID Certified)
// signs people in (devInteractions pages) and issues ID tokens; registered on it, the
// token exchange of SEP-990 §4 (RFC 8693) turns an ID token the client holds into an
// Identity Assertion JWT Authorization Grant for one resource authorization server,
// signed with the provider's own key, the one its discovery document's JWKS publishes.
// Usage: node idp.mjs <config.json>; prints one "ready" JSON line on stdout.
// config: {node_modules, port, clients: [...], id_jag: {audience, client_ids: {idp: ras}}}
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const load = (name, file) => import(pathToFileURL(join(config.node_modules, name, file)).href);
const { default: Provider, errors } = await load('oidc-provider', 'lib/index.js');
const jose = await load('jose', 'dist/webapi/index.js');

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ID_TOKEN = 'urn:ietf:params:oauth:token-type:id_token';
const ID_JAG = 'urn:ietf:params:oauth:token-type:id-jag';

const issuer = `http://127.0.0.1:${config.port}`;
const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'idp-es256', alg: 'ES256', use: 'sig' };
const signingKey = await jose.importJWK(jwk, 'ES256');
const { d: _private, ...publicJwk } = jwk;
const verifyingKey = await jose.importJWK(publicJwk, 'ES256');

const provider = new Provider(issuer, {
  clients: config.clients,
  jwks: { keys: [jwk] },
  scopes: ['openid', 'email', 'profile'],
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
  findAccount: async (ctx, id) => ({
    accountId: id,
    claims: async () => ({ sub: id, email: `${id}@acme.example`, email_verified: true }),
  }),
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => true },
});
provider.proxy = false;

provider.registerGrantType(
  TOKEN_EXCHANGE,
  async (ctx) => {
    const params = ctx.oidc.params;
    const client = ctx.oidc.client.clientId;
    if (params.requested_token_type !== ID_JAG || params.subject_token_type !== ID_TOKEN) {
      throw new errors.InvalidRequest('this IdP exchanges ID tokens for ID-JAGs only');
    }
    let person;
    try {
      // SEP-990 §4.1: the ID token is this IdP's, issued to the requesting client.
      ({ payload: person } = await jose.jwtVerify(params.subject_token, verifyingKey, {
        issuer,
        audience: client,
      }));
    } catch {
      throw new errors.InvalidGrant('the subject token is not an ID token issued to this client');
    }
    // Policy: which resource authorization server, and the client's id there (SEP-990 §6.1).
    const rasClient = config.id_jag.client_ids[client];
    if (params.audience !== config.id_jag.audience || !rasClient) {
      throw new errors.InvalidGrant('no ID-JAG for that audience from this client');
    }
    const claims = { sub: person.sub, client_id: rasClient, resource: params.resource };
    if (params.scope) claims.scope = params.scope;
    if (person.auth_time) claims.auth_time = person.auth_time;
    const grant = await new jose.SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256', typ: 'oauth-id-jag+jwt', kid: jwk.kid })
      .setIssuer(issuer)
      .setAudience(params.audience)
      .setIssuedAt()
      .setExpirationTime('5m')
      .setJti(randomUUID())
      .sign(signingKey);
    ctx.body = { access_token: grant, issued_token_type: ID_JAG, token_type: 'N_A', expires_in: 300 };
    if (params.scope) ctx.body.scope = params.scope;
  },
  ['subject_token', 'subject_token_type', 'requested_token_type', 'audience', 'resource', 'scope'],
);

provider.listen(config.port, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ ready: true, issuer }) + '\n');
});
