import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openEtcdStore } from '../../src/store/etcd-store.js';
import type { Store } from '../../src/store/store.js';
import { type EtcdProcess, startEtcd } from '../support/etcd.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

// Red team, session 10b: one change larger than etcd takes, alone in its group.
//
// A change over MAX_GROUP_BYTES still goes alone (by design), and etcd refuses it. With the
// request body limit raised (`--body-limit-bytes`, up to 16 MiB, a supported setting), one policy
// PUT of ~2.5 MB (128 rules of 64 globs are allowed; non-ASCII text weighs 3 bytes a character)
// answers 503 "etcd ... is unavailable (RESOURCE_EXHAUSTED ...); the transaction may or may not
// have been applied" — a retryable "the store is down, outcome unknown" for a request that can
// never succeed and was certainly not applied (between 1.5 and 2 MiB it is 500 "internal"
// instead). Clients and the SDK retry 503s, and a retried oversized change is refused again.
//
// Fix: refuse a change whose encoded size exceeds the store's request limit before sending it
// (400/413 "the change is N bytes, the store takes at most M"), and map etcd's "request is too
// large" / RESOURCE_EXHAUSTED on send to that same non-retryable answer.

describe('one change larger than the store takes', () => {
  let etcd: EtcdProcess;
  let store: Store;
  let vault: TestVault;

  beforeAll(async () => {
    etcd = await startEtcd();
    store = await openEtcdStore({ endpoints: [etcd.endpoint], timeoutMs: 10_000 });
    vault = await startTestVault({ store, app: { bodyLimitBytes: 8 * 1024 * 1024 } });
  }, 60_000);
  afterAll(async () => {
    await vault?.close();
    await store?.close();
    await etcd?.destroy();
  });

  it('a single oversized policy is refused as too large (4xx), not as an unavailable store', async () => {
    const body = {
      rules: Array.from({ length: 52 }, (_, r) => ({
        credentials: Array.from({ length: 64 }, (_, i) => `${r}-${i}-${'の'.repeat(240)}`),
        actions: ['list'],
      })),
    };
    const bytes = Buffer.byteLength(JSON.stringify(body));
    const res = await vault.call('PUT', '/v1/policies/huge', { body });
    expect(
      res.status >= 400 && res.status < 500,
      `a ${bytes}-byte policy answered ${res.status}: ${res.text.slice(0, 240)}`,
    ).toBe(true);
    // And the store is fine meanwhile.
    const small = await vault.call('PUT', '/v1/policies/small', { body: { rules: [] } });
    expect(small.status).toBeLessThan(300);
  });
});
