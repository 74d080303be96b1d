/**
 * Reconciles one VaultLease: performs the step `decideLease` chose, builds the status, and
 * writes it only when it differs. Expiry and renewal come back through a timed requeue at
 * the moment they are due.
 */

import { type KubeClient, resourceTypes } from '../k8s/api-client.js';
import { finalizer, type VaultLeaseObject, type VaultLeaseStatus } from '../k8s/resources.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { sameJson, statusPatch } from './conditions.js';
import type { EventRecorder } from './events.js';
import {
  decideLease,
  leaseEvents,
  leaseStatus,
  missingLeaseStatus,
  nextLeaseCheck,
  refusalOf,
  refusedStatus,
} from './lease-decision.js';
import type { LeaseInfo, VaultPort } from './vault-port.js';

export interface ReconcileOutcome {
  /** Reconcile again after this many ms (expiry, renewal, a refused request). */
  requeueAfterMs?: number;
}

export interface ReconcilerDeps {
  client: Pick<KubeClient, 'jsonPatch' | 'mergePatch' | 'get'>;
  vault: VaultPort;
  /** The tenant of a namespace (namespaceTenant with the controller's cluster name). */
  tenantOf: (namespace: string) => string;
  events: EventRecorder;
  clock: Clock;
  logger: Logger;
}

export async function addFinalizer<T extends VaultLeaseObject | { metadata: VaultLeaseObject['metadata'] }>(
  client: ReconcilerDeps['client'],
  type: (typeof resourceTypes)[keyof typeof resourceTypes],
  obj: T,
): Promise<T> {
  const finalizers = obj.metadata.finalizers;
  // The `test` op makes this a compare-and-swap on the list we saw.
  const ops = finalizers
    ? [
        { op: 'test', path: '/metadata/finalizers', value: finalizers },
        { op: 'add', path: '/metadata/finalizers/-', value: finalizer },
      ]
    : [{ op: 'add', path: '/metadata/finalizers', value: [finalizer] }];
  return client.jsonPatch<T>(type, obj.metadata.namespace, obj.metadata.name, ops);
}

export async function removeFinalizer(
  client: ReconcilerDeps['client'],
  type: (typeof resourceTypes)[keyof typeof resourceTypes],
  obj: { metadata: VaultLeaseObject['metadata'] },
): Promise<void> {
  const finalizers = obj.metadata.finalizers ?? [];
  const index = finalizers.indexOf(finalizer);
  if (index < 0) return;
  await client.jsonPatch(type, obj.metadata.namespace, obj.metadata.name, [
    { op: 'test', path: `/metadata/finalizers/${index}`, value: finalizer },
    { op: 'remove', path: `/metadata/finalizers/${index}` },
  ]);
}

export function createLeaseReconciler(
  deps: ReconcilerDeps & { onExpiredRestart?(obj: VaultLeaseObject): Promise<void> },
) {
  const { client, vault, clock } = deps;
  const type = resourceTypes.vaultLeases;

  async function writeStatus(obj: VaultLeaseObject, desired: VaultLeaseStatus): Promise<boolean> {
    if (sameJson(obj.status ?? {}, desired)) return false;
    const patch = statusPatch(obj.status, desired);
    await client.mergePatch(
      type,
      obj.metadata.namespace,
      obj.metadata.name,
      { status: patch },
      { subresource: 'status' },
    );
    for (const event of leaseEvents(obj.status, desired)) {
      await deps.events.record(obj, event.type, event.reason, event.note);
    }
    if (desired.phase === 'Expired' && obj.status?.phase !== 'Expired' && obj.spec.onExpiry === 'restart') {
      await deps.onExpiredRestart?.(obj);
    }
    return true;
  }

  return async function reconcile(initial: VaultLeaseObject): Promise<ReconcileOutcome> {
    let obj = initial;
    const tenant = deps.tenantOf(obj.metadata.namespace);
    const leaseId = obj.status?.leaseId;
    const observed: { lease: LeaseInfo | undefined } = {
      lease: leaseId ? await vault.getLease(tenant, leaseId) : undefined,
    };
    let step = decideLease(obj, observed, clock());

    if (step.kind === 'none') return {};
    if (step.kind === 'finalize') {
      if (step.revoke)
        await vault.revokeLease(tenant, step.revoke, `VaultLease ${obj.metadata.name} deleted`);
      await removeFinalizer(client, type, obj);
      return {};
    }
    if (step.kind === 'add-finalizer') {
      obj = { ...obj, metadata: (await addFinalizer(client, type, obj)).metadata };
      step = decideLease(obj, observed, clock());
    }

    let status: VaultLeaseStatus;
    let lease = observed.lease;
    if (step.kind === 'issue') {
      if (step.revokeFirst) {
        await vault.revokeLease(tenant, step.revokeFirst, `VaultLease ${obj.metadata.name} changed`);
      }
      // A lease issued before a crash, whose id never reached the status, is adopted
      // rather than issued again; one of a credential the object no longer names (edited while
      // the controller was down) is revoked, not left to run out.
      const uid = obj.metadata.uid;
      const orphan =
        !obj.status?.leaseId && uid
          ? await vault.findLeaseFor(tenant, uid, step.request.identity)
          : undefined;
      const adopt = orphan?.credentialName === step.request.credentialName;
      if (orphan && !adopt) {
        await vault.revokeLease(tenant, orphan.id, `VaultLease ${obj.metadata.name} changed`);
      }
      try {
        lease = adopt
          ? orphan
          : await vault.issueLease(tenant, { ...step.request, ...(uid ? { owner: uid } : {}) });
        status = leaseStatus({ ...obj, status: { ...obj.status, leaseId: undefined } }, lease, clock());
      } catch (err) {
        const refusal = refusalOf(err);
        if (!refusal) throw err;
        lease = undefined;
        status = refusedStatus(obj, refusal, clock());
      }
    } else if (step.kind === 'renew') {
      try {
        lease = await vault.renewLease(tenant, step.leaseId, step.increment);
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code !== 'lease_expired' && code !== 'lease_revoked' && code !== 'conflict') throw err;
        lease = await vault.getLease(tenant, step.leaseId);
      }
      status = lease ? leaseStatus(obj, lease, clock()) : missingLeaseStatus(obj, clock());
    } else {
      status = lease ? leaseStatus(obj, lease, clock()) : missingLeaseStatus(obj, clock());
    }

    await writeStatus(obj, status);
    const after = nextLeaseCheck(obj, status, lease, clock());
    return after === undefined ? {} : { requeueAfterMs: after };
  };
}
