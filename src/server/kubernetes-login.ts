import type { Request, Response } from 'express';
import { kubernetesLoginRequest } from '../contract/auth.js';
import { systemContext, type VaultCore } from '../core/index.js';
import { durationMs } from '../lib/duration.js';
import { unauthenticated, VaultError } from '../lib/errors.js';
import { parse, sourceOf } from './context.js';
import type { AuthLimiter } from './rate-limit.js';
import type { TokenReviewer } from './token-review.js';

export interface KubernetesLoginConfig {
  reviewer: TokenReviewer;
  /** The audience projected tokens must carry ("vault"). */
  audience: string;
  /** Longest Vault token a workload gets. */
  maxTokenTtlMs: number;
}

const serviceAccountUser =
  /^system:serviceaccount:([a-z0-9]([-a-z0-9]*[a-z0-9])?):([a-z0-9]([-.a-z0-9]*[a-z0-9])?)$/;

/**
 * Exchanges a projected ServiceAccount token for a Vault token: TokenReview with Vault's
 * audience (which also fails once the pod the token is bound to is gone), then the workload
 * identity `system:serviceaccount:NS:NAME` in the namespace's tenant.
 */
export function kubernetesLogin(deps: {
  core: VaultCore;
  config: KubernetesLoginConfig;
  limiter: AuthLimiter;
}) {
  return async (req: Request, res: Response) => {
    const source = sourceOf(req);
    const body = parse(kubernetesLoginRequest, req.body, 'body');
    // Counted per source and JWT prefix; a genuine token is always reviewed (no lockout).
    let review: Awaited<ReturnType<TokenReviewer['review']>>;
    try {
      review = await deps.config.reviewer.review(body.jwt, [deps.config.audience]);
    } catch {
      throw new VaultError(
        'store_unavailable',
        'the Kubernetes API could not review the token; retry shortly',
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
        `the Kubernetes token was not accepted (${review.error ? 'rejected by TokenReview' : 'wrong audience or not a ServiceAccount'}); project a ServiceAccount token with audience "${deps.config.audience}"`,
      );
    }
    const [, namespace, , serviceAccount] = match;
    const tenant = namespace!;
    const identity = { type: 'workload' as const, name: review.username! };
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
    const token = await deps.core.tokens.mint(ctx, tenant, {
      identity,
      policies: [],
      ttlMs,
      displayName: pod ? `pod ${namespace}/${pod}` : `serviceaccount ${namespace}/${serviceAccount}`,
    });
    res.json(token);
  };
}

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
