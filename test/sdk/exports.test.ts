/**
 * Guards the SDK's public surface: adding or removing a runtime export must be a deliberate
 * change to this list (and to the package's semver).
 */
import { describe, expect, it } from 'vitest';
import * as sdk from '../../src/sdk/index.js';

describe('@ghoststack/vault-sdk exports', () => {
  it('exports exactly the public runtime names', () => {
    expect(Object.keys(sdk).sort()).toEqual([
      'AuditUnavailableError',
      'BadRequestError',
      'ConflictError',
      'InternalError',
      'LeaseExpiredError',
      'LeaseRevokedError',
      'NotFoundError',
      'OutcomeUnknownError',
      'PayloadTooLargeError',
      'PermissionDeniedError',
      'RateLimitedError',
      'StoreUnavailableError',
      'UnauthenticatedError',
      'UpstreamFailedError',
      'Vault',
      'VaultApiError',
      'VaultConnectionError',
      'checkpointSignedBy',
      'defaultAddr',
      'resolveConnectOptions',
    ]);
  });

  it('has one error class per API error code, each a VaultApiError', async () => {
    const { errorCodes } = await import('../../src/lib/errors.js');
    const { errorFromResponse } = await import('../../src/sdk/errors.js');
    for (const [code, status] of Object.entries(errorCodes)) {
      const err = errorFromResponse(status, { error: { code, message: `m-${code}`, requestId: 'r1' } });
      expect(err).toBeInstanceOf(sdk.VaultApiError);
      expect(err.constructor).not.toBe(sdk.VaultApiError);
      expect(err).toMatchObject({ code, status, requestId: 'r1', message: `m-${code}` });
    }
  });

  it('maps lease errors to their classes and falls back on the status for foreign bodies', async () => {
    const { errorFromResponse } = await import('../../src/sdk/errors.js');
    expect(
      errorFromResponse(410, { error: { code: 'lease_revoked', message: 'revoked', requestId: 'x' } }),
    ).toBeInstanceOf(sdk.LeaseRevokedError);
    const proxy = errorFromResponse(403, '<html>Forbidden</html>', { requestId: 'from-header' });
    expect(proxy).toBeInstanceOf(sdk.PermissionDeniedError);
    expect(proxy.requestId).toBe('from-header');
    expect(proxy.message).toMatch(/HTTP 403/);
    expect(errorFromResponse(502, undefined)).toBeInstanceOf(sdk.InternalError);
    expect(
      errorFromResponse(
        429,
        { error: { code: 'rate_limited', message: 'slow down', requestId: 'y' } },
        {
          retryAfterSeconds: 3,
        },
      ).retryAfterSeconds,
    ).toBe(3);
  });

  it('resolves connection defaults from the environment, explicit options winning', () => {
    const env = { VAULT_ADDR: 'http://env:1', VAULT_TOKEN: 'env-token', VAULT_TENANT: 'env-tenant' };
    expect(sdk.resolveConnectOptions({}, env)).toEqual({
      addr: 'http://env:1',
      token: 'env-token',
      tenant: 'env-tenant',
    });
    expect(sdk.resolveConnectOptions({ addr: 'http://x:2', token: 't', tenant: 'my-org' }, env)).toEqual({
      addr: 'http://x:2',
      token: 't',
      tenant: 'my-org',
    });
    expect(sdk.resolveConnectOptions({}, {})).toEqual({
      addr: 'http://127.0.0.1:8200',
      token: undefined,
      tenant: undefined,
    });
  });

  it('refuses to connect without a token, saying how to get one', async () => {
    const saved = process.env.VAULT_TOKEN;
    delete process.env.VAULT_TOKEN;
    try {
      await expect(sdk.Vault.connect({ addr: 'http://127.0.0.1:1' })).rejects.toThrow(/VAULT_TOKEN/);
    } finally {
      if (saved !== undefined) process.env.VAULT_TOKEN = saved;
    }
  });

  it('reports an unreachable server as a VaultConnectionError naming the address', async () => {
    const err = await sdk.Vault.connect({ addr: 'http://127.0.0.1:1', token: 't' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(sdk.VaultConnectionError);
    expect((err as sdk.VaultConnectionError).message).toMatch(/127\.0\.0\.1:1/);
  });
});
