/**
 * How the broker reports each request to the Vault API: one `lease.use` record per lease
 * whose value a request carries, posted before the value leaves the broker. The same call is
 * the per-request lease check: the server answers 410 once the lease is revoked or expired,
 * and 403 when the credential does not name the host, so the broker fails closed on either,
 * and also when the audit cannot be written.
 */
import type { LeaseUse } from '../sdk/index.js';
import { LeaseExpiredError, LeaseRevokedError, PermissionDeniedError } from '../sdk/index.js';

/** The one API call the broker needs; `vault.leases` satisfies it. */
export interface LeaseUsePort {
  recordUse(leaseId: string, use: LeaseUse): Promise<unknown>;
}

export type UseRefusal = {
  code: 'lease_revoked' | 'lease_expired' | 'host_not_allowed' | 'audit_unavailable';
  message: string;
};

export interface UseReporter {
  /** Undefined when the value may go out; otherwise why not. */
  allowed(leaseId: string, use: Omit<LeaseUse, 'outcome'>): Promise<UseRefusal | undefined>;
  /** A refused attempt; failures to record it are the caller's to log. */
  denied(leaseId: string, use: Omit<LeaseUse, 'outcome'>, reason: string): Promise<void>;
}

export function createUseReporter(port: LeaseUsePort): UseReporter {
  return {
    async allowed(leaseId, use) {
      try {
        await port.recordUse(leaseId, { ...use, outcome: 'allowed' });
        return undefined;
      } catch (err) {
        if (err instanceof LeaseRevokedError) return { code: 'lease_revoked', message: err.message };
        if (err instanceof LeaseExpiredError) return { code: 'lease_expired', message: err.message };
        if (err instanceof PermissionDeniedError) return { code: 'host_not_allowed', message: err.message };
        return {
          code: 'audit_unavailable',
          message: `the use could not be audited, so the value was not sent: ${(err as Error).message}`,
        };
      }
    },
    async denied(leaseId, use, reason) {
      await port.recordUse(leaseId, { ...use, outcome: 'denied', reason: reason.slice(0, 512) });
    },
  };
}
