/**
 * Real parts for the broker tests: an HTTPS upstream (node:https, its own test CA) that
 * records every request it receives and echoes the Authorization header back, a scan of
 * /proc for values, and a Node client that goes through the proxy with CONNECT.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { issueCa, issueServing } from '../../src/webhook/certs.js';

export interface Received {
  host: string;
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export interface Upstream {
  port: number;
  caPem: string;
  received: Received[];
  close(): Promise<void>;
}

/** Answers `/echo` with the Authorization header it got (in the body and a header). */
export async function startUpstream(hosts: string[]): Promise<Upstream> {
  const ca = await issueCa(1);
  const serving = await issueServing(ca, { dnsNames: hosts, ipAddresses: [], servingValidityDays: 1 });
  const received: Received[] = [];
  const server: Server = createServer({ cert: serving.certPem, key: serving.keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      received.push({
        host: String(req.headers.host),
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body,
      });
      const auth = String(req.headers.authorization ?? '');
      res.writeHead(200, { 'content-type': 'text/plain', 'x-echo-authorization': auth });
      res.end(`you sent: ${auth}\nbody: ${body}\n`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    caPem: ca.certPem,
    received,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface ProcessView {
  pid: number;
  environ: string;
  cmdline: string;
}

/** Every process this user can read, but this test process. */
export function readProcesses(): ProcessView[] {
  const views: ProcessView[] = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      views.push({
        pid,
        environ: readFileSync(`/proc/${pid}/environ`, 'latin1'),
        cmdline: readFileSync(`/proc/${pid}/cmdline`, 'latin1'),
      });
    } catch {
      // Gone, or not ours.
    }
  }
  return views;
}

/** A request through the proxy from this process: CONNECT, then TLS trusting `caPem`. */
export function viaProxy(options: {
  proxyPort: number;
  proxyAuth?: string;
  host: string;
  port: number;
  path: string;
  caPem: string;
  headers?: Record<string, string>;
}): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const connectReq = httpRequest({
      host: '127.0.0.1',
      port: options.proxyPort,
      method: 'CONNECT',
      path: `${options.host}:${options.port}`,
      headers: options.proxyAuth
        ? { 'proxy-authorization': `Basic ${Buffer.from(options.proxyAuth).toString('base64')}` }
        : {},
    });
    connectReq.once('error', reject);
    connectReq.once('connect', (res, socket) => {
      if (res.statusCode !== 200) {
        socket.destroy();
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: '' });
        return;
      }
      // Plain http.request over the TLS socket: it must not resolve the (test) host name.
      const req = httpRequest(
        {
          path: options.path,
          headers: { host: `${options.host}:${options.port}`, ...options.headers },
          createConnection: () => tlsConnect({ socket, servername: options.host, ca: options.caPem }),
        },
        (response) => {
          let body = '';
          response.setEncoding('utf8').on('data', (chunk: string) => {
            body += chunk;
          });
          response.once('end', () => {
            socket.destroy();
            resolve({ status: response.statusCode ?? 0, headers: response.headers, body });
          });
        },
      );
      req.once('error', reject);
      req.end();
    });
    connectReq.end();
  });
}

/**
 * A TLS connection through the proxy, opened (CONNECT and handshake done) before it is used:
 * `head()` then sends one request on it and resolves with the response head, so a test can
 * time the broker's decision alone.
 */
export function openTunnel(options: {
  proxyPort: number;
  proxyAuth: string;
  host: string;
  port: number;
  caPem: string;
}): Promise<{ head(path: string, headers: Record<string, string>): Promise<string>; close(): void }> {
  return new Promise((resolve, reject) => {
    const connectReq = httpRequest({
      host: '127.0.0.1',
      port: options.proxyPort,
      method: 'CONNECT',
      path: `${options.host}:${options.port}`,
      headers: { 'proxy-authorization': `Basic ${Buffer.from(options.proxyAuth).toString('base64')}` },
    });
    connectReq.once('error', reject);
    connectReq.once('connect', (_res, socket) => {
      const tls = tlsConnect({ socket, servername: options.host, ca: options.caPem }, () =>
        resolve({
          head: (path, headers) =>
            new Promise((done) => {
              let text = '';
              const onData = (chunk: Buffer) => {
                text += chunk.toString('latin1');
                const end = text.indexOf('\r\n\r\n');
                if (end < 0) return;
                tls.off('data', onData);
                done(text.slice(0, end));
              };
              tls.on('data', onData);
              const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`);
              tls.write(
                `GET ${path} HTTP/1.1\r\nHost: ${options.host}:${options.port}\r\n${lines.join('')}\r\n`,
              );
            }),
          close: () => tls.destroy(),
        }),
      );
      tls.once('error', reject);
    });
    connectReq.end();
  });
}
