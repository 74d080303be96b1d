/**
 * The one mapping from errors to exit codes, and to a line that says how to fix them.
 * Scripts can rely on these numbers; the README documents them.
 */
import { VaultApiError, VaultConnectionError } from '../sdk/index.js';

export const exitCodes = {
  ok: 0,
  /** Wrong flags or arguments, or an unexpected failure. */
  usage: 1,
  /** The server rejected the input (400, 413). */
  badRequest: 2,
  /** No token, or the token is invalid or expired (401). */
  unauthenticated: 3,
  /** The token's policies do not allow it (403). */
  denied: 4,
  /** No such credential, lease, token, policy or identity (404). */
  notFound: 5,
  /** Already exists, or changed concurrently (409). */
  conflict: 6,
  /** The lease expired or was revoked (410). */
  leaseGone: 7,
  /** The server is unreachable, overloaded or failing (429, 5xx, network). */
  unavailable: 8,
  /** `vault audit verify` found a broken hash chain. */
  auditBroken: 9,
} as const;

export const exitCodeTable: [number, string][] = [
  [exitCodes.ok, 'success'],
  [exitCodes.usage, 'usage error (wrong flags or arguments) or unexpected failure'],
  [exitCodes.badRequest, 'the server rejected the input (HTTP 400, 413)'],
  [exitCodes.unauthenticated, 'no token, or the token is invalid or expired (HTTP 401)'],
  [exitCodes.denied, "the token's policies do not allow it (HTTP 403)"],
  [exitCodes.notFound, 'no such credential, lease, token, policy or identity (HTTP 404)'],
  [exitCodes.conflict, 'already exists, or changed concurrently (HTTP 409)'],
  [exitCodes.leaseGone, 'the lease expired or was revoked (HTTP 410)'],
  [exitCodes.unavailable, 'server unreachable, rate limited or failing (HTTP 429, 5xx, network)'],
  [exitCodes.auditBroken, '`vault audit verify` found a broken hash chain'],
];

/** A mistake in how the command was called; the message says what to do instead. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Ends the command with a given exit code after printing a message (e.g. a failed verification). */
export class ExitError extends Error {
  readonly exitCode: number;
  constructor(exitCode: number, message: string) {
    super(message);
    this.name = 'ExitError';
    this.exitCode = exitCode;
  }
}

export function exitCodeFor(err: unknown): number {
  if (err instanceof ExitError) return err.exitCode;
  if (err instanceof VaultConnectionError) return exitCodes.unavailable;
  if (!(err instanceof VaultApiError)) return exitCodes.usage;
  switch (err.code) {
    case 'bad_request':
    case 'payload_too_large':
      return exitCodes.badRequest;
    case 'unauthenticated':
      return exitCodes.unauthenticated;
    case 'permission_denied':
      return exitCodes.denied;
    case 'not_found':
      return exitCodes.notFound;
    case 'conflict':
      return exitCodes.conflict;
    case 'lease_expired':
    case 'lease_revoked':
      return exitCodes.leaseGone;
    default:
      return exitCodes.unavailable;
  }
}

/** How to fix it, for people. */
export function hintFor(err: unknown): string | undefined {
  if (err instanceof VaultConnectionError) {
    return `start a server (\`vault dev\`) or point VAULT_ADDR / --addr at yours (now ${err.addr})`;
  }
  if (!(err instanceof VaultApiError)) return undefined;
  switch (err.code) {
    case 'unauthenticated':
      return 'log in with `vault login`, or set VAULT_TOKEN (for a local server: run `vault dev` and load the export lines it prints)';
    case 'permission_denied':
      return "your token's policies do not allow this: ask an admin to grant it (`vault policies put`, `vault identities put`)";
    case 'not_found':
      return 'check the name with `vault credentials list` or the id with `vault lease list`';
    case 'lease_expired':
    case 'lease_revoked':
      return 'create a new lease with `vault lease create CREDENTIAL`';
    case 'rate_limited':
      return `wait${err.retryAfterSeconds ? ` ${err.retryAfterSeconds}s` : ' a moment'} and try again`;
    case 'store_unavailable':
    case 'audit_unavailable':
      return 'the server cannot reach its store or audit log; try again shortly';
    case 'outcome_unknown':
      return 'the server does not know whether the change was made; check (e.g. list) before repeating it';
    default:
      return undefined;
  }
}
