import pg from 'pg';
import { createBatcher, keyedBatchers, type Settled } from './batcher.js';
import { type Account, type DynamicEngine, EngineError, engineError, type HeldIssue } from './engine.js';
import { randomPassword, scramVerifier } from './password.js';
import {
  aclLockSql,
  createRoleSql,
  disownSql,
  dropRolesSql,
  ensureRevokedOwnerSql,
  noLoginSql,
  otherDatabasesSql,
  type PostgresSpec,
  quoteIdentifier,
  quoteLiteral,
  renderStatements,
  retryConcurrent,
  terminateSql,
} from './postgres-sql.js';

/**
 * Query parameters of the admin connection a lease's URL keeps: where and how to connect.
 * Anything else (a `password`, `sslpassword`, client key paths, `options` meant for the
 * admin) stays with the admin connection.
 */
const leaseUrlParams = new Set([
  'host',
  'port',
  'sslmode',
  'sslrootcert',
  'connect_timeout',
  'target_session_attrs',
]);

/** The admin connection with the lease's role and password instead of the admin's. */
function leaseUrl(connection: string, username: string, password: string): string {
  const url = new URL(connection);
  url.username = encodeURIComponent(username);
  url.password = encodeURIComponent(password);
  for (const name of [...url.searchParams.keys()])
    if (!leaseUrlParams.has(name)) url.searchParams.delete(name);
  return url.toString();
}

function parseUrl(connection: string): URL {
  try {
    const url = new URL(connection);
    if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') throw new Error('scheme');
    return url;
  } catch {
    throw new EngineError('the admin connection is not a postgres:// or postgresql:// URL', true);
  }
}

/** The password node-postgres logs in with: the query's `password` wins over the userinfo's. */
const passwordOf = (url: URL): string => url.searchParams.get('password') ?? decodeURIComponent(url.password);

const adminUser = (connection: string): string => {
  const user = decodeURIComponent(parseUrl(connection).username);
  if (!user) throw new EngineError('the admin connection URL names no user', true);
  return user;
};

export interface PostgresEngineOptions {
  /** Connections kept per admin connection (default 6). */
  poolSize?: number;
  /** Issue (and revoke) transactions run at once per admin connection (default 4 and 2). */
  issueConcurrency?: number;
  revokeConcurrency?: number;
  connectTimeoutMs?: number;
  queryTimeoutMs?: number;
  /** Most leases created or dropped in one transaction. */
  maxBatch?: number;
  /** How long an issue transaction waits for its leases' outcome before rolling back (default the query timeout). */
  holdTimeoutMs?: number;
}

interface IssueItem {
  spec: PostgresSpec;
  account: Account;
  verifier: string;
  password: string;
  /** Resolved once the role exists in the open transaction. */
  held: () => void;
  /** Whether the lease was committed, from `settle`. */
  decision: Promise<boolean>;
}

type IssueOutcome = 'committed' | 'rolled-back';

/**
 * PostgreSQL: one LOGIN role per lease, `VALID UNTIL` the lease's end, so the server itself
 * refuses it after expiry even if revocation never runs. Revoke makes the role NOLOGIN and
 * ends its sessions, reassigns and drops what it owns in every database, drops it, and then
 * terminates every session it still has, by oid, so a login racing the drop cannot survive it.
 *
 * Calls are group-committed over a pooled admin connection: leases issued (or revoked) while
 * a transaction runs go together into the next one, so the database sees one transaction per
 * batch, and a batch that fails is retried lease by lease so one bad lease sinks no other.
 * An issue transaction stays open until every lease of the batch is committed in Vault (or
 * not): what commits is exactly the roles whose leases exist, even across a crash.
 */
