import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { agentFile } from '../../src/agent/config.js';
import { createFileSink } from '../../src/agent/file-sink.js';
import { createLeaseLoop, leaseApi } from '../../src/agent/lease-loop.js';
import { systemClock } from '../../src/lib/clock.js';
import { silentLogger } from '../../src/lib/logger.js';
import { agentFixture } from '../support/agent-fixture.js';
import type { HangingProxy } from '../support/hanging-proxy.js';
import { until } from '../support/until.js';

// Red team, session 8b: after a broken event stream the agent looks each lease up again. The
// answer of that look-up can arrive after an event the new stream already delivered (a
// renewal of a VaultLease's lease by the operator): the agent then took the looked-up, older
// lease as the current one, armed its expiry at the old time, and wiped the file there,
// although the lease had been renewed and was fine.

describe('agent: a catch-up look-up answered after a newer renewal event', () => {
  const f = agentFixture({
    credential: { name: 'db', value: 'vaultlease-value' },
    proxies: 2,
    stopOptions: { revoke: false },
  });

  it('the file stays while its lease is renewed', async () => {
    const { dir } = f;
    const [lookups, events] = f.proxies as [HangingProxy, HangingProxy];
    const admin = await f.connect(f.vault.url, 10_000);
    const viaLookups = await f.connect(f.through(0), 10_000);
    const viaEvents = await f.connect(f.through(1), 10_000);
    // The operator's lease of a VaultLease (it renews it; the agent only reads it).
    const lease = await admin.leases.create({ credentialName: 'db', ttl: '6s', maxTtl: '1h' });
    const registry = new Registry();
    const loop = createLeaseLoop({
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
    f.loop = loop;
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
