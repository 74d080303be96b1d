/**
 * The SDK follows a list's pages only while the server makes progress: a server (or a
 * proxy's cache) that answers the same `continue`, `next` or `before` again gets a
 * VaultConnectionError naming the field, not a loop that never ends and a list that grows without bound.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Vault, VaultConnectionError } from '../../src/sdk/index.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

let vault: TestVault;
let sdk: Vault;
const lists: string[] = [];

beforeAll(async () => {
  vault = await startTestVault();
  // A proxy in front of the real server that answers every list page with the same position.
  const stuck: typeof fetch = async (input, init) => {
    const url = new URL(String(input));
    const path = url.pathname;
    if (!['/v1/credentials', '/v1/policies', '/v1/identities', '/v1/audit'].includes(path))
      return fetch(input, init);
    lists.push(path);
    // The first page again, whatever was asked for, with the same position to go on from.
    url.searchParams.delete('continue');
    const answer = await fetch(url, init);
    const body = (await answer.json()) as Record<string, unknown>;
    const rewritten =
      path === '/v1/audit'
        ? { ...body, records: [], next: 5, before: 5 }
        : { ...body, continue: 'same-token' };
    return new Response(JSON.stringify(rewritten), { status: answer.status, headers: answer.headers });
  };
  sdk = await Vault.connect({ addr: vault.url, token: vault.rootToken, tenant: vault.tenant, fetch: stuck });
});
afterAll(() => vault?.close());

describe('a server that does not make progress', () => {
  it.each([
    ['credentials.list', () => sdk.credentials.list()],
    ['policies.list', () => sdk.policies.list()],
    ['identities.list', () => sdk.identities.list()],
    ['audit.query', () => sdk.audit.query({ action: 'x' })],
    ['audit.tail', () => sdk.audit.tail({ action: 'x' })],
  ])('%s stops with an error naming the field after the repeated answer', async (_name, call) => {
    lists.length = 0;
    const failed = await call().then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(failed).toBeInstanceOf(VaultConnectionError);
    expect((failed as Error).message).toMatch(/response\.(continue|next|before)/);
    expect(lists.length).toBeGreaterThanOrEqual(2);
    expect(lists.length).toBeLessThanOrEqual(3);
  });
});
