/**
 * The one mapping from errors to MCP tool results: an `isError` result whose text says what
 * failed and what the model (or its user) can do about it. Server messages never carry values.
 */
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { VaultApiError, VaultConnectionError, type VaultErrorCode } from '../sdk/index.js';

const hints: Partial<Record<VaultErrorCode, string>> = {
  unauthenticated:
    'The agent token is missing, expired or revoked. Ask the user to run `vault mcp init` in this project again.',
  permission_denied:
    "The agent's policy does not allow this. Ask the user to grant it (a policy rule for this credential and action) if it is needed; do not try to work around it.",
  not_found: 'Check the name with list_credentials, or the lease id with list_my_leases.',
  lease_expired: 'The lease has ended. Request a new one with request_lease.',
  lease_revoked:
    'The lease was revoked. Request a new one with request_lease only if that is still appropriate.',
  rate_limited: 'Too many requests; wait a little before trying again.',
  store_unavailable: 'The Vault server cannot reach its store right now; try again shortly.',
  outcome_unknown:
    'The Vault server does not know whether the change was made (its store timed out); check before repeating it.',
  audit_unavailable: 'The Vault server cannot write its audit log, so it refused to act; try again shortly.',
  bad_request: 'Fix the arguments as the message says.',
};

export function toolError(err: unknown): CallToolResult {
  let text: string;
  if (err instanceof VaultApiError) {
    text = `${err.code}: ${err.message}`;
    const hint = hints[err.code];
    if (hint) text += `\n${hint}`;
  } else if (err instanceof VaultConnectionError) {
    text = `vault_unreachable: ${err.message}`;
  } else if (err instanceof RangeError) {
    text = `bad_request: ${err.message}`;
  } else {
    text = `error: ${err instanceof Error ? err.message : String(err)}`;
  }
  return { isError: true, content: [{ type: 'text', text }] };
}

export function toolResult(value: unknown): CallToolResult {
  return { content: [{ type: 'text', text: JSON.stringify(value, null, 2) }] };
}
