import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentFile } from '../../src/agent/config.js';
import { createFileSink } from '../../src/agent/file-sink.js';
import { createLeaseLoop, type LeaseLoop, leaseApi } from '../../src/agent/lease-loop.js';
import { systemClock } from '../../src/lib/clock.js';
import { silentLogger } from '../../src/lib/logger.js';
import { Vault } from '../../src/sdk/index.js';
import { type HangingProxy, startHangingProxy } from '../support/hanging-proxy.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';
import { until } from '../support/until.js';

// Red team, session 8b: the agent looks its leases up again when its event stream opens after
// a break, but not when the stream opens for the first time. A stream that could not be opened
// at start (a busy or unreachable server, the stream limit) while the files were leased and
// written missed a revocation made in between just the same: the file stayed until its
// renewal (40 minutes for a 1 h lease).

describe('agent: a revocation before its event stream first opens', () => {
  let vault: TestVault;
  let events: HangingProxy;
  let dir: string;
  let loop: LeaseLoop | undefined;

  beforeAll(async () => {
    vault = await startTestVault();
    const created = await vault.call('POST', '/v1/credentials', {
      body: { name: 'db', type: 'password', value: 'revoked-before-the-stream' },
    });
    expect(created.status).toBe(201);
    events = await startHangingProxy({ host: '127.0.0.1', port: Number(new URL(vault.url).port) });
    dir = mkdtempSync(join(tmpdir(), 'vault-s8b-first-'));
  });
  afterAll(async () => {
    await loop?.stop().catch(() => {});
    await events?.close();
    await vault?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('wipes the file once the stream opens', async () => {
    const connect = (addr: string) =>
      Vault.connect({ addr, token: vault.rootToken, tenant: vault.tenant, timeoutMs: 1_000 });
    const admin = await connect(vault.url);
    const viaEvents = await connect(`http://127.0.0.1:${events.port}`);
    // The stream cannot be opened yet; leasing and writing the file can.
    events.hang();
    loop = createLeaseLoop({
      files: [agentFile.parse({ name: 'db', credential: 'db', ttl: '1h' })],
      sink: createFileSink(dir),
      api: { ...leaseApi(() => admin), events: leaseApi(() => viaEvents).events },
      clock: systemClock,
      logger: silentLogger,
      registry: new Registry(),
      retryMinMs: 200,
      retryMaxMs: 500,
    });
    loop.start();
    await loop.allWritten;
    const file = join(dir, 'db');
    expect(existsSync(file)).toBe(true);
    await admin.leases.revoke(loop.leaseIds().db!);
    const streamsBefore = await openStreams();
    events.resume();
    await until('the event stream to open', async () => (await openStreams()) > streamsBefore);
    await until('the file to be wiped', () => !existsSync(file), 5_000);
  }, 60_000);

  async function openStreams(): Promise<number> {
    const metrics = await fetch(`${vault.url}/metrics`, {
      headers: { authorization: `Bearer ${vault.rootToken}` },
    }).then((r) => r.text());
    return Number(/^vault_event_streams_open(?:\{[^}]*\})? (\d+)/m.exec(metrics)?.[1] ?? 0);
  }
});
