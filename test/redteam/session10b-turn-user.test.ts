import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../src/core/keys.js';
import { type Replicas, startReplicas } from './session10-replicas.js';

// Red team, session 10b (held): a tenant user cannot bump the turn key at will. A claim needs a
// replica's change to have lost the head to another replica's commit twice in a row, so through
// one replica no amount of conflicting requests (the same credential changed by 60 requests at
// once: own-record conflicts, retried alone) ever claims a turn; through two replicas claims stay
// below the commits that caused them.

describe('turn claims from a tenant user (held)', () => {
  let cluster: Replicas;
  let token: string;

  beforeAll(async () => {
    cluster = await startReplicas(2);
    const vault = cluster.replicas[0]!.vault;
    await vault.call('PUT', '/v1/policies/rotator', {
      body: { rules: [{ credentials: ['shared*'], actions: ['list', 'read-metadata', 'create', 'rotate'] }] },
    });
    token = await vault.tokenFor({ type: 'human', name: 'eve' }, ['rotator']);
    const created = await vault.call('POST', '/v1/credentials', {
      token,
      body: { name: 'shared', type: 'generic', value: 'v0' },
    });
    expect(created.status, created.text).toBe(201);
  }, 60_000);
  afterAll(() => cluster?.close());

  const rotate = (i: number, replica: number) =>
    cluster.replicas[replica]!.vault.call('POST', '/v1/credentials/shared/versions', {
      token,
      body: { value: `v-${replica}-${i}` },
    });

  it('through one replica, 60 conflicting changes of one credential claim no turn', async () => {
    const results = await Promise.all(Array.from({ length: 60 }, (_, i) => rotate(i, 0)));
    const codes = new Map<number, number>();
    for (const res of results) codes.set(res.status, (codes.get(res.status) ?? 0) + 1);
    expect(
      [...codes.keys()].every((s) => s < 500),
      JSON.stringify([...codes]),
    ).toBe(true);
    const turn = await cluster.replicas[0]!.raw.get(keys.auditTurn(cluster.replicas[0]!.vault.tenant));
    expect(turn, 'a turn was claimed through a single replica').toBeUndefined();
  }, 60_000);

  it('through two replicas, claims stay below the commits', async () => {
    const results = await Promise.all(Array.from({ length: 120 }, (_, i) => rotate(i, i % 2)));
    const committed = results.filter((res) => res.status < 300).length;
    const turn = await cluster.replicas[0]!.raw.get(keys.auditTurn(cluster.replicas[0]!.vault.tenant));
    const claims = turn?.version ?? 0;
    console.log(`${claims} claims for ${committed} of 120 commits`);
    expect(committed).toBeGreaterThan(0);
    expect(results.every((res) => res.status < 500)).toBe(true);
    expect(claims, `${claims} claims for ${committed} commits`).toBeLessThanOrEqual(committed);
    expect(cluster.replicas.flatMap((r) => r.vault.core.auditIntegrity.list())).toEqual([]);
  }, 90_000);
});
