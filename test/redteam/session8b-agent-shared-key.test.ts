import { existsSync, readFileSync } from 'node:fs';
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

// Red team, session 8b: the agent keeps one Idempotency-Key per file until it has a lease. A
// re-lease at the max TTL whose answer is late is still waiting when the old lease expires;
// the file's new acquisition then asks with the same key and is answered by the very lease
// the re-lease is waiting for. When the late answer comes, the re-lease finds the file moved
// on and revokes "its" lease: the one the file now holds. The agent then sees its own
// revocation, wipes the file and, a revocation being final, never leases it again.

describe('agent: a late re-lease and the acquisition after expiry share one key', () => {
  const f = agentFixture({ credential: { name: 'short', value: 'short-lived-value' } });

  it('the file keeps a lease nobody revoked', async () => {
    const { vault, dir } = f;
    const [proxy] = f.proxies as [HangingProxy];
    // Requests through the proxy (whose answers can be cut off); the event stream direct, so
    // the agent hears every revocation at once.
    const through = await f.connect(f.through(0), 3_200);
    const direct = await f.connect(vault.url, 4_000);
    const registry = new Registry();
    const loop = createLeaseLoop({
      files: [agentFile.parse({ name: 'short', credential: 'short', ttl: '6s', maxTtl: '6s' })],
      sink: createFileSink(dir),
      api: { ...leaseApi(() => through), events: leaseApi(() => direct).events },
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
    const first = loop.leaseIds().short!;
    const leases = async () =>
      (await vault.call('GET', '/v1/leases?credentialName=short&limit=1000')).body.leases as {
        id: string;
        state: string;
      }[];

    // The re-lease (at two thirds of 6 s) issues its lease; its answer stops after the headers.
    proxy.stallBodies();
    await until('the re-lease to issue a lease', async () => (await leases()).length === 2);
    proxy.unstallBodies();
    // The first lease expires (6 s) before the re-lease's answer times out (4 s + 3.2 s), and
    // the file is acquired again meanwhile; the re-lease's retry (7.5 s) comes before the new
    // lease's own re-lease (about 8.7 s). Give them time to land.
    await until('the file to be leased again', () => loop.leaseIds().short !== first, 10_000);
    await new Promise((resolve) => setTimeout(resolve, 5_000));

    // Nobody but the agent touched these leases: the file is there, with an active lease.
    const held = loop.leaseIds().short;
    const states = await leases();
    expect(states.filter((l) => l.state === 'revoked').map((l) => l.id)).not.toContain(held);
    expect(existsSync(join(dir, 'short'))).toBe(true);
    expect(readFileSync(join(dir, 'short'), 'utf8')).toBe('short-lived-value');
    const wipes = await registry.getSingleMetric('vault_agent_wipes_total')!.get();
    expect(wipes.values.filter((v) => v.labels.reason === 'revoked' && v.value > 0)).toEqual([]);
  }, 60_000);
});
