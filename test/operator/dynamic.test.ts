/**
 * `spec.source.dynamic` on a real kube-apiserver with a real PostgreSQL (Debian's, run as the
 * `postgres` user on 127.0.0.1): a Secret holding the admin connection (with consent), a
 * VaultCredential and a VaultLease give a lease whose value logs into PostgreSQL as its own
 * role, gone when the VaultLease is deleted; statements follow the spec; a Secret without
 * consent is refused with a condition and nothing reaches Vault; revocations that cannot reach
 * the database show as RevocationsFailing until they succeed; and the admin password appears
 * in no Kubernetes object of any kind in the namespace, events included.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemContext } from '../../src/core/index.js';
import { createPostgresEngine } from '../../src/engines/postgres.js';
import { resourceTypes } from '../../src/k8s/api-client.js';
import type { KubeObject } from '../../src/k8s/resources.js';
import { type Postgres, postgresAvailable, startPostgres } from '../support/postgres.js';
import { eventually, type OperatorEnv, setupOperatorEnv } from './support.js';

// biome-ignore lint/suspicious/noExplicitAny: test assertions read arbitrary status fields
type Obj = KubeObject & { status?: Record<string, any> };

const ns = 'orders';
const admin = { type: 'human' as const, name: 'test-admin' };

let env: OperatorEnv;
let db: Postgres;

const getCred = (name: string) => env.admin.get<Obj>(resourceTypes.vaultCredentials, ns, name);
const getLease = (name: string) => env.admin.get<Obj>(resourceTypes.vaultLeases, ns, name);
const condition = (obj: Obj, type: string) =>
  (obj.status?.conditions as Array<{ type: string; status: string; reason: string; message: string }>)?.find(
    (c) => c.type === type,
  );

async function kubectl(args: string[], input?: string) {
  const result = await env.cp.kubectl(args, input ? { input } : {});
  expect(result.code, `kubectl ${args.join(' ')}: ${result.stderr}`).toBe(0);
  return result.stdout;
}

async function waitFor(
  what: string,
  read: () => Promise<Obj>,
  ok: (obj: Obj) => boolean,
  timeoutMs = 30_000,
) {
  let last: Obj | undefined;
  try {
    return await eventually(
      what,
      async () => {
        last = await read();
        return ok(last) ? last : undefined;
      },
      timeoutMs,
    );
  } catch (err) {
    const logs = env.logs().split('\n').slice(-12).join('\n');
    throw new Error(`${(err as Error).message}\nlast status: ${JSON.stringify(last?.status)}\n${logs}`);
  }
}

/** Logs in with a lease's value; the role it is, or the error. */
async function login(url: string, sql = 'SELECT count(*) FROM public.orders') {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  client.on('error', () => {});
  try {
    await client.connect();
    const { rows } = await client.query<{ user: string }>('SELECT current_user AS user');
    await client.query(sql);
    return { user: rows[0]!.user };
  } catch (err) {
    return { error: (err as Error).message };
  } finally {
    await client.end().catch(() => {});
  }
}

/** The value the agent would write to the lease's file, read through the lease in Vault. */
async function leaseValue(name: string) {
  const lease = await waitFor(
    `VaultLease ${name} Active`,
    () => getLease(name),
    (l) => l.status?.phase === 'Active',
  );
  const read = await env.core.leases.read(systemContext(ns, admin), lease.status?.leaseId, 'lease.reveal');
  return { id: lease.status?.leaseId as string, value: read.value! };
}

const secret = (name: string, importFor: string | undefined, url: string, label = true) => `
apiVersion: v1
kind: Secret
metadata:
  name: ${name}
  ${label ? 'labels: {vault.ghoststack.io/import: "true"}' : ''}
  ${importFor ? `annotations: {vault.ghoststack.io/import-for: "${importFor}"}` : ''}
stringData:
  url: "${url}"
`;

const credential = (name: string, secretName: string, statements: string[]) => `
apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultCredential
metadata: {name: ${name}}
spec:
  type: database-url
  source:
    dynamic:
      postgres:
        connectionSecretRef: {name: ${secretName}, key: url}
        creationStatements: ${JSON.stringify(statements)}
  access:
    serviceAccounts: [app]
    defaultTtl: 10m
`;

