import { randomUUID } from 'node:crypto';
import express, { type Express } from 'express';
import { tenantId } from '../contract/common.js';
import type { VaultCore } from '../core/index.js';
import type { Keyring } from '../crypto/keyring.js';
import type { Clock } from '../lib/clock.js';
import { systemClock } from '../lib/clock.js';
import { notFound } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { authenticate, callContext } from './context.js';
import { errorHandler, toVaultError } from './errors.js';
import { createBulkGate, createSlots, type SlotLimits } from './fair-share.js';
import { type KubernetesLoginConfig, kubernetesLogin } from './kubernetes-login.js';
import { createServerMetrics, onlyTenant, type ServerMetrics } from './metrics.js';
import { openApiDocument } from './openapi.js';
import { createAuthLimiter } from './rate-limit.js';
import { apiRoutes, defaultEventBacklog, type EventBacklogLimits } from './routes.js';
import { uiRouter } from './ui.js';

export interface AppConfig {
  /** Largest accepted request body (bytes). */
  bodyLimitBytes: number;
  /** Failed authentications per source address and token prefix per minute before 429. */
  authFailuresPerMinute: number;
  /**
   * Addresses or CIDRs of reverse proxies whose X-Forwarded-For is believed (the audit's source
   * address and the rate limiter's key); from anyone else the header is ignored.
   */
  trustedProxies: string[];
  version: string;
  kubernetes?: KubernetesLoginConfig;
  /** The web console's built files, served at /ui; absent: no console. */
  uiDir?: string;
  /** Open lease-event streams: per process, per tenant, per token (see fair-share.ts). */
  eventStreams: SlotLimits;
  /** Bytes of lease events waiting for slow clients: per stream, and all streams together. */
  eventBacklog: EventBacklogLimits;
  /** Bulk operations running at once per process and tenant, and waiting per tenant. */
  bulkOperations: { perProcess: number; perTenant: number; queue: number };
  /** Series labelled with tenant ids (used when createApp builds the metrics itself). */
  metricsTenantSeries?: boolean;
}

export const defaultAppConfig: AppConfig = {
  bodyLimitBytes: 128 * 1024,
  authFailuresPerMinute: 20,
  trustedProxies: [],
  version: '0.1.0',
  eventStreams: { perProcess: 2048, perTenant: 256, perToken: 16 },
  eventBacklog: defaultEventBacklog,
  bulkOperations: { perProcess: 4, perTenant: 2, queue: 16 },
};

export interface AppDeps {
  core: VaultCore;
  keyring: Keyring;
  logger: Logger;
  metrics?: ServerMetrics;
  clock?: Clock;
  config?: Partial<AppConfig>;
}

