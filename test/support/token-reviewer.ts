/**
 * The Kubernetes identity `vault server` has in production: a ServiceAccount whose only right
 * is creating TokenReviews, bound as charts/vault/templates/server-rbac.yaml binds it. Tests
 * give the server this kubeconfig, never the control plane's admin one, so a server that
 * needed more (reading pods, Secrets, ServiceAccounts) would fail here as it would in a
 * cluster.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CoreV1Api, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { type ControlPlane, serviceAccountIssuer } from './control-plane.js';

const namespace = 'vault-reviewer';
const name = 'vault-server';

/** Creates the ServiceAccount and its binding (once per control plane); returns the path of a kubeconfig for it. */
export async function reviewerKubeconfig(cp: ControlPlane): Promise<string> {
  const admin = cp.kubeConfig();
  const core = admin.makeApiClient(CoreV1Api);
  const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
  const exists = await core.readNamespace({ name: namespace }).then(
    () => true,
    () => false,
  );
  if (!exists) {
    await cp.createNamespace(namespace);
    await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } });
    await rbac.createClusterRole({
      body: {
        metadata: { name: `${name}-review` },
        rules: [{ apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] }],
      },
    });
    await rbac.createClusterRoleBinding({
      body: {
        metadata: { name: `${name}-review` },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: `${name}-review` },
        subjects: [{ kind: 'ServiceAccount', name, namespace }],
      },
    });
  }
  const requested = await core.createNamespacedServiceAccountToken({
    namespace,
    name,
    body: { spec: { audiences: [serviceAccountIssuer], expirationSeconds: 4 * 3600 } },
  });
  const path = join(cp.workDir, `vault-server-${Date.now()}.kubeconfig`);
  writeFileSync(path, cp.kubeConfigForToken(requested.status!.token).exportConfig(), { mode: 0o600 });
  return path;
}
