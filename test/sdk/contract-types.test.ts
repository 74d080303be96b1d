/**
 * The SDK writes its types out by hand (the published package must not depend on zod); this
 * file fails to compile (`npm run typecheck`) when they drift from the contract's schemas.
 */
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import * as contract from '../../src/contract/index.js';
import type * as sdk from '../../src/sdk/index.js';

/** The SDK's type as it travels on the wire: Dates are ISO strings. */
type Wire<T> = T extends Date
  ? string
  : T extends (infer U)[]
    ? Wire<U>[]
    : T extends object
      ? { [K in keyof T]: Wire<T[K]> }
      : T;
type Assignable<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
/** Mutually assignable and with the same keys (optional fields included). */
type Same<A, B> = Assignable<A, B> extends true ? Assignable<keyof A, keyof B> : false;
const same = <A, B>(check: Same<A, B>) => check;

describe('SDK types match the contract schemas', () => {
  it('responses', () => {
    same<Wire<sdk.Credential>, z.infer<typeof contract.credential>>(true);
    same<Wire<sdk.Lease>, z.infer<typeof contract.lease>>(true);
    same<Wire<sdk.LeaseEvent>, z.infer<typeof contract.leaseEvent>>(true);
    same<Wire<sdk.TokenInfo>, z.infer<typeof contract.tokenInfo>>(true);
    same<Wire<sdk.CreatedToken>, z.infer<typeof contract.createdToken>>(true);
    same<Wire<sdk.Policy>, z.infer<typeof contract.policy>>(true);
    same<Wire<sdk.IdentityRecord>, z.infer<typeof contract.identityRecord>>(true);
    same<Wire<sdk.Tenant>, z.infer<typeof contract.tenantRecord>>(true);
    same<Wire<sdk.AuditRecord>, z.infer<typeof contract.auditRecord>>(true);
    same<Wire<sdk.AuditVerifyResult>, z.infer<typeof contract.auditVerifyResult>>(true);
    same<Wire<sdk.ValueLookupResult>, z.infer<typeof contract.valueLookupResult>>(true);
    same<sdk.BulkRevokeResult, z.infer<typeof contract.bulkRevokeResult>>(true);
  });

  it('requests', () => {
    same<sdk.CreateCredentialInput, z.input<typeof contract.createCredentialRequest>>(true);
    same<sdk.UpdateCredentialInput, z.input<typeof contract.updateCredentialRequest>>(true);
    same<sdk.RotateCredentialInput, z.input<typeof contract.rotateRequest>>(true);
    same<sdk.CreateLeaseInput, z.input<typeof contract.createLeaseRequest>>(true);
    same<sdk.UseLeaseInput, z.input<typeof contract.useLeaseRequest>>(true);
    same<sdk.BulkRevokeInput, z.input<typeof contract.bulkRevokeRequest>>(true);
    same<sdk.CreateTokenInput, z.input<typeof contract.createTokenRequest>>(true);
    same<sdk.PolicyBody, z.input<typeof contract.policyBody>>(true);
    same<sdk.IdentityInput, z.input<typeof contract.identityBody>>(true);
    same<Omit<sdk.ListLeasesQuery, 'limit'>, Omit<z.input<typeof contract.listLeasesQuery>, 'limit'>>(true);
  });

  it('enumerations', () => {
    const credentialTypes: sdk.CredentialType[] = [
      'api-key',
      'password',
      'database-url',
      'ssh-key',
      'certificate',
      'generic',
    ];
    expect(credentialTypes).toEqual([...contract.credentialTypes]);
    const actions: sdk.PolicyAction[] = [
      'list',
      'read-metadata',
      'lease',
      'reveal',
      'create',
      'rotate',
      'delete',
      'admin',
      'metrics',
    ];
    expect(actions).toEqual([...contract.actions]);
    const states: sdk.LeaseState[] = ['active', 'expired', 'revoked'];
    expect(states).toEqual([...contract.leaseStates]);
  });
});
