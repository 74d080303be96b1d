/**
 * "A database credential per agent session" through every surface, unchanged, against a real
 * `vault dev` and a real PostgreSQL (Debian's, run as the `postgres` user on 127.0.0.1):
 * the CLI creates and rotates the dynamic credential; the SDK, `vault run`, `vault broker`
 * and the sidecar agent (`vault agent`, as the non-root uid the webhook gives it) each get a
 * lease whose value is its own role, which stops working when the lease ends. A planted admin
 * password and every lease password are then looked for in the server's logs, audit log,
 * metrics and API answers.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exitCodes } from '../../src/cli/exit-codes.js';
import { Vault } from '../../src/sdk/index.js';
import { issueCa, issueServing } from '../../src/webhook/certs.js';
import { agentUid, canSwitchUser, podVolume } from '../support/as-user.js';
import { type Postgres, postgresAvailable, startPostgres } from '../support/postgres.js';
import { repoRoot, runVault, startVaultDev, type VaultDev, vaultBin } from '../support/vault-dev.js';

/** The role a URL logs in as, or the login error. */
async function whoAmI(url: string): Promise<{ user?: string; error?: string }> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  client.on('error', () => {});
  try {
    await client.connect();
    const { rows } = await client.query<{ user: string }>('SELECT current_user AS user');
    await client.query('SELECT count(*) FROM public.orders');
    return { user: rows[0]!.user };
  } catch (err) {
    return { error: (err as Error).message };
  } finally {
    await client.end().catch(() => {});
  }
}

const passwordOf = (url: string) => decodeURIComponent(new URL(url).password);