const lease = (name: string, credentialName: string) => `
apiVersion: vault.ghoststack.io/v1alpha1
kind: VaultLease
metadata: {name: ${name}}
spec:
  credentialRef: {name: ${credentialName}}
  serviceAccountName: app
  ttl: 10m
`;

describe.skipIf(!postgresAvailable())('VaultCredential spec.source.dynamic on a real control plane', () => {
  beforeAll(async () => {
    db = await startPostgres();
    await db.query('CREATE TABLE public.orders (id int)');
    env = await setupOperatorEnv({
      engines: { postgres: createPostgresEngine({ connectTimeoutMs: 1_000 }) },
      dynamic: { retryBaseMs: 200, retryMaxMs: 1_000 },
      // The engine's admin connection is imported from a Secret of `orders`.
      secretNamespaces: [ns],
    });
    const operator = await env.startOperator({ dynamicPollMs: 500 });
    await eventually('a leader', async () => (operator.isLeader ? true : undefined));
  }, 180_000);

  afterAll(async () => {
    await env?.close();
    await db?.close();
  });

  it('gives a lease its own PostgreSQL role from a consenting Secret, and drops it with the VaultLease', {
    timeout: 90_000,
  }, async () => {
    await kubectl(['apply', '-n', ns, '-f', '-'], secret('pg-admin', 'orders-db', db.adminUrl));
    await kubectl(
      ['apply', '-n', ns, '-f', '-'],
      credential('orders-db', 'pg-admin', ['GRANT SELECT ON public.orders TO {{name}}']),
    );
    const cred = await waitFor(
      'orders-db Ready',
      () => getCred('orders-db'),
      (c) => c.status?.phase === 'Ready',
    );
    expect(cred.status?.version).toBe(1);
    expect(condition(cred, 'RevocationsFailing')).toMatchObject({ status: 'False', reason: 'NoneFailing' });
    const inVault = await env.core.credentials.get(systemContext(ns, admin), 'orders-db');
    expect(inVault.dynamic).toEqual({
      engine: 'postgres',
      creationStatements: ['GRANT SELECT ON public.orders TO {{name}}'],
    });

    await kubectl(['apply', '-n', ns, '-f', '-'], lease('orders-for-app', 'orders-db'));
    const first = await leaseValue('orders-for-app');
    expect(await login(first.value)).toEqual({ user: `vault_${first.id}` });
    // The statements grant what they say and nothing else.
    expect((await login(first.value, 'INSERT INTO public.orders VALUES (1)')).error).toMatch(
      /permission denied/,
    );

    // New statements apply to leases issued from then on.
    await kubectl(
      ['apply', '-n', ns, '-f', '-'],
      credential('orders-db', 'pg-admin', [
        'GRANT SELECT ON public.orders TO {{name}}',
        'GRANT INSERT ON public.orders TO {{name}}',
      ]),
    );
    await eventually('statements in Vault', async () => {
      const c = await env.core.credentials.get(systemContext(ns, admin), 'orders-db');
      return c.dynamic?.engine === 'postgres' && c.dynamic.creationStatements.length === 2 ? c : undefined;
    });
    await kubectl(['apply', '-n', ns, '-f', '-'], lease('orders-for-writer', 'orders-db'));
    const second = await leaseValue('orders-for-writer');
    expect(second.value).not.toBe(first.value);
    expect(await login(second.value, 'INSERT INTO public.orders VALUES (2)')).toEqual({
      user: `vault_${second.id}`,
    });

    // Deleting the VaultLease revokes the lease, and the database forgets the role.
    await kubectl(['delete', 'vaultlease', 'orders-for-app', '-n', ns, '--wait=true']);
    await eventually('the role dropped', async () => {
      const { rows } = await db.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [`vault_${first.id}`]);
      return rows.length === 0 ? true : undefined;
    });
    expect((await login(first.value)).error).toMatch(/password authentication failed|does not exist/);
    expect(await login(second.value)).toEqual({ user: `vault_${second.id}` });
  });

  it('refuses a Secret that does not consent, with a condition, and creates nothing in Vault', {
    timeout: 60_000,
  }, async () => {
    // Labelled for import, but naming another VaultCredential.
    await kubectl(['apply', '-n', ns, '-f', '-'], secret('pg-other', 'someone-else', db.adminUrl));
    await kubectl(
      ['apply', '-n', ns, '-f', '-'],
      credential('stolen-db', 'pg-other', ['GRANT SELECT ON public.orders TO {{name}}']),
    );
    const named = await waitFor(
      'stolen-db Failed',
      () => getCred('stolen-db'),
      (c) => c.status?.phase === 'Failed',
    );
    expect(condition(named, 'Ready')).toMatchObject({ status: 'False', reason: 'ImportNotAllowed' });
    // Not labelled at all: the controller cannot even see it.
    await kubectl(['apply', '-n', ns, '-f', '-'], secret('pg-unlabelled', 'hidden-db', db.adminUrl, false));
    await kubectl(
      ['apply', '-n', ns, '-f', '-'],
      credential('hidden-db', 'pg-unlabelled', ['GRANT SELECT ON public.orders TO {{name}}']),
    );
    const hidden = await waitFor(
      'hidden-db Failed',
      () => getCred('hidden-db'),
      (c) => c.status?.phase === 'Failed',
    );
    expect(condition(hidden, 'Ready')).toMatchObject({ status: 'False', reason: 'SecretNotImportable' });
    for (const name of ['stolen-db', 'hidden-db'])
      await expect(env.core.credentials.get(systemContext(ns, admin), name)).rejects.toThrow(
        /does not exist/,
      );
  });

  it('shows RevocationsFailing while the database is down, and clears it once the role is dropped', {
    timeout: 90_000,
  }, async () => {
    await kubectl(['apply', '-n', ns, '-f', '-'], lease('orders-short', 'orders-db'));
    const { id } = await leaseValue('orders-short');
    await db.stop();
    try {
      await kubectl(['delete', 'vaultlease', 'orders-short', '-n', ns, '--wait=true']);
      const failing = await waitFor(
        'RevocationsFailing True',
        () => getCred('orders-db'),
        (c) => condition(c, 'RevocationsFailing')?.status === 'True',
      );
      const cond = condition(failing, 'RevocationsFailing')!;
      expect(cond.reason).toBe('Retrying');
      expect(cond.message).toMatch(/1 upstream account of ended leases not removed yet/);
      expect(failing.status?.phase).toBe('Ready');
      const events = await kubectl(['get', 'events', '-n', ns, '-o', 'json']);
      expect(events).toContain('RevocationsFailing');
    } finally {
      await db.start();
    }
    const recovered = await waitFor(
      'RevocationsFailing False',
      () => getCred('orders-db'),
      (c) => condition(c, 'RevocationsFailing')?.status === 'False',
    );
    expect(condition(recovered, 'RevocationsFailing')?.reason).toBe('NoneFailing');
    const { rows } = await db.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [`vault_${id}`]);
    expect(rows).toEqual([]);
  });

  it('never writes the admin password into any Kubernetes object of the namespace, events included', async () => {
    const kinds = (await kubectl(['api-resources', '--namespaced=true', '--verbs=list', '-o', 'name']))
      .split('\n')
      .filter(Boolean);
    expect(kinds).toEqual(
      expect.arrayContaining(['events', 'secrets', 'vaultcredentials.vault.ghoststack.io']),
    );
    const list = JSON.parse(await kubectl(['get', kinds.join(','), '-n', ns, '-o', 'json'])) as {
      items: Array<{ kind: string; metadata: { name: string }; data?: Record<string, string> }>;
    };
    // The Secrets the test created hold the connection on purpose; everything else must not.
    const planted = new Set(['pg-admin', 'pg-other', 'pg-unlabelled']);
    const others = list.items.filter((item) => !(item.kind === 'Secret' && planted.has(item.metadata.name)));
    expect(others.map((item) => item.kind)).toEqual(
      expect.arrayContaining(['VaultCredential', 'VaultLease', 'Event']),
    );
    const decoded = others
      .flatMap((item) => Object.values(item.data ?? {}))
      .map((value) => Buffer.from(value, 'base64').toString('utf8'));
    const text = JSON.stringify(others) + decoded.join('\n');
    for (const form of [db.adminPassword, encodeURIComponent(db.adminPassword), db.adminUrl])
      expect(text).not.toContain(form);
    expect(env.logs()).not.toContain(db.adminPassword);
  });
});
