import type { ErrorRequestHandler } from 'express';
import { ZodError } from 'zod';
import type { ErrorBody } from '../contract/common.js';
import { isVaultError, VaultError } from '../lib/errors.js';

/** Zod issues as one sentence a person can act on: "ttl: ...; name: ...". */
export function describeZodError(error: ZodError): string {
  return error.issues
    .map((issue) => {
      const path = issue.path.join('.');
      const message =
        issue.code === 'unrecognized_keys'
          ? `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}; remove ${issue.keys.length > 1 ? 'them' : 'it'}`
          : issue.message;
      return path ? `${path}: ${message}` : message;
    })
    .join('; ');
}

/** Maps any error to a VaultError; unknown errors become a generic 500 that reveals nothing. */
export function toVaultError(err: unknown): VaultError {
  if (isVaultError(err)) return err;
  if (err instanceof ZodError) return new VaultError('bad_request', describeZodError(err));
  const type = (err as { type?: string } | undefined)?.type;
  if (type === 'entity.parse.failed') {
    return new VaultError('bad_request', 'the request body is not valid JSON; send a JSON object');
  }
  if (type === 'entity.too.large') {
    const limit = (err as { limit?: number }).limit;
    return new VaultError(
      'payload_too_large',
      `the request body is larger than ${limit ?? 'the limit of'} bytes; send less`,
    );
  }
  if (type === 'encoding.unsupported' || type === 'charset.unsupported') {
    return new VaultError('bad_request', 'the request body must be UTF-8 JSON');
  }
  // The router's decodeURIComponent of a path segment, e.g. a lone "%" or "%E0%A4%A".
  if (err instanceof URIError) {
    return new VaultError(
      'bad_request',
      'the request path is not valid percent-encoding (a "%" must start a UTF-8 "%XX" escape); encode it again',
    );
  }
  return new VaultError(
    'internal',
    'an internal error occurred; the request id identifies it in the server log',
  );
}

/** The one place errors become HTTP responses. */
export const errorHandler: ErrorRequestHandler = (err, _req, res, _next) => {
  const vaultError = toVaultError(err);
  const requestId = String(res.locals.requestId ?? '');
  const log = res.locals.log;
  if (vaultError.status >= 500) log?.error({ err: sanitize(err), code: vaultError.code }, 'request failed');
  else log?.info({ code: vaultError.code, status: vaultError.status }, 'request refused');
  const body: ErrorBody = {
    error: {
      code: vaultError.code,
      message: vaultError.message,
      requestId,
      ...(vaultError.details ? { details: vaultError.details } : {}),
    },
  };
  if (vaultError.code === 'rate_limited' && vaultError.details?.retryAfterSeconds) {
    res.setHeader('Retry-After', String(vaultError.details.retryAfterSeconds));
  }
  res.status(vaultError.status).json(body);
};

/** Error objects may carry request bodies (express attaches `body` to parse errors). */
const sanitize = (err: unknown) =>
  err instanceof Error
    ? { name: err.name, message: err.message, stack: err.stack }
    : { message: 'non-error thrown' };
