/**
 * What to do with a VaultLease, as pure functions of (object, observed Vault lease, now).
 * The reconciler performs the chosen step and builds the status with `leaseStatus` /
 * `refusedStatus`; both are deterministic, so reconciling an unchanged object yields an
 * identical status and therefore no write.
 */
import type { Identity } from '../contract/common.js';
import { finalizer, type VaultLeaseObject, type VaultLeaseStatus } from '../k8s/resources.js';
import { durationMs, formatDuration } from '../lib/duration.js';
import { readyCondition, setCondition } from './conditions.js';
import { formatIdentity, serviceAccountIdentity } from './tenancy.js';
import type { IssueLeaseInput, LeaseInfo } from './vault-port.js';

export type LeaseStep =
  | { kind: 'none' }
  | { kind: 'add-finalizer' }
  | { kind: 'finalize'; revoke: string | undefined }
  | { kind: 'issue'; request: IssueLeaseInput; revokeFirst: string | undefined }
  | { kind: 'renew'; leaseId: string; increment: string | undefined }
  | { kind: 'observe' };

export interface LeaseObserved {
  /** The Vault lease named by status.leaseId: undefined when there is none or it is gone. */
  lease: LeaseInfo | undefined;
}

export const leaseIdentity = (obj: VaultLeaseObject): Identity =>
  obj.spec.identity ?? serviceAccountIdentity(obj.metadata.namespace, obj.spec.serviceAccountName ?? '');

export function issueRequest(obj: VaultLeaseObject): IssueLeaseInput {
  const renewal = obj.spec.renewal;
  const renewable = renewal?.enabled === true;
  return {
    credentialName: obj.spec.credentialRef.name,
    identity: leaseIdentity(obj),
    renewable,
    ...(obj.spec.ttl ? { ttl: obj.spec.ttl } : {}),
    // Without renewal the lease can never outlive its TTL.
    ...(renewable && renewal?.maxTtl
      ? { maxTtl: renewal.maxTtl }
      : !renewable && obj.spec.ttl
        ? { maxTtl: obj.spec.ttl }
        : {}),
  };
}

const isTerminal = (phase: VaultLeaseStatus['phase']) => phase === 'Expired' || phase === 'Revoked';

/** The next step for a VaultLease. */
export function decideLease(obj: VaultLeaseObject, observed: LeaseObserved, now: Date): LeaseStep {
  const meta = obj.metadata;
  const status = obj.status ?? {};
  const hasFinalizer = meta.finalizers?.includes(finalizer) ?? false;
  if (meta.deletionTimestamp) {
    if (!hasFinalizer) return { kind: 'none' };
    const active = observed.lease && effectivePhase(observed.lease, now) === 'Active';
    return { kind: 'finalize', revoke: active ? observed.lease?.id : undefined };
  }
  if (!hasFinalizer) return { kind: 'add-finalizer' };

  const specChanged = status.observedGeneration !== meta.generation;
  if (!status.leaseId) return { kind: 'issue', request: issueRequest(obj), revokeFirst: undefined };
  if (specChanged) {
    const active = observed.lease && effectivePhase(observed.lease, now) === 'Active';
    return { kind: 'issue', request: issueRequest(obj), revokeFirst: active ? status.leaseId : undefined };
  }
  if (isTerminal(status.phase) || !observed.lease) return { kind: 'observe' };
  const renewAt = renewalTime(obj, observed.lease);
  if (renewAt !== undefined && now.getTime() >= renewAt && effectivePhase(observed.lease, now) === 'Active') {
    return { kind: 'renew', leaseId: observed.lease.id, increment: obj.spec.ttl };
  }
  return { kind: 'observe' };
}

export function effectivePhase(lease: LeaseInfo, now: Date): 'Active' | 'Expired' | 'Revoked' {
  if (lease.state === 'revoked') return 'Revoked';
  if (lease.state === 'expired' || Date.parse(lease.expiresAt) <= now.getTime()) return 'Expired';
  return 'Active';
}

/** The TTL Vault granted at issue (each renewal extends by about as much). */
function grantedTtlMs(obj: VaultLeaseObject, lease: LeaseInfo): number {
  const recorded = obj.status?.leaseId === lease.id ? obj.status.ttlSeconds : undefined;
  const seconds = recorded ?? Math.round((Date.parse(lease.expiresAt) - Date.parse(lease.issuedAt)) / 1000);
  return seconds * 1000;
}

