/**
 * Streamable HTTP for remote agents. Each request carries the agent's own Vault token as its
 * bearer token, so every tool call is made, and audited, as that agent; there is no separate
 * MCP credential. Stateless: a fresh MCP server per request.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { UnauthenticatedError, Vault } from '../sdk/index.js';
import { createVaultMcpServer } from './server.js';
import type { ToolLimits } from './tools.js';

export interface HttpServeOptions {
  /** 127.0.0.1 unless you put it behind TLS. */
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** The Vault server the agents' tokens belong to. */
  addr?: string;
  tenant?: string;
  env: Record<string, string | undefined>;
  cwd: string;
  limits?: ToolLimits;
  /** Called with each request failure that is not the client's fault (never with a token). */
  onError?: (err: unknown) => void;
}

export interface HttpMcpServer {
  /** `http://HOST:PORT/mcp` */
  url: string;
  close(): Promise<void>;
}

const maxBodyBytes = 4 * 1024 * 1024;
const cacheMs = 60_000;

const jsonRpcError = (
  res: ServerResponse,
  status: number,
  message: string,
  headers: Record<string, string> = {},
) => {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message }, id: null }));
};

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > maxBodyBytes) throw new RangeError('request body too large');
    chunks.push(chunk as Buffer);
  }
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

export async function serveHttp(options: HttpServeOptions): Promise<HttpMcpServer> {
  // Tokens are validated (whoami) once a minute; every Vault call re-checks them anyway.
  const connections = new Map<string, { vault: Vault; at: number }>();
  const connectAs = async (token: string): Promise<Vault> => {
    const key = createHash('sha256').update(token).digest('hex');
    const cached = connections.get(key);
    if (cached && Date.now() - cached.at < cacheMs) return cached.vault;
    const vault = await Vault.connect({
      token,
      ...(options.addr !== undefined && { addr: options.addr }),
      ...(options.tenant !== undefined && { tenant: options.tenant }),
    });
    if (connections.size > 1000) connections.clear();
    connections.set(key, { vault, at: Date.now() });
    return vault;
  };

  const loopback = ['127.0.0.1', 'localhost', '::1'].includes(options.host);

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (path !== '/mcp') return jsonRpcError(res, 404, 'not found: the MCP endpoint is /mcp');
    if (req.method !== 'POST')
      return jsonRpcError(res, 405, 'method not allowed: this server is stateless, use POST', {
        allow: 'POST',
      });
    const match = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    if (!match) {
      return jsonRpcError(res, 401, 'a Vault token is required: send "Authorization: Bearer <token>"', {
        'www-authenticate': 'Bearer realm="vault-mcp"',
      });
    }
    const token = match[1]!;
    let vault: Vault;
    try {
      vault = await connectAs(token);
    } catch (err) {
      if (err instanceof UnauthenticatedError) {
        return jsonRpcError(res, 401, `the Vault token was rejected: ${err.message}`, {
          'www-authenticate': 'Bearer realm="vault-mcp", error="invalid_token"',
        });
      }
      options.onError?.(err);
      return jsonRpcError(res, 502, `cannot reach Vault: ${(err as Error).message}`);
    }
    let body: unknown;
    try {
      body = await readJson(req);
    } catch (err) {
      return jsonRpcError(
        res,
        err instanceof RangeError ? 413 : 400,
        `invalid request body: ${(err as Error).message}`,
      );
    }
    const server = createVaultMcpServer({
      vault: async () => vault,
      token,
      env: options.env,
      cwd: options.cwd,
      ...(options.limits && { limits: options.limits }),
    });
    const port = (httpServer.address() as AddressInfo).port;
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: undefined,
      enableJsonResponse: true,
      ...(loopback && {
        enableDnsRebindingProtection: true,
        allowedHosts: [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`],
      }),
    });
    res.on('close', () => {
      void transport.close();
      void server.close();
    });
    await server.connect(transport);
    await transport.handleRequest(req, res, body);
  }

  const httpServer = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      options.onError?.(err);
      if (!res.headersSent) jsonRpcError(res, 500, 'internal error');
      else res.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(options.port, options.host, () => resolve());
  });
  const { port } = httpServer.address() as AddressInfo;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    url: `http://${host}:${port}/mcp`,
    close: () =>
      new Promise<void>((resolve) => {
        httpServer.close(() => resolve());
        httpServer.closeAllConnections();
      }),
  };
}
