/**
 * A real PostgreSQL server from Debian's packages, started by the test itself: `initdb` and
 * `postgres` run as the unprivileged `postgres` system user (the server refuses root) in a
 * temporary directory, listening on 127.0.0.1 on a free port, with a SCRAM-authenticated
 * superuser. `stop()` and `start()` take the server down and up again on the same data.
 *
 * With `netns` the server runs inside another network namespace (the real-node cluster's),
 * listening on `listen` there for the `clients` it names; the test process, outside, reaches it
 * through the Unix socket in the temporary directory (a path works across namespaces).
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  appendFileSync,
  chownSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from './etcd.js';

export interface Postgres {
  host: string;
  port: number;
  /** postgres://admin:...@HOST:PORT/postgres, HOST being where it listens (127.0.0.1 by default) */
  adminUrl: string;
  adminPassword: string;
  urlFor(user: string, password: string, database?: string): string;
  /** Runs SQL as the admin on its own connection. */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    values?: unknown[],
  ): Promise<pg.QueryResult<R>>;
  stop(): Promise<void>;
  start(): Promise<void>;
  /**
   * SIGSTOP to the server and every backend: connections stay open and nothing answers, as a
   * hung database host does. `thaw` resumes them.
   */
  freeze(): void;
  thaw(): void;
  close(): Promise<void>;
}

export function postgresBinDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root).sort((a, b) => Number(b) - Number(a));
  for (const version of versions) {
    const bin = join(root, version, 'bin');
    if (existsSync(join(bin, 'postgres'))) return bin;
  }
  return undefined;
}

export const postgresAvailable = (): boolean => postgresBinDir() !== undefined && process.getuid?.() === 0;

function userIds(name: string): { uid: number; gid: number } {
  const uid = Number(execFileSync('id', ['-u', name]).toString().trim());
  const gid = Number(execFileSync('id', ['-g', name]).toString().trim());
  return { uid, gid };
}

export interface PostgresOptions {
  settings?: Record<string, string>;
  /** The address it listens on and URLs name (default 127.0.0.1). */
  listen?: string;
  /** Clients allowed in besides loopback, as a CIDR (pg_hba.conf), e.g. a cluster's pod network. */
  clients?: string;
  /** A network namespace to run in, e.g. `/proc/PID/ns/net` (entered with nsenter, as root). */
  netns?: string;
}

