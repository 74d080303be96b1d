/** The exit codes of `vault` (data only, so the top-level help loads nothing else). */
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
