import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentFile } from '../../src/agent/config.js';
import { createFileSink } from '../../src/agent/file-sink.js';
import { createLeaseLoop, type LeaseLoop, leaseApi } from '../../src/agent/lease-loop.js';
import { systemClock } from '../../src/lib/clock.js';
import { silentLogger } from '../../src/lib/logger.js';
import { NotFoundError, Vault, VaultConnectionError } from '../../src/sdk/index.js';
import { type HangingProxy, startHangingProxy } from '../support/hanging-proxy.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

// Red team, session 8b: after a stream break the agent looks each lease up, and takes a 404 as
// "the lease is gone": the file is wiped as revoked, for good. The SDK made a NotFoundError of
// any 404, also one that is not Vault's answer at all (an ingress's default backend while it is
// being reconfigured, a wrong path prefix): one such answer wiped every file of the agent.

describe("agent: a 404 that is not Vault's answer", () => {
  let vault: TestVault;
  let events: HangingProxy;
  let front: Server;
  let frontUrl: string;
  let misrouting = false;
  let dir: string;
  let loop: LeaseLoop | undefined;

  beforeAll(async () => {
    vault = await startTestVault();
    const created = await vault.call('POST', '/v1/credentials', {
      body: { name: 'db', type: 'password', value: 'kept-through-a-misroute' },
    });
    expect(created.status).toBe(201);
    const target = new URL(vault.url);
    events = await startHangingProxy({ host: '127.0.0.1', port: Number(target.port) });
    // A reverse proxy in front of Vault that, while "misrouting", answers lease look-ups from
    // its default backend.
    front = createServer((req, res) => {
      if (misrouting && req.method === 'GET' && /^\/v1\/leases\/lease_/.test(req.url ?? '')) {
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('default backend - 404');
        return;
      }
      const upstream = request(
        { host: '127.0.0.1', port: target.port, path: req.url, method: req.method, headers: req.headers },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      upstream.on('error', () => res.destroy());
      req.pipe(upstream);
    });
    await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
    frontUrl = `http://127.0.0.1:${(front.address() as AddressInfo).port}`;
    dir = mkdtempSync(join(tmpdir(), 'vault-s8b-404-'));
  });
  afterAll(async () => {
    await loop?.stop().catch(() => {});
    await events?.close();
    front?.closeAllConnections();
    await new Promise((resolve) => front?.close(resolve));
    await vault?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the SDK does not call a foreign 404 NotFoundError', async () => {
    const sdk = await Vault.connect({ addr: frontUrl, token: vault.rootToken, tenant: vault.tenant });
    const lease = await sdk.leases.create({ credentialName: 'db', ttl: '1h' });
    misrouting = true;
    const err = await sdk.leases.get(lease.id).catch((e: unknown) => e);
    misrouting = false;
    expect(err).not.toBeInstanceOf(NotFoundError);
    expect(err).toBeInstanceOf(VaultConnectionError);
    // Vault's own 404 still is one.
    const gone = await sdk.leases.get('lease_doesnotexist0000').catch((e: unknown) => e);
    expect(gone).toBeInstanceOf(NotFoundError);
  });

  it('keeps the file when its look-up after a stream break meets a foreign 404', async () => {
    const viaFront = await Vault.connect({ addr: frontUrl, token: vault.rootToken, tenant: vault.tenant });
    const viaEvents = await Vault.connect({
      addr: `http://127.0.0.1:${events.port}`,
      token: vault.rootToken,
      tenant: vault.tenant,
    });
    const opens: number[] = [];
    const api = leaseApi(() => viaFront);
    loop = createLeaseLoop({
      files: [agentFile.parse({ name: 'db', credential: 'db', ttl: '1h' })],
      sink: createFileSink(dir),
      api: {
        ...api,
        events: (signal, onOpen) =>
          leaseApi(() => viaEvents).events(signal, () => {
            opens.push(Date.now());
            onOpen();
          }),
      },
      clock: systemClock,
      logger: silentLogger,
      registry: new Registry(),
      retryMinMs: 200,
      retryMaxMs: 500,
    });
    loop.start();
    await loop.allWritten;
    const deadline = Date.now() + 10_000;
    while (opens.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    misrouting = true;
    events.resume(); // the stream breaks; the agent reconnects and looks its lease up
    while (opens.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(opens.length).toBeGreaterThanOrEqual(2);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    misrouting = false;
    expect(existsSync(join(dir, 'db'))).toBe(true);
    expect(loop.ready()).toBe(true);
  }, 60_000);
});
