import { useMemo } from 'preact/hooks';
import { useLiveLeases } from '../components/useLiveLeases.js';
import { useNow } from '../components/useNow.js';
import type { Api } from '../lib/api.js';
import { formatRemaining } from '../lib/leases.js';
import type { Lease } from '../lib/types.js';

/** A workload identity is `system:serviceaccount:NAMESPACE:NAME` (Kubernetes login). */
export function parseServiceAccount(name: string): { namespace: string; serviceAccount: string } | undefined {
  const match = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(name);
  return match ? { namespace: match[1]!, serviceAccount: match[2]! } : undefined;
}

const podLabel = (lease: Lease) =>
  Object.entries(lease.labels ?? {}).find(([key]) => /(^|\/)pod(-name)?$/.test(key))?.[1];

/** Pods and service accounts holding leases, from workload identities and lease labels. */
export function KubernetesView({ api }: { api: Api }) {
  const { leases } = useLiveLeases(api);
  const now = useNow(1000);
  const byNamespace = useMemo(() => {
    const out = new Map<string, Map<string, Lease[]>>();
    for (const lease of leases.values()) {
      const sa = lease.identity.type === 'workload' ? parseServiceAccount(lease.identity.name) : undefined;
      const namespace = sa?.namespace ?? lease.labels?.['vault.ghoststack.io/namespace'];
      if (!sa && !namespace && lease.identity.type !== 'workload') continue;
      const ns = namespace ?? '(unknown namespace)';
      const holder = podLabel(lease)
        ? `pod ${podLabel(lease)}`
        : sa
          ? `serviceaccount ${sa.serviceAccount}`
          : lease.identity.name;
      const holders = out.get(ns) ?? new Map<string, Lease[]>();
      holders.set(holder, [...(holders.get(holder) ?? []), lease]);
      out.set(ns, holders);
    }
    return [...out.entries()].sort(([a], [b]) => a.localeCompare(b));
  }, [leases]);

  return (
    <section aria-labelledby="k8s-title">
      <h1 id="k8s-title">Kubernetes</h1>
      <p class="muted">
        Leases held by workloads (Kubernetes login identities), by namespace and pod or service account, from
        the live lease stream.
      </p>
      {byNamespace.length === 0 && <p class="empty">No workload holds a lease.</p>}
      {byNamespace.map(([namespace, holders]) => (
        <section key={namespace} class="group" aria-label={`Namespace ${namespace}`}>
          <h2>Namespace {namespace}</h2>
          <ul class="plain cards">
            {[...holders.entries()].map(([holder, held]) => (
              <li class="card" key={holder}>
                <strong>{holder}</strong>
                <ul class="plain">
                  {held.map((lease) => (
                    <li key={lease.id} class="small">
                      {lease.credentialName} v{lease.version} · <code>{lease.id}</code> ·{' '}
                      {formatRemaining(Date.parse(lease.expiresAt) - now)} left
                    </li>
                  ))}
                </ul>
              </li>
            ))}
          </ul>
        </section>
      ))}
    </section>
  );
}
