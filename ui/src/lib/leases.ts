import type { Identity, Lease, LeaseEvent } from './types.js';

/** Leases as the console shows them: active ones, by id. Pure, so it is tested without a browser. */
export type LeaseMap = ReadonlyMap<string, Lease>;

/** Applies stream events in order; an ended lease leaves the map. */
export function applyLeaseEvents(leases: LeaseMap, events: readonly LeaseEvent[]): LeaseMap {
  if (events.length === 0) return leases;
  const next = new Map(leases);
  for (const { type, lease } of events) {
    if (type === 'issued' || type === 'renewed') {
      if (lease.state === 'active') next.set(lease.id, lease);
      else next.delete(lease.id);
    } else {
      next.delete(lease.id);
    }
  }
  return next;
}

export const identityKey = (identity: Identity) => `${identity.type}/${identity.name}`;

export interface LeaseGroup {
  key: string;
  label: string;
  identity?: Identity;
  credentialName?: string;
  leases: Lease[];
}

export interface LeaseFilter {
  text: string;
  identityType: '' | Identity['type'];
}

export function filterLeases(leases: Iterable<Lease>, filter: LeaseFilter): Lease[] {
  const text = filter.text.trim().toLowerCase();
  const out: Lease[] = [];
  for (const lease of leases) {
    if (filter.identityType && lease.identity.type !== filter.identityType) continue;
    if (
      text &&
      !lease.credentialName.toLowerCase().includes(text) &&
      !identityKey(lease.identity).toLowerCase().includes(text) &&
      !lease.id.toLowerCase().includes(text)
    )
      continue;
    out.push(lease);
  }
  return out;
}

/** Groups by identity or by credential; groups and leases in a stable, readable order. */
export function groupLeases(leases: readonly Lease[], by: 'identity' | 'credential'): LeaseGroup[] {
  const groups = new Map<string, LeaseGroup>();
  for (const lease of leases) {
    const key = by === 'identity' ? identityKey(lease.identity) : lease.credentialName;
    let group = groups.get(key);
    if (!group) {
      group =
        by === 'identity'
          ? { key, label: key, identity: lease.identity, leases: [] }
          : { key, label: key, credentialName: lease.credentialName, leases: [] };
      groups.set(key, group);
    }
    group.leases.push(lease);
  }
  const sorted = [...groups.values()].sort((a, b) => a.key.localeCompare(b.key));
  // ISO-8601 UTC times order as strings; a plain comparison is far cheaper than localeCompare.
  for (const group of sorted)
    group.leases.sort((a, b) => (a.expiresAt < b.expiresAt ? -1 : a.expiresAt > b.expiresAt ? 1 : 0));
  return sorted;
}

/** "4m 05s", "1h 02m", "expired". */
export function formatRemaining(ms: number): string {
  if (ms <= 0) return 'expired';
  const seconds = Math.floor(ms / 1000);
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  if (h > 0) return `${h}h ${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m ${String(s).padStart(2, '0')}s`;
  return `${s}s`;
}
