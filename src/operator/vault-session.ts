/**
 * The controller's login to Vault: its own ServiceAccount token (projected with Vault's
 * audience) exchanged by Kubernetes login for a token with the controller role over this
 * cluster's tenants. It logs in again at about two thirds of the token's life, re-reading the
 * projected file (the kubelet rotates it), and after a 401 (a revoked token).
 */
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import type { FetchLike } from '../sdk/http.js';
import { type CreatedToken, Vault } from '../sdk/index.js';

export interface VaultSessionOptions {
  addr: string;
  /** The name the server knows this cluster by (undefined: the unnamed cluster). */
  cluster?: string;
  /** The ServiceAccount token to log in with, read afresh at every login. */
  readToken(): Promise<string>;
  fetch?: FetchLike;
  clock: Clock;
  logger: Logger;
}

export interface VaultSession {
  /** A client addressing `tenant` with the current token. */
  forTenant(tenant: string): Vault;
  /** Runs `call` against `tenant`; after a 401 it logs in again once and retries. */
  call<T>(tenant: string, call: (vault: Vault) => Promise<T>): Promise<T>;
  readonly token: CreatedToken;
  close(): void;
}

export class ControllerLoginError extends Error {
  override name = 'ControllerLoginError';
}

const isUnauthenticated = (err: unknown) =>
  (err as { code?: string } | undefined)?.code === 'unauthenticated';

export async function openVaultSession(options: VaultSessionOptions): Promise<VaultSession> {
  const { clock, logger } = options;
  const connection = { addr: options.addr, ...(options.fetch ? { fetch: options.fetch } : {}) };

  async function login(): Promise<{ token: CreatedToken; vault: Vault }> {
    const jwt = (await options.readToken()).trim();
    const token = await Vault.loginKubernetes(
      { jwt, ...(options.cluster ? { cluster: options.cluster } : {}) },
      connection,
    );
    if (!token.controllerOf) {
      throw new ControllerLoginError(
        `Vault at ${options.addr} logged ${token.identity.name} in as a plain workload, not as this cluster's controller: ` +
          `run vault server with --kubernetes-controller ${options.cluster ? `${options.cluster}=` : ''}<namespace>:<serviceaccount> naming it`,
      );
    }
    if (token.controllerOf.cluster !== options.cluster) {
      throw new ControllerLoginError(
        `Vault at ${options.addr} made this ServiceAccount the controller of cluster "${token.controllerOf.cluster ?? '(unnamed)'}", but this controller runs as cluster "${options.cluster ?? '(unnamed)'}"; give both the same name`,
      );
    }
    return { token, vault: await Vault.connect({ ...connection, token: token.token }) };
  }

  let current = await login();
  let tenants = new Map<string, Vault>();
  let relogin: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  function schedule(delayMs: number) {
    clearTimeout(timer);
    if (closed) return;
    timer = setTimeout(() => void renew().catch(() => {}), Math.max(1_000, delayMs));
    timer.unref();
  }
  const untilRenewal = () => ((current.token.expiresAt.getTime() - clock().getTime()) * 2) / 3;

  function renew(): Promise<void> {
    relogin ??= login()
      .then(
        (next) => {
          current = next;
          tenants = new Map();
          logger.info({ expiresAt: next.token.expiresAt.toISOString() }, 'logged in to Vault again');
          schedule(untilRenewal());
        },
        (err: unknown) => {
          logger.warn(
            { err: err instanceof Error ? err.message : String(err) },
            'Vault login failed; retrying',
          );
          schedule(10_000);
          throw err;
        },
      )
      .finally(() => {
        relogin = undefined;
      });
    return relogin;
  }
  schedule(untilRenewal());

  const forTenant = (tenant: string) => {
    let vault = tenants.get(tenant);
    if (!vault) {
      vault = current.vault.withTenant(tenant);
      tenants.set(tenant, vault);
    }
    return vault;
  };

  return {
    forTenant,
    get token() {
      return current.token;
    },
    async call(tenant, call) {
      try {
        return await call(forTenant(tenant));
      } catch (err) {
        if (!isUnauthenticated(err) || closed) throw err;
        await renew();
        return call(forTenant(tenant));
      }
    },
    close() {
      closed = true;
      clearTimeout(timer);
    },
  };
}
