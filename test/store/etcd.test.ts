import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isVaultError } from '../../src/lib/errors.js';
import { openEtcdStore } from '../../src/store/etcd-store.js';
import { type EtcdProcess, startEtcd } from '../support/etcd.js';
import { describeStoreContract } from './contract.js';

let etcd: EtcdProcess;

beforeAll(async () => {
  etcd = await startEtcd();
});

afterAll(async () => {
  await etcd?.destroy();
});

// Each test gets its own key namespace on the one etcd, so tests cannot see each other's keys.
describeStoreContract('etcd', async () => {
  const store = await openEtcdStore({ endpoints: [etcd.endpoint], prefix: `contract/${randomUUID()}/` });
  return { store, cleanup: () => store.close() };
});

describe('etcd --max-txn-ops', () => {
  it('a store set above what etcd allows fails to open, saying which setting to change', async () => {
    const err = await openEtcdStore({ endpoints: [etcd.endpoint], maxTxnOps: 1024 }).catch((e: unknown) => e);
    expect(isVaultError(err) && err.code).toBe('bad_request');
    expect((err as Error).message).toMatch(
      /refuses transactions of 1024 operations: start etcd with --max-txn-ops=1024 or more, or lower --etcd-max-txn-ops/,
    );
  });

  it('with etcd raised too, one transaction holds that many operations', async () => {
    const big = await startEtcd({ maxTxnOps: 1024 });
    const store = await openEtcdStore({ endpoints: [big.endpoint], maxTxnOps: 1024 });
    try {
      expect(store.maxTxnOps).toBe(1024);
      const success = Array.from({ length: 1024 }, (_, i) => ({
        type: 'put' as const,
        key: `k/${i}`,
        value: 'v',
      }));
      expect((await store.txn({ success })).succeeded).toBe(true);
      expect(await store.count('k/')).toBe(1024);
      // Reads of many keys go in transactions as large as allowed (up to 500 keys), and stay exact.
      const many = await store.getMany!(Array.from({ length: 1030 }, (_, i) => `k/${i}`));
      expect(many.filter((kv) => kv?.value === 'v')).toHaveLength(1024);
      expect(many.slice(1024)).toEqual([undefined, undefined, undefined, undefined, undefined, undefined]);
    } finally {
      await store.close();
      await big.destroy();
    }
  });
});
