import type { V1MutatingWebhookConfiguration } from '@kubernetes/client-node';
import { domain, injectLabel, injectLabelValue } from './annotations.js';

/**
 * The MutatingWebhookConfiguration. Only pods carrying the opt-in label are sent to the
 * webhook (`objectSelector`), so `failurePolicy: Fail` blocks only those while it is down;
 * the webhook's own namespace and kube-system are never sent, so the webhook cannot block its
 * own restart.
 */

export const webhookName = `inject.${domain}`;
export const defaultConfigurationName = 'vault-injector';

export interface ConfigurationOptions {
  name?: string;
  /** The namespace the webhook runs in; excluded from injection. */
  namespace: string;
  /** In-cluster: the webhook Service. */
  service?: { name: string; namespace: string; port?: number; path?: string };
  /** Out of cluster (tests, the real control plane without kubelet): a URL such as https://127.0.0.1:PORT/mutate. */
  url?: string;
  /** PEM of the CA(s) the API server trusts for the webhook; empty while cert-manager injects it. */
  caBundlePem?: string;
  timeoutSeconds?: number;
  /** E.g. cert-manager's `cert-manager.io/inject-ca-from`, when it manages the certificate instead. */
  annotations?: Record<string, string>;
}

export function webhookConfiguration(options: ConfigurationOptions): V1MutatingWebhookConfiguration {
  if ((options.service === undefined) === (options.url === undefined)) {
    throw new RangeError('a webhook configuration needs exactly one of service or url');
  }
  const timeoutSeconds = Math.min(options.timeoutSeconds ?? 10, 10);
  const excluded = [...new Set([options.namespace, 'kube-system'])];
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: {
      name: options.name ?? defaultConfigurationName,
      labels: { 'app.kubernetes.io/name': 'vault', 'app.kubernetes.io/component': 'injector' },
      ...(options.annotations ? { annotations: options.annotations } : {}),
    },
    webhooks: [
      {
        name: webhookName,
        admissionReviewVersions: ['v1'],
        sideEffects: 'None',
        failurePolicy: 'Fail',
        reinvocationPolicy: 'IfNeeded',
        matchPolicy: 'Equivalent',
        timeoutSeconds,
        clientConfig: {
          ...(options.url
            ? { url: options.url }
            : {
                service: {
                  name: options.service!.name,
                  namespace: options.service!.namespace,
                  port: options.service!.port ?? 443,
                  path: options.service!.path ?? '/mutate',
                },
              }),
          ...(options.caBundlePem ? { caBundle: Buffer.from(options.caBundlePem).toString('base64') } : {}),
        },
        rules: [
          {
            operations: ['CREATE'],
            apiGroups: [''],
            apiVersions: ['v1'],
            resources: ['pods'],
            scope: 'Namespaced',
          },
          {
            // kubectl debug: an ephemeral container gets no more than an app container.
            operations: ['UPDATE'],
            apiGroups: [''],
            apiVersions: ['v1'],
            resources: ['pods/ephemeralcontainers'],
            scope: 'Namespaced',
          },
        ],
        objectSelector: { matchLabels: { [injectLabel]: injectLabelValue } },
        namespaceSelector: {
          matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: excluded }],
        },
      },
    ],
  };
}
