// A streamable-HTTP MCP server in TypeScript (the official SDK), for the guard's tests:
// stateless, answering with JSON (--json) or with SSE events, and accepting JSON-RPC
// batches as MCP 2025-03-26 allowed. Listens on 127.0.0.1 only.
//   node mcp_ts_server.mjs PORT [--json]
import http from "node:http";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";

const port = Number(process.argv[2]);
const json = process.argv.includes("--json");

function build() {
  const server = new McpServer({ name: "orders-ts", version: "1.0.0" });
  const text = (t) => ({ content: [{ type: "text", text: t }] });
  server.registerTool(
    "search_orders",
    { description: "Search orders", _meta: { "com.example/ui": { icon: "search" } } },
    async () => text("2 orders"),
  );
  server.registerTool("refund_order", { description: "Refund an order" }, async () =>
    text("refunded"),
  );
  server.registerTool("internal_debug", { description: "Not in the manifest" }, async () =>
    text("debug"),
  );
  return server;
}

http
  .createServer(async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString()) : undefined;
    // Stateless: a new server and transport per request (the SDK's documented pattern).
    const server = build();
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: undefined,
      enableJsonResponse: json,
    });
    res.on("close", () => {
      transport.close();
      server.close();
    });
    await server.connect(transport);
    await transport.handleRequest(req, res, body);
  })
  .listen(port, "127.0.0.1", () => console.log("listening"));
