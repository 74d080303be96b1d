import { VaultError } from '../lib/errors.js';

/**
 * Fair sharing of what an API process can hold open or run at once, so that no single token or
 * tenant can take all of it: every slot counts against the process, the caller's tenant and
 * the caller's token, and the last eighth of the process's and each tenant's slots is kept for
 * administrators (system tokens and tenant admins), so a flood from ordinary tokens never locks
 * out the people who can stop it.
 */

export interface SlotLimits {
  perProcess: number;
  perTenant: number;
  perToken: number;
}

export interface SlotHolder {
  tenant: string;
  /** The token's accessor (or another stable name of the credential presented). */
  token: string;
  /** A system token or a tenant admin: may use the reserved slots. */
  admin: boolean;
}

type Scope = 'process' | 'tenant' | 'token';

/** Slots of a limit only administrators may take. */
export const adminReserve = (limit: number) => Math.floor(limit / 8);

function counter() {
  const counts = new Map<string, number>();
  return {
    get: (key: string) => counts.get(key) ?? 0,
    add(key: string, delta: number) {
      const next = (counts.get(key) ?? 0) + delta;
      if (next <= 0) counts.delete(key);
      else counts.set(key, next);
    },
  };
}

/**
 * Counts slots of one kind (`what`, e.g. "event streams") and refuses one past a limit with a
 * 429 whose message names the limit that was hit and the flag that sets it.
 */
export function createSlots(
  what: string,
  limits: SlotLimits,
  flags: Record<Scope, string>,
  onRefuse?: (scope: Scope) => void,
) {
  let total = 0;
  const tenants = counter();
  const tokens = counter();
  const refuse = (scope: Scope, open: number, limit: number, holder: SlotHolder) => {
    const whose =
      scope === 'token'
        ? 'this token'
        : scope === 'tenant'
          ? `tenant "${holder.tenant}"`
          : 'this server process';
    const reserved =
      limit !== limitOf(scope) ? ` (the last ${limitOf(scope) - limit} are kept for admins)` : '';
    return new VaultError(
      'rate_limited',
      `too many ${what} for ${whose}: ${open} open, limit ${limit}${reserved}; close one or retry later ` +
        `(the operator sets this limit with ${flags[scope]})`,
      { retryAfterSeconds: 5, limit: scope, open, max: limit },
    );
  };
  const limitOf = (scope: Scope) =>
    scope === 'token' ? limits.perToken : scope === 'tenant' ? limits.perTenant : limits.perProcess;
  const usable = (scope: Scope, admin: boolean) =>
    admin || scope === 'token' ? limitOf(scope) : limitOf(scope) - adminReserve(limitOf(scope));
  const tokenKey = (holder: SlotHolder) => `${holder.tenant}\u0000${holder.token}`;

  return {
    /** Takes a slot, or throws a 429 naming the limit; `release` gives it back (once). */
    acquire(holder: SlotHolder): { release(): void } {
      const open: Record<Scope, number> = {
        token: tokens.get(tokenKey(holder)),
        tenant: tenants.get(holder.tenant),
        process: total,
      };
      for (const scope of ['token', 'tenant', 'process'] as const) {
        const limit = usable(scope, holder.admin);
        if (open[scope] >= limit) {
          onRefuse?.(scope);
          throw refuse(scope, open[scope], limit, holder);
        }
      }
      total += 1;
      tenants.add(holder.tenant, 1);
      tokens.add(tokenKey(holder), 1);
      let released = false;
      return {
        release() {
          if (released) return;
          released = true;
          total -= 1;
          tenants.add(holder.tenant, -1);
          tokens.add(tokenKey(holder), -1);
        },
      };
    },
    /** Open slots: the whole process, and per tenant. */
    open: (tenant?: string) => (tenant === undefined ? total : tenants.get(tenant)),
  };
}

export type Slots = ReturnType<typeof createSlots>;

/**
 * Runs expensive operations (bulk revocation, credential deletion, audit verification, key
 * rotation) at most `limits` at a time; the rest wait in line, up to `queue` per tenant, and
 * past that are refused with a 429. Waiting rather than refusing, because these are single
 * requests a person or a script makes, and a second one should finish, just later.
 */
export function createBulkGate(
  limits: { perProcess: number; perTenant: number; queue: number },
  onRefuse?: () => void,
) {
  let running = 0;
  const runningByTenant = counter();
  const waiting: Array<{ tenant: string; start: () => void }> = [];
  const waitingByTenant = counter();

  const mayStart = (tenant: string) =>
    running < limits.perProcess && runningByTenant.get(tenant) < limits.perTenant;
  const start = (tenant: string) => {
    running += 1;
    runningByTenant.add(tenant, 1);
  };
  const pump = () => {
    for (let i = 0; i < waiting.length; ) {
      const next = waiting[i]!;
      if (mayStart(next.tenant)) {
        waiting.splice(i, 1);
        waitingByTenant.add(next.tenant, -1);
        start(next.tenant);
        next.start();
      } else i += 1;
    }
  };

  return {
    async run<T>(tenant: string, work: () => Promise<T>): Promise<T> {
      if (mayStart(tenant)) start(tenant);
      else {
        if (waitingByTenant.get(tenant) >= limits.queue) {
          onRefuse?.();
          throw new VaultError(
            'rate_limited',
            `too many bulk operations for tenant "${tenant}": ${runningByTenant.get(tenant)} running and ` +
              `${limits.queue} waiting; retry once they finish (the operator sets this limit with ` +
              '--max-bulk-operations-per-tenant)',
            { retryAfterSeconds: 10, limit: 'tenant' },
          );
        }
        waitingByTenant.add(tenant, 1);
        await new Promise<void>((resolve) => waiting.push({ tenant, start: resolve }));
      }
      try {
        return await work();
      } finally {
        running -= 1;
        runningByTenant.add(tenant, -1);
        pump();
      }
    },
    running: () => running,
  };
}

export type BulkGate = ReturnType<typeof createBulkGate>;