/**
 * How long before expiry to renew. A renewBefore that is not shorter than the granted TTL
 * (spec.ttl omitted and the credential's default shorter, or a policy capping the TTL) would
 * make every renewal due at once, a hot loop: it is replaced by the default, a third of the
 * TTL, and `adjusted` says so for the status.
 */
export function renewBefore(
  obj: VaultLeaseObject,
  lease: LeaseInfo,
): { ms: number; adjusted?: { asked: number; ttl: number } } {
  const ttlMs = grantedTtlMs(obj, lease);
  const fallback = Math.floor(ttlMs / 3);
  const asked = obj.spec.renewal?.renewBefore;
  if (!asked) return { ms: fallback };
  const askedMs = durationMs(asked);
  return askedMs < ttlMs ? { ms: askedMs } : { ms: fallback, adjusted: { asked: askedMs, ttl: ttlMs } };
}

/** When the lease should be renewed, or undefined when it will not be (disabled or at its max). */
export function renewalTime(obj: VaultLeaseObject, lease: LeaseInfo): number | undefined {
  if (!obj.spec.renewal?.enabled || !lease.renewable) return undefined;
  const expiresAt = Date.parse(lease.expiresAt);
  if (expiresAt >= Date.parse(lease.maxExpiresAt)) return undefined;
  return expiresAt - renewBefore(obj, lease).ms;
}

export const renewBeforeCondition = 'RenewBeforeAdjusted';

/** The RenewBeforeAdjusted condition when renewBefore had to be replaced, else undefined. */
function renewBeforeAdjusted(obj: VaultLeaseObject, lease: LeaseInfo) {
  if (!obj.spec.renewal?.enabled) return undefined;
  const { ms, adjusted } = renewBefore(obj, lease);
  if (!adjusted) return undefined;
  const ttlSource = obj.spec.ttl ? 'as granted' : "the credential's default TTL";
  return {
    status: 'True' as const,
    reason: 'RenewBeforeNotShorterThanTtl',
    message:
      `spec.renewal.renewBefore (${formatDuration(adjusted.asked)}) is not shorter than the lease TTL ` +
      `(${formatDuration(adjusted.ttl)}, ${ttlSource}); renewing ${formatDuration(ms)} before expiry instead. ` +
      'Set spec.ttl, or a renewBefore shorter than the TTL.',
  };
}

/** The status that describes a Vault lease. */
export function leaseStatus(obj: VaultLeaseObject, lease: LeaseInfo, now: Date): VaultLeaseStatus {
  const phase = effectivePhase(lease, now);
  const who = formatIdentity(lease.identity);
  const previousTtl = obj.status?.leaseId === lease.id ? obj.status.ttlSeconds : undefined;
  const ttlSeconds =
    previousTtl ?? Math.round((Date.parse(lease.expiresAt) - Date.parse(lease.issuedAt)) / 1000);
  const ready =
    phase === 'Active'
      ? {
          status: 'True' as const,
          reason: 'LeaseActive',
          message: `lease of "${lease.credentialName}" v${lease.version} for ${who}`,
        }
      : phase === 'Expired'
        ? {
            status: 'False' as const,
            reason: 'LeaseExpired',
            message: `the lease expired at ${lease.expiresAt}`,
          }
        : {
            status: 'False' as const,
            reason: 'LeaseRevoked',
            message: `the lease was revoked${lease.revokeReason ? `: ${lease.revokeReason}` : ''}`,
          };
  return {
    phase,
    leaseId: lease.id,
    identity: who,
    version: lease.version,
    issuedAt: lease.issuedAt,
    expiresAt: lease.expiresAt,
    maxExpiresAt: lease.maxExpiresAt,
    ttlSeconds,
    renewCount: lease.renewCount,
    observedGeneration: obj.metadata.generation,
    conditions: readyCondition(
      setCondition(
        obj.status?.conditions,
        renewBeforeCondition,
        phase === 'Active' ? renewBeforeAdjusted(obj, lease) : undefined,
        obj.metadata.generation,
        now,
      ),
      ready,
      obj.metadata.generation,
      now,
    ),
  };
}

