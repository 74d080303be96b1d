/**
 * Which etcd member a call goes to. The etcd3 client sends each call to a random configured
 * endpoint. Its own circuit breaker is off here (it opens on timeouts too, and would turn
 * one slow call into a burst of refusals), and without anything in its place a member that
 * is down keeps getting its share of the calls: with three endpoints and one member gone,
 * a third of all calls failed, for as long as the member stayed down.
 *
 * This guard remembers a member that could not be connected to, or did not answer in time
 * (a member that hangs, or whose pod is gone without closing its connections), and skips it
 * for a back-off (doubling up to a few seconds) while another member is not known to be down.
 * It sends a call that failed to connect to the next member: a call that never got a
 * connection never reached etcd, so sending it again is safe, a transaction included. Any
 * other failure is passed through as it is: the caller decides (reads are sent again, see
 * etcd-store.ts; a transaction that timed out is reported as outcome unknown).
 */
import { GRPCDeadlineExceededError, GRPCUnavailableError, type IOptions } from 'etcd3';

export type EtcdFaultPolicy = NonNullable<NonNullable<IOptions['faultHandling']>['global']>;
type Policy = EtcdFaultPolicy;

export interface HostGuard {
  /** The per-member policy the etcd3 client asks for each endpoint. */
  host: (host: string) => EtcdFaultPolicy;
  /** The policy around each call (across members). */
  global: EtcdFaultPolicy;
}

export interface HostGuardOptions {
  /** First back-off after a failed connection to a member (default 500 ms). */
  minBackoffMs?: number;
  /** Longest back-off (default 5 s). */
  maxBackoffMs?: number;
  now?: () => number;
}

/** gRPC's wording for a call that failed because no connection to the member could be made. */
export const neverSent = (err: unknown): boolean =>
  err instanceof Error && /No connection established|ECONNREFUSED|Failed to connect/i.test(err.message);

/** A failure that says the member could not be reached or did not answer, not that it refused. */
export const unreachable = (err: unknown): boolean =>
  neverSent(err) ||
  err instanceof GRPCDeadlineExceededError ||
  err instanceof GRPCUnavailableError ||
  (err instanceof Error && /DEADLINE_EXCEEDED|UNAVAILABLE|deadline exceeded/i.test(err.message));

class MemberSkipped extends Error {
  constructor(host: string) {
    super(`etcd member ${host} is skipped: it could not be connected to a moment ago`);
  }
}

const events = { onSuccess: () => ({ dispose() {} }), onFailure: () => ({ dispose() {} }) };

export function createHostGuard(options: HostGuardOptions = {}): HostGuard {
  const minBackoffMs = options.minBackoffMs ?? 500;
  const maxBackoffMs = options.maxBackoffMs ?? 5_000;
  const now = options.now ?? Date.now;
  const down = new Map<string, { until: number; backoffMs: number }>();
  const hosts = new Set<string>();

  const isDown = (host: string) => (down.get(host)?.until ?? 0) > now();

  const hostPolicy = (host: string): Policy => {
    hosts.add(host);
    return {
      ...events,
      async execute<T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T): Promise<T> {
        // Skipped only while another member may answer: with all down, each is still tried.
        if (isDown(host) && [...hosts].some((other) => !isDown(other))) throw new MemberSkipped(host);
        try {
          const result = await fn({ signal: new AbortController().signal });
          down.delete(host);
          return result;
        } catch (err) {
          if (unreachable(err)) {
            const backoffMs = Math.min((down.get(host)?.backoffMs ?? minBackoffMs / 2) * 2, maxBackoffMs);
            down.set(host, { until: now() + backoffMs, backoffMs });
          }
          throw err;
        }
      },
    } as unknown as Policy;
  };

  /** Runs a call once, and again on the next member for as long as it never got a connection. */
  const globalPolicy = {
    ...events,
    async execute<T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T): Promise<T> {
      for (let attempt = 1; ; attempt++) {
        try {
          return await fn({ signal: new AbortController().signal });
        } catch (err) {
          if (!neverSent(err) || attempt >= hosts.size) throw err;
        }
      }
    },
  } as unknown as Policy;

  return {
    host: hostPolicy,
    global: globalPolicy,
  };
}
