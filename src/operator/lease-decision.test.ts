import { describe, expect, it } from 'vitest';
import { finalizer, type VaultLeaseObject } from '../k8s/resources.js';
import {
  decideLease,
  leaseEvents,
  leaseStatus,
  nextLeaseCheck,
  refusalOf,
  refusedStatus,
} from './lease-decision.js';
import type { LeaseInfo } from './vault-port.js';

const t0 = new Date('2030-01-01T00:00:00.000Z');
const at = (s: number) => new Date(t0.getTime() + s * 1000);

const object = (over: Partial<VaultLeaseObject> = {}): VaultLeaseObject => ({
  apiVersion: 'vault.ghoststack.io/v1alpha1',
  kind: 'VaultLease',
  metadata: { name: 'l', namespace: 'ns', uid: 'u1', generation: 1, finalizers: [finalizer] },
  spec: { credentialRef: { name: 'db' }, serviceAccountName: 'app', ttl: '60s', onExpiry: 'wipe' },
  ...over,
});

const lease = (over: Partial<LeaseInfo> = {}): LeaseInfo => ({
  id: 'lease_1',
  tenant: 'ns',
  credentialName: 'db',
  version: 1,
  identity: { type: 'workload', name: 'system:serviceaccount:ns:app' },
  issuedBy: { type: 'workload', name: 'system:serviceaccount:ns:app' },
  issuedAt: t0.toISOString(),
  expiresAt: at(60).toISOString(),
  maxExpiresAt: at(60).toISOString(),
  renewable: false,
  renewCount: 0,
  state: 'active',
  ...over,
});

