import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export type LeaseStates = Record<'active' | 'expired' | 'revoked', number>;

export interface LeaseCounts {
  total: LeaseStates;
  byTenant: Map<string, LeaseStates>;
}

/**
 * Prometheus metrics of the API process. Labels carry routes and codes, never values. Series
 * that name a tenant exist only with `tenantSeries` (`--metrics-tenant-series`): by default a
 * scrape says nothing about which tenants exist or what they do.
 */
export function createServerMetrics(
  options: {
    leaseCounts?: () => Promise<LeaseCounts>;
    auditTampered?: () => string[];
    tenantSeries?: boolean;
  } = {},
) {
  const registry = new Registry();
  const tenantSeries = options.tenantSeries === true;
  new Gauge({
    name: 'vault_audit_tampered_tenants',
    help: 'Tenants whose audit chain failed an integrity check: their writes are stopped (see /readyz)',
    registers: [registry],
    collect() {
      this.set(options.auditTampered?.().length ?? 0);
    },
  });
  if (tenantSeries) {
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
  }
  const leaseCounts = options.leaseCounts ? throttleLeaseCounts(options.leaseCounts) : () => undefined;
  new Gauge({
    name: 'vault_leases',
    help: 'Leases by effective state (active, expired, revoked), all tenants; recounted at most every 10 s, and less often where counting takes long (at most 2 % of the time); no sample while counting fails',
    labelNames: ['state'] as const,
    registers: [registry],
    async collect() {
      const counts = await leaseCounts();
      // No counts (the count failed): no sample, rather than the last one passed off as current.
      this.reset();
      if (!counts) return;
      for (const [state, count] of Object.entries(counts.total)) this.set({ state }, count);
    },
  });
  if (tenantSeries) {
    new Gauge({
      name: 'vault_tenant_leases',
      help: 'Leases by tenant and effective state (with --metrics-tenant-series)',
      labelNames: ['tenant', 'state'] as const,
      registers: [registry],
      async collect() {
        const counts = await leaseCounts();
        this.reset();
        if (!counts) return;
        for (const [tenant, states] of counts.byTenant)
          for (const [state, count] of Object.entries(states)) this.set({ tenant, state }, count);
      },
    });
  }
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
  const refused = new Counter({
    name: 'vault_fair_share_refusals_total',
    help: 'Requests refused by a fair-sharing limit, by what was limited (event_streams, bulk) and scope (process, tenant, token)',
    labelNames: ['kind', 'scope'] as const,
    registers: [registry],
  });
  const eventStreams = new Gauge({
    name: 'vault_event_streams_open',
    help: 'Lease-event streams this process serves now',
    registers: [registry],
  });
  return {
    registry,
    requests,
    duration,
    leases,
    authFailures,
    dynamicRevocations,
    refused,
    eventStreams,
    tenantSeries,
  };
}

/**
 * The exposition text without the samples of other tenants than `tenant`: what a tenant's own
 * metrics reader may see when tenant series are on. Tenant ids are [a-z0-9-], so a plain
 * match of the label is exact.
 */
export function onlyTenant(text: string, tenant: string): string {
  return text
    .split('\n')
    .filter((line) => {
      if (line.startsWith('#')) return true;
      const match = /[{,]tenant="([^"]*)"/.exec(line);
      return !match || match[1] === tenant;
    })
    .join('\n');
}

export type ServerMetrics = ReturnType<typeof createServerMetrics>;

/** Lease counts are at most this old when scraped, where counting them is cheap. */
const LEASE_COUNTS_MIN_INTERVAL_MS = 10_000;
/** Counting may take at most 1/this of the time between counts. */
const LEASE_COUNTS_COST_SHARE = 50;

/**
 * Lease counts, counted from the store's lease indexes when scraped (three counts per tenant,
 * never a read of lease records), at most every 10 s, and at most 2 % of the time: etcd visits
 * every index key to count them and holds writes back meanwhile (about 0.4 s a count at a
 * million leases), so the slower a count, the longer its result is served. One count at a time.
 * A count that fails (etcd timing out under load) answers `undefined` (the gauge then has no
 * sample, and the scrape keeps every other metric) and is throttled like one that succeeded:
 * a struggling store is not asked again on every scrape.
 */
export function throttleLeaseCounts(
  count: () => Promise<LeaseCounts>,
  now: () => number = Date.now,
): () => Promise<LeaseCounts | undefined> {
  let last: { counts: LeaseCounts | undefined; at: number; tookMs: number } | undefined;
  let running: Promise<LeaseCounts | undefined> | undefined;
  return () => {
    const interval = Math.max(LEASE_COUNTS_MIN_INTERVAL_MS, (last?.tookMs ?? 0) * LEASE_COUNTS_COST_SHARE);
    if (last && now() - last.at < interval) return Promise.resolve(last.counts);
    running ??= (async () => {
      const started = now();
      let counts: LeaseCounts | undefined;
      try {
        counts = await count();
      } catch {
        counts = undefined;
      }
      last = { counts, at: now(), tookMs: now() - started };
      running = undefined;
      return counts;
    })();
    return running;
  };
}
