/**
 * The etcd store on a real 3-member cluster, every member's URL configured: with one member
 * killed, reads, transactions and watches keep working on the other two (a call that cannot
 * connect to the dead member goes to the next one, and the dead member is skipped for a
 * while), and once it is back it is used again.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OutcomeUnknownError } from '../../src/lib/errors.js';
import { openEtcdStore } from '../../src/store/etcd-store.js';
import type { Store, WatchEvent } from '../../src/store/store.js';
import { type EtcdCluster, startEtcdCluster } from '../support/etcd-cluster.js';
import { eventually } from './contract.js';

let cluster: EtcdCluster;
let store: Store;

beforeAll(async () => {
  cluster = await startEtcdCluster({ size: 3 });
  store = await openEtcdStore({
    endpoints: cluster.endpoints,
    prefix: `cluster/${randomUUID()}/`,
    timeoutMs: 3_000,
  });
});
afterAll(async () => {
  await store?.close();
  await cluster?.destroy();
});

/** Runs `n` calls one after another; returns the messages of those that failed. */
async function failures(n: number, call: (i: number) => Promise<unknown>): Promise<string[]> {
  const failed: string[] = [];
  for (let i = 0; i < n; i++) await call(i).catch((err: unknown) => failed.push((err as Error).message));
  return failed;
}

describe('the etcd store on a 3-member cluster', () => {
  it('keeps answering every call with one member killed, and uses it again once it is back', async () => {
    await store.txn({ success: [{ type: 'put', key: 'k/0', value: 'v' }] });
    const events: WatchEvent[] = [];
    const watcher = await store.watch('k/', 0, (event) => events.push(event));
    const leader = await cluster.leader();
    const victim = cluster.members.find((member) => member !== leader)!;
    await victim.kill();

    // Calls that reached the member as it died may fail; none after it is known to be gone,
    // which the first call that tries to connect to it finds out.
    expect(await failures(200, () => store.get('k/0'))).toEqual([]);
    expect(
      await failures(60, (i) => store.txn({ success: [{ type: 'put', key: `k/${i + 1}`, value: 'v' }] })),
    ).toEqual([]);
    expect(await failures(50, () => store.range('k/'))).toEqual([]);
    // The watch moved to a live member (if it was on the dead one) and missed nothing.
    await eventually(() => expect(events.filter((e) => e.type === 'put').length).toBe(60));

    await victim.restart();
    // Back in the rotation: with the other follower killed now, the leader and the restarted
    // member keep a quorum, and calls succeed again once the store connects to it.
    const other = cluster.members.find((member) => member !== leader && member !== victim)!;
    await other.kill();
    await eventually(async () => {
      expect(await failures(50, () => store.get('k/0'))).toEqual([]);
    }, 30_000);
    await other.restart();
    await watcher.close();
  }, 120_000);

  it('writes again after the leader is killed, once the others elected a new one', async () => {
    const leader = await cluster.leader();
    await leader.kill();
    const next = await cluster.leader();
    expect(next).not.toBe(leader);
    await eventually(async () => {
      await store.txn({ success: [{ type: 'put', key: 'after-election', value: 'v' }] });
    }, 30_000);
    expect(await failures(30, () => store.get('after-election'))).toEqual([]);
    await leader.restart();
  }, 120_000);

  it('answers every read while a member hangs (open sockets, no answers), and reports writes sent to it as outcome unknown', async () => {
    await store.txn({ success: [{ type: 'put', key: 'hang/0', value: 'v' }] });
    const leader = await cluster.leader();
    const victim = cluster.members.find((member) => member !== leader)!;
    const etcd = store as Required<Store>;
    victim.freeze();
    try {
      // Every read answers: one that went to the hung member is sent to another once its
      // deadline passes, and the hung member is skipped for a while after that.
      expect(await failures(60, () => store.get('hang/0'))).toEqual([]);
      expect(await failures(20, () => store.range('hang/'))).toEqual([]);
      expect(await failures(20, () => etcd.count('hang/'))).toEqual([]);
      expect(await failures(5, () => etcd.getMany(['hang/0', 'hang/none']))).toEqual([]);
      // A write that went to it timed out: whether it was applied is unknown, and said so.
      const writeErrors: unknown[] = [];
      for (let i = 0; i < 30; i++) {
        await store
          .txn({ success: [{ type: 'put', key: `hang/${i + 1}`, value: 'v' }] })
          .catch((err: unknown) => writeErrors.push(err));
      }
      for (const err of writeErrors) expect(err).toBeInstanceOf(OutcomeUnknownError);
      expect(writeErrors.length).toBeLessThan(30);
    } finally {
      victim.thaw();
    }
  }, 180_000);
});
