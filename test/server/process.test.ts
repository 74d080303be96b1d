import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEtcd } from '../support/etcd.js';

const run = promisify(execFile);
const vaultBin = join(import.meta.dirname, '../../bin/vault.js');

/** Starts `vault dev` and resolves with its three export lines parsed. */
async function startDev(
  dataDir: string,
): Promise<{ child: ChildProcess; env: Record<string, string>; stderr: () => string }> {
  const child = spawn(process.execPath, [vaultBin, 'dev', '--data-dir', dataDir, '--port', '0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (stdout.split('\n').filter(Boolean).length >= 3) resolve();
    });
    child.once('exit', (code) => reject(new Error(`vault dev exited ${code}: ${stderr}`)));
  });
  const env = Object.fromEntries(
    stdout
      .trim()
      .split('\n')
      .map((line) => /^export (\w+)=(.*)$/.exec(line)!)
      .map(([, key, value]) => [key!, value!]),
  );
  return { child, env, stderr: () => stderr };
}

const stop = (child: ChildProcess) =>
  new Promise<number | null>((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.kill('SIGTERM');
  });

describe('vault dev', () => {
  let dataDir: string;
  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'vault-dev-'));
  });
  afterAll(() => rm(dataDir, { recursive: true, force: true }));

  it('prints exactly three export lines, explains the root key on stderr, and keeps everything across a restart', async () => {
    const first = await startDev(dataDir);
    expect(Object.keys(first.env)).toEqual(['VAULT_ADDR', 'VAULT_TOKEN', 'VAULT_TENANT']);
    expect(first.env.VAULT_ADDR).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(first.env.VAULT_TENANT).toBe('dev');
    expect(first.stderr()).toContain(join(dataDir, 'root.key'));
    expect(first.stderr()).toContain('never use it for real secrets');
    expect((await stat(join(dataDir, 'root.key'))).mode & 0o777).toBe(0o600);
    expect((await stat(dataDir)).mode & 0o777).toBe(0o700);
    const headers = { authorization: `Bearer ${first.env.VAULT_TOKEN}`, 'content-type': 'application/json' };
    const created = await fetch(`${first.env.VAULT_ADDR}/v1/credentials`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ name: 'kept', type: 'generic', value: 'survives-restart' }),
    });
    expect(created.status).toBe(201);
    expect(await stop(first.child)).toBe(0);

    const second = await startDev(dataDir);
    expect(second.env.VAULT_TOKEN).toBe(first.env.VAULT_TOKEN);
    expect(second.stderr()).toContain('Using the root key');
    const lease = await fetch(`${second.env.VAULT_ADDR}/v1/leases`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ credentialName: 'kept', ttl: '1m' }),
    });
    expect(((await lease.json()) as { value: string }).value).toBe('survives-restart');
    const verify = await fetch(`${second.env.VAULT_ADDR}/v1/audit/verify`, { headers });
    expect(((await verify.json()) as { ok: boolean }).ok).toBe(true);
    expect(await stop(second.child)).toBe(0);
  });
});

