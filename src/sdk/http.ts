/**
 * The one place the SDK talks HTTP: bearer auth, the tenant header, JSON bodies, query
 * strings, timeouts, and turning error responses into typed errors.
 */
import { connectionFailure, isVaultErrorBody, looksLikeHashiCorp, notVault } from './connection-failure.js';
import { errorFromResponse, VaultConnectionError } from './errors.js';
import { ResponseShapeError } from './parse.js';

export type FetchLike = typeof globalThis.fetch;

export interface HttpConfig {
  addr: string;
  token: string | undefined;
  tenant: string | undefined;
  fetch: FetchLike;
  timeoutMs: number;
}

export interface RequestOptions {
  body?: unknown;
  query?: Record<string, string | number | boolean | undefined>;
  signal?: AbortSignal;
  /** Leave the response body unread (streams). */
  raw?: boolean;
  /** Extra request headers (Idempotency-Key). */
  headers?: Record<string, string>;
  /** This request's own time limit instead of the client's `timeoutMs` (bulk revocations). */
  timeoutMs?: number;
  /** Send no tenant header (whoami describes the token, whichever tenant it addresses). */
  noTenant?: boolean;
  /**
   * This request tells whether the server is this product at all (connect's whoami): a 4xx or
   * 200 answer that is not the Vault API is a `not-vault` VaultConnectionError.
   */
  identify?: boolean;
}

export interface Http {
  readonly addr: string;
  readonly tenant: string | undefined;
  json<T>(method: string, path: string, decode: (value: unknown) => T, options?: RequestOptions): Promise<T>;
  stream(path: string, options?: RequestOptions): Promise<Response>;
  /** The same connection addressing another tenant. */
  withTenant(tenant: string): Http;
}

/**
 * The time limit of a request that revokes many leases (a credential's, an identity's, all):
 * it answers once every one is revoked, 100,000 of them in about a minute, so the client's
 * usual limit would give up on a revocation that is still going.
 */
export const BULK_TIMEOUT_MS = 10 * 60_000;

/** Encodes one path segment (names may contain ".", ":" and "@"). */
export const seg = (value: string | number): string => encodeURIComponent(String(value));

export function createHttp(config: HttpConfig): Http {
  const base = config.addr.replace(/\/+$/, '');

  async function send(method: string, path: string, options: RequestOptions): Promise<Response> {
    const url = new URL(base + path);
    for (const [key, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const headers: Record<string, string> = {
      accept: options.raw ? 'text/event-stream' : 'application/json',
    };
    if (config.token) headers.authorization = `Bearer ${config.token}`;
    if (config.tenant && !options.noTenant) headers['x-vault-tenant'] = config.tenant;
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    Object.assign(headers, options.headers);
    // A request has `timeoutMs` to be answered; a stream, to send its headers (it then lives
    // as long as its reader wants) or, refused, its whole answer.
    const timeout = new AbortController();
    const timer = setTimeout(
      () => timeout.abort(new DOMException('the request timed out', 'TimeoutError')),
      options.timeoutMs ?? config.timeoutMs,
    );
    timer.unref?.();
    const signal = options.signal ? AbortSignal.any([options.signal, timeout.signal]) : timeout.signal;

    let response: Response;
    try {
      response = await config.fetch(url, {
        method: method.toUpperCase(),
        headers,
        ...(options.body !== undefined && { body: JSON.stringify(options.body) }),
        signal,
      });
    } catch (err) {
      clearTimeout(timer);
      if (options.signal?.aborted) throw err;
      throw connectionFailure(err, base);
    }
    if (response.ok) {
      if (options.raw) clearTimeout(timer);
      return response;
    }

    const text = await response.text().catch(() => '');
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    // Vault's own 404 always says what was not found in its error body; one without it comes
    // from something in between (a proxy's default backend, a wrong path prefix) and says
    // nothing about whether the thing asked for exists.
    const foreign =
      !isVaultErrorBody(body) &&
      (options.identify ? response.status < 500 : looksLikeHashiCorp(body) || response.status === 404);
    if (foreign) throw await notVault(base, answerOf(response, body), probeHealth);
    const retryAfter = Number(response.headers.get('retry-after'));
    const requestId = response.headers.get('x-request-id');
    throw errorFromResponse(response.status, body, {
      ...(requestId && { requestId }),
      ...(Number.isFinite(retryAfter) && retryAfter > 0 && { retryAfterSeconds: retryAfter }),
    });
  }

  const probeHealth = async () => {
    const response = await config.fetch(`${base}/v1/sys/health`, { signal: AbortSignal.timeout(3_000) });
    return response.json();
  };

  return {
    addr: base,
    tenant: config.tenant,
    async json(method, path, decode, options = {}) {
      const response = await send(method, path, options);
      let text: string;
      try {
        text = await response.text();
      } catch (err) {
        // An answer cut off after its headers (timed out, or its connection reset) is no
        // answer either: the same error as one that never came, so callers (and the lease
        // creation's retry) recognise it.
        if (options.signal?.aborted) throw err;
        throw connectionFailure(err, base);
      }
      let body: unknown;
      try {
        body = text === '' ? {} : JSON.parse(text);
        return decode(body);
      } catch (err) {
        if (err instanceof ResponseShapeError || err instanceof SyntaxError) {
          if (options.identify) throw await notVault(base, answerOf(response, body ?? text), probeHealth);
          throw new VaultConnectionError(
            `${err.message} (${method.toUpperCase()} ${path}); is ${base} a Vault server of a compatible version?`,
            base,
            err,
            'not-vault',
          );
        }
        throw err;
      }
    },
    stream(path, options = {}) {
      return send('get', path, { ...options, raw: true });
    },
    withTenant(tenant) {
      return createHttp({ ...config, tenant });
    },
  };
}

const answerOf = (response: Response, body: unknown) => ({
  status: response.status,
  contentType: response.headers.get('content-type'),
  body,
});
