import { AuditApi, IdentitiesApi, KeysApi, PoliciesApi, TenantsApi, TokensApi } from './admin.js';
import { CredentialsApi } from './credentials.js';
import { UnauthenticatedError } from './errors.js';
import { createHttp, type FetchLike, type Http } from './http.js';
import { LeasesApi } from './leases.js';
import { parseCreatedToken, parseTokenInfo } from './parse.js';
import type { CreatedToken, TokenInfo } from './types.js';

/** The address used when neither the `addr` option nor `VAULT_ADDR` is set. */
export const defaultAddr = 'http://127.0.0.1:8200';

/** Options of {@link Vault.connect}. Each falls back on an environment variable; explicit options win. */
export interface ConnectOptions {
  /** Server address (`VAULT_ADDR`, default `http://127.0.0.1:8200`). */
  addr?: string;
  /** Bearer token (`VAULT_TOKEN`). */
  token?: string;
  /** Tenant to address (`VAULT_TENANT`, default the token's own tenant). */
  tenant?: string;
  /** A fetch implementation (default `globalThis.fetch`; with a CA to trust, one on node:https). */
  fetch?: FetchLike;
  /**
   * PEM CA certificates to trust for an https address instead of the built-in roots, e.g. a
   * private CA (Node only). Default: the file `VAULT_CACERT` names. Ignored when `fetch` is given.
   */
  caCert?: string;
  /** Per-request timeout in milliseconds (default 30 000; event streams have none). */
  timeoutMs?: number;
}

/** `process.env` where there is one (Node, Deno, Bun); the SDK also runs where there is not. */
const processEnv = (): Record<string, string | undefined> =>
  (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env ?? {};

/** The resolved connection settings: explicit options first, then the environment, then defaults. */
export function resolveConnectOptions(
  options: ConnectOptions,
  env: Record<string, string | undefined> = processEnv(),
): { addr: string; token: string | undefined; tenant: string | undefined } {
  const pick = (value: string | undefined, name: string) =>
    value !== undefined && value !== '' ? value : env[name] || undefined;
  return {
    addr: pick(options.addr, 'VAULT_ADDR') ?? defaultAddr,
    token: pick(options.token, 'VAULT_TOKEN'),
    tenant: pick(options.tenant, 'VAULT_TENANT'),
  };
}

/**
 * The fetch to use: the caller's, else one trusting `caCert` or the `VAULT_CACERT` file (on
 * node:https, loaded only then), else the platform's.
 */
async function fetchFor(options: ConnectOptions, env = processEnv()): Promise<FetchLike> {
  if (options.fetch) return options.fetch;
  const caFile = env.VAULT_CACERT;
  if (options.caCert === undefined && !caFile) return globalThis.fetch.bind(globalThis);
  const { createNodeFetch, readCaFile } = await import('./node-fetch.js');
  const ca = options.caCert ?? (await readCaFile(caFile!));
  return createNodeFetch({ ca }).fetch;
}

/**
 * A connection to a Vault server with a validated token.
 *
 * @example
 * const vault = await Vault.connect({ tenant: 'my-org', token: process.env.VAULT_TOKEN });
 * const lease = await vault.leases.create({ credentialName: 'stripe-api-key', ttl: '15m' });
 */
export class Vault {
  /** The server address. */
  readonly addr: string;
  /** The tenant every request addresses. */
  readonly tenant: string;
  /** The calling token, as validated at connect time. */
  readonly self: TokenInfo;
  /** Credentials: create, list, get, update, putVersion, rotate, delete. */
  readonly credentials: CredentialsApi;
  /** Leases: create, get, read, reveal, renew, revoke, revokeBulk, list, events, keepAlive. */
  readonly leases: LeasesApi;
  /** The audit log: query, verify, lookup. */
  readonly audit: AuditApi;
  /** Tokens: create, lookup, revoke. */
  readonly tokens: TokensApi;
  /** Policies: list, get, put, delete. */
  readonly policies: PoliciesApi;
  /** Identities: list, get, put, delete. */
  readonly identities: IdentitiesApi;
  /** Tenants (system tokens): list, create. */
  readonly tenants: TenantsApi;
  /** The tenant's keys: status, rotate. */
  readonly keys: KeysApi;
  readonly #http: Http;

  private constructor(http: Http, self: TokenInfo) {
    this.#http = http;
    this.addr = http.addr;
    this.tenant = http.tenant ?? self.tenant;
    this.self = self;
    this.credentials = new CredentialsApi(http);
    this.leases = new LeasesApi(http);
    this.audit = new AuditApi(http);
    this.tokens = new TokensApi(http);
    this.policies = new PoliciesApi(http);
    this.identities = new IdentitiesApi(http);
    this.tenants = new TenantsApi(http);
    this.keys = new KeysApi(http);
  }

  /**
   * Connects and validates the token (a whoami call). Missing options come from `VAULT_ADDR`,
   * `VAULT_TOKEN` and `VAULT_TENANT`. Throws {@link UnauthenticatedError} when there is no
   * token or the server rejects it, {@link VaultConnectionError} when the server is unreachable.
   */
  static async connect(options: ConnectOptions = {}): Promise<Vault> {
    const resolved = resolveConnectOptions(options);
    if (!resolved.token) {
      throw new UnauthenticatedError(
        'no token: pass the token option or set VAULT_TOKEN (for a local server, run `vault dev` and load the export lines it prints)',
        { status: 0 },
      );
    }
    const http = createHttp({
      ...resolved,
      fetch: await fetchFor(options),
      timeoutMs: options.timeoutMs ?? 30_000,
    });
    const self = await http.json('get', '/v1/auth/whoami', parseTokenInfo, {
      noTenant: true,
      identify: true,
    });
    return new Vault(http, self);
  }

  /**
   * Exchanges a projected Kubernetes ServiceAccount token for a Vault token (no Vault token
   * needed). `cluster` names the cluster the token comes from when the server serves several
   * (its tenant is then `<cluster>.<namespace>`). Connect with the returned `token` afterwards.
   */
  static async loginKubernetes(
    input: { jwt: string; ttl?: string; cluster?: string },
    options: Omit<ConnectOptions, 'token'> = {},
  ): Promise<CreatedToken> {
    const resolved = resolveConnectOptions({ ...options, token: '' });
    const http = createHttp({
      ...resolved,
      token: undefined,
      fetch: await fetchFor(options),
      timeoutMs: options.timeoutMs ?? 30_000,
    });
    return http.json('post', '/v1/auth/kubernetes/login', parseCreatedToken, { body: input });
  }

  /**
   * The same token addressing another tenant, without another round trip. Only tokens that
   * may act there are served: system tokens, and a cluster controller's in its cluster's
   * tenants (`self.controllerOf`); others get 403.
   */
  withTenant(tenant: string): Vault {
    return new Vault(this.#http.withTenant(tenant), this.self);
  }

  /** The calling token as the server sees it now. */
  whoami(options: { signal?: AbortSignal } = {}): Promise<TokenInfo> {
    return this.#http.json('get', '/v1/auth/whoami', parseTokenInfo, { ...options, noTenant: true });
  }
}
