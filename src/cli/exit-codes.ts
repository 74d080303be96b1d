/**
 * The one mapping from errors to exit codes, and to a line that says how to fix them.
 * Scripts can rely on these numbers; the README documents them.
 */
import { VaultApiError, VaultConnectionError } from '../sdk/index.js';
import { exitCodes } from './exit-code-table.js';

export { exitCodes, exitCodeTable } from './exit-code-table.js';

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
    switch (err.reason) {
      case 'tls':
        return 'for a private CA, set VAULT_CACERT to its certificate file (PEM); check the address with VAULT_ADDR / --addr';
      case 'not-vault':
        return `VAULT_ADDR / --addr (now ${err.addr}) must be this Vault's address, e.g. the one \`vault dev\` prints`;
      default:
        return `start a server (\`vault dev\`) or point VAULT_ADDR / --addr at yours (now ${err.addr})`;
    }
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
