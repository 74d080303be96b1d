/**
 * The audit stream with several API replicas on one real etcd, as the Helm chart runs them:
 * every `vault server` writes `--audit-log stdout` with `--audit-cursor store:siem`, so the
 * stream has exactly one writer at a time (the replica holding the stream's claim) and a
 * cursor in the store that any replica continues from.
 *
 * Proven here: only one replica writes; `kill -9` of the writer mid-burst hands the stream
 * to a survivor, and the stdouts of all replicas together hold every committed record; with
 * every replica killed, records written meanwhile by `vault operator root-token` reach the
 * stream when one replica starts again; a clean shutdown hands over without waiting.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StreamClaimLostError, storeCursorStore } from '../../src/core/audit-stream-claim.js';
import { keys } from '../../src/core/keys.js';
import { generateRootKeyFile } from '../../src/crypto/root-key.js';
import { openEtcdStore } from '../../src/store/etcd-store.js';
import type { Store } from '../../src/store/store.js';
import { jsonClient } from '../bench/http-client.js';
import { rootTokenCli, type ServerProcess, startServer } from '../crash/vault-server.js';
import { type EtcdProcess, startEtcd } from '../support/etcd.js';

const TTL = '2s';

let etcd: EtcdProcess;
let store: Store;
let base: string;
let rootKeyFile: string;
const servers: ServerProcess[] = [];

beforeAll(async () => {
  etcd = await startEtcd();
  store = await openEtcdStore({ endpoints: [etcd.endpoint], timeoutMs: 5_000 });
  base = mkdtempSync(join(tmpdir(), 'vault-stream-replicas-'));
  rootKeyFile = join(base, 'root.key');
  await generateRootKeyFile(rootKeyFile);
}, 60_000);

afterAll(async () => {
  for (const server of servers) await server.kill();
  await store?.close();
  await etcd?.destroy();
  rmSync(base, { recursive: true, force: true });
});

const storeArgs = () => [
  '--store',
  'etcd',
  '--etcd-endpoints',
  etcd.endpoint,
  '--root-key-file',
  rootKeyFile,
];

/** `vault operator root-token`, run as an operator does (no server needed). */
async function rootToken(tenant: string): Promise<string> {
  const run = await rootTokenCli([...storeArgs(), '--ttl', '2h'], tenant);
  if (run.code !== 0) throw new Error(`root-token exited ${run.code}: ${run.stderr}`);
  return run.token;
}

async function replica(ttl = TTL): Promise<ServerProcess> {
  const server = await startServer([
    ...storeArgs(),
    '--audit-log',
    'stdout',
    '--audit-cursor',
    'store:siem',
    '--audit-stream-ttl',
    ttl,
  ]);
  servers.push(server);
  return server;
}

interface Line {
  tenant?: string;
  seq?: number;
  checkpoint?: unknown;
  malformed?: unknown;
}
const lines = (server: ServerProcess): Line[] =>
  server
    .stdout()
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Line);

/** `tenant/seq` of every record in the stdouts of `from`. */
const streamed = (from: ServerProcess[]) =>
  new Set(
    from.flatMap((server) =>
      lines(server)
        .filter((line) => typeof line.seq === 'number')
        .map((line) => `${line.tenant}/${line.seq}`),
    ),
  );

/** `tenant/seq` of every record in the store. */
async function stored(): Promise<string[]> {
  const tenants = (await store.range(keys.tenants())).kvs.map((kv) => kv.key.slice(keys.tenants().length));
  const all: string[] = [];
  for (const tenant of tenants) {
    let startAfter: string | undefined;
    for (;;) {
      const page = await store.range(keys.auditRecords(tenant), {
        limit: 1000,
        ...(startAfter ? { startAfter } : {}),
      });
      all.push(...page.kvs.map((kv) => `${tenant}/${JSON.parse(kv.value).seq}`));
      if (!page.more) break;
      startAfter = page.kvs.at(-1)!.key;
    }
  }
  return all;
}

/** Waits until the stdouts of `from` hold every stored record; returns what is still missing. */
async function missing(from: ServerProcess[], timeoutMs = 20_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const have = streamed(from);
    const absent = (await stored()).filter((record) => !have.has(record));
    if (absent.length === 0 || Date.now() > deadline) return absent;
    await new Promise((done) => setTimeout(done, 250));
  }
}

const writers = (from: ServerProcess[]) => from.filter((server) => lines(server).length > 0);

