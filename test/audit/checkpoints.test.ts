/**
 * Keyed chains from the outside: the SDK checks checkpoints with a pinned public key, the
 * key is published at a well-known address, checkpoints reach the stream, and a store
 * written before keyed links (plain SHA-256) is migrated by an `audit.rekey` record that
 * pins the old records.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GENESIS_HASH, legacyHash } from '../../src/core/audit-chain.js';
import { checkpointSignedBy as serverCheck } from '../../src/core/audit-checkpoints.js';
import { keys } from '../../src/core/keys.js';
import { checkpointSignedBy } from '../../src/sdk/checkpoint.js';
import { Vault } from '../../src/sdk/index.js';
import { openStore } from '../../src/store/index.js';
import type { Store } from '../../src/store/store.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';
import { mintRootToken, runVault } from './harness.js';

describe('checkpoints through the SDK', () => {
  let vault: TestVault;
  let sdk: Vault;

  beforeAll(async () => {
    vault = await startTestVault();
    sdk = await Vault.connect({ addr: vault.url, token: vault.rootToken, tenant: vault.tenant });
    await vault.call('POST', '/v1/credentials', { body: { name: 'k', type: 'generic', value: 'v1' } });
  });
  afterAll(() => vault.close());

  it('publishes the key, signs checkpoints the SDK checks, and proves the log extends one', async () => {
    const published = await (await fetch(`${vault.url}/.well-known/vault/audit-keys/${vault.tenant}`)).json();
    const key = await sdk.audit.publicKey();
    expect(published).toEqual(key);
    expect(key.publicKey).toContain('BEGIN PUBLIC KEY');

    const first = await sdk.audit.checkpoint();
    expect(await checkpointSignedBy(first, key.publicKey)).toBe(true);
    expect(serverCheck(first, key.publicKey)).toBe(true);
    expect(await checkpointSignedBy({ ...first, seq: first.seq + 1 }, key.publicKey)).toBe(false);
    // The checkpoint reached the stream as its own line.
    expect(vault.output()).toContain(`"checkpoint":{"tenant":"${vault.tenant}","seq":${first.seq}`);

    await vault.call('POST', '/v1/leases', { body: { credentialName: 'k', ttl: '1m' } });
    const verified = await sdk.audit.verify({ since: first, publicKey: key.publicKey });
    expect(verified.ok).toBe(true);
    expect(verified.checkpoint!.seq).toBeGreaterThan(first.seq);

    // A forged checkpoint fails before the server is asked; one signed by another key too.
    const forged = { ...first, hash: 'a'.repeat(64) };
    expect((await sdk.audit.verify({ since: forged, publicKey: key.publicKey })).ok).toBe(false);
    const server = await vault.call('POST', '/v1/audit/verify', { body: { since: forged } });
    expect(server.status).toBe(200);
    expect(server.body.ok).toBe(false);
    expect(server.body.reason).toContain('signature');
  });

  it('refuses a malformed checkpoint with 400, and an unknown tenant key with 404', async () => {
    const bad = await vault.call('POST', '/v1/audit/verify', { body: { since: { seq: 'x' } } });
    expect(bad.status).toBe(400);
    expect((await fetch(`${vault.url}/.well-known/vault/audit-keys/nobody`)).status).toBe(404);
  });
});

describe('a chain written before keyed links', () => {
  let dir: string;
  const rootKey = randomBytes(32);
  const tenant = 'acme';
  let token: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'vault-legacy-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Rewrites the tenant's chain as the previous release wrote it: no `v`, SHA-256 links, no audit key. */
  async function makeLegacy(store: Store) {
    const { kvs } = await store.range(keys.auditRecords(tenant));
    let prev = GENESIS_HASH;
    for (const kv of kvs) {
      const { v: _v, hash: _h, ...rest } = JSON.parse(kv.value);
      const record = { ...rest, prevHash: prev };
      const hash = legacyHash(record);
      await store.txn({
        success: [{ type: 'put', key: kv.key, value: JSON.stringify({ ...record, hash }) }],
      });
      prev = hash;
    }
    await store.txn({
      success: [
        { type: 'put', key: keys.auditHead(tenant), value: JSON.stringify({ seq: kvs.length, hash: prev }) },
        { type: 'delete', key: keys.auditKeys(tenant) },
      ],
    });
    return kvs.length;
  }

  it('starts the keyed chain at an audit.rekey record, verifies, and the rekey pins the old records', async () => {
    let store = await openStore({ kind: 'embedded', path: dir });
    let vault = await runVault(store, rootKey);
    token = await mintRootToken(vault.core, tenant);
    await vault.close();
    const legacy = await makeLegacy(store);
    await store.close();

    store = await openStore({ kind: 'embedded', path: dir });
    vault = await runVault(store, rootKey);
    const unkeyed = await vault.call('GET', '/v1/audit/verify', token);
    expect(unkeyed.body).toMatchObject({ ok: true, records: legacy });
    expect(unkeyed.body.checkpoint).toBeUndefined();
    const created = await vault.call('POST', '/v1/credentials', token, {
      name: 'db',
      type: 'generic',
      value: 'v',
    });
    expect(created.status).toBe(201);
    const records = (await vault.call('GET', `/v1/audit?afterSeq=${legacy}`, token)).body.records;
    expect(records[0]).toMatchObject({ seq: legacy + 1, v: 2, action: 'audit.rekey' });
    expect(records.slice(1).every((r: { v?: number }) => r.v === 2)).toBe(true);
    expect(records.map((r: { action: string }) => r.action)).toContain('credential.create');
    const verified = await vault.call('GET', '/v1/audit/verify', token);
    expect(verified.body).toMatchObject({ ok: true });
    expect(verified.body.checkpoint.seq).toBeGreaterThan(legacy);
    await vault.close();
    await store.close();

    // Rewriting an old record and re-hashing the old part no longer goes unnoticed.
    store = await openStore({ kind: 'embedded', path: dir });
    const first = JSON.parse((await store.get(keys.auditRecord(tenant, 1)))!.value);
    const { hash: _h, ...rest } = { ...first, outcome: 'denied' };
    let prev = legacyHash(rest);
    await store.txn({
      success: [
        { type: 'put', key: keys.auditRecord(tenant, 1), value: JSON.stringify({ ...rest, hash: prev }) },
      ],
    });
    for (let seq = 2; seq <= legacy; seq++) {
      const { hash: _old, ...record } = {
        ...JSON.parse((await store.get(keys.auditRecord(tenant, seq)))!.value),
        prevHash: prev,
      };
      prev = legacyHash(record);
      await store.txn({
        success: [
          {
            type: 'put',
            key: keys.auditRecord(tenant, seq),
            value: JSON.stringify({ ...record, hash: prev }),
          },
        ],
      });
    }
    vault = await runVault(store, rootKey);
    const broken = await vault.call('GET', '/v1/audit/verify', token);
    expect(broken.body).toMatchObject({ ok: false, brokenAt: legacy + 1 });
    await vault.close();
    await store.close();
  }, 60_000);
});
