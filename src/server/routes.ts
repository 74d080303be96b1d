import { Router } from 'express';
import { z } from 'zod';
import * as audit from '../contract/audit.js';
import * as auth from '../contract/auth.js';
import { identityName, identityType, resourceName } from '../contract/common.js';
import * as credentials from '../contract/credentials.js';
import * as leases from '../contract/leases.js';
import * as policies from '../contract/policies.js';
import type { CallContext, VaultCore } from '../core/index.js';
import type { Keyring } from '../crypto/keyring.js';
import { badRequest, notFound, permissionDenied, VaultError } from '../lib/errors.js';
import { callContext, parse } from './context.js';
import type { BulkGate, Slots } from './fair-share.js';
import type { ServerMetrics } from './metrics.js';

const EVENT_HEARTBEAT_MS = 15_000;
/**
 * Bytes of events waiting for their clients: per stream, and for all the streams of the
 * process together. A client that falls further behind (it stopped reading, or reads slower
 * than its tenant changes) is disconnected, so that no stream holds a tenant's changes in the
 * server's memory; it reconnects and re-reads. Past the process's budget, a stream more than
 * BEHIND_FLOOR behind is disconnected at its next event.
 */
export interface EventBacklogLimits {
  perStream: number;
  perProcess: number;
}
export const defaultEventBacklog: EventBacklogLimits = { perStream: 1 << 20, perProcess: 64 << 20 };
/** How far behind a stream may be and still be kept when the process is over its budget. */
const BEHIND_FLOOR = 64 << 10;

/** What the open streams hold, summed at most every 50 ms (each write would be O(streams)). */
function createBacklogs(limits: EventBacklogLimits) {
  const open = new Set<{ writableLength: number }>();
  let total = 0;
  let summedAt = 0;
  const sum = () => {
    const now = Date.now();
    if (now - summedAt >= 50) {
      total = 0;
      for (const res of open) total += res.writableLength;
      summedAt = now;
    }
    return total;
  };
  return {
    add: (res: { writableLength: number }) => open.add(res),
    remove: (res: { writableLength: number }) => open.delete(res),
    /** After a write to `res`: whether it is too far behind to keep. */
    tooFarBehind(res: { writableLength: number }): boolean {
      const behind = res.writableLength;
      if (behind > limits.perStream) return true;
      return behind > Math.min(limits.perStream, BEHIND_FLOOR) && sum() > limits.perProcess;
    },
  };
}

const nameParam = z.object({ name: resourceName });
const idParam = z.object({
  id: z.string().regex(/^lease_[A-Za-z0-9_-]{10,64}$/, 'a lease id looks like "lease_..."'),
});
const accessorParam = z.object({
  accessor: z.string().regex(/^acc_[A-Za-z0-9_-]{8,64}$/, 'an accessor looks like "acc_..."'),
});
const identityParams = z.object({ type: identityType, name: identityName });

