import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** Prometheus metrics of the API process. Labels carry routes and codes, never values. */
export function createServerMetrics(
  options: { leaseStates?: () => Promise<Record<string, number>>; auditTampered?: () => string[] } = {},
) {
  const registry = new Registry();
  new Gauge({
    name: 'vault_audit_tampered',
    help: 'Tenants whose audit chain failed an integrity check (1 each): their writes are stopped',
    labelNames: ['tenant'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const tenant of options.auditTampered?.() ?? []) this.set({ tenant }, 1);
    },
  });
  // Counted from the store when scraped, at most every 10 s (a scan of every tenant's leases).
  let cached: { at: number; counts: Record<string, number> } | undefined;
  new Gauge({
    name: 'vault_leases',
    help: 'Leases by effective state (active, expired, revoked), all tenants',
    labelNames: ['state'] as const,
    registers: [registry],
    async collect() {
      if (!options.leaseStates) return;
      if (!cached || Date.now() - cached.at > 10_000)
        cached = { at: Date.now(), counts: await options.leaseStates() };
      for (const [state, count] of Object.entries(cached.counts)) this.set({ state }, count);
    },
  });
  collectDefaultMetrics({ register: registry });
  const requests = new Counter({
    name: 'vault_http_requests_total',
    help: 'HTTP requests by route template, method and status code',
    labelNames: ['route', 'method', 'code'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'vault_http_request_duration_seconds',
    help: 'HTTP request latency by route template',
    labelNames: ['route', 'method'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const leases = new Counter({
    name: 'vault_leases_total',
    help: 'Lease decisions: issued, renewed, revoked, denied, read, expired (read after expiry)',
    labelNames: ['event'] as const,
    registers: [registry],
  });
  const authFailures = new Counter({
    name: 'vault_auth_failures_total',
    help: 'Failed authentications by reason',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const dynamicRevocations = new Counter({
    name: 'vault_dynamic_revocations_total',
    help: "Removals of dynamic leases' upstream accounts by engine and outcome (removed, failed: retried with backoff)",
    labelNames: ['engine', 'outcome'] as const,
    registers: [registry],
  });
  return { registry, requests, duration, leases, authFailures, dynamicRevocations };
}

export type ServerMetrics = ReturnType<typeof createServerMetrics>;
