/**
 * Red team session 10: the store API's failure reads (cc3dd7e): a transaction whose compare
 * fails returns `failureReads` (a key, or a prefix with startAfter and limit) as of that
 * transaction, in both stores.
 *
 * HOLDS: reads never leave the etcd store's namespace (`--etcd-prefix`), whatever prefix and
 * startAfter a caller passes; bad limits and too many reads are refused alike by both stores
 * before anything is written; the etcd and embedded stores return the same keys, values,
 * order (UTF-8 bytes) and `more`, including what the failure branch itself wrote.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openEmbeddedStore } from '../../src/store/embedded-store.js';
import { openEtcdStore } from '../../src/store/etcd-store.js';
import type { FailureRead, Store, Txn, TxnResult } from '../../src/store/store.js';
import { type EtcdProcess, startEtcd } from '../support/etcd.js';

const KEYS = [
  'p/a',
  'p/b',
  'p/b/c',
  'p/c',
  'p/é',
  'p/z',
  'p/\u{1F600}',
  'p0',
  'p',
  'q/a',
  'a',
  '\u0001low',
  '~high',
];

describe('session 10: failure reads in both stores', () => {
  let etcd: EtcdProcess;
  let outside: Store;
  let namespaced: Store;
  let embedded: Store;
  let dir: string;

  beforeAll(async () => {
    etcd = await startEtcd();
    outside = await openEtcdStore({ endpoints: [etcd.endpoint] });
    namespaced = await openEtcdStore({ endpoints: [etcd.endpoint], prefix: 'ns1/' });
    dir = mkdtempSync(join(tmpdir(), 'vault-s10-reads-'));
    embedded = await openEmbeddedStore({ path: dir, maxTxnOps: 128 });
    // Keys outside the namespace, next to it on both sides (byte order).
    await outside.txn({
      success: ['ns1', 'ns0/p/a', 'ns1.p/a', 'ns10/p/a', 'ns1x', 'ns2/p/a', 'ns1\u0000', 'zz', '\u0001'].map(
        (key) => ({ type: 'put' as const, key, value: `outside:${key}` }),
      ),
    });
    for (const store of [namespaced, embedded]) {
      await store.txn({ success: KEYS.map((key) => ({ type: 'put' as const, key, value: `v:${key}` })) });
    }
  }, 90_000);

  afterAll(async () => {
    await namespaced?.close();
    await outside?.close();
    await embedded?.close();
    await etcd?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A transaction that fails its compare ('must not exist' on an existing key). */
  const failing = (failureReads: FailureRead[], failure: Txn['failure'] = []): Txn => ({
    compare: [{ key: 'p/a', modRevision: 0 }],
    success: [{ type: 'put', key: 'never', value: 'x' }],
    failure,
    failureReads,
  });
  const shape = (result: TxnResult) =>
    result.reads?.map((read) => ({
      keys: read.kvs.map((kv) => `${kv.key}=${kv.value}`),
      more: read.more,
    }));

  const READS: FailureRead[][] = [
    [{ key: 'p/a' }, { key: 'missing' }],
    [{ prefix: 'p/', limit: 100 }],
    [{ prefix: 'p/', limit: 2 }],
    [{ prefix: 'p/', startAfter: 'p/b', limit: 2 }],
    [{ prefix: 'p/', startAfter: 'p/c', limit: 3 }],
    [{ prefix: 'p/', startAfter: 'p/\u{1F600}', limit: 3 }],
    // startAfter below the prefix: from its start; above it: nothing.
    [{ prefix: 'p/', startAfter: 'a', limit: 10 }],
    [{ prefix: 'p/', startAfter: 'q', limit: 10 }],
    [{ prefix: 'p/', startAfter: '', limit: 10 }],
    // The whole keyspace (of the namespace), and a prefix that is not a "directory".
    [{ prefix: '', limit: 1000 }],
    [{ prefix: '', startAfter: '\u0000', limit: 1000 }],
    [{ prefix: 'p', limit: 1000 }],
    [{ prefix: '~', limit: Number.MAX_SAFE_INTEGER }],
  ];

  it('returns the same reads from etcd (namespaced) and the embedded store', async () => {
    for (const reads of READS) {
      const [fromEtcd, fromEmbedded] = await Promise.all([
        namespaced.txn(failing(reads)),
        embedded.txn(failing(reads)),
      ]);
      expect(fromEtcd.succeeded).toBe(false);
      expect(shape(fromEtcd), JSON.stringify(reads)).toEqual(shape(fromEmbedded));
    }
  }, 30_000);

  it('never returns a key outside the etcd namespace', async () => {
    for (const reads of READS) {
      const result = await namespaced.txn(failing(reads));
      for (const read of result.reads ?? []) {
        for (const kv of read.kvs) expect(kv.value, JSON.stringify(reads)).not.toMatch(/^outside:/);
      }
    }
    // Everything the namespaced store can see is what it wrote.
    const all = await namespaced.txn(failing([{ prefix: '', limit: 10_000 }]));
    expect(all.reads?.[0]?.kvs.map((kv) => kv.key).sort()).toEqual([...KEYS].sort());
  }, 30_000);

  it('reads what the failure branch wrote, in both stores', async () => {
    for (const store of [namespaced, embedded]) {
      const result = await store.txn(
        failing(
          [{ key: 'p/new' }, { prefix: 'p/', startAfter: 'p/c', limit: 1 }],
          [{ type: 'put', key: 'p/new', value: 'written' }],
        ),
      );
      expect(shape(result)).toEqual([
        { keys: ['p/new=written'], more: false },
        { keys: ['p/new=written'], more: true },
      ]);
      await store.txn({ success: [{ type: 'delete', key: 'p/new' }] });
    }
  }, 30_000);

  it('returns no reads when the transaction succeeds', async () => {
    for (const store of [namespaced, embedded]) {
      const result = await store.txn({
        compare: [{ key: 'fresh', modRevision: 0 }],
        success: [{ type: 'put', key: 'fresh', value: '1' }],
        failureReads: [{ key: 'p/a' }],
      });
      expect(result.succeeded).toBe(true);
      expect(result.reads).toBeUndefined();
      await store.txn({ success: [{ type: 'delete', key: 'fresh' }] });
    }
  }, 30_000);

  it('refuses bad limits, empty keys and too many reads alike, writing nothing', async () => {
    const bad: Array<FailureRead[]> = [
      [{ prefix: 'p/', limit: 0 }],
      [{ prefix: 'p/', limit: -1 }],
      [{ prefix: 'p/', limit: 1.5 }],
      [{ prefix: 'p/', limit: Number.NaN }],
      [{ prefix: 'p/', limit: 2 ** 60 }],
      [{ key: '' }],
      Array.from({ length: 129 }, () => ({ key: 'p/a' })),
    ];
    for (const reads of bad) {
      for (const store of [namespaced, embedded]) {
        await expect(
          store.txn(failing(reads)),
          `${store.kind} ${JSON.stringify(reads).slice(0, 80)}`,
        ).rejects.toThrow(/failure read|at most 128/);
      }
    }
    // 120 failure ops and 9 reads: 129 operations in the failure branch.
    const ops = Array.from({ length: 120 }, (_, i) => ({ type: 'put' as const, key: `f/${i}`, value: '1' }));
    for (const store of [namespaced, embedded]) {
      await expect(
        store.txn(
          failing(
            Array.from({ length: 9 }, () => ({ key: 'p/a' })),
            ops,
          ),
        ),
      ).rejects.toThrow(/at most 128/);
      expect((await store.range('f/')).kvs).toEqual([]);
    }
  }, 30_000);
});
