import type { z } from 'zod';
import type { postgresEngineConfig } from '../contract/credentials.js';
import { usernamePlaceholder } from '../contract/credentials.js';
import { EngineError } from './engine.js';

export type PostgresSpec = z.infer<typeof postgresEngineConfig>;

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

export const createRoleSql = (username: string, verifier: string, expiresAt: Date) =>
  `CREATE ROLE ${quoteIdentifier(username)} WITH LOGIN NOINHERIT PASSWORD ${quoteLiteral(verifier)} VALID UNTIL ${quoteLiteral(expiresAt.toISOString())}`;

/** The advisory lock key of `aclLockSql`. */
export const aclLockKey = 8388916853364n;

/**
 * Taken (until commit) by every transaction of ours that changes privileges: GRANTs and DROP
 * OWNED on one object update its catalog row, and two transactions doing so at once fail
 * ("tuple concurrently updated"). Waiting on this lock instead lets the costly part (CREATE
 * ROLE checks each SCRAM verifier with one PBKDF2 run) go in parallel and only the cheap
 * privilege changes one after another.
 *
 * Any role may take an advisory lock, and the key is no secret (pg_locks shows it while we
 * hold it): a wait longer than a second goes on without it, so a session holding it only
 * costs that second, and the concurrent updates it would have prevented are retried
 * (`retryConcurrent`). Our own holders keep it for about one store commit.
 */
export const aclLockSql = `DO $$
  DECLARE previous text := current_setting('lock_timeout');
  BEGIN
    PERFORM set_config('lock_timeout', '1s', true);
    BEGIN
      PERFORM pg_advisory_xact_lock(${aclLockKey});
    EXCEPTION WHEN lock_not_available THEN
      NULL;
    END;
    PERFORM set_config('lock_timeout', previous, true);
  END $$`;

/**
 * Who owns what a revoked lease's role created, once it is gone: a role nobody logs in as,
 * with no privileges of its own. Not the admin: a SECURITY DEFINER function, a view or a
 * rule runs with its owner's privileges, so a role that could create one would, once its
 * objects were the admin's, have left code that any other role may call as the admin.
 */
export const revokedOwner = 'vault_revoked';

/**
 * Creates the owner of revoked leases' objects if it is missing, and takes from it whatever
 * would let anyone use it (a role of that name made beforehand, able to log in, would
 * otherwise receive every revoked lease's objects). Serialized like every privilege change.
 */
export const ensureRevokedOwnerSql = `BEGIN; ${aclLockSql}; DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${revokedOwner}') THEN
      CREATE ROLE ${revokedOwner} NOLOGIN NOINHERIT;
    ELSIF EXISTS (SELECT FROM pg_roles WHERE rolname = '${revokedOwner}'
        AND (rolcanlogin OR rolsuper OR rolcreatedb OR rolcreaterole OR rolreplication OR rolbypassrls)) THEN
      ALTER ROLE ${revokedOwner} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD NULL;
    END IF;
  END $$; COMMIT`;

/**
 * What the roles own in the connection's database, reassigned to `to`; their privileges there
 * dropped. REASSIGN OWNED and DROP OWNED need the privileges of the roles they name and of
 * the new owner, which a superuser has and a `CREATEROLE` admin does not: the admin first
 * makes itself a member of them (its `CREATEROLE`, or from PostgreSQL 16 the ADMIN OPTION it
 * got by creating them, allows that), for the moment before they are dropped.
 */
export const disownSql = (usernames: string[], to = revokedOwner): string => {
  const roles = usernames.map(quoteIdentifier).join(', ');
  const owner = to === 'CURRENT_USER' ? to : quoteIdentifier(to);
  const members = to === 'CURRENT_USER' ? roles : `${roles}, ${owner}`;
  return `GRANT ${members} TO CURRENT_USER; REASSIGN OWNED BY ${roles} TO ${owner}; DROP OWNED BY ${roles}`;
};

/**
 * One transaction dropping many roles: what they own goes to `revokedOwner`, the privileges
 * granted to them go, then the roles. Every name is one we generated, quoted. Inside the open
 * issue transaction (which holds the lock already), just the drops of roles created in it,
 * which own only what the credential's own statements made: that goes to the admin.
 */
export function dropRolesSql(usernames: string[], options: { inTransaction?: boolean } = {}): string {
  const roles = usernames.map(quoteIdentifier).join(', ');
  if (options.inTransaction) return `${disownSql(usernames, 'CURRENT_USER')}; DROP ROLE ${roles}`;
  return `BEGIN; ${aclLockSql}; ${disownSql(usernames)}; DROP ROLE ${roles}; COMMIT`;
}

/** Refuses new logins of these roles at once, before anything that may fail or wait. */
export const noLoginSql = (usernames: string[]): string =>
  usernames.map((username) => `ALTER ROLE ${quoteIdentifier(username)} NOLOGIN`).join('; ');

/**
 * The other databases (that accept connections) holding objects of these roles or privileges
 * granted to them: REASSIGN/DROP OWNED reach only the database they run in, and any role may
 * create large objects (or, given CREATE, more) in every database it can connect to, which
 * would make DROP ROLE fail for ever.
 */
export const otherDatabasesSql = `SELECT DISTINCT d.datname FROM pg_shdepend s JOIN pg_database d ON d.oid = s.dbid
   WHERE s.refclassid = 'pg_authid'::regclass AND s.refobjid::text = ANY($1::text[])
     AND d.datname <> current_database() AND d.datallowconn`;

/**
 * Ends every session of these roles, by name and by oid (a role dropped mid-login keeps its
 * oid), and answers which of them still exist: a revocation counts only once the role is gone.
 */
export const terminateSql = `WITH ended AS (
    SELECT pg_terminate_backend(pid, 1000) FROM pg_stat_activity
     WHERE pid <> pg_backend_pid() AND (usename = ANY($1::text[]) OR (usesysid IS NOT NULL AND usesysid::text = ANY($2::text[])))
  )
  SELECT (SELECT count(*) FROM ended) AS ended, ARRAY(SELECT rolname::text FROM pg_roles WHERE rolname = ANY($1::text[])) AS remaining`;

/**
 * Concurrent GRANTs on one object race on its catalog row ("tuple concurrently updated") and
 * deadlocks or serialization failures can occur; the whole transaction rolled back, so it is
 * simply run again.
 */
export function isTransient(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return (
    code === '40001' || code === '40P01' || (code === 'XX000' && /concurrently/.test((err as Error).message))
  );
}

export async function retryConcurrent<T>(run: () => Promise<T>, attempts = 8): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (err) {
      if (!isTransient(err) || attempt >= attempts) throw err;
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 5 * attempt));
    }
  }
}
