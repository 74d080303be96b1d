import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresEngine } from '../../src/engines/postgres.js';
import { type ControllerCluster, startControllerCluster } from '../support/controller-cluster.js';
import {
  createPostgresCredential,
  loginWorks,
  type Postgres,
  postgresAvailable,
  startPostgres,
} from '../support/postgres.js';

const run = postgresAvailable() ? describe : describe.skip;

/**
 * Red team, session 8: a stolen controller token of cluster "east" and a dynamic PostgreSQL
 * credential a tenant admin made through the API (its admin connection is theirs, not a
 * consenting Secret's). The controller role never reads a value; its SQL must not run as
 * that admin either, or it takes the database without reading anything.
 */
run('a stolen controller token and an API-made dynamic credential', () => {
  let cluster: ControllerCluster;
  let db: Postgres;
  const app = { type: 'workload', name: 'system:serviceaccount:shop:app' } as const;
  const owner = 'vault.ghoststack.io/owner';
  const asController = (method: string, path: string, body?: unknown) =>
    cluster.asController(method, path, body);

  beforeAll(async () => {
    db = await startPostgres();
    cluster = await startControllerCluster({ engines: { postgres: createPostgresEngine() } });
    const { vault, tenant } = cluster;
    await createPostgresCredential({ call: (m, p, o = {}) => vault.call(m, p, { ...o, tenant }) }, db);
  }, 180_000);
  afterAll(async () => {
    await cluster?.close();
    await db?.close();
  });

  it('may not replace the SQL that runs as the admin of a credential it did not create', async () => {
    const takeover = await asController('PATCH', '/v1/credentials/orders-db', {
      dynamic: {
        engine: 'postgres',
        creationStatements: [
          'GRANT CONNECT ON DATABASE postgres TO {{name}}',
          "CREATE ROLE intruder LOGIN SUPERUSER PASSWORD 'chosen-by-intruder'",
        ],
      },
    });
    expect(takeover.status, takeover.text).toBe(403);
    // Nor adopt it first, by giving it the label the controller gives credentials it creates.
    const adopt = await asController('PATCH', '/v1/credentials/orders-db', {
      metadata: { [owner]: 'a-uid-of-my-choosing' },
    });
    expect(adopt.status, adopt.text).toBe(403);

    // Whatever it managed to write, let a lease run it (the controller may grant and issue one).
    const policy = await asController('PUT', '/v1/policies/k8s-vaultcredential-orders-db', {
      rules: [{ credentials: ['orders-db'], actions: ['read-metadata', 'lease'] }],
    });
    expect(policy.status, policy.text).toBe(200);
    const attach = await asController('PUT', `/v1/identities/workload/${app.name}`, {
      policies: ['k8s-vaultcredential-orders-db'],
    });
    expect(attach.status, attach.text).toBe(200);
    const lease = await asController('POST', '/v1/leases', {
      credentialName: 'orders-db',
      identity: app,
      ttl: '5m',
    });
    expect(lease.status, lease.text).toBe(201);
    expect(lease.body.value).toBeUndefined();
    expect(await loginWorks(db.urlFor('intruder', 'chosen-by-intruder'))).toBe(false);
  });

  it('still changes the statements of a dynamic credential it created (its VaultCredential spec)', async () => {
    const created = await asController('POST', '/v1/credentials', {
      name: 'reports-db',
      type: 'database-url',
      value: db.adminUrl,
      metadata: { [owner]: 'uid-1' },
      dynamic: { engine: 'postgres', creationStatements: ['GRANT CONNECT ON DATABASE postgres TO {{name}}'] },
    });
    expect(created.status, created.text).toBe(201);
    const changed = await asController('PATCH', '/v1/credentials/reports-db', {
      metadata: { [owner]: 'uid-1', team: 'reports' },
      dynamic: {
        engine: 'postgres',
        creationStatements: ['GRANT CONNECT ON DATABASE postgres TO {{name}}', 'SELECT 1'],
      },
    });
    expect(changed.status, changed.text).toBe(200);
    expect(changed.body.dynamic.creationStatements).toHaveLength(2);
    // Its owner stays: the controller does not hand its credential to another object.
    const handOver = await asController('PATCH', '/v1/credentials/reports-db', {
      metadata: { [owner]: 'uid-2' },
    });
    expect(handOver.status, handOver.text).toBe(403);
  });
});
