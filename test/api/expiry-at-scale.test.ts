import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemContext } from '../../src/core/index.js';
import { openEtcdStore } from '../../src/store/etcd-store.js';
import type { Store } from '../../src/store/store.js';
import { type EtcdProcess, startEtcd } from '../support/etcd.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

/**
 * 10,000 leases ending in the same second, on a real etcd: every one is reported expired by
 * the API and on the lease-event stream within 15 s of that second. The server's clock is
 * injected: it stands still while the leases are issued (so all of them are issued at one
 * instant with a 5-minute TTL, as a burst of workloads starting together would be, however
 * long a loaded machine takes to write them), then runs again from two seconds before their
 * expiry, so the test does not wait five minutes. The stream is read with a tenant admin's
 * token (not a system token), so every event passes the per-event rights check.
 */
const COUNT = 10_000;
const BOUND_MS = 15_000;

describe('10,000 leases expiring in the same second (etcd)', () => {
  let etcd: EtcdProcess;
  let store: Store;
  let vault: TestVault;
  let offsetMs = 0;
  let readerToken: string;
  let frozenAt: number | undefined;
  const clock = () => new Date(frozenAt ?? Date.now() + offsetMs);
  const target = Math.ceil((Date.now() + 300_000) / 1000) * 1000 + 500;

  beforeAll(async () => {
    etcd = await startEtcd();
    store = await openEtcdStore({ endpoints: [etcd.endpoint], timeoutMs: 10_000 });
    vault = await startTestVault({ clock, store });
    const ctx = systemContext(vault.tenant, { type: 'human', name: 'root' });
    await vault.call('POST', '/v1/credentials', { body: { name: 'burst', type: 'generic', value: 'v' } });
    // The stream is read as an on-call admin would read it: a tenant admin by policy, whose
    // rights are checked again for each event of a lease it did not issue or hold.
    await vault.call('PUT', '/v1/policies/oncall', { body: { rules: [{ actions: ['admin'] }] } });
    readerToken = await vault.tokenFor({ type: 'human', name: 'oncall' }, ['oncall']);
    frozenAt = target - 300_000;
    for (let done = 0; done < COUNT; done += 500) {
      await Promise.all(
        Array.from({ length: 500 }, (_, i) =>
          vault.core.leases.create(ctx, {
            credentialName: 'burst',
            ttl: '5m',
            renewable: false,
            identity: { type: 'agent', name: `agent-${(done + i) % 7}` },
          }),
        ),
      );
    }
    offsetMs = frozenAt - Date.now();
    frozenAt = undefined;
  }, 600_000);
  afterAll(async () => {
    await vault?.close();
    await store?.close();
    await etcd?.destroy();
  });

  it('reports every one expired on the API and the event stream within 15 s', async () => {
    // Every lease ends inside one second.
    const ends = new Set<number>();
    for (let next: string | undefined, first = true; first || next; first = false) {
      const page = await vault.call(
        'GET',
        `/v1/leases?credentialName=burst&limit=1000${next ? `&continue=${encodeURIComponent(next)}` : ''}`,
      );
      for (const lease of page.body.leases) ends.add(Math.floor(Date.parse(lease.expiresAt) / 1000));
      next = page.body.continue;
    }
    expect([...ends]).toEqual([Math.floor(target / 1000)]);

    const controller = new AbortController();
    const response = await fetch(`${vault.url}/v1/leases/events`, {
      headers: { authorization: `Bearer ${readerToken}` },
      signal: controller.signal,
    });
    expect(response.status).toBe(200);
    const expired = new Set<string>();
    let allExpiredAt: number | undefined;
    const reading = (async () => {
      const decoder = new TextDecoder();
      let buffer = '';
      for await (const chunk of response.body!) {
        buffer += decoder.decode(chunk as Uint8Array, { stream: true });
        let end = buffer.indexOf('\n\n');
        while (end >= 0) {
          const event = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          if (event.startsWith('event: expired\n')) {
            expired.add(JSON.parse(event.slice(event.indexOf('data: ') + 6)).lease.id);
            if (expired.size === COUNT) allExpiredAt = clock().getTime();
          }
          end = buffer.indexOf('\n\n');
        }
        if (allExpiredAt !== undefined) return;
      }
    })().catch(() => undefined);

    // Two seconds before the instant.
    offsetMs = target - 2_000 - Date.now();
    let apiExpiredAt: number | undefined;
    while (
      clock().getTime() < target + BOUND_MS &&
      (apiExpiredAt === undefined || allExpiredAt === undefined)
    ) {
      if (apiExpiredAt === undefined && clock().getTime() >= target) {
        let count = 0;
        for (let next: string | undefined, first = true; first || next; first = false) {
          const page = await vault.call(
            'GET',
            `/v1/leases?credentialName=burst&state=expired&limit=1000${next ? `&continue=${encodeURIComponent(next)}` : ''}`,
          );
          count += page.body.leases.length;
          next = page.body.continue;
        }
        if (count === COUNT) apiExpiredAt = clock().getTime();
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    controller.abort();
    await reading;
    const seconds = (at: number | undefined) =>
      at === undefined ? 'never' : `${((at - target) / 1000).toFixed(2)} s`;
    console.log(
      `10,000 leases expiring at once (etcd): API reported all expired after ${seconds(apiExpiredAt)}, ` +
        `the event stream after ${seconds(allExpiredAt)} (${expired.size} events)`,
    );
    expect(expired.size).toBe(COUNT);
    expect(apiExpiredAt! - target).toBeLessThan(BOUND_MS);
    expect(allExpiredAt! - target).toBeLessThan(BOUND_MS);
  }, 120_000);
});
