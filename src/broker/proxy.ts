/**
 * The broker's network edge: an HTTP forward proxy on loopback. CONNECTs to hosts a brokered
 * credential names are terminated with the broker's own certificates and read request by
 * request; everything else is tunnelled untouched or refused (decide.ts says which). Values
 * are swapped in only after the API has recorded the use (audit.ts), and stripped from what
 * comes back (strip.ts). No value ever reaches a log line or an error message.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import {
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type Server,
  type ServerResponse,
} from 'node:http';
import { Agent, request as httpsRequest } from 'node:https';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import { type HostPort, parseHostPort } from '../contract/broker.js';
import type { Logger } from '../lib/logger.js';
import type { UseRefusal, UseReporter } from './audit.js';
import type { BrokerPki } from './ca.js';
import { type Brokered, decideConnect, decideRequest } from './decide.js';
import { placeholdersIn, type Reversal, swapBody, swapHeaders } from './placeholders.js';
import { createStripper, stripText } from './strip.js';

/**
 * What the proxy logs with: a pino `Logger` fits. Kept to the two levels it uses, with a
 * silent default that needs no pino, so the MCP package (which ships the broker) runs with
 * only its declared dependencies.
 */
export type BrokerLogger = Pick<Logger, 'warn' | 'debug'>;
const quiet: BrokerLogger = { warn: () => undefined, debug: () => undefined };

export interface UpstreamOptions {
  /** Extra CAs to trust for upstreams (tests); the system roots are used otherwise. */
  ca?: string;
  /** Where to connect for a target (tests point a named host at a local server). */
  connectTo?: (target: HostPort) => HostPort;
}

export interface ProxyOptions {
  credentials: readonly Brokered[];
  /** The value behind a lease; undefined once the broker forgot it (the lease ended). */
  valueOf(leaseId: string): string | undefined;
  forget(leaseId: string): void;
  pki: BrokerPki;
  /** Clients authenticate as `vault:<password>` (Proxy-Authorization: Basic). */
  proxyPassword: string;
  allowOtherHosts: boolean;
  reporter: UseReporter;
  upstream?: UpstreamOptions;
  /** Request bodies the broker reads to swap placeholders in (default 1 MiB). */
  maxBodyBytes?: number;
  logger?: BrokerLogger;
}

export interface RunningProxy {
  port: number;
  close(): Promise<void>;
}

