/**
 * Several API replicas append to one tenant's chain at once, as the chart's two servers and
 * two controllers do on one etcd. Each replica reads the head and the record after it in
 * separate reads, so a commit of another replica lands between them all the time: that is a
 * race, not a rolled-back head, and must never stop the tenant's writes.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVaultCore, systemContext, type VaultCore } from '../../src/core/index.js';
import { keys, sealedPrefixes } from '../../src/core/keys.js';
import { createKeyring } from '../../src/crypto/keyring.js';
import { localRootKey } from '../../src/crypto/root-key.js';
import { createLogger } from '../../src/lib/logger.js';
import { openEtcdStore } from '../../src/store/etcd-store.js';
import type { Store, Txn } from '../../src/store/store.js';
import { type EtcdProcess, startEtcd } from '../support/etcd.js';
import { storeWith } from '../support/store-proxy.js';

const tenant = 'shared';
const rootKey = randomBytes(32);
let etcd: EtcdProcess;
const stores: Store[] = [];

/** A replica; `reads` counts the gets of each key it makes; `wrap` stands between it and its store. */
async function replica(reads?: Map<string, number>, wrap?: (store: Store) => Store): Promise<VaultCore> {
  const etcdStore = await openEtcdStore({ endpoints: [etcd.endpoint], timeoutMs: 5_000 });
  stores.push(etcdStore);
  const counted: Store = !reads
    ? etcdStore
    : {
        ...etcdStore,
        get: (key) => {
          reads.set(key, (reads.get(key) ?? 0) + 1);
          return etcdStore.get(key);
        },
      };
  const store = wrap ? wrap(counted) : counted;
  const logger = createLogger({ level: 'silent' });
  const keyring = createKeyring({ store, roots: [localRootKey(rootKey)], sealedPrefixes, logger });
  return createVaultCore({ store, keyring, logger });
}

beforeAll(async () => {
  etcd = await startEtcd();
});
afterAll(async () => {
  for (const store of stores) await store.close();
  await etcd?.stop();
});

