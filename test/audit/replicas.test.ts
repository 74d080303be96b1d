/**
 * Several API replicas append to one tenant's chain at once, as the chart's two servers and
 * two controllers do on one etcd. Each replica reads the head and the record after it in
 * separate reads, so a commit of another replica lands between them all the time: that is a
 * race, not a rolled-back head, and must never stop the tenant's writes.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVaultCore, systemContext, type VaultCore } from '../../src/core/index.js';
import { sealedPrefixes } from '../../src/core/keys.js';
import { createKeyring } from '../../src/crypto/keyring.js';
import { localRootKey } from '../../src/crypto/root-key.js';
import { createLogger } from '../../src/lib/logger.js';
import { openEtcdStore } from '../../src/store/etcd-store.js';
import type { Store } from '../../src/store/store.js';
import { type EtcdProcess, startEtcd } from '../support/etcd.js';

const tenant = 'shared';
const rootKey = randomBytes(32);
let etcd: EtcdProcess;
const stores: Store[] = [];

async function replica(): Promise<VaultCore> {
  const store = await openEtcdStore({ endpoints: [etcd.endpoint], timeoutMs: 5_000 });
  stores.push(store);
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
});
