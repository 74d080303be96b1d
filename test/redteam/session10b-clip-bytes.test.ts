import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../src/core/keys.js';
import { type Replicas, startReplicas } from './session10-replicas.js';

// Red team, session 10b: clipping counts characters, etcd counts bytes.
//
// The committer clips a record's reason to 2,048 characters and its resource to 512 "so a record
// stays under about 4 KB and a page of records (the readers' 500, a catch-up's 128) under etcd's
// 4 MiB answer limit". But a record is stored as JSON: a control character (U+0001) is written
// as `\u0001`, six bytes, and a character of U+0800..U+FFFF as three UTF-8 bytes. A lease holder
// controls `path` (1,024 characters, any character) and `reason` (512) of `POST
// /v1/leases/:id/use` with `outcome: "denied"` (only recorded, never refused for being odd), so
// every such record is ~9.5 KB, and 500 of them are > 4 MiB: the audit readers' page of 500
// (GET /v1/audit, verify, lookup, the checkpointer) fails for the whole tenant, for good (the
// records are immutable).
//
// Fix: clip by the bytes of the record's JSON encoding (e.g. Buffer.byteLength(JSON.stringify(x))),
// not by string length; or page the readers by bytes (a page ends at ~1 MiB), or refuse control
// characters in `path`/`reason` at the contract.

const RECORDS = 520;

describe('audit records clipped by characters, not bytes', () => {
  let cluster: Replicas;
  let leaseId: string;
  let holderToken: string;

  beforeAll(async () => {
    cluster = await startReplicas(1);
    const vault = cluster.replicas[0]!.vault;
    expect(
      (
        await vault.call('POST', '/v1/credentials', {
          body: { name: 'api', type: 'api-key', value: 'sk-1', metadata: { team: 'ml' } },
        })
      ).status,
    ).toBe(201);
    await vault.call('PUT', '/v1/policies/holder', {
      body: { rules: [{ credentials: ['api'], actions: ['list', 'read-metadata', 'lease'], maxTtl: '1h' }] },
    });
    holderToken = await vault.tokenFor({ type: 'workload', name: 'job' }, ['holder']);
    const lease = await vault.call('POST', '/v1/leases', {
      token: holderToken,
      body: { credentialName: 'api', ttl: '30m' },
    });
    expect(lease.status).toBe(201);
    leaseId = lease.body.id;
  }, 60_000);
  afterAll(() => cluster?.close());

  it(`a lease holder's ${RECORDS} denied uses keep GET /v1/audit and verify working`, async () => {
    const vault = cluster.replicas[0]!.vault;
    const body = {
      outcome: 'denied',
      purpose: 'broker',
      method: 'GET',
      host: 'api.example.com',
      path: `/${'\u0001'.repeat(1023)}`,
      reason: '\u0001'.repeat(512),
    };
    let sent = 0;
    const statuses = new Map<number, number>();
    const worker = async () => {
      while (sent < RECORDS) {
        sent += 1;
        const res = await vault.call('POST', `/v1/leases/${leaseId}/use`, { token: holderToken, body });
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    expect(statuses.get(200), `use answers: ${JSON.stringify([...statuses])}`).toBe(RECORDS);

    // How large one stored record is.
    const { kvs } = await cluster.replicas[0]!.raw.range(keys.auditRecords(vault.tenant), {
      startAfter: keys.auditRecord(vault.tenant, 20),
      limit: 1,
    });
    const bytes = Buffer.byteLength(kvs[0]!.value);
    expect(bytes).toBeGreaterThan(8_400); // 500 of these > 4 MiB

    const answers = {
      query: await vault.call('GET', '/v1/audit?limit=10'),
      verify: await vault.call('POST', '/v1/audit/verify', { body: {} }),
      lookup: await vault.call('POST', '/v1/audit/lookup', { body: { value: 'sk-1' } }),
      checkpoint: await vault.call('POST', '/v1/audit/checkpoints', { body: {} }),
    };
    const failed = Object.entries(answers)
      .filter(([, res]) => res.status !== 200 && res.status !== 201)
      .map(([name, res]) => `${name}: ${res.status} ${res.text.slice(0, 200)}`);
    expect(
      failed,
      `after ${RECORDS} records of ${bytes} bytes each (a reader's page of 500 > 4 MiB), audit reads fail`,
    ).toEqual([]);
  }, 55_000);
});
