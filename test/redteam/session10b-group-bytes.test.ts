import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Txn } from '../../src/store/store.js';
import { storeWith } from '../support/store-proxy.js';
import { type Replicas, startReplicas } from './session10-replicas.js';

// Red team, session 10b: the group commit's byte limit counts UTF-16 units, etcd counts bytes.
//
// A group commit stays under MAX_GROUP_BYTES (1 MiB) by sizeOf(), which adds up `op.value.length`.
// A character of U+0800..U+FFFF (CJK, most non-Latin scripts) is one unit and three UTF-8 bytes,
// so a policy whose credential globs are written in such characters (any character is allowed,
// up to 64 x 253 per rule; a 128 KiB request carries ~33,000 of them) counts ~34 KB and weighs
// ~100 KB. With the store a few ms away (requests queue while a transaction is in flight),
// ~30 such PUTs share one transaction of ~3 MB, over etcd's --max-request-bytes (1.5 MiB), and
// etcd refuses the whole group: every request in it answers 503, including other callers'
// ordinary writes that queued beside them. This is the failure the byte limit was added for
// ("large values answered 503"), back for any non-ASCII text (tenant admins, the cluster
// controller syncing policies, identities' metadata).
//
// Fix: size ops by Buffer.byteLength(key) + Buffer.byteLength(value) (and the records likewise);
// and/or on etcd's "request is too large" split the group and retry its parts (solo) instead of
// failing every change in it.

describe('group commit byte budget', () => {
  let cluster: Replicas;
  let largest = 0;

  beforeAll(async () => {
    cluster = await startReplicas(1, {
      wrap: (_i, store) =>
        storeWith(store, (inner) => ({
          async txn(txn: Txn) {
            const bytes = txn.success.reduce(
              (sum, op) => sum + Buffer.byteLength(op.type === 'put' ? op.key + op.value : ''),
              0,
            );
            largest = Math.max(largest, bytes);
            // A store 40 ms away (a busy etcd's fsync, another zone): requests queue meanwhile.
            await new Promise((resolve) => setTimeout(resolve, 40));
            return inner.txn(txn);
          },
        })),
    });
  }, 60_000);
  afterAll(() => cluster?.close());

  it('concurrent policy writes in a non-Latin script do not fail the whole group (and others with it)', async () => {
    const vault = cluster.replicas[0]!.vault;
    const glob = (i: number) => `${String(i).padStart(3, '0')}${'の'.repeat(250)}`;
    const body = {
      description: '説'.repeat(1000),
      rules: [0, 1].map((r) => ({
        credentials: Array.from({ length: 64 }, (_, i) => glob(r * 64 + i)),
        actions: ['list'],
      })),
    };
    expect(Buffer.byteLength(JSON.stringify(body))).toBeLessThan(128 * 1024);
    const probe = await vault.call('PUT', '/v1/policies/probe', { body });
    expect(probe.status, probe.text.slice(0, 300)).toBeLessThan(300);

    const admin = Array.from({ length: 40 }, (_, i) => vault.call('PUT', `/v1/policies/p-${i}`, { body }));
    // Another caller's ordinary writes, queued beside them.
    await new Promise((resolve) => setTimeout(resolve, 60));
    const ordinary = Array.from({ length: 4 }, (_, i) =>
      vault.call('POST', '/v1/credentials', { body: { name: `ordinary-${i}`, type: 'generic', value: 'v' } }),
    );
    const results = await Promise.all([...admin, ...ordinary]);
    const failed = results
      .map((res, i) => ({ who: i < 40 ? 'policy' : 'ordinary', status: res.status, text: res.text }))
      .filter((r) => r.status >= 300);
    const sample = failed[0] ? `${failed[0].status} ${failed[0].text.slice(0, 200)}` : '';
    expect(
      failed.map((r) => `${r.who} ${r.status}`),
      `${failed.length} of ${results.length} writes failed (${failed.filter((r) => r.who === 'ordinary').length} of the 4 ordinary ones); the largest transaction sent was ${largest} bytes (e.g. ${sample})`,
    ).toEqual([]);
  }, 55_000);
});
