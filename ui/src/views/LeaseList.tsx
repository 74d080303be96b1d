import { defaultRangeExtractor } from '@tanstack/virtual-core';
import { Component } from 'preact';
import { useLayoutEffect, useRef, useState } from 'preact/hooks';
import { onTtlTick } from '../components/ttlClock.js';
import { useWindowVirtualizer } from '../components/useWindowVirtualizer.js';
import type { GroupBy, LeaseGroup, ListItem } from '../lib/lease-index.js';
import { formatRemaining, identityKey } from '../lib/leases.js';
import type { Lease } from '../lib/types.js';

/**
 * From this many lines on, only those near the viewport are in the DOM. `?lines=all` in the
 * page's address turns that off (the benchmark's baseline: every line rendered).
 */
const VIRTUAL_FROM =
  new URLSearchParams(location.search).get('lines') === 'all' ? Number.POSITIVE_INFINITY : 150;

const FOCUSABLE = 'a[href], button:not([disabled]), input, select, textarea, [tabindex]:not([tabindex="-1"])';

export interface LeaseActions {
  onRevoke(lease: Lease): void;
  onReveal(lease: Lease): void;
  onRevokeGroup(group: LeaseGroup): void;
}

interface Line {
  item: ListItem;
  index: number;
  /** Offset from the list's top when virtualized. */
  top?: number;
}

/**
 * The grouped lease list. Long lists are virtualized against the page's own scroll: lines are
 * absolutely placed and measured as they render, each shown lease keeps its group heading
 * mounted, the line holding focus stays mounted while scrolled away, and Tab / Shift+Tab off
 * the last / first mounted line brings the next one in and focuses it, so the keyboard walks
 * the whole list as if every line were there.
 */
export function LeaseList(props: { items: ListItem[]; groupBy: GroupBy; actions: LeaseActions }) {
  const { items, groupBy, actions } = props;
  const virtual = items.length >= VIRTUAL_FROM;
  const box = useRef<HTMLDivElement>(null);
  const [margin, setMargin] = useState(0);
  const focused = useRef<string | undefined>(undefined);
  const focusNext = useRef<{ key: string; last: boolean } | undefined>(undefined);

  const virtualizer = useWindowVirtualizer({
    enabled: virtual,
    count: items.length,
    estimateSize: (i) => (items[i]?.kind === 'group' ? 56 : 64),
    getItemKey: (i) => items[i]?.key ?? i,
    overscan: 6,
    scrollMargin: margin,
    rangeExtractor: (range) => {
      const indexes = new Set(defaultRangeExtractor(range));
      for (const i of [...indexes]) {
        const item = items[i];
        if (item?.kind === 'lease') indexes.add(item.header);
      }
      if (focused.current !== undefined) {
        const at = items.findIndex((item) => item.key === focused.current);
        if (at >= 0) indexes.add(at);
      }
      return [...indexes].sort((a, b) => a - b);
    },
  });

  useLayoutEffect(() => {
    if (!virtual || !box.current) return;
    const top = box.current.getBoundingClientRect().top + window.scrollY;
    if (Math.abs(top - margin) > 1) setMargin(top);
    const want = focusNext.current;
    if (!want) return;
    const at = items.findIndex((item) => item.key === want.key);
    const line = box.current.querySelector(`[data-index="${at}"]`);
    if (!line) return;
    focusNext.current = undefined;
    const targets = line.querySelectorAll<HTMLElement>(FOCUSABLE);
    (want.last ? targets[targets.length - 1] : targets[0])?.focus();
  });

  const lineOf = (target: EventTarget | null) =>
    target instanceof Element ? target.closest<HTMLElement>('[data-index]') : null;

  const onKeyDown = (e: KeyboardEvent) => {
    if (!virtual || e.key !== 'Tab' || e.altKey || e.ctrlKey || e.metaKey) return;
    const line = lineOf(e.target);
    if (!line) return;
    const targets = line.querySelectorAll<HTMLElement>(FOCUSABLE);
    if (e.target !== (e.shiftKey ? targets[0] : targets[targets.length - 1])) return;
    const next = Number(line.dataset.index) + (e.shiftKey ? -1 : 1);
    if (next < 0 || next >= items.length || box.current?.querySelector(`[data-index="${next}"]`)) return;
    e.preventDefault();
    focusNext.current = { key: items[next]!.key, last: e.shiftKey };
    virtualizer.scrollToIndex(next);
  };

  const lines: Line[] = virtual
    ? virtualizer
        .getVirtualItems()
        .map((v) => ({ item: items[v.index]!, index: v.index, top: v.start - margin }))
    : items.map((item, index) => ({ item, index }));
  const sections: { group: LeaseGroup; lines: Line[] }[] = [];
  for (const line of lines) {
    const last = sections[sections.length - 1];
    if (last && last.group.key === line.item.group.key) last.lines.push(line);
    else sections.push({ group: line.item.group, lines: [line] });
  }
  const place = (line: Line) =>
    line.top === undefined
      ? { 'data-index': line.index }
      : {
          'data-index': line.index,
          ref: virtualizer.measureElement,
          style: { transform: `translateY(${line.top}px)` },
        };

  return (
    // biome-ignore lint/a11y/noStaticElementInteractions: delegation only; the handlers follow Tab and focus among the buttons inside
    <div
      ref={box}
      class={virtual ? 'lease-lines virtual' : 'lease-lines'}
      style={virtual ? { height: `${virtualizer.getTotalSize()}px` } : {}}
      onKeyDown={onKeyDown}
      onFocusIn={(e) => {
        const line = lineOf(e.target);
        focused.current = line ? items[Number(line.dataset.index)]?.key : undefined;
        // The browser scrolls a focused element only until part of it shows: show all of it.
        if (e.target instanceof Element) e.target.scrollIntoView({ block: 'nearest' });
      }}
      onFocusOut={(e) => {
        if (!(e.relatedTarget instanceof Node && box.current?.contains(e.relatedTarget)))
          focused.current = undefined;
      }}
    >
      {sections.map(({ group, lines: groupLines }) => {
        const head = groupLines[0]?.item.kind === 'group' ? groupLines[0] : undefined;
        const rows = head ? groupLines.slice(1) : groupLines;
        return (
          <section
            class="group"
            key={group.key}
            aria-label={`Leases of ${group.label}`}
            data-group={group.key}
          >
            {head?.item.kind === 'group' && (
              <div class="group-head" {...place(head)}>
                <h2>
                  {group.label} <span class="count">({head.item.shown})</span>
                </h2>
                <button type="button" class="danger" onClick={() => actions.onRevokeGroup(group)}>
                  Revoke all of {group.label}
                </button>
              </div>
            )}
            {rows.length > 0 && (
              <ul class="lease-list">
                {rows.map((line) => {
                  const item = line.item;
                  if (item.kind !== 'lease') return null;
                  const heading = items[item.header];
                  return (
                    <li
                      key={item.key}
                      class="lease"
                      data-lease-id={item.lease.id}
                      aria-setsize={heading?.kind === 'group' ? heading.shown : undefined}
                      aria-posinset={item.position}
                      {...place(line)}
                    >
                      <LeaseRow lease={item.lease} groupBy={groupBy} actions={actions} />
                    </li>
                  );
                })}
              </ul>
            )}
          </section>
        );
      })}
    </div>
  );
}