/** Routers of the authenticated v1 API, one per group. */
export function apiRoutes(deps: {
  core: VaultCore;
  keyring: Keyring;
  metrics: ServerMetrics;
  /** Open lease-event streams, limited per process, tenant and token. */
  streams: Slots;
  /** Expensive operations, a few at a time per process and tenant. */
  bulk: BulkGate;
  eventBacklog?: EventBacklogLimits;
}) {
  const { core, metrics, streams, bulk } = deps;
  const backlogs = createBacklogs(deps.eventBacklog ?? defaultEventBacklog);
  const router = Router();
  const inLine = <T>(ctx: CallContext, work: () => Promise<T>) => bulk.run(ctx.tenant, work);

  // auth
  router.get('/auth/whoami', async (_req, res) => {
    const ctx = callContext(res);
    if (!ctx.principal.accessor) throw badRequest('this call has no token');
    // A system token addressing another tenant still lives in its own.
    res.json(await core.tokens.lookup({ ...ctx, tenant: ctx.principal.tenant }, ctx.principal.accessor));
  });
  router.post('/auth/tokens', async (req, res) => {
    res
      .status(201)
      .json(await core.tokens.create(callContext(res), parse(auth.createTokenRequest, req.body, 'body')));
  });
  router.get('/auth/tokens/:accessor', async (req, res) => {
    const { accessor } = parse(accessorParam, req.params, 'path');
    res.json(await core.tokens.lookup(callContext(res), accessor));
  });
  router.delete('/auth/tokens/:accessor', async (req, res) => {
    const { accessor } = parse(accessorParam, req.params, 'path');
    await core.tokens.revoke(callContext(res), accessor);
    res.json({ ok: true });
  });

  // sys: tenants and keys
  router.get('/sys/tenants', async (req, res) => {
    if (!callContext(res).principal.system) throw permissionDenied('listing tenants needs a system token');
    res.json(await core.tenants.list(parse(auth.listTenantsQuery, req.query, 'query')));
  });
  router.post('/sys/tenants', async (req, res) => {
    const ctx = callContext(res);
    if (!ctx.principal.system) throw permissionDenied('creating tenants needs a system token');
    const body = parse(auth.createTenantRequest, req.body, 'body');
    res.status(201).json(await core.tenants.createWithAdmin(ctx, body.id, body.description));
  });
  router.get('/sys/keys', async (req, res) => {
    const ctx = callContext(res);
    if (!ctx.principal.system && !(await core.access.isAdmin(ctx)))
      throw permissionDenied('key status needs admin');
    const query = parse(auth.keyStatusQuery, req.query, 'query');
    if (!ctx.principal.system) {
      // A tenant admin: its own tenant's keys, and nothing of the root's rotation.
      const status = await deps.keyring.status([ctx.tenant]);
      return void res.json({ ...status, rotations: { ...status.rotations, root: null } });
    }
    // A system token: a page of tenants, each with its own key records read.
    const page = await core.tenants.list(query);
    const status = await deps.keyring.status(page.tenants.map((tenant) => tenant.id));
    res.json({ ...status, ...(page.continue ? { continue: page.continue } : {}) });
  });
  router.post('/sys/keys/rotate', async (_req, res) => {
    const ctx = callContext(res);
    await core.access.check(ctx, 'admin', `tenant/${ctx.tenant}`, undefined, 'key.rotate-tenant');
    const result = await inLine(ctx, () => deps.keyring.rotateTenantKey(ctx.tenant));
    await core.committer.record(ctx, {
      action: 'key.rotate-tenant',
      resource: `tenant/${ctx.tenant}`,
      outcome: 'allowed',
    });
    res.json(result);
  });

  // identities and policies
  router.get('/identities', async (req, res) => {
    res.json(
      await core.identities.list(callContext(res), parse(policies.adminListQuery, req.query, 'query')),
    );
  });
  router.put('/identities/:type/:name', async (req, res) => {
    const { type, name } = parse(identityParams, req.params, 'path');
    res.json(
      await core.identities.put(callContext(res), type, name, parse(policies.identityBody, req.body, 'body')),
    );
  });
  router.get('/identities/:type/:name', async (req, res) => {
    const { type, name } = parse(identityParams, req.params, 'path');
    res.json(await core.identities.get(callContext(res), type, name));
  });
  router.delete('/identities/:type/:name', async (req, res) => {
    const { type, name } = parse(identityParams, req.params, 'path');
    await core.identities.delete(callContext(res), type, name);
    res.json({ ok: true });
  });
  router.get('/policies', async (req, res) => {
    res.json(await core.policies.list(callContext(res), parse(policies.adminListQuery, req.query, 'query')));
  });
  router.put('/policies/:name', async (req, res) => {
    const { name } = parse(nameParam, req.params, 'path');
    res.json(await core.policies.put(callContext(res), name, parse(policies.policyBody, req.body, 'body')));
  });
  router.get('/policies/:name', async (req, res) => {
    const { name } = parse(nameParam, req.params, 'path');
    res.json(await core.policies.get(callContext(res), name));
  });
  router.delete('/policies/:name', async (req, res) => {
    const { name } = parse(nameParam, req.params, 'path');
    await core.policies.delete(callContext(res), name);
    res.json({ ok: true });
  });

  // credentials
  router.post('/credentials', async (req, res) => {
    const body = parse(credentials.createCredentialRequest, req.body, 'body');
    res.status(201).json(await core.credentials.create(callContext(res), body));
  });
  router.get('/credentials', async (req, res) => {
    const query = parse(credentials.listCredentialsQuery, req.query, 'query');
    res.json(await core.credentials.list(callContext(res), query));
  });
  router.get('/credentials/:name', async (req, res) => {
    const { name } = parse(nameParam, req.params, 'path');
    res.json(await core.credentials.get(callContext(res), name));
  });
  router.patch('/credentials/:name', async (req, res) => {
    const { name } = parse(nameParam, req.params, 'path');
    res.json(
      await core.credentials.update(
        callContext(res),
        name,
        parse(credentials.updateCredentialRequest, req.body, 'body'),
      ),
    );
  });
  router.get('/credentials/:name/versions', async (req, res) => {
    const { name } = parse(nameParam, req.params, 'path');
    const query = parse(credentials.listVersionsQuery, req.query, 'query');
    res.json(await core.credentials.versions(callContext(res), name, query));
  });
  router.post('/credentials/:name/versions', async (req, res) => {
    const { name } = parse(nameParam, req.params, 'path');
    const body = parse(credentials.putVersionRequest, req.body, 'body');
    res
      .status(201)
      .json(await core.credentials.addVersion(callContext(res), name, body, 'credential.put-version'));
  });
  router.post('/credentials/:name/rotate', async (req, res) => {
    const { name } = parse(nameParam, req.params, 'path');
    const body = parse(credentials.rotateRequest, req.body ?? {}, 'body');
    const ctx = callContext(res);
    const rotate = () =>
      core.credentials.addVersion(
        ctx,
        name,
        {
          ...(body.value !== undefined ? { value: body.value } : {}),
          ...(body.generate ? { generate: body.generate } : {}),
          revokeOldLeases: body.revokeOldLeases,
        },
        'credential.rotate',
      );
    // Revoking the old version's leases walks all of them: in line with other bulk work.
    res.json(await (body.revokeOldLeases ? inLine(ctx, rotate) : rotate()));
  });
  router.delete('/credentials/:name', async (req, res) => {
    const { name } = parse(nameParam, req.params, 'path');
    const ctx = callContext(res);
    res.json(await inLine(ctx, () => core.credentials.delete(ctx, name)));
  });

  // leases
  router.post('/leases', async (req, res) => {
    const body = parse(leases.createLeaseRequest, req.body, 'body');
    // The one header it reads, not every header of the request.
    const { 'idempotency-key': idempotencyKey } = parse(
      leases.createLeaseHeaders,
      { 'idempotency-key': req.headers['idempotency-key'] },
      'header',
    );
    try {
      const lease = await core.leases.create(
        callContext(res),
        body,
        idempotencyKey ? { idempotencyKey } : {},
      );
      metrics.leases.inc({ event: 'issued' });
      res.status(201).json(lease);
    } catch (err) {
      metrics.leases.inc({ event: 'denied' });
      throw err;
    }
  });
  router.get('/leases', async (req, res) => {
    res.json(await core.leases.list(callContext(res), parse(leases.listLeasesQuery, req.query, 'query')));
  });
  router.get('/leases/events', async (req, res) => {
    const ctx = callContext(res);
    const { principal } = ctx;
    const admin = principal.system || (await core.access.isAdmin(ctx));
    const slot = streams.acquire({
      tenant: ctx.tenant,
      token: principal.accessor ?? `${principal.identity.type}:${principal.identity.name}`,
      admin,
    });
    metrics.eventStreams.inc();
    let closed = false;
    let watcher: { close(): Promise<void> } | undefined;
    let heartbeat: NodeJS.Timeout | undefined;
    const close = () => {
      if (closed) return;
      closed = true;
      slot.release();
      backlogs.remove(res);
      metrics.eventStreams.dec();
      clearInterval(heartbeat);
      void watcher?.close();
      if (res.headersSent) res.end();
    };
    // Registered right after the slot is taken (no await between), so a client gone early
    // leaks nothing; one gone while we looked up its rights gives its slot back at once.
    res.on('close', close);
    backlogs.add(res);
    if (req.destroyed || res.closed) return close();
    const token = /^Bearer\s+(\S+)$/i.exec(req.get('authorization') ?? '')?.[1];
    // What arrives before the headers are out (an event, or the end, while the watch is being
    // set up) waits for them: a write would send default headers, and writeHead then throw.
    let live = false;
    let ended = false;
    const early: string[] = [];
    const send = (chunk: string) => {
      if (live) res.write(chunk);
      else early.push(chunk);
    };
    try {
      watcher = await core.leases.watch(
        ctx,
        (event) => {
          if (closed || ended) return;
          send(`event: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`);
          if (live && backlogs.tooFarBehind(res)) {
            // Ending politely would wait for the client to read the backlog: drop it instead.
            close();
            res.destroy();
          }
        },
        (err) => {
          // The token no longer holds, or the store could not keep following changes: end.
          const reason =
            err instanceof VaultError && err.code === 'unauthenticated'
              ? 'the token expired or was revoked'
              : 'the event stream was interrupted; reconnect';
          if (closed || ended) return;
          send(`event: end\ndata: ${JSON.stringify({ reason })}\n\n`);
          if (live) close();
          else ended = true;
        },
        // Each event of someone else's lease is shown only if the token, as it is now, may.
        {
          refresh: async () =>
            token
              ? { ...ctx, principal: await core.tokens.authenticate(token) }
              : Promise.reject(new Error('no token')),
        },
      );
    } catch (err) {
      close();
      throw err;
    }
    if (closed) return void watcher.close();
    // Headers go out once the watch is live: a client whose request returned misses nothing.
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-store',
      connection: 'keep-alive',
    });
    res.write(': connected\n\n');
    live = true;
    for (const chunk of early.splice(0)) res.write(chunk);
    if (ended) return close();
    // The stream lives only as long as its token: checked again at every heartbeat.
    heartbeat = setInterval(() => {
      const check = token ? core.tokens.authenticate(token) : Promise.reject(new Error('no token'));
      check.then(
        () => res.write(': heartbeat\n\n'),
        () => {
          res.write('event: end\ndata: {"reason":"the token expired or was revoked"}\n\n');
          close();
        },
      );
    }, EVENT_HEARTBEAT_MS);
  });
  router.post('/leases/revoke', async (req, res) => {
    const ctx = callContext(res);
    const selector = parse(leases.bulkRevokeRequest, req.body, 'body');
    const result = await inLine(ctx, () => core.leases.bulkRevoke(ctx, selector));
    metrics.leases.inc({ event: 'revoked' }, result.revoked);
    res.json(result);
  });
  router.get('/leases/:id', async (req, res) => {
    const { id } = parse(idParam, req.params, 'path');
    res.json(await core.leases.get(callContext(res), id));
  });
  router.get('/leases/:id/value', async (req, res) => {
    const { id } = parse(idParam, req.params, 'path');
    res.json(await core.leases.read(callContext(res), id));
  });
  router.post('/leases/:id/reveal', async (req, res) => {
    const { id } = parse(idParam, req.params, 'path');
    res.json(await core.leases.read(callContext(res), id, 'lease.reveal'));
  });
  router.post('/leases/:id/use', async (req, res) => {
    const { id } = parse(idParam, req.params, 'path');
    const body = parse(leases.useLeaseRequest, req.body ?? {}, 'body');
    res.json(await core.leases.use(callContext(res), id, body));
  });
  router.post('/leases/:id/renew', async (req, res) => {
    const { id } = parse(idParam, req.params, 'path');
    const body = parse(leases.renewLeaseRequest, req.body ?? {}, 'body');
    const lease = await core.leases.renew(callContext(res), id, body);
    metrics.leases.inc({ event: 'renewed' });
    res.json(lease);
  });
  router.post('/leases/:id/revoke', async (req, res) => {
    const { id } = parse(idParam, req.params, 'path');
    const lease = await core.leases.revoke(callContext(res), id);
    metrics.leases.inc({ event: 'revoked' });
    res.json(lease);
  });

  // audit
  router.get('/audit', async (req, res) => {
    res.json(await core.audit.query(callContext(res), parse(audit.auditQuery, req.query, 'query')));
  });
  // Verification and value look-up read the whole chain: in line with other bulk work.
  router.get('/audit/verify', async (_req, res) => {
    const ctx = callContext(res);
    res.json(await inLine(ctx, () => core.audit.verify(ctx)));
  });
  router.post('/audit/verify', async (req, res) => {
    const { since, from } = parse(audit.auditVerifyRequest, req.body ?? {}, 'body');
    const ctx = callContext(res);
    res.json(
      await inLine(ctx, () => core.audit.verify(ctx, since, { fromCheckpoint: from === 'checkpoint' })),
    );
  });
  router.post('/audit/checkpoints', async (_req, res) => {
    res.status(201).json({ checkpoint: (await core.audit.createCheckpoint(callContext(res))) ?? null });
  });
  router.get('/audit/public-key', async (_req, res) => {
    const key = await core.audit.publicKey(callContext(res).tenant);
    if (!key) throw notFound('this tenant has no audit key yet: it is created with its first audit record');
    res.json(key);
  });
  router.post('/audit/lookup', async (req, res) => {
    const { value } = parse(audit.valueLookupRequest, req.body, 'body');
    const ctx = callContext(res);
    res.json(await inLine(ctx, () => core.audit.lookupValue(ctx, value)));
  });

  return router;
}
