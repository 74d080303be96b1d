/**
 * Promise (docs/security/index.md): "The value reaches a command or the wire through one
 * endpoint, `POST /v1/leases/{id}/use` ... the lease must be active (410 otherwise)"; and
 * src/broker/audit.ts: the use call "is the per-request lease check: the server answers 410
 * once the lease is revoked". `GET /v1/leases/{id}/value` closes the same race on purpose
 * (src/core/leases.ts, read: "no value leaves before its commit", the audit commit compares
 * the lease record it was decided on).
 *
 * Attack: a lease holder (an agent with only `lease`, through `vault run`, the broker or the
 * API) calls `POST /v1/leases/{id}/use` while an operator revokes the lease. `use` checks the
 * lease state from a read made before it opens the value, then records `lease.use` with a
 * plain audit append that compares nothing. A revocation that commits in between (the test
 * holds the value read until the revocation has been answered, which makes the interleaving
 * deterministic) does not stop it: the caller gets 200 and the value after the operator was
 * told the lease is revoked, and the audit chain shows `lease.use allowed` after
 * `lease.revoke`.
 *
 * Impact: revoking a lease (incident response: "stop this agent now") does not guarantee that
 * no value leaves afterwards; the audit log records a use of a revoked lease as allowed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../src/core/keys.js';
import { openEmbeddedStore } from '../../src/store/embedded-store.js';
import type { KeyValue, Store } from '../../src/store/store.js';
import { storeWith } from '../support/store-proxy.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

describe('POST /v1/leases/:id/use racing a revocation', () => {
  let dir: string;
  let real: Store;
  let vault: TestVault;
  let hold: { key: string; reached: () => void; release: Promise<void> } | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vault-rt9b-'));
    real = await openEmbeddedStore({ path: dir });
    const store = storeWith(real, (inner) => ({
      async get(key: string): Promise<KeyValue | undefined> {
        const armed = hold;
        if (armed && key === armed.key) {
          hold = undefined;
          armed.reached();
          await armed.release;
        }
        return inner.get(key);
      },
    }));
    vault = await startTestVault({ store });
  }, 60_000);

  afterAll(async () => {
    await vault?.close();
    await real?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('answers 410, not the value, when the lease was revoked before the use committed', async () => {
    const value = 'sk_live_use_after_revoke_0123456789';
    expect(
      (
        await vault.call('POST', '/v1/credentials', {
          body: { name: 'stripe-key', type: 'api-key', value },
        })
      ).status,
    ).toBe(201);
    expect(
      (
        await vault.call('PUT', '/v1/policies/agent-lease', {
          body: { rules: [{ credentials: ['stripe-key'], actions: ['list', 'read-metadata', 'lease'] }] },
        })
      ).status,
    ).toBe(200);
    const agent = await vault.tokenFor({ type: 'agent', name: 'coder' }, ['agent-lease']);
    const lease = await vault.call('POST', '/v1/leases', {
      token: agent,
      body: { credentialName: 'stripe-key', ttl: '10m' },
    });
    expect(lease.status).toBe(201);
    expect(lease.body.value).toBeUndefined();
    const id = lease.body.id as string;

    let reached!: () => void;
    const atValueRead = new Promise<void>((resolve) => {
      reached = resolve;
    });
    let release!: () => void;
    hold = {
      key: keys.value(vault.tenant, 'stripe-key', 1),
      reached,
      release: new Promise<void>((resolve) => {
        release = resolve;
      }),
    };

    const use = vault.call('POST', `/v1/leases/${id}/use`, {
      token: agent,
      body: { purpose: 'vault run' },
    });
    await atValueRead;
    // The operator revokes the lease, and is told it is revoked, before the use goes on.
    const revoked = await vault.call('POST', `/v1/leases/${id}/revoke`);
    expect(revoked.status).toBe(200);
    expect(revoked.body.state).toBe('revoked');
    release();
    const used = await use;

    // The chain never says a revoked lease was used.
    const audit = await vault.call('GET', `/v1/audit?resource=${encodeURIComponent(`lease/${id}`)}`);
    expect(audit.status).toBe(200);
    const records = audit.body.records as Array<{
      action: string;
      outcome: string;
    }>;
    const revokedAt = records.findIndex((r) => r.action === 'lease.revoke');
    expect(revokedAt).toBeGreaterThanOrEqual(0);
    expect(records.slice(revokedAt).some((r) => r.action === 'lease.use' && r.outcome === 'allowed')).toBe(
      false,
    );
    expect(used.text).not.toContain(value);
    expect(used.status).toBe(410);
  }, 60_000);
});
