/**
 * The controller's Prometheus metrics, on a registry of its own (the operator process serves
 * it on /metrics). Labels carry kinds, phases and outcomes, never names of secrets or values.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export function createOperatorMetrics(options: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  if (options.defaultMetrics) collectDefaultMetrics({ register: registry, prefix: 'vault_operator_' });
  const metrics = {
    registry,
    reconcileDuration: new Histogram({
      name: 'vault_operator_reconcile_duration_seconds',
      help: 'Time spent in one reconcile, by kind and result.',
      labelNames: ['kind', 'result'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    reconcileErrors: new Counter({
      name: 'vault_operator_reconcile_errors_total',
      help: 'Reconciles that failed and were retried with backoff, by kind.',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
    queueDepth: new Gauge({
      name: 'vault_operator_queue_depth',
      help: 'Keys waiting in the work queue.',
      registers: [registry],
    }),
    queueScheduled: new Gauge({
      name: 'vault_operator_queue_scheduled',
      help: 'Keys scheduled for a later reconcile (expiry, renewal, retry).',
      registers: [registry],
    }),
    leasesByPhase: new Gauge({
      name: 'vault_operator_vaultleases',
      help: 'VaultLease objects by status phase.',
      labelNames: ['phase'] as const,
      registers: [registry],
    }),
    credentialsByPhase: new Gauge({
      name: 'vault_operator_vaultcredentials',
      help: 'VaultCredential objects by status phase.',
      labelNames: ['phase'] as const,
      registers: [registry],
    }),
    apiRequests: new Counter({
      name: 'vault_operator_kube_api_requests_total',
      help: 'Requests to the Kubernetes API, by verb, resource and status code.',
      labelNames: ['verb', 'resource', 'code'] as const,
      registers: [registry],
    }),
    isLeader: new Gauge({
      name: 'vault_operator_leader',
      help: '1 while this replica holds the leader lease.',
      registers: [registry],
    }),
    informerObjects: new Gauge({
      name: 'vault_operator_informer_objects',
      help: 'Objects held in the informer caches, by resource (Secrets: only those labelled for import).',
      labelNames: ['resource'] as const,
      registers: [registry],
    }),
    informerErrors: new Counter({
      name: 'vault_operator_informer_errors_total',
      help: 'Failed list or watch calls (retried with backoff), by resource.',
      labelNames: ['resource'] as const,
      registers: [registry],
    }),
  };
  return metrics;
}

export type OperatorMetrics = ReturnType<typeof createOperatorMetrics>;
