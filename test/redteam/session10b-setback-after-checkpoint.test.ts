import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordHash } from '../../src/core/audit-chain.js';
import { systemContext } from '../../src/core/index.js';
import { keys } from '../../src/core/keys.js';
import { type Replicas, startReplicas } from './session10-replicas.js';

// Red team, session 10b: a head set back below a checkpoint this server itself verified and
// signed is not reported; the server appends to the cut-down history.
//
// The committer reports a head "set back below a record this server wrote or verified" only
// against `highest`, which it fills from its own commits, catch-ups and head reads. The same
// server's checkpointer (audit-service signNow: the timer's checkpointDue, every N records)
// also verifies the records up to the head (checkStoredChain) and signs a checkpoint of it,
// and keeps that checkpoint in memory (`latest`); the committer never learns of it. So: replica
// A writes, replica B writes records up to 12, A's checkpointer verifies and signs 12, a store
// writer deletes records 8..12 and sets the head back to 7. A's next write catches up from its
// own last record (5) to 7, verifies, and appends record 8 on the cut history: no tamper report,
// although A had verified (and signed!) records 8..12. Only A's next checkpoint (up to
// `auditCheckpointInterval` later) notices; meanwhile A has built on, and vouched for, the
// rolled-back chain. (The docs: "A head older than the newest record this server wrote or
// verified ... is reported as tampering too.")
//
// Fix: let the audit service tell the committer what it verified (saw(tenant, tip) after a
// verification or checkpoint that passed), or have readHead/catchUp compare the head with the
// newest checkpoint this process signed or verified (`latest`).

describe('a head set back below what this server verified', () => {
  let cluster: Replicas;

  beforeAll(async () => {
    cluster = await startReplicas(2);
  }, 60_000);
  afterAll(() => cluster?.close());

  it('is reported on the next write of the server that signed a checkpoint past it', async () => {
    const [a, b] = [cluster.replicas[0]!.vault, cluster.replicas[1]!.vault];
    const tenant = a.tenant;
    const ctx = () => systemContext(tenant, { type: 'human', name: 'root' });
    await a.core.committer.record(ctx(), { action: 'test.a', resource: 'x', outcome: 'allowed' });
    for (let i = 0; i < 8; i++) {
      await b.core.committer.record(ctx(), { action: 'test.b', resource: `x${i}`, outcome: 'allowed' });
    }
    const raw = cluster.replicas[1]!.raw;
    const headOf = async () => JSON.parse((await raw.get(keys.auditHead(tenant)))!.value) as { seq: number };
    const top = (await headOf()).seq;
    // A's checkpointer (what its timer runs) verifies up to the head and signs it.
    const signed = await a.core.audit.checkpoint(tenant);
    expect(signed?.seq).toBe(top);

    // A store writer cuts the newest five records and sets the head back to match.
    const keep = top - 5;
    const kept = await raw.get(keys.auditRecord(tenant, keep));
    await raw.txn({
      success: [
        ...Array.from({ length: 5 }, (_, i) => ({
          type: 'delete' as const,
          key: keys.auditRecord(tenant, top - i),
        })),
        {
          type: 'put',
          key: keys.auditHead(tenant),
          value: JSON.stringify({ seq: keep, hash: recordHash(kept!.value) }),
        },
      ],
    });

    const write = await a.core.committer
      .record(ctx(), { action: 'test.after-cut', resource: 'x', outcome: 'allowed' })
      .then(
        () => 'committed',
        (err: Error) => err.message,
      );
    const reports = a.core.auditIntegrity.list().map((r) => r.reason);
    expect(
      reports.length,
      `A signed a checkpoint at record ${top}; after the head was set back to ${keep}, A's write ${write === 'committed' ? `committed record ${(await headOf()).seq} on the cut history` : `failed: ${write}`} and nothing was reported`,
    ).toBeGreaterThan(0);
  });
});