describe('the audit stream with several API replicas on one etcd', () => {
  it('one replica writes; kill -9 of it, or of all, loses nothing; records written while all are down arrive', async () => {
    // Written before any server ran.
    const token = await rootToken('acme');
    const replicas = await Promise.all([replica(), replica(), replica()]);
    expect(await missing(replicas), 'the bootstrap records reach the stream').toEqual([]);
    // Exactly one writer: the others stand by (they have written nothing at all).
    expect(writers(replicas)).toHaveLength(1);
    const [first] = writers(replicas);

    const clients = replicas.map((server) => jsonClient(server.url, { token, maxSockets: 4 }));
    const created = await clients[0]!.request('POST', '/v1/credentials', {
      name: 'db',
      type: 'password',
      value: 'stream-replicas-pw',
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);

    // A burst spread over the replicas; the writer is killed in the middle of it.
    let acknowledged = 0;
    let cutOff = 0;
    let killed: Promise<void> | undefined;
    const worker = async (index: number) => {
      for (let i = 0; i < 60; i++) {
        const target = (index + i) % replicas.length;
        if (replicas[target] === first && killed) continue;
        try {
          const res = await clients[target]!.request('POST', '/v1/leases', {
            credentialName: 'db',
            ttl: '1h',
          });
          if (res.status === 201) acknowledged += 1;
        } catch {
          cutOff += 1;
        }
        if (acknowledged >= 40 && !killed) killed = first!.kill();
      }
    };
    await Promise.all(Array.from({ length: 6 }, (_, index) => worker(index)));
    await killed;
    console.info(`replicas: ${acknowledged} leases acknowledged, ${cutOff} cut off by kill -9 of the writer`);
    expect(killed).toBeDefined();

    // A survivor took the stream over from the saved cursor (after the claim's time-to-live).
    const survivors = replicas.filter((server) => server !== first);
    expect(await missing(replicas), 'records committed but in no replica stdout').toEqual([]);
    expect(writers(survivors)).toHaveLength(1);

    // Every replica killed; `vault operator root-token` writes meanwhile (a new tenant too).
    for (const server of survivors) await server.kill();
    await Promise.all([rootToken('acme'), rootToken('newcomer')]);
    // Two replicas start; the one with a long time-to-live cannot take the dead writer's claim,
    // so the other writes, and the hand-over below can only come from its release.
    const [writer, standby] = await Promise.all([replica(), replica('10m')]);
    const restarted = [writer!, standby!];
    const everyone = [...replicas, ...restarted];
    expect(await missing(everyone), 'records written while every replica was down').toEqual([]);
    expect(writers(restarted), 'the restarted replica writes').toEqual([writer]);
    expect(lines(writer!).some((line) => line.tenant === 'newcomer')).toBe(true);
    expect(everyone.flatMap(lines).filter((line) => line.malformed)).toEqual([]);
    for (const client of clients) client.close();

    // A clean shutdown releases the claim: the standby takes over at its next check (2 s),
    // not after the time-to-live (10 minutes).
    await writer!.stop();
    const more = jsonClient(standby!.url, { token, maxSockets: 1 });
    const lease = await more.request('POST', '/v1/leases', { credentialName: 'db', ttl: '1h' });
    expect(lease.status).toBe(201);
    more.close();
    expect(await missing(everyone)).toEqual([]);
    expect(lines(standby!).length).toBeGreaterThan(0);
    await standby!.stop();
  }, 420_000);
});

describe('the claim of a stream kept in the store', () => {
  it('has one holder; a silent holder is replaced after the time-to-live and its next save fails', async () => {
    let clock = 0;
    const now = () => clock;
    const a = storeCursorStore({ store, name: 'claim-test', ttlMs: 1000, holder: 'a', now });
    const b = storeCursorStore({ store, name: 'claim-test', ttlMs: 1000, holder: 'b', now });
    expect(await a.claim()).toBe(true);
    expect(await a.load()).toBeUndefined();
    await a.save({ tenants: { acme: { seq: 5, checkpointSeq: 0 } } });
    expect(await b.claim()).toBe(false);
    // a renews: b keeps waiting however long that goes on.
    clock += 800;
    expect(await a.claim()).toBe(true);
    clock += 800;
    expect(await b.claim()).toBe(false);
    // a falls silent for the time-to-live (as measured by b): b takes over at a's cursor.
    clock += 1000;
    expect(await b.claim()).toBe(true);
    expect(await b.load()).toEqual({ tenants: { acme: { seq: 5, checkpointSeq: 0 } } });
    // a wakes up: its save is refused (it steps down), its claim is gone.
    await expect(a.save({ tenants: { acme: { seq: 9, checkpointSeq: 0 } } })).rejects.toThrow(
      StreamClaimLostError,
    );
    expect(await a.claim()).toBe(false);
    expect(await b.load()).toEqual({ tenants: { acme: { seq: 5, checkpointSeq: 0 } } });
    // A release hands it over without waiting.
    await b.release();
    expect(await a.claim()).toBe(true);
    expect(await a.load()).toEqual({ tenants: { acme: { seq: 5, checkpointSeq: 0 } } });
  });

  it('refuses a stream name that is not a plain name', () => {
    expect(() => storeCursorStore({ store, name: '../x' })).toThrow(/letters, digits/);
  });
});
