import pg from 'pg';
import type { z } from 'zod';
import type { postgresEngineConfig } from '../contract/credentials.js';
import { usernamePlaceholder } from '../contract/credentials.js';
import { type Account, type DynamicEngine, EngineError, engineError } from './engine.js';
import { randomPassword, scramVerifier } from './password.js';

type PostgresSpec = z.infer<typeof postgresEngineConfig>;

/** Quotes an identifier we generated; refuses what no PostgreSQL identifier may hold. */
export function quoteIdentifier(name: string): string {
  if (name.includes('\0') || name.length === 0 || Buffer.byteLength(name) > 63)
    throw new EngineError(`"${name}" cannot be a PostgreSQL role name`, true);
  return `"${name.replaceAll('"', '""')}"`;
}

/** A literal under standard_conforming_strings (the default since 9.1): quotes doubled, E'' for backslashes. */
export function quoteLiteral(value: string): string {
  if (value.includes('\0')) throw new EngineError('a NUL byte cannot be in a PostgreSQL literal', true);
  const body = `'${value.replaceAll("'", "''")}'`;
  return value.includes('\\') ? `E${body.replaceAll('\\', '\\\\')}` : body;
}

/** The statements in order; `{{name}}` becomes the quoted role, nothing else is substituted. */
export const renderStatements = (spec: PostgresSpec, role: string): string[] =>
  spec.creationStatements.map((statement) =>
    statement.replaceAll(usernamePlaceholder, quoteIdentifier(role)),
  );

/** The admin connection with the lease's role and password instead of the admin's. */
function leaseUrl(connection: string, username: string, password: string): string {
  const url = new URL(connection);
  url.username = encodeURIComponent(username);
  url.password = encodeURIComponent(password);
  return url.toString();
}

const adminUser = (connection: string): string => {
  const url = parseUrl(connection);
  const user = decodeURIComponent(url.username);
  if (!user) throw new EngineError('the admin connection URL names no user', true);
  return user;
};

function parseUrl(connection: string): URL {
  try {
    const url = new URL(connection);
    if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') throw new Error('scheme');
    return url;
  } catch {
    throw new EngineError('the admin connection is not a postgres:// or postgresql:// URL', true);
  }
}

/**
 * Concurrent GRANTs on one object race on its catalog row ("tuple concurrently updated") and
 * deadlocks or serialization failures can occur; the whole transaction rolled back, so it is
 * simply run again.
 */
async function retryConcurrent<T>(run: () => Promise<T>, attempts = 8): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      const transient =
        code === '40001' ||
        code === '40P01' ||
        (code === 'XX000' && /concurrently/.test((err as Error).message));
      if (!transient || attempt >= attempts) throw err;
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 5 * attempt));
    }
  }
}

export interface PostgresEngineOptions {
  /** Connections kept per admin connection. */
  poolSize?: number;
  connectTimeoutMs?: number;
  queryTimeoutMs?: number;
}

/**
 * PostgreSQL: one LOGIN role per lease, `VALID UNTIL` the lease's end, so the server itself
 * refuses it after expiry even if revocation never runs. Revoke drops the role (reassigning
 * and dropping what it owns in the admin connection's database) and then terminates every
 * session it still has, by oid, so a login racing the drop cannot survive it.
 */
