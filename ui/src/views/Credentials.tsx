import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { ConfirmDialog } from '../components/Confirm.js';
import { useConfirm } from '../components/useConfirm.js';
import { useLoad } from '../components/useLoad.js';
import { type Api, allActiveLeases } from '../lib/api.js';
import type { Credential } from '../lib/types.js';

/** Metadata only: GET /v1/credentials never returns values; revealing is per lease, audited. */
export function CredentialsView({ api }: { api: Api }) {
  const { data, error, reload } = useLoad(async () => {
    const [{ credentials }, leases] = await Promise.all([api.listCredentials(), allActiveLeases(api)]);
    const counts = new Map<string, number>();
    for (const lease of leases) counts.set(lease.credentialName, (counts.get(lease.credentialName) ?? 0) + 1);
    return { credentials, counts };
  }, [api]);
  const [open, setOpen] = useState<string>();
  const confirm = useConfirm();

  const rotate = (credential: Credential) =>
    confirm.ask({
      title: `Rotate ${credential.name}?`,
      body: (
        <p>
          A new generated version {credential.currentVersion + 1} becomes current. Existing leases keep their
          version until they end.
        </p>
      ),
      confirmLabel: 'Rotate',
      run: async () => {
        const updated = await api.rotateCredential(credential.name);
        confirm.setStatus({
          text: `Rotated ${updated.name} to version ${updated.currentVersion}.`,
          error: false,
        });
        reload();
      },
    });

  const revokeAll = (credential: Credential, count: number) =>
    confirm.ask({
      title: `Revoke all ${count} active lease${count === 1 ? '' : 's'} of ${credential.name}?`,
      body: <p>Every holder of {credential.name} loses access now.</p>,
      confirmLabel: `Revoke ${count} lease${count === 1 ? '' : 's'}`,
      danger: true,
      run: async () => {
        const result = await api.bulkRevoke({ credentialName: credential.name });
        confirm.setStatus({
          text: `Revoked ${result.revoked} lease${result.revoked === 1 ? '' : 's'} of ${credential.name}.`,
          error: false,
        });
        reload();
      },
    });

  return (
    <section aria-labelledby="credentials-title">
      <div class="heading-row">
        <h1 id="credentials-title">Credentials</h1>
        <button type="button" class="secondary" onClick={reload}>
          Refresh
        </button>
      </div>
      <p class="muted">
        Values are never listed. To see one, reveal it through a lease (audited, and only if your policy
        grants reveal).
      </p>
      {error && (
        <p role="alert" class="error">
          {error}
        </p>
      )}
      {confirm.status && (
        <p role={confirm.status.error ? 'alert' : 'status'} class={confirm.status.error ? 'error' : 'ok'}>
          {confirm.status.text}
        </p>
      )}
      {data && data.credentials.length === 0 && <p class="empty">No credentials you may list.</p>}
      {data && data.credentials.length > 0 && (
        <ScrollRegion label="Credentials table">
          <table>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Type</th>
                <th scope="col">Version</th>
                <th scope="col">Fingerprint</th>
                <th scope="col">Active leases</th>
                <th scope="col">Lease TTL</th>
                <th scope="col">Updated</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {data.credentials.map((credential) => {
                const current = credential.versions.find((v) => v.version === credential.currentVersion);
                const count = data.counts.get(credential.name) ?? 0;
                const expanded = open === credential.name;
                return [
                  <tr key={credential.name}>
                    <th scope="row">
                      {credential.name}
                      {credential.dynamic && <span class="label">dynamic: {credential.dynamic.engine}</span>}
                    </th>
                    <td>{credential.type}</td>
                    <td>{credential.currentVersion}</td>
                    <td>
                      <code title={current?.fingerprint}>
                        {current ? `${current.fingerprint.slice(0, 16)}…` : '—'}
                      </code>
                    </td>
                    <td>{count}</td>
                    <td>
                      {credential.leases?.defaultTtl ?? 'default'}
                      {credential.leases?.maxTtl ? ` (max ${credential.leases.maxTtl})` : ''}
                    </td>
                    <td>{new Date(credential.updatedAt).toLocaleString()}</td>
                    <td class="row-actions">
                      <button
                        type="button"
                        class="secondary"
                        aria-expanded={expanded}
                        onClick={() => setOpen(expanded ? undefined : credential.name)}
                      >
                        {expanded ? 'Hide' : 'Details'}
                        <span class="sr-only"> of {credential.name}</span>
                      </button>
                      <button type="button" class="secondary" onClick={() => rotate(credential)}>
                        Rotate<span class="sr-only"> {credential.name}</span>
                      </button>
                      <button
                        type="button"
                        class="danger"
                        disabled={count === 0}
                        onClick={() => revokeAll(credential, count)}
                      >
                        Revoke leases<span class="sr-only"> of {credential.name}</span>
                      </button>
                    </td>
                  </tr>,
                  expanded && (
                    <tr key={`${credential.name}-details`} class="details">
                      <td colSpan={8}>
                        <CredentialDetails credential={credential} />
                      </td>
                    </tr>
                  ),
                ];
              })}
            </tbody>
          </table>
        </ScrollRegion>
      )}
      <ConfirmDialog
        request={confirm.request}
        busy={confirm.busy}
        onCancel={confirm.cancel}
        onConfirm={confirm.confirm}
      />
    </section>
  );
}

function CredentialDetails({ credential }: { credential: Credential }) {
  const metadata = Object.entries(credential.metadata);
  return (
    <div class="details-body">
      <h2 class="h3">Metadata</h2>
      {metadata.length === 0 ? (
        <p class="muted">None.</p>
      ) : (
        <dl class="kv">
          {metadata.map(([k, v]) => [<dt key={`k-${k}`}>{k}</dt>, <dd key={`v-${k}`}>{v}</dd>])}
        </dl>
      )}
      <h2 class="h3">Versions</h2>
      <ul class="plain">
        {[...credential.versions].reverse().map((version) => (
          <li key={version.version}>
            v{version.version} · {new Date(version.createdAt).toLocaleString()} · fingerprint{' '}
            <code class="wrap">{version.fingerprint}</code>
            {version.version === credential.currentVersion && <strong> (current)</strong>}
          </li>
        ))}
      </ul>
    </div>
  );
}

function ScrollRegion(props: { label: string; children: ComponentChildren }) {
  return (
    // biome-ignore lint/a11y/noNoninteractiveTabindex: a region that scrolls sideways (200% zoom) must be reachable by keyboard
    <section class="table-wrap" aria-label={props.label} tabIndex={0}>
      {props.children}
    </section>
  );
}
