/**
 * The Secrets the controller may import from: one informer per namespace it is given
 * (`--secret-namespaces`), each selecting only Secrets labelled for import. There is no
 * cluster-wide Secret informer, so the controller needs `list`/`watch` on Secrets only in
 * those namespaces (a RoleBinding of the secret-reader ClusterRole in each), never in the
 * namespace that holds Vault's root key and etcd client certificate. Kubernetes RBAC has no
 * deny and cannot narrow by label, so per-namespace grants are the only way to keep the
 * controller's ServiceAccount away from them.
 */
import type { KubeClient } from '../k8s/api-client.js';
import { resourceTypes } from '../k8s/api-client.js';
import { createInformer, type Informer, type InformerHandlers } from '../k8s/informer.js';
import type { KubeObject } from '../k8s/resources.js';
import type { Logger } from '../lib/logger.js';
import { secretImportLabel, secretImportLabelValue } from '../webhook/annotations.js';

export interface SecretCaches {
  /** Whether the controller was given `namespace` to import Secrets from. */
  granted(namespace: string): boolean;
  /** The labelled Secret, if cached (undefined also when the namespace is not granted). */
  get(namespace: string, name: string): KubeObject | undefined;
  /** Every cached Secret, of all granted namespaces. */
  list(): KubeObject[];
  addHandlers(handlers: InformerHandlers<KubeObject>): void;
  /** Resolves once every namespace's first list is in; a namespace the controller may not list keeps it waiting (and logs why). */
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function createSecretCaches(options: {
  client: KubeClient;
  namespaces: readonly string[];
  resyncMs?: number;
  logger: Logger;
  onError?(err: unknown): void;
}): SecretCaches {
  const informers = new Map<string, Informer<KubeObject>>();
  for (const namespace of new Set(options.namespaces)) {
    informers.set(
      namespace,
      createInformer<KubeObject>({
        client: options.client,
        type: resourceTypes.secrets,
        namespace,
        labelSelector: `${secretImportLabel}=${secretImportLabelValue}`,
        resyncMs: options.resyncMs,
        logger: options.logger.child({ namespace }),
        onError: options.onError,
      }),
    );
  }
  return {
    granted: (namespace) => informers.has(namespace),
    get: (namespace, name) => informers.get(namespace)?.get(namespace, name),
    list: () => [...informers.values()].flatMap((informer) => informer.list()),
    addHandlers(handlers) {
      for (const informer of informers.values()) informer.addHandlers(handlers);
    },
    async start() {
      await Promise.all([...informers.values()].map((informer) => informer.start()));
    },
    async stop() {
      await Promise.all([...informers.values()].map((informer) => informer.stop()));
    },
  };
}
