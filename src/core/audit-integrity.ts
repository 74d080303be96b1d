/**
 * Tenants whose audit chain failed an integrity check in this process. A tampered chain
 * stops that tenant's writes (fail closed: nothing happens that could not be audited on a
 * trustworthy chain) until an operator restores the store and restarts; /readyz and the
 * metrics show it.
 */
import type { Clock } from '../lib/clock.js';
import { VaultError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';

export interface TamperReport {
  tenant: string;
  reason: string;
  detectedAt: string;
}

export function createAuditIntegrity(deps: { clock: Clock; logger: Logger }) {
  const tampered = new Map<string, TamperReport>();

  const refusal = (report: TamperReport) =>
    new VaultError(
      'audit_unavailable',
      `the audit chain of tenant "${report.tenant}" failed its integrity check (${report.reason}); writes to this tenant are stopped until an operator restores the store and restarts the server`,
    );

  return {
    /** Records the tamper (logged once per tenant) and returns the error that refuses the write. */
    report(tenant: string, reason: string): VaultError {
      let report = tampered.get(tenant);
      if (!report) {
        report = { tenant, reason, detectedAt: deps.clock().toISOString() };
        tampered.set(tenant, report);
        deps.logger.error({ tenant, reason }, 'audit chain tampered: writes to this tenant are stopped');
      }
      return refusal(report);
    },
    /** Throws when the tenant's chain was found tampered. */
    assertIntact(tenant: string): void {
      const report = tampered.get(tenant);
      if (report) throw refusal(report);
    },
    list: (): TamperReport[] => [...tampered.values()],
  };
}

export type AuditIntegrity = ReturnType<typeof createAuditIntegrity>;
