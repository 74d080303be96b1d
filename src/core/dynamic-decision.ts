import { effectiveState, type LeaseRecord } from './lease-record.js';

/**
 * An upstream account issued for a lease, recorded before the engine creates it (so a crash
 * right after cannot leave it unknown) and deleted only once the engine removed it.
 */
export interface AccountRecord {
  leaseId: string;
  credentialName: string;
  engine: string;
  username: string;
  createdAt: string;
  /** The process that is issuing it; another process waits out a grace period first. */
  owner: string;
  attempts?: number;
  nextAttemptAt?: string;
  lastError?: string;
}

export type AccountAction =
  | { kind: 'keep'; until?: number }
  | { kind: 'revoke'; reason: string }
  | { kind: 'wait'; until: number };

export interface DecisionContext {
  now: Date;
  /** This process. */
  instance: string;
  /** Leases this process is issuing right now. */
  issuing: ReadonlySet<string>;
  /** How long another process may take from recording an account to committing its lease. */
  issueGraceMs: number;
}

/** What to do with an upstream account, given its lease as stored (or its absence). */
export function decideAccount(
  account: AccountRecord,
  lease: LeaseRecord | undefined,
  ctx: DecisionContext,
): AccountAction {
  const now = ctx.now.getTime();
  let reason: string;
  if (!lease) {
    if (ctx.issuing.has(account.leaseId)) return { kind: 'keep' };
    const graceEnds = Date.parse(account.createdAt) + ctx.issueGraceMs;
    if (account.owner !== ctx.instance && now < graceEnds) return { kind: 'wait', until: graceEnds };
    reason = 'its lease was never committed';
  } else {
    const state = effectiveState(lease, ctx.now);
    if (state === 'active') return { kind: 'keep', until: Date.parse(lease.expiresAt) };
    reason = state === 'revoked' ? 'lease revoked' : 'lease expired';
  }
  const next = account.nextAttemptAt ? Date.parse(account.nextAttemptAt) : 0;
  if (next > now) return { kind: 'wait', until: next };
  return { kind: 'revoke', reason };
}

/** Exponential backoff after `attempts` failures: 0.5 s, 1 s, 2 s ... capped. */
export const backoffMs = (attempts: number, baseMs = 500, maxMs = 30_000): number =>
  Math.min(maxMs, baseMs * 2 ** Math.max(0, attempts - 1));
