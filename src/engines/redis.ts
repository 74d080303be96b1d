import type { z } from 'zod';
import { forbiddenAclRules, type redisEngineConfig } from '../contract/credentials.js';
import { type DynamicEngine, EngineError, engineError } from './engine.js';
import { randomPassword } from './password.js';
import { RespError, redisCommands } from './resp.js';

type RedisSpec = z.infer<typeof redisEngineConfig>;

/** Rules that would undo what the engine sets (the password, the account being on); refused at create too. */
const forbiddenRules = new Set<string>(forbiddenAclRules);

function target(connection: string) {
  let url: URL;
  try {
    url = new URL(connection);
  } catch {
    throw new EngineError('the admin connection is not a redis:// URL', true);
  }
  if (url.protocol !== 'redis:') throw new EngineError('the admin connection is not a redis:// URL', true);
  return {
    url,
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port: Number(url.port || 6379),
    username: decodeURIComponent(url.username) || 'default',
    password: url.password ? decodeURIComponent(url.password) : undefined,
  };
}

/**
 * Redis ACL users, one per lease. Redis has no account expiry, so the lease's end is
 * enforced by revocation alone (the core's sweep runs at expiry and retries until done);
 * `ACL DELUSER` also disconnects the user's clients.
 */
export function createRedisEngine(): DynamicEngine<RedisSpec> {
  const run = async (connection: string, what: string, commands: string[][], extra: string[] = []) => {
    const t = target(connection);
    try {
      return await redisCommands(t, commands);
    } catch (err) {
      throw engineError(err, [connection, t.password ?? '', ...extra], what, err instanceof RespError);
    }
  };
  return {
    name: 'redis',
    usernameFor: (leaseId) => `vault_${leaseId}`,

    async issue(connection, spec, account) {
      const rules = spec.aclRules.filter((rule) => !forbiddenRules.has(rule.toLowerCase()));
      if (rules.length !== spec.aclRules.length)
        throw new EngineError(`ACL rules may not use ${[...forbiddenRules].join(', ')}`, true);
      const password = randomPassword();
      await run(
        connection,
        `creating ACL user ${account.username}`,
        [['ACL', 'SETUSER', account.username, 'reset', 'on', `>${password}`, ...rules]],
        [password],
      );
      // Only where to connect: the engine reads nothing from the admin URL's query or fragment,
      // so nothing there is the lease's.
      const url = new URL(connection);
      url.username = encodeURIComponent(account.username);
      url.password = encodeURIComponent(password);
      url.search = '';
      url.hash = '';
      return url.toString();
    },

    async renew(connection, account) {
      const [user] = await run(connection, `checking ACL user ${account.username}`, [
        ['ACL', 'GETUSER', account.username],
      ]);
      if (user === null) throw new EngineError(`ACL user ${account.username} no longer exists`, true);
    },

    async revoke(connection, username) {
      await run(connection, `deleting ACL user ${username}`, [['ACL', 'DELUSER', username]]);
    },

    async rotateRoot(connection, restore) {
      const t = target(connection);
      const password = restore === undefined ? randomPassword() : (target(restore).password ?? '');
      if (!password) throw new EngineError('the admin connection to restore has no password', true);
      await run(
        connection,
        `rotating the password of ${t.username}`,
        [['ACL', 'SETUSER', t.username, 'resetpass', `>${password}`]],
        [password],
      );
      t.url.password = encodeURIComponent(password);
      return t.url.toString();
    },

    async close() {},
  };
}
