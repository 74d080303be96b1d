import { OutcomeUnknownError, StoreUnavailableError, VaultConnectionError } from './errors.js';
import { BULK_TIMEOUT_MS, type Http, seg } from './http.js';

/** Attempts of a lease creation whose outcome was unknown (same Idempotency-Key each time). */
const CREATE_ATTEMPTS = 4;
/**
 * How long a lease event stream may stay silent before it counts as broken: the server sends a
 * heartbeat every 15 s, so three missed ones.
 */
const EVENT_STREAM_SILENCE_MS = 45_000;

import { type KeepAliveOptions, keepLeaseAlive, type LeaseKeepAlive } from './keep-alive.js';
import { arr, obj, parseBulkRevoke, parseLease } from './parse.js';
import { readLeaseEvents } from './sse.js';
import type {
  BulkRevokeInput,
  BulkRevokeResult,
  CreateLeaseInput,
  Lease,
  LeaseEvent,
  LeasePage,
  ListLeasesQuery,
  UseLeaseInput,
} from './types.js';

type Options = { signal?: AbortSignal };

/** Leases: time-limited, audited grants of a credential's value to one identity. */
export class LeasesApi {
  readonly #http: Http;

  /** @internal Use `vault.leases`. */
  constructor(http: Http) {
    this.#http = http;
  }

