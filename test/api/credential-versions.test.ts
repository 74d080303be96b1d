/**
 * A credential's record stays small however often it rotates: it lists the latest 10
 * versions, and every version is paged from its own value record. Older versions still
 * lease. A store written before value records carried their metadata keeps its history.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../src/core/keys.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

describe('credential versions', () => {
  let vault: TestVault;

  beforeAll(async () => {
    vault = await startTestVault();
  });
  afterAll(() => vault.close());

  const create = async (name: string) => {
    const created = await vault.call('POST', '/v1/credentials', {
      body: { name, type: 'generic', value: 'v1' },
    });
    expect(created.status, created.text).toBe(201);
  };
  const rotate = async (name: string, times: number) => {
    for (let i = 0; i < times; i++) {
      const rotated = await vault.call('POST', `/v1/credentials/${name}/versions`, {
        body: { value: `value-${i + 2}` },
      });
      expect(rotated.status, rotated.text).toBe(201);
    }
  };
  const allVersions = async (name: string, limit: number) => {
    const all: Array<{ version: number; createdAt: string; fingerprint: string }> = [];
    const pages: number[] = [];
    let next: string | undefined;
    do {
      const query = new URLSearchParams({ limit: String(limit), ...(next ? { continue: next } : {}) });
      const page = await vault.call('GET', `/v1/credentials/${name}/versions?${query}`);
      expect(page.status, page.text).toBe(200);
      pages.push(page.body.versions.length);
      all.push(...page.body.versions);
      next = page.body.continue;
    } while (next);
    return { all, pages };
  };

  it('lists the latest 10 in the record and every version in pages, oldest first', async () => {
    await create('rotating');
    const fingerprints: string[] = [];
    for (let i = 0; i < 25; i++) {
      await rotate('rotating', 1);
      const got = await vault.call('GET', '/v1/credentials/rotating');
      fingerprints[got.body.currentVersion] = got.body.versions.at(-1).fingerprint;
    }
    const record = await vault.call('GET', '/v1/credentials/rotating');
    expect(record.body.currentVersion).toBe(26);
    expect(record.body.versions.map((v: { version: number }) => v.version)).toEqual(
      Array.from({ length: 10 }, (_, i) => 17 + i),
    );
    const { all, pages } = await allVersions('rotating', 10);
    expect(pages).toEqual([10, 10, 6]);
    expect(all.map((v) => v.version)).toEqual(Array.from({ length: 26 }, (_, i) => i + 1));
    for (const v of all.slice(1)) expect(v.fingerprint, `version ${v.version}`).toBe(fingerprints[v.version]);
    expect(new Set(all.map((v) => v.createdAt)).size).toBeGreaterThan(1);
    // Never a value, and the stored record does not grow with the rotations.
    expect(JSON.stringify(all)).not.toMatch(/value-/);
    const stored = await vault.store.get(keys.credential(vault.tenant, 'rotating'));
    expect(stored!.value.length).toBeLessThan(3_000);
  });

  it('an old version, gone from the record, still leases; a version that never was is 404', async () => {
    const old = await vault.call('POST', '/v1/leases', {
      body: { credentialName: 'rotating', version: 3, ttl: '1m' },
    });
    expect(old.status, old.text).toBe(201);
    expect(old.body.value).toBe('value-2');
    const missing = await vault.call('POST', '/v1/leases', {
      body: { credentialName: 'rotating', version: 99, ttl: '1m' },
    });
    expect(missing.status).toBe(404);
    expect(missing.body.error.message).toMatch(/has no version 99/);
  });

  it('a continue token of another credential is refused; bad limits are 400', async () => {
    await create('other');
    await rotate('other', 3);
    const first = await vault.call('GET', '/v1/credentials/other/versions?limit=2');
    expect(first.body.continue).toBeTruthy();
    const crossed = await vault.call(
      'GET',
      `/v1/credentials/rotating/versions?continue=${first.body.continue}`,
    );
    expect(crossed.status).toBe(400);
    expect(crossed.body.error.message).toMatch(/belongs to another list/);
    for (const limit of ['0', '1001', 'x'])
      expect((await vault.call('GET', `/v1/credentials/other/versions?limit=${limit}`)).status).toBe(400);
    expect((await vault.call('GET', '/v1/credentials/nope/versions')).status).toBe(404);
  });

  it('needs read-metadata on the credential', async () => {
    const token = await vault.tokenFor({ type: 'agent', name: 'nobody' }, []);
    const denied = await vault.call('GET', '/v1/credentials/other/versions', { token });
    expect(denied.status).toBe(403);
  });

  it('ifChanged is no guessing oracle: without a right that reads the value it is refused, guess right or wrong', async () => {
    await vault.call('POST', '/v1/credentials', {
      body: { name: 'guarded', type: 'password', value: 'the-real-secret-0123' },
    });
    const rules = (actions: string[]) => ({ rules: [{ credentials: ['guarded'], actions }] });
    await vault.call('PUT', '/v1/policies/guarded-rotate', { body: rules(['rotate', 'read-metadata']) });
    await vault.call('PUT', '/v1/policies/guarded-lease', { body: rules(['rotate', 'lease']) });
    const rotator = await vault.tokenFor({ type: 'agent', name: 'rotator' }, ['guarded-rotate']);
    const holder = await vault.tokenFor({ type: 'workload', name: 'holder' }, ['guarded-lease']);
    // An agent that may lease but not reveal never reads the value: refused too.
    const agent = await vault.tokenFor({ type: 'agent', name: 'runner' }, ['guarded-lease']);
    const put = (token: string, value: string) =>
      vault.call('POST', '/v1/credentials/guarded/versions', { token, body: { value, ifChanged: true } });

    // The right guess and a wrong one get the same answer, and neither writes a version.
    const right = await put(rotator, 'the-real-secret-0123');
    const wrong = await put(rotator, 'a-wrong-guess-0123');
    const byAgent = await put(agent, 'the-real-secret-0123');
    for (const refused of [right, wrong, byAgent]) {
      expect(refused.status, refused.text).toBe(403);
      expect(refused.body.error.message).toContain('"ifChanged"');
      expect(refused.body.error.message).toContain('a right that reads the value');
    }
    expect(right.body.error.message).toBe(wrong.body.error.message);
    const after = await vault.call('GET', '/v1/credentials/guarded');
    expect(after.body.currentVersion).toBe(1);
    const denials = vault
      .auditLines()
      .filter((r) => r.resource === 'credential/guarded' && r.outcome === 'denied');
    expect(denials.map((r) => r.action)).toEqual(Array(3).fill('credential.put-version'));
    // Without ifChanged, rotate still adds a version.
    const plain = await vault.call('POST', '/v1/credentials/guarded/versions', {
      token: rotator,
      body: { value: 'a-new-value-0123' },
    });
    expect(plain.status, plain.text).toBe(201);

    // Whoever may lease it (and so read it) may compare.
    const same = await put(holder, 'a-new-value-0123');
    expect(same.status, same.text).toBe(201);
    expect(same.body.currentVersion).toBe(2);
    const changed = await put(holder, 'another-value-0123');
    expect(changed.body.currentVersion).toBe(3);
  });

  it('fingerprints name one version: equal values differ across versions and credentials; Vault still compares values', async () => {
    await vault.call('POST', '/v1/credentials', {
      body: { name: 'fp-a', type: 'generic', value: 'same-value' },
    });
    await vault.call('POST', '/v1/credentials', {
      body: { name: 'fp-b', type: 'generic', value: 'same-value' },
    });
    const again = await vault.call('POST', '/v1/credentials/fp-a/versions', {
      body: { value: 'same-value' },
    });
    expect(again.status, again.text).toBe(201);
    const a = (await vault.call('GET', '/v1/credentials/fp-a')).body;
    const b = (await vault.call('GET', '/v1/credentials/fp-b')).body;
    const prints = [...a.versions, ...b.versions].map((v: { fingerprint: string }) => v.fingerprint);
    expect(new Set(prints).size).toBe(3);
    for (const print of prints) expect(print).toMatch(/^hmac-sha256:[\w-]{43}$/);

    // ifChanged and a repeated create still recognise the same value (by a caller who may read it).
    const same = await vault.call('POST', '/v1/credentials/fp-a/versions', {
      body: { value: 'same-value', ifChanged: true },
    });
    expect(same.body.currentVersion).toBe(2);
    const repeated = await vault.call('POST', '/v1/credentials', {
      body: { name: 'fp-a', type: 'generic', value: 'same-value' },
    });
    expect(repeated.status, repeated.text).toBe(201);
    expect(repeated.body).toMatchObject({ unchanged: true, currentVersion: 2 });
    const other = await vault.call('POST', '/v1/credentials', {
      body: { name: 'fp-a', type: 'generic', value: 'other-value' },
    });
    expect(other.status).toBe(409);
  });

  it('compares a value with a version stored before fingerprints were scoped (tenant-wide HMAC)', async () => {
    await create('legacy-fp');
    const key = keys.credential(vault.tenant, 'legacy-fp');
    const record = JSON.parse((await vault.store.get(key))!.value);
    record.versions[0].fingerprint = await vault.core.fingerprints.of(vault.tenant, 'v1');
    await vault.store.txn({ success: [{ type: 'put', key, value: JSON.stringify(record) }] });
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const put = (value: string) =>
      vault.call('POST', '/v1/credentials/legacy-fp/versions', { body: { value, ifChanged: true } });
    expect((await put('v1')).body.currentVersion).toBe(1);
    expect((await put('v2')).body.currentVersion).toBe(2);
  });

  it('a value is at most 64 KiB of UTF-8, counted in bytes, not characters', async () => {
    const fits = await vault.call('POST', '/v1/credentials', {
      body: { name: 'euro-fits', type: 'generic', value: '€'.repeat(21_845) },
    });
    expect(fits.status, fits.text).toBe(201);
    const over = await vault.call('POST', '/v1/credentials', {
      body: { name: 'euro-over', type: 'generic', value: '€'.repeat(21_846) },
    });
    expect(over.status, over.text).toBe(400);
    expect(over.body.error.message).toContain('65,536 bytes');
    expect((await vault.call('GET', '/v1/credentials/euro-over')).status).toBe(404);
  });

  it('keeps the history of a store written before value records carried it', async () => {
    await create('legacy');
    await rotate('legacy', 29);
    // As an older version wrote it: all 30 versions in the record, values without metadata.
    const key = keys.credential(vault.tenant, 'legacy');
    const recent = JSON.parse((await vault.store.get(key))!.value);
    const history = (await allVersions('legacy', 100)).all;
    const ops = [];
    for (let version = 1; version <= 30; version++) {
      const valueKey = keys.value(vault.tenant, 'legacy', version);
      const { sealed } = JSON.parse((await vault.store.get(valueKey))!.value);
      ops.push({ type: 'put' as const, key: valueKey, value: JSON.stringify({ sealed }) });
    }
    ops.push({ type: 'put' as const, key, value: JSON.stringify({ ...recent, versions: history }) });
    await vault.store.txn({ success: ops });
    // The record cache holds the old record for at most a second.
    await new Promise((resolve) => setTimeout(resolve, 1_100));

    await rotate('legacy', 1);
    const record = await vault.call('GET', '/v1/credentials/legacy');
    expect(record.body.versions.length).toBe(10);
    const after = (await allVersions('legacy', 7)).all;
    expect(after.slice(0, 30)).toEqual(history);
    expect(after.map((v) => v.version)).toEqual(Array.from({ length: 31 }, (_, i) => i + 1));
  });
});
