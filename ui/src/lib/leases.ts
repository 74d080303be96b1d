import type { Identity, Lease } from './types.js';

export const identityKey = (identity: Identity) => `${identity.type}/${identity.name}`;

export interface LeaseFilter {
  text: string;
  identityType: '' | Identity['type'];
}

/** A test for the filter: the identity type, and text in a lease's credential, identity or id. */
export function leaseMatcher(filter: LeaseFilter): (lease: Lease) => boolean {
  const text = filter.text.trim().toLowerCase();
  const type = filter.identityType;
  return (lease) =>
    (!type || lease.identity.type === type) &&
    (!text ||
      lease.credentialName.toLowerCase().includes(text) ||
      identityKey(lease.identity).toLowerCase().includes(text) ||
      lease.id.toLowerCase().includes(text));
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