  /**
   * Leases a credential and returns the lease, with its `value` unless the caller is an agent
   * without the `reveal` action (then the lease is a handle: use it through {@link use}, a
   * runner or the broker). `identity` is who the lease is for (defaults to the caller); the
   * caller's policy decides whether it may act for them.
   *
   * A retry (same `idempotencyKey`) that finds the lease of its first attempt ended meanwhile
   * (revoked, say, before the answer arrived) throws {@link LeaseRevokedError} or
   * {@link LeaseExpiredError}: call `create` again, with a new key, for a new lease.
   */
  async create(input: CreateLeaseInput, options: Options & { idempotencyKey?: string } = {}): Promise<Lease> {
    const { idempotencyKey = globalThis.crypto.randomUUID(), ...rest } = options;
    // Every attempt carries the same Idempotency-Key, so retrying a write whose outcome is
    // unknown (the server's store timed out, or no answer came), or a 503, never issues a
    // second lease.
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#http.json('post', '/v1/leases', parseLease, {
          body: input,
          headers: { 'idempotency-key': idempotencyKey },
          ...rest,
        });
      } catch (err) {
        // Also a request that got no answer in time, or whose connection failed: it may have
        // been carried out, and the same key makes a retry safe either way.
        const retriable =
          err instanceof OutcomeUnknownError ||
          err instanceof StoreUnavailableError ||
          (err instanceof VaultConnectionError && (err.reason === 'timeout' || err.reason === 'unreachable'));
        if (!retriable || attempt >= CREATE_ATTEMPTS || rest.signal?.aborted) throw err;
        await new Promise((resolve) => setTimeout(resolve, 250 * 2 ** (attempt - 1)));
      }
    }
  }

  /** A lease's current state (no value). */
  get(id: string, options: Options = {}): Promise<Lease> {
    return this.#http.json('get', `/v1/leases/${seg(id)}`, parseLease, options);
  }

  /**
   * Reads the value through an active lease; an agent needs the `reveal` action
   * ({@link PermissionDeniedError} otherwise). Throws {@link LeaseExpiredError} or
   * {@link LeaseRevokedError} when the lease is no longer active.
   */
  read(id: string, options: Options = {}): Promise<Lease> {
    return this.#http.json('get', `/v1/leases/${seg(id)}/value`, parseLease, options);
  }

  /**
   * Takes the value to *use* it (inject it into a command, put it on the wire), audited as
   * `lease.use` with `input` as the reason. Open to the lease holder, its issuer, a runner or
   * broker that may act for the holder, and admins; the caller needs `lease` on the credential.
   * Throws {@link LeaseRevokedError} or {@link LeaseExpiredError} once the lease is no longer
   * active, and {@link PermissionDeniedError} when `host` is not in the credential's
   * `metadata.hosts`. With `outcome: 'denied'` it only records a refused attempt (no value).
   */
  use(id: string, input: UseLeaseInput = {}, options: Options = {}): Promise<Lease> {
    return this.#http.json('post', `/v1/leases/${seg(id)}/use`, parseLease, { body: input, ...options });
  }

  /** Reveals the value for display to a person or model; needs the `reveal` action. */
  reveal(id: string, options: Options = {}): Promise<Lease> {
    return this.#http.json('post', `/v1/leases/${seg(id)}/reveal`, parseLease, options);
  }

  /**
   * Renews a lease by `increment` from now (default: its original TTL). The grant is capped by
   * the lease's max TTL: check `expiresAt` and `grantedTtlSeconds` for what was granted.
   */
  renew(id: string, input: { increment?: string } = {}, options: Options = {}): Promise<Lease> {
    return this.#http.json('post', `/v1/leases/${seg(id)}/renew`, parseLease, { body: input, ...options });
  }

  /** Revokes a lease; reading through it fails from now on. */
  revoke(id: string, options: Options = {}): Promise<Lease> {
    return this.#http.json('post', `/v1/leases/${seg(id)}/revoke`, parseLease, options);
  }

  /** Revokes every active lease of a credential, of an identity, or of the whole tenant (`{ all: true }`). */
  revokeBulk(input: BulkRevokeInput, options: Options = {}): Promise<BulkRevokeResult> {
    return this.#http.json('post', '/v1/leases/revoke', parseBulkRevoke, {
      body: input,
      timeoutMs: BULK_TIMEOUT_MS,
      ...options,
    });
  }

  /**
   * One page of the leases the caller may see (never with values). A page may hold fewer
   * than `limit` leases (the server bounds the work of one request); `continue` is present
   * while more may follow: pass it back, with the same filters, for the next page.
   */
  page(query: ListLeasesQuery = {}, options: Options = {}): Promise<LeasePage> {
    return this.#http.json(
      'get',
      '/v1/leases',
      (body) => {
        const page = obj(body, 'response');
        const leases = arr(page, 'leases', 'response', parseLease);
        return typeof page.continue === 'string' ? { leases, continue: page.continue } : { leases };
      },
      { query: { ...query }, ...options },
    );
  }

  /** Up to `limit` (default 100) leases the caller may see, following pages as needed. */
  async list(query: ListLeasesQuery = {}, options: Options = {}): Promise<Lease[]> {
    const limit = query.limit ?? 100;
    const leases: Lease[] = [];
    let next = query.continue;
    do {
      const page = await this.page(
        { ...query, limit: limit - leases.length, ...(next ? { continue: next } : {}) },
        options,
      );
      leases.push(...page.leases);
      next = page.continue;
    } while (next && leases.length < limit);
    return leases;
  }

  /** Every lease the caller may see, page by page. */
  async *all(query: Omit<ListLeasesQuery, 'continue'> = {}, options: Options = {}): AsyncGenerator<Lease> {
    let next: string | undefined;
    do {
      const page = await this.page({ ...query, ...(next ? { continue: next } : {}) }, options);
      yield* page.leases;
      next = page.continue;
    } while (next);
  }

  /**
   * Streams the caller's lease changes (issued, renewed, revoked, expired) as they happen.
   * Stop by breaking out of the loop or aborting `signal`. `onOpen` is called once the stream
   * is live: the server answers only after it follows changes, so none made after `onOpen`
   * is missed. A client that reconnects after a break should re-read what it follows then,
   * since changes made while it was disconnected sent it no event. A stream that sends nothing,
   * not even the server's heartbeat (every 15 s), for `silenceMs` (default 45 s) ends with a
   * `VaultConnectionError` (reason `timeout`): a route that drops packets gives no other sign.
   * Time the caller spends on an event does not count.
   *
   * @example
   * for await (const event of vault.leases.events()) if (event.type === 'revoked') wipe(event.lease.id);
   */
  async *events(
    options: Options & { onOpen?: () => void; silenceMs?: number } = {},
  ): AsyncGenerator<LeaseEvent, void, undefined> {
    const { onOpen, signal, silenceMs = EVENT_STREAM_SILENCE_MS, ...request } = options;
    // The server sends a heartbeat every 15 s: a stream silent for longer than a few is broken
    // (a dropped route, a hung proxy, a peer that vanished), though no error says so.
    const silence = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const heard = () => {
      clearTimeout(timer);
      timer = setTimeout(() => silence.abort(), silenceMs);
      timer.unref?.();
    };
    const stop = signal ? AbortSignal.any([signal, silence.signal]) : silence.signal;
    try {
      const response = await this.#http.stream('/v1/leases/events', { ...request, signal: stop });
      onOpen?.();
      heard();
      for await (const event of readLeaseEvents(response, stop, heard)) {
        // While the caller handles an event, the stream is not being read: its silence is not
        // the server's. The clock starts again when the caller asks for the next one.
        clearTimeout(timer);
        yield event;
        heard();
      }
    } finally {
      clearTimeout(timer);
    }
    if (silence.signal.aborted && !signal?.aborted) {
      throw new VaultConnectionError(
        `the lease event stream from ${this.#http.addr} sent nothing, not even a heartbeat, for ${silenceMs / 1000} s; it is treated as broken: reconnect`,
        this.#http.addr,
        undefined,
        'timeout',
      );
    }
  }

  /**
   * Keeps a lease alive: renews it in the background at about two thirds of its remaining time,
   * and ends (calling `onEnd`) when it is revoked, expires, or reaches its max TTL, or on
   * `stop()`. Transient errors (server unreachable, 429, 503) are retried until the lease runs out.
   */
  keepAlive(lease: Lease, options: KeepAliveOptions = {}): LeaseKeepAlive {
    return keepLeaseAlive(
      lease,
      (increment) => this.renew(lease.id, increment ? { increment } : {}),
      options,
    );
  }
}
