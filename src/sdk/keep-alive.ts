/**
 * Background renewal of one lease. The schedule is a pure function of the lease and the time
 * (`nextStep`), so the loop around it only sleeps, renews and reports.
 */
import {
  AuditUnavailableError,
  InternalError,
  LeaseExpiredError,
  LeaseRevokedError,
  RateLimitedError,
  StoreUnavailableError,
  VaultConnectionError,
} from './errors.js';
import type { Lease } from './types.js';

/** Why a kept-alive lease ended. */
export type LeaseEndReason = 'stopped' | 'revoked' | 'expired' | 'max-ttl' | 'error';

/** How a kept-alive lease ended. */
export interface LeaseEnd {
  /** Why it ended. */
  reason: LeaseEndReason;
  /** The last known state of the lease. */
  lease: Lease;
  /** The error that ended it, for `reason: 'error'`. */
  error?: Error;
}

/** Options of {@link LeasesApi.keepAlive}. */
export interface KeepAliveOptions {
  /** Called after each successful renewal with the renewed lease (its `value` kept from the original). */
  onRenew?: (lease: Lease) => void;
  /** Called once when the lease ends or keeping it alive stops. */
  onEnd?: (end: LeaseEnd) => void;
  /** Ask for this increment on each renewal (default: the lease's original TTL). */
  increment?: string;
  /** Fraction of the remaining time to wait before renewing (default 2/3). */
  renewAt?: number;
  /** Stops keeping the lease alive when aborted (does not revoke it). */
  signal?: AbortSignal;
}

/** A running keep-alive. */
export interface LeaseKeepAlive {
  /** The latest state of the lease. */
  readonly lease: Lease;
  /** Stops renewing (the lease itself runs out at its `expiresAt` unless revoked). */
  stop(): void;
  /** Resolves when the lease ends or `stop()` is called. */
  readonly done: Promise<LeaseEnd>;
}

const minRetryMs = 250;
const maxRetryMs = 5_000;

type Step =
  | { kind: 'end'; reason: LeaseEndReason }
  | { kind: 'wait-end'; ms: number; reason: LeaseEndReason }
  | { kind: 'renew-after'; ms: number };

/** What to do next with a lease at time `now`. */
export function nextStep(lease: Lease, now: number, renewAt: number): Step {
  if (lease.state === 'revoked') return { kind: 'end', reason: 'revoked' };
  if (lease.state === 'expired') return { kind: 'end', reason: 'expired' };
  const remaining = lease.expiresAt.getTime() - now;
  if (remaining <= 0) return { kind: 'end', reason: 'expired' };
  if (!lease.renewable) return { kind: 'wait-end', ms: remaining, reason: 'expired' };
  if (lease.expiresAt.getTime() >= lease.maxExpiresAt.getTime()) {
    return { kind: 'wait-end', ms: remaining, reason: 'max-ttl' };
  }
  return { kind: 'renew-after', ms: Math.max(remaining * renewAt, 0) };
}

const isTransient = (err: unknown) =>
  err instanceof VaultConnectionError ||
  err instanceof RateLimitedError ||
  err instanceof StoreUnavailableError ||
  err instanceof AuditUnavailableError ||
  err instanceof InternalError;

export function keepLeaseAlive(
  initial: Lease,
  renew: (increment: string | undefined) => Promise<Lease>,
  options: KeepAliveOptions,
): LeaseKeepAlive {
  const renewAt = options.renewAt ?? 2 / 3;
  const stopper = new AbortController();
  let current = initial;
  let retryMs = minRetryMs;
  let retrying = false;

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      if (stopper.signal.aborted) return resolve();
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        stopper.signal.removeEventListener('abort', done);
        resolve();
      }
      stopper.signal.addEventListener('abort', done, { once: true });
    });

  const onAbort = () => stopper.abort();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  if (options.signal?.aborted) stopper.abort();

  async function run(): Promise<LeaseEnd> {
    for (;;) {
      if (stopper.signal.aborted) return { reason: 'stopped', lease: current };
      const step = nextStep(current, Date.now(), renewAt);
      if (step.kind === 'end') return { reason: step.reason, lease: current };
      if (step.kind === 'wait-end') {
        await sleep(step.ms);
        if (stopper.signal.aborted) return { reason: 'stopped', lease: current };
        return { reason: step.reason, lease: { ...current, state: 'expired' } };
      }
      // After a transient failure the back-off sleep has already happened: renew at once.
      if (!retrying) await sleep(step.ms);
      if (stopper.signal.aborted) return { reason: 'stopped', lease: current };
      try {
        const renewed = await renew(options.increment);
        current = current.value === undefined ? renewed : { ...renewed, value: current.value };
        retryMs = minRetryMs;
        retrying = false;
        options.onRenew?.(current);
      } catch (err) {
        if (err instanceof LeaseRevokedError)
          return { reason: 'revoked', lease: { ...current, state: 'revoked' } };
        if (err instanceof LeaseExpiredError)
          return { reason: 'expired', lease: { ...current, state: 'expired' } };
        if (!isTransient(err)) {
          return {
            reason: 'error',
            lease: current,
            error: err instanceof Error ? err : new Error(String(err)),
          };
        }
        const remaining = current.expiresAt.getTime() - Date.now();
        await sleep(Math.min(retryMs, Math.max(remaining, 0)));
        retryMs = Math.min(retryMs * 2, maxRetryMs);
        retrying = true;
      }
    }
  }

  const done = run().then((end) => {
    options.signal?.removeEventListener('abort', onAbort);
    options.onEnd?.(end);
    return end;
  });

  return {
    get lease() {
      return current;
    },
    stop: () => stopper.abort(),
    done,
  };
}