interface LeaseRowProps {
  lease: Lease;
  groupBy: GroupBy;
  actions: LeaseActions;
}

/** A row's content; re-renders only when its lease (replaced, never mutated, on each event) changes. */
class LeaseRow extends Component<LeaseRowProps> {
  override shouldComponentUpdate(next: LeaseRowProps): boolean {
    const p = this.props;
    return next.lease !== p.lease || next.groupBy !== p.groupBy || next.actions !== p.actions;
  }

  override render() {
    const { lease, groupBy, actions } = this.props;
    const other = groupBy === 'identity' ? lease.credentialName : identityKey(lease.identity);
    const onBehalf =
      identityKey(lease.issuedBy) !== identityKey(lease.identity)
        ? `issued by ${identityKey(lease.issuedBy)}`
        : '';
    const labels = Object.entries(lease.labels ?? {});
    return (
      <>
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
            onClick={() => actions.onReveal(lease)}
            aria-label={`Reveal value of ${lease.id}`}
          >
            Reveal
          </button>
          <button
            type="button"
            class="danger"
            onClick={() => actions.onRevoke(lease)}
            aria-label={`Revoke ${lease.id}`}
          >
            Revoke
          </button>
        </div>
      </>
    );
  }
}

/**
 * A lease's TTL bar and time left. The shared clock writes both straight into the DOM once a
 * second (the bar's value is deliberately not a prop, so a re-render never resets it).
 */
function Ttl({ lease }: { lease: Lease }) {
  const bar = useRef<HTMLProgressElement>(null);
  const text = useRef<HTMLSpanElement>(null);
  const expires = Date.parse(lease.expiresAt);
  const total = Math.max(1, expires - Date.parse(lease.issuedAt));
  useLayoutEffect(() => {
    let last = '';
    return onTtlTick(expires, (left) => {
      if (bar.current) bar.current.value = left;
      const label = formatRemaining(left);
      if (label !== last && text.current) text.current.textContent = last = label;
    });
  }, [expires]);
  return (
    <div class="ttl">
      <progress ref={bar} max={total} aria-label={`Time left for ${lease.id}`} />
      <span ref={text} class="small" />
    </div>
  );
}
