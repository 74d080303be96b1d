import { Component } from 'preact';
import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ConfirmDialog } from '../components/Confirm.js';
import { useConfirm } from '../components/useConfirm.js';
import { useLiveLeases } from '../components/useLiveLeases.js';
import { onSecond, useExpiryClock } from '../components/useNow.js';
import type { Api } from '../lib/api.js';
import {
  filterLeases,
  formatRemaining,
  groupLeases,
  identityKey,
  type LeaseFilter,
  type LeaseGroup,
} from '../lib/leases.js';
import type { Lease } from '../lib/types.js';

const REVEAL_SHOWN_MS = 30_000;

export function LeasesView({ api }: { api: Api }) {
  const { leases, stream, forget } = useLiveLeases(api);
  // The view itself re-renders when a lease expires, not every second: each row's TTL bar
  // runs on its own (see Ttl), so a second's tick never re-renders a thousand rows.
  const expiries = useMemo(() => [...leases.values()].map((l) => Date.parse(l.expiresAt)), [leases]);
  const now = useExpiryClock(expiries);
  const [groupBy, setGroupBy] = useState<'identity' | 'credential'>('identity');
  const [filter, setFilter] = useState<LeaseFilter>({ text: '', identityType: '' });
  const [revealed, setRevealed] = useState<{ id: string; value: string }>();
  const confirm = useConfirm();

  const active = useMemo(
    () => [...leases.values()].filter((l) => Date.parse(l.expiresAt) > now),
    [leases, now],
  );
  const groups = useMemo(() => groupLeases(filterLeases(active, filter), groupBy), [active, filter, groupBy]);

  // A revealed value goes away on its own, and at once when its lease ends.
  useEffect(() => {
    if (!revealed) return;
    if (!leases.has(revealed.id)) setRevealed(undefined);
    const timer = setTimeout(() => setRevealed(undefined), REVEAL_SHOWN_MS);
    return () => clearTimeout(timer);
  }, [revealed, leases]);

  const countOf = (group: LeaseGroup) =>
    group.identity
      ? active.filter((l) => identityKey(l.identity) === group.key).length
      : active.filter((l) => l.credentialName === group.credentialName).length;

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
    const count = countOf(group);
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
  const actions = useRef({ revokeOne, reveal });
  actions.current = { revokeOne, reveal };
  const onRevoke = useCallback((lease: Lease) => actions.current.revokeOne(lease), []);
  const onReveal = useCallback((lease: Lease) => actions.current.reveal(lease), []);

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
          <select
            value={groupBy}
            onChange={(e) => setGroupBy(e.currentTarget.value as 'identity' | 'credential')}
          >
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
      <p class="summary" aria-live="polite">
        {active.length} active lease{active.length === 1 ? '' : 's'}
        {groups.reduce((n, g) => n + g.leases.length, 0) !== active.length
          ? `, ${groups.reduce((n, g) => n + g.leases.length, 0)} shown`
          : ''}
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
      {groups.length === 0 && (
        <p class="empty">No active leases{filter.text || filter.identityType ? ' match the filter' : ''}.</p>
      )}
      {groups.map((group) => (
        <section class="group" key={group.key} aria-label={`Leases of ${group.label}`} data-group={group.key}>
          <div class="group-head">
            <h2>
              {group.label} <span class="count">({group.leases.length})</span>
            </h2>
            <button type="button" class="danger" onClick={() => revokeGroup(group)}>
              Revoke all of {group.label}
            </button>
          </div>
          <ul class="lease-list">
            {group.leases.map((lease) => (
              <LeaseRow
                key={lease.id}
                lease={lease}
                groupBy={groupBy}
                onRevoke={onRevoke}
                onReveal={onReveal}
              />
            ))}
          </ul>
        </section>
      ))}
      <ConfirmDialog
        request={confirm.request}
        busy={confirm.busy}
        onCancel={confirm.cancel}
        onConfirm={confirm.confirm}
      />
    </section>
  );
}

interface LeaseRowProps {
  lease: Lease;
  groupBy: 'identity' | 'credential';
  onRevoke(lease: Lease): void;
  onReveal(lease: Lease): void;
}

/** Re-renders only when its props change (leases are replaced, never mutated, on each event). */
class LeaseRow extends Component<LeaseRowProps> {
  override shouldComponentUpdate(next: LeaseRowProps): boolean {
    const p = this.props;
    return (
      next.lease !== p.lease ||
      next.groupBy !== p.groupBy ||
      next.onRevoke !== p.onRevoke ||
      next.onReveal !== p.onReveal
    );
  }

  override render() {
    return <LeaseRowBody {...this.props} />;
  }
}

function LeaseRowBody(props: LeaseRowProps) {
  const { lease } = props;
  const other = props.groupBy === 'identity' ? lease.credentialName : identityKey(lease.identity);
  const onBehalf =
    identityKey(lease.issuedBy) !== identityKey(lease.identity)
      ? `issued by ${identityKey(lease.issuedBy)}`
      : '';
  const labels = Object.entries(lease.labels ?? {});
  return (
    <li class="lease" data-lease-id={lease.id}>
      <div class="lease-main">
        <strong>{other}</strong> <span class="muted">v{lease.version}</span>
        <div class="muted small">
          <code>{lease.id}</code>
          {onBehalf && ` · ${onBehalf}`}
          {lease.dynamic && ` · ${lease.dynamic.engine} account ${lease.dynamic.username}`}
          {lease.renewCount > 0 && ` · renewed ${lease.renewCount}×`}
        </div>
        {labels.length > 0 && (
          <div class="labels">
            {labels.map(([k, v]) => (
              <span class="label" key={k}>
                {k}={v}
              </span>
            ))}
          </div>
        )}
      </div>
      <Ttl lease={lease} />
      <div class="row-actions">
        <button
          type="button"
          class="secondary"
          onClick={() => props.onReveal(lease)}
          aria-label={`Reveal value of ${lease.id}`}
        >
          Reveal
        </button>
        <button
          type="button"
          class="danger"
          onClick={() => props.onRevoke(lease)}
          aria-label={`Revoke ${lease.id}`}
        >
          Revoke
        </button>
      </div>
    </li>
  );
}

/**
 * A lease's TTL bar, ticking once a second on the shared clock while it is on screen (an
 * off-screen bar catches up the moment it scrolls into view).
 */
function Ttl({ lease }: { lease: Lease }) {
  const [now, setNow] = useState(Date.now);
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    let visible = true;
    const observer =
      typeof IntersectionObserver === 'function'
        ? new IntersectionObserver((entries) => {
            visible = entries.some((e) => e.isIntersecting);
            if (visible) setNow(Date.now());
          })
        : undefined;
    if (ref.current) observer?.observe(ref.current);
    const stop = onSecond((t) => visible && setNow(t));
    return () => {
      stop();
      observer?.disconnect();
    };
  }, []);
  const issued = Date.parse(lease.issuedAt);
  const total = Math.max(1, Date.parse(lease.expiresAt) - issued);
  const left = Math.max(0, Date.parse(lease.expiresAt) - now);
  return (
    <div class="ttl" ref={ref}>
      <progress max={total} value={left} aria-label={`Time left for ${lease.id}`} />
      <span class="small">{formatRemaining(left)}</span>
    </div>
  );
}
