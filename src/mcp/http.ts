/**
 * Streamable HTTP for remote agents. Each request carries the agent's own Vault token as its
 * bearer token, so every tool call is made, and audited, as that agent (with the agent's
 * address, forwarded to Vault); there is no separate MCP credential. Stateless: a fresh MCP
 * server per request. Commands run on this host only when the operator allows it.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { type AddressInfo, isIP } from 'node:net';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { UnauthenticatedError, Vault } from '../sdk/index.js';
import { createVaultMcpServer } from './server.js';
import { requireAgentToken, ServingIdentityError } from './serving-identity.js';
import type { ToolLimits } from './tools.js';

export interface HttpServeOptions {
  /** 127.0.0.1 by default; any other address needs `tls`. */
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** The Vault server the agents' tokens belong to. */
  addr?: string;
  tenant?: string;
  env: Record<string, string | undefined>;
  cwd: string;
  limits?: ToolLimits;
  /** Offer run_with_credentials: remote agents then run commands on this host. Default off. */
  allowRunOnHost?: boolean;
  /** Serve HTTPS with this certificate and key (PEM file paths). */
  tls?: { certFile: string; keyFile: string };
  /** Host names (without port) clients may use besides the listen address and loopback names. */
  allowedHosts?: string[];
  /** Origins (`https://app.example`) a browser-based client may send; none by default. */
  allowedOrigins?: string[];
  /** Called with each request failure that is not the client's fault (never with a token). */
  onError?: (err: unknown) => void;
}

export class HttpServeError extends Error {
  override name = 'HttpServeError';
}

/** 127.0.0.0/8, ::1, localhost, and the unspecified addresses (which include loopback). */
export function isLoopbackOrAny(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (bare === 'localhost' || bare === '::1' || bare === '::' || bare === '0.0.0.0') return true;
  return isIP(bare) === 4 && bare.startsWith('127.');
}

export interface HttpMcpServer {
  /** `http://HOST:PORT/mcp` (https with TLS) */
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
  if (!options.tls && !isLoopbackOrAny(options.host)) {
    throw new HttpServeError(
      `serving MCP on ${options.host} without TLS would send agent tokens in clear text; give --tls-cert and --tls-key, or listen on 127.0.0.1`,
    );
  }
  if (!options.tls && ['0.0.0.0', '::', '[::]'].includes(options.host)) {
    throw new HttpServeError(
      `serving MCP on every interface (${options.host}) without TLS would send agent tokens in clear text; give --tls-cert and --tls-key`,
    );
  }
  // Tokens are validated (whoami) once a minute; every Vault call re-checks them anyway. Each
  // agent's connection forwards its address, so Vault audits it (when it trusts this proxy).
  const connections = new Map<string, { vault: Vault; at: number }>();
  const connectAs = async (token: string, client: string): Promise<Vault> => {
    const key = createHash('sha256').update(`${client}\0${token}`).digest('hex');
    const cached = connections.get(key);
    if (cached && Date.now() - cached.at < cacheMs) return cached.vault;
    const forwarding: typeof fetch = (input, init) => {
      const headers = new Headers(init?.headers);
      headers.set('x-forwarded-for', client);
      return fetch(input, { ...init, headers });
    };
    const vault = await Vault.connect({
      token,
      fetch: forwarding,
      ...(options.addr !== undefined && { addr: options.addr }),
      ...(options.tenant !== undefined && { tenant: options.tenant }),
    });
    requireAgentToken(vault.self, 'this MCP server');
    if (connections.size > 1000) connections.clear();
    connections.set(key, { vault, at: Date.now() });
    return vault;
  };

  const scheme = options.tls ? 'https' : 'http';
  /** Host headers this server answers to: DNS rebinding makes a hostile name resolve to us. */
  const allowedHostsFor = (port: number): Set<string> => {
    const names = [options.host, ...(options.allowedHosts ?? [])];
    if (isLoopbackOrAny(options.host)) names.push('localhost', '127.0.0.1', '::1');
    return new Set(
      names.map((name) => {
        const bare = name.replace(/^\[|\]$/g, '').toLowerCase();
        return `${bare.includes(':') ? `[${bare}]` : bare}:${port}`;
      }),
    );
  };
  let allowedHosts = new Set<string>();
  let allowedOrigins = new Set<string>();

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const host = (req.headers.host ?? '').toLowerCase();
    if (!allowedHosts.has(host)) {
      return jsonRpcError(res, 403, `forbidden: Host "${host}" is not one this server answers to`);
    }
    const origin = req.headers.origin;
    if (origin !== undefined && !allowedOrigins.has(origin.toLowerCase())) {
      return jsonRpcError(res, 403, `forbidden: Origin "${origin}" is not allowed`);
    }
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
      vault = await connectAs(token, req.socket.remoteAddress ?? 'unknown');
    } catch (err) {
      if (err instanceof ServingIdentityError) return jsonRpcError(res, 403, err.message);
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
      runCommands: options.allowRunOnHost ?? false,
    });
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: undefined,
      enableJsonResponse: true,
    });
    res.on('close', () => {
      void transport.close();
      void server.close();
    });
    await server.connect(transport);
    await transport.handleRequest(req, res, body);
  }

  const listener = (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch((err: unknown) => {
      options.onError?.(err);
      if (!res.headersSent) jsonRpcError(res, 500, 'internal error');
      else res.end();
    });
  };
  const httpServer: Server = options.tls
    ? createHttpsServer(
        { cert: readFileSync(options.tls.certFile), key: readFileSync(options.tls.keyFile) },
        listener,
      )
    : createServer(listener);
  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(options.port, options.host, () => resolve());
  });
  const { port } = httpServer.address() as AddressInfo;
  allowedHosts = allowedHostsFor(port);
  allowedOrigins = new Set([
    ...[...allowedHosts].map((h) => `${scheme}://${h}`),
    ...(options.allowedOrigins ?? []).map((o) => o.toLowerCase()),
  ]);
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    url: `${scheme}://${host}:${port}/mcp`,
    close: () =>
      new Promise<void>((resolve) => {
        httpServer.close(() => resolve());
        httpServer.closeAllConnections();
      }),
  };
}