async function until(what: string, probe: () => boolean | Promise<boolean>, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe.skipIf(!postgresAvailable() || !canSwitchUser())('a database credential per agent session', () => {
  let db: Postgres;
  let dev: VaultDev;
  let work: string;
  let admin: Vault;
  let env: Record<string, string>;
  /** The planted admin password: the credential's value, never to be seen anywhere. */
  const vaultAdminPassword = `planted-admin-${Math.random().toString(36).slice(2)}-canary`;
  const leasePasswords: string[] = [];

  const vault = (args: string[], options: { input?: string; env?: Record<string, string> } = {}) =>
    runVault(args, { cwd: work, env: { ...env, ...options.env }, input: options.input });
  const ok = async (args: string[], options: Parameters<typeof vault>[1] = {}) => {
    const run = await vault(args, options);
    if (run.code !== 0) throw new Error(`vault ${args.join(' ')} exited ${run.code}: ${run.stderr}`);
    return run;
  };
  const liveRoles = async () =>
    (
      await db.query<{ rolname: string }>("SELECT rolname FROM pg_roles WHERE rolname LIKE 'vault_lease_%'")
    ).rows.map((r) => r.rolname);

  beforeAll(async () => {
    [db, dev] = await Promise.all([startPostgres(), startVaultDev()]);
    await db.query('CREATE TABLE public.orders (id int PRIMARY KEY, item text)');
    await db.query("INSERT INTO public.orders VALUES (1, 'book')");
    // The credential's own admin (a superuser here, for REASSIGN/DROP OWNED), apart from the
    // test's, so rotating its password leaves the test its connection.
    await db.query(`CREATE ROLE vault_admin SUPERUSER LOGIN PASSWORD '${vaultAdminPassword}'`);
    work = mkdtempSync(join(tmpdir(), 'vault-dyn-surfaces-'));
    env = {
      PATH: process.env.PATH ?? '',
      HOME: work,
      XDG_CONFIG_HOME: join(work, 'config'),
      VAULT_ADDR: dev.addr,
      VAULT_TOKEN: dev.token,
      VAULT_TENANT: dev.tenant,
    };
    admin = await Vault.connect({ addr: dev.addr, token: dev.token, tenant: dev.tenant });
  }, 120_000);

  afterAll(async () => {
    await dev?.stop();
    await db?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('CLI: creates the dynamic credential from a statements file and the admin URL from a file', async () => {
    writeFileSync(join(work, 'admin-url'), `${db.urlFor('vault_admin', vaultAdminPassword)}\n`, {
      mode: 0o600,
    });
    writeFileSync(
      join(work, 'grants.sql'),
      '-- what each session may do\nGRANT SELECT ON public.orders TO {{name}};\nGRANT USAGE ON SCHEMA public TO {{name}};\n',
    );
    const noStatements = await vault([
      'credentials',
      'create',
      'orders-db',
      '--type',
      'database-url',
      '--dynamic',
      'postgres',
      '--value-file',
      join(work, 'admin-url'),
    ]);
    expect(noStatements.code).toBe(exitCodes.usage);
    expect(noStatements.stderr).toMatch(/--statement .*--statements-file/);
    const stray = await vault(['credentials', 'create', 'x', '--type', 'api-key', '--statement', 'SELECT 1']);
    expect(stray.code).toBe(exitCodes.usage);
    expect(stray.stderr).toMatch(/need --dynamic/);
    const badEngine = await vault(['credentials', 'create', 'x', '--type', 'api-key', '--dynamic', 'mysql']);
    expect(badEngine.code).toBe(exitCodes.usage);

    const created = await ok([
      'credentials',
      'create',
      'orders-db',
      '--type',
      'database-url',
      '--dynamic',
      'postgres',
      '--statements-file',
      join(work, 'grants.sql'),
      '--value-file',
      join(work, 'admin-url'),
      '--label',
      'service=orders',
      '--max-ttl',
      '1h',
      '--json',
    ]);
    const credential = JSON.parse(created.stdout);
    expect(credential.dynamic).toEqual({
      engine: 'postgres',
      creationStatements: [
        '-- what each session may do\nGRANT SELECT ON public.orders TO {{name}}',
        'GRANT USAGE ON SCHEMA public TO {{name}}',
      ],
    });
    const shown = await ok(['credentials', 'get', 'orders-db']);
    expect(shown.stdout).toMatch(/engine:\s+postgres \(one role per lease\)/);
    expect(shown.stdout).toMatch(/statements:[\s\S]*GRANT USAGE ON SCHEMA public TO \{\{name\}\}/);
    expect(created.stdout + created.stderr + shown.stdout).not.toContain(vaultAdminPassword);
  });

  it('SDK: each agent session gets its own role; revoking ends it', async () => {
    const a = await admin.leases.create({
      credentialName: 'orders-db',
      ttl: '15m',
      identity: { type: 'agent', name: 'claude-code' },
    });
    const b = await admin.leases.create({ credentialName: 'orders-db', ttl: '15m' });
    leasePasswords.push(passwordOf(a.value!), passwordOf(b.value!));
    expect(a.dynamic?.username).toBe(`vault_${a.id}`);
    expect(await whoAmI(a.value!)).toEqual({ user: `vault_${a.id}` });
    expect(await whoAmI(b.value!)).toEqual({ user: `vault_${b.id}` });
    await admin.leases.revoke(a.id);
    expect((await whoAmI(a.value!)).error).toMatch(/password authentication failed/);
    expect(await whoAmI(b.value!)).toEqual({ user: `vault_${b.id}` });
    await admin.leases.revoke(b.id);
  });

  it('vault run: the command logs in as its own role, sees no password in its output, and the role is gone after', async () => {
    const run = await ok([
      'run',
      '--token-from-env',
      '--credential',
      'orders-db=DATABASE_URL',
      '--',
      'sh',
      '-c',
      `psql "$DATABASE_URL" -Atc 'SELECT current_user' && echo "url=$DATABASE_URL"`,
    ]);
    const role = /^(vault_lease_\S+)$/m.exec(run.stdout)?.[1];
    expect(role, run.stdout).toBeDefined();
    expect(run.stdout).toContain('url=[REDACTED:DATABASE_URL]');
    await until('the run lease role to be dropped', async () => !(await liveRoles()).includes(role!));
  });

  it('vault broker: the upstream gets the lease URL (its own role), the command a placeholder; gone after', async () => {
    const ca = await issueCa(1);
    const serving = await issueServing(ca, {
      dnsNames: ['localhost'],
      ipAddresses: [],
      servingValidityDays: 1,
    });
    const seen: Array<{ url: string; user?: string; error?: string }> = [];
    // An HTTP API that takes a database URL (e.g. a query service): logs in with what it got.
    const upstream: Server = createServer({ cert: serving.certPem, key: serving.keyPem }, (req, res) => {
      const url = String(req.headers['x-database-url'] ?? '');
      void whoAmI(url).then((who) => {
        seen.push({ url, ...who });
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`logged in as ${who.user ?? who.error}\n`);
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const port = (upstream.address() as AddressInfo).port;
    try {
      await admin.credentials.create({
        name: 'orders-api-db',
        type: 'database-url',
        value: db.urlFor('vault_admin', vaultAdminPassword),
        metadata: { hosts: `localhost:${port}` },
        dynamic: { engine: 'postgres', creationStatements: ['GRANT SELECT ON public.orders TO {{name}}'] },
      });
      await admin.policies.put('db-broker', {
        rules: [{ actions: ['read-metadata', 'lease'] }],
        actFor: [{ type: 'agent', name: '*' }],
      });
      const broker = await admin.tokens.create({
        identity: { type: 'workload', name: 'vault-broker' },
        policies: ['db-broker'],
        ttl: '1h',
      });
      writeFileSync(join(work, 'broker.token'), broker.token, { mode: 0o600 });
      writeFileSync(join(work, 'upstream-ca.pem'), ca.certPem);
      const run = await ok(
        [
          'broker',
          '--credential',
          'orders-api-db=DATABASE_URL',
          '--for',
          'agent:claude-code',
          '--upstream-ca',
          join(work, 'upstream-ca.pem'),
          '--',
          'sh',
          '-c',
          `curl -sS -H "X-Database-Url: $DATABASE_URL" https://localhost:${port}/query; echo "env=$DATABASE_URL"`,
        ],
        { env: { VAULT_TOKEN: '', VAULT_BROKER_TOKEN_FILE: join(work, 'broker.token') } },
      );
      expect(run.stdout).toMatch(/logged in as vault_lease_/);
      expect(run.stdout).toMatch(/env=vault-ph-/);
      expect(seen).toHaveLength(1);
      expect(seen[0]!.user).toMatch(/^vault_lease_/);
      leasePasswords.push(passwordOf(seen[0]!.url));
      expect(run.stdout).not.toContain(passwordOf(seen[0]!.url));
      // The broker revokes its lease when the command ends: the role goes with it.
      await until(
        'the broker lease role to be dropped',
        async () => !(await liveRoles()).includes(seen[0]!.user!),
      );
      expect((await whoAmI(seen[0]!.url)).error).toMatch(/password authentication failed/);
    } finally {
      upstream.closeAllConnections();
      await new Promise<void>((resolve) => upstream.close(() => resolve()));
    }
  });

  it('vault agent (non-root sidecar): the file logs in as the lease role; rotation at max TTL is a new role; revoke wipes the file and the login fails', async () => {
    const workload = { type: 'workload' as const, name: 'system:serviceaccount:shop:orders' };
    await admin.policies.put('orders-pod', {
      rules: [{ credentials: ['orders-db'], actions: ['lease'], maxTtl: '1h' }],
    });
    const { token } = await admin.tokens.create({ identity: workload, policies: ['orders-pod'], ttl: '1h' });
    const volume = podVolume();
    const file = join(volume, 'db-url');
    let output = '';
    const agent: ChildProcess = spawn(
      process.execPath,
      [
        vaultBin,
        'agent',
        '--config',
        JSON.stringify({
          files: [{ name: 'db-url', credential: 'orders-db', ttl: '3s', maxTtl: '4s' }],
          directory: volume,
          healthPort: 0,
        }),
        '--health-host',
        '127.0.0.1',
      ],
      {
        cwd: repoRoot,
        uid: agentUid,
        gid: agentUid,
        env: { PATH: env.PATH!, VAULT_ADDR: dev.addr, VAULT_TENANT: dev.tenant, VAULT_TOKEN: token },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    agent.stdout?.setEncoding('utf8').on('data', (c: string) => {
      output += c;
    });
    agent.stderr?.setEncoding('utf8').on('data', (c: string) => {
      output += c;
    });
    try {
      await until('the agent to write the file', () => existsSync(file));
      const first = readFileSync(file, 'utf8');
      const firstRole = (await whoAmI(first)).user;
      expect(firstRole, output).toMatch(/^vault_lease_/);
      leasePasswords.push(passwordOf(first));
      // At its max TTL the agent leases again: a new lease is a new role, and the old one goes.
      await until(
        'the agent to lease again at max TTL',
        () => existsSync(file) && readFileSync(file, 'utf8') !== first,
        30_000,
      );
      const second = readFileSync(file, 'utf8');
      leasePasswords.push(passwordOf(second));
      const secondRole = (await whoAmI(second)).user;
      expect(secondRole).toMatch(/^vault_lease_/);
      expect(secondRole).not.toBe(firstRole);
      await until('the first role to be dropped', async () => !(await liveRoles()).includes(firstRole!));
      expect((await whoAmI(first)).error).toMatch(/password authentication failed/);

      // Revoked from outside (an admin, the console): the file is wiped and the role refused.
      const leaseId = secondRole!.slice('vault_'.length);
      const revokedAt = Date.now();
      await admin.leases.revoke(leaseId);
      await until('the file to be wiped', () => !existsSync(file), 5_000);
      expect(Date.now() - revokedAt).toBeLessThan(2_000);
      expect((await whoAmI(second)).error).toMatch(/password authentication failed/);
    } finally {
      agent.kill('SIGTERM');
      await new Promise((resolve) => agent.once('exit', resolve));
      rmSync(volume, { recursive: true, force: true });
    }
  }, 60_000);

  it('CLI: one command rotates the admin password in the database; leases keep working', async () => {
    const rotated = JSON.parse((await ok(['credentials', 'rotate', 'orders-db', '--json'])).stdout);
    expect(rotated.currentVersion).toBe(2);
    expect((await whoAmI(db.urlFor('vault_admin', vaultAdminPassword))).error).toMatch(
      /password authentication failed/,
    );
    const lease = JSON.parse(
      (await ok(['lease', 'create', 'orders-db', '--ttl', '5m', '--show-value', '--json'])).stdout,
    );
    leasePasswords.push(passwordOf(lease.value));
    expect((await whoAmI(lease.value)).user).toBe(`vault_${lease.id}`);
    await ok(['lease', 'revoke', lease.id]);
    expect((await whoAmI(lease.value)).error).toMatch(/password authentication failed/);
  });

  it('canary: the admin password and lease passwords are in no log, audit record, metric or metadata answer', async () => {
    expect(leasePasswords.length).toBeGreaterThanOrEqual(6);
    const metrics = await (
      await fetch(`${dev.addr}/metrics`, { headers: { authorization: `Bearer ${dev.token}` } })
    ).text();
    expect(metrics).toMatch(/vault_dynamic_revocations_total\{engine="postgres",outcome="removed"\}/);
    const audit = readFileSync(join(dev.dataDir, 'audit.log'), 'utf8');
    expect(audit).toMatch(/lease\.dynamic-revoke/);
    const answers = JSON.stringify([
      await admin.credentials.get('orders-db'),
      await admin.credentials.list(),
      await admin.leases.list({}),
      await admin.audit.query({}),
    ]);
    const haystacks = { logs: dev.stderr(), audit, metrics, answers };
    for (const [where, text] of Object.entries(haystacks)) {
      for (const secret of [vaultAdminPassword, encodeURIComponent(vaultAdminPassword), ...leasePasswords])
        expect(text.includes(secret), `${where} holds a password`).toBe(false);
      expect(text, where).not.toMatch(/SCRAM-SHA-256\$/);
    }
  });
});