describe('decideLease', () => {
  it('adds the finalizer first, then issues for the ServiceAccount identity', () => {
    const fresh = object({ metadata: { name: 'l', namespace: 'ns', uid: 'u1', generation: 1 } });
    expect(decideLease(fresh, { lease: undefined }, t0).kind).toBe('add-finalizer');
    const step = decideLease(object(), { lease: undefined }, t0);
    expect(step).toMatchObject({
      kind: 'issue',
      request: {
        credentialName: 'db',
        identity: { type: 'workload', name: 'system:serviceaccount:ns:app' },
        maxTtl: '60s',
      },
    });
  });

  it('is a no-op on an unchanged Active lease: same status, requeue at expiry', () => {
    const obj = object();
    const status = leaseStatus(obj, lease(), at(1));
    const settled = object({ status });
    expect(decideLease(settled, { lease: lease() }, at(10)).kind).toBe('observe');
    expect(leaseStatus(settled, lease(), at(10))).toEqual(status);
    expect(nextLeaseCheck(settled, status, lease(), at(10))).toBe(50_000);
    expect(leaseEvents(status, status)).toEqual([]);
  });

  it('turns Expired at expiresAt without asking Vault to change anything', () => {
    const status = leaseStatus(object(), lease(), at(1));
    const expired = leaseStatus(object({ status }), lease(), at(60));
    expect(expired.phase).toBe('Expired');
    expect(expired.conditions?.[0]).toMatchObject({ status: 'False', reason: 'LeaseExpired' });
    expect(leaseEvents(status, expired)).toMatchObject([{ type: 'Warning', reason: 'Expired' }]);
  });

  it('renews a third of the TTL before expiry, never past the max', () => {
    const obj = object({ spec: { ...object().spec, renewal: { enabled: true, maxTtl: '180s' } } });
    const renewable = lease({ renewable: true, maxExpiresAt: at(180).toISOString() });
    const settled = { ...obj, status: leaseStatus(obj, renewable, t0) };
    expect(decideLease(settled, { lease: renewable }, at(39)).kind).toBe('observe');
    expect(decideLease(settled, { lease: renewable }, at(40))).toMatchObject({
      kind: 'renew',
      increment: '60s',
    });
    const atMax = lease({
      renewable: true,
      expiresAt: at(180).toISOString(),
      maxExpiresAt: at(180).toISOString(),
    });
    expect(decideLease(settled, { lease: atMax }, at(170)).kind).toBe('observe');
  });

  it('never renews in a loop when renewBefore is not shorter than the granted TTL', () => {
    // spec.ttl omitted: the lease gets the credential's default TTL (60s), shorter than renewBefore.
    const spec = {
      ...object().spec,
      ttl: undefined,
      renewal: { enabled: true, maxTtl: '600s', renewBefore: '90s' },
    };
    const obj = object({ spec });
    const renewable = lease({ renewable: true, maxExpiresAt: at(600).toISOString() });
    const settled = { ...obj, status: leaseStatus(obj, renewable, t0) };
    // A third of the granted TTL, as if renewBefore were unset; not at once.
    expect(decideLease(settled, { lease: renewable }, at(1)).kind).toBe('observe');
    expect(decideLease(settled, { lease: renewable }, at(39)).kind).toBe('observe');
    expect(decideLease(settled, { lease: renewable }, at(40)).kind).toBe('renew');
    // Right after a renewal (expiry moved by one TTL) nothing is due.
    const renewed = lease({
      renewable: true,
      expiresAt: at(100).toISOString(),
      maxExpiresAt: at(600).toISOString(),
      renewCount: 1,
    });
    const afterRenewal = { ...obj, status: leaseStatus(settled, renewed, at(40)) };
    expect(decideLease(afterRenewal, { lease: renewed }, at(41)).kind).toBe('observe');
    expect(nextLeaseCheck(afterRenewal, afterRenewal.status, renewed, at(41))).toBe(39_000);
    // The status says so, with what to change.
    const adjusted = settled.status.conditions?.find((c) => c.type === 'RenewBeforeAdjusted');
    expect(adjusted).toMatchObject({ status: 'True', reason: 'RenewBeforeNotShorterThanTtl' });
    expect(adjusted?.message).toContain('spec.renewal.renewBefore (1m30s)');
    expect(adjusted?.message).toContain('1m');
    expect(leaseEvents(undefined, settled.status)).toContainEqual(
      expect.objectContaining({ type: 'Warning', reason: 'RenewBeforeNotShorterThanTtl' }),
    );
    // A valid renewBefore leaves no such condition.
    const valid = object({ spec: { ...spec, renewal: { ...spec.renewal, renewBefore: '10s' } } });
    const fine = leaseStatus(valid, renewable, t0);
    expect(fine.conditions?.map((c) => c.type)).toEqual(['Ready']);
    expect(decideLease({ ...valid, status: fine }, { lease: renewable }, at(50)).kind).toBe('renew');
  });

  it('re-issues (revoking the old lease) when the spec changes, and revokes on deletion', () => {
    const status = leaseStatus(object(), lease(), t0);
    const changed = object({ metadata: { ...object().metadata, generation: 2 }, status });
    expect(decideLease(changed, { lease: lease() }, at(1))).toMatchObject({
      kind: 'issue',
      revokeFirst: 'lease_1',
    });
    const deleting = object({
      metadata: { ...object().metadata, deletionTimestamp: at(1).toISOString() },
      status,
    });
    expect(decideLease(deleting, { lease: lease() }, at(2))).toEqual({ kind: 'finalize', revoke: 'lease_1' });
    expect(decideLease(deleting, { lease: lease() }, at(61))).toEqual({
      kind: 'finalize',
      revoke: undefined,
    });
  });

  it('maps refusals to phases and leaves transient errors to the retry', () => {
    const denied = refusalOf(
      Object.assign(new Error('no policy grants "lease"'), { code: 'permission_denied' }),
    );
    expect(denied).toMatchObject({ phase: 'Denied', reason: 'PermissionDenied' });
    expect(refusalOf(Object.assign(new Error('x'), { code: 'store_unavailable' }))).toBeUndefined();
    const status = refusedStatus(object(), denied!, t0);
    expect(status).toMatchObject({ phase: 'Denied', identity: 'workload:system:serviceaccount:ns:app' });
    expect(status.leaseId).toBeUndefined();
  });
});
