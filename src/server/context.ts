import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { z } from 'zod';
import { tenantId } from '../contract/common.js';
import { controllerActsIn, controllerLabel, isController } from '../core/controller-role.js';
import type { CallContext, VaultCore } from '../core/index.js';
import { permissionDenied, unauthenticated, VaultError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import type { ServerMetrics } from './metrics.js';
import type { AuthLimiter } from './rate-limit.js';

declare module 'express-serve-static-core' {
  interface Locals {
    requestId: string;
    ctx?: CallContext;
    log?: Logger;
  }
}

export const callContext = (res: Response): CallContext => {
  if (!res.locals.ctx) throw unauthenticated('send Authorization: Bearer <token>');
  return res.locals.ctx;
};

export const sourceOf = (req: Request) => req.ip ?? req.socket.remoteAddress ?? 'unknown';

/**
 * Resolves the bearer token to a call context. Failures are counted by source address and
 * token prefix; past the limit a wrong token gets 429 instead of 401. A valid token is always
 * served, so nobody can lock other clients of an address (every local one) out.
 */
export function authenticate(deps: {
  core: VaultCore;
  limiter: AuthLimiter;
  metrics: ServerMetrics;
}): RequestHandler {
  return async (req: Request, res: Response, next: NextFunction) => {
    const source = sourceOf(req);
    const header = req.get('authorization') ?? '';
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    try {
      if (!match) throw unauthenticated('send Authorization: Bearer <token>');
      const principal = await deps.core.tokens.authenticate(match[1]!);
      const requested = req.get('x-vault-tenant');
      let tenant = principal.tenant;
      if (requested !== undefined && requested !== principal.tenant) {
        if (!principal.system && !isController(principal)) {
          throw permissionDenied(`this token belongs to tenant "${principal.tenant}", not "${requested}"`);
        }
        const parsed = tenantId.safeParse(requested);
        if (!parsed.success)
          throw new VaultError('bad_request', `X-Vault-Tenant: ${parsed.error.issues[0]?.message}`);
        if (!principal.system && !controllerActsIn(principal, parsed.data)) {
          const cluster = principal.controllerOf?.cluster;
          throw permissionDenied(
            `${controllerLabel(principal)} acts only in its cluster's tenants (${cluster ? `"${cluster}.<namespace>"` : 'tenants without a cluster prefix'}), not in "${parsed.data}"`,
          );
        }
        tenant = parsed.data;
      }
      const ctx: CallContext = { principal, tenant, requestId: res.locals.requestId, source };
      await deps.core.tenants.require(ctx);
      res.locals.ctx = ctx;
      next();
    } catch (err) {
      if (err instanceof VaultError && err.code === 'unauthenticated') {
        const wait = deps.limiter.blocked(source, match?.[1]);
        deps.limiter.fail(source, match?.[1]);
        deps.metrics.authFailures.inc({ reason: match ? 'bad_token' : 'missing_token' });
        if (wait !== undefined) {
          throw new VaultError('rate_limited', `too many failed authentications; retry in ${wait}s`, {
            retryAfterSeconds: wait,
          });
        }
      }
      throw err;
    }
  };
}

/** Parses with a schema; a failure becomes a 400 naming the field and what to fix. */
export function parse<S extends z.ZodType>(schema: S, input: unknown, where: string): z.output<S> {
  const result = schema.safeParse(input ?? (where === 'body' ? undefined : {}));
  if (result.success) return result.data;
  const messages = result.error.issues.map((issue) => {
    const path = issue.path.join('.');
    const text =
      issue.code === 'unrecognized_keys'
        ? `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}; remove ${issue.keys.length > 1 ? 'them' : 'it'}`
        : issue.message;
    return path ? `${path}: ${text}` : text;
  });
  const prefix = where === 'body' && input === undefined ? 'send a JSON body; ' : '';
  throw new VaultError('bad_request', `${prefix}invalid ${where}: ${messages.join('; ')}`, { where });
}
