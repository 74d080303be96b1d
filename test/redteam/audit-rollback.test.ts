/**
 * Red team: the audit log's integrity promises tried as an attacker who can write the
 * embedded store's file of a stopped `vault dev` (but holds no root key), and as the SIEM
 * user who checks the stream file with `vault audit verify --since-checkpoint`.
 *
 * - A store rolled back to a saved copy (with the stream's cursor) and then written past:
 *   the server signs checkpoints of the forked history, so the newest checkpoint in the
 *   SIEM's stream file agrees with the store; an older one in the same file does not.
 * - A store rolled back under a stream whose cursor (a file outside the store) is ahead.
 * - A forged record with a broken link, and a forged checkpoint, read back by the stream.
 * - The audit key removed or replaced: verify must say so (exit 9), not "not found".
 */
import { copyFileSync, cpSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { legacyHash } from '../../src/core/audit-chain.js';
import { embeddedStoreFile } from '../../src/store/embedded-store.js';
import { runCli } from '../audit/harness.js';
import { startVaultDev, type VaultDev } from '../support/vault-dev.js';

const auditRecordKey = (tenant: string, seq: number) =>
  `/vault/t/${tenant}/audit/${String(seq).padStart(16, '0')}`;

/** Raw access to a stopped `vault dev`'s store, as someone with the file (not the root key) has. */
function openStoreFile(dev: VaultDev) {
  const db = new Database(join(dev.dataDir, 'store', embeddedStoreFile));
  const get = (key: string): string | undefined =>
    db.prepare<[Buffer], { value: string }>('SELECT value FROM kv WHERE key = ?').get(Buffer.from(key))
      ?.value;
  const put = (key: string, value: string) => {
    const revision =
      db.prepare<[], { value: number }>("SELECT value FROM meta WHERE name = 'revision'").get()!.value + 1;
    db.prepare("UPDATE meta SET value = ? WHERE name = 'revision'").run(revision);
    db.prepare(
      'INSERT INTO kv (key, value, create_revision, mod_revision, version) VALUES (?, ?, ?, ?, 1) ' +
        'ON CONFLICT(key) DO UPDATE SET value = excluded.value, mod_revision = excluded.mod_revision',
    ).run(Buffer.from(key), value, revision, revision);
  };
  return { get, put, close: () => db.close() };
}

const running: VaultDev[] = [];
async function start(dataDir?: string): Promise<VaultDev> {
  const dev = await startVaultDev(dataDir ? { dataDir } : {});
  running.push(dev);
  return dev;
}
afterEach(async () => {
  for (const dev of running.splice(0)) await dev.stop();
});

const cli = (dev: VaultDev, ...args: string[]) =>
  runCli(args, { VAULT_ADDR: dev.addr, VAULT_TOKEN: dev.token, VAULT_TENANT: dev.tenant });

async function call(dev: VaultDev, method: string, path: string, body?: unknown) {
  const res = await fetch(`${dev.addr}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${dev.token}`,
      'x-vault-tenant': dev.tenant,
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, text: await res.text() };
}

async function leases(dev: VaultDev, n: number) {
  for (let i = 0; i < n; i++) {
    const res = await call(dev, 'POST', '/v1/leases', { credentialName: 'db', ttl: '5m' });
    expect(res.status, res.text).toBe(201);
  }
}

// biome-ignore lint/suspicious/noExplicitAny: stream lines of every shape
const streamLines = (dev: VaultDev): any[] =>
  readFileSync(join(dev.dataDir, 'audit.log'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line));

/** Stops it keeping its data and starts it again on the same directory. */
async function restart(dev: VaultDev, between?: () => void): Promise<VaultDev> {
  await dev.stop({ keepData: true });
  running.splice(running.indexOf(dev), 1);
  between?.();
  return start(dev.dataDir);
}

describe('red team: audit history rolled back, forged or stripped of its key', () => {
  it('a rollback with the stream cursor, then writes past it: the stream file shows the fork to verify', async () => {
    let dev = await start();
    expect(
      (await call(dev, 'POST', '/v1/credentials', { name: 'db', type: 'password', value: 'x' })).status,
    ).toBe(201);
    await leases(dev, 3);
    // The attacker saves the store and the stream's cursor (both on the server's disk); the
    // stream file itself is the SIEM's copy, out of reach.
    const saved = join(dev.dataDir, '..', `${dev.dataDir.split('/').at(-1)}-saved`);
    dev = await restart(dev, () => {
      cpSync(join(dev.dataDir, 'store'), join(saved, 'store'), { recursive: true });
      copyFileSync(join(dev.dataDir, 'audit.log.cursor'), join(saved, 'audit.log.cursor'));
    });
    await leases(dev, 10);
    expect((await cli(dev, 'audit', 'checkpoint')).code).toBe(0);
    dev = await restart(dev, () => {
      rmSync(join(dev.dataDir, 'store'), { recursive: true });
      cpSync(join(saved, 'store'), join(dev.dataDir, 'store'), { recursive: true });
      copyFileSync(join(saved, 'audit.log.cursor'), join(dev.dataDir, 'audit.log.cursor'));
      rmSync(saved, { recursive: true });
    });
    await leases(dev, 20);
    expect((await cli(dev, 'audit', 'checkpoint')).code).toBe(0);
    await dev.stop({ keepData: true });
    running.splice(running.indexOf(dev), 1);
    dev = await start(dev.dataDir);

    const checkpoints = streamLines(dev)
      .filter((line) => line.checkpoint)
      .map((line) => line.checkpoint);
    // The newest checkpoint in the stream is of the forked history (the case is real) ...
    expect(checkpoints.length).toBeGreaterThanOrEqual(2);
    const newest = checkpoints.reduce((a, b) => (b.seq >= a.seq ? b : a));
    const newestFile = join(dev.dataDir, 'newest.json');
    await import('node:fs/promises').then((fs) => fs.writeFile(newestFile, JSON.stringify(newest)));
    expect((await cli(dev, 'audit', 'verify', '--since-checkpoint', newestFile)).code).toBe(0);
    // ... but the stream file holds an older one that the store no longer extends.
    const verified = await cli(dev, 'audit', 'verify', '--since-checkpoint', join(dev.dataDir, 'audit.log'));
    expect(verified.code, verified.stdout + verified.stderr).toBe(9);
    expect(verified.stderr).toMatch(/differs from the checkpoint|disagree/);
  }, 180_000);

  it('a store rolled back under a stream whose cursor file is ahead: writes stop, /readyz names the tenant, metrics count it', async () => {
    let dev = await start();
    expect(
      (await call(dev, 'POST', '/v1/credentials', { name: 'db', type: 'password', value: 'x' })).status,
    ).toBe(201);
    await leases(dev, 2);
    const saved = join(dev.dataDir, '..', `${dev.dataDir.split('/').at(-1)}-store`);
    dev = await restart(dev, () => cpSync(join(dev.dataDir, 'store'), saved, { recursive: true }));
    await leases(dev, 5);
    let streamedBefore = 0;
    dev = await restart(dev, () => {
      streamedBefore = streamLines(dev).filter((line) => line.seq).length;
      rmSync(join(dev.dataDir, 'store'), { recursive: true });
      cpSync(saved, join(dev.dataDir, 'store'), { recursive: true });
      rmSync(saved, { recursive: true });
    });

    const write = await call(dev, 'POST', '/v1/leases', { credentialName: 'db', ttl: '5m' });
    expect(write.status, write.text).toBe(503);
    expect(JSON.parse(write.text).error.code).toBe('audit_unavailable');
    const ready = await call(dev, 'GET', '/readyz');
    expect(ready.status).toBe(503);
    expect(ready.text).toContain('audit-tampered');
    expect(ready.text).toContain('rolled back');
    expect((await call(dev, 'GET', '/metrics')).text).toMatch(/^vault_audit_tampered_tenants 1$/m);
    const lines = streamLines(dev);
    const tampered = lines.find((line) => line.tampered?.tenant === dev.tenant);
    expect(tampered?.tampered.reason).toMatch(/rolled back/);
    // Nothing of the forked history was copied after what the stream already had.
    expect(lines.filter((line) => line.seq).length).toBe(streamedBefore);
    expect(dev.stderr()).toContain('audit chain tampered');
  }, 120_000);

  it('a forged record with a broken link is not copied to the stream as a record: the stream names it and writes stop', async () => {
    let dev = await start();
    expect(
      (await call(dev, 'POST', '/v1/credentials', { name: 'db', type: 'password', value: 'x' })).status,
    ).toBe(201);
    await leases(dev, 2);
    dev = await restart(dev, () => {
      const store = openStoreFile(dev);
      const tenant = dev.tenant;
      const head = JSON.parse(store.get(`/vault/t/${tenant}/audit-head`)!) as { seq: number; hash: string };
      const last = JSON.parse(store.get(auditRecordKey(tenant, head.seq))!);
      const forged = {
        ...last,
        seq: head.seq + 1,
        requestId: 'forged-by-the-red-team',
        action: 'credential.delete',
        resource: 'credential/db',
        prevHash: last.hash,
        hash: 'ab'.repeat(32),
      };
      store.put(auditRecordKey(tenant, head.seq + 1), JSON.stringify(forged));
      store.put(`/vault/t/${tenant}/audit-head`, JSON.stringify({ seq: head.seq + 1, hash: forged.hash }));
      store.close();
    });
    // The stream's start has read the store back.
    const lines = streamLines(dev);
    expect(lines.filter((line) => line.requestId === 'forged-by-the-red-team')).toEqual([]);
    expect(lines.find((line) => line.tampered?.tenant === dev.tenant)?.tampered.reason).toMatch(/forged/);
    expect((await call(dev, 'GET', '/readyz')).status).toBe(503);
  }, 120_000);

  it('a forged checkpoint put in the store is not copied to the stream', async () => {
    let dev = await start();
    expect(
      (await call(dev, 'POST', '/v1/credentials', { name: 'db', type: 'password', value: 'x' })).status,
    ).toBe(201);
    const forgedSignature = Buffer.alloc(64, 7).toString('base64');
    dev = await restart(dev, () => {
      const store = openStoreFile(dev);
      const tenant = dev.tenant;
      const head = JSON.parse(store.get(`/vault/t/${tenant}/audit-head`)!) as { seq: number };
      store.put(
        `/vault/t/${tenant}/audit-checkpoint`,
        JSON.stringify({
          tenant,
          seq: head.seq + 1,
          hash: 'cd'.repeat(32),
          time: new Date().toISOString(),
          keyId: '0123456789abcdef',
          signature: forgedSignature,
        }),
      );
      store.close();
    });
    await leases(dev, 3);
    // A poll (every 2 s) reads the stored checkpoint once the stream is past its position.
    await new Promise((done) => setTimeout(done, 3000));
    const lines = streamLines(dev);
    expect(lines.filter((line) => line.seq).length).toBeGreaterThanOrEqual(5);
    expect(JSON.stringify(lines)).not.toContain(forgedSignature);
  }, 120_000);

  it('a downgrade (audit key deleted, history rewritten as an unkeyed SHA-256 chain): the file-cursor stream stops the tenant, verify exits 9', async () => {
    let dev = await start();
    expect(
      (await call(dev, 'POST', '/v1/credentials', { name: 'db', type: 'password', value: 'x' })).status,
    ).toBe(201);
    await leases(dev, 2);
    const exported = join(dev.dataDir, 'export.jsonl');
    expect((await cli(dev, 'audit', 'export', '-o', exported)).code).toBe(0);
    dev = await restart(dev, () => {
      const store = openStoreFile(dev);
      const tenant = dev.tenant;
      const head = JSON.parse(store.get(`/vault/t/${tenant}/audit-head`)!) as { seq: number };
      let prevHash = '0'.repeat(64);
      for (let seq = 1; seq <= head.seq; seq++) {
        const { hash: _hash, v: _v, ...rest } = JSON.parse(store.get(auditRecordKey(tenant, seq))!);
        const unsigned = { ...rest, prevHash };
        prevHash = legacyHash(unsigned);
        store.put(auditRecordKey(tenant, seq), JSON.stringify({ ...unsigned, hash: prevHash }));
      }
      store.put(`/vault/t/${tenant}/audit-head`, JSON.stringify({ seq: head.seq, hash: prevHash }));
      store.close();
      const db = new Database(join(dev.dataDir, 'store', embeddedStoreFile));
      for (const key of ['audit-keys', 'audit-checkpoint']) {
        db.prepare('DELETE FROM kv WHERE key = ?').run(Buffer.from(`/vault/t/${tenant}/${key}`));
      }
      db.close();
    });
    // Without the stream's memory this chain is a valid one from before keyed links.
    const write = await call(dev, 'POST', '/v1/leases', { credentialName: 'db', ttl: '5m' });
    expect(write.status, write.text).toBe(503);
    expect((await call(dev, 'GET', '/readyz')).text).toContain('audit-tampered');
    const verified = await cli(dev, 'audit', 'verify', '--since-checkpoint', exported);
    expect(verified.code, verified.stderr).toBe(9);
  }, 120_000);

  it.each([
    ['removed', () => undefined],
    ['garbled', () => 'not json'],
  ])(
    'the audit key %s: verify --since-checkpoint exits 9 and says the key is gone',
    async (_name, replacement) => {
      let dev = await start();
      expect(
        (await call(dev, 'POST', '/v1/credentials', { name: 'db', type: 'password', value: 'x' })).status,
      ).toBe(201);
      const exported = join(dev.dataDir, 'export.jsonl');
      expect((await cli(dev, 'audit', 'export', '-o', exported)).code).toBe(0);
      const keyFile = join(dev.dataDir, 'audit-key.pem');
      const publicKey = await cli(dev, 'audit', 'public-key');
      await import('node:fs/promises').then((fs) => fs.writeFile(keyFile, publicKey.stdout));
      dev = await restart(dev, () => {
        const db = new Database(join(dev.dataDir, 'store', embeddedStoreFile));
        const key = Buffer.from(`/vault/t/${dev.tenant}/audit-keys`);
        const value = replacement();
        if (value === undefined) db.prepare('DELETE FROM kv WHERE key = ?').run(key);
        else db.prepare('UPDATE kv SET value = ? WHERE key = ?').run(value, key);
        db.close();
      });
      // A write is refused as tampering (503, the tenant stopped), never an internal error.
      const write = await call(dev, 'POST', '/v1/credentials', { name: 'db2', type: 'password', value: 'y' });
      expect(write.status, write.text).toBe(503);
      expect(JSON.parse(write.text).error.code).toBe('audit_unavailable');
      // The tenant is now stopped; its own token still connects, so verify can name the problem.
      for (const pinned of [[], ['--public-key', keyFile]]) {
        const verified = await cli(dev, 'audit', 'verify', '--since-checkpoint', exported, ...pinned);
        expect(verified.code, `${pinned.join(' ')}: ${verified.stderr}`).toBe(9);
        expect(verified.stderr).toMatch(/audit key|no audit key|key was removed/);
      }
    },
    120_000,
  );
});
