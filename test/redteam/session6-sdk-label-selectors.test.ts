/**
 * Red team, session 6: the SDK's `credentials.list({ labels })` takes labels as an object, so
 * a caller (or the MCP `list_credentials` tool, whose labels a model writes) expects exact
 * matches. It joined them into the server's `key=value,key2=value2` selector text as they
 * were: a value holding "," became a second selector. `{ team: 'x,env=prod' }` listed the
 * credentials labelled team=x and env=prod, a filter the caller never asked for, instead of
 * those whose team is "x,env=prod" (none); other such values failed with a server message
 * about a selector the caller never wrote.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Vault } from '../../src/sdk/index.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

describe('SDK credentials.list with label values the selector syntax cannot carry', () => {
  let vault: TestVault;
  let sdk: Vault;
  beforeAll(async () => {
    vault = await startTestVault();
    for (const [name, metadata] of [
      ['prod-db', { team: 'x', env: 'prod' }],
      ['dev-db', { team: 'x', env: 'dev' }],
    ] as const) {
      const created = await vault.call('POST', '/v1/credentials', {
        body: { name, type: 'password', value: `value-of-${name}`, metadata },
      });
      expect(created.status, created.text).toBe(201);
    }
    sdk = await Vault.connect({ addr: vault.url, token: vault.rootToken });
  });
  afterAll(() => vault.close());

  it('never turns one label into two selectors', async () => {
    const listed = await sdk.credentials.list({ labels: { team: 'x,env=prod' } }).then(
      (credentials) => credentials.map((c) => c.name),
      (err: Error) => err,
    );
    // Either the exact match (nothing here) or a refusal naming the label: never prod-db.
    if (Array.isArray(listed)) expect(listed).toEqual([]);
    else expect(listed.message).toMatch(/team/);
  });

  it('plain labels still select', async () => {
    const listed = await sdk.credentials.list({ labels: { team: 'x', env: 'dev' } });
    expect(listed.map((c) => c.name)).toEqual(['dev-db']);
  });
});