export async function startPostgres(options: PostgresOptions = {}): Promise<Postgres> {
  const bin = postgresBinDir();
  if (!bin) throw new Error('PostgreSQL is not installed: apt-get install -y postgresql');
  const owner = userIds('postgres');
  const base = mkdtempSync(join(tmpdir(), 'vault-pg-'));
  chownSync(base, owner.uid, owner.gid);
  const data = join(base, 'data');
  const adminPassword = `admin-${Math.random().toString(36).slice(2)}`;
  const pwfile = join(base, 'pw');
  writeFileSync(pwfile, adminPassword, { mode: 0o600 });
  chownSync(pwfile, owner.uid, owner.gid);
  execFileSync(
    join(bin, 'initdb'),
    ['-D', data, '-U', 'admin', '--auth=scram-sha-256', `--pwfile=${pwfile}`, '--no-sync', '-E', 'UTF8'],
    { ...owner, cwd: base, stdio: 'pipe' },
  );
  rmSync(pwfile);
  if (options.clients)
    appendFileSync(join(data, 'pg_hba.conf'), `host all all ${options.clients} scram-sha-256\n`);
  const host = options.listen ?? '127.0.0.1';
  const port = await freePort();
  const settings = {
    listen_addresses: host,
    port: String(port),
    unix_socket_directories: base,
    fsync: 'off',
    max_connections: '200',
    ...options.settings,
  };
  let child: ChildProcess | undefined;
  let log = '';
  const urlFor = (user: string, password: string, database = 'postgres') =>
    `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${host}:${port}/${database}`;
  const adminUrl = urlFor('admin', adminPassword);
  // This process's own connections: through the socket when the server is in another namespace.
  const adminClient = () =>
    new pg.Client(
      options.netns
        ? { host: base, port, user: 'admin', password: adminPassword, database: 'postgres' }
        : { connectionString: adminUrl },
    );

  const start = async () => {
    const args = ['-D', data, ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])];
    const server = join(bin, 'postgres');
    // nsenter needs root to enter the namespace and becomes the postgres user there; it execs
    // the server, so the child's pid is the server's.
    const proc = options.netns
      ? spawn(
          'nsenter',
          [`--net=${options.netns}`, '-S', String(owner.uid), '-G', String(owner.gid), '--', server, ...args],
          { cwd: base, stdio: ['ignore', 'pipe', 'pipe'] },
        )
      : spawn(server, args, { ...owner, cwd: base, stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    proc.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      log = (log + chunk).slice(-20_000);
    });
    const deadline = Date.now() + 30_000;
    for (;;) {
      const client = adminClient();
      try {
        await client.connect();
        await client.end();
        return;
      } catch {
        await client.end().catch(() => {});
        if (proc.exitCode !== null || Date.now() > deadline)
          throw new Error(`postgres did not start:\n${log}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  };
  const stop = async () => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null) return;
    // SIGINT: "fast" shutdown, which ends client sessions instead of waiting for them.
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    proc.kill('SIGINT');
    await exited;
  };
  /** The postmaster and its children (backends and helpers), found through /proc. */
  const signalAll = (signal: NodeJS.Signals) => {
    const pid = child?.pid;
    if (pid === undefined) return;
    const children = spawnSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' })
      .stdout.split('\n')
      .filter(Boolean)
      .map(Number);
    for (const target of [pid, ...children]) {
      try {
        process.kill(target, signal);
      } catch {
        // Gone meanwhile.
      }
    }
  };
  await start();
  return {
    host,
    port,
    adminUrl,
    adminPassword,
    urlFor,
    async query(text, values) {
      const client = adminClient();
      await client.connect();
      try {
        return await client.query(text, values);
      } finally {
        await client.end();
      }
    },
    stop,
    start,
    freeze: () => signalAll('SIGSTOP'),
    thaw: () => signalAll('SIGCONT'),
    async close() {
      signalAll('SIGCONT');
      await stop();
      rmSync(base, { recursive: true, force: true });
    },
  };
}

/** Whether the credentials in `url` log in (and can run a query): a leased role that works. */
export async function loginWorks(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Creates a dynamic PostgreSQL credential (roles that may connect) through the API. */
export async function createPostgresCredential(
  vault: { call(method: string, path: string, options?: object): Promise<{ status: number; text: string }> },
  db: Pick<Postgres, 'adminUrl'>,
  name = 'orders-db',
): Promise<void> {
  const created = await vault.call('POST', '/v1/credentials', {
    body: {
      name,
      type: 'database-url',
      value: db.adminUrl,
      dynamic: { engine: 'postgres', creationStatements: ['GRANT CONNECT ON DATABASE postgres TO {{name}}'] },
    },
  });
  if (created.status !== 201)
    throw new Error(`creating the PostgreSQL credential answered ${created.status}: ${created.text}`);
}

/** The lease roles in the database, sorted. */
export async function leaseRoles(db: Pick<Postgres, 'query'>): Promise<string[]> {
  const { rows } = await db.query<{ rolname: string }>(
    "SELECT rolname FROM pg_roles WHERE rolname LIKE 'vault_lease_%'",
  );
  return rows.map((r) => r.rolname).sort();
}

/** Waits until the lease roles are `expected` again; the error names the roles left behind. */
export async function waitForRoles(db: Pick<Postgres, 'query'>, expected: string[], timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (JSON.stringify(await leaseRoles(db)) !== JSON.stringify(expected)) {
    if (Date.now() > deadline)
      throw new Error(`roles left behind: ${(await leaseRoles(db)).filter((r) => !expected.includes(r))}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