export function createPostgresEngine(options: PostgresEngineOptions = {}): DynamicEngine<PostgresSpec> {
  const pools = new Map<string, pg.Pool>();

  const poolFor = (connection: string) => {
    let pool = pools.get(connection);
    if (!pool) {
      parseUrl(connection);
      pool = new pg.Pool({
        connectionString: connection,
        max: options.poolSize ?? 4,
        idleTimeoutMillis: 10_000,
        connectionTimeoutMillis: options.connectTimeoutMs ?? 5_000,
        query_timeout: options.queryTimeoutMs ?? 15_000,
        application_name: 'vault-dynamic',
      });
      // An idle client that loses its server must not crash the process; the next call reconnects.
      pool.on('error', () => {});
      pools.set(connection, pool);
    }
    return pool;
  };

  const secretsOf = (connection: string, extra: string[] = []) => {
    const url = new URL(connection);
    return [connection, decodeURIComponent(url.password), url.password, ...extra];
  };

  async function withClient<T>(
    connection: string,
    what: string,
    run: (client: pg.PoolClient) => Promise<T>,
    extra: string[] = [],
  ): Promise<T> {
    let client: pg.PoolClient | undefined;
    try {
      client = await poolFor(connection).connect();
      return await run(client);
    } catch (err) {
      if (err instanceof EngineError) throw err;
      // 42xxx: syntax or access rule violations, which no retry fixes.
      const permanent =
        typeof (err as { code?: unknown }).code === 'string' && /^42/.test((err as { code: string }).code);
      throw engineError(err, secretsOf(connection, extra), what, permanent);
    } finally {
      client?.release();
    }
  }

  return {
    name: 'postgres',
    usernameFor: (leaseId) => `vault_${leaseId}`,

    async issue(connection, spec, account: Account) {
      const password = randomPassword();
      const role = quoteIdentifier(account.username);
      const statements = renderStatements(spec, account.username);
      await withClient(
        connection,
        `creating role for ${account.username}`,
        (client) =>
          retryConcurrent(async () => {
            await client.query('BEGIN');
            try {
              await client.query(
                `CREATE ROLE ${role} WITH LOGIN NOINHERIT PASSWORD ${quoteLiteral(scramVerifier(password))} VALID UNTIL ${quoteLiteral(account.expiresAt.toISOString())}`,
              );
              // The extended protocol runs exactly one statement per text: a template cannot smuggle a second.
              for (const text of statements)
                await client.query({ text, queryMode: 'extended' } as pg.QueryConfig);
              await client.query('COMMIT');
            } catch (err) {
              await client.query('ROLLBACK').catch(() => {});
              throw err;
            }
          }),
        [password],
      );
      return leaseUrl(connection, account.username, password);
    },

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
      await withClient(connection, `dropping role ${username}`, async (client) => {
        const found = await client.query<{ oid: string }>(
          'SELECT oid::text FROM pg_roles WHERE rolname = $1',
          [username],
        );
        const oid = found.rows[0]?.oid;
        if (oid !== undefined) {
          const role = quoteIdentifier(username);
          await client.query('BEGIN');
          try {
            await client.query(`REASSIGN OWNED BY ${role} TO CURRENT_USER`);
            await client.query(`DROP OWNED BY ${role}`);
            await client.query(`DROP ROLE ${role}`);
            await client.query('COMMIT');
          } catch (err) {
            await client.query('ROLLBACK').catch(() => {});
            throw err;
          }
        }
        // Sessions of a dropped role keep running until terminated; also after a crash between
        // the drop and this, which is why it runs when the role is already gone too.
        await client.query(
          `SELECT pg_terminate_backend(pid, 1000) FROM pg_stat_activity
            WHERE pid <> pg_backend_pid() AND (usename = $1 OR (usesysid IS NOT NULL AND usesysid::text = $2))`,
          [username, oid ?? '-1'],
        );
      });
    },

    async rotateRoot(connection, restore) {
      const user = adminUser(connection);
      const password = restore === undefined ? randomPassword() : decodeURIComponent(parseUrl(restore).password);
      await withClient(
        connection,
        `rotating the password of ${user}`,
        async (client) => {
          await client.query(
            `ALTER ROLE ${quoteIdentifier(user)} PASSWORD ${quoteLiteral(scramVerifier(password))}`,
          );
        },
        [password],
      );
      const old = pools.get(connection);
      pools.delete(connection);
      await old?.end().catch(() => {});
      const url = new URL(connection);
      url.password = encodeURIComponent(password);
      return url.toString();
    },

    async close() {
      const all = [...pools.values()];
      pools.clear();
      await Promise.all(all.map((pool) => pool.end().catch(() => {})));
    },
  };
}
