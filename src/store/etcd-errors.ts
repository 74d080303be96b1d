import {
  ClientClosedError,
  EtcdAuthenticationFailedError,
  EtcdError,
  EtcdInvalidAuthTokenError,
  EtcdPermissionDeniedError,
  GRPCGenericError,
  GRPCInvalidArgumentError,
} from 'etcd3';
import { OutcomeUnknownError, StoreUnavailableError, VaultError } from '../lib/errors.js';

/**
 * Turns what the etcd client throws into the project's typed errors. Anything about reaching
 * or authenticating to etcd becomes StoreUnavailableError (503), with a message that names the
 * endpoints (without any userinfo) but never the username, password or key material.
 */
export function toStoreError(err: unknown, context: { what: string; endpoints: string; timeoutMs: number }) {
  if (err instanceof VaultError) return err;
  const at = `etcd at ${context.endpoints}`;
  if (err instanceof EtcdAuthenticationFailedError) {
    return new StoreUnavailableError(`${at} rejected the configured username or password`, err);
  }
  if (err instanceof EtcdInvalidAuthTokenError) {
    return new StoreUnavailableError(
      `${at} rejected the auth token; retry (it is renewed automatically)`,
      err,
    );
  }
  if (err instanceof EtcdPermissionDeniedError) {
    return new StoreUnavailableError(
      `${at} denied the ${context.what}: grant the etcd user read and write on the store's key prefix`,
      err,
    );
  }
  if (err instanceof GRPCInvalidArgumentError) {
    return new VaultError('internal', `${at} refused the ${context.what}: ${(err as Error).message}`);
  }
  if (err instanceof ClientClosedError) {
    return new VaultError('internal', `the etcd store was used after it was closed`);
  }
  if (err instanceof GRPCGenericError || err instanceof EtcdError || isGrpcStatusError(err)) {
    const timedOut = /deadline/i.test((err as Error).message);
    if (timedOut && context.what === 'transaction') {
      return new OutcomeUnknownError(
        `${at} did not answer the transaction within ${context.timeoutMs} ms; it may or may not have been applied: retry with the same Idempotency-Key, or check before repeating it`,
        err,
      );
    }
    const outcome =
      context.what === 'transaction' ? '; the transaction may or may not have been applied' : '';
    return new StoreUnavailableError(
      timedOut
        ? `${at} did not answer the ${context.what} within ${context.timeoutMs} ms${outcome}`
        : `${at} is unavailable (${summarize(err as Error)})${outcome}`,
      err,
    );
  }
  return err instanceof Error ? err : new Error(String(err));
}

const isGrpcStatusError = (err: unknown): boolean =>
  typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'number';

/** The first line of a gRPC message, which says what failed ("connect ECONNREFUSED ..."). */
const summarize = (err: Error) => err.message.split('\n')[0]!.slice(0, 200);

/** `https://user:pw@host:2379` → `https://host:2379`: endpoints go into messages, credentials do not. */
export function describeEndpoints(endpoints: string[]): string {
  return endpoints
    .map((endpoint) => {
      try {
        const url = new URL(endpoint);
        url.username = '';
        url.password = '';
        return url.toString().replace(/\/$/, '');
      } catch {
        return endpoint.replace(/^[^@/]*@/, '');
      }
    })
    .join(',');
}