describe('vault dev on a port that is taken', () => {
  it('says so in one line and exits 1', async () => {
    const blocker = await new Promise<import('node:net').Server>((resolve) => {
      const server = createNetServer().listen(0, '127.0.0.1', () => resolve(server));
    });
    const port = (blocker.address() as { port: number }).port;
    const dataDir = await mkdtemp(join(tmpdir(), 'vault-dev-busy-'));
    try {
      const failed = await run(process.execPath, [
        vaultBin,
        'dev',
        '--data-dir',
        dataDir,
        '--port',
        String(port),
      ]).then(
        () => undefined,
        (err: { code: number; stderr: string }) => err,
      );
      expect(failed?.code).toBe(1);
      expect(failed?.stderr).toContain('another process listens there');
      expect(failed?.stderr).not.toContain('    at ');
    } finally {
      blocker.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('vault server flags', () => {
  const fails = async (args: string[], env: Record<string, string> = {}) => {
    try {
      await run(process.execPath, [vaultBin, 'server', ...args], {
        env: { PATH: process.env.PATH!, ...env },
      });
      throw new Error('expected vault server to fail');
    } catch (err) {
      const { code, stderr } = err as { code: number; stderr: string };
      return { code, stderr };
    }
  };

  it('prints every problem at once, naming the flag, and exits 2', async () => {
    const { code, stderr } = await fails([
      '--store',
      'etcd',
      '--etcd-cert-file',
      'c.pem',
      '--listen',
      '0.0.0.0:8200',
    ]);
    expect(code).toBe(2);
    expect(stderr).toContain('--store etcd needs --etcd-endpoints');
    expect(stderr).toContain('--etcd-cert-file and --etcd-key-file go together');
    expect(stderr).toContain('a root key is required');
    expect(stderr).toContain('without TLS');
  });

  it('rejects a bad store kind, a bad endpoint and a bad max TTL', async () => {
    const { stderr } = await fails(['--store', 'mysql', '--root-key-file', 'k']);
    expect(stderr).toMatch(/store/);
    const bad = await fails([
      '--etcd-endpoints',
      'not a url',
      '--root-key-file',
      'k',
      '--max-lease-ttl',
      'soon',
      '--etcd-max-txn-ops',
      '10',
    ]);
    expect(bad.stderr).toContain('etcd endpoint is a URL');
    expect(bad.stderr).toContain('--max-lease-ttl must be');
    expect(bad.stderr).toContain('--etcd-max-txn-ops must be at least 32');
    const word = await fails(['--etcd-endpoints', 'http://127.0.0.1:1', '--root-key-file', 'k'], {
      VAULT_ETCD_MAX_TXN_OPS: 'lots',
    });
    expect(word.stderr).toContain('--etcd-max-txn-ops must be a whole number');
  });

  it('refuses --etcd-max-txn-ops above what its etcd allows, before serving', async () => {
    const etcd = await startEtcd();
    const dir = await mkdtemp(join(tmpdir(), 'vault-key-'));
    try {
      const file = join(dir, 'root.key');
      const { writeFile } = await import('node:fs/promises');
      await writeFile(file, `${'ab'.repeat(32)}\n`, { mode: 0o600 });
      const args = ['--etcd-endpoints', etcd.endpoint, '--root-key-file', file, '--listen', '127.0.0.1:0'];
      const { code, stderr } = await fails([...args, '--etcd-max-txn-ops', '1024']);
      expect(code).toBe(2);
      expect(stderr).toContain(
        'refuses transactions of 1024 operations: start etcd with --max-txn-ops=1024 or more, or lower --etcd-max-txn-ops',
      );
      expect(stderr).not.toContain('    at ');
    } finally {
      await etcd.destroy();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('rejects an audit stream name that is not a plain name and a time-to-live under a second', async () => {
    const { code, stderr } = await fails([
      '--store',
      'embedded',
      '--data-dir',
      'd',
      '--root-key-file',
      'k',
      '--audit-cursor',
      'store:../other',
      '--audit-stream-ttl',
      '500ms',
    ]);
    expect(code).toBe(2);
    expect(stderr).toContain('--audit-cursor store:NAME needs a NAME');
    expect(stderr).toContain('--audit-stream-ttl must be at least 1s');
  });

  it('refuses a root key file readable by others, saying how to fix it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vault-key-'));
    try {
      const file = join(dir, 'root.key');
      const { writeFile } = await import('node:fs/promises');
      await writeFile(file, `${'ab'.repeat(32)}\n`, { mode: 0o644 });
      const { code, stderr } = await fails(['--data-dir', join(dir, 'data'), '--root-key-file', file]);
      expect(code).toBe(2);
      expect(stderr).toContain('cannot start');
      expect(stderr).toContain(`chmod 600 ${file}`);
      expect(stderr).not.toContain('    at ');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
