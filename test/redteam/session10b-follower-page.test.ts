import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AuditFollower, createAuditFollower } from '../../src/core/audit-follower.js';
import { keys } from '../../src/core/keys.js';
import { createLogger } from '../../src/lib/logger.js';
import { fileCursorStore, fileStreamOutput } from '../../src/server/audit-stream.js';
import { type Replicas, startReplicas } from './session10-replicas.js';

// Red team, session 10b: the audit stream follower pages 1,000 records; clipped records are not
// 4 KB.
//
// The committer clips reasons "so a record stays under about 4 KB", and the readers were cut to
// pages of 500 for etcd's 4 MiB answer limit, but the stream follower (audit-follower.ts) still
// reads PAGE = 1,000 records at a time, and a clipped record is not 4 KB: without any control
// character, a lease holder's `POST /v1/leases/:id/use` with a path of 1,024 and a reason of 512
// CJK characters (3 UTF-8 bytes each) makes a ~5 KB record. After 1,000 of them, a follower that
// reads them back (another replica holds the stream's claim, a restart, `--audit-cursor store`
// hand-over) asks for 5 MB in one answer and fails, on every poll: the SIEM stream of the tenant
// stops for good.
//
// Fix: page the follower like the readers (and by bytes, not by count), and clip by encoded bytes.

describe('the audit stream follower reads back large clipped records', () => {
  let cluster: Replicas;
  let dir: string;
  let stream: AuditFollower | undefined;

  beforeAll(async () => {
    cluster = await startReplicas(1);
    dir = mkdtempSync(join(tmpdir(), 'vault-s10b-stream-'));
  }, 60_000);
  afterAll(async () => {
    await stream?.close().catch(() => undefined);
    await cluster?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('1,050 lease uses with CJK paths reach the stream of a follower that reads them back', async () => {
    const vault = cluster.replicas[0]!.vault;
    expect(
      (await vault.call('POST', '/v1/credentials', { body: { name: 'api', type: 'api-key', value: 'sk-1' } }))
        .status,
    ).toBe(201);
    await vault.call('PUT', '/v1/policies/holder', {
      body: { rules: [{ credentials: ['api'], actions: ['list', 'read-metadata', 'lease'], maxTtl: '1h' }] },
    });
    const holder = await vault.tokenFor({ type: 'workload', name: 'job' }, ['holder']);
    const lease = await vault.call('POST', '/v1/leases', {
      token: holder,
      body: { credentialName: 'api', ttl: '30m' },
    });
    expect(lease.status).toBe(201);
    const body = {
      outcome: 'denied',
      purpose: 'broker',
      method: 'GET',
      host: 'api.example.com',
      path: `/${'路'.repeat(1023)}`,
      reason: '拒'.repeat(512),
    };
    let sent = 0;
    let failed = 0;
    const worker = async () => {
      while (sent < 1_050) {
        sent += 1;
        const res = await vault.call('POST', `/v1/leases/${lease.body.id}/use`, { token: holder, body });
        if (res.status !== 200) failed += 1;
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    expect(failed).toBe(0);
    const { kvs } = await cluster.replicas[0]!.raw.range(keys.auditRecords(vault.tenant), {
      startAfter: keys.auditRecord(vault.tenant, 100),
      limit: 1,
    });
    const bytes = Buffer.byteLength(kvs[0]!.value);

    // A follower that reads the records back from the store (it did not commit them).
    const file = join(dir, 'audit.jsonl');
    const logs = new PassThrough();
    let logged = '';
    logs.on('data', (chunk: Buffer) => {
      logged += chunk.toString('utf8');
    });
    stream = createAuditFollower({
      store: cluster.replicas[0]!.raw,
      output: await fileStreamOutput(file),
      cursor: fileCursorStore(`${file}.cursor`),
      logger: createLogger({ level: 'warn', destination: logs }),
      pollMs: 200,
      startAt: 'beginning',
    });
    await stream.start().catch(() => undefined);
    const caught = await Promise.race([
      stream.catchUp().then(
        () => 'caught up',
        (err: Error) => err.message,
      ),
      new Promise<string>((resolve) => setTimeout(() => resolve('no progress in 10 s'), 10_000)),
    ]);
    const head = JSON.parse((await cluster.replicas[0]!.raw.get(keys.auditHead(vault.tenant)))!.value).seq;
    const streamed = readFileSync(file, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line))
      .filter((line) => line.tenant === vault.tenant && typeof line.seq === 'number').length;
    expect(
      streamed,
      `records of ${bytes} bytes: the follower streamed ${streamed} of ${head} records (${caught}; its log: ${logged.split('\n')[0]?.slice(0, 300)})`,
    ).toBeGreaterThanOrEqual(head);
  }, 58_000);
});
