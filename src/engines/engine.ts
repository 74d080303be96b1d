import type { DynamicSpec } from '../contract/credentials.js';

/**
 * A dynamic secrets engine: issues one upstream credential per lease and makes the upstream
 * system refuse it when the lease ends. Engines run in the API server; `connection` is the
 * credential's current value (the admin connection), opened from the keyring per call and
 * never returned, logged or put in an error.
 *
 * Every method is idempotent: the core retries revoke until it succeeds, and a crash may
 * repeat any call.
 */
export interface DynamicEngine<Spec extends DynamicSpec = DynamicSpec> {
  readonly name: Spec['engine'];
  /** The upstream account name for a lease: carries the lease id, so it is attributable. */
  usernameFor(leaseId: string): string;
  /** Creates the account, usable until `expiresAt`; resolves with the value the lease hands out. */
  issue(connection: string, spec: Spec, account: Account): Promise<string>;
  /**
   * Optional: creates the account in an upstream transaction left open until `settle` says
   * whether the lease was committed. The account exists only if it was: a crash in between
   * aborts the transaction upstream, so the core need not record the account beforehand.
   */
  issueHeld?(connection: string, spec: Spec, account: Account): Promise<HeldIssue>;
  /** Lets the account live until `expiresAt`. */
  renew(connection: string, account: Account): Promise<void>;
  /** Ends the account's sessions and removes it; succeeds when it is already gone. */
  revoke(connection: string, username: string): Promise<void>;
  /**
   * Changes the admin's own password upstream (a new random one, or the one `restore` holds,
   * to undo a rotation that could not be stored); resolves with the new admin connection.
   */
  rotateRoot(connection: string, restore?: string): Promise<string>;
  /** Closes pooled connections. */
  close(): Promise<void>;
}

export interface HeldIssue {
  value: string;
  /**
   * Commits the account upstream (`true`) or rolls it back; resolves once that is done.
   * A commit that fails rejects: the account does not exist.
   */
  settle(commit: boolean): Promise<void>;
}

export interface Account {
  username: string;
  expiresAt: Date;
}

export type EngineRegistry = Partial<Record<DynamicSpec['engine'], DynamicEngine>>;

/** Why an engine call failed, without the connection or any password in the message. */
export class EngineError extends Error {
  constructor(
    message: string,
    /** True when retrying cannot help (the statements are wrong, the account is refused). */
    readonly permanent = false,
  ) {
    super(message);
    this.name = 'EngineError';
  }
}

/** Removes every secret from an upstream error message before it goes anywhere. */
export function engineError(err: unknown, secrets: string[], what: string, permanent = false): EngineError {
  let message = err instanceof Error ? err.message : String(err);
  for (const secret of secrets) if (secret) message = message.split(secret).join('[redacted]');
  const code = (err as { code?: unknown }).code;
  return new EngineError(`${what}: ${message}${typeof code === 'string' ? ` (${code})` : ''}`, permanent);
}
