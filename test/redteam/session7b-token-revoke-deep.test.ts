/**
 * Red team session 7b: a user may mint a token with its own token (same identity, a subset of
 * its policies: no admin needed), and so on, building a chain as deep as it likes. Revoking
 * the chain peeled it a leaf at a time, each leaf looked for from the top of the tree again:
 * depth² reads of child lists (a chain of 300: about 90,000), so the DELETE of a deep chain
 * ran for minutes (etcd) while holding its request.
 *
 * Real parts: the in-process API on the embedded store, real HTTP.
 */

import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openEmbeddedStore } from '../../src/store/embedded-store.js';
import { storeWith } from '../support/store-proxy.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

const DEPTH = 300;

describe('revoking a deep chain of tokens', () => {
  let vault: TestVault;
  let childReads = 0;

  beforeAll(async () => {
    const inner = await openEmbeddedStore({ path: await mkdtemp(join(tmpdir(), 'vault-s7b-')) });
    const store = storeWith(inner, (target) => ({
      range: (prefix, options) => {
        if (prefix.includes('/token-children/')) childReads += 1;
        return target.range(prefix, options);
      },
    }));
    vault = await startTestVault({ store });
  }, 30_000);
  afterAll(() => vault?.close());

  it('reads child lists in proportion to the tree, not to its depth squared', async () => {
    const user = { type: 'human' as const, name: 'mallory' };
    const top = await vault.call('POST', '/v1/auth/tokens', { body: { identity: user, ttl: '1h' } });
    expect(top.status, top.text).toBe(201);
    const chain = [top.body as { token: string; accessor: string }];
    for (let i = 1; i < DEPTH; i++) {
      const next = await vault.call('POST', '/v1/auth/tokens', {
        token: chain.at(-1)!.token,
        body: { identity: user, ttl: '1h' },
      });
      expect(next.status, next.text).toBe(201);
      chain.push(next.body);
    }
    childReads = 0;
    const revoked = await vault.call('DELETE', `/v1/auth/tokens/${chain[0]!.accessor}`);
    expect(revoked.status, revoked.text).toBe(200);
    for (const t of [chain[0]!, chain[DEPTH >> 1]!, chain.at(-1)!])
      expect((await vault.call('GET', '/v1/auth/tokens/self', { token: t.token })).status).toBe(401);
    // Marking reads each token's children once, peeling a few times more: about 3 × depth.
    expect(childReads).toBeLessThan(10 * DEPTH);
  }, 120_000);
});
