/**
 * What the reconcilers need from Vault, and nothing more: the port keeps reconcile logic
 * independent of how Vault is reached. Its adapter (api-port.ts) calls the Vault API with the
 * controller's own token, whose controller role (core/controller-role.ts) is what the API
 * lets it do: `issueLease` is decided by the policies of the identity the lease is for, so a
 * VaultLease never grants more than Vault gives that identity, and a refusal is audited and
 * surfaces as phase Denied. No value ever comes back through it.
 */
import type { Identity } from '../contract/common.js';
import type { Credential, CredentialType, DynamicSpec, GenerateSpec } from '../contract/credentials.js';
import type { Lease } from '../contract/leases.js';
import type { PolicyBody } from '../contract/policies.js';

export type LeaseInfo = Omit<Lease, 'value'>;

export interface CreateCredentialInput {
  name: string;
  type: CredentialType;
  metadata: Record<string, string>;
  leases?: { defaultTtl?: string; maxTtl?: string };
  value?: string;
  generate?: GenerateSpec;
  /** A dynamic credential's engine settings; `value` is then the admin connection. */
  dynamic?: DynamicSpec;
}

export interface IssueLeaseInput {
  credentialName: string;
  identity: Identity;
  ttl?: string;
  maxTtl?: string;
  renewable: boolean;
  /** UID of the VaultLease it is for: kept as a lease label so a crash cannot orphan it. */
  owner?: string;
}

/** The lease label naming the VaultLease (by UID) a lease was issued for. */
export const ownerLabel = 'vault.ghoststack.io/vaultlease-uid';

export interface VaultPort {
  getCredential(tenant: string, name: string): Promise<Credential | undefined>;
  createCredential(tenant: string, input: CreateCredentialInput): Promise<Credential>;
  updateCredential(
    tenant: string,
    name: string,
    input: {
      metadata: Record<string, string>;
      leases: { defaultTtl?: string; maxTtl?: string };
      dynamic?: DynamicSpec;
    },
  ): Promise<Credential>;
  /** Adds a version unless the value equals the current version's (Vault compares). */
  putVersionIfChanged(tenant: string, name: string, value: string): Promise<Credential>;
  rotate(tenant: string, name: string, generate: GenerateSpec): Promise<Credential>;
  /** Deletes the credential and revokes its active leases. */
  deleteCredential(tenant: string, name: string): Promise<{ revoked: number }>;
  revokeLeasesOf(tenant: string, credentialName: string): Promise<{ revoked: number }>;
  getPolicy(tenant: string, name: string): Promise<PolicyBody | undefined>;
  putPolicy(tenant: string, name: string, body: PolicyBody): Promise<void>;
  deletePolicy(tenant: string, name: string): Promise<void>;
  /** Adds (or removes) one policy on an identity; resolves true when something changed. */
  attachPolicy(tenant: string, identity: Identity, policy: string): Promise<boolean>;
  detachPolicy(tenant: string, identity: Identity, policy: string): Promise<boolean>;
  /** Issues a lease acting as `input.identity`; throws VaultError permission_denied when its policies refuse. */
  issueLease(tenant: string, input: IssueLeaseInput): Promise<LeaseInfo>;
  getLease(tenant: string, id: string): Promise<LeaseInfo | undefined>;
  /** The active lease issued to `identity` for the VaultLease with this UID, if one exists. */
  findLeaseFor(tenant: string, owner: string, identity: Identity): Promise<LeaseInfo | undefined>;
  renewLease(tenant: string, id: string, increment?: string): Promise<LeaseInfo>;
  revokeLease(tenant: string, id: string, reason: string): Promise<void>;
  /**
   * Changes of the tenant's leases made anywhere (API, CLI, another VaultCredential's deletion).
   * `onResumed` is called each time the watch is live again after it broke: changes made in
   * between sent no event, so the caller re-reads what it follows.
   */
  watchLeases(
    tenant: string,
    onEvent: (event: { type: 'issued' | 'renewed' | 'revoked' | 'expired'; leaseId: string }) => void,
    onResumed?: () => void,
  ): Promise<{ close(): Promise<void> }>;
}
