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

// The agent keeps one Idempotency-Key per file until it has a lease, so a creation whose answer
// was lost is retried without issuing a second lease. When the lease that key issued is revoked
// before the answer arrives, the server answers the retry 410: the agent must then ask with a
// new key, not repeat the dead one forever.

describe('agent: the lease its Idempotency-Key issued was revoked before the answer came', () => {
  const f = agentFixture({ credential: { name: 'api', value: 'value-after-a-lost-answer' } });

  it('asks again with a new key and writes the file', async () => {
    const { vault, dir } = f;
    const [proxy] = f.proxies as [HangingProxy];
    const through = await f.connect(f.through(0), 1_500);
    const leases = async () =>
      (await vault.call('GET', '/v1/leases?credentialName=api&limit=1000')).body.leases as {
        id: string;
        state: string;
      }[];
    // The first creation issues its lease, and its answer stops after the headers.
    proxy.stallBodies();
    const loop = createLeaseLoop({
      files: [agentFile.parse({ name: 'api', credential: 'api', ttl: '10m' })],
      sink: createFileSink(dir),
      api: leaseApi(() => through),
      clock: systemClock,
      logger: silentLogger,
      registry: new Registry(),
      jitter: () => 1,
      retryMinMs: 200,
      retryMaxMs: 1_000,
    });
    f.loop = loop;
    loop.start();
    await until('the first creation to issue a lease', async () => (await leases()).length === 1);
    const [lost] = await leases();
    // Revoked meanwhile (an operator's bulk revocation, say); then the answers flow again.
    expect((await vault.call('POST', `/v1/leases/${lost!.id}/revoke`, { body: {} })).status).toBe(200);
    proxy.unstallBodies();

    await until('the file to be written', () => existsSync(join(dir, 'api')), 20_000);
    expect(readFileSync(join(dir, 'api'), 'utf8')).toBe('value-after-a-lost-answer');
    const held = loop.leaseIds().api;
    expect(held).toBeDefined();
    expect(held).not.toBe(lost!.id);
    const states = await leases();
    expect(states.find((l) => l.id === held)?.state).toBe('active');
    expect(states.filter((l) => l.state === 'active')).toHaveLength(1);
  }, 60_000);
});
