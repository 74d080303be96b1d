import { identityKey, type LeaseFilter, leaseMatcher } from './leases.js';
import type { Identity, Lease, LeaseEvent } from './types.js';

export type GroupBy = 'identity' | 'credential';

export interface LeaseGroup {
  key: string;
  label: string;
  identity?: Identity;
  credentialName?: string;
  /** Sorted by expiry (soonest first), then id; kept sorted as leases come and go. */
  leases: Lease[];
}

// ISO-8601 UTC times order as strings; a plain comparison is far cheaper than localeCompare.
const byExpiry = (a: Lease, b: Lease) =>
  a.expiresAt < b.expiresAt ? -1 : a.expiresAt > b.expiresAt ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
const byKey = (a: LeaseGroup, b: LeaseGroup) => a.key.localeCompare(b.key);

/** The first index whose element sorts after `item` (binary search). */
function upperBound<T>(list: readonly T[], item: T, compare: (a: T, b: T) => number): number {
  let low = 0;
  let high = list.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (compare(list[mid]!, item) <= 0) low = mid + 1;
    else high = mid;
  }
  return low;
}

/**
 * Active leases by id and in groups, each group kept sorted: a stream event costs a binary
 * search and one splice, never a re-sort or a copy of the whole set. Pure (no DOM), so it is
 * tested without a browser; `version` changes with every change, for views to memoize on.
 */
export class LeaseIndex {
  private readonly byId = new Map<string, Lease>();
  private readonly byGroup = new Map<string, LeaseGroup>();
  private ordered: LeaseGroup[] = [];
  version = 0;

  constructor(private by: GroupBy = 'identity') {}

  get size(): number {
    return this.byId.size;
  }
  get groupBy(): GroupBy {
    return this.by;
  }
  get(id: string): Lease | undefined {
    return this.byId.get(id);
  }
  has(id: string): boolean {
    return this.byId.has(id);
  }
  values(): IterableIterator<Lease> {
    return this.byId.values();
  }
  /** Groups in key order; read-only to callers. */
  groups(): readonly LeaseGroup[] {
    return this.ordered;
  }

  setGroupBy(by: GroupBy): void {
    if (by === this.by) return;
    this.by = by;
    this.replaceAll([...this.byId.values()]);
  }

  /** A fresh snapshot: everything else is forgotten. */
  replaceAll(leases: Iterable<Lease>): void {
    this.byId.clear();
    this.byGroup.clear();
    this.ordered = [];
    for (const lease of leases) if (lease.state === 'active') this.byId.set(lease.id, lease);
    for (const lease of this.byId.values()) this.groupOf(lease).leases.push(lease);
    for (const group of this.ordered) group.leases.sort(byExpiry);
    this.version += 1;
  }

  /** Applies stream events in order; an issued or renewed lease is kept while active. */
  apply(events: readonly LeaseEvent[]): boolean {
    let changed = false;
    for (const { type, lease } of events) {
      changed = this.drop(lease.id) || changed;
      if ((type === 'issued' || type === 'renewed') && lease.state === 'active') {
        this.put(lease);
        changed = true;
      }
    }
    if (changed) this.version += 1;
    return changed;
  }

  /** Forgets leases (the user just revoked them; their events may come later). */
  remove(ids: Iterable<string>): boolean {
    let changed = false;
    for (const id of ids) changed = this.drop(id) || changed;
    if (changed) this.version += 1;
    return changed;
  }

  /** Drops every lease whose expiry has passed at `now` (epoch ms). */
  expire(now: number): boolean {
    const ended: string[] = [];
    for (const lease of this.byId.values()) if (Date.parse(lease.expiresAt) <= now) ended.push(lease.id);
    return this.remove(ended);
  }

  /** The soonest expiry (epoch ms) of any lease held, if any. */
  earliestExpiry(): number | undefined {
    let earliest: string | undefined;
    // Each group's first lease is its soonest.
    for (const group of this.ordered) {
      const first = group.leases[0]?.expiresAt;
      if (first !== undefined && (earliest === undefined || first < earliest)) earliest = first;
    }
    return earliest === undefined ? undefined : Date.parse(earliest);
  }

  private keyOf(lease: Lease): string {
    return this.by === 'identity' ? identityKey(lease.identity) : lease.credentialName;
  }

  private groupOf(lease: Lease): LeaseGroup {
    const key = this.keyOf(lease);
    let group = this.byGroup.get(key);
    if (!group) {
      group =
        this.by === 'identity'
          ? { key, label: key, identity: lease.identity, leases: [] }
          : { key, label: key, credentialName: lease.credentialName, leases: [] };
      this.byGroup.set(key, group);
      this.ordered.splice(upperBound(this.ordered, group, byKey), 0, group);
    }
    return group;
  }

  private put(lease: Lease): void {
    this.byId.set(lease.id, lease);
    const { leases } = this.groupOf(lease);
    leases.splice(upperBound(leases, lease, byExpiry), 0, lease);
  }

  private drop(id: string): boolean {
    const lease = this.byId.get(id);
    if (!lease) return false;
    this.byId.delete(id);
    const key = this.keyOf(lease);
    const group = this.byGroup.get(key)!;
    const at = upperBound(group.leases, lease, byExpiry) - 1;
    group.leases.splice(at, 1);
    if (group.leases.length === 0) {
      this.byGroup.delete(key);
      this.ordered.splice(this.ordered.indexOf(group), 1);
    }
    return true;
  }
}

/** One line of the lease list: a group's heading, or one of its leases. */
export type ListItem =
  | { kind: 'group'; key: string; group: LeaseGroup; shown: number }
  | { kind: 'lease'; key: string; lease: Lease; group: LeaseGroup; header: number; position: number };

/**
 * The lines the list shows under `filter`, in order: O(n) with no sorting, so it can run
 * once per animation frame while the stream is busy.
 */
export function listItems(index: LeaseIndex, filter: LeaseFilter): { items: ListItem[]; shown: number } {
  const matches = leaseMatcher(filter);
  const items: ListItem[] = [];
  let shown = 0;
  for (const group of index.groups()) {
    const header = items.length;
    let position = 0;
    for (const lease of group.leases) {
      if (!matches(lease)) continue;
      if (position === 0) items.push({ kind: 'group', key: `g:${group.key}`, group, shown: 0 });
      position += 1;
      items.push({ kind: 'lease', key: lease.id, lease, group, header, position });
    }
    if (position > 0) {
      (items[header] as { shown: number }).shown = position;
      shown += position;
    }
  }
  return { items, shown };
}
