/**
 * The tamper suite of issue 12. An attacker with write access to the store (not the root
 * key) edits a stopped Vault's store; the Vault starts again and `POST /v1/audit/verify`
 * with the latest checkpoint exported by `vault audit export` must answer 200 with
 * `ok: false` for every tampering, and `ok: true` for the untouched store. Runs on the
 * embedded store (a real SQLite file, copied while closed) and on a real etcd.
 */
import { randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditCheckpoint } from '../../src/contract/audit.js';
import { keyedHash, legacyHash } from '../../src/core/audit-chain.js';
import { keys } from '../../src/core/keys.js';
import { openStore } from '../../src/store/index.js';
import type { Store } from '../../src/store/store.js';
import { type EtcdProcess, startEtcd } from '../support/etcd.js';
import { mintRootToken, type RunningVault, runCli, runVault } from './harness.js';

const TENANT = 'acme';
const OTHER = 'other';

interface Backend {
  open(): Promise<Store>;
  save(): Promise<unknown>;
  restore(snapshot: unknown): Promise<void>;
  close(): Promise<void>;
}

// biome-ignore lint/suspicious/noExplicitAny: records are edited as loose JSON, as an attacker would
type Json = any;

/** What a tampering gets: the raw store and helpers for the tenant's audit keys. */
interface Tamper {
  store: Store;
  get(seq: number, tenant?: string): Promise<Json>;
  put(seq: number, value: Json, tenant?: string): Promise<void>;
  putRaw(key: string, value: string): Promise<void>;
  del(key: string): Promise<void>;
  head(tenant?: string): Promise<{ seq: number; hash: string }>;
  setHead(head: { seq: number; hash: string }, tenant?: string): Promise<void>;
  all(tenant?: string): Promise<Array<{ key: string; value: string }>>;
  latest: AuditCheckpoint;
  earlier: AuditCheckpoint;
}

const rk = (seq: number, tenant = TENANT) => keys.auditRecord(tenant, seq);

function tamperHelpers(store: Store, latest: AuditCheckpoint, earlier: AuditCheckpoint): Tamper {
  const self: Tamper = {
    store,
    latest,
    earlier,
    get: async (seq, tenant) => JSON.parse((await store.get(rk(seq, tenant)))!.value),
    put: async (seq, value, tenant) => self.putRaw(rk(seq, tenant), JSON.stringify(value)),
    putRaw: async (key, value) => {
      await store.txn({ success: [{ type: 'put', key, value }] });
    },
    del: async (key) => {
      await store.txn({ success: [{ type: 'delete', key }] });
    },
    head: async (tenant = TENANT) => JSON.parse((await store.get(keys.auditHead(tenant)))!.value),
    setHead: (head, tenant = TENANT) => self.putRaw(keys.auditHead(tenant), JSON.stringify(head)),
    all: async (tenant = TENANT) => (await store.range(keys.auditRecords(tenant))).kvs,
  };
  return self;
}

/** Re-links records from..head with `hash` (what an attacker without the key can do). */
async function relink(t: Tamper, from: number, hash: (record: Json) => string) {
  const { seq: last } = await t.head();
  let prev = from > 1 ? (await t.get(from - 1)).hash : '0'.repeat(64);
  for (let seq = from; seq <= last; seq++) {
    const record = await t.get(seq).catch(() => undefined);
    if (!record) continue;
    const { hash: _old, ...rest } = { ...record, prevHash: prev };
    const next = { ...rest, hash: hash(rest) };
    await t.put(seq, next);
    prev = next.hash;
  }
  await t.setHead({ seq: last, hash: prev });
}

const guessedKey = randomBytes(32);
const forged = (seq: number, prevHash: string, v?: 2) => ({
  seq,
  ...(v ? { v } : {}),
  time: new Date().toISOString(),
  requestId: 'forged',
  tenant: TENANT,
  actor: { type: 'human', name: 'root' },
  action: 'credential.delete',
  resource: 'credential/db',
  outcome: 'allowed',
  prevHash,
});

