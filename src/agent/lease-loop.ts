import { randomUUID } from 'node:crypto';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import {
  type Lease,
  type LeaseEvent,
  LeaseExpiredError,
  LeaseRevokedError,
  type Vault,
} from '../sdk/index.js';
import { defaultEnvName } from '../webhook/annotations.js';
import type { AgentFile } from './config.js';
import { type FileSink, render } from './file-sink.js';

/**
 * The agent's core: for each file, get a lease, write the file, keep the lease alive, and wipe
 * the file the moment the lease ends. Revocations arrive on the lease event stream; expiry is a
 * timer at `expiresAt` on the injected clock, so a lost event cannot leave a file behind.
 *
 * - `credential` files: the agent owns the lease. It renews at about two thirds of the
 *   remaining time (with jitter), and near the max TTL leases again (if policy allows) before
 *   revoking the old lease. On SIGTERM it revokes them.
 * - `lease` files: the operator owns the lease (a VaultLease). The agent reads its value,
 *   follows its renewals through events, and never renews or revokes it.
 *
 * After a revocation a file stays wiped: a revoked lease is a decision, not a fault. After an
 * expiry the agent tries to lease again (with backoff), which policy may refuse.
 */

/** The part of the SDK the loop uses. */
export interface LeaseApi {
  create(
    input: { credentialName: string; ttl?: string; maxTtl?: string; renewable?: boolean },
    idempotencyKey: string,
  ): Promise<Lease>;
  read(id: string): Promise<Lease>;
  /** The lease without its value (no value read, nothing audited as one). */
  get(id: string): Promise<Omit<Lease, 'value'>>;
  renew(id: string): Promise<Lease>;
  revoke(id: string): Promise<unknown>;
  /** The caller's lease events; `onOpen` once the stream follows changes. */
  events(signal: AbortSignal, onOpen: () => void): AsyncIterable<LeaseEvent>;
}

/** The loop's API through an SDK client (`vault()`: the session's current one); `labels` go on every lease it creates. */
export function leaseApi(vault: () => Vault, labels: Record<string, string> = {}): LeaseApi {
  return {
    create: (input, idempotencyKey) =>
      vault().leases.create(Object.keys(labels).length > 0 ? { ...input, labels } : input, {
        idempotencyKey,
      }),
    read: (id) => vault().leases.read(id),
    get: (id) => vault().leases.get(id),
    renew: (id) => vault().leases.renew(id),
    revoke: (id) => vault().leases.revoke(id),
    events: (signal, onOpen) => vault().leases.events({ signal, onOpen }),
  };
}

/** Finds the Vault lease id of a VaultLease object (its `status.leaseId`). */
export type LeaseResolver = (vaultLeaseName: string) => Promise<string | undefined>;

export interface LeaseLoopDeps {
  files: AgentFile[];
  sink: FileSink;
  api: LeaseApi;
  resolveLease?: LeaseResolver;
  clock: Clock;
  logger: Logger;
  registry: Registry;
  /** A factor in [0.9, 1.1) applied to renewal delays; injected for tests. */
  jitter?: () => number;
  /** Retry backoff bounds. */
  retryMinMs?: number;
  retryMaxMs?: number;
  /** A factor in [0.5, 1) applied to each retry's backoff; injected for tests. */
  retryJitter?: () => number;
}

type EndReason = 'revoked' | 'expired';

interface FileState {
  file: AgentFile;
  lease: Omit<Lease, 'value'> | undefined;
  written: boolean;
  ended: EndReason | undefined;
  timers: Set<NodeJS.Timeout>;
  retryMs: number;
  /** Bumped whenever the file's lease changes, so stale timers and calls do nothing. */
  generation: number;
  /** A file a previous agent left has been wiped (or there was none). */
  staleChecked?: boolean;
  /**
   * The Idempotency-Key of the lease being asked for, kept across retries until one is had:
   * a try whose answer was lost (a timeout on a busy server) is answered by the lease it made
   * instead of leaving it behind and making another. It belongs to the file's lease of
   * `generation`: a re-lease still waiting when that lease ended is answered alone (and
   * revokes what it gets), so the file's next acquisition, under a new key, never shares it.
   */
  leaseKey?: { key: string; generation: number };
}

