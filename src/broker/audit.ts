/**
 * How the broker reports each request to the Vault API: one `POST /v1/leases/:id/use`
 * (`lease.use` in the audit, purpose "broker") per lease whose value a request carries,
 * posted before the value leaves the broker. The same call is the per-request lease check:
 * the server answers 410 once the lease is revoked or expired, and 403 when the credential
 * does not name the host (or the broker may no longer lease it), so the broker fails closed
 * on either, and also when the use cannot be recorded. The value the call returns is not
 * needed: the broker took it when it created the lease.
 */
import type { UseLeaseInput } from '../sdk/index.js';
import { LeaseExpiredError, LeaseRevokedError, PermissionDeniedError } from '../sdk/index.js';

/** The one API call the broker needs per request; `vault.leases` satisfies it. */
export interface LeaseUsePort {
  use(leaseId: string, input: UseLeaseInput): Promise<unknown>;
}

/** One request as the broker reports it: never a value, never a query string. */
export interface BrokeredRequest {
  host: string;
  port: number;
  /** Upper case, e.g. `"POST"`. */
  method: string;
  /** The path without its query string. */
  path: string;
}

export type UseRefusal = {
  code: 'lease_revoked' | 'lease_expired' | 'host_not_allowed' | 'audit_unavailable';
  message: string;
};

export interface UseReporter {
  /** Undefined when the value may go out; otherwise why not. */
  allowed(leaseId: string, use: BrokeredRequest): Promise<UseRefusal | undefined>;
  /** A refused attempt; failures to record it are the caller's to log. */
  denied(leaseId: string, use: BrokeredRequest, reason: string): Promise<void>;
}

export const brokerPurpose = 'broker';

export function createUseReporter(port: LeaseUsePort): UseReporter {
  return {
    async allowed(leaseId, use) {
      try {
        await port.use(leaseId, { purpose: brokerPurpose, ...use, outcome: 'allowed' });
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
      await port.use(leaseId, {
        purpose: brokerPurpose,
        ...use,
        outcome: 'denied',
        reason: reason.slice(0, 512),
      });
    },
  };
}