/** The 28 tamperings of issue 12, then rollback and deletion between checkpoints. */
/** Each case: a name, the tampering, and (where one record is hit) the position verify must name. */
const cases: Array<[string, (t: Tamper) => Promise<void>, number?]> = [
  ['edit a field of a record', async (t) => t.put(3, { ...(await t.get(3)), outcome: 'denied' }), 3],
  [
    'edit a record and re-hash it and everything after with plain SHA-256',
    async (t) => {
      await t.put(3, { ...(await t.get(3)), outcome: 'denied' });
      await relink(t, 3, (r) => legacyHash(r));
    },
  ],
  [
    'edit a record and re-link it and everything after with a guessed HMAC key',
    async (t) => {
      await t.put(3, { ...(await t.get(3)), actor: { type: 'human', name: 'someone-else' } });
      await relink(t, 3, (r) => keyedHash(guessedKey, r));
    },
  ],
  ['delete a record in the middle', async (t) => t.del(rk(5)), 5],
  ['delete the first record', async (t) => t.del(rk(1)), 1],
  ['delete the newest record (head left as it was)', async (t) => t.del(rk((await t.head()).seq))],
  [
    'delete the newest records together with the head',
    async (t) => {
      const { seq } = await t.head();
      for (let s = seq; s > seq - 3; s--) await t.del(rk(s));
      await t.del(keys.auditHead(TENANT));
    },
  ],
  [
    'delete the newest records and rewrite the head to the new last record',
    async (t) => {
      const { seq } = await t.head();
      for (let s = seq; s > t.latest.seq - 2; s--) await t.del(rk(s));
      const last = await t.get(t.latest.seq - 2);
      await t.setHead({ seq: last.seq, hash: last.hash });
    },
  ],
  ['delete the head only', async (t) => t.del(keys.auditHead(TENANT))],
  [
    'rewrite the head to an earlier record',
    async (t) => {
      const record = await t.get(4);
      await t.setHead({ seq: 4, hash: record.hash });
    },
  ],
  [
    'rewrite the head to a record that does not exist',
    async (t) => t.setHead({ seq: (await t.head()).seq + 5, hash: 'f'.repeat(64) }),
  ],
  [
    'swap two records',
    async (t) => {
      const [a, b] = [await t.get(2), await t.get(3)];
      await t.put(2, b);
      await t.put(3, a);
    },
    2,
  ],
  [
    'swap two records and their sequence numbers',
    async (t) => {
      const [a, b] = [await t.get(4), await t.get(5)];
      await t.put(4, { ...b, seq: 4 });
      await t.put(5, { ...a, seq: 5 });
    },
  ],
  ['replay a record over the next one', async (t) => t.put(3, { ...(await t.get(2)), seq: 3 }), 3],
  [
    'append a forged credential.delete with a correct SHA-256 hash',
    async (t) => {
      const head = await t.head();
      const record = forged(head.seq + 1, head.hash);
      const hash = legacyHash(record as Json);
      await t.put(head.seq + 1, { ...record, hash });
      await t.setHead({ seq: head.seq + 1, hash });
    },
  ],
  [
    'append a forged keyed credential.delete linked with a guessed key',
    async (t) => {
      const head = await t.head();
      const record = forged(head.seq + 1, head.hash, 2);
      const hash = keyedHash(guessedKey, record as Json);
      await t.put(head.seq + 1, { ...record, hash });
      await t.setHead({ seq: head.seq + 1, hash });
    },
  ],
  [
    'wipe every record and the head',
    async (t) => {
      await t.store.txn({ success: [{ type: 'deletePrefix', prefix: keys.auditRecords(TENANT) }] });
      await t.del(keys.auditHead(TENANT));
    },
  ],
  [
    'wipe every record, keep the head',
    async (t) => {
      await t.store.txn({ success: [{ type: 'deletePrefix', prefix: keys.auditRecords(TENANT) }] });
    },
  ],
  [
    'wipe records, head, audit key and stored checkpoint (the tenant looks new)',
    async (t) => {
      await t.store.txn({ success: [{ type: 'deletePrefix', prefix: keys.auditRecords(TENANT) }] });
      for (const key of [keys.auditHead(TENANT), keys.auditKeys(TENANT), keys.auditCheckpoint(TENANT)])
        await t.del(key);
    },
  ],
  [
    "splice in another tenant's chain",
    async (t) => {
      await t.store.txn({ success: [{ type: 'deletePrefix', prefix: keys.auditRecords(TENANT) }] });
      for (const kv of await t.all(OTHER))
        await t.putRaw(kv.key.replace(`/t/${OTHER}/`, `/t/${TENANT}/`), kv.value);
      await t.setHead(await t.head(OTHER));
    },
  ],
  ['change the tenant of a record', async (t) => t.put(2, { ...(await t.get(2)), tenant: OTHER }), 2],
  [
    'add an unhashed field to a record',
    async (t) => t.put(2, { ...(await t.get(2)), comment: 'approved by the CISO' }),
    2,
  ],
  ['make a record invalid JSON', async (t) => t.putRaw(rk(4), '{"seq":4,'), 4],
  ['make a record JSON null', async (t) => t.putRaw(rk(4), 'null'), 4],
  ['make the head invalid JSON', async (t) => t.putRaw(keys.auditHead(TENANT), 'not json')],
  ['make the head a JSON array', async (t) => t.putRaw(keys.auditHead(TENANT), '[1,2]')],
  [
    'delete one record between the two checkpoints (nothing renumbered)',
    async (t) => t.del(rk(t.earlier.seq + 2)),
  ],
  ['give a record a string sequence number', async (t) => t.put(3, { ...(await t.get(3)), seq: '3' }), 3],
  [
    'remove the link of a record',
    async (t) => {
      const { prevHash: _drop, ...rest } = await t.get(3);
      await t.put(3, rest);
    },
    3,
  ],
  ['delete the audit key', async (t) => t.del(keys.auditKeys(TENANT))],
  [
    "replace the audit key with another tenant's (sealed for that tenant)",
    async (t) => t.putRaw(keys.auditKeys(TENANT), (await t.store.get(keys.auditKeys(OTHER)))!.value),
  ],
  [
    'cut off everything after the earlier checkpoint (a consistent older log)',
    async (t) => {
      const { seq } = await t.head();
      for (let s = seq; s > t.earlier.seq; s--) await t.del(rk(s));
      await t.setHead({ seq: t.earlier.seq, hash: t.earlier.hash });
    },
  ],
  [
    'delete records between two checkpoints and renumber the rest',
    async (t) => {
      const { seq: last } = await t.head();
      const gap = 2;
      for (let s = t.earlier.seq + 1; s + gap <= last; s++)
        await t.put(s, { ...(await t.get(s + gap)), seq: s });
      for (let s = last; s > last - gap; s--) await t.del(rk(s));
      await t.setHead({ seq: last - gap, hash: (await t.get(last - gap)).hash });
      await relink(t, t.earlier.seq + 1, (r) => keyedHash(guessedKey, r));
    },
  ],
];