export interface LeaseLoop {
  /** Resolves once every file has been written once (or rejects on stop). */
  readonly allWritten: Promise<void>;
  /** Every file currently present. */
  ready(): boolean;
  /** Has every file been written at least once? */
  started(): boolean;
  start(): void;
  /**
   * Wipes every file and revokes the agent's own leases. `--once` passes both false: the
   * files stay for the app and the leases run out on their own.
   */
  stop(options?: { revoke?: boolean; wipe?: boolean }): Promise<void>;
  leaseIds(): Record<string, string | undefined>;
}

const maxTimerMs = 2_000_000_000;

export function createLeaseLoop(deps: LeaseLoopDeps): LeaseLoop {
  const { sink, api, clock, logger } = deps;
  const jitter = deps.jitter ?? (() => 0.9 + Math.random() * 0.2);
  const retryMinMs = deps.retryMinMs ?? 1_000;
  const retryMaxMs = deps.retryMaxMs ?? 30_000;
  const retryJitter = deps.retryJitter ?? (() => 0.5 + Math.random() / 2);
  const metrics = agentMetrics(deps.registry);
  const states = new Map<string, FileState>(
    deps.files.map((file) => [
      file.name,
      {
        file,
        lease: undefined,
        written: false,
        ended: undefined,
        timers: new Set(),
        retryMs: retryMinMs,
        generation: 0,
      },
    ]),
  );
  const abort = new AbortController();
  let stopped = false;
  // Lease-and-write work under way: stop() waits for it, so no file lands after the wipe.
  const inflight = new Set<Promise<void>>();
  const guard = (work: () => Promise<void>): Promise<void> => {
    const running = work().finally(() => inflight.delete(running));
    inflight.add(running);
    return running;
  };
  /** After a write that finished once stop() had begun: undo it here. */
  let onStop = { wipe: true, revoke: true };
  const undo = async (state: FileState, lease: Lease) => {
    if (onStop.wipe) await sink.wipe(state.file.name).catch(() => {});
    if (onStop.revoke && state.file.credential !== undefined) await api.revoke(lease.id).catch(() => {});
  };
  let resolveAll!: () => void;
  let rejectAll!: (err: Error) => void;
  const allWritten = new Promise<void>((resolve, reject) => {
    resolveAll = resolve;
    rejectAll = reject;
  });
  allWritten.catch(() => {});

  const later = (state: FileState, atMs: number, work: () => Promise<void> | void) => {
    const generation = state.generation;
    const delay = Math.max(0, atMs - clock().getTime());
    const timer = setTimeout(
      () => {
        state.timers.delete(timer);
        if (stopped || state.generation !== generation) return;
        // Long waits are re-armed rather than overflowing setTimeout.
        if (delay > maxTimerMs) later(state, atMs, work);
        else
          void Promise.resolve(work()).catch((err) =>
            logger.error({ err, file: state.file.name }, 'agent step failed'),
          );
      },
      Math.min(delay, maxTimerMs),
    );
    state.timers.add(timer);
  };
  const clearTimers = (state: FileState) => {
    for (const timer of state.timers) clearTimeout(timer);
    state.timers.clear();
  };
  // Jittered: files whose leases ended together (a fleet's, at one expiry, with policy now
  // refusing a new lease) do not all ask again in the same instant, wave after wave.
  const retry = (state: FileState, work: () => Promise<void>) => {
    const wait = state.retryMs * retryJitter();
    state.retryMs = Math.min(state.retryMs * 2, retryMaxMs);
    later(state, clock().getTime() + wait, work);
  };
  const log = (state: FileState) => logger.child({ file: state.file.name });

  async function write(state: FileState, lease: Lease): Promise<void> {
    const file = state.file;
    const content = render(file.format, file.envName ?? defaultEnvName(file.name), lease.value ?? '');
    await sink.write(file.name, content, file.mode);
    state.written = true;
    state.ended = undefined;
    metrics.writes.inc();
    updateGauge();
  }

  const checkAllWritten = () => {
    if ([...states.values()].every((s) => s.written)) resolveAll();
  };

  /** Adopts a new lease for the file: remember it (without its value) and arm its timers. */
  function track(state: FileState, lease: Lease): void {
    const { value: _value, ...withoutValue } = lease;
    state.generation++;
    clearTimers(state);
    state.lease = withoutValue;
    state.retryMs = retryMinMs;
    schedule(state);
  }

  function schedule(state: FileState): void {
    const lease = state.lease;
    if (!lease) return;
    const generation = state.generation;
    later(state, lease.expiresAt.getTime(), () => {
      if (state.generation === generation) return end(state, 'expired', lease.expiresAt);
    });
    if (state.file.lease !== undefined) return; // the operator renews VaultLeases
    const now = clock().getTime();
    const remaining = lease.expiresAt.getTime() - now;
    const at = now + (remaining * 2 * jitter()) / 3;
    const canRenew = lease.renewable && lease.expiresAt.getTime() < lease.maxExpiresAt.getTime();
    later(state, at, canRenew ? () => renew(state) : () => reLease(state));
  }

  /** A new lease of the file's credential (see `leaseKey`). */
  async function newLease(state: FileState): Promise<Lease> {
    const file = state.file;
    if (state.leaseKey?.generation !== state.generation) {
      state.leaseKey = { key: randomUUID(), generation: state.generation };
    }
    const { key } = state.leaseKey;
    const done = () => {
      if (state.leaseKey?.key === key) state.leaseKey = undefined;
    };
    const lease = await api
      .create(
        {
          credentialName: file.credential!,
          ...(file.ttl ? { ttl: file.ttl } : {}),
          ...(file.maxTtl ? { maxTtl: file.maxTtl } : {}),
          renewable: true,
        },
        key,
      )
      .catch((err: unknown) => {
        // 410: the lease this key issued ended before its answer reached us (revoked or
        // expired meanwhile); the key can never be answered again, so the next try gets a new one.
        if (err instanceof LeaseRevokedError || err instanceof LeaseExpiredError) done();
        throw err;
      });
    done();
    // (A server from before that answer returned the ended lease itself.)
    if (lease.state !== 'active') throw new Error(`the lease a retry found (${lease.id}) is ${lease.state}`);
    return lease;
  }

  function acquire(state: FileState): Promise<void> {
    return guard(() => acquireOnce(state));
  }

  async function acquireOnce(state: FileState): Promise<void> {
    if (stopped) return;
    const file = state.file;
    // A lease taken for a file that then could not be written is given back at once.
    let taken: Lease | undefined;
    try {
      let lease: Lease;
      if (file.credential !== undefined) {
        lease = await newLease(state);
        taken = lease;
      } else {
        const id = await deps.resolveLease?.(file.lease!);
        if (!id) {
          await wipeStale(state);
          log(state).info({ vaultLease: file.lease }, 'the VaultLease has no active lease yet; waiting');
          retry(state, () => acquire(state));
          return;
        }
        lease = await api.read(id);
      }
      if (stopped) {
        if (file.credential !== undefined) await api.revoke(lease.id).catch(() => {});
        return;
      }
      await write(state, lease);
      if (stopped) return await undo(state, lease);
      track(state, lease);
      checkAllWritten();
      log(state).info({ leaseId: lease.id, expiresAt: lease.expiresAt.toISOString() }, 'file written');
    } catch (err) {
      if (taken && state.lease?.id !== taken.id) await api.revoke(taken.id).catch(() => {});
      await wipeStale(state);
      log(state).warn({ err: describe(err) }, 'could not lease; retrying');
      metrics.failures.inc({ step: 'lease' });
      retry(state, () => acquire(state));
    }
  }

  /**
   * A file this agent has not written is a previous agent's (a crash, an OOM kill, a restart
   * of the native sidecar): its lease is unknown here and may have been revoked or have expired
   * while no agent ran. It stays only until a new lease replaces it; when none can be had, it
   * is wiped, so a revoked value never outlives the agent that held it.
   */
  async function wipeStale(state: FileState): Promise<void> {
    if (state.written || state.staleChecked) return;
    try {
      if (await sink.wipe(state.file.name)) {
        metrics.wipes.inc({ reason: 'stale' });
        log(state).warn('a file left by a previous agent could not be renewed; wiped');
      }
      state.staleChecked = true;
    } catch (err) {
      metrics.failures.inc({ step: 'wipe' });
      log(state).error({ err: describe(err) }, 'wiping a file left by a previous agent failed');
    }
  }

  async function renew(state: FileState): Promise<void> {
    const lease = state.lease;
    if (!lease || stopped) return;
    const generation = state.generation;
    try {
      const renewed = await api.renew(lease.id);
      if (state.generation !== generation || stopped) return;
      metrics.renewals.inc({ outcome: 'ok' });
      track(state, renewed);
    } catch (err) {
      if (state.generation !== generation) return;
      const code = (err as { code?: string }).code;
      if (code === 'lease_revoked') return end(state, 'revoked', clock());
      if (code === 'lease_expired') return end(state, 'expired', lease.expiresAt);
      metrics.renewals.inc({ outcome: 'error' });
      log(state).warn({ err: describe(err) }, 'renewal failed; retrying before expiry');
      retry(state, () => renew(state));
    }
  }

  /** At the max TTL: a new lease first, then the old one is revoked. */
  function reLease(state: FileState): Promise<void> {
    return guard(() => reLeaseOnce(state));
  }

  async function reLeaseOnce(state: FileState): Promise<void> {
    const old = state.lease;
    if (!old || stopped) return;
    const generation = state.generation;
    try {
      const fresh = await newLease(state);
      if (state.generation !== generation || stopped) {
        await api.revoke(fresh.id).catch(() => {});
        return;
      }
      await write(state, fresh);
      if (stopped) return await undo(state, fresh);
      track(state, fresh);
      metrics.renewals.inc({ outcome: 'released' });
      log(state).info({ leaseId: fresh.id, previous: old.id }, 'leased again at the max TTL');
      await api
        .revoke(old.id)
        .catch((err) => log(state).warn({ err: describe(err) }, 'revoking the previous lease failed'));
    } catch (err) {
      // The file moved on meanwhile (its lease ended, or another re-lease took over): this
      // one's retry would replace a lease just had.
      if (state.generation !== generation) return;
      metrics.renewals.inc({ outcome: 'error' });
      log(state).warn(
        { err: describe(err) },
        'leasing again failed; the file is wiped at expiry unless a retry succeeds',
      );
      retry(state, () => reLease(state));
    }
  }

  async function end(state: FileState, reason: EndReason, since: Date): Promise<void> {
    if (state.ended || stopped) return;
    state.generation++;
    clearTimers(state);
    state.ended = reason;
    const leaseId = state.lease?.id;
    try {
      await sink.wipe(state.file.name);
    } catch (err) {
      // The agent stays up: it keeps its other files, and a crash-restart would lease again.
      metrics.failures.inc({ step: 'wipe' });
      log(state).error({ leaseId, reason, err: describe(err) }, 'wiping the file failed');
      updateGauge();
      return;
    }
    metrics.wipes.inc({ reason });
    metrics.wipeLatency.observe({ reason }, Math.max(0, clock().getTime() - since.getTime()) / 1000);
    updateGauge();
    log(state).warn({ leaseId, reason }, 'lease ended; file wiped');
    if (reason === 'expired' || state.file.lease !== undefined) {
      // An expired lease may be replaced (policy permitting); a VaultLease may get a new lease from the operator.
      state.lease = undefined;
      retry(state, () => acquire(state));
    }
  }

  function onEvent(event: LeaseEvent): void {
    for (const state of states.values()) {
      if (state.lease?.id !== event.lease.id) continue;
      if (event.type === 'revoked') void end(state, 'revoked', event.lease.revokedAt ?? clock());
      else if (event.type === 'expired') void end(state, 'expired', event.lease.expiresAt);
      else if (event.type === 'renewed' && state.file.lease !== undefined) {
        // A look-up after a stream break may be answered after a newer renewal's event: an
        // older renewal never sets its earlier expiry again.
        if (state.lease && event.lease.renewCount < state.lease.renewCount) continue;
        state.generation++;
        clearTimers(state);
        state.lease = event.lease;
        schedule(state);
      }
    }
  }

  /**
   * Whenever the event stream opens (after a break, or late at start): a revocation made while
   * none was open sent no event, so each file's lease is looked up again (its state, not its
   * value) once the stream is live; a file with no lease yet costs nothing.
   * A lease that is gone or ended ends its file; one that cannot be looked up now is left to
   * the next reconnect, the renewal and the expiry timer.
   */
  async function catchUp(): Promise<void> {
    for (const state of states.values()) {
      const lease = state.lease;
      if (stopped) return;
      if (!lease || state.ended) continue;
      try {
        onEvent(eventFor(await api.get(lease.id)));
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        if (code === 'not_found') onEvent({ type: 'revoked', lease: { ...lease, state: 'revoked' } });
        else log(state).warn({ err: describe(err) }, 'could not look the lease up after a stream break');
      }
    }
  }

  /** A looked-up lease as the event that would have told its state. */
  function eventFor(lease: Omit<Lease, 'value'>): LeaseEvent {
    const type = lease.state === 'revoked' ? 'revoked' : lease.state === 'expired' ? 'expired' : 'renewed';
    return { type, lease };
  }

  async function followEvents(): Promise<void> {
    let backoff = retryMinMs;
    // Also when it first opens: a lease taken before then (the stream could not be opened at
    // start) may have been revoked while nothing followed it.
    const onOpen = () => void catchUp();
    while (!stopped) {
      try {
        for await (const event of api.events(abort.signal, onOpen)) {
          backoff = retryMinMs;
          onEvent(event);
        }
      } catch (err) {
        if (stopped) return;
        logger.warn({ err: describe(err) }, 'lease event stream failed; reconnecting');
      }
      if (stopped) return;
      await new Promise((resolve) => setTimeout(resolve, backoff));
      backoff = Math.min(backoff * 2, retryMaxMs);
    }
  }

  function updateGauge(): void {
    metrics.files.set([...states.values()].filter((s) => s.written && !s.ended).length);
  }

  return {
    allWritten,
    ready: () => [...states.values()].every((s) => s.written && !s.ended),
    started: () => [...states.values()].every((s) => s.written),
    start() {
      void followEvents();
      for (const state of states.values()) {
        // A write a previous agent's crash interrupted leaves a temporary file with the value.
        void guard(() =>
          sink.sweepTemporaries(state.file.name).then(
            () => {},
            (err) => log(state).error({ err: describe(err) }, 'removing leftover temporary files failed'),
          ),
        );
        void acquire(state);
      }
    },
    async stop(options = {}) {
      if (stopped) return;
      stopped = true;
      abort.abort();
      rejectAll(new Error('the agent stopped'));
      const revoke = options.revoke ?? true;
      const wipe = options.wipe ?? true;
      onStop = { wipe, revoke };
      // Let a lease-and-write under way finish (it undoes itself once it sees `stopped`),
      // but never wait past a few seconds for a server that does not answer.
      await Promise.race([
        Promise.allSettled([...inflight]),
        new Promise((resolve) => setTimeout(resolve, 5_000).unref()),
      ]);
      await Promise.all(
        [...states.values()].map(async (state) => {
          state.generation++;
          clearTimers(state);
          if (wipe)
            await sink
              .wipe(state.file.name)
              .catch((err) => logger.error({ err, file: state.file.name }, 'wipe failed'));
          // A lease that was revoked already needs no second call.
          if (revoke && state.lease && state.file.credential !== undefined && state.ended !== 'revoked') {
            await api
              .revoke(state.lease.id)
              .catch((err) => logger.warn({ err: describe(err) }, 'revoke failed'));
          }
        }),
      );
      updateGauge();
    },
    leaseIds: () => Object.fromEntries([...states].map(([name, s]) => [name, s.lease?.id])),
  };
}