/** The HTTP API: express, one router per group, errors mapped in one place. */
export function createApp(deps: AppDeps): { app: Express; metrics: ServerMetrics } {
  const config = { ...defaultAppConfig, ...deps.config };
  const metrics =
    deps.metrics ??
    createServerMetrics({
      leaseCounts: () => deps.core.leases.countLeases(),
      auditTampered: () => deps.core.auditIntegrity.list().map((t) => t.tenant),
      tenantSeries: config.metricsTenantSeries === true,
    });
  const limiter = createAuthLimiter({
    limit: config.authFailuresPerMinute,
    windowMs: 60_000,
    clock: deps.clock ?? systemClock,
  });
  const app = express();
  app.disable('x-powered-by');
  // Answers are no-store (below): an ETag, a hash of every body, would only cost CPU.
  app.set('etag', false);
  app.set('trust proxy', config.trustedProxies.length > 0 ? config.trustedProxies : false);
  app.set('query parser', 'simple');

  app.use((req, res, next) => {
    const incoming = req.get('x-request-id');
    const requestId = incoming && /^[A-Za-z0-9._-]{1,64}$/.test(incoming) ? incoming : randomUUID();
    res.locals.requestId = requestId;
    res.setHeader('x-request-id', requestId);
    // Made when something logs: most requests log nothing (the request line is at debug).
    let log: Logger | undefined;
    Object.defineProperty(res.locals, 'log', {
      get: () => (log ??= deps.logger.child({ requestId })),
      configurable: true,
    });
    const started = process.hrtime.bigint();
    res.on('finish', () => {
      const route = (req.route?.path ? `${req.baseUrl}${req.route.path}` : 'unmatched') as string;
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      metrics.requests.inc({ route, method: req.method, code: String(res.statusCode) });
      metrics.duration.observe({ route, method: req.method }, seconds);
      if (deps.logger.isLevelEnabled('debug')) {
        res.locals.log!.debug(
          { method: req.method, route, status: res.statusCode, ms: Math.round(seconds * 1000) },
          'request',
        );
      }
    });
    next();
  });

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    const tampered = deps.core.auditIntegrity.list();
    if (tampered.length > 0) {
      // Writes of these tenants are stopped; an operator has to look (logs name the reason).
      res.status(503).json({
        status: 'audit-tampered',
        reason: `the audit chain of ${tampered.map((t) => `"${t.tenant}"`).join(', ')} failed its integrity check`,
        audit: { tampered },
      });
      return;
    }
    try {
      await deps.core.store.ping();
      res.json({ status: 'ready' });
    } catch (err) {
      const error = toVaultError(err);
      res.status(503).json({ status: 'unavailable', reason: error.message });
    }
  });
  // Public, so anyone holding a checkpoint can check its signature without a token.
  app.get('/.well-known/vault/audit-keys/:tenant', async (req, res) => {
    const tenant = tenantId.safeParse(req.params.tenant);
    const key = tenant.success ? await deps.core.audit.publicKey(tenant.data) : undefined;
    if (!key) throw notFound('no audit key for this tenant');
    res.json(key);
  });
  // Needs a token: a system token, or one whose policy grants "metrics" (or "admin"); such a
  // tenant token sees totals and only its own tenant's series. Scrapers without a token use
  // the separate listener (`--metrics-listen`, metricsApp below).
  app.get('/metrics', authenticate({ core: deps.core, limiter, metrics }), async (_req, res) => {
    const ctx = callContext(res);
    await deps.core.access.check(ctx, 'metrics', 'sys/metrics', undefined, 'metrics.read');
    const text = await metrics.registry.metrics();
    res
      .type(metrics.registry.contentType)
      .send(ctx.principal.system || !metrics.tenantSeries ? text : onlyTenant(text, ctx.tenant));
  });
  const openapi = openApiDocument(config.version);
  app.get('/v1/openapi.json', (_req, res) => {
    res.json(openapi);
  });

  if (config.uiDir) app.use('/ui', uiRouter(config.uiDir));

  // API answers carry values and tokens: no cache, private or shared, may keep one (a browser
  // calling the API would otherwise keep GET /v1/leases/:id/value in its disk cache).
  app.use('/v1', (_req, res, next) => {
    res.setHeader('cache-control', 'no-store');
    next();
  });

  app.use(
    express.json({
      limit: config.bodyLimitBytes,
      strict: true,
      type: ['application/json', 'application/*+json'],
    }),
  );
  if (config.kubernetes) {
    app.post(
      '/v1/auth/kubernetes/login',
      kubernetesLogin({ core: deps.core, config: config.kubernetes, limiter }),
    );
  }
  app.use(
    '/v1',
    authenticate({ core: deps.core, limiter, metrics }),
    apiRoutes({
      core: deps.core,
      keyring: deps.keyring,
      metrics,
      streams: createSlots(
        'open event streams',
        config.eventStreams,
        {
          process: '--max-event-streams',
          tenant: '--max-event-streams-per-tenant',
          token: '--max-event-streams-per-token',
        },
        (scope) => metrics.refused.inc({ kind: 'event_streams', scope }),
      ),
      eventBacklog: config.eventBacklog,
      bulk: createBulkGate(config.bulkOperations, () =>
        metrics.refused.inc({ kind: 'bulk', scope: 'tenant' }),
      ),
    }),
  );
  app.use((req, _res) => {
    throw notFound(`no route ${req.method} ${req.path}; see /v1/openapi.json`);
  });
  app.use(errorHandler);
  return { app, metrics };
}

/**
 * The separate metrics listener (`--metrics-listen`): `/metrics` without a token, for a scraper
 * that only the network lets in (the chart's NetworkPolicy), plus `/healthz`. Nothing else.
 */
export function metricsApp(metrics: ServerMetrics): Express {
  const app = express();
  app.disable('x-powered-by');
  app.get('/metrics', async (_req, res) => {
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.use((req, res) => {
    res.status(404).json({
      error: {
        code: 'not_found',
        message: `the metrics listener serves only /metrics and /healthz, not ${req.path}`,
      },
    });
  });
  return app;
}
