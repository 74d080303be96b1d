/**
 * Red team, session 6: the `vault_leases` gauge when counting fails.
 *
 * The gauge is counted from the store when scraped. When the count failed (etcd timing out
 * under load: the very moment an operator looks at the dashboards), the whole scrape failed:
 * `GET /metrics` answered 500, so every other metric (request rates, auth failures, event
 * streams) was gone too. And a failed count was not throttled: every scrape counted again
 * at once, so the "at most 2 % of the time" promise did not hold while etcd struggled, when
 * it matters most.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LeaseCounts, throttleLeaseCounts } from '../../src/server/metrics.js';
import { openEmbeddedStore } from '../../src/store/embedded-store.js';
import type { Store } from '../../src/store/store.js';
import { storeWith } from '../support/store-proxy.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

describe('GET /metrics while the store cannot count leases', () => {
  let vault: TestVault;
  let store: Store;
  let dir: string;
  let failing = false;
  let counts = 0;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vault-s6-metrics-'));
    store = await openEmbeddedStore({ path: dir });
    // The real store, with `count` failing while `failing` is set (as etcd's deadline would).
    const flaky = storeWith(store, (target) => ({
      count: async (...args: Parameters<Store['count']>) => {
        counts++;
        if (failing) throw new Error('etcdserver: request timed out');
        return target.count(...args);
      },
    }));
    vault = await startTestVault({ store: flaky });
  });
  afterAll(async () => {
    await vault?.close();
    await store?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('still answers with every other metric, and does not count again on every scrape', async () => {
    expect((await vault.call('GET', '/v1/leases')).status).toBe(200);
    failing = true;
    const before = counts;
    const scrapes = [];
    for (let i = 0; i < 3; i++) scrapes.push(await vault.call('GET', '/metrics'));
    for (const scrape of scrapes) {
      expect(scrape.status, scrape.text).toBe(200);
      expect(scrape.text).toMatch(/^vault_http_requests_total\{/m);
      expect(scrape.text).toMatch(/^vault_event_streams_open 0$/m);
      // No made-up numbers: the gauge has no sample rather than a wrong one.
      expect(scrape.text).not.toMatch(/^vault_leases\{/m);
    }
    // One failed count (three store counts for the one tenant), not one per scrape.
    expect(counts - before).toBe(3);
  });
});

describe('throttleLeaseCounts when a count fails', () => {
  const ok: LeaseCounts = { total: { active: 1, expired: 0, revoked: 0 }, byTenant: new Map() };

  it('waits as long after a failed count as after a successful one before counting again', async () => {
    let clock = 1_000_000;
    let calls = 0;
    let fail = false;
    const counts = throttleLeaseCounts(
      async () => {
        calls++;
        // A count that takes 2 s and then times out.
        clock += 2_000;
        if (fail) throw new Error('deadline exceeded');
        return ok;
      },
      () => clock,
    );
    expect(await counts()).toEqual(ok);
    clock += 100_000;
    fail = true;
    // A failed count is answered as "no counts", never as an error that fails the scrape.
    expect(await counts()).toBeUndefined();
    expect(calls).toBe(2);
    // It took 2 s: the next count comes no sooner than 100 s later (2 % of the time).
    clock += 50_000;
    expect(await counts()).toBeUndefined();
    expect(calls).toBe(2);
    clock += 50_000;
    fail = false;
    expect(await counts()).toEqual(ok);
    expect(calls).toBe(3);
  });
});
