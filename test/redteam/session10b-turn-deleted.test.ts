import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../src/core/keys.js';
import { type Replicas, startReplicas } from './session10-replicas.js';

// Red team, session 10b: a deleted turn key wedges the tenant's writes (409 forever).
//
// Every commit compares `keys.auditTurn(tenant)` at the mod revision this process last saw. When
// a transaction fails, the committer takes the turn's new revision from the failure read:
// `result.reads?.[2]?.kvs[0]?.modRevision ?? turn` — when the key is gone, the fallback is the
// OLD revision, not 0. So once the turn key exists (any replica ever claimed a turn) and is then
// removed (an operator tidying keys that look disposable, a restore or copy of a tenant's keys
// without it, a store writer), every commit compares a revision the missing key can never have,
// the loss is taken for a conflict of the change's own records, and after 8 rounds every write
// of the tenant answers 409 "retry the request", on every replica that had seen the key, until
// it restarts. No tamper report, no way out by retrying.
//
// Fix: `?? 0` (a missing turn key compares as revision 0), e.g.
// `const turnNow = result.reads ? (result.reads[2]?.kvs[0]?.modRevision ?? 0) : turn`.

describe('a deleted turn key', () => {
  let cluster: Replicas;

  beforeAll(async () => {
    cluster = await startReplicas(2);
  }, 60_000);
  afterAll(() => cluster?.close());

  it('does not make every later write of the tenant answer 409', async () => {
    const [a, b] = [cluster.replicas[0]!.vault, cluster.replicas[1]!.vault];
    const raw = cluster.replicas[0]!.raw;
    const turnKey = keys.auditTurn(a.tenant);
    // A turn claimed some time ago (what a replica's lost transaction writes).
    await raw.txn({ success: [{ type: 'put', key: turnKey, value: JSON.stringify({ seq: 1 }) }] });
    // Both replicas commit and so learn the turn's revision.
    for (const [i, vault] of [a, b].entries()) {
      const res = await vault.call('POST', '/v1/credentials', {
        body: { name: `before-${i}`, type: 'generic', value: 'v' },
      });
      expect(res.status, res.text).toBe(201);
    }
    await raw.txn({ success: [{ type: 'delete', key: turnKey }] });

    const after = [];
    for (const [i, vault] of [a, b, a].entries()) {
      const res = await vault.call('POST', '/v1/credentials', {
        body: { name: `after-${i}`, type: 'generic', value: 'v' },
      });
      after.push(`${res.status}${res.status === 201 ? '' : ` ${res.body?.error?.message}`}`);
    }
    expect(after, 'writes after the turn key was deleted').toEqual(['201', '201', '201']);
  });
});
