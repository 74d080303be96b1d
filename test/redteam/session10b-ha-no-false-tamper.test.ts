import { randomBytes } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openEtcdStore } from '../../src/store/etcd-store.js';
import type { Store } from '../../src/store/store.js';
import { type EtcdCluster, startEtcdCluster } from '../support/etcd-cluster.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

// Red team, session 10b (held): normal high-availability events under load on one tenant do not
// trip the new "head set back" check (or any tamper report): a 3-member etcd whose leader is
// moved twice and whose one member is killed and restarted, an etcd compaction, an API replica
// closed and started again (a restart: a new process with an empty `highest`), and verifications
// and checkpoints running on every replica throughout. Writes may fail while etcd changes leader
// (503, "may or may not have been applied"), never with audit_unavailable.

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('HA events under load do not look like tampering (held)', () => {
  let etcd: EtcdCluster;
  const rootKey = randomBytes(32);
  const stores: Store[] = [];
  const vaults: TestVault[] = [];

  const startReplica = async () => {
    const store = await openEtcdStore({ endpoints: etcd.endpoints, timeoutMs: 5_000 });
    stores.push(store);
    const vault = await startTestVault({ store, rootKey });
    vaults.push(vault);
    return vault;
  };

  beforeAll(async () => {
    etcd = await startEtcdCluster({ size: 3 });
    await startReplica();
    await startReplica();
  }, 90_000);
  afterAll(async () => {
    for (const vault of vaults) await vault.close().catch(() => undefined);
    for (const store of stores) await store.close().catch(() => undefined);
    await etcd?.destroy();
  });

  it('leader moves, a member killed and back, a compaction, a replica restart, verify/checkpoint loops', async () => {
    const live = [vaults[0]!, vaults[1]!];
    const statuses = new Map<string, number>();
    let running = true;
    let n = 0;
    const writer = async (w: number) => {
      while (running) {
        const vault = live[w % live.length]!;
        const res = await vault
          .call('POST', '/v1/credentials', { body: { name: `c-${w}-${n++}`, type: 'generic', value: 'v' } })
          .catch((err: Error) => ({ status: 0, body: { error: { code: err.message } } }));
        const key = res.status === 201 ? '201' : `${res.status} ${res.body?.error?.code ?? ''}`;
        statuses.set(key, (statuses.get(key) ?? 0) + 1);
      }
    };
    const checker = async (v: number) => {
      while (running) {
        const vault = live[v % live.length]!;
        await vault.call('POST', '/v1/audit/verify', { body: {} }).catch(() => undefined);
        await vault.core.audit.checkpoint(vault.tenant).catch(() => undefined);
        await sleep(100);
      }
    };
    const work = [...Array.from({ length: 8 }, (_, i) => writer(i)), checker(0), checker(1)];

    await sleep(2_000);
    const first = await etcd.leader();
    await etcd.moveLeader(etcd.members.find((m) => m !== first)!);
    await sleep(1_500);
    const second = await etcd.leader();
    await second.kill();
    await sleep(2_500);
    await second.restart();
    await sleep(1_000);
    const leader = await etcd.leader();
    await etcd.moveLeader(etcd.members.find((m) => m !== leader && m.running())!);
    // A compaction of everything so far.
    const client = new Etcd3({ hosts: etcd.endpoints });
    try {
      const { header } = await client.kv.range({ key: Buffer.from('\0') });
      await client.kv.compact({ revision: header.revision, physical: true });
    } finally {
      client.close();
    }
    await sleep(1_000);
    // Replica 1 restarts: a new process on the same store.
    const old = live[1]!;
    live[1] = live[0]!;
    await old.close();
    live[1] = await startReplica();
    await sleep(3_000);
    running = false;
    await Promise.all(work);

    const reports = vaults.flatMap((vault) => vault.core.auditIntegrity.list());
    const summary = JSON.stringify([...statuses]);
    console.log(`writes during HA events: ${summary}`);
    expect(
      reports.map((r) => r.reason),
      `tamper reported during HA events; writes: ${summary}`,
    ).toEqual([]);
    expect(
      [...statuses.keys()].filter((k) => k.includes('audit_unavailable')),
      summary,
    ).toEqual([]);
    expect(statuses.get('201') ?? 0, summary).toBeGreaterThan(100);
    for (const vault of live) {
      const verify = await vault.call('POST', '/v1/audit/verify', { body: {} });
      expect(verify.body.ok, verify.text).toBe(true);
    }
  }, 58_000);
});
