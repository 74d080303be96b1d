/**
 * Red team session 7b: a record written past the audit head by someone who can write the
 * store (without the root key), the head left as it was. It was taken for another replica's
 * commit landing between two reads: `audit verify` (from the start or from a checkpoint)
 * skipped it, and every commit of the tenant (each request's audit record, the verification's
 * own included) re-read the head 32 times and answered 409 "retry the request", forever,
 * without ever naming the tampering. A commit moves the head with its records, so a record
 * past a head that has not moved was written alone: it is tampering, and verify names it.
 *
 * Real parts: the in-process API on the embedded store, real HTTP.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../src/core/keys.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

describe('a record planted past the audit head', () => {
  let vault: TestVault;
  beforeAll(async () => {
    vault = await startTestVault();
  }, 30_000);
  afterAll(() => vault?.close());

  it('is reported by verify, and the writes stop as for any tampering (not 409 forever)', async () => {
    const created = await vault.call('POST', '/v1/credentials', {
      body: { name: 'x', type: 'generic', value: 'v' },
    });
    expect(created.status, created.text).toBe(201);
    const cp = await vault.call('POST', '/v1/audit/checkpoints');
    expect(cp.status, cp.text).toBe(201);
    const head = JSON.parse((await vault.store.get(keys.auditHead(vault.tenant)))!.value) as { seq: number };
    await vault.store.txn({
      success: [
        { type: 'put', key: keys.auditRecord(vault.tenant, head.seq + 1), value: '{"planted":true}' },
      ],
    });

    const fromCheckpoint = await vault.call('POST', '/v1/audit/verify', {
      body: { since: cp.body.checkpoint, from: 'checkpoint' },
    });
    expect(fromCheckpoint.status, fromCheckpoint.text).toBe(200);
    expect(fromCheckpoint.body.ok).toBe(false);
    expect(fromCheckpoint.body.brokenAt).toBe(head.seq + 1);

    const full = await vault.call('GET', '/v1/audit/verify');
    expect(full.status, full.text).toBe(200);
    expect(full.body.ok).toBe(false);
    expect(full.body.brokenAt).toBe(head.seq + 1);

    const write = await vault.call('POST', '/v1/credentials', {
      body: { name: 'y', type: 'generic', value: 'v' },
    });
    expect(write.status, write.text).not.toBe(409);
    expect(write.body.error?.code).toBe('audit_unavailable');
  }, 60_000);
});
