import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Vault, VaultConnectionError } from '../../src/sdk/index.js';
import { type HangingProxy, startHangingProxy } from '../support/hanging-proxy.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';

// Red team, session 8b: an answer whose headers arrive and whose body never does. The SDK's
// request timeout covers the body, but what it threw was the fetch's DOMException, not a
// VaultConnectionError: callers that handle connection failures did not recognise it, and a
// lease creation whose answer was cut off that way (the lease was issued) was not retried with
// its Idempotency-Key.

const until = async (check: () => Promise<boolean>, what: string, timeoutMs = 15_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
};

describe('SDK: an answer cut off after its headers', () => {
  let vault: TestVault;
  let proxy: HangingProxy;
  let sdk: Vault;

  beforeAll(async () => {
    vault = await startTestVault();
    const created = await vault.call('POST', '/v1/credentials', {
      body: { name: 'db', type: 'password', value: 's3cret-value-1' },
    });
    expect(created.status).toBe(201);
    proxy = await startHangingProxy({ host: '127.0.0.1', port: Number(new URL(vault.url).port) });
    sdk = await Vault.connect({
      addr: `http://127.0.0.1:${proxy.port}`,
      token: vault.rootToken,
      tenant: vault.tenant,
      timeoutMs: 1_000,
    });
  });
  afterAll(async () => {
    await proxy?.close();
    await vault?.close();
  });

  it('a request whose body never comes fails as a VaultConnectionError timeout', async () => {
    proxy.stallBodies();
    const started = Date.now();
    const err = await sdk.credentials.get('db').catch((e: unknown) => e);
    proxy.unstallBodies();
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(err).toBeInstanceOf(VaultConnectionError);
    expect((err as VaultConnectionError).reason).toBe('timeout');
  });

  it('a lease creation whose answer was cut off is retried with its key: the lease it issued, once', async () => {
    const count = async () =>
      (await vault.call('GET', '/v1/leases?credentialName=db&limit=1000')).body.leases.length as number;
    const before = await count();
    proxy.stallBodies();
    const creating = sdk.leases.create({ credentialName: 'db', ttl: '5m' }).then(
      (lease) => lease,
      (err: unknown) => err,
    );
    // The first attempt's lease is issued (its answer's headers went out); later attempts
    // go through whole.
    await until(async () => (await count()) > before, 'the first attempt to issue its lease');
    proxy.unstallBodies();
    const lease = await creating;
    expect(lease).not.toBeInstanceOf(Error);
    expect((lease as { value?: string }).value).toBe('s3cret-value-1');
    expect(await count()).toBe(before + 1);
  });
});