/** The status when the named lease is gone from Vault (a deleted tenant, a restored store). */
export function missingLeaseStatus(obj: VaultLeaseObject, now: Date): VaultLeaseStatus {
  const status = obj.status ?? {};
  return {
    ...status,
    phase: 'Revoked',
    conditions: readyCondition(
      setCondition(status.conditions, renewBeforeCondition, undefined, undefined, now),
      {
        status: 'False',
        reason: 'LeaseNotFound',
        message: `lease "${status.leaseId}" no longer exists in Vault`,
      },
      obj.metadata.generation,
      now,
    ),
  };
}

export type Refusal = { phase: 'Denied' | 'Pending' | 'Failed'; reason: string; message: string };

/** Maps an error from issuing to a phase, or undefined when it is transient (retry with backoff). */
export function refusalOf(err: unknown): Refusal | undefined {
  const code = (err as { code?: string } | undefined)?.code;
  const message = err instanceof Error ? err.message : String(err);
  if (code === 'permission_denied') return { phase: 'Denied', reason: 'PermissionDenied', message };
  if (code === 'not_found') return { phase: 'Pending', reason: 'CredentialNotFound', message };
  if (code === 'bad_request' || code === 'conflict')
    return { phase: 'Failed', reason: 'InvalidRequest', message };
  return undefined;
}

/** The status after issuing was refused: no lease, the reason in the Ready condition. */
export function refusedStatus(obj: VaultLeaseObject, refusal: Refusal, now: Date): VaultLeaseStatus {
  return {
    phase: refusal.phase,
    identity: formatIdentity(leaseIdentity(obj)),
    observedGeneration: obj.metadata.generation,
    conditions: readyCondition(
      setCondition(obj.status?.conditions, renewBeforeCondition, undefined, undefined, now),
      { status: 'False', reason: refusal.reason, message: refusal.message },
      obj.metadata.generation,
      now,
    ),
  };
}

/** Retry delays for refused leases: they also come back when a VaultCredential changes. */
export const refusalRetryMs: Record<Refusal['phase'], number> = {
  Denied: 300_000,
  Pending: 60_000,
  Failed: 600_000,
};

/** When to look at the object again, in ms from now (undefined: only on change). */
export function nextLeaseCheck(
  obj: VaultLeaseObject,
  status: VaultLeaseStatus,
  lease: LeaseInfo | undefined,
  now: Date,
) {
  if (status.phase === 'Active' && lease) {
    const expiresAt = Date.parse(lease.expiresAt);
    const renewAt = renewalTime(obj, lease);
    const at = renewAt !== undefined ? Math.min(renewAt, expiresAt) : expiresAt;
    return Math.max(0, at - now.getTime());
  }
  if (status.phase === 'Denied' || status.phase === 'Pending' || status.phase === 'Failed') {
    return refusalRetryMs[status.phase];
  }
  return undefined;
}

/** Events for a status transition; messages never carry a value. */
export function leaseEvents(
  before: VaultLeaseStatus | undefined,
  after: VaultLeaseStatus,
): Array<{ type: 'Normal' | 'Warning'; reason: string; note: string }> {
  const events: Array<{ type: 'Normal' | 'Warning'; reason: string; note: string }> = [];
  const adjusted = after.conditions?.find((c) => c.type === renewBeforeCondition);
  if (adjusted && !before?.conditions?.some((c) => c.type === renewBeforeCondition)) {
    events.push({ type: 'Warning', reason: adjusted.reason, note: adjusted.message });
  }
  const ready = after.conditions?.find((c) => c.type === 'Ready');
  const leaseChanged = after.leaseId !== undefined && after.leaseId !== before?.leaseId;
  if (after.phase === 'Active' && leaseChanged) {
    events.push({
      type: 'Normal',
      reason: 'Issued',
      note: `issued lease ${after.leaseId} for ${after.identity}, expires ${after.expiresAt}`,
    });
  } else if (after.phase === 'Active' && (after.renewCount ?? 0) > (before?.renewCount ?? 0)) {
    events.push({ type: 'Normal', reason: 'Renewed', note: `renewed until ${after.expiresAt}` });
  } else if (
    after.phase !== before?.phase ||
    (ready && ready.reason !== before?.conditions?.find((c) => c.type === 'Ready')?.reason)
  ) {
    const warning = after.phase === 'Denied' || after.phase === 'Failed' || after.phase === 'Expired';
    events.push({
      type: warning ? 'Warning' : 'Normal',
      reason: after.phase === 'Active' ? 'Active' : (after.phase ?? 'Unknown'),
      note: ready?.message ?? '',
    });
  }
  return events;
}

export const describeTtl = (ms: number) => formatDuration(ms);
