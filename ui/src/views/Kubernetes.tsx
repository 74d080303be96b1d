import { useLayoutEffect, useMemo, useRef } from 'preact/hooks';
import { onTtlTick } from '../components/ttlClock.js';
import { useLiveLeases } from '../components/useLiveLeases.js';
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
  const { index, version } = useLiveLeases(api);
  const byNamespace = useMemo(() => {
    const out = new Map<string, Map<string, Lease[]>>();
    for (const lease of index.values()) {
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
  }, [index, version]);

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
                      <Remaining expiresAt={lease.expiresAt} /> left
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

/** Time left, kept current by the shared one-second clock without re-rendering. */
function Remaining({ expiresAt }: { expiresAt: string }) {
  const ref = useRef<HTMLSpanElement>(null);
  const expires = Date.parse(expiresAt);
  useLayoutEffect(
    () =>
      onTtlTick(expires, (left) => {
        if (ref.current) ref.current.textContent = formatRemaining(left);
      }),
    [expires],
  );
  return <span ref={ref} />;
}
