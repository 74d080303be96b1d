/**
 * `kill -9` of `vault server` in the middle of a burst of lease creations, on etcd and on
 * the embedded store: every lease the server acknowledged with 201 must exist after a
 * restart, with its audit record, and the audit chain must still verify. Leases whose
 * requests were cut off may or may not exist, but none may exist without its audit record.
 * The JSON-lines audit stream (--audit-log FILE) must hold every committed record after the
 * restarted server caught up, including those written before the server first started.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateRootKeyFile } from '../../src/crypto/root-key.js';
import { jsonClient } from '../bench/http-client.js';
import { type EtcdProcess, startEtcd } from '../support/etcd.js';
import { type Bootstrap, bootstrap, rootTokenCli, type ServerProcess, startServer } from './vault-server.js';

const BURST = 300;
const CONCURRENCY = 8;
/** Kill once this many leases were acknowledged: well inside the burst, so requests are in flight. */
const KILL_AFTER = 100;

interface BurstResult {
  acknowledged: string[];
  /** Requests that got no answer (cut off by the kill): their outcome is unknown. */
  cutOff: number;
  /** Answers other than 201 before the kill: there should be none. */
  unexpected: string[];
}

async function burstAndKill(server: ServerProcess, auth: Bootstrap): Promise<BurstResult> {
  const client = jsonClient(server.url, { token: auth.token, maxSockets: CONCURRENCY });
  const result: BurstResult = { acknowledged: [], cutOff: 0, unexpected: [] };
  let next = 0;
  let killing: Promise<void> | undefined;
  const worker = async () => {
    while (next < BURST) {
      next += 1;
      try {
        const res = await client.request('POST', '/v1/leases', {
          credentialName: auth.credentialName,
          ttl: '1h',
        });
        const id = (res.body as { id?: string } | undefined)?.id;
        if (res.status === 201 && id) result.acknowledged.push(id);
        else result.unexpected.push(`${res.status} ${JSON.stringify(res.body)}`);
      } catch {
        // The connection died with the server: this request's outcome is unknown.
        result.cutOff += 1;
        return;
      }
      if (result.acknowledged.length >= KILL_AFTER && !killing) killing = server.kill();
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  await killing;
  client.close();
  return result;
}

async function getJson(url: string, token: string) {
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** Every audit record of the tenant, paged by sequence number. */
async function allAuditRecords(url: string, token: string) {
  const records: Array<{ seq: number; action: string; resource: string; outcome: string }> = [];
  for (;;) {
    const after = records.at(-1)?.seq ?? 0;
    const { status, body } = await getJson(`${url}/v1/audit?afterSeq=${after}&limit=1000`, token);
    expect(status, JSON.stringify(body)).toBe(200);
    const page = body.records as typeof records;
    if (page.length === 0) return records;
    records.push(...page);
  }
}

/** Waits until the stream file holds every record seq the API lists, or returns what is missing. */
async function missingFromStream(file: string, seqs: number[]): Promise<number[]> {
  let missing: number[] = seqs;
  for (let i = 0; i < 60; i++) {
    const streamed = new Set(
      readFileSync(file, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as { seq?: number; tenant?: string })
        .filter((line) => line.tenant === 'crash' && typeof line.seq === 'number')
        .map((line) => line.seq),
    );
    missing = seqs.filter((seq) => !streamed.has(seq));
    if (missing.length === 0) return [];
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return missing;
}

async function checkAfterRestart(
  server: ServerProcess,
  auth: Bootstrap,
  burst: BurstResult,
  auditLog: string,
) {
  // Every acknowledged lease survived, as issued.
  for (const id of burst.acknowledged) {
    const { status, body } = await getJson(`${server.url}/v1/leases/${id}`, auth.token);
    expect(status, `lease ${id} was acknowledged but is gone: ${JSON.stringify(body)}`).toBe(200);
    expect(body).toMatchObject({ id, credentialName: auth.credentialName, state: 'active' });
  }

  const verify = await getJson(`${server.url}/v1/audit/verify`, auth.token);
  expect(verify.status).toBe(200);
  expect(verify.body, JSON.stringify(verify.body)).toMatchObject({ ok: true });

  const records = await allAuditRecords(server.url, auth.token);
  expect(records.map((record) => record.seq)).toEqual(records.map((_, index) => index + 1));
  const audited = new Set(
    records
      .filter((record) => record.action === 'lease.create' && record.outcome === 'allowed')
      .map((record) => record.resource),
  );
  for (const id of burst.acknowledged) expect(audited, `no audit record for ${id}`).toContain(`lease/${id}`);

  // No lease exists without its audit record, acknowledged or not (a cut-off request may have committed).
  const listed = await getJson(`${server.url}/v1/leases?limit=1000`, auth.token);
  expect(listed.status).toBe(200);
  const ids = (listed.body.leases as Array<{ id: string }>).map((lease) => lease.id);
  expect(ids.length).toBeGreaterThanOrEqual(burst.acknowledged.length);
  expect(ids.length).toBeLessThanOrEqual(burst.acknowledged.length + burst.cutOff);
  for (const id of ids)
    expect(audited, `lease ${id} exists without an audit record`).toContain(`lease/${id}`);
  expect(audited.size).toBe(ids.length);

  // The stream has every committed record: those the killed server never streamed, those
  // written before any server ran (the bootstrap's token mint) and while none ran
  // (`vault operator root-token`) included.
  // The token minted while no server ran is recorded after every lease of the burst.
  const lastLease = Math.max(...records.filter((r) => r.action === 'lease.create').map((r) => r.seq));
  expect(records.some((record) => record.action === 'token.create' && record.seq > lastLease)).toBe(true);
  const missing = await missingFromStream(
    auditLog,
    records.map((record) => record.seq),
  );
  expect(missing, `records committed but never streamed: ${missing.join(', ')}`).toEqual([]);
}

function describeCrash(
  name: string,
  setup: (base: string) => Promise<{ storeArgs: string[]; configInput: Record<string, unknown> }>,
) {
  describe(`kill -9 during a burst of lease creations (${name})`, () => {
    let base: string;
    let storeArgs: string[];
    let auth: Bootstrap;
    let auditLog: string;
    const servers: ServerProcess[] = [];

    beforeAll(async () => {
      base = mkdtempSync(join(tmpdir(), 'vault-crash-'));
      const rootKeyFile = join(base, 'root.key');
      await generateRootKeyFile(rootKeyFile);
      const store = await setup(base);
      auditLog = join(base, 'audit.log');
      storeArgs = [...store.storeArgs, '--root-key-file', rootKeyFile, '--audit-log', auditLog];
      auth = await bootstrap({ ...store.configInput, rootKeyFile }, 'crash');
    });

    afterAll(async () => {
      for (const server of servers) await server.kill();
      rmSync(base, { recursive: true, force: true });
    });

    it('keeps every acknowledged lease and its audit record, and the chain verifies', async () => {
      const first = await startServer(storeArgs);
      servers.push(first);
      const burst = await burstAndKill(first, auth);
      console.info(
        `${name}: ${burst.acknowledged.length} acknowledged, ${burst.cutOff} cut off by kill -9 (of ${BURST})`,
      );
      expect(burst.unexpected).toEqual([]);
      expect(burst.acknowledged.length).toBeGreaterThanOrEqual(KILL_AFTER);
      // The kill landed mid-burst: some requests were cut off rather than all completing.
      expect(burst.acknowledged.length).toBeLessThan(BURST);

      // While no server runs, an operator mints a token in the store: its records must reach
      // the stream when the server starts again.
      const minted = await rootTokenCli(storeArgs.slice(0, storeArgs.indexOf('--audit-log')), 'crash');
      expect(minted.code, minted.stderr).toBe(0);

      const second = await startServer(storeArgs);
      servers.push(second);
      await checkAfterRestart(second, auth, burst, auditLog);

      // The restarted server keeps issuing on the same chain.
      const res = await fetch(`${second.url}/v1/leases`, {
        method: 'POST',
        headers: { authorization: `Bearer ${auth.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ credentialName: auth.credentialName, ttl: '1h' }),
      });
      expect(res.status).toBe(201);
      const verify = await getJson(`${second.url}/v1/audit/verify`, auth.token);
      expect(verify.body).toMatchObject({ ok: true });
      await second.stop();
    }, 180_000);
  });
}

let etcd: EtcdProcess | undefined;
afterAll(async () => {
  await etcd?.destroy();
});

describeCrash('etcd', async () => {
  etcd = await startEtcd();
  return {
    storeArgs: ['--store', 'etcd', '--etcd-endpoints', etcd.endpoint],
    configInput: { store: 'etcd', etcdEndpoints: [etcd.endpoint] },
  };
});

describeCrash('embedded', async (base) => {
  const dataDir = join(base, 'store');
  return {
    storeArgs: ['--store', 'embedded', '--data-dir', dataDir],
    configInput: { store: 'embedded', dataDir },
  };
});