export function createPostgresEngine(options: PostgresEngineOptions = {}): DynamicEngine<PostgresSpec> {
  const pools = new Map<string, pg.Pool>();
  const maxBatch = options.maxBatch ?? 64;
  const holdTimeoutMs = options.holdTimeoutMs ?? options.queryTimeoutMs ?? 15_000;

  const queryTimeoutMs = options.queryTimeoutMs ?? 15_000;
  /**
   * The server gives up on a statement (or a lock wait) when the client does: a query the
   * client abandoned must not keep waiting upstream, holding locks others wait on.
   */
  const clientSettings = (connection: string): pg.ClientConfig => ({
    connectionString: connection,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5_000,
    query_timeout: queryTimeoutMs + 1_000,
    statement_timeout: queryTimeoutMs,
    lock_timeout: queryTimeoutMs,
    application_name: 'vault-dynamic',
  });

  const poolFor = (connection: string) => {
    let pool = pools.get(connection);
    if (!pool) {
      parseUrl(connection);
      pool = new pg.Pool({
        ...clientSettings(connection),
        max: options.poolSize ?? 6,
        idleTimeoutMillis: 10_000,
      });
      // An idle client that loses its server must not crash the process; the next call reconnects.
      pool.on('error', () => {});
      pools.set(connection, pool);
    }
    return pool;
  };

  const secretsOf = (connection: string, extra: string[] = []) => {
    const url = new URL(connection);
    const inQuery = ['password', 'sslpassword'].flatMap((name) => url.searchParams.getAll(name));
    return [connection, decodeURIComponent(url.password), url.password, ...inQuery, ...extra];
  };

  async function withClient<T>(
    connection: string,
    what: string,
    run: (client: pg.PoolClient) => Promise<T>,
    extra: string[] = [],
  ): Promise<T> {
    let client: pg.PoolClient | undefined;
    // A checked-out client has no pool listener: a connection cut meanwhile (a hung or
    // restarted database) would emit an unhandled 'error' and end the process. The query in
    // flight fails with it anyway; the client is then dropped, not returned to the pool.
    let lost: Error | undefined;
    const onError = (err: Error) => {
      lost = err;
    };
    try {
      client = await poolFor(connection).connect();
      client.on('error', onError);
      return await run(client);
    } catch (err) {
      if (err instanceof EngineError) throw err;
      // 42xxx: syntax or access rule violations, which no retry fixes.
      const code = (err as { code?: unknown }).code;
      const permanent = typeof code === 'string' && /^42/.test(code);
      throw engineError(err, secretsOf(connection, extra), what, permanent);
    } finally {
      client?.removeListener('error', onError);
      client?.release(lost);
    }
  }

  /** Runs `sql` (our own, one simple query) in a transaction it opens; rolls back on failure. */
  async function inTransaction(client: pg.PoolClient, run: () => Promise<void>) {
    try {
      await run();
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    }
  }

  /** Creates every role of the batch and runs the statements for each, in one transaction left open. */
  async function createRoles(client: pg.PoolClient, items: IssueItem[]) {
    await retryConcurrent(() =>
      inTransaction(client, async () => {
        await client.query(
          `BEGIN; ${items.map((i) => createRoleSql(i.account.username, i.verifier, i.account.expiresAt)).join('; ')}; ${aclLockSql}`,
        );
        // The extended protocol runs exactly one statement per text: a template cannot smuggle a second.
        for (const item of items)
          for (const text of renderStatements(item.spec, item.account.username))
            await client.query({ text, queryMode: 'extended' } as pg.QueryConfig);
      }),
    );
  }

  const decided = (item: IssueItem) =>
    new Promise<boolean>((resolve) => {
      // A lease whose outcome never comes is not kept (its settle(true) then fails).
      const timer = setTimeout(() => resolve(false), holdTimeoutMs);
      void item.decision.then((keep) => {
        clearTimeout(timer);
        resolve(keep);
      });
    });

  /**
   * Holds the batch's roles open until each lease's outcome is known, then commits the roles
   * of committed leases only (the others are dropped in the same transaction).
   */
  async function holdAndCommit(
    connection: string,
    client: pg.PoolClient,
    items: IssueItem[],
  ): Promise<Settled<IssueOutcome>[]> {
    for (const item of items) item.held();
    const keep = await Promise.all(items.map(decided));
    const dropped = items.filter((_, i) => !keep[i]).map((item) => item.account.username);
    try {
      if (dropped.length === items.length) {
        await client.query('ROLLBACK');
      } else {
        if (dropped.length > 0) await client.query(dropRolesSql(dropped, { inTransaction: true }));
        await client.query('COMMIT');
      }
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      const error = engineError(err, secretsOf(connection), 'committing the roles of a batch');
      return items.map((_, i) => (keep[i] ? { ok: false, error } : { ok: true, value: 'rolled-back' }));
    }
    return items.map((_, i) => ({ ok: true, value: keep[i] ? 'committed' : 'rolled-back' }));
  }

  const issuing = keyedBatchers<IssueItem, IssueOutcome>((key) => {
    const connection = key.slice(0, key.indexOf('\0'));
    return createBatcher(
      (items) =>
        withClient(
          connection,
          `creating role${items.length > 1 ? 's' : ''} ${items.map((i) => i.account.username).join(', ')}`,
          async (client) => {
            try {
              await createRoles(client, items);
            } catch (err) {
              if (items.length === 1) throw err;
              // One at a time, so the lease that fails sinks no other.
              const settled: Settled<IssueOutcome>[] = [];
              for (const item of items) {
                const alone = await createRoles(client, [item]).then(
                  () => undefined,
                  (error: unknown) =>
                    engineError(
                      error,
                      secretsOf(connection, [item.password]),
                      `creating role ${item.account.username}`,
                    ),
                );
                settled.push(
                  alone
                    ? { ok: false, error: alone }
                    : ((await holdAndCommit(connection, client, [item]))[0] as Settled<IssueOutcome>),
                );
              }
              return settled;
            }
            return holdAndCommit(connection, client, items);
          },
          items.map((i) => i.password),
        ),
      { maxBatch, concurrency: options.issueConcurrency ?? 4 },
    );
  });

  async function issueHeld(connection: string, spec: PostgresSpec, account: Account): Promise<HeldIssue> {
    parseUrl(connection);
    quoteIdentifier(account.username);
    const password = randomPassword();
    const verifier = await scramVerifier(password, spec.scramIterations);
    let decide: (keep: boolean) => void = () => {};
    const decision = new Promise<boolean>((resolve) => {
      decide = resolve;
    });
    let held: () => void = () => {};
    const isHeld = new Promise<void>((resolve) => {
      held = resolve;
    });
    const outcome = issuing.submit(`${connection}\0${JSON.stringify(spec)}`, {
      spec,
      account,
      verifier,
      password,
      held,
      decision,
    });
    // Either the role is held open, or the batch ended without it (an error).
    await Promise.race([
      isHeld,
      outcome.then(() => {
        throw new EngineError(`role ${account.username} was not created`);
      }),
    ]);
    return {
      value: leaseUrl(connection, account.username, password),
      async settle(commit) {
        decide(commit);
        const result = await outcome.catch((err: unknown) => {
          if (commit) throw err;
          return 'rolled-back' as const;
        });
        if (commit && result !== 'committed')
          throw new EngineError(`role ${account.username} was rolled back before its lease was committed`);
      },
    };
  }

  async function dropRoles(client: pg.PoolClient, usernames: string[]) {
    await retryConcurrent(() =>
      inTransaction(client, () => client.query(dropRolesSql(usernames)).then(() => {})),
    );
  }

  /** Admin connections for which the owner of revoked leases' objects is known to exist. */
  const ownerReady = new Set<string>();

  /** What the roles own in other databases, reassigned there (one short-lived connection each). */
  async function disownElsewhere(
    connection: string,
    client: pg.PoolClient,
    usernames: string[],
    oids: string[],
  ) {
    const found = await client.query<{ datname: string }>(otherDatabasesSql, [oids]);
    for (const { datname } of found.rows) {
      const url = new URL(connection);
      url.pathname = `/${encodeURIComponent(datname)}`;
      const other = new pg.Client({ ...clientSettings(url.toString()) });
      other.on('error', () => {});
      try {
        await other.connect();
        await retryConcurrent(() => other.query(disownSql(usernames)).then(() => {}));
      } finally {
        await other.end().catch(() => {});
      }
    }
  }

  /**
   * One attempt at removing roles: new logins refused and every session ended first (a
   * session holding a lock, even on its own temporary table, would make the drop wait while
   * it holds the lock every issue waits on), what they own in other databases reassigned,
   * then the drop, then the sessions ended again (a login racing the drop).
   */
  async function removeRoles(connection: string, client: pg.PoolClient, usernames: string[]) {
    const unique = [...new Set(usernames)];
    const found = await client.query<{ rolname: string; oid: string }>(
      'SELECT rolname, oid::text FROM pg_roles WHERE rolname = ANY($1::text[])',
      [unique],
    );
    const existing = found.rows.map((row) => row.rolname);
    const oids = found.rows.map((row) => row.oid);
    const failed = new Map<string, unknown>();
    const terminate = () => client.query<{ remaining: string[] }>(terminateSql, [unique, oids]);
    if (existing.length > 0) {
      if (!ownerReady.has(connection)) {
        await client.query(ensureRevokedOwnerSql).catch(async (err: unknown) => {
          await client.query('ROLLBACK').catch(() => {});
          throw err;
        });
        ownerReady.add(connection);
      }
      await terminate();
      await client.query(noLoginSql(existing));
      await terminate();
      await disownElsewhere(connection, client, existing, oids);
      try {
        await dropRoles(client, existing);
      } catch (err) {
        if (existing.length === 1) throw err;
        for (const username of existing)
          await dropRoles(client, [username]).catch((error: unknown) =>
            failed.set(username, engineError(error, secretsOf(connection), `dropping role ${username}`)),
          );
      }
    }
    // Sessions of a dropped role keep running until terminated; also after a crash between
    // the drop and this, which is why it runs when the role is already gone too.
    const after = await terminate();
    for (const username of after.rows[0]?.remaining ?? [])
      if (!failed.has(username))
        failed.set(username, new EngineError(`role ${username} still exists after it was dropped`));
    return usernames.map(
      (username): Settled<void> =>
        failed.has(username) ? { ok: false, error: failed.get(username) } : { ok: true, value: undefined },
    );
  }

  const revoking = keyedBatchers<string, void>((connection) =>
    createBatcher(
      (usernames) =>
        withClient(
          connection,
          `dropping role${usernames.length > 1 ? 's' : ''} ${usernames.join(', ')}`,
          (client) =>
            removeRoles(connection, client, usernames).catch((err: unknown) => {
              // Someone may have dropped it: check again next time.
              ownerReady.delete(connection);
              throw err;
            }),
        ),
      { maxBatch, concurrency: options.revokeConcurrency ?? 2 },
    ),
  );

  return {
    name: 'postgres',
    usernameFor: (leaseId) => `vault_${leaseId}`,

    async issue(connection, spec, account: Account) {
      const held = await issueHeld(connection, spec, account);
      await held.settle(true);
      return held.value;
    },

    issueHeld,

    async renew(connection, account) {
      await withClient(connection, `extending role ${account.username}`, async (client) => {
        const found = await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [account.username]);
        if (found.rowCount === 0) throw new EngineError(`role ${account.username} no longer exists`, true);
        await client.query(
          `ALTER ROLE ${quoteIdentifier(account.username)} VALID UNTIL ${quoteLiteral(account.expiresAt.toISOString())}`,
        );
      });
    },

    async revoke(connection, username) {
      parseUrl(connection);
      quoteIdentifier(username);
      await revoking.submit(connection, username);
    },

    async rotateRoot(connection, restore) {
      const user = adminUser(connection);
      const password = restore === undefined ? randomPassword() : passwordOf(parseUrl(restore));
      const verifier = await scramVerifier(password);
      await withClient(
        connection,
        `rotating the password of ${user}`,
        async (client) => {
          await retryConcurrent(() =>
            client.query(`ALTER ROLE ${quoteIdentifier(user)} PASSWORD ${quoteLiteral(verifier)}`),
          );
        },
        [password],
      );
      const old = pools.get(connection);
      pools.delete(connection);
      await old?.end().catch(() => {});
      const url = new URL(connection);
      url.password = encodeURIComponent(password);
      // Else the old password there would still be the one node-postgres uses.
      url.searchParams.delete('password');
      return url.toString();
    },

    async close() {
      const open = [...pools.values()];
      pools.clear();
      issuing.clear();
      revoking.clear();
      await Promise.all(open.map((pool) => pool.end().catch(() => {})));
    },
  };
}