function describeTamper(name: string, makeBackend: () => Promise<Backend>) {
  describe(`audit tampering on a stopped Vault (${name})`, () => {
    const rootKey = randomBytes(32);
    let backend: Backend;
    let token: string;
    let latest: AuditCheckpoint;
    let earlier: AuditCheckpoint;
    let exportFile: string;
    let pristine: unknown;
    let rolledBack: unknown;
    let work: string;

    const session = async <T>(run: (vault: RunningVault, store: Store) => Promise<T>): Promise<T> => {
      const store = await backend.open();
      const vault = await runVault(store, rootKey);
      try {
        return await run(vault, store);
      } finally {
        await vault.close();
        await store.close();
      }
    };

    const exportTo = async (vault: RunningVault, file: string) => {
      const result = await runCli(['audit', 'export', '--output', file], {
        VAULT_ADDR: vault.url,
        VAULT_TOKEN: token,
        VAULT_TENANT: TENANT,
      });
      expect(result.code, result.stderr).toBe(0);
      const lines = readFileSync(file, 'utf8')
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line));
      return lines.at(-1).checkpoint as AuditCheckpoint;
    };

    const activity = async (vault: RunningVault, leases: number) => {
      for (let i = 0; i < leases; i++) {
        const res = await vault.call('POST', '/v1/leases', token, { credentialName: 'db', ttl: '1h' });
        expect(res.status, JSON.stringify(res.body)).toBe(201);
      }
    };

    beforeAll(async () => {
      work = mkdtempSync(join(tmpdir(), 'vault-tamper-'));
      backend = await makeBackend();
      await session(async (vault) => {
        token = await mintRootToken(vault.core, TENANT);
        const otherToken = await mintRootToken(vault.core, OTHER);
        for (const [tok, tenant] of [
          [token, TENANT],
          [otherToken, OTHER],
        ] as const) {
          const res = await vault.call(
            'POST',
            '/v1/credentials',
            tok,
            { name: 'db', type: 'password', value: `pw-${tenant}` },
            tenant,
          );
          expect(res.status, JSON.stringify(res.body)).toBe(201);
        }
        await vault.call('POST', '/v1/leases', otherToken, { credentialName: 'db', ttl: '1h' }, OTHER);
        await activity(vault, 6);
        earlier = await exportTo(vault, join(work, 'earlier.jsonl'));
      });
      rolledBack = await backend.save();
      await session(async (vault) => {
        await activity(vault, 6);
        exportFile = join(work, 'latest.jsonl');
        latest = await exportTo(vault, exportFile);
      });
      pristine = await backend.save();
      expect(latest.seq).toBeGreaterThan(earlier.seq + 4);
    }, 120_000);

    afterAll(async () => {
      await backend?.close();
      rmSync(work, { recursive: true, force: true });
    });

    const verifyAfter = async (tamper: ((t: Tamper) => Promise<void>) | undefined, from = pristine) => {
      await backend.restore(from);
      if (tamper) {
        const store = await backend.open();
        try {
          await tamper(tamperHelpers(store, latest, earlier));
        } finally {
          await store.close();
        }
      }
      return session(async (vault) => {
        const verified = await vault.call('POST', '/v1/audit/verify', token, { since: latest });
        const served = await vault.call('GET', '/v1/audit?limit=1000', token);
        const write = await vault.call('POST', '/v1/leases', token, { credentialName: 'db', ttl: '1h' });
        return { verified, served, write };
      });
    };

    it('an untouched store verifies against the latest exported checkpoint, also with the CLI', async () => {
      const { verified, write } = await verifyAfter(undefined);
      expect(verified.status).toBe(200);
      expect(verified.body, JSON.stringify(verified.body)).toMatchObject({ ok: true });
      expect(verified.body.checkpoint.seq).toBeGreaterThanOrEqual(latest.seq);
      expect(write.status).toBe(201);
      await session(async (vault) => {
        const env = { VAULT_ADDR: vault.url, VAULT_TOKEN: token, VAULT_TENANT: TENANT };
        const cli = await runCli(['audit', 'verify', '--since-checkpoint', exportFile], env);
        expect(cli.code, cli.stderr).toBe(0);
        expect(cli.stdout).toContain(`extends the checkpoint at ${latest.seq}`);
      });
    }, 60_000);

    it.each(cases)(
      'detects: %s',
      async (_name, tamper, position) => {
        const { verified, served } = await verifyAfter(tamper);
        expect(verified.status, JSON.stringify(verified.body)).toBe(200);
        expect(verified.body.ok, JSON.stringify(verified.body)).toBe(false);
        expect(verified.body.reason).toBeTruthy();
        if (position !== undefined) {
          expect(verified.body.brokenAt, JSON.stringify(verified.body)).toBe(position);
          expect(verified.body.reason).toContain(`record ${position}`);
        }
        expect(verified.body.checkpoint).toBeUndefined();
        expect(served.status).toBe(200);
        expect(JSON.stringify(served.body)).not.toContain('approved by the CISO');
      },
      60_000,
    );

    it('detects a rollback to a saved copy of the store', async () => {
      const { verified } = await verifyAfter(undefined, rolledBack);
      expect(verified.body).toMatchObject({ ok: false });
      expect(verified.body.reason).toContain('rolled back');
    }, 60_000);

    it('detects a rollback to a saved copy that then kept writing past the checkpoint', async () => {
      await backend.restore(rolledBack);
      const verified = await session(async (vault) => {
        await activity(vault, latest.seq - earlier.seq + 2);
        return vault.call('POST', '/v1/audit/verify', token, { since: latest });
      });
      expect(verified.body).toMatchObject({ ok: false, brokenAt: latest.seq });
    }, 60_000);

    it('the CLI exits 9 on a tampered log and names the problem', async () => {
      await backend.restore(pristine);
      const store = await backend.open();
      await tamperHelpers(store, latest, earlier).del(rk(5));
      await store.close();
      await session(async (vault) => {
        const env = { VAULT_ADDR: vault.url, VAULT_TOKEN: token, VAULT_TENANT: TENANT };
        const cli = await runCli(['audit', 'verify', '--since-checkpoint', exportFile], env);
        expect(cli.code).toBe(9);
        expect(cli.stderr).toContain('record 5');
      });
    }, 60_000);

    it('a missing head with records present stops writes (503) and shows in /readyz and /metrics', async () => {
      await backend.restore(pristine);
      const store = await backend.open();
      await tamperHelpers(store, latest, earlier).del(keys.auditHead(TENANT));
      const before = (await store.range(keys.auditRecords(TENANT))).kvs.map((kv) => kv.value);
      await store.close();
      await session(async (vault, opened) => {
        const write = await vault.call('POST', '/v1/credentials', token, {
          name: 'n',
          type: 'generic',
          value: 'v',
        });
        expect(write.status).toBe(503);
        expect(write.body.error.message).toContain('integrity');
        const ready = await fetch(`${vault.url}/readyz`);
        expect(ready.status).toBe(503);
        expect(await ready.text()).toContain(TENANT);
        const metrics = await (
          await fetch(`${vault.url}/metrics`, { headers: { authorization: `Bearer ${token}` } })
        ).text();
        // Counted; named only with --metrics-tenant-series (the name is in /readyz above).
        expect(metrics).toMatch(/^vault_audit_tampered_tenants 1$/m);
        expect(metrics).not.toContain(`tenant="${TENANT}"`);
        // Nothing was overwritten: the genuine records are as they were.
        const after = (await opened.range(keys.auditRecords(TENANT))).kvs.map((kv) => kv.value);
        expect(after).toEqual(before);
        expect(await opened.get(keys.credential(TENANT, 'n'))).toBeUndefined();
      });
    }, 60_000);
  });
}

