import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateRootKeyFile } from '../../src/crypto/root-key.js';
import { startVaultDev } from '../support/vault-dev.js';

const run = promisify(execFile);
const vaultBin = join(import.meta.dirname, '../../bin/vault.js');
const vault = (...args: string[]) =>
  run(process.execPath, [vaultBin, ...args], { env: { PATH: process.env.PATH! } });

describe('vault operator key commands', () => {
  let dataDir: string;
  let keysDir: string;

  beforeAll(async () => {
    keysDir = await mkdtemp(join(tmpdir(), 'vault-keys-'));
    const dev = await startVaultDev();
    dataDir = dev.dataDir;
    const headers = { authorization: `Bearer ${dev.token}`, 'content-type': 'application/json' };
    for (const name of ['a', 'b', 'c']) {
      const created = await fetch(`${dev.addr}/v1/credentials`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ name, type: 'generic', value: `value-${name}` }),
      });
      expect(created.status).toBe(201);
    }
    await dev.stop({ keepData: true });
  });
  afterAll(async () => {
    await rm(keysDir, { recursive: true, force: true });
    await rm(dataDir, { recursive: true, force: true });
  });

  const store = () => ['--data-dir', join(dataDir, 'store')];

  it('rotates a tenant key with progress, and values still open after a restart', async () => {
    const { stdout, stderr } = await vault(
      'operator',
      'rotate-tenant-key',
      'dev',
      ...store(),
      '--root-key-file',
      join(dataDir, 'root.key'),
      '--json',
    );
    expect(stderr).toContain('tenant dev: key v1 → v2');
    expect(JSON.parse(stdout)).toMatchObject({ tenant: 'dev', from: 1, to: 2 });
    expect(JSON.parse(stdout).rewrapped).toBeGreaterThanOrEqual(3);

    const dev = await startVaultDev({ dataDir });
    try {
      const lease = await fetch(`${dev.addr}/v1/leases`, {
        method: 'POST',
        headers: { authorization: `Bearer ${dev.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ credentialName: 'b', ttl: '1m' }),
      });
      expect(((await lease.json()) as { value: string }).value).toBe('value-b');
    } finally {
      await dev.stop({ keepData: true });
    }
  });

  it('mints a first root token for a server that has none, audited', async () => {
    const { stdout, stderr } = await vault(
      'operator',
      'root-token',
      '--tenant',
      'prod',
      '--name',
      'ops-alice',
      '--ttl',
      '10m',
      ...store(),
      '--root-key-file',
      join(dataDir, 'root.key'),
    );
    const token = stdout.trim();
    expect(token).toMatch(/^vlt_/);
    expect(stderr).toContain('tenant prod');
    expect(stderr).not.toContain(token);
    const dev = await startVaultDev({ dataDir });
    try {
      const headers = { authorization: `Bearer ${token}`, 'x-vault-tenant': 'prod' };
      const me = (await (await fetch(`${dev.addr}/v1/auth/whoami`, { headers })).json()) as Record<
        string,
        unknown
      >;
      expect(me).toMatchObject({
        tenant: 'prod',
        system: true,
        identity: { type: 'human', name: 'ops-alice' },
      });
      expect(Date.parse(String(me.expiresAt))).toBeLessThanOrEqual(Date.now() + 10 * 60_000);
      const audit = (await (await fetch(`${dev.addr}/v1/audit?action=token.create`, { headers })).json()) as {
        records: Array<{ actor: { name: string } }>;
      };
      expect(audit.records.map((r) => r.actor.name)).toContain('ops-alice');
    } finally {
      await dev.stop({ keepData: true });
    }
  });

  it('rotates the root key: afterwards only the new root opens the tenant keys', async () => {
    const newKey = join(keysDir, 'new-root.key');
    await generateRootKeyFile(newKey);
    const { stderr } = await vault(
      'operator',
      'rotate-root',
      '--new-root-key-file',
      newKey,
      ...store(),
      '--root-key-file',
      join(dataDir, 'root.key'),
    );
    expect(stderr).toContain('tenant keys re-wrapped');
    const { stdout } = await vault('operator', 'key-status', ...store(), '--root-key-file', newKey);
    const status = JSON.parse(stdout);
    const dev = status.tenants.find((t: { tenant: string }) => t.tenant === 'dev');
    expect(dev.rootKeyIds).toEqual([status.rootKeyId]);
  });

  it('key-status and rotations on a directory without a store say so and create nothing', async () => {
    const empty = join(keysDir, 'no-store-here');
    for (const command of [['key-status'], ['rotate-tenant-key', 'dev']]) {
      const failed = await vault(
        'operator',
        ...command,
        '--data-dir',
        empty,
        '--root-key-file',
        join(dataDir, 'root.key'),
      ).catch((err: { code: number; stderr: string }) => err);
      expect((failed as { code: number }).code).toBe(2);
      expect((failed as { stderr: string }).stderr).toContain(`no store in ${empty}`);
      expect(existsSync(empty)).toBe(false);
    }
  });

  it('refuses a missing tenant argument with a usage error', async () => {
    await expect(vault('operator', 'rotate-tenant-key')).rejects.toMatchObject({ code: 1 });
  });
});
