import { describe, expect, it } from 'vitest';
import { nextStep } from './keep-alive.js';
import type { Lease } from './types.js';

const t0 = Date.parse('2030-01-01T00:00:00Z');
const lease = (over: Partial<Lease> = {}): Lease => ({
  id: 'l1',
  tenant: 't',
  credentialName: 'c',
  version: 1,
  identity: { type: 'agent', name: 'a' },
  issuedBy: { type: 'agent', name: 'a' },
  issuedAt: new Date(t0),
  expiresAt: new Date(t0 + 90_000),
  maxExpiresAt: new Date(t0 + 3_600_000),
  renewable: true,
  renewCount: 0,
  state: 'active',
  ...over,
});

describe('nextStep (keep-alive schedule)', () => {
  it('renews at two thirds of the remaining time', () => {
    expect(nextStep(lease(), t0, 2 / 3)).toEqual({ kind: 'renew-after', ms: 60_000 });
    expect(nextStep(lease(), t0 + 30_000, 2 / 3)).toEqual({ kind: 'renew-after', ms: 40_000 });
  });

  it('waits for the end of a lease capped at its max TTL, then reports max-ttl', () => {
    const capped = lease({ expiresAt: new Date(t0 + 90_000), maxExpiresAt: new Date(t0 + 90_000) });
    expect(nextStep(capped, t0 + 10_000, 2 / 3)).toEqual({ kind: 'wait-end', ms: 80_000, reason: 'max-ttl' });
  });

  it('does not renew a non-renewable lease', () => {
    expect(nextStep(lease({ renewable: false }), t0, 2 / 3)).toEqual({
      kind: 'wait-end',
      ms: 90_000,
      reason: 'expired',
    });
  });

  it('ends at once on revoked, expired, or past expiry', () => {
    expect(nextStep(lease({ state: 'revoked' }), t0, 2 / 3)).toEqual({ kind: 'end', reason: 'revoked' });
    expect(nextStep(lease({ state: 'expired' }), t0, 2 / 3)).toEqual({ kind: 'end', reason: 'expired' });
    expect(nextStep(lease(), t0 + 90_000, 2 / 3)).toEqual({ kind: 'end', reason: 'expired' });
  });
});
