import { isStatus, type KubeClient, type ResourceType, resourceTypes } from '../k8s/api-client.js';
import { type CertState, type CertStore, stateFromSecretData, stateToSecretData } from './certs.js';

/** The webhook's Kubernetes edges: its certificate Secret, its configuration's caBundle, VaultLease look-ups. */

const mutatingWebhookConfigurations: ResourceType = {
  group: 'admissionregistration.k8s.io',
  version: 'v1',
  plural: 'mutatingwebhookconfigurations',
  namespaced: false,
};

interface SecretObject {
  metadata: { name: string; namespace: string; resourceVersion?: string; labels?: Record<string, string> };
  type?: string;
  data?: Record<string, string>;
}

export function createSecretCertStore(client: KubeClient, namespace: string, name: string): CertStore {
  return {
    async load() {
      try {
        const secret = await client.get<SecretObject>(resourceTypes.secrets, namespace, name);
        const state = stateFromSecretData(secret.data);
        return state ? { state, version: secret.metadata.resourceVersion ?? '' } : undefined;
      } catch (err) {
        if (isStatus(err, 404)) return undefined;
        throw err;
      }
    },
    async save(state: CertState, version: string | undefined) {
      const body: SecretObject = {
        metadata: {
          name,
          namespace,
          labels: { 'app.kubernetes.io/name': 'vault', 'app.kubernetes.io/component': 'injector' },
          ...(version ? { resourceVersion: version } : {}),
        },
        type: 'Opaque',
        data: stateToSecretData(state),
      };
      const full = { apiVersion: 'v1', kind: 'Secret', ...body };
      if (version) {
        await client.replace(resourceTypes.secrets, namespace, name, full);
        return;
      }
      // An empty Secret may exist (the chart creates it so the webhook needs no `create`
      // on Secrets, which would let it mint tokens): take it over; create only if absent.
      let existing: SecretObject | undefined;
      try {
        existing = await client.get<SecretObject>(resourceTypes.secrets, namespace, name);
      } catch (err) {
        if (!isStatus(err, 404)) throw err;
      }
      if (!existing) {
        await client.create(resourceTypes.secrets, namespace, full);
        return;
      }
      if (stateFromSecretData(existing.data)) {
        // Another replica stored certificates since we looked: keep them, reload and retry.
        throw new Error(`Secret ${namespace}/${name} was filled by someone else meanwhile; retrying with it`);
      }
      await client.replace(resourceTypes.secrets, namespace, name, {
        ...full,
        metadata: { ...full.metadata, resourceVersion: existing.metadata.resourceVersion },
      });
    },
  };
}

/** Writes the bundle into every webhook of the configuration, only when it changed. */
export function createCaBundlePublisher(client: KubeClient, configurationName: string) {
  return async (pem: string): Promise<void> => {
    const caBundle = Buffer.from(pem).toString('base64');
    const config = await client.get<{ webhooks?: { clientConfig?: { caBundle?: string } }[] }>(
      mutatingWebhookConfigurations,
      undefined,
      configurationName,
    );
    const webhooks = config.webhooks ?? [];
    if (webhooks.every((w) => w.clientConfig?.caBundle === caBundle)) return;
    const ops = webhooks.map((_, i) => ({
      op: 'add',
      path: `/webhooks/${i}/clientConfig/caBundle`,
      value: caBundle,
    }));
    await client.jsonPatch(mutatingWebhookConfigurations, undefined, configurationName, ops);
  };
}

export { mutatingWebhookConfigurations };

const subjectAccessReviews: ResourceType = {
  group: 'authorization.k8s.io',
  version: 'v1',
  plural: 'subjectaccessreviews',
  namespaced: false,
};

/**
 * Which of the named VaultLeases a ServiceAccount may not `get` (what its agent does), asked
 * of the API server with a SubjectAccessReview so every authorizer (RBAC, webhooks) answers.
 */
export function createLeaseAccessChecker(client: KubeClient) {
  return async (namespace: string, serviceAccount: string, names: string[]): Promise<string[]> => {
    const denied: string[] = [];
    for (const name of names) {
      const review = await client.create<{ status?: { allowed?: boolean } }>(
        subjectAccessReviews,
        undefined,
        {
          apiVersion: 'authorization.k8s.io/v1',
          kind: 'SubjectAccessReview',
          spec: {
            user: `system:serviceaccount:${namespace}:${serviceAccount}`,
            groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'],
            resourceAttributes: {
              namespace,
              verb: 'get',
              group: resourceTypes.vaultLeases.group,
              version: resourceTypes.vaultLeases.version,
              resource: resourceTypes.vaultLeases.plural,
              name,
            },
          },
        },
      );
      if (review.status?.allowed !== true) denied.push(name);
    }
    return denied;
  };
}

/** Which of the named VaultLeases do not exist in the namespace. */
export function createLeaseChecker(client: KubeClient) {
  return async (namespace: string, names: string[]): Promise<string[]> => {
    const missing: string[] = [];
    for (const name of names) {
      try {
        await client.get(resourceTypes.vaultLeases, namespace, name);
      } catch (err) {
        if (isStatus(err, 404)) missing.push(name);
        else throw err;
      }
    }
    return missing;
  };
}
