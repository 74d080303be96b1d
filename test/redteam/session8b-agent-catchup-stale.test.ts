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

// Red team, session 8b: after a broken event stream the agent looks each lease up again. The
// answer of that look-up can arrive after an event the new stream already delivered (a
// renewal of a VaultLease's lease by the operator): the agent then took the looked-up, older
// lease as the current one, armed its expiry at the old time, and wiped the file there,
// although the lease had been renewed and was fine.

describe('agent: a catch-up look-up answered after a newer renewal event', () => {
  let vault: TestVault;
  let lookups: HangingProxy;
  let events: HangingProxy;
  let dir: string;
  let loop: LeaseLoop | undefined;

  beforeAll(async () => {
    vault = await startTestVault();
    const created = await vault.call('POST', '/v1/credentials', {
      body: { name: 'db', type: 'password', value: 'vaultlease-value' },
    });
    expect(created.status).toBe(201);
    const target = { host: '127.0.0.1', port: Number(new URL(vault.url).port) };
    lookups = await startHangingProxy(target);
    events = await startHangingProxy(target);
    dir = mkdtempSync(join(tmpdir(), 'vault-s8b-catchup-'));
  });
  afterAll(async () => {
    await loop?.stop({ revoke: false }).catch(() => {});
    await lookups?.close();
    await events?.close();
    await vault?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the file stays while its lease is renewed', async () => {
    const connect = (addr: string) =>
      Vault.connect({ addr, token: vault.rootToken, tenant: vault.tenant, timeoutMs: 10_000 });
    const admin = await connect(vault.url);
    const viaLookups = await connect(`http://127.0.0.1:${lookups.port}`);
    const viaEvents = await connect(`http://127.0.0.1:${events.port}`);
    // The operator's lease of a VaultLease (it renews it; the agent only reads it).
    const lease = await admin.leases.create({ credentialName: 'db', ttl: '6s', maxTtl: '1h' });
    const registry = new Registry();
    loop = createLeaseLoop({
      files: [agentFile.parse({ name: 'db', lease: 'db-lease' })],
      sink: createFileSink(dir),
      api: {
        ...leaseApi(() => admin),
        get: leaseApi(() => viaLookups).get,
        events: leaseApi(() => viaEvents).events,
      },
      resolveLease: async () => lease.id,
      clock: systemClock,
      logger: silentLogger,
      registry,
      jitter: () => 1,
      retryMinMs: 200,
      retryMaxMs: 1_000,
    });
    loop.start();
    await loop.allWritten;

    // Look-ups answer 3 s late; the stream breaks and the agent reconnects and looks up.
    lookups.delayAnswers(3_000);
    events.resume();
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    // The operator renews while the look-up's (older) answer is on its way.
    const renewed = await admin.leases.renew(lease.id, { increment: '1m' });
    expect(renewed.expiresAt.getTime()).toBeGreaterThan(lease.expiresAt.getTime() + 30_000);
    // Past the first expiry (6 s after issue), well before the renewed one.
    await until('the first expiry to pass', () => Date.now() > lease.expiresAt.getTime() + 1_000, 15_000);
    expect((await admin.leases.get(lease.id)).state).toBe('active');
    const wipes = await registry.getSingleMetric('vault_agent_wipes_total')!.get();
    expect(wipes.values.filter((v) => v.value > 0)).toEqual([]);
    expect(existsSync(join(dir, 'db'))).toBe(true);
  }, 60_000);
});
