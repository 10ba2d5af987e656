// A small MCP client application on the TypeScript SDK, the way an app uses it: the SDK's own
// StreamableHTTPClientTransport with an OAuthClientProvider the app implements (tokens in
// memory, a loopback callback server, "open the browser" = print the URL for the test's
// browser), or the SDK's ClientCredentialsProvider for a machine client.
//
//   node driver.mjs sdk1|sdk2 <mcp-url> [client-credentials]
//
// Commands arrive on stdin, one JSON object a line: {"id", "op": connect | list_tools | call
// | close, "name", "arguments"}. Answers go to stdout, one JSON object a line: {"id", "ok",
// "result" | "error"}; events ({"event": "authorize", "url"}, {"event": "tokens", ...}) go
// there too. Nothing printed carries a token, code or verifier.
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import readline from 'node:readline';

const [flavour, serverUrl, mode] = process.argv.slice(2);

async function loadSdk() {
    if (flavour === 'sdk1') {
        const { Client } = await import('@modelcontextprotocol/sdk/client/index.js');
        const { StreamableHTTPClientTransport } = await import('@modelcontextprotocol/sdk/client/streamableHttp.js');
        const { UnauthorizedError } = await import('@modelcontextprotocol/sdk/client/auth.js');
        const { ClientCredentialsProvider } = await import('@modelcontextprotocol/sdk/client/auth-extensions.js');
        return {
            Client,
            StreamableHTTPClientTransport,
            UnauthorizedError,
            ClientCredentialsProvider,
            label: 'TypeScript SDK 1.x',
            // 1.x takes the bare code.
            finish: (transport, params) => transport.finishAuth(params.get('code'))
        };
    }
    if (flavour === 'sdk2') {
        const sdk = await import('@modelcontextprotocol/client');
        return {
            ...sdk,
            label: 'TypeScript SDK 2.x',
            // 2.x takes the whole callback query, so it can check RFC 9207 `iss` itself.
            finish: (transport, params) => transport.finishAuth(params)
        };
    }
    throw new Error(`unknown SDK flavour ${flavour}`);
}

const sdk = await loadSdk();
const emit = message => process.stdout.write(JSON.stringify(message) + '\n');

// The loopback redirect target (RFC 8252 §7.3): any free port on 127.0.0.1.
let deliver = null;
let pendingCallback = null;
const callbackServer = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    if (url.pathname !== '/callback') {
        res.writeHead(404).end();
        return;
    }
    res.writeHead(200, { 'content-type': 'text/html' }).end('<h1>Signed in. You can close this window.</h1>');
    deliver?.(url.searchParams);
    deliver = null;
});
await new Promise(resolve => callbackServer.listen(0, '127.0.0.1', resolve));
const redirectUrl = `http://127.0.0.1:${callbackServer.address().port}/callback`;

class AppProvider {
    constructor() {
        this.lastState = undefined;
    }
    get redirectUrl() {
        return redirectUrl;
    }
    get clientMetadata() {
        return {
            client_name: `mcpward interop (${sdk.label})`,
            redirect_uris: [redirectUrl],
            grant_types: ['authorization_code', 'refresh_token'],
            response_types: ['code'],
            token_endpoint_auth_method: 'none'
        };
    }
    state() {
        this.lastState = randomUUID();
        return this.lastState;
    }
    clientInformation() {
        return this._client;
    }
    saveClientInformation(info) {
        this._client = info;
        emit({ event: 'registered', client_id: info.client_id });
    }
    tokens() {
        return this._tokens;
    }
    saveTokens(tokens) {
        this._tokens = tokens;
        emit({ event: 'tokens', scope: tokens.scope, expires_in: tokens.expires_in, refresh_token: !!tokens.refresh_token });
    }
    redirectToAuthorization(url) {
        pendingCallback = new Promise(resolve => {
            deliver = resolve;
        });
        emit({ event: 'authorize', url: url.href });
    }
    saveCodeVerifier(verifier) {
        this._verifier = verifier;
    }
    codeVerifier() {
        return this._verifier;
    }
}

function machineProvider() {
    const provider = new sdk.ClientCredentialsProvider({
        clientId: process.env.MCP_CLIENT_ID,
        clientSecret: process.env.MCP_CLIENT_SECRET,
        expectedIssuer: process.env.MCP_EXPECTED_ISSUER,
        clientName: `mcpward interop (${sdk.label}, client credentials)`
    });
    const save = provider.saveTokens.bind(provider);
    provider.saveTokens = tokens => {
        save(tokens);
        emit({ event: 'tokens', scope: tokens.scope, expires_in: tokens.expires_in, refresh_token: !!tokens.refresh_token });
    };
    return provider;
}

const provider = mode === 'client-credentials' ? machineProvider() : new AppProvider();
let client = null;
let transport = null;

// Runs `operation`; when the SDK stops for a browser sign-in (UnauthorizedError after
// redirectToAuthorization), waits for the callback, hands the code to the SDK, and retries.
async function authorized(operation) {
    for (let round = 0; ; round++) {
        try {
            return await operation();
        } catch (error) {
            if (!(error instanceof sdk.UnauthorizedError) || pendingCallback === null || round >= 3) {
                throw error;
            }
            const params = await pendingCallback;
            pendingCallback = null;
            if (params.get('error')) {
                throw new Error(`authorization refused: ${params.get('error')}`);
            }
            if (params.get('state') !== provider.lastState) {
                throw new Error('the callback state does not match the request');
            }
            await sdk.finish(transport, params);
        }
    }
}

async function connect() {
    await authorized(async () => {
        client = new sdk.Client({ name: 'mcpward-interop', version: '1.0.0' });
        transport = new sdk.StreamableHTTPClientTransport(new URL(serverUrl), { authProvider: provider });
        await client.connect(transport);
    });
    return { server: client.getServerVersion?.()?.name ?? null };
}

const operations = {
    connect,
    list_tools: async () => (await authorized(() => client.listTools())).tools,
    call: async command => authorized(() => client.callTool({ name: command.name, arguments: command.arguments ?? {} })),
    close: async () => {
        await client?.close();
        return null;
    }
};

function describe(error) {
    return {
        name: error?.constructor?.name ?? 'Error',
        message: String(error?.message ?? error),
        code: error?.code ?? error?.status ?? null
    };
}

const input = readline.createInterface({ input: process.stdin });
for await (const line of input) {
    if (!line.trim()) continue;
    const command = JSON.parse(line);
    try {
        emit({ id: command.id, ok: true, result: await operations[command.op](command) });
    } catch (error) {
        emit({ id: command.id, ok: false, error: describe(error) });
    }
    if (command.op === 'close') break;
}
callbackServer.close();
process.exit(0);