const hopByHop = new Set([
  'connection',
  'keep-alive',
  'proxy-authorization',
  'proxy-authenticate',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

const upstreamTimeoutMs = 120_000;

class Refusal extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export async function startProxy(options: ProxyOptions): Promise<RunningProxy> {
  const logger: BrokerLogger = options.logger ?? quiet;
  const maxBodyBytes = options.maxBodyBytes ?? 1_048_576;
  const expectedAuth = digest(`vault:${options.proxyPassword}`);
  const placeholders = options.credentials.map((c) => c.placeholder);
  const byPlaceholder = new Map(options.credentials.map((c) => [c.placeholder, c]));
  const agent = new Agent({ keepAlive: true, ...(options.upstream?.ca ? { ca: options.upstream.ca } : {}) });
  const targets = new WeakMap<Socket, HostPort>();
  const sockets = new Set<Socket>();
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  };

  function authorized(headers: IncomingHttpHeaders): boolean {
    const match = /^\s*basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(headers['proxy-authorization'] ?? '');
    if (!match) return false;
    return timingSafeEqual(digest(Buffer.from(match[1]!, 'base64').toString('utf8')), expectedAuth);
  }

  /** Each value still held, to be replaced by its placeholder in what comes back. */
  const heldReversals = () =>
    options.credentials.flatMap((c) => {
      const value = options.valueOf(c.leaseId);
      return value === undefined ? [] : [{ needle: value, replacement: c.placeholder }];
    });

  const connectTarget = (target: HostPort) => options.upstream?.connectTo?.(target) ?? target;

  // --- requests inside TLS the broker terminated -------------------------------------------
  const inner = createServer({ maxHeaderSize: 32_768 }, (req, res) => {
    const target = targets.get(req.socket);
    if (!target) return refuse(res, new Refusal(500, 'internal', 'request on an unknown connection'));
    handleIntercepted(req, res, target).catch((err: unknown) => {
      if (err instanceof Refusal) return refuse(res, err);
      logger.warn({ host: target.host, err: (err as Error).message }, 'broker request failed');
      refuse(res, new Refusal(502, 'upstream_error', `the request to ${target.host} failed`));
    });
  });
  inner.on('clientError', (_err, socket) => socket.destroy());

  async function handleIntercepted(req: IncomingMessage, res: ServerResponse, target: HostPort) {
    const hostHeader = parseHostPort(req.headers.host ?? '', target.port);
    if (!hostHeader || hostHeader.host !== target.host) {
      throw new Refusal(
        403,
        'host_mismatch',
        `the Host header does not match the CONNECT target ${target.host}`,
      );
    }
    const path = req.url ?? '/';
    // Only origin-form ("/path"): an absolute-form target ("https://other/...") makes the
    // upstream ignore Host and route by it (RFC 9112 §3.2.2), so a front serving several
    // hosts would take the value to a host the credential does not name.
    if (!path.startsWith('/') && !(path === '*' && req.method === 'OPTIONS')) {
      throw new Refusal(
        400,
        'bad_request',
        `inside a tunnel to ${target.host} the request target must be a path ("/..."), not "${path.slice(0, 100)}"`,
      );
    }
    const anyBody = options.credentials.some((c) => c.body);
    const body = anyBody ? await readBody(req, maxBodyBytes) : undefined;
    const seenSet = placeholdersIn(placeholders, {
      headers: req.headers,
      texts: [path, ...(body ? [body.toString('latin1')] : [])],
    });
    const seen = [...seenSet].map((p) => byPlaceholder.get(p)!);
    const verdict = decideRequest({
      target,
      tls: true,
      seen,
      credentials: options.credentials,
      allowOtherHosts: options.allowOtherHosts,
    });
    const use = {
      host: target.host,
      port: target.port,
      method: (req.method ?? 'GET').toUpperCase(),
      path: pathOnly(path),
    };
    if (verdict.kind === 'refuse') {
      await reportDenied(verdict.denied, use, verdict.reason);
      throw new Refusal(verdict.status, verdict.code, verdict.reason);
    }
    // Every lease is checked (and the use recorded) before any value leaves the broker.
    const swaps = verdict.swap.map((c) => ({ credential: c, value: options.valueOf(c.leaseId) }));
    const forgotten = swaps.filter((s) => s.value === undefined).map((s) => s.credential);
    if (forgotten.length > 0) {
      const reason = `the lease of "${forgotten[0]!.credential}" has ended; request a new one`;
      await reportDenied(forgotten, use, reason);
      throw new Refusal(403, 'lease_ended', reason);
    }
    const refusals = await Promise.all(verdict.swap.map((c) => options.reporter.allowed(c.leaseId, use)));
    const refused = refusals.findIndex((r) => r !== undefined);
    if (refused >= 0) {
      const refusal = refusals[refused] as UseRefusal;
      if (refusal.code === 'lease_revoked' || refusal.code === 'lease_expired') {
        options.forget(verdict.swap[refused]!.leaseId);
      }
      throw new Refusal(refusal.code === 'audit_unavailable' ? 503 : 403, refusal.code, refusal.message);
    }
    const pairs = swaps.map((s) => ({ placeholder: s.credential.placeholder, value: s.value! }));
    const forwarded = swapHeaders(forwardHeaders(req.headers), pairs);
    const headers = forwarded.headers as OutgoingHttpHeaders;
    // Every value the broker holds is stripped from every response on a host it reads, not
    // only the values this request carried: the host may hand back one it stored earlier
    // (an echo of a previous request) to a request that carries no placeholder at all.
    const reversals = [...forwarded.reversals, ...heldReversals()];
    // The broker must see plain bytes to strip an echoed value, so no compression.
    if (reversals.length > 0) headers['accept-encoding'] = 'identity';
    let outBody: Buffer | undefined;
    if (body) {
      const bodySwaps = pairs.filter((_, i) => swaps[i]!.credential.body);
      outBody = swapBody(body, bodySwaps);
      if (outBody.length > 0 || req.headers['content-length'] !== undefined)
        headers['content-length'] = String(outBody.length);
    }
    const to = connectTarget(target);
    const upstream = httpsRequest({
      host: to.host,
      port: to.port,
      servername: target.host,
      method: req.method,
      path,
      headers,
      agent,
      timeout: upstreamTimeoutMs,
    });
    const sent = new Promise<void>((resolve, reject) => {
      upstream.once('response', (response) => {
        relayResponse(response, res, reversals);
        response.once('end', resolve);
        response.once('error', reject);
      });
      upstream.once('timeout', () => upstream.destroy(new Error('upstream timed out')));
      upstream.once('error', reject);
    });
    if (outBody) upstream.end(outBody);
    else req.pipe(upstream);
    logger.debug({ ...use, swapped: verdict.swap.map((c) => c.credential) }, 'brokered request');
    await sent;
  }

  async function reportDenied(
    denied: readonly Brokered[],
    use: Parameters<UseReporter['denied']>[1],
    reason: string,
  ) {
    await Promise.all(
      denied.map((c) =>
        options.reporter.denied(c.leaseId, use, reason).catch((err: unknown) => {
          logger.warn(
            { credential: c.credential, err: (err as Error).message },
            'could not audit a refused request',
          );
        }),
      ),
    );
  }

  // --- the proxy itself: CONNECT and plain-HTTP requests ------------------------------------
  const outer: Server = createServer({ maxHeaderSize: 32_768 }, (req, res) => {
    if (!authorized(req.headers)) return askForAuth(res);
    handlePlain(req, res).catch((err: unknown) => {
      if (err instanceof Refusal) return refuse(res, err);
      refuse(res, new Refusal(502, 'upstream_error', `the request failed: ${(err as Error).message}`));
    });
  });
  outer.on('clientError', (_err, socket) => socket.destroy());

  async function handlePlain(req: IncomingMessage, res: ServerResponse) {
    let url: URL;
    try {
      url = new URL(req.url ?? '');
    } catch {
      throw new Refusal(400, 'bad_request', 'this is a proxy: send absolute http:// URLs or CONNECT');
    }
    if (url.protocol !== 'http:')
      throw new Refusal(400, 'bad_request', 'only http:// URLs are proxied without CONNECT');
    const target = { host: url.hostname.toLowerCase(), port: Number(url.port || 80) };
    const seen = [...placeholdersIn(placeholders, { headers: req.headers, texts: [req.url ?? ''] })].map(
      (p) => byPlaceholder.get(p)!,
    );
    const verdict = decideRequest({
      target,
      tls: false,
      seen,
      credentials: options.credentials,
      allowOtherHosts: options.allowOtherHosts,
    });
    if (verdict.kind === 'refuse') {
      const use = {
        host: target.host,
        port: target.port,
        method: (req.method ?? 'GET').toUpperCase(),
        path: pathOnly(url.pathname),
      };
      await reportDenied(verdict.denied, use, verdict.reason);
      throw new Refusal(verdict.status, verdict.code, verdict.reason);
    }
    const to = connectTarget(target);
    await new Promise<void>((resolve, reject) => {
      const upstream = httpRequest(
        {
          host: to.host,
          port: to.port,
          method: req.method,
          path: `${url.pathname}${url.search}`,
          headers: forwardHeaders(req.headers),
          timeout: upstreamTimeoutMs,
        },
        (response) => {
          relayResponse(response, res, []);
          response.once('end', resolve);
        },
      );
      upstream.once('timeout', () => upstream.destroy(new Error('upstream timed out')));
      upstream.once('error', reject);
      req.pipe(upstream);
    });
  }

  outer.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    track(socket);
    socket.on('error', () => socket.destroy());
    if (!authorized(req.headers)) {
      socket.end(
        'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="vault-broker"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n',
      );
      return;
    }
    const target = parseHostPort(req.url ?? '', 443);
    if (!target) {
      socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    const verdict = decideConnect(target, options.credentials, options.allowOtherHosts);
    if (verdict.kind === 'refuse') {
      const body = `vault broker: ${verdict.reason}\n`;
      socket.end(
        `HTTP/1.1 403 Forbidden\r\nX-Vault-Broker: host_not_allowed\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
      logger.debug({ host: target.host, port: target.port }, 'broker refused a CONNECT');
      return;
    }
    if (verdict.kind === 'tunnel') {
      const to = connectTarget(target);
      const upstream = connect(to.port, to.host, () => {
        socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        if (head.length > 0) upstream.write(head);
        upstream.pipe(socket);
        socket.pipe(upstream);
      });
      track(upstream);
      upstream.on('error', () => {
        if (!socket.destroyed) socket.end('HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n');
      });
      socket.on('close', () => upstream.destroy());
      return;
    }
    const secureContext = options.pki.contextFor(target.host);
    if (!secureContext) {
      socket.end('HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head.length > 0) socket.unshift(head);
    const tls = new TLSSocket(socket, { isServer: true, secureContext });
    tls.on('error', () => tls.destroy());
    targets.set(tls, target);
    inner.emit('connection', tls);
  });

  await new Promise<void>((resolve, reject) => {
    outer.once('error', reject);
    outer.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    port: (outer.address() as AddressInfo).port,
    async close() {
      const closed = new Promise<void>((resolve) => outer.close(() => resolve()));
      outer.closeAllConnections();
      inner.closeAllConnections();
      for (const socket of sockets) socket.destroy();
      agent.destroy();
      await closed;
    },
  };
}

function relayResponse(response: IncomingMessage, res: ServerResponse, reversals: readonly Reversal[]) {
  const headers: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(response.headers)) {
    if (value === undefined || hopByHop.has(name)) continue;
    headers[name] =
      reversals.length === 0
        ? value
        : Array.isArray(value)
          ? value.map((v) => stripText(v, reversals))
          : stripText(value, reversals);
  }
  if (reversals.length === 0) {
    res.writeHead(response.statusCode ?? 502, response.statusMessage, headers);
    response.pipe(res);
    return;
  }
  // The body may change length, and is stripped after decompressing (an upstream may compress
  // although it was asked not to).
  delete headers['content-length'];
  const encoding = String(response.headers['content-encoding'] ?? '').toLowerCase();
  const decoder =
    encoding === 'gzip'
      ? createGunzip()
      : encoding === 'deflate'
        ? createInflate()
        : encoding === 'br'
          ? createBrotliDecompress()
          : undefined;
  if (decoder) delete headers['content-encoding'];
  res.writeHead(response.statusCode ?? 502, response.statusMessage, headers);
  const stripper = createStripper(reversals);
  const source = decoder ? response.pipe(decoder) : response;
  source.on('data', (chunk: Buffer) => res.write(stripper.push(chunk)));
  source.once('end', () => res.end(stripper.end()));
  source.once('error', () => res.destroy());
}

function forwardHeaders(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const named = String(headers.connection ?? '')
    .split(',')
    .map((s) => s.trim().toLowerCase());
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || hopByHop.has(name) || named.includes(name)) continue;
    out[name] = value;
  }
  return out;
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        // Drained, not kept, so the refusal can still be answered on this connection.
        chunks.length = 0;
        reject(
          new Refusal(413, 'payload_too_large', `request bodies the broker reads are at most ${limit} bytes`),
        );
        return;
      }
      chunks.push(chunk);
    });
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
  });
}

function refuse(res: ServerResponse, refusal: Refusal) {
  if (res.headersSent) return void res.destroy();
  const body = `vault broker: ${refusal.message}\n`;
  res.writeHead(refusal.status, {
    'content-type': 'text/plain; charset=utf-8',
    'x-vault-broker': refusal.code,
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

function askForAuth(res: ServerResponse) {
  res.writeHead(407, { 'proxy-authenticate': 'Basic realm="vault-broker"', 'content-length': 0 });
  res.end();
}

const digest = (text: string) => createHash('sha256').update(text).digest();

/** The path without its query string (for audit records and logs). */
const pathOnly = (path: string) => (path.split('?')[0] || '/').slice(0, 1024);
