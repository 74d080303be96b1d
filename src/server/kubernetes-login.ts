import type { Request, Response } from 'express';
import { kubernetesLoginRequest } from '../contract/auth.js';
import { namespaceTenant } from '../contract/tenancy.js';
import { systemContext, type VaultCore } from '../core/index.js';
import { durationMs } from '../lib/duration.js';
import { badRequest, unauthenticated, VaultError } from '../lib/errors.js';
import { parse, sourceOf } from './context.js';
import type { AuthLimiter } from './rate-limit.js';
import type { TokenReviewer } from './token-review.js';

/** A cluster whose ServiceAccounts may log in. */
export interface KubernetesCluster {
  reviewer: TokenReviewer;
  /**
   * Its controller's ServiceAccount as `namespace:name`: logging in as it gives the
   * controller role in the cluster's tenants (core/controller-role.ts), and nothing else.
   */
  controller?: string;
}

export interface KubernetesLoginConfig {
  /** The unnamed cluster (login without `cluster`): each namespace is a tenant of the same name. */
  reviewer?: TokenReviewer;
  /** The unnamed cluster's controller ServiceAccount (`namespace:name`). */
  controller?: string;
  /** Named clusters (login with `cluster`): a namespace's tenant is `<cluster>.<namespace>`. */
  clusters?: Record<string, KubernetesCluster>;
  /** The audience projected tokens must carry ("vault"). */
  audience: string;
  /** Longest Vault token a workload gets. */
  maxTokenTtlMs: number;
}

const serviceAccountUser =
  /^system:serviceaccount:([a-z0-9]([-a-z0-9]*[a-z0-9])?):([a-z0-9]([-.a-z0-9]*[a-z0-9])?)$/;

/**
 * Exchanges a projected ServiceAccount token for a Vault token: TokenReview with Vault's
 * audience by the cluster the login names (which also fails once the pod the token is bound
 * to is gone), then the workload identity `system:serviceaccount:NS:NAME` in the namespace's
 * tenant (`NS`, or `<cluster>.NS` for a named cluster). The cluster's controller
 * ServiceAccount gets a token with the controller role over that cluster's tenants.
 */
export function kubernetesLogin(deps: {
  core: VaultCore;
  config: KubernetesLoginConfig;
  limiter: AuthLimiter;
}) {
  return async (req: Request, res: Response) => {
    const source = sourceOf(req);
    const body = parse(kubernetesLoginRequest, req.body, 'body');
    const cluster = clusterOf(deps.config, body.cluster);
    // Counted per source and JWT prefix; a genuine token is always reviewed (no lockout).
    let review: Awaited<ReturnType<TokenReviewer['review']>>;
    try {
      review = await cluster.reviewer.review(body.jwt, [deps.config.audience]);
    } catch {
      throw new VaultError(
        'store_unavailable',
        `the Kubernetes API${body.cluster ? ` of cluster "${body.cluster}"` : ''} could not review the token; retry shortly`,
      );
    }
    const match = review.username ? serviceAccountUser.exec(review.username) : null;
    if (!review.authenticated || !match || !(review.audiences ?? []).includes(deps.config.audience)) {
      const wait = deps.limiter.blocked(source, body.jwt);
      deps.limiter.fail(source, body.jwt);
      if (wait !== undefined) {
        throw new VaultError('rate_limited', `too many failed logins; retry in ${wait}s`, {
          retryAfterSeconds: wait,
        });
      }
      throw unauthenticated(
        `the Kubernetes token was not accepted (${review.error ? 'rejected by TokenReview' : 'wrong audience or not a ServiceAccount'}); project a ServiceAccount token with audience "${deps.config.audience}"${body.cluster ? ` from cluster "${body.cluster}"` : ''}`,
      );
    }
    const [, namespace, , serviceAccount] = match;
    const tenant = namespaceTenant(body.cluster, namespace!);
    const identity = { type: 'workload' as const, name: review.username! };
    const controller =
      cluster.controller !== undefined && `${namespace}:${serviceAccount}` === cluster.controller
        ? { controllerOf: body.cluster ? { cluster: body.cluster } : {} }
        : {};
    await deps.core.tenants.ensure(tenant);
    // Never longer than the projected token itself (TokenReview has checked it is genuine).
    const jwtLeftMs = jwtExpiry(body.jwt) - Date.now();
    const ttlMs = Math.min(
      body.ttl ? durationMs(body.ttl) : deps.config.maxTokenTtlMs,
      deps.config.maxTokenTtlMs,
      Math.max(jwtLeftMs, 1000),
    );
    const ctx = { ...systemContext(tenant, identity, res.locals.requestId), source };
    const pod = review.extra?.['authentication.kubernetes.io/pod-name']?.[0];
    const where = `${body.cluster ? `${body.cluster}/` : ''}${namespace}`;
    const token = await deps.core.tokens.mint(ctx, tenant, {
      identity,
      policies: [],
      ttlMs,
      displayName: pod ? `pod ${where}/${pod}` : `serviceaccount ${where}/${serviceAccount}`,
      ...controller,
    });
    res.json(token);
  };
}

/** The cluster a login names, or the unnamed one; 400 when the server does not serve it. */
function clusterOf(config: KubernetesLoginConfig, name: string | undefined): KubernetesCluster {
  if (name === undefined) {
    if (config.reviewer)
      return { reviewer: config.reviewer, ...(config.controller ? { controller: config.controller } : {}) };
    const names = Object.keys(config.clusters ?? {});
    throw badRequest(
      `name the cluster the token comes from: "cluster" is one of ${names.map((n) => `"${n}"`).join(', ')}`,
      {
        field: 'cluster',
      },
    );
  }
  const cluster = config.clusters?.[name];
  if (!cluster) {
    throw badRequest(
      `this server does not serve Kubernetes cluster "${name}"; it serves ${describeClusters(config)}`,
      {
        field: 'cluster',
      },
    );
  }
  return cluster;
}

const describeClusters = (config: KubernetesLoginConfig) =>
  [
    ...(config.reviewer ? ['the unnamed cluster (no "cluster")'] : []),
    ...Object.keys(config.clusters ?? {}).map((n) => `"${n}"`),
  ].join(', ') || 'no cluster';

/** The `exp` of a JWT in milliseconds, or +∞ when it has none (read only after TokenReview). */
function jwtExpiry(jwt: string): number {
  try {
    const payload = JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8')) as {
      exp?: unknown;
    };
    return typeof payload.exp === 'number' ? payload.exp * 1000 : Number.POSITIVE_INFINITY;
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}
