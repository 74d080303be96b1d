import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UnauthenticatedError, Vault, VaultConnectionError } from '../../src/sdk/index.js';
import { type HangingProxy, startHangingProxy } from '../support/hanging-proxy.js';
import { startTestVault, type TestVault } from '../support/test-vault.js';
import { until } from '../support/until.js';

// Red team, session 8b: an answer whose headers arrive and whose body never does. The SDK's
// request timeout covers the body, but what it threw was the fetch's DOMException, not a
// VaultConnectionError: callers that handle connection failures did not recognise it, and a
// lease creation whose answer was cut off that way (the lease was issued) was not retried with
// its Idempotency-Key.

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

  it('a lease-event stream refused with an answer cut off after its headers settles within timeoutMs', async () => {
    // A refusal (here 401: a revoked token) whose body never comes: the stream's headers have
    // timeoutMs, and so should the rest of an answer that is not a stream; it was read with
    // no time limit at all.
    const minted = await vault.call('POST', '/v1/auth/tokens', {
      body: { identity: { type: 'agent', name: 'gone' }, policies: [], ttl: '1h' },
    });
    expect(minted.status).toBe(201);
    const stranger = await Vault.connect({
      addr: `http://127.0.0.1:${proxy.port}`,
      token: minted.body.token,
      tenant: vault.tenant,
      timeoutMs: 1_000,
    });
    expect((await vault.call('DELETE', `/v1/auth/tokens/${minted.body.accessor}`)).status).toBe(200);
    proxy.stallBodies();
    // (The client sees the cut of its idle connection before it asks again.)
    await new Promise((resolve) => setTimeout(resolve, 200));
    const started = Date.now();
    const outcome = await Promise.race([
      (async () => {
        for await (const _ of stranger.leases.events({ silenceMs: 60_000 })) break;
        return 'ended';
      })().catch((err: unknown) => err),
      new Promise((resolve) => setTimeout(() => resolve('still waiting after 8 s'), 8_000)),
    ]);
    proxy.unstallBodies();
    // The 401 is known from the headers: it is the answer, within timeoutMs (not when the
    // server happens to close the connection, 5 s later here, or never behind a black hole).
    expect(outcome).toBeInstanceOf(UnauthenticatedError);
    expect(Date.now() - started).toBeLessThan(3_000);
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
    await until('the first attempt to issue its lease', async () => (await count()) > before, 15_000);
    proxy.unstallBodies();
    const lease = await creating;
    expect(lease).not.toBeInstanceOf(Error);
    expect((lease as { value?: string }).value).toBe('s3cret-value-1');
    expect(await count()).toBe(before + 1);
  });
});
