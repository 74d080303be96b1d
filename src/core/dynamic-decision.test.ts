import { describe, expect, it } from 'vitest';
import { type AccountRecord, backoffMs, decideAccount } from './dynamic-decision.js';
import type { LeaseRecord } from './lease-record.js';

const now = new Date('2030-01-01T00:00:00Z');
const account: AccountRecord = {
  leaseId: 'lease_a',
  credentialName: 'db',
  engine: 'postgres',
  username: 'vault_lease_a',
  createdAt: new Date(now.getTime() - 1000).toISOString(),
  owner: 'other',
};
const lease = (over: Partial<LeaseRecord>): LeaseRecord => ({
  id: 'lease_a',
  tenant: 't',
  credentialName: 'db',
  version: 1,
  identity: { type: 'agent', name: 'a' },
  issuedBy: { type: 'agent', name: 'a' },
  issuedAt: now.toISOString(),
  expiresAt: new Date(now.getTime() + 60_000).toISOString(),
  maxExpiresAt: new Date(now.getTime() + 60_000).toISOString(),
  ttlMs: 60_000,
  renewable: true,
  renewCount: 0,
  state: 'active',
  ...over,
});
const ctx = { now, instance: 'me', issuing: new Set<string>(), issueGraceMs: 5000 };

describe('decideAccount', () => {
  it('keeps the account of an active lease until it expires', () => {
    expect(decideAccount(account, lease({}), ctx)).toEqual({ kind: 'keep', until: now.getTime() + 60_000 });
  });
  it('revokes the account of a revoked or expired lease', () => {
    expect(decideAccount(account, lease({ state: 'revoked' }), ctx)).toEqual({
      kind: 'revoke',
      reason: 'lease revoked',
    });
    const expired = lease({ expiresAt: new Date(now.getTime() - 1).toISOString() });
    expect(decideAccount(account, expired, ctx)).toEqual({ kind: 'revoke', reason: 'lease expired' });
  });
  it('waits out another process issuing, then removes an account whose lease never came', () => {
    expect(decideAccount(account, undefined, ctx)).toEqual({ kind: 'wait', until: now.getTime() + 4000 });
    const later = { ...ctx, now: new Date(now.getTime() + 5000) };
    expect(decideAccount(account, undefined, later).kind).toBe('revoke');
  });
  it('removes at once an account this process recorded but is no longer issuing (a crash or a failed commit)', () => {
    expect(decideAccount({ ...account, owner: 'me' }, undefined, ctx).kind).toBe('revoke');
    expect(
      decideAccount({ ...account, owner: 'me' }, undefined, { ...ctx, issuing: new Set(['lease_a']) }).kind,
    ).toBe('keep');
  });
  it('backs off after failures', () => {
    const failed = { ...account, attempts: 3, nextAttemptAt: new Date(now.getTime() + 2000).toISOString() };
    expect(decideAccount(failed, lease({ state: 'revoked' }), ctx)).toEqual({
      kind: 'wait',
      until: now.getTime() + 2000,
    });
    expect([1, 2, 3, 10].map((n) => backoffMs(n))).toEqual([500, 1000, 2000, 30_000]);
  });
});
