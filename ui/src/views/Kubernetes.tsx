import { useLayoutEffect, useMemo, useRef } from 'preact/hooks';
import { onTtlTick } from '../components/ttlClock.js';
import { useLiveLeases } from '../components/useLiveLeases.js';
import type { Api } from '../lib/api.js';
import { leasesByPod } from '../lib/kubernetes.js';
import { formatRemaining } from '../lib/leases.js';

/** Pods and service accounts holding leases, from workload identities and lease labels. */
export function KubernetesView({ api }: { api: Api }) {
  const { index, version } = useLiveLeases(api);
  const byNamespace = useMemo(() => leasesByPod(index.values()), [index, version]);

  return (
    <section aria-labelledby="k8s-title">
      <h1 id="k8s-title">Kubernetes</h1>
      <p class="muted">
        Leases of workload identities, by namespace and by pod (the injected agent labels its leases with its
        pod) or service account (Kubernetes login identities), from the live lease stream. A pod name is the
        lease's label; each lease names the identity it was issued to.
      </p>
      {byNamespace.length === 0 && <p class="empty">No workload holds a lease.</p>}
      {byNamespace.map(({ namespace, holders }) => (
        <section
          key={namespace}
          class="group"
          aria-label={`Namespace ${namespace}`}
          data-namespace={namespace}
        >
          <h2>Namespace {namespace}</h2>
          <ul class="plain cards">
            {holders.map(({ label, leases }) => (
              <li class="card" key={label} data-holder={label}>
                <strong>{label}</strong>
                <ul class="plain">
                  {leases.map((lease) => (
                    <li key={lease.id} class="small">
                      {lease.credentialName} v{lease.version} · <code>{lease.id}</code> ·{' '}
                      <Remaining expiresAt={lease.expiresAt} /> left · held by {lease.identity.name}
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
