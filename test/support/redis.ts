/**
 * A real redis-server from Debian's packages, started by the test as the unprivileged `redis`
 * user on 127.0.0.1 with an `admin` ACL user (the default user off), no persistence.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { redisCommands } from '../../src/engines/resp.js';
import { freePort } from './etcd.js';

export const redisAvailable = existsSync('/usr/bin/redis-server') && process.getuid?.() === 0;

export interface Redis {
  port: number;
  /** `redis://admin:...@127.0.0.1:PORT` */
  adminUrl: string;
  admin: { host: string; port: number; username: string; password: string };
  /** SIGSTOP: connections stay open and nothing answers. `thaw` resumes it. */
  freeze(): void;
  thaw(): void;
  close(): Promise<void>;
}

export async function startRedis(): Promise<Redis> {
  const base = mkdtempSync(join(tmpdir(), 'vault-redis-'));
  const uid = Number(execFileSync('id', ['-u', 'redis']).toString());
  const gid = Number(execFileSync('id', ['-g', 'redis']).toString());
  chownSync(base, uid, gid);
  const port = await freePort();
  const password = `admin-${Math.random().toString(36).slice(2)}`;
  const conf = join(base, 'redis.conf');
  writeFileSync(
    conf,
    `bind 127.0.0.1\nport ${port}\ndir ${base}\nsave ""\nappendonly no\nuser default off\nuser admin on >${password} ~* &* +@all\n`,
  );
  chownSync(conf, uid, gid);
  const child: ChildProcess = spawn('/usr/bin/redis-server', [conf], { uid, gid, stdio: 'ignore' });
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  const admin = { host: '127.0.0.1', port, username: 'admin', password };
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      await redisCommands(admin, [['PING']]);
      break;
    } catch (err) {
      if (Date.now() > deadline) {
        kill();
        throw err;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  return {
    port,
    adminUrl: `redis://admin:${password}@127.0.0.1:${port}`,
    admin,
    freeze: () => child.kill('SIGSTOP'),
    thaw: () => child.kill('SIGCONT'),
    close: async () => {
      kill();
      process.removeListener('exit', kill);
      rmSync(base, { recursive: true, force: true });
    },
  };
}

/** Creates a dynamic Redis credential (ACL users with `~app:* +get`) through the API. */
export async function createRedisCredential(
  vault: { call(method: string, path: string, options?: object): Promise<{ status: number; text: string }> },
  redis: Pick<Redis, 'adminUrl'>,
  options: { name?: string; tenant?: string } = {},
): Promise<void> {
  const created = await vault.call('POST', '/v1/credentials', {
    ...(options.tenant ? { tenant: options.tenant } : {}),
    body: {
      name: options.name ?? 'cache',
      type: 'database-url',
      value: redis.adminUrl,
      dynamic: { engine: 'redis', aclRules: ['~app:*', '+get'] },
    },
  });
  if (created.status !== 201)
    throw new Error(`creating the Redis credential answered ${created.status}: ${created.text}`);
}
