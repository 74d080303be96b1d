/**
 * Red team session 7b: `--max-event-backlog-mib` is turned into bytes with `<< 20`, a 32-bit
 * shift: 2048 MiB and more (the schema allows up to 65,536) wrap to a negative or zero budget,
 * so the process counts as over its budget whenever any stream holds anything, and every
 * stream more than 64 KiB behind is disconnected: a larger budget disconnects sooner.
 *
 * Real parts: the server as `vault server` starts it (parsed config, startVault), the embedded
 * store, real HTTP with a client socket that stops reading.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT_POLICY, systemContext } from '../../src/core/index.js';
import { keys } from '../../src/core/keys.js';
import type { LeaseRecord } from '../../src/core/lease-record.js';
import { createLogger } from '../../src/lib/logger.js';
import { parseServerConfig } from '../../src/server/config.js';
import { startVault, type VaultProcess } from '../../src/server/vault-process.js';
import { writeLeases } from '../support/bulk-leases.js';
import { openEventStreams, stalledEventStream } from '../support/event-streams.js';

describe('--max-event-backlog-mib 4096', () => {
  let dir: string;
  let vault: VaultProcess;
  let token: string;
  const tenant = 'acme';

  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${vault.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, text };
  };
  const openStreams = async () => openEventStreams((await call('GET', '/metrics')).text);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vault-s7b-backlog-'));
    await writeFile(join(dir, 'root.key'), randomBytes(32), { mode: 0o600 });
    const config = parseServerConfig({
      store: 'embedded',
      dataDir: join(dir, 'data'),
      rootKeyFile: join(dir, 'root.key'),
      listen: '127.0.0.1:0',
      auditLog: 'none',
      ui: false,
      maxEventBacklogMib: 4096,
    });
    vault = await startVault(config, createLogger({ level: 'silent' }));
    const admin = { type: 'human' as const, name: 'root' };
    await vault.core.tenants.ensure(tenant, systemContext(tenant, admin));
    token = (
      await vault.core.tokens.mint(systemContext(tenant, admin), tenant, {
        identity: admin,
        policies: [ROOT_POLICY],
        ttlMs: 3_600_000,
        system: true,
      })
    ).token;
  }, 30_000);
  afterAll(async () => {
    await vault?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps a stream a few hundred KiB behind (far under 4 GiB, and under its own 1 MiB)', async () => {
    const created = await call('POST', '/v1/credentials', { name: 'bulk', type: 'generic', value: 'v' });
    expect(created.status, created.text).toBe(201);
    const first = await call('POST', '/v1/leases', { credentialName: 'bulk', ttl: '1h' });
    expect(first.status, first.text).toBe(201);
    const id = JSON.parse(first.text).id as string;
    const template = JSON.parse((await vault.store.get(keys.lease(tenant, id)))!.value) as LeaseRecord;
    // About 4 KiB per event.
    const labels = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${i}`, 'x'.repeat(250)]));

    const stalled = await stalledEventStream(vault.url, token);
    expect(await openStreams()).toBe(1);
    // About 600 KiB of events: more than the kernel's buffers of a paused localhost socket
    // take, less than the stream's own 1 MiB.
    await writeLeases(vault.store, tenant, { ...template, labels } as LeaseRecord, 'bulk', 150);
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expect(await openStreams(), 'the stream was disconnected').toBe(1);
    stalled.socket.destroy();
  }, 60_000);
});
