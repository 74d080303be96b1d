import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ConfirmDialog } from '../components/Confirm.js';
import { useConfirm } from '../components/useConfirm.js';
import { useLiveLeases } from '../components/useLiveLeases.js';
import type { Api } from '../lib/api.js';
import { type GroupBy, type LeaseGroup, listItems } from '../lib/lease-index.js';
import { identityKey, type LeaseFilter } from '../lib/leases.js';
import type { Lease } from '../lib/types.js';
import { type LeaseActions, LeaseList } from './LeaseList.js';

const REVEAL_SHOWN_MS = 30_000;

export function LeasesView({ api }: { api: Api }) {
  const [groupBy, setGroupBy] = useState<GroupBy>('identity');
  const { index, version, stream, forget } = useLiveLeases(api, groupBy);
  const [filter, setFilter] = useState<LeaseFilter>({ text: '', identityType: '' });
  const [revealed, setRevealed] = useState<{ id: string; value: string }>();
  const confirm = useConfirm();

  // Once per animation frame at most while the stream is busy: O(n), no sorting.
  const { items, shown } = useMemo(() => listItems(index, filter), [index, version, groupBy, filter]);

  // A revealed value goes away on its own, and at once when its lease ends.
  useEffect(() => {
    if (!revealed) return;
    if (!index.has(revealed.id)) setRevealed(undefined);
    const timer = setTimeout(() => setRevealed(undefined), REVEAL_SHOWN_MS);
    return () => clearTimeout(timer);
  }, [revealed, index, version]);

  const revokeOne = (lease: Lease) =>
    confirm.ask({
      title: 'Revoke this lease?',
      body: (
        <p>
          Lease <code>{lease.id}</code> of <strong>{lease.credentialName}</strong> held by{' '}
          <strong>{identityKey(lease.identity)}</strong> ends now; its holder can no longer read the value.
        </p>
      ),
      confirmLabel: 'Revoke 1 lease',
      danger: true,
      run: async () => {
        await api.revokeLease(lease.id);
        forget([lease.id]);
        confirm.setStatus({ text: `Revoked lease ${lease.id}.`, error: false });
      },
    });

  const revokeGroup = (group: LeaseGroup) => {
    // Every lease of the group this view knows of, the filter notwithstanding.
    const count = group.leases.length;
    const what = group.identity ? `held by ${group.label}` : `of credential ${group.label}`;
    confirm.ask({
      title: `Revoke all ${count} active lease${count === 1 ? '' : 's'} ${what}?`,
      body: (
        <p>
          Every active lease {what} ends now ({count} known to this view, including any hidden by the filter).
        </p>
      ),
      confirmLabel: `Revoke ${count} lease${count === 1 ? '' : 's'}`,
      danger: true,
      run: async () => {
        const result = await api.bulkRevoke(
          group.identity ? { identity: group.identity } : { credentialName: group.credentialName! },
        );
        forget(result.leaseIds);
        confirm.setStatus({
          text: `Revoked ${result.revoked} lease${result.revoked === 1 ? '' : 's'} ${what}.`,
          error: false,
        });
      },
    });
  };

  const reveal = (lease: Lease) =>
    confirm.ask({
      title: 'Reveal the value?',
      body: (
        <p>
          The value of <strong>{lease.credentialName}</strong> (version {lease.version}) through lease{' '}
          <code>{lease.id}</code> is shown for {REVEAL_SHOWN_MS / 1000} seconds. This is recorded in the audit
          log as <code>lease.reveal</code> and needs the <code>reveal</code> action in your policy.
        </p>
      ),
      confirmLabel: 'Reveal and audit',
      run: async () => {
        const answer = await api.revealLease(lease.id);
        if (answer.value !== undefined) setRevealed({ id: lease.id, value: answer.value });
      },
    });

  // Stable handlers, so a row re-renders only when its own lease (or the grouping) changes.
  const latest = useRef({ revokeOne, reveal, revokeGroup });
  latest.current = { revokeOne, reveal, revokeGroup };
  const actions = useMemo<LeaseActions>(
    () => ({
      onRevoke: (lease) => latest.current.revokeOne(lease),
      onReveal: (lease) => latest.current.reveal(lease),
      onRevokeGroup: (group) => latest.current.revokeGroup(group),
    }),
    [],
  );

  return (
    <section aria-labelledby="leases-title">
      <div class="heading-row">
        <h1 id="leases-title">Live leases</h1>
        <p class={`stream stream-${stream.state}`} role="status" data-testid="stream-state">
          {stream.state === 'live'
            ? 'Live'
            : stream.state === 'connecting'
              ? 'Connecting…'
              : stream.state === 'reconnecting'
                ? 'Reconnecting…'
                : 'Stopped'}
          {stream.detail ? `: ${stream.detail}` : ''}
        </p>
      </div>
      <form class="filters" aria-label="Filter leases" onSubmit={(e) => e.preventDefault()}>
        <label>
          Group by{' '}
          <select value={groupBy} onChange={(e) => setGroupBy(e.currentTarget.value as GroupBy)}>
            <option value="identity">Identity</option>
            <option value="credential">Credential</option>
          </select>
        </label>
        <label>
          Identity type{' '}
          <select
            value={filter.identityType}
            onChange={(e) =>
              setFilter({ ...filter, identityType: e.currentTarget.value as LeaseFilter['identityType'] })
            }
          >
            <option value="">Any</option>
            <option value="human">Human</option>
            <option value="agent">Agent</option>
            <option value="workload">Workload</option>
          </select>
        </label>
        <label>
          Search{' '}
          <input
            type="search"
            placeholder="credential, identity or lease id"
            value={filter.text}
            onInput={(e) => setFilter({ ...filter, text: e.currentTarget.value })}
          />
        </label>
      </form>
      <p class="summary" data-testid="lease-summary" data-active={index.size} data-shown={shown}>
        {index.size} active lease{index.size === 1 ? '' : 's'}
        {shown !== index.size ? `, ${shown} shown` : ''}
      </p>
      {confirm.status && (
        <p
          role={confirm.status.error ? 'alert' : 'status'}
          class={confirm.status.error ? 'error' : 'ok'}
          data-testid="action-status"
        >
          {confirm.status.text}
        </p>
      )}
      {revealed && (
        <section class="revealed" aria-label="Revealed value">
          <p>
            Value of lease <code>{revealed.id}</code> (hidden again in {REVEAL_SHOWN_MS / 1000} s):
          </p>
          <code class="value" data-testid="revealed-value">
            {revealed.value}
          </code>
          <button type="button" class="secondary" onClick={() => setRevealed(undefined)}>
            Hide
          </button>
        </section>
      )}
      {items.length === 0 && (
        <p class="empty">No active leases{filter.text || filter.identityType ? ' match the filter' : ''}.</p>
      )}
      <LeaseList items={items} groupBy={groupBy} actions={actions} />
      <ConfirmDialog
        request={confirm.request}
        busy={confirm.busy}
        onCancel={confirm.cancel}
        onConfirm={confirm.confirm}
      />
    </section>
  );
}
