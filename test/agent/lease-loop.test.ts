import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AgentFileInput, agentFile } from '../../src/agent/config.js';
import { createFileSink, type FileSink } from '../../src/agent/file-sink.js';
import { createLeaseLoop, type LeaseApi, type LeaseLoop, leaseApi } from '../../src/agent/lease-loop.js';
import { systemClock } from '../../src/lib/clock.js';
import { createLogger, silentLogger } from '../../src/lib/logger.js';
import { Vault } from '../../src/sdk/index.js';
import { startHangingProxy } from '../support/hanging-proxy.js';
import { until } from '../support/until.js';
import { startVaultDev, type VaultDev } from '../support/vault-dev.js';

/** The lease loop against a real `vault dev`: real leases, real renewals, real revocations. */

let dev: VaultDev;
let admin: Vault;
let dir: string;
const loops: LeaseLoop[] = [];

const apiFor = (vault: Vault): LeaseApi => leaseApi(() => vault);

function startLoop(vault: Vault, files: AgentFileInput[], sub: string, registry = new Registry()) {
  const directory = join(dir, sub);
  mkdirSync(directory);
  const loop = createLeaseLoop({
    files: files.map((f) => agentFile.parse(f)),
    sink: createFileSink(directory),
    api: apiFor(vault),
    clock: systemClock,
    logger: silentLogger,
    registry,
    retryMinMs: 200,
    retryMaxMs: 1_000,
  });
  loops.push(loop);
  loop.start();
  return { loop, directory, registry };
}

/** A client of the dev server through a proxy the test can make cut, freeze or drop answers. */
async function throughProxy(timeoutMs: number) {
  const { hostname, port } = new URL(dev.addr);
  const proxy = await startHangingProxy({ host: hostname, port: Number(port) });
  const through = await Vault.connect({
    addr: proxy.urlThrough(dev.addr),
    token: dev.token,
    tenant: dev.tenant,
    timeoutMs,
  });
  return { proxy, through };
}

