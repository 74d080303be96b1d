/**
 * Verification from a checkpoint: `from: "checkpoint"` reads only the records appended after
 * a checkpoint you kept (its own record must still hash to it), so a tenant with a long chain
 * verifies what changed since the last time in a bounded request. What it does not re-read
 * (a rewrite of older records) a verification from the start still finds; both are shown.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../src/core/keys.js';
import { Vault } from '../../src/sdk/index.js';
import { openEmbeddedStore } from '../../src/store/embedded-store.js';
import type { Store } from '../../src/store/store.js';
import { storeWith } from '../support/store-proxy.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

describe('audit verification from a checkpoint', () => {
  let vault: TestVault;
  let sdk: Vault;
  let dir: string;
  let inner: Store;
  /** Audit records the server read from the store. */
  let recordsRead = 0;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vault-verify-from-'));
    inner = await openEmbeddedStore({ path: dir });
    const counting = storeWith(inner, (target) => ({
      range: async (prefix: string, options?: Parameters<Store['range']>[1]) => {
        const page = await target.range(prefix, options);
        if (prefix.endsWith('/audit/')) recordsRead += page.kvs.length;
        return page;
      },
    }));
    vault = await startTestVault({ store: counting });
    sdk = await Vault.connect({ addr: vault.url, token: vault.rootToken, tenant: vault.tenant });
    await vault.call('POST', '/v1/credentials', { body: { name: 'k', type: 'generic', value: 'v1' } });
    for (let i = 0; i < 40; i++)
      await vault.call('POST', '/v1/leases', { body: { credentialName: 'k', ttl: '1m' } });
  });
  afterAll(async () => {
    await vault?.close();
    await inner?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Rewrites one stored record's reason, as someone with write access to the store would. */
  const tamper = async (store: Store, seq: number) => {
    const key = keys.auditRecord(vault.tenant, seq);
    const record = JSON.parse((await store.get(key))!.value);
    await store.txn({
      success: [{ type: 'put', key, value: JSON.stringify({ ...record, reason: 'nothing happened' }) }],
    });
    return JSON.stringify(record);
  };
  const restore = (store: Store, seq: number, value: string) =>
    store.txn({ success: [{ type: 'put', key: keys.auditRecord(vault.tenant, seq), value }] });

  it('reads only the records after the checkpoint', async () => {
    const checkpoint = await sdk.audit.checkpoint();
    for (let i = 0; i < 5; i++)
      await vault.call('POST', '/v1/leases', { body: { credentialName: 'k', ttl: '1m' } });
    recordsRead = 0;
    const full = await sdk.audit.verify({ since: checkpoint });
    const readByFull = recordsRead;
    recordsRead = 0;
    const incremental = await sdk.audit.verify({ since: checkpoint, fromCheckpoint: true });
    const readByIncremental = recordsRead;
    expect(full.ok && incremental.ok).toBe(true);
    expect(incremental.fromSeq).toBe(checkpoint.seq);
    expect(readByFull).toBeGreaterThanOrEqual(full.headSeq);
    // The checkpoint's own record and the ones after it (the verification of the full run
    // included), none before.
    expect(readByIncremental).toBeLessThanOrEqual(incremental.headSeq - checkpoint.seq + 1);
    expect(readByIncremental).toBeGreaterThanOrEqual(6);
    expect(incremental.checkpoint!.seq).toBe(incremental.headSeq);
  });

  it('finds a rewrite after the checkpoint and of its own record; one before it only from the start', async () => {
    const checkpoint = await sdk.audit.checkpoint();
    for (let i = 0; i < 3; i++)
      await vault.call('POST', '/v1/leases', { body: { credentialName: 'k', ttl: '1m' } });

    const after = checkpoint.seq + 2;
    let original = await tamper(vault.store, after);
    const broken = await sdk.audit.verify({ since: checkpoint, fromCheckpoint: true });
    expect(broken.ok).toBe(false);
    expect(broken.brokenAt).toBe(after);
    await restore(vault.store, after, original);

    original = await tamper(vault.store, checkpoint.seq);
    const atCheckpoint = await sdk.audit.verify({ since: checkpoint, fromCheckpoint: true });
    expect(atCheckpoint.ok).toBe(false);
    // Its own keyed link is recomputed: the hash it carries is not taken on trust.
    expect(atCheckpoint.brokenAt).toBe(checkpoint.seq);
    expect(atCheckpoint.reason).toMatch(/was modified after it was written/);
    await restore(vault.store, checkpoint.seq, original);

    const before = 10;
    original = await tamper(vault.store, before);
    expect((await sdk.audit.verify({ since: checkpoint, fromCheckpoint: true })).ok).toBe(true);
    const fromStart = await sdk.audit.verify({ since: checkpoint });
    expect(fromStart.ok).toBe(false);
    expect(fromStart.brokenAt).toBe(before);
    await restore(vault.store, before, original);
  });

  it('needs a checkpoint to start at', async () => {
    const answer = await vault.call('POST', '/v1/audit/verify', { body: { from: 'checkpoint' } });
    expect(answer.status).toBe(400);
    expect(answer.body.error.message).toMatch(/needs a "since" checkpoint/);
    const unknown = await vault.call('POST', '/v1/audit/verify', { body: { from: 'middle' } });
    expect(unknown.status).toBe(400);
  });
});

describe('the server’s own checkpoints', () => {
  let vault: TestVault;
  let sdk: Vault;
  beforeAll(async () => {
    vault = await startTestVault();
    sdk = await Vault.connect({ addr: vault.url, token: vault.rootToken, tenant: vault.tenant });
    await vault.call('POST', '/v1/credentials', { body: { name: 'k', type: 'generic', value: 'v1' } });
  });
  afterAll(() => vault.close());

  it('refuse to sign over a rewrite of the record the last one named', async () => {
    const first = await sdk.audit.checkpoint();
    // The record keeps the hash it carried: only recomputing its keyed link finds the change.
    const key = keys.auditRecord(vault.tenant, first.seq);
    const record = JSON.parse((await vault.store.get(key))!.value);
    await vault.store.txn({
      success: [{ type: 'put', key, value: JSON.stringify({ ...record, reason: 'nothing happened' }) }],
    });
    await vault.call('POST', '/v1/leases', { body: { credentialName: 'k', ttl: '1m' } });
    const second = await vault.call('POST', '/v1/audit/checkpoints');
    expect(second.status, second.text).not.toBe(201);
    expect(second.text).not.toContain('"checkpoint":{');
  });
});
