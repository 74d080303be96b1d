/**
 * Red team session 10: a group lost to another replica's commit is sent again on the caught-up
 * head WITHOUT being built again (796667b). A put-version with `ifChanged` whose value equals
 * the current version commits only its audit record ("unchanged") and compares nothing.
 *
 * Promise (src/contract/credentials.ts, putVersionRequest.ifChanged: "Add the version only when
 * the value differs from the current version's ... for an equal value the credential comes
 * back unchanged"): an answer "unchanged" means the value IS the current version, as of the
 * commit (its place in the chain).
 *
 * Attack (a sync job, e.g. the operator pushing a Kubernetes Secret, through replica A, while
 * someone rotates the credential through replica B): A decides "unchanged" on version 1; B's
 * rotation to version 2 commits; A's transaction loses on the head, catches up and is sent
 * again as built. A answers 200 "unchanged" with version 1, and the chain records
 * `put-version unchanged` AFTER `rotate version 2`: the pushed value is not the current one,
 * and nothing will push it again (it was "unchanged"). Before 796667b the build ran again and
 * added the value as version 3.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chainOf, type Replicas, recordsIn, startReplicas } from './session10-replicas.js';

describe('session 10: put-version ifChanged racing a rotation on another replica', () => {
  let cluster: Replicas;
  let hold: NonNullable<Replicas['held']>;

  beforeAll(async () => {
    cluster = await startReplicas(2, {
      holdFirst: true,
    });
    hold = cluster.held!;
  }, 90_000);

  afterAll(async () => {
    await cluster?.close();
  });

  it('does not answer "unchanged" after another version became current', async () => {
    const [a, b] = [cluster.replicas[0]!.vault, cluster.replicas[1]!.vault];
    const synced = 'synced-from-secret-1b2c';
    expect(
      (await b.call('POST', '/v1/credentials', { body: { name: 'api', type: 'api-key', value: synced } }))
        .status,
    ).toBe(201);
    hold.arm({
      match: (txn) => recordsIn(txn, a.tenant).some((r) => r.action === 'credential.put-version'),
      before: async () => {
        const rotated = await b.call('POST', '/v1/credentials/api/rotate', { body: {} });
        expect(rotated.status, rotated.text).toBe(200);
        expect(rotated.body.currentVersion).toBe(2);
      },
    });
    const put = await a.call('POST', '/v1/credentials/api/versions', {
      body: { value: synced, ifChanged: true },
    });
    expect(hold.state.held).toBe(1);
    expect(hold.state.lastResult?.succeeded).toBe(false);

    const chain = await chainOf(cluster.replicas[0]!.raw, a.tenant);
    const rotateAt = chain.findIndex((r) => r.action === 'credential.rotate');
    const unchangedAt = chain.findIndex(
      (r) => r.action === 'credential.put-version' && r.reason === 'unchanged',
    );
    expect(
      unchangedAt > rotateAt
        ? `record ${chain[unchangedAt]!.seq} "unchanged" after ${chain[rotateAt]!.seq} "${chain[rotateAt]!.reason}"`
        : undefined,
      'the chain says the pushed value equals the current version right after another version became current',
    ).toBeUndefined();
    const now = await b.call('GET', '/v1/credentials/api');
    expect(put.body.currentVersion, 'the answer describes the credential as it is').toBe(
      now.body.currentVersion,
    );
  }, 30_000);
});
