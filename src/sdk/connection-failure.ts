/**
 * Names why a request to `VAULT_ADDR` failed, in words that say what to fix: a certificate
 * Node refused (the usual mistake with a private CA), a plain-HTTP/TLS mismatch, nothing
 * listening, or a server that is not this product (often HashiCorp Vault: both use
 * `VAULT_ADDR`).
 */
import { type ConnectionFailure, VaultConnectionError } from './errors.js';

const unknownAuthority = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_SIGNATURE_FAILURE',
]);

/** The error code of a failed fetch: undici puts it on `cause`, node:https on the error. */
function codeOf(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code !== 'ERR_INVALID_ARG_TYPE') return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** A VaultConnectionError for a request that got no HTTP answer. */
export function connectionFailure(err: unknown, base: string): VaultConnectionError {
  const fail = (reason: ConnectionFailure, message: string) =>
    new VaultConnectionError(message, base, err, reason);
  if (err instanceof Error && err.name === 'TimeoutError')
    return fail(
      'timeout',
      `the request to ${base} timed out: is the Vault server running there and reachable?`,
    );
  const code = codeOf(err);
  const https = base.startsWith('https:');
  if (code && unknownAuthority.has(code))
    return fail(
      'tls',
      `TLS: certificate signed by an unknown authority: set VAULT_CACERT to the CA file (PEM) that signed the certificate of ${base} (${code})`,
    );
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID')
    return fail(
      'tls',
      `TLS: the certificate of ${base} is not valid for the host ${new URL(base).hostname} (${code}): use a host name the certificate lists in VAULT_ADDR`,
    );
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID')
    return fail(
      'tls',
      `TLS: the certificate of ${base} ${code === 'CERT_HAS_EXPIRED' ? 'has expired' : 'is not valid yet'} (${code})`,
    );
  if (https && (code === 'EPROTO' || code === 'ERR_SSL_WRONG_VERSION_NUMBER' || /SSL|TLS/.test(code ?? '')))
    return fail(
      'tls',
      `TLS handshake with ${base} failed (${code}): does it serve HTTPS? For a server without TLS use an http:// VAULT_ADDR`,
    );
  if (code === 'ECONNREFUSED')
    return fail(
      'unreachable',
      `nothing listens at ${base} (connection refused): is the Vault server running there? (set VAULT_ADDR or the addr option)`,
    );
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN')
    return fail('unreachable', `cannot resolve the host of ${base} (${code}): check VAULT_ADDR`);
  if (!https && (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'HPE_INVALID_CONSTANT'))
    return fail(
      'unreachable',
      `${base} closed the connection without an HTTP answer (${code}): if it serves HTTPS, use an https:// VAULT_ADDR`,
    );
  const detail =
    code ?? (err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : '');
  return fail(
    'unreachable',
    `the request to ${base} failed${detail ? ` (${detail})` : ''}: is the Vault server running there? (set VAULT_ADDR or the addr option)`,
  );
}

/** Whether an error body is this product's envelope: `{error: {code, message}}`. */
export function isVaultErrorBody(body: unknown): boolean {
  if (typeof body !== 'object' || body === null || !('error' in body)) return false;
  const error = (body as { error: unknown }).error;
  return (
    typeof error === 'object' && error !== null && typeof (error as { code?: unknown }).code === 'string'
  );
}

/** HashiCorp Vault answers errors as `{"errors": [...]}`. */
export const looksLikeHashiCorp = (body: unknown) =>
  typeof body === 'object' && body !== null && Array.isArray((body as { errors?: unknown }).errors);

/**
 * The error for an answer that is not this product's API. `probe` asks `/v1/sys/health`, which
 * HashiCorp Vault answers with its version, to name it.
 */
export async function notVault(
  base: string,
  answer: { status: number; contentType: string | null; body: unknown },
  probe: () => Promise<unknown>,
): Promise<VaultConnectionError> {
  let what = `HTTP ${answer.status}${answer.contentType ? ` (${answer.contentType.split(';')[0]})` : ''}`;
  const health = looksLikeHashiCorp(answer.body) ? await probe().catch(() => undefined) : undefined;
  if (looksLikeHashiCorp(answer.body)) {
    const version =
      typeof health === 'object' &&
      health !== null &&
      typeof (health as { version?: unknown }).version === 'string'
        ? ` ${(health as { version: string }).version}`
        : '';
    what = `what looks like HashiCorp Vault${version} ({"errors": [...]})`;
  }
  return new VaultConnectionError(
    `${base} answered ${what}, not the API of this Vault (@ghoststack): VAULT_ADDR points at another server. Set VAULT_ADDR to your Vault's address (\`vault dev\` prints it)`,
    base,
    undefined,
    'not-vault',
  );
}
