/**
 * Red team, session 7: revoking a token whose descendants are busy.
 *
 * Revocation peels the tree from its leaves: a page of a token's children is read, the ones
 * that minted nothing are deleted, the token itself goes last. Nothing stopped the tokens
 * still in the tree from minting meanwhile:
 *
 * - a descendant minting in a loop kept adding leaves faster than they were peeled, so the
 *   revocation never finished (its request hung for as long as the minting went on), and the
 *   tokens it meant to end went on working;
 * - a child minted by a token between the read that found it a leaf and the transaction that
 *   deleted it (with its links) survived as an orphan: valid, reachable from no token;
 * - a token revoking the token that minted it (its own ancestor) was deleted part-way, and
 *   every later chunk, committed "only while the caller's token exists", failed: 401, and the
 *   ancestor lived on.
 *
 * Real parts: the in-process API server on the embedded store, real HTTP.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT_POLICY } from '../../src/core/index.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

let vault: TestVault;
beforeAll(async () => {
  vault = await startTestVault();
});
afterAll(async () => {
  await vault?.close();
});

const alice = { type: 'human' as const, name: 'alice' };
const mintWith = async (token: string) => {
  const res = await vault.call('POST', '/v1/auth/tokens', {
    token,
    body: { identity: alice, policies: [ROOT_POLICY], ttl: '1h' },
  });
  return res.status === 201 ? (res.body as { token: string; accessor: string }) : undefined;
};
const works = async (token: string) => (await vault.call('GET', '/v1/auth/whoami', { token })).status === 200;

describe('revoking a token while the tokens it minted mint', () => {
  it('finishes, and leaves no token of the tree working', async () => {
    const parent = (await mintWith(vault.rootToken))!;
    const children = [];
    for (let i = 0; i < 24; i++) children.push((await mintWith(parent.token))!);
    const minted: string[] = [];
    let stop = false;
    // Each child mints in a loop until it is refused (or the test gives up after 10 s).
    const loops = children.map(async (child) => {
      while (!stop) {
        const grandchild = await mintWith(child.token);
        if (!grandchild) return;
        minted.push(grandchild.token);
      }
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const revoking = vault.call('DELETE', `/v1/auth/tokens/${parent.accessor}`);
    const finished = await Promise.race([
      revoking.then(() => true),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 10_000)),
    ]);
    stop = true;
    await Promise.all(loops);
    const revoked = await revoking;
    expect(finished, 'the revocation finished while the tree was minting').toBe(true);
    expect(revoked.status).toBe(200);
    const alive: string[] = [];
    for (const token of [parent.token, ...children.map((c) => c.token), ...minted])
      if (await works(token)) alive.push(token);
    expect(alive.length, `tokens of the revoked tree still working (of ${minted.length} minted)`).toBe(0);
    // Tokens outside the tree are untouched.
    expect(await works(vault.rootToken)).toBe(true);
    // Neither a token nor its hash reaches the logs or the audit stream.
    const output = vault.output();
    for (const token of [parent.token, ...minted.slice(0, 50)]) {
      expect(output).not.toContain(token);
      expect(output).not.toContain(createHash('sha256').update(token).digest('hex'));
    }
  }, 40_000);

  it('a token revoking the token that minted it ends both', async () => {
    const parent = (await mintWith(vault.rootToken))!;
    const child = (await mintWith(parent.token))!;
    const sibling = (await mintWith(vault.rootToken))!;
    const res = await vault.call('DELETE', `/v1/auth/tokens/${parent.accessor}`, { token: child.token });
    expect(res.status, res.text).toBe(200);
    expect(await works(parent.token)).toBe(false);
    expect(await works(child.token)).toBe(false);
    expect(await works(sibling.token)).toBe(true);
    const lookup = await vault.call('GET', `/v1/auth/tokens/${parent.accessor}`);
    expect(lookup.status).toBe(404);
  }, 20_000);

  it('a mint racing the revocation of its token either fails or is revoked too', async () => {
    for (let round = 0; round < 5; round++) {
      const parent = (await mintWith(vault.rootToken))!;
      const child = (await mintWith(parent.token))!;
      const [, ...mints] = await Promise.all([
        vault.call('DELETE', `/v1/auth/tokens/${parent.accessor}`),
        ...Array.from({ length: 8 }, () => mintWith(child.token)),
      ]);
      for (const minted of mints) if (minted) expect(await works(minted.token)).toBe(false);
      expect(await works(child.token)).toBe(false);
    }
  }, 30_000);
});
