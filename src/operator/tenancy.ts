/**
 * How Kubernetes names map to Vault: a namespace is a tenant (itself, or `<cluster>.<namespace>`
 * when the controller runs with a cluster name: contract/tenancy.ts), and a ServiceAccount is
 * the workload identity
 * `system:serviceaccount:<namespace>:<name>`, the username Kubernetes itself gives it (and the
 * one `vault` Kubernetes login maps a projected token to).
 */
import type { Identity } from '../contract/common.js';

export { namespaceTenant } from '../contract/tenancy.js';

export const serviceAccountIdentity = (namespace: string, name: string): Identity => ({
  type: 'workload',
  name: `system:serviceaccount:${namespace}:${name}`,
});

export const formatIdentity = (identity: Identity): string => `${identity.type}:${identity.name}`;