describeTamper('embedded', async () => {
  const base = mkdtempSync(join(tmpdir(), 'vault-tamper-store-'));
  const dir = join(base, 'store');
  let snapshots = 0;
  return {
    open: () => openStore({ kind: 'embedded', path: dir }),
    async save() {
      const copy = join(base, `copy-${++snapshots}`);
      cpSync(dir, copy, { recursive: true });
      return copy;
    },
    async restore(copy) {
      rmSync(dir, { recursive: true, force: true });
      cpSync(copy as string, dir, { recursive: true });
    },
    async close() {
      rmSync(base, { recursive: true, force: true });
    },
  };
});

let etcd: EtcdProcess | undefined;
afterAll(async () => {
  await etcd?.destroy();
});

describeTamper('etcd', async () => {
  etcd = await startEtcd();
  const endpoint = etcd.endpoint;
  const open = () => openStore({ kind: 'etcd', endpoints: [endpoint] });
  return {
    open,
    async save() {
      const store = await open();
      try {
        const all: Array<{ key: string; value: string }> = [];
        let startAfter: string | undefined;
        for (;;) {
          const page = await store.range('/vault/', { limit: 500, ...(startAfter ? { startAfter } : {}) });
          all.push(...page.kvs.map(({ key, value }) => ({ key, value })));
          if (!page.more) return all;
          startAfter = page.kvs.at(-1)!.key;
        }
      } finally {
        await store.close();
      }
    },
    async restore(snapshot) {
      const store = await open();
      try {
        await store.txn({ success: [{ type: 'deletePrefix', prefix: '/vault/' }] });
        const all = snapshot as Array<{ key: string; value: string }>;
        for (let i = 0; i < all.length; i += 100) {
          await store.txn({
            success: all.slice(i, i + 100).map(({ key, value }) => ({ type: 'put' as const, key, value })),
          });
        }
      } finally {
        await store.close();
      }
    },
    async close() {},
  };
});
