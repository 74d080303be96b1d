import { leaseLabels } from '../../../src/webhook/annotations.js';
import type { Lease } from './types.js';

/** A workload identity is `system:serviceaccount:NAMESPACE:NAME` (Kubernetes login). */
export function parseServiceAccount(name: string): { namespace: string; serviceAccount: string } | undefined {
  const match = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(name);
  return match ? { namespace: match[1]!, serviceAccount: match[2]! } : undefined;
}

export interface Holder {
  /** "pod api-7d9f" or "serviceaccount payments". */
  label: string;
  leases: Lease[];
}

/**
 * Leases held in Kubernetes, by namespace and then by pod (the agent labels its leases with its
 * pod) or, without a pod label, by ServiceAccount. Only workload identities: lease labels are
 * whatever the lease's creator wrote, so they never make an agent's or a person's lease a pod's,
 * and a ServiceAccount identity (proven by Kubernetes login) places its lease in its own
 * namespace whatever the label says. Namespaces and holders in name order.
 */
export function leasesByPod(leases: Iterable<Lease>): { namespace: string; holders: Holder[] }[] {
  const out = new Map<string, Map<string, Lease[]>>();
  for (const lease of leases) {
    if (lease.identity.type !== 'workload') continue;
    const sa = parseServiceAccount(lease.identity.name);
    const pod = lease.labels?.[leaseLabels.pod];
    const namespace = sa?.namespace ?? lease.labels?.[leaseLabels.namespace];
    const holder = pod ? `pod ${pod}` : sa ? `serviceaccount ${sa.serviceAccount}` : lease.identity.name;
    const ns = namespace ?? '(unknown namespace)';
    const holders = out.get(ns) ?? new Map<string, Lease[]>();
    holders.set(holder, [...(holders.get(holder) ?? []), lease]);
    out.set(ns, holders);
  }
  return [...out.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([namespace, holders]) => ({
      namespace,
      holders: [...holders.entries()]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([label, held]) => ({ label, leases: held })),
    }));
}