/** An error as a loggable object without anything a server might have echoed back. */
function describe(err: unknown): { name?: string; code?: string; message: string } {
  if (err instanceof Error)
    return { name: err.name, code: (err as { code?: string }).code, message: err.message };
  return { message: String(err) };
}

export function agentMetrics(registry: Registry) {
  const get = <T>(name: string, make: () => T): T =>
    (registry.getSingleMetric(name) as T | undefined) ?? make();
  return {
    files: get(
      'vault_agent_files',
      () => new Gauge({ name: 'vault_agent_files', help: 'Files currently written', registers: [registry] }),
    ),
    writes: get(
      'vault_agent_file_writes_total',
      () =>
        new Counter({
          name: 'vault_agent_file_writes_total',
          help: 'Files written (atomically)',
          registers: [registry],
        }),
    ),
    renewals: get(
      'vault_agent_renewals_total',
      () =>
        new Counter({
          name: 'vault_agent_renewals_total',
          help: 'Renewals by outcome (ok, released = leased again at max TTL, error)',
          labelNames: ['outcome'],
          registers: [registry],
        }),
    ),
    failures: get(
      'vault_agent_failures_total',
      () =>
        new Counter({
          name: 'vault_agent_failures_total',
          help: 'Failed steps',
          labelNames: ['step'],
          registers: [registry],
        }),
    ),
    wipes: get(
      'vault_agent_wipes_total',
      () =>
        new Counter({
          name: 'vault_agent_wipes_total',
          help: 'Files wiped, by reason',
          labelNames: ['reason'],
          registers: [registry],
        }),
    ),
    wipeLatency: get(
      'vault_agent_wipe_latency_seconds',
      () =>
        new Histogram({
          name: 'vault_agent_wipe_latency_seconds',
          help: 'From the end of a lease (revocation time or expiresAt) to the file being wiped',
          labelNames: ['reason'],
          buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
          registers: [registry],
        }),
    ),
  };
}
