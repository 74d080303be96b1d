/**
 * How Kubernetes namespaces map to tenants. Without a cluster name a namespace is its own
 * tenant (one cluster per Vault, the original mapping); a named cluster's namespace is the
 * tenant `<cluster>.<namespace>`, so one Vault serves many clusters whose namespaces share
 * names. A dot never occurs in a cluster or namespace name, so the pair reads back
 * unambiguously, and a cluster's tenants never overlap the unnamed cluster's.
 */

export const namespaceTenant = (cluster: string | undefined, namespace: string): string =>
  cluster ? `${cluster}.${namespace}` : namespace;

/**
 * Whether `tenant` belongs to `cluster` (undefined: the unnamed cluster, whose tenants are
 * every tenant without a dot, including tenants made through the API).
 */
export function clusterOwnsTenant(cluster: string | undefined, tenant: string): boolean {
  const dot = tenant.indexOf('.');
  return cluster === undefined ? dot < 0 : dot > 0 && tenant.slice(0, dot) === cluster;
}
