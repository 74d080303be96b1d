import { BULK_TIMEOUT_MS, type Http, seg } from './http.js';
import { allPages } from './pages.js';
import { obj, parseBulkRevoke, parseCredential, parseVersion } from './parse.js';
import type {
  BulkRevokeResult,
  CreateCredentialInput,
  Credential,
  CredentialVersion,
  ListCredentialsQuery,
  RotateCredentialInput,
  UpdateCredentialInput,
} from './types.js';

/** Credentials: create, list and manage secrets. Values go in; they only come out through leases. */
export class CredentialsApi {
  readonly #http: Http;

  /** @internal Use `vault.credentials`. */
  constructor(http: Http) {
    this.#http = http;
  }

  /**
   * Creates a credential (version 1) from a value or a generate spec. Needs the `create` action.
   * Repeating a create exactly returns the credential with `unchanged: true`, for a caller that
   * may read its value; anything else that exists is a ConflictError.
   */
  create(
    input: CreateCredentialInput,
    options: { signal?: AbortSignal } = {},
  ): Promise<Credential & { unchanged?: true }> {
    return this.#http.json(
      'post',
      '/v1/credentials',
      (body) => {
        const credential = parseCredential(body);
        return obj(body, 'credential').unchanged === true ? { ...credential, unchanged: true } : credential;
      },
      { body: input, ...options },
    );
  }

  /** Lists credentials the caller may list (metadata only, never values). */
  async list(
    query: ListCredentialsQuery = {},
    options: { signal?: AbortSignal } = {},
  ): Promise<Credential[]> {
    const labels = query.labels ? selectorText(query.labels) : undefined;
    return allPages(
      this.#http,
      '/v1/credentials',
      'credentials',
      parseCredential,
      { prefix: query.prefix, labels },
      options,
    );
  }

  /** A credential's metadata and versions. */
  get(name: string, options: { signal?: AbortSignal } = {}): Promise<Credential> {
    return this.#http.json('get', `/v1/credentials/${seg(name)}`, parseCredential, options);
  }

  /** Every version of a credential (metadata only), oldest first, however many pages. */
  versions(name: string, options: { signal?: AbortSignal } = {}): Promise<CredentialVersion[]> {
    return allPages(
      this.#http,
      `/v1/credentials/${seg(name)}/versions`,
      'versions',
      parseVersion,
      {},
      options,
    );
  }

  /** Replaces a credential's labels and/or lease defaults. */
  update(
    name: string,
    input: UpdateCredentialInput,
    options: { signal?: AbortSignal } = {},
  ): Promise<Credential> {
    return this.#http.json('patch', `/v1/credentials/${seg(name)}`, parseCredential, {
      body: input,
      ...options,
    });
  }

  /**
   * Stores a new version with the given value; it becomes the current version. With
   * `ifChanged`, only when the value differs from the current version's (otherwise the
   * credential comes back unchanged); that needs a right that reads the value (`lease`, and
   * `reveal` for an agent), since the answer would confirm a guess.
   */
  putVersion(
    name: string,
    value: string,
    options: { signal?: AbortSignal; ifChanged?: boolean } = {},
  ): Promise<Credential> {
    const { ifChanged, ...rest } = options;
    return this.#http.json('post', `/v1/credentials/${seg(name)}/versions`, parseCredential, {
      body: { value, ...(ifChanged ? { ifChanged } : {}) },
      ...rest,
    });
  }

  /** Rotates: a new version from a given value, a generate spec, or the server's default generation. */
  rotate(
    name: string,
    input: RotateCredentialInput = {},
    options: { signal?: AbortSignal } = {},
  ): Promise<Credential> {
    return this.#http.json('post', `/v1/credentials/${seg(name)}/rotate`, parseCredential, {
      body: input,
      // With revokeOldLeases it answers once every old lease is revoked.
      timeoutMs: BULK_TIMEOUT_MS,
      ...options,
    });
  }

  /** Deletes a credential and revokes its leases; returns the revoked lease ids. */
  delete(name: string, options: { signal?: AbortSignal } = {}): Promise<BulkRevokeResult> {
    return this.#http.json('delete', `/v1/credentials/${seg(name)}`, parseBulkRevoke, {
      timeoutMs: BULK_TIMEOUT_MS,
      ...options,
    });
  }
}

/**
 * The server's selector text, `key=value,key2=value2`, for exact matches of these labels. A
 * "," would split a value into another selector (a filter nobody asked for), and the server
 * trims each side: such labels cannot be selected, so they are refused before any request.
 */
function selectorText(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([key, value]) => {
      if (/[,=]/.test(key) || key.trim() !== key || value.includes(',') || value.trim() !== value)
        throw new TypeError(
          `label "${key}" cannot be selected: a label selector's key may not hold "," or "=", its value no ",", and neither may start or end with a space`,
        );
      return `${key}=${value}`;
    })
    .join(',');
}