describe('the audit chain with several replicas', () => {
  it('appends from three replicas at once without a false tamper, and the chain verifies', async () => {
    const replicas = [await replica(), await replica(), await replica()];
    const ctx = systemContext(tenant, { type: 'human', name: 'admin' });
    // The tenant's very first commits race too (no head yet on any replica).
    await Promise.all(replicas.map((core) => core.tenants.ensure(tenant, ctx)));
    // Every replica contends for the one chain head: a commit that loses the race too often
    // says "retry the request" (409), and a client retries it.
    const createWithRetry = async (core: VaultCore, name: string) => {
      for (let attempt = 0; ; attempt++) {
        try {
          return await core.credentials.create(ctx, {
            name,
            type: 'generic',
            value: `v-${name}`,
            metadata: {},
          } as never);
        } catch (err) {
          if (attempt >= 5 || !/concurrently/.test(String(err))) throw err;
        }
      }
    };
    const writes = replicas.flatMap((core, r) =>
      Array.from({ length: 40 }, (_, i) => createWithRetry(core, `r${r}-c${i}`)),
    );
    const results = await Promise.allSettled(writes);
    const failures = results
      .filter((r) => r.status === 'rejected')
      .map((r) => String((r as PromiseRejectedResult).reason));
    expect(failures).toEqual([]);
    for (const core of replicas) expect(core.auditIntegrity.list()).toEqual([]);
    const verified = await replicas[0]!.audit.verify(ctx);
    expect(verified.ok).toBe(true);
    expect(verified.records).toBeGreaterThanOrEqual(120);
  });

  it('verifies (and checkpoints) while another replica appends, without a false tamper', async () => {
    const [writer, verifier] = [await replica(), await replica()];
    const ctx = systemContext('racing', { type: 'human', name: 'admin' });
    await writer.tenants.ensure('racing', ctx);
    let writing = true;
    let written = 0;
    const writeLoop = async (loop: number) => {
      for (let i = 0; writing; i++) {
        // The verifier's own records contend for the head: a lost race is retried by the client.
        await writer.credentials
          .create(ctx, { name: `c${loop}-${i}`, type: 'generic', value: 'v', metadata: {} } as never)
          .then(() => written++)
          .catch((err: unknown) => {
            if (!/concurrently/.test(String(err))) throw err;
          });
      }
    };
    const writes = Promise.all(Array.from({ length: 8 }, (_, loop) => writeLoop(loop)));
    // Past one page of records, a verification reads for longer, and commits land meanwhile.
    while (written < 1_200) await new Promise((resolve) => setTimeout(resolve, 50));
    const outcomes = [];
    try {
      while (outcomes.length < 10) {
        // The verification's own record contends too: a 409 "retry" is retried.
        const outcome = await verifier.audit.verify(ctx).catch((err: unknown) => {
          if (!/concurrently/.test(String(err))) throw err;
        });
        if (outcome) outcomes.push(outcome);
      }
    } finally {
      writing = false;
      await writes;
    }
    expect(outcomes.filter((outcome) => !outcome.ok)).toEqual([]);
    expect(verifier.auditIntegrity.list()).toEqual([]);
  }, 120_000);

  it('takes turns on the head: three busy replicas of one tenant answer no "retry the request"', async () => {
    const replicas = [await replica(), await replica(), await replica()];
    const ctx = systemContext('turns', { type: 'human', name: 'admin' });
    await replicas[0]!.tenants.ensure('turns', ctx);
    // 64 writes in flight per replica at once, no client retries: losing a round to another
    // replica's commit is not a conflict of the request's own records.
    const results = await Promise.allSettled(
      replicas.flatMap((core, r) =>
        Array.from({ length: 2 * 64 }, (_, i) =>
          core.credentials.create(ctx, {
            name: `t${r}-${i}`,
            type: 'generic',
            value: 'v',
            metadata: {},
          } as never),
        ),
      ),
    );
    const refused = results.filter((r) => r.status === 'rejected').map((r) => String(r.reason));
    expect(refused).toEqual([]);
    expect((await replicas[1]!.audit.verify(ctx)).ok).toBe(true);
  }, 120_000);

  it('a replica that lost the head catches up from its failed transaction, without reading the head again', async () => {
    const reads = [new Map<string, number>(), new Map<string, number>()];
    const replicas = [await replica(reads[0]), await replica(reads[1])];
    const ctx = systemContext('catch-up', { type: 'human', name: 'admin' });
    await replicas[0]!.tenants.ensure('catch-up', ctx);
    const create = (core: VaultCore, name: string) =>
      core.credentials.create(ctx, { name, type: 'generic', value: 'v', metadata: {} } as never);
    // Each replica reads the head once, for its first commit.
    await create(replicas[0]!, 'first-0');
    await create(replicas[1]!, 'first-1');
    const before = reads.map((read) => read.get(keys.auditHead('catch-up')) ?? 0);
    const results = await Promise.allSettled(
      replicas.flatMap((core, r) => Array.from({ length: 96 }, (_, i) => create(core, `c${r}-${i}`))),
    );
    expect(results.filter((r) => r.status === 'rejected').map((r) => String(r.reason))).toEqual([]);
    // The first replica's cached head went stale when the second committed, so it lost rounds
    // (so may the second): each learnt the new head, and verified the records after its own,
    // from the transaction it lost.
    const after = reads.map((read) => read.get(keys.auditHead('catch-up')) ?? 0);
    expect(after).toEqual(before);
    expect(before.every((count) => count >= 1)).toBe(true);
    const verified = await replicas[0]!.audit.verify(ctx);
    expect(verified).toMatchObject({ ok: true });
    for (const core of replicas) expect(core.auditIntegrity.list()).toEqual([]);
  }, 120_000);

  it('does not catch up over a record it cannot verify: a planted record stops the writes as tampering', async () => {
    const core = await replica();
    const ctx = systemContext('planted', { type: 'human', name: 'admin' });
    await core.tenants.ensure('planted', ctx);
    await core.credentials.create(ctx, { name: 'a', type: 'generic', value: 'v', metadata: {} } as never);
    // Someone who can write the store, not the root key, appends a record and moves the head
    // to it: the head that `core` has cached is now stale, so its next transaction fails and
    // brings this record back.
    const store = stores.at(-1)!;
    const head = JSON.parse((await store.get(keys.auditHead('planted')))!.value) as {
      seq: number;
      hash: string;
    };
    const newest = JSON.parse((await store.get(keys.auditRecord('planted', head.seq)))!.value) as Record<
      string,
      unknown
    >;
    const forged = {
      ...newest,
      seq: head.seq + 1,
      prevHash: head.hash,
      action: 'lease.revoke',
      hash: 'f'.repeat(64),
    };
    await store.txn({
      success: [
        { type: 'put', key: keys.auditRecord('planted', head.seq + 1), value: JSON.stringify(forged) },
        {
          type: 'put',
          key: keys.auditHead('planted'),
          value: JSON.stringify({ seq: head.seq + 1, hash: forged.hash }),
        },
      ],
    });
    await expect(
      core.credentials.create(ctx, { name: 'b', type: 'generic', value: 'v', metadata: {} } as never),
    ).rejects.toThrow(/tamper|modified/i);
    expect(core.auditIntegrity.list().map((entry) => entry.tenant)).toEqual(['planted']);
    expect(await store.get(keys.auditRecord('planted', head.seq + 2))).toBeUndefined();
    expect(await store.get(keys.credential('planted', 'b'))).toBeUndefined();
  }, 60_000);

  it('commits many large changes queued at once, though together they exceed what etcd takes in one request', async () => {
    const [core] = [await replica()];
    const ctx = systemContext('large', { type: 'human', name: 'admin' });
    await core.tenants.ensure('large', ctx);
    // 40 values of 60 KiB queued together: about 3 MB sealed, past etcd's 1.5 MiB request limit.
    const value = 'x'.repeat(60 * 1024);
    const results = await Promise.allSettled(
      Array.from({ length: 40 }, (_, i) =>
        core.credentials.create(ctx, { name: `big-${i}`, type: 'generic', value, metadata: {} } as never),
      ),
    );
    expect(results.filter((r) => r.status === 'rejected').map((r) => String(r.reason))).toEqual([]);
    expect((await core.audit.verify(ctx)).ok).toBe(true);
  }, 60_000);

  it('a replica that keeps losing the head claims the turn: the other waits, and goes after it', async () => {
    const tenant = 'turn';
    const ctx = systemContext(tenant, { type: 'human', name: 'admin' });
    const change = (name: string) => async () => ({
      ops: [{ type: 'put' as const, key: `test/turn/${name}`, value: name }],
      audit: [{ action: 'test.write', resource: name, outcome: 'allowed' as const }],
      result: name,
    });
    const txns = { a: [] as Txn[], b: [] as Txn[] };
    const claimsTurn = (txn: Txn) =>
      txn.failure?.some((op) => op.type === 'put' && op.key === keys.auditTurn(tenant)) === true;
    /** Before each of B's transactions until one claims the turn, A commits: B loses the head. */
    let losing = false;
    let lost = 0;
    const a: VaultCore = await replica(undefined, (store) =>
      storeWith(store, (real) => ({
        txn: (txn: Txn) => {
          txns.a.push(txn);
          return real.txn(txn);
        },
      })),
    );
    const b: VaultCore = await replica(undefined, (store) =>
      storeWith(store, (real) => ({
        txn: async (txn: Txn) => {
          const claimed = txns.b.some(claimsTurn);
          txns.b.push(txn);
          if (losing && !claimed && lost < 5) {
            lost += 1;
            await a.committer.commit(ctx, change(`a${lost}`));
          }
          return real.txn(txn);
        },
      })),
    );
    await a.tenants.ensure(tenant, ctx);
    await a.committer.commit(ctx, change('a0'));
    await b.committer.commit(ctx, change('b0'));
    losing = true;
    const fromB = b.committer.commit(ctx, change('b1'));
    expect(await fromB).toBe('b1');
    // B lost twice in a row, and its third lost transaction claimed the turn.
    expect(lost).toBe(3);
    // (Its retry claims too, in case it loses again; it won, so the claim was written once.)
    expect((await stores[stores.length - 1]!.get(keys.auditTurn(tenant)))?.version).toBe(1);
    // A compares the turn in every commit: its next one loses to the claim once, then waits its
    // moment and commits after B's.
    const before = txns.a.length;
    expect(await a.committer.commit(ctx, change('a4'))).toBe('a4');
    expect(txns.a.length - before).toBe(2);
    const records = await a.audit.query(ctx, { action: 'test.write' } as never);
    expect(records.records.map((record: { resource: string }) => record.resource)).toEqual([
      'a0',
      'b0',
      'a1',
      'a2',
      'a3',
      'b1',
      'a4',
    ]);
    expect((await a.audit.verify(ctx)).ok).toBe(true);
  });

  it("commits a group of many value reads, each comparing its own lease, within the store's compare limit", async () => {
    const core = await replica();
    const ctx = systemContext('reads', { type: 'human', name: 'admin' });
    await core.tenants.ensure('reads', ctx);
    await core.credentials.create(ctx, { name: 'db', type: 'password', value: 'v', metadata: {} } as never);
    const leases = [];
    for (let i = 0; i < 100; i++) {
      leases.push(
        await core.leases.create(ctx, { credentialName: 'db', ttl: '1h', renewable: true } as never),
      );
    }
    // Read together, they queue together: one group of up to 64 reads compares 64 leases, the
    // credential and the records it adds, beside the head: past etcd's 128 if not counted.
    const results = await Promise.allSettled(leases.map((lease) => core.leases.read(ctx, lease.id)));
    expect(results.filter((r) => r.status === 'rejected').map((r) => String(r.reason))).toEqual([]);
  }, 60_000);

  it('fails the requests of a round whose first read of the turn fails, and the next round works', async () => {
    let failTurnRead = true;
    const core = await replica(undefined, (store) =>
      storeWith(store, (real) => ({
        get: async (key: string) => {
          if (failTurnRead && key === keys.auditTurn('turn-read')) {
            failTurnRead = false;
            throw new Error('etcd is unavailable');
          }
          return real.get(key);
        },
      })),
    );
    const ctx = systemContext('turn-read', { type: 'human', name: 'admin' });
    await expect(core.tenants.ensure('turn-read', ctx)).rejects.toThrow(/unavailable/);
    await core.tenants.ensure('turn-read', ctx);
    expect((await core.audit.verify(ctx)).ok).toBe(true);
  }, 30_000);
});
