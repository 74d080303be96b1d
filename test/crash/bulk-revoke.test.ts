/**
 * Bulk revocation is resumable (issue 13): `vault server` killed (SIGKILL) part way through
 * revoking one credential's leases, restarted, and asked again, revokes every one of them,
 * none of another credential's, and leaves an audit chain that verifies. The revocation reads
 * ahead (the next chunk's index entries and records while one commits): a kill between the
 * two must not lose or half-write anything. Run at etcd's default of 128 operations per
 * transaction (20 leases each) and at `--max-txn-ops 1024` with `--etcd-max-txn-ops 1024`
 * (169 leases each), as the chart's bundled etcd runs.
 */

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditRecord } from '../../src/contract/audit.js';
import { keys } from '../../src/core/keys.js';
import { leaseIndex, parseEntry } from '../../src/core/lease-index.js';
import type { LeaseRecord } from '../../src/core/lease-record.js';
import { openEtcdStore } from '../../src/store/etcd-store.js';
import { scanPrefix } from '../../src/store/paged.js';
import type { Store } from '../../src/store/store.js';
import { writeLeases } from '../support/bulk-leases.js';
import { type EtcdProcess, startEtcd } from '../support/etcd.js';
import { bootstrap, type ServerProcess, startServer } from './vault-server.js';

const TENANT = 'bulk';
const BULK = 3_000;
const OTHER = 300;

describe.each([
  { maxTxnOps: 128, perTxn: 24 },
  { maxTxnOps: 1024, perTxn: 203 },
])('bulk revocation killed part way, $maxTxnOps operations per transaction', ({ maxTxnOps, perTxn }) => {
  let etcd: EtcdProcess;
  let dir: string;
  let server: ServerProcess | undefined;
  let store: Store;
  let token: string;
  let args: string[];

  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${server!.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  /** Leases of a credential by state, from the credential index the revocation walks. */
  async function states(credential: string): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for await (const kv of scanPrefix(store, leaseIndex.byCredential(TENANT, credential))) {
      const state = parseEntry(kv.value).s;
      out[state] = (out[state] ?? 0) + 1;
    }
    return out;
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vault-bulk-revoke-'));
    etcd = await startEtcd(maxTxnOps === 128 ? {} : { maxTxnOps });
    const rootKeyFile = join(dir, 'root.key');
    writeFileSync(rootKeyFile, randomBytes(32), { mode: 0o600 });
    ({ token } = await bootstrap({ store: 'etcd', etcdEndpoints: [etcd.endpoint], rootKeyFile }, TENANT));
    args = ['--store', 'etcd', '--etcd-endpoints', etcd.endpoint, '--root-key-file', rootKeyFile];
    if (maxTxnOps !== 128) args.push('--etcd-max-txn-ops', String(maxTxnOps));
    args.push('--audit-log', 'none', '--no-ui');
    server = await startServer(args);
    for (const name of ['doomed', 'kept']) {
      expect((await call('POST', '/v1/credentials', { name, type: 'generic', value: 'v' })).status).toBe(201);
    }
    const issued = await call('POST', '/v1/leases', { credentialName: 'doomed', ttl: '1h' });
    expect(issued.status).toBe(201);
    await server.stop();
    server = undefined;
    store = await openEtcdStore({ endpoints: [etcd.endpoint], timeoutMs: 30_000 });
    const template = JSON.parse(
      (await store.get(keys.lease(TENANT, issued.body.id as string)))!.value,
    ) as LeaseRecord;
    await writeLeases(store, TENANT, template, 'doomed', BULK - 1);
    await writeLeases(store, TENANT, template, 'kept', OTHER);
  }, 180_000);

  afterAll(async () => {
    await server?.kill();
    await store?.close();
    await etcd?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('finishes when run again: every lease of the credential revoked, no other, the chain intact', async () => {
    expect(await states('doomed')).toEqual({ active: BULK });
    server = await startServer(args);
    const first = call('POST', '/v1/leases/revoke', { credentialName: 'doomed' }).catch(
      (err: Error) => err.message,
    );
    // Kill it once some are revoked and before all are.
    let before = 0;
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      // Revoked leases have a key under `revoked/`: counted without reading them.
      before = await store.count(leaseIndex.revoked(TENANT));
      if (before >= 100) break;
    }
    await server.kill();
    await first;
    const afterKill = await states('doomed');
    expect(afterKill.revoked).toBeGreaterThanOrEqual(before);
    expect(
      afterKill.active,
      'killed before it finished: raise BULK if this machine is that fast',
    ).toBeGreaterThan(0);
    expect((afterKill.active ?? 0) + (afterKill.revoked ?? 0)).toBe(BULK);

    server = await startServer(args);
    const again = await call('POST', '/v1/leases/revoke', { credentialName: 'doomed' });
    expect(again.status).toBe(200);
    expect(again.body.revoked).toBe(afterKill.active);
    expect(await states('doomed')).toEqual({ revoked: BULK });
    expect(await states('kept')).toEqual({ active: OTHER });
    // Every record agrees with its index entry.
    for await (const kv of scanPrefix(store, leaseIndex.byCredential(TENANT, 'doomed'))) {
      const record = await store.get(keys.lease(TENANT, leaseIndex.idOf(kv.key)));
      expect((JSON.parse(record!.value) as LeaseRecord).state).toBe('revoked');
    }
    // Each transaction's audit record counts its leases: chunks as large as the limit allows.
    const audited = await call('GET', '/v1/audit?action=lease.revoke-bulk&limit=1000');
    const sizes = (audited.body.records as AuditRecord[]).map((r) =>
      Number(/^(\d+) leases revoked/.exec(r.reason ?? '')?.[1]),
    );
    expect(Math.max(...sizes.filter(Number.isFinite))).toBe(perTxn);
    const verified = await call('GET', '/v1/audit/verify');
    expect(verified.status).toBe(200);
    expect(verified.body.ok, JSON.stringify(verified.body)).toBe(true);
  }, 300_000);
});
