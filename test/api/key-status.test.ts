/**
 * `GET /v1/sys/keys`: a system token sees every tenant's key hierarchy; a tenant admin sees
 * its own tenant's, and its call reads only that tenant's key records, not every tenant's.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemContext } from '../../src/core/index.js';
import { openEmbeddedStore } from '../../src/store/embedded-store.js';
import type { Store } from '../../src/store/store.js';
import { storeWith } from '../support/store-proxy.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

describe('key status', () => {
  let vault: TestVault;
  let dir: string;
  let inner: Store;
  const prefixesRead: string[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vault-key-status-'));
    inner = await openEmbeddedStore({ path: dir });
    const counting = storeWith(inner, (target) => ({
      range: (prefix: string, options?: Parameters<Store['range']>[1]) => {
        prefixesRead.push(prefix);
        return target.range(prefix, options);
      },
    }));
    vault = await startTestVault({ store: counting });
    const ctx = systemContext(vault.tenant, { type: 'human', name: 'root' });
    for (const id of ['other-a', 'other-b']) await vault.core.tenants.create(ctx, id);
  });
  afterAll(async () => {
    await vault?.close();
    await inner?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a system token sees every tenant', async () => {
    const all = await vault.call('GET', '/v1/sys/keys');
    expect(all.status, all.text).toBe(200);
    expect(all.body.tenants.map((t: { tenant: string }) => t.tenant).sort()).toEqual(
      [vault.tenant, 'other-a', 'other-b'].sort(),
    );
    expect(all.body.continue).toBeUndefined();
  });

  it('a system token pages through tenants, reading only each page’s tenants’ key records', async () => {
    const seen: string[] = [];
    let next: string | undefined;
    let pages = 0;
    do {
      prefixesRead.length = 0;
      const page = await vault.call('GET', `/v1/sys/keys?limit=2${next ? `&continue=${next}` : ''}`);
      expect(page.status, page.text).toBe(200);
      const tenants = page.body.tenants.map((t: { tenant: string }) => t.tenant);
      expect(tenants.length).toBeLessThanOrEqual(2);
      const keyReads = prefixesRead.filter((prefix) => prefix.startsWith('/vault/keys/'));
      expect(keyReads.sort()).toEqual(tenants.map((t: string) => `/vault/keys/tenants/${t}/`).sort());
      expect(page.body.rootKeyId).toEqual(expect.any(String));
      seen.push(...tenants);
      next = page.body.continue;
      pages++;
    } while (next && pages < 10);
    expect(seen.sort()).toEqual([vault.tenant, 'other-a', 'other-b'].sort());
    expect(pages).toBe(2);

    const bad = await vault.call('GET', '/v1/sys/keys?limit=0');
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toContain('limit');
  });

  it('a tenant admin sees its own, reading only its own key records', async () => {
    const created = await vault.call('POST', '/v1/sys/tenants', { body: { id: 'solo' } });
    expect(created.status, created.text).toBe(201);
    const admin = created.body.adminToken.token as string;
    prefixesRead.length = 0;
    const mine = await vault.call('GET', '/v1/sys/keys', { token: admin, tenant: 'solo' });
    expect(mine.status, mine.text).toBe(200);
    expect(mine.body.tenants.map((t: { tenant: string }) => t.tenant)).toEqual(['solo']);
    expect(mine.body.tenants[0].currentVersion).toBe(1);
    expect(mine.body.rotations.root).toBeNull();
    const keyReads = prefixesRead.filter((prefix) => prefix.startsWith('/vault/keys/'));
    expect(keyReads).toEqual(['/vault/keys/tenants/solo/']);
  });
});
