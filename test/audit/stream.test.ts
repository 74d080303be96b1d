/**
 * The audit stream follows the chain: every record committed to the store reaches the
 * JSON-lines file, including records whose transaction committed after the request timed
 * out during an etcd outage (the committer never saw them succeed), and records written by
 * another process while this one was down.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AuditFollower, createAuditFollower } from '../../src/core/audit-follower.js';
import { createVaultCore, type VaultCore } from '../../src/core/index.js';
import { keys, sealedPrefixes } from '../../src/core/keys.js';
import { createKeyring } from '../../src/crypto/keyring.js';
import { localRootKey } from '../../src/crypto/root-key.js';
import { silentLogger } from '../../src/lib/logger.js';
import { createApp } from '../../src/server/app.js';
import { fileCursorStore, fileStreamOutput } from '../../src/server/audit-stream.js';
import { openEtcdStore } from '../../src/store/etcd-store.js';
import type { Store } from '../../src/store/store.js';
import { type EtcdProcess, startEtcd } from '../support/etcd.js';
import { mintRootToken } from './harness.js';

const TENANT = 'acme';

interface StreamedVault {
  url: string;
  core: VaultCore;
  stream: AuditFollower;
  close(): Promise<void>;
}

async function startStreamed(store: Store, rootKey: Buffer, file: string): Promise<StreamedVault> {
  const stream = createAuditFollower({
    store,
    output: await fileStreamOutput(file),
    cursor: fileCursorStore(`${file}.cursor`),
    logger: silentLogger,
    pollMs: 200,
    startAt: 'beginning',
  });
  const keyring = createKeyring({
    store,
    roots: [localRootKey(rootKey)],
    sealedPrefixes,
    logger: silentLogger,
  });
  const core = createVaultCore({
    store,
    keyring,
    logger: silentLogger,
    auditSink: stream,
    config: { autoCreateTenants: true },
  });
  await stream.start();
  const { app } = createApp({
    core,
    keyring,
    logger: silentLogger,
    config: { authFailuresPerMinute: 10_000 },
  });
  const server = createServer(app);
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    core,
    stream,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((done) => server.close(() => done()));
      await stream.close();
    },
  };
}

/** Record seqs of the tenant in the stream file (each once, whatever was repeated). */
const streamedSeqs = (file: string, tenant = TENANT) =>
  new Set(
    readFileSync(file, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line))
      .filter((line) => line.tenant === tenant && typeof line.seq === 'number')
      .map((line) => line.seq as number),
  );

async function storedSeqs(store: Store, tenant = TENANT): Promise<number[]> {
  const seqs: number[] = [];
  let startAfter: string | undefined;
  for (;;) {
    const page = await store.range(keys.auditRecords(tenant), {
      limit: 1000,
      ...(startAfter ? { startAfter } : {}),
    });
    seqs.push(...page.kvs.map((kv) => JSON.parse(kv.value).seq as number));
    if (!page.more) return seqs;
    startAfter = page.kvs.at(-1)!.key;
  }
}

describe('the audit stream follows the chain (etcd)', () => {
  let etcd: EtcdProcess;
  let store: Store;
  let work: string;
  const rootKey = randomBytes(32);

  beforeAll(async () => {
    etcd = await startEtcd();
    store = await openEtcdStore({ endpoints: [etcd.endpoint], timeoutMs: 1000 });
    work = mkdtempSync(join(tmpdir(), 'vault-stream-'));
  }, 60_000);
  afterAll(async () => {
    await store?.close();
    await etcd?.destroy();
    rmSync(work, { recursive: true, force: true });
  });

  it('has every record, also those committed while the server was down and after a timed-out request', async () => {
    const file = join(work, 'audit.log');
    // Records written by another process before the server streams anything (vault operator root-token).
    const first = await startStreamed(store, rootKey, join(work, 'unused.log'));
    const token = await mintRootToken(first.core, TENANT);
    await first.close();
    rmSync(join(work, 'unused.log.cursor'));

    const vault = await startStreamed(store, rootKey, file);
    const post = async (path: string, body: unknown) => {
      const res = await fetch(`${vault.url}${path}`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          'x-vault-tenant': TENANT,
        },
        body: JSON.stringify(body),
      });
      return res.status;
    };
    expect(await post('/v1/credentials', { name: 'db', type: 'password', value: 'pw' })).toBe(201);

    // Lease bursts with etcd frozen in the middle: transactions already sent time out for the
    // client (503) and commit when etcd resumes.
    let acknowledged = 0;
    let late = 0;
    // A late commit needs a transaction etcd had taken up before it froze (one it had not yet
    // read is cancelled on resume): luck of timing, so try until one happens (on a busy CI
    // machine six tries were once not enough).
    for (let attempt = 0; attempt < 20 && late === 0; attempt++) {
      const statuses: number[] = [];
      let stop = false;
      const worker = async () => {
        while (!stop) statuses.push(await post('/v1/leases', { credentialName: 'db', ttl: '1h' }));
      };
      const workers = Array.from({ length: 8 }, worker);
      await new Promise((done) => setTimeout(done, 300 + attempt * 37));
      await etcd.pause();
      await new Promise((done) => setTimeout(done, 1500));
      await etcd.resume();
      await new Promise((done) => setTimeout(done, 300));
      stop = true;
      await Promise.all(workers);
      acknowledged += statuses.filter((s) => s === 201).length;
      const leaseRecords = (await store.range(keys.leases(TENANT))).kvs.length;
      late = leaseRecords - acknowledged;
    }
    console.info(
      `etcd outage: ${acknowledged} leases acknowledged, ${late} committed after the request timed out`,
    );
    expect(late).toBeGreaterThan(0);

    await vault.stream.catchUp();
    const stored = await storedSeqs(store);
    const streamed = streamedSeqs(file);
    expect(stored.filter((seq) => !streamed.has(seq))).toEqual([]);
    expect(stored.length).toBeGreaterThan(acknowledged);
    // The records written before this server started (the token mint) are there too.
    expect(streamed.has(1)).toBe(true);
    await vault.close();
  }, 180_000);
});
