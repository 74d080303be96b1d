import { randomUUID } from 'node:crypto';
import type { Identity } from '../contract/common.js';

/** Who is calling: resolved from a token (or trusted in-process, for the operator). */
export interface Principal {
  tenant: string;
  identity: Identity;
  policies: string[];
  /** System principals act with full rights in any tenant (dev root token, the operator). */
  system: boolean;
  accessor?: string;
  /** The token's own policies (without its identity's), the most it may hand on. */
  tokenPolicies?: string[];
  /** The token's record and revision: a token minted with it commits only while it exists. */
  tokenKey?: string;
  tokenRevision?: number;
  /** When the token ends; tokens it mints end no later. */
  expiresAt?: string;
  /** Who minted this token, when that is someone else: the human behind an agent. */
  delegatedBy?: Identity;
  /**
   * A cluster's controller (controller-role.ts): acts in the cluster's tenants (cluster
   * undefined: the unnamed cluster) with a fixed role, never with policies.
   */
  controllerOf?: { cluster?: string };
}

export interface CallContext {
  principal: Principal;
  /** The tenant this call acts in. */
  tenant: string;
  requestId: string;
  source?: string;
}

/** A trusted in-process caller with full rights in `tenant`, audited as `identity`. */
export function systemContext(
  tenant: string,
  identity: Identity,
  requestId: string = randomUUID(),
): CallContext {
  return { principal: { tenant, identity, policies: [], system: true }, tenant, requestId };
}

export const sameIdentity = (a: Identity, b: Identity) => a.type === b.type && a.name === b.name;

export const formatIdentity = (identity: Identity) => `${identity.type}:${identity.name}`;