beforeAll(async () => {
  dev = await startVaultDev();
  admin = await Vault.connect({ addr: dev.addr, token: dev.token, tenant: dev.tenant });
  dir = mkdtempSync(join(tmpdir(), 'vault-agent-loop-'));
  for (const [name, value] of [
    ['db-url', 'postgres://app:s3cret@db/app'],
    ['api-key', "sk_live_it's"],
    ['short', 'short-lived'],
  ] as const) {
    await admin.credentials.create({ name, type: 'generic', value });
  }
});
afterAll(async () => {
  for (const loop of loops) await loop.stop().catch(() => {});
  await dev?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('the lease loop', () => {
  it('writes every file in its format and mode, and reports when all are written', async () => {
    const { loop, directory } = startLoop(
      admin,
      [
        { name: 'db.env', credential: 'db-url', format: 'env', envName: 'DATABASE_URL' },
        { name: 'key.json', credential: 'api-key', format: 'json', mode: '0440' },
        { name: 'raw', credential: 'db-url' },
      ],
      'formats',
    );
    await loop.allWritten;
    expect(loop.ready()).toBe(true);
    expect(readFileSync(join(directory, 'db.env'), 'utf8')).toBe(
      "DATABASE_URL='postgres://app:s3cret@db/app'\n",
    );
    expect(JSON.parse(readFileSync(join(directory, 'key.json'), 'utf8'))).toEqual({
      KEY_JSON: "sk_live_it's",
    });
    expect(readFileSync(join(directory, 'raw'), 'utf8')).toBe('postgres://app:s3cret@db/app');
    expect(statSync(join(directory, 'raw')).mode & 0o777).toBe(0o400);
    expect(statSync(join(directory, 'key.json')).mode & 0o777).toBe(0o440);
    await loop.stop();
  });

  it('renews at about two thirds of the TTL', async () => {
    // Renewed at about 4 s: slack enough for a loaded machine, where 3 s leases expired first.
    const { loop } = startLoop(admin, [{ name: 'renewed', credential: 'db-url', ttl: '6s' }], 'renew');
    await loop.allWritten;
    const id = loop.leaseIds().renewed!;
    const lease = await until('a renewal', async () => {
      const current = await admin.leases.get(id);
      return current.renewCount >= 1 ? current : undefined;
    });
    expect(lease.state).toBe('active');
    expect(loop.leaseIds().renewed).toBe(id);
    await loop.stop();
  });

  it('wipes the file within a second of a revocation, and does not lease it again', async () => {
    const { loop, directory, registry } = startLoop(
      admin,
      [{ name: 'revoked', credential: 'db-url', ttl: '1h' }],
      'revoke',
    );
    await loop.allWritten;
    const id = loop.leaseIds().revoked!;
    // Give the event stream a moment to be connected before revoking.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const started = Date.now();
    await admin.leases.revoke(id);
    await until('the wipe', () => !existsSync(join(directory, 'revoked')), 10_000);
    const elapsed = Date.now() - started;
    expect(loop.ready()).toBe(false);
    // The counter moves just after the unlink the loop above saw: wait for it, too.
    const metrics = await until('the wipe to be counted', async () => {
      const text = await registry.metrics();
      return /vault_agent_wipes_total\{reason="revoked"\} 1/.test(text) ? text : undefined;
    });
    expect(metrics).toMatch(/vault_agent_wipes_total\{reason="revoked"\} 1/);
    // Generous on a loaded machine; the benchmark measures the real latency.
    expect(elapsed).toBeLessThan(5_000);
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(existsSync(join(directory, 'revoked'))).toBe(false);
    await loop.stop();
  });

  it('catches up after its event stream broke: a revocation made meanwhile wipes the file once it reconnects', async () => {
    const { proxy, through } = await throughProxy(2_000);
    try {
      const { loop, directory } = startLoop(
        through,
        [
          { name: 'missed', credential: 'db-url', ttl: '1h' },
          { name: 'kept', credential: 'api-key', ttl: '1h' },
        ],
        'catch-up',
      );
      await loop.allWritten;
      const { missed, kept } = loop.leaseIds();
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      // The network to the server fails: the stream is cut and nothing gets through.
      proxy.hang();
      await admin.leases.revoke(missed!);
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      expect(existsSync(join(directory, 'missed'))).toBe(true);
      proxy.resume();
      // No event of the revocation will ever come, and the lease renews only in 40 minutes.
      await until(
        'the missed revocation to wipe its file',
        () => !existsSync(join(directory, 'missed')),
        15_000,
      );
      expect(readFileSync(join(directory, 'kept'), 'utf8')).toBe("sk_live_it's");
      expect(loop.leaseIds().kept).toBe(kept);
      expect((await admin.leases.get(kept!)).state).toBe('active');
      await loop.stop();
    } finally {
      await proxy.close();
    }
  });

  it('asks again with the same Idempotency-Key after a lease creation whose answers were all lost: one lease, not one per try', async () => {
    await admin.credentials.create({ name: 'lost-answers', type: 'generic', value: 'lost-answers-v' });
    const { proxy, through } = await throughProxy(800);
    try {
      // Every answer is dropped: the SDK's own tries (one key) time out, and the loop's try fails.
      proxy.muteAnswers();
      const { loop, directory, registry } = startLoop(
        through,
        [{ name: 'lost', credential: 'lost-answers', ttl: '1h' }],
        'lost-answers',
      );
      await until('the loop to give a try up', async () =>
        /vault_agent_failures_total\{step="lease"\} [1-9]/.test(await registry.metrics()),
      );
      proxy.unmuteAnswers();
      await loop.allWritten;
      expect(readFileSync(join(directory, 'lost'), 'utf8')).toBe('lost-answers-v');
      const issued = await admin.leases.list({ credentialName: 'lost-answers' });
      expect(issued.map((l) => l.id)).toEqual([loop.leaseIds().lost]);
      await loop.stop();
    } finally {
      await proxy.close();
    }
  });

  it('survives a wipe that fails on revocation: logs it, stays up, keeps its other files', async () => {
    const directory = join(dir, 'wipe-fails');
    mkdirSync(directory);
    const real = createFileSink(directory);
    const sink: FileSink = {
      directory,
      write: (name, content, mode) => real.write(name, content, mode),
      wipe: async (name) => {
        if (name === 'broken') throw Object.assign(new Error('EIO: i/o error, unlink'), { code: 'EIO' });
        return real.wipe(name);
      },
      sweepTemporaries: (name) => real.sweepTemporaries(name),
    };
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    const stream = new PassThrough();
    let logged = '';
    stream.on('data', (chunk: Buffer) => {
      logged += chunk.toString();
    });
    const loop = createLeaseLoop({
      files: [
        agentFile.parse({ name: 'broken', credential: 'db-url', ttl: '1h' }),
        agentFile.parse({ name: 'kept', credential: 'api-key', ttl: '1h' }),
      ],
      sink,
      api: apiFor(admin),
      clock: systemClock,
      logger: createLogger({ destination: stream, level: 'warn' }),
      registry: new Registry(),
      retryMinMs: 200,
      retryMaxMs: 1_000,
    });
    loops.push(loop);
    try {
      loop.start();
      await loop.allWritten;
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      await admin.leases.revoke(loop.leaseIds().broken!);
      await until('the failed wipe to be logged', () => logged.includes('wiping the file failed'));
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(unhandled).toEqual([]);
      expect(logged).not.toContain('postgres://');
      expect(loop.ready()).toBe(false);
      expect(readFileSync(join(directory, 'kept'), 'utf8')).toBe("sk_live_it's");
    } finally {
      process.off('unhandledRejection', onUnhandled);
      await loop.stop();
    }
  });

  it('leases again when the max TTL is reached, then revokes the old lease', async () => {
    const { loop, directory } = startLoop(
      admin,
      // Long enough that a loaded machine still leases again and revokes before the old one ends.
      [{ name: 'rolled', credential: 'short', ttl: '6s', maxTtl: '6s' }],
      'release',
    );
    await loop.allWritten;
    const first = loop.leaseIds().rolled!;
    const second = await until('a new lease', () => {
      const id = loop.leaseIds().rolled;
      return id !== first ? id : undefined;
    });
    expect(second).toBeTruthy();
    expect(readFileSync(join(directory, 'rolled'), 'utf8')).toBe('short-lived');
    const old = await until('the old lease revoked', async () => {
      const lease = await admin.leases.get(first);
      return lease.state !== 'active' ? lease : undefined;
    });
    expect(old.state).toBe('revoked');
    await loop.stop();
  });

  it('wipes at expiry when policy no longer allows a new lease', async () => {
    await admin.policies.put('agent-expiry', { rules: [{ credentials: ['short'], actions: ['lease'] }] });
    const created = await admin.tokens.create({
      identity: { type: 'agent', name: 'expiry-test' },
      policies: ['agent-expiry'],
      ttl: '1h',
    });
    const agent = await Vault.connect({ addr: dev.addr, token: created.token, tenant: dev.tenant });
    const { loop, directory } = startLoop(
      agent,
      [{ name: 'ends', credential: 'short', ttl: '2s', maxTtl: '2s' }],
      'expiry',
    );
    await loop.allWritten;
    // Take the permission away: the re-lease at max TTL is denied, so the lease runs out.
    await admin.policies.put('agent-expiry', { rules: [{ credentials: ['nothing-*'], actions: ['lease'] }] });
    const id = loop.leaseIds().ends!;
    const lease = await admin.leases.get(id);
    await until('the wipe at expiry', () => !existsSync(join(directory, 'ends')), 15_000);
    expect(Date.now()).toBeGreaterThanOrEqual(lease.expiresAt.getTime() - 50);
    await loop.stop();
  });

  it('on stop wipes every file and revokes its leases', async () => {
    const { loop, directory } = startLoop(
      admin,
      [
        { name: 'one', credential: 'db-url' },
        { name: 'two', credential: 'api-key' },
      ],
      'stop',
    );
    await loop.allWritten;
    const ids = Object.values(loop.leaseIds()) as string[];
    await loop.stop();
    expect(existsSync(join(directory, 'one'))).toBe(false);
    expect(existsSync(join(directory, 'two'))).toBe(false);
    for (const id of ids) expect((await admin.leases.get(id)).state).toBe('revoked');
  });

  it('keeps retrying a credential that does not exist, and never reports it written', async () => {
    const { loop, directory, registry } = startLoop(
      admin,
      [{ name: 'ghost', credential: 'no-such-credential' }],
      'missing',
    );
    await until('a failed attempt', async () =>
      /vault_agent_failures_total\{step="lease"\} [2-9]/.test(await registry.metrics()),
    );
    expect(loop.started()).toBe(false);
    expect(existsSync(join(directory, 'ghost'))).toBe(false);
    await loop.stop();
    await expect(loop.allWritten).rejects.toThrow('stopped');
  });
});

describe('files a previous agent left behind (crash, OOM kill, sidecar restart)', () => {
  it('wipes a leftover file whose lease cannot be had again, and leftover temporary files', async () => {
    const directory = join(dir, 'stale');
    mkdirSync(directory);
    // What a SIGKILLed agent leaves: its files, and a write it did not finish.
    writeFileSync(join(directory, 'gone'), 'revoked-value-of-a-dead-agent', { mode: 0o400 });
    writeFileSync(join(directory, 'vlease'), 'value-of-a-deleted-vaultlease', { mode: 0o400 });
    writeFileSync(join(directory, '.kept.tmp-0a1b2c3d4e5f'), 'half-written-value', { mode: 0o400 });
    writeFileSync(join(directory, 'kept'), 'old-value', { mode: 0o400 });
    const loop = createLeaseLoop({
      files: [
        agentFile.parse({ name: 'gone', credential: 'no-such-credential' }),
        agentFile.parse({ name: 'vlease', lease: 'deleted-vaultlease' }),
        agentFile.parse({ name: 'kept', credential: 'db-url', ttl: '1h' }),
      ],
      sink: createFileSink(directory),
      api: apiFor(admin),
      resolveLease: async () => undefined,
      clock: systemClock,
      logger: silentLogger,
      registry: new Registry(),
      retryMinMs: 200,
      retryMaxMs: 1_000,
    });
    loops.push(loop);
    loop.start();
    await until(
      'the leftover files wiped',
      () => !existsSync(join(directory, 'gone')) && !existsSync(join(directory, 'vlease')),
    );
    await until(
      'the kept file rewritten',
      () => readFileSync(join(directory, 'kept'), 'utf8') === 'postgres://app:s3cret@db/app',
    );
    expect(existsSync(join(directory, '.kept.tmp-0a1b2c3d4e5f'))).toBe(false);
    await loop.stop();
  });
});

describe('stopping while a file is being written', () => {
  it('leaves no file and no active lease behind', async () => {
    const directory = join(dir, 'slow');
    mkdirSync(directory);
    const real = createFileSink(directory);
    let writing: () => void = () => {};
    const started = new Promise<void>((resolve) => {
      writing = resolve;
    });
    const slow = {
      ...real,
      write: async (...args: Parameters<typeof real.write>) => {
        writing();
        await new Promise((resolve) => setTimeout(resolve, 500));
        return real.write(...args);
      },
    };
    const loop = createLeaseLoop({
      files: [agentFile.parse({ name: 'slow', credential: 'db-url', ttl: '1h' })],
      sink: slow,
      api: apiFor(admin),
      clock: systemClock,
      logger: silentLogger,
      registry: new Registry(),
      retryMinMs: 200,
      retryMaxMs: 1_000,
    });
    const activeIds = async () =>
      (await admin.leases.list({ state: 'active', credentialName: 'db-url', limit: 1000 }))
        .map((l) => l.id)
        .sort();
    const before = await activeIds();
    loop.start();
    await started;
    await loop.stop();
    // Longer than the write takes: nothing may land after stop() returned.
    await new Promise((resolve) => setTimeout(resolve, 800));
    expect(existsSync(join(directory, 'slow'))).toBe(false);
    expect(await activeIds()).toEqual(before);
  });
});

describe('a file that cannot be written', () => {
  it('gives each lease back instead of piling them up while it retries', async () => {
    const activeIds = async () =>
      (await admin.leases.list({ state: 'active', credentialName: 'api-key', limit: 1000 }))
        .map((l) => l.id)
        .sort();
    const before = await activeIds();
    const loop = createLeaseLoop({
      files: [agentFile.parse({ name: 'nowhere', credential: 'api-key', ttl: '1h' })],
      sink: createFileSink(join(dir, 'does-not-exist')),
      api: apiFor(admin),
      clock: systemClock,
      logger: silentLogger,
      registry: new Registry(),
      retryMinMs: 100,
      retryMaxMs: 200,
    });
    loop.start();
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    await loop.stop();
    expect(await activeIds()).toEqual(before);
  });
});
